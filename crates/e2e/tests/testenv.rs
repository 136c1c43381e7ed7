//! The testenv itself: what every other integration test relies on.

use std::time::Duration;

use e2e::{DEFAULT_TIMEOUT, TestNamespace};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace, Pod, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, api::ListParams};
use serde_json::json;

const HTTPROUTES_CRD: &str = "raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.5.1/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml";

#[tokio::test]
async fn a_deployment_becomes_available_on_a_kwok_node() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "deploy").await;
    e2e::apply_yaml(
        &client,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
spec:
  replicas: 2
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
        - name: nginx
          image: nginx:1.29
          ports: [{containerPort: 80}]
"#,
        Some(ns.name()),
    )
    .await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), ns.name());
    e2e::wait_for(
        &deployments,
        "nginx",
        DEFAULT_TIMEOUT,
        e2e::is_deployment_available,
    )
    .await;

    let pods = Api::<Pod>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default().labels("app=nginx"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2, "{:#?}", pods.items);
    for pod in &pods.items {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        assert_eq!(node, Some("kwok-node-0"), "pod scheduled on the kwok node");
        let status = pod.status.as_ref().expect("pod status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "pod Ready: {status:#?}");
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_gateway_api_crd_is_established_and_validates_its_objects() {
    let client = e2e::client().await;
    let crd_yaml = std::fs::read_to_string(e2e::mirror_file(HTTPROUTES_CRD)).unwrap();
    // ~430 KB: above the client-side-apply annotation limit, fine for server-side apply.
    e2e::apply_yaml(&client, &crd_yaml, None).await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    e2e::wait_for(
        &crds,
        "httproutes.gateway.networking.k8s.io",
        DEFAULT_TIMEOUT,
        e2e::is_crd_established,
    )
    .await;

    let ns = TestNamespace::create(&client, "crd").await;
    let route = |path_type: &str| {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": { "name": "nginx" },
            "spec": {
                "parentRefs": [{ "name": "istio-gateway", "namespace": "gateway" }],
                "hostnames": ["nginx.example.com"],
                "rules": [{
                    "matches": [{ "path": { "type": path_type, "value": "/" } }],
                    "backendRefs": [{ "name": "nginx", "port": 80 }],
                }],
            },
        })
    };
    // A new CRD's API can take a moment to be served after Established.
    let accepted = e2e::wait_until(
        "the HTTPRoute API to accept objects",
        DEFAULT_TIMEOUT,
        || async {
            e2e::try_apply(&client, &route("PathPrefix"), Some(ns.name()))
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(accepted.metadata.namespace.as_deref(), Some(ns.name()));

    let rejected = e2e::try_apply(&client, &route("NotAPathType"), Some(ns.name())).await;
    match rejected {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("NotAPathType"),
                "{}",
                status.message
            );
        }
        other => panic!("an invalid HTTPRoute must be rejected by server validation: {other:?}"),
    }
    ns.delete().await;
    e2e::delete_and_wait(
        &crds,
        "httproutes.gateway.networking.k8s.io",
        DEFAULT_TIMEOUT,
    )
    .await;
}

#[tokio::test]
async fn a_deleted_namespace_disappears() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "delete").await;
    let name = ns.name().to_string();
    // Something for the namespace controller to clean up before the finalizer goes.
    e2e::apply_yaml(
        &client,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: data}\ndata: {k: v}\n",
        Some(&name),
    )
    .await;
    ns.delete().await;
    let namespaces = Api::<Namespace>::all(client.clone());
    assert!(namespaces.get_opt(&name).await.unwrap().is_none());
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &name);
    assert!(configmaps.get_opt("data").await.unwrap().is_none());
}

#[tokio::test]
async fn helm_installs_the_real_dex_chart() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "helm").await;
    let chart = e2e::chart("dex");
    let version = e2e::helm_ok(&["version", "--short"], Duration::from_secs(30)).await;
    assert!(version.starts_with("v3."), "the pinned helm v3: {version}");

    e2e::helm_ok(
        &[
            "install",
            "dex",
            chart.to_str().unwrap(),
            "--namespace",
            ns.name(),
            "--set",
            "service.ports.http.port=80",
            "--set",
            "config.issuer=http://dex.example.com/dex",
            "--wait",
            "--timeout=90s",
        ],
        Duration::from_secs(120),
    )
    .await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), ns.name());
    let dex = e2e::wait_for(
        &deployments,
        "dex",
        DEFAULT_TIMEOUT,
        e2e::is_deployment_available,
    )
    .await;
    let annotations = dex
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap_or_default();
    assert!(
        annotations.contains_key("checksum/config"),
        "{annotations:?}"
    );

    let service = Api::<Service>::namespaced(client.clone(), ns.name())
        .get("dex")
        .await
        .unwrap();
    let ports = service.spec.unwrap().ports.unwrap_or_default();
    let http = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .expect("http port");
    assert_eq!(http.port, 80);
    assert_eq!(
        http.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
    );
    assert!(
        ports.iter().any(|p| p.port == 5558),
        "telemetry port: {ports:?}"
    );

    e2e::helm_ok(
        &[
            "uninstall",
            "dex",
            "--namespace",
            ns.name(),
            "--wait",
            "--timeout=60s",
        ],
        Duration::from_secs(90),
    )
    .await;
    ns.delete().await;
}
