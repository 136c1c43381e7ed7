//! The whole environment (`--env kwok`: the five real charts, from the mirror) through the
//! `cargo xtask` CLI, against the testenv: apply from nothing, no changes after, the objects the
//! real charts make (RBAC, webhooks, CRDs kept on uninstall, no metrics port, no redis-ha),
//! Helm releases that upgrade only when something differs (values, or objects changed behind
//! Helm's back), generated secrets that stay the same and never show, destroy that leaves
//! nothing but what the charts keep, and says so.
//!
//! One scenario, in order; this file is its own test binary, so nothing else runs beside it.

use std::collections::BTreeMap;

use base64::Engine as _;
use e2e::{InfraCopy, describe, xtask};
use serde_json::{Value, json};

struct Session<'a> {
    infra: &'a InfraCopy,
    /// Everything every command printed, to search for secrets at the end.
    transcript: String,
}

impl Session<'_> {
    fn run(&mut self, args: &[&str]) -> std::process::Output {
        let infra_dir = self.infra.path().display().to_string();
        let mut all = args.to_vec();
        all.extend(["--env", "kwok", "--infra", &infra_dir]);
        let output = xtask(&all);
        self.transcript.push_str(&describe(&output));
        output
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "{:?}: {}", args, describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn helm_revision(release: &str, namespace: &str) -> Option<u64> {
    let out = std::process::Command::new(e2e::helm_binary())
        .args([
            "list",
            "-n",
            namespace,
            "-o",
            "json",
            "--filter",
            &format!("^{release}$"),
        ])
        .output()
        .expect("running helm");
    let list: Value = serde_json::from_slice(&out.stdout).expect("helm list JSON");
    list.as_array()?
        .first()?
        .get("revision")?
        .as_str()?
        .parse()
        .ok()
}

/// The values of the generated Secret: `(key, value)` of every key.
async fn secret_values(client: &kube::Client) -> BTreeMap<String, String> {
    let secrets = e2e::typed_api(client, "v1", "Secret", "secrets", Some("sso"));
    let secret = secrets
        .get("oauth2-proxy")
        .await
        .expect("the generated secret exists");
    secret.data["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), String::from_utf8(raw).unwrap())
        })
        .collect()
}

async fn owned_objects(client: &kube::Client) -> Vec<String> {
    e2e::objects_matching(client, "app.kubernetes.io/managed-by=envctl")
        .await
        .into_keys()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_environment_applies_converges_keeps_its_secrets_and_destroys_cleanly() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();
    let mut s = Session {
        infra: &infra,
        transcript: String::new(),
    };

    // From nothing to the whole environment, then nothing to do.
    let applied = s.ok(&["apply", "--auto-approve"]);
    // 27 objects, releases and secrets to create; namespace `default` (label) and the cluster
    // record to update. (Namespace istio-system counts as a change where it exists already.)
    let summary = applied
        .lines()
        .find(|l| l.starts_with("Apply complete!"))
        .expect("a summary line");
    let counts: Vec<usize> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(counts.len(), 3, "{summary}");
    assert_eq!((counts[0] + counts[1], counts[2]), (29, 0), "{summary}");
    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("No changes."));

    real_chart_objects(&client).await;

    // Cross-module values landed: Dex's ClusterIP in OAuth2 Proxy's host alias, the provider in
    // the mesh config.
    let dex_ip = e2e::typed_api(&client, "v1", "Service", "services", Some("sso"))
        .get("dex")
        .await
        .unwrap()
        .data["spec"]["clusterIP"]
        .clone();
    let values = std::process::Command::new(e2e::helm_binary())
        .args(["get", "values", "oauth2-proxy", "-n", "sso", "-o", "json"])
        .output()
        .unwrap();
    let values: Value = serde_json::from_slice(&values.stdout).unwrap();
    assert_eq!(values["hostAliases"][0]["ip"], dex_ip);
    assert_eq!(values["config"]["existingSecret"], "oauth2-proxy");
    let mesh = e2e::typed_api(
        &client,
        "v1",
        "ConfigMap",
        "configmaps",
        Some("istio-system"),
    )
    .get("istio")
    .await
    .unwrap();
    assert!(
        mesh.data["data"]["mesh"]
            .as_str()
            .unwrap()
            .contains("name: oauth2-proxy")
    );

    // A second apply: no change, no new Helm revision, the same secrets.
    let secrets = secret_values(&client).await;
    assert_eq!(
        secrets.keys().collect::<Vec<_>>(),
        ["client-id", "client-secret", "cookie-secret"]
    );
    assert_eq!(
        secrets["cookie-secret"].len(),
        44,
        "32 bytes, URL-safe base64"
    );
    assert_eq!(helm_revision("dex", "sso"), Some(1));
    let again = s.ok(&["apply", "--auto-approve"]);
    assert!(again.contains("No changes."), "{again}");
    assert_eq!(
        helm_revision("dex", "sso"),
        Some(1),
        "no upgrade without a difference"
    );
    assert_eq!(
        secret_values(&client).await,
        secrets,
        "generated once, reused"
    );

    // A values change upgrades the release.
    let dex_values = infra.read("sso/dex.values.yaml");
    assert!(dex_values.contains("idTokens: 1h"));
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 2h"),
    );
    let plan = s.ok(&["plan"]);
    assert!(
        plan.contains("# sso.helm_release.dex will be updated in-place"),
        "{plan}"
    );
    assert!(
        plan.contains("-       idTokens: 1h") && plan.contains("+       idTokens: 2h"),
        "{plan}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_eq!(helm_revision("dex", "sso"), Some(2));

    // A chart object edited behind Helm's back: drift names the manager; apply repairs.
    let deployments = e2e::typed_api(&client, "apps/v1", "Deployment", "deployments", Some("sso"));
    e2e::patch_as(
        &deployments,
        "dex",
        "kubectl-edit",
        json!({"spec": {"replicas": 4}}),
    )
    .await;
    let drift = s.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(2), "{}", describe(&drift));
    let text = String::from_utf8_lossy(&drift.stdout).into_owned();
    assert!(
        text.contains("# sso.helm_release.dex will be updated in-place"),
        "{text}"
    );
    assert!(
        text.contains("field deployment/sso/dex spec.replicas: last written by kubectl-edit"),
        "{text}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_eq!(
        deployments.get("dex").await.unwrap().data["spec"]["replicas"],
        1
    );
    assert_eq!(helm_revision("dex", "sso"), Some(3));

    // A chart object deleted out of band: shown, and recreated.
    let services = e2e::typed_api(&client, "v1", "Service", "services", Some("sso"));
    services
        .delete("oauth2-proxy", &Default::default())
        .await
        .unwrap();
    let drift = s.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(2), "{}", describe(&drift));
    assert!(
        String::from_utf8_lossy(&drift.stdout)
            .contains("service/sso/oauth2-proxy was deleted out of band"),
        "{}",
        describe(&drift)
    );
    s.ok(&["apply", "--auto-approve"]);
    assert!(services.get_opt("oauth2-proxy").await.unwrap().is_some());
    assert_eq!(s.run(&["drift"]).status.code(), Some(0));
    assert_eq!(
        secret_values(&client).await,
        secrets,
        "still the same secrets"
    );

    // Dex's Service deleted: Dex's release repairs it with a new ClusterIP, which OAuth2 Proxy's
    // host alias then follows (an output known after apply, re-read during the same apply).
    services.delete("dex", &Default::default()).await.unwrap();
    let plan = s.ok(&["plan"]);
    assert!(
        plan.contains("service/sso/dex was deleted out of band"),
        "{plan}"
    );
    assert!(
        plan.contains("# sso.helm_release.oauth2-proxy will be updated in-place"),
        "{plan}"
    );
    assert!(
        plan.contains("(known after apply <- sso.dex_cluster_ip)"),
        "{plan}"
    );
    s.ok(&["apply", "--auto-approve"]);
    let new_ip = services.get("dex").await.unwrap().data["spec"]["clusterIP"].clone();
    let values = std::process::Command::new(e2e::helm_binary())
        .args(["get", "values", "oauth2-proxy", "-n", "sso", "-o", "json"])
        .output()
        .unwrap();
    let values: Value = serde_json::from_slice(&values.stdout).unwrap();
    assert_eq!(
        values["hostAliases"][0]["ip"], new_ip,
        "the host alias follows Dex's new ClusterIP"
    );
    assert_eq!(s.run(&["drift"]).status.code(), Some(0));

    // Nothing any command printed (text, JSON, progress, errors) holds a secret.
    s.ok(&["plan", "--output", "json"]);
    s.ok(&["render"]);
    let destroyed = s.ok(&["destroy", "--auto-approve"]);
    assert!(destroyed.contains("Destroy complete!"), "{destroyed}");
    // The plan said which objects helm uninstall keeps, and they are there: Istio's CRDs.
    assert!(
        destroyed
            .contains("kept by helm uninstall, as the chart asks (helm.sh/resource-policy: keep)")
            && destroyed
                .contains("customresourcedefinition/authorizationpolicies.security.istio.io"),
        "{destroyed}"
    );
    let crds = e2e::typed_api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    assert!(
        crds.get_opt("authorizationpolicies.security.istio.io")
            .await
            .unwrap()
            .is_some(),
        "the CRD the plan named as kept is kept"
    );
    for (key, value) in &secrets {
        if key == "client-id" {
            continue;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        assert!(
            !s.transcript.contains(value.as_str()),
            "{key} appears in the output"
        );
        assert!(
            !s.transcript.contains(&encoded),
            "{key} (base64) appears in the output"
        );
    }

    // Destroy left nothing this project owns, and no release.
    assert_eq!(owned_objects(&client).await, Vec::<String>::new());
    for (release, ns) in [
        ("istio-base", "istio-system"),
        ("istio-cni", "kube-system"),
        ("istiod", "istio-system"),
        ("dex", "sso"),
        ("oauth2-proxy", "sso"),
    ] {
        assert_eq!(helm_revision(release, ns), None, "{release} is uninstalled");
    }
}

/// What the real charts made under `--env kwok`: the behaviour the old stand-ins skipped.
async fn real_chart_objects(client: &kube::Client) {
    let get = |api_version: &'static str,
               kind: &'static str,
               plural: &'static str,
               ns: Option<&'static str>| {
        e2e::typed_api(client, api_version, kind, plural, ns)
    };
    // base: the Istio CRDs, each marked to survive helm uninstall.
    let crd = get(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    )
    .get("authorizationpolicies.security.istio.io")
    .await
    .unwrap();
    assert_eq!(
        crd.metadata.annotations.as_ref().unwrap()["helm.sh/resource-policy"],
        "keep"
    );
    // base and istiod: both validation webhooks exist, fail-open (the kwok overlay's
    // base.validationFailurePolicy, since no istiod answers them here).
    let validating = get(
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        None,
    );
    for name in ["istiod-default-validator", "istio-validator-istio-system"] {
        let hook = validating
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let webhook = &hook.data["webhooks"][0];
        assert_eq!(webhook["failurePolicy"], "Ignore", "{name}");
        assert_eq!(
            webhook["clientConfig"]["service"]["name"], "istiod",
            "{name}"
        );
    }
    // istiod: no sidecar injector under kwok (global.operatorManageWebhooks in the overlay).
    let mutating = get(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        None,
    );
    assert!(
        mutating
            .get_opt("istio-sidecar-injector")
            .await
            .unwrap()
            .is_none()
    );
    // istiod's and istio-cni's RBAC, and istiod's HPA, as the charts make them.
    let cluster_roles = get(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        None,
    );
    for name in [
        "istiod-clusterrole-istio-system",
        "istiod-gateway-controller-istio-system",
        "istio-reader-clusterrole-istio-system",
        "istio-cni",
    ] {
        assert!(
            cluster_roles.get_opt(name).await.unwrap().is_some(),
            "ClusterRole {name}"
        );
    }
    let bindings = get(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        None,
    );
    let binding = bindings
        .get("istiod-clusterrole-istio-system")
        .await
        .unwrap();
    assert_eq!(binding.data["subjects"][0]["name"], "istiod");
    assert!(
        get(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            Some("istio-system")
        )
        .get_opt("istiod")
        .await
        .unwrap()
        .is_some()
    );
    // istiod with the chart's current keys: ENABLE_NATIVE_SIDECARS (`env`) reached the pod,
    // and the CNI plugin flag (`cni.enabled`) the injector's values.
    let istiod = get("apps/v1", "Deployment", "deployments", Some("istio-system"))
        .get("istiod")
        .await
        .unwrap();
    let env = istiod.data["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        env.iter()
            .any(|e| e["name"] == "ENABLE_NATIVE_SIDECARS" && e["value"] == "true"),
        "{env:?}"
    );
    let injector = get("v1", "ConfigMap", "configmaps", Some("istio-system"))
        .get("istio-sidecar-injector")
        .await
        .unwrap();
    let injector_values: serde_json::Value =
        serde_json::from_str(injector.data["data"]["values"].as_str().unwrap()).unwrap();
    assert_eq!(injector_values["pilot"]["cni"]["enabled"], true);
    // istio-cni: chained onto the cluster's CNI (top-level `chained`).
    let cni = get("v1", "ConfigMap", "configmaps", Some("kube-system"))
        .get("istio-cni-config")
        .await
        .unwrap();
    assert_eq!(cni.data["data"]["CHAINED_CNI_PLUGIN"], "true");
    // OAuth2 Proxy: the Service has no metrics port, the pod serves none, no redis-ha.
    let service = get("v1", "Service", "services", Some("sso"))
        .get("oauth2-proxy")
        .await
        .unwrap();
    let ports: Vec<&str> = service.data["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(ports, ["http"], "no metrics port on the Service");
    let proxy = get("apps/v1", "Deployment", "deployments", Some("sso"))
        .get("oauth2-proxy")
        .await
        .unwrap();
    let container = &proxy.data["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        !args.iter().any(|a| a.starts_with("--metrics-address")),
        "{args:?}"
    );
    assert!(
        args.contains(&"--config=/etc/oauth2_proxy/oauth2_proxy.cfg"),
        "{args:?}"
    );
    for kind in [("apps/v1", "StatefulSet", "statefulsets")] {
        let list = get(kind.0, kind.1, kind.2, Some("sso"))
            .list(&Default::default())
            .await
            .unwrap();
        assert!(list.items.is_empty(), "no redis-ha {}", kind.1);
    }
    let config = get("v1", "ConfigMap", "configmaps", Some("sso"))
        .get("oauth2-proxy")
        .await
        .unwrap();
    let cfg = config.data["data"]["oauth2_proxy.cfg"].as_str().unwrap();
    for line in [
        "cookie_samesite = \"lax\"",
        "code_challenge_method = \"S256\"",
        "redirect_url = \"http://nginx.example.com/oauth2/callback\"",
    ] {
        assert!(cfg.contains(line), "{line} in {cfg}");
    }
}
