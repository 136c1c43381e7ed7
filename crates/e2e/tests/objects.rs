//! Plan, apply, drift and destroy of the `gateway` module's objects (the Gateway API CRDs, the
//! Gateway and its ConfigMap, nginx and its namespace label, the HTTPRoute) through the
//! `cargo xtask` CLI, against the testenv.
//!
//! One scenario, in order, because every step builds on the cluster state of the one before:
//! the objects have fixed names (this file is its own test binary, so nothing else runs beside
//! it).

use std::collections::BTreeMap;

use e2e::{InfraCopy, describe};
use serde_json::{Value, json};

const OWNED: &str = "app.kubernetes.io/managed-by=envctl,envctl.dev/environment=kwok";

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// resourceVersion of every object this environment owns, by kind/namespace/name.
async fn owned_versions(client: &kube::Client) -> BTreeMap<String, String> {
    e2e::objects_matching(client, OWNED).await
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_objects_converge_drift_is_attributed_and_destroy_keeps_what_is_not_ours() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();
    let crds = e2e::typed_api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    let namespaces = e2e::typed_api(&client, "v1", "Namespace", "namespaces", None);
    assert!(
        crds.get_opt("gateways.gateway.networking.k8s.io")
            .await
            .unwrap()
            .is_none(),
        "precondition: a fresh testenv has no Gateway API Gateway CRD"
    );

    // A pinned file whose checksum does not match refuses the run, before anything is sent.
    let pins = infra.read("pins/gateway-api.yaml");
    let good = "682203b109baecb18d38073a578f7bc2c17d22fe9b0c27bf030850abe014c370";
    assert!(pins.contains(good), "the httproutes pin of v1.5.1");
    infra.write(
        "pins/gateway-api.yaml",
        &pins.replace(good, &"a".repeat(64)),
    );
    let refused = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(describe(&refused).contains("checksum mismatch for https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.5.1/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"), "{}", describe(&refused));
    assert!(
        namespaces.get_opt("gateway").await.unwrap().is_none(),
        "a refused run changes nothing"
    );
    infra.write("pins/gateway-api.yaml", &pins);

    // A custom resource and its CRD in one plan: the Gateway is planned after its CRD.
    let plan = infra.xtask_gateway(&["plan", "--output", "json"]);
    assert!(plan.status.success(), "{}", describe(&plan));
    let json: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let gateway = json["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "gateway.object.gateway/gateway/istio-gateway")
        .expect("the Gateway is planned");
    assert_eq!(gateway["action"], "create");
    assert_eq!(
        gateway["waits_for"],
        json!(["customresourcedefinition/gateways.gateway.networking.k8s.io"])
    );

    // Without a terminal to ask on, apply refuses unless told --auto-approve.
    let unasked = infra.xtask_gateway(&["apply"]);
    assert_eq!(unasked.status.code(), Some(1), "{}", describe(&unasked));
    assert!(
        describe(&unasked).contains("--auto-approve"),
        "{}",
        describe(&unasked)
    );
    assert!(
        namespaces.get_opt("gateway").await.unwrap().is_none(),
        "nothing applied"
    );

    // Apply from empty.
    let applied = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    assert!(
        stdout(&applied).contains("Apply complete! Resources: 16 added, 1 changed, 0 destroyed."),
        "{}",
        describe(&applied)
    );
    let gateways = e2e::typed_api(
        &client,
        "gateway.networking.k8s.io/v1",
        "Gateway",
        "gateways",
        Some("gateway"),
    );
    let live_gateway = gateways
        .get("istio-gateway")
        .await
        .expect("the Gateway exists");
    assert_eq!(
        live_gateway.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "envctl"
    );

    // A second apply sends nothing: every resourceVersion stays the same.
    let before = owned_versions(&client).await;
    assert!(before.len() >= 15, "owned objects: {before:?}");
    let again = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        stdout(&again).contains("No changes."),
        "{}",
        describe(&again)
    );
    assert_eq!(
        owned_versions(&client).await,
        before,
        "a no-op apply writes nothing"
    );
    let plan = infra.xtask_gateway(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));

    // A saved plan is applied only while the live state it was made from holds.
    let plan_file = infra.path().join("saved.plan");
    let plan_file = plan_file.to_str().unwrap();
    let saved = infra.xtask_gateway(&["plan", "--out", plan_file]);
    assert!(saved.status.success(), "{}", describe(&saved));

    // Out of band: a patch (manager kubectl-patch) and a deletion. Drift exits 2 and names who.
    let deployments = e2e::typed_api(
        &client,
        "apps/v1",
        "Deployment",
        "deployments",
        Some("default"),
    );
    e2e::patch_as(
        &deployments,
        "nginx",
        "kubectl-patch",
        json!({"spec": {"replicas": 3}}),
    )
    .await;
    let services = e2e::typed_api(&client, "v1", "Service", "services", Some("default"));
    services
        .delete("nginx", &Default::default())
        .await
        .expect("deleting the nginx Service");
    let drift = infra.xtask_gateway(&["drift"]);
    assert_eq!(drift.status.code(), Some(2), "{}", describe(&drift));
    let text = stdout(&drift);
    assert!(
        text.contains("field spec.replicas: last written by kubectl-patch (Update"),
        "{text}"
    );
    assert!(
        text.contains("# gateway.object.service/default/nginx will be created"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 1 to add, 1 to change, 0 to destroy."),
        "{text}"
    );
    let drift_json = infra.xtask_gateway(&["drift", "--output", "json"]);
    assert_eq!(
        drift_json.status.code(),
        Some(2),
        "{}",
        describe(&drift_json)
    );
    let json: Value = serde_json::from_slice(&drift_json.stdout).expect("drift JSON");
    let nginx = json["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "gateway.object.deployment/default/nginx")
        .unwrap();
    assert_eq!(nginx["drift"][0]["path"], "spec.replicas");
    assert_eq!(nginx["drift"][0]["manager"], "kubectl-patch");

    let stale = infra.xtask_gateway(&["apply", plan_file]);
    assert_eq!(stale.status.code(), Some(1), "{}", describe(&stale));
    assert!(
        describe(&stale).contains("is stale"),
        "{}",
        describe(&stale)
    );
    assert!(
        describe(&stale).contains("gateway.object.deployment/default/nginx"),
        "{}",
        describe(&stale)
    );
    assert!(
        services.get_opt("nginx").await.unwrap().is_none(),
        "a stale plan applies nothing"
    );

    // Apply repairs both.
    let repaired = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(repaired.status.success(), "{}", describe(&repaired));
    assert_eq!(
        deployments.get("nginx").await.unwrap().data["spec"]["replicas"],
        1
    );
    assert!(services.get_opt("nginx").await.unwrap().is_some());
    assert_eq!(infra.xtask_gateway(&["drift"]).status.code(), Some(0));

    // A field of an object envctl only patches, taken by another manager: a conflict that names
    // the manager; --force-conflicts takes it back.
    e2e::patch_as(
        &namespaces,
        "default",
        "kubectl-label",
        json!({"metadata": {"labels": {"istio-injection": "disabled"}}}),
    )
    .await;
    let conflict = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert_eq!(conflict.status.code(), Some(1), "{}", describe(&conflict));
    assert!(
        describe(&conflict).contains("kubectl-label"),
        "{}",
        describe(&conflict)
    );
    assert!(
        describe(&conflict).contains("--force-conflicts"),
        "{}",
        describe(&conflict)
    );
    let forced = infra.xtask_gateway(&["apply", "--auto-approve", "--force-conflicts"]);
    assert!(forced.status.success(), "{}", describe(&forced));
    let default_ns = namespaces.get("default").await.unwrap();
    assert_eq!(
        default_ns.metadata.labels.as_ref().unwrap()["istio-injection"],
        "enabled"
    );

    // An object removed from the configuration is shown as destroyed, then pruned; its kind
    // appears nowhere else in the configuration, so only the inventory knows to look for it.
    let modules = infra.read("modules.yaml");
    infra.add_to_gateway(
        "extra.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: extra\n  namespace: gateway\n",
    );
    let added = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(added.status.success(), "{}", describe(&added));
    let accounts = e2e::typed_api(
        &client,
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        Some("gateway"),
    );
    assert!(accounts.get_opt("extra").await.unwrap().is_some());
    infra.write("modules.yaml", &modules);
    std::fs::remove_file(infra.path().join("gateway/extra.yaml")).unwrap();
    let plan = infra.xtask_gateway(&["plan"]);
    assert!(
        stdout(&plan).contains("# gateway.object.serviceaccount/gateway/extra will be destroyed"),
        "{}",
        describe(&plan)
    );
    assert!(
        stdout(&plan).contains("Plan: 0 to add, 0 to change, 1 to destroy."),
        "{}",
        describe(&plan)
    );
    let pruned = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(pruned.status.success(), "{}", describe(&pruned));
    assert!(accounts.get_opt("extra").await.unwrap().is_none(), "pruned");

    // Destroy deletes only what it owns: an unowned Deployment beside nginx and namespace
    // `default` stay; envctl's label leaves `default`; namespace `gateway` is gone.
    e2e::apply_yaml(
        &client,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bystander}\nspec:\n  selector: {matchLabels: {app: bystander}}\n  template:\n    metadata: {labels: {app: bystander}}\n    spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}\n",
        Some("default"),
    )
    .await;
    let destroyed = infra.xtask_gateway(&["destroy", "--auto-approve"]);
    assert!(destroyed.status.success(), "{}", describe(&destroyed));
    assert!(
        deployments.get_opt("bystander").await.unwrap().is_some(),
        "an object envctl does not own stays"
    );
    assert!(deployments.get_opt("nginx").await.unwrap().is_none());
    let default_ns = namespaces
        .get("default")
        .await
        .expect("namespace default stays");
    assert!(
        !default_ns
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("istio-injection"),
        "envctl's label is removed"
    );
    assert!(
        namespaces.get_opt("gateway").await.unwrap().is_none(),
        "destroy waits until the namespace is gone"
    );
    assert!(
        crds.get_opt("gateways.gateway.networking.k8s.io")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        owned_versions(&client).await.is_empty(),
        "nothing owned is left"
    );
    deployments
        .delete("bystander", &Default::default())
        .await
        .expect("cleaning up");
}
