//! The fixture charts (`infra/testenv/charts`) keep the upstream charts' interface: they take the
//! values keys this project sets and make the objects it waits on (the seed's CHARTS.md).
//!
//! Each test installs into namespaces of its own and uninstalls at the end: the Istio CRDs and
//! the GatewayClass are cluster-scoped, so only one test here installs `base` and `istiod`.

use std::time::Duration;

use e2e::{DEFAULT_TIMEOUT, TestNamespace};
use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::{ConfigMap, Secret, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{Api, api::DynamicObject, core::GroupVersionKind, discovery::ApiResource};

const HELM_TIMEOUT: Duration = Duration::from_secs(150);
const GATEWAYCLASSES_CRD: &str = "raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.5.1/config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml";

async fn install(release: &str, chart: &str, namespace: &str, values: &str) {
    let values = e2e::values_file(values);
    e2e::helm_ok(
        &[
            "upgrade",
            "--install",
            release,
            e2e::chart(chart).to_str().unwrap(),
            "--namespace",
            namespace,
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "--timeout=120s",
            // Cluster-scoped objects (CRDs, GatewayClass) left by a failed earlier run.
            "--take-ownership",
        ],
        HELM_TIMEOUT,
    )
    .await;
}

async fn uninstall(release: &str, namespace: &str) {
    e2e::helm_ok(
        &[
            "uninstall",
            release,
            "--namespace",
            namespace,
            "--wait",
            "--timeout=60s",
        ],
        HELM_TIMEOUT,
    )
    .await;
}

fn env_of(deployment: &Deployment) -> Vec<(String, Option<String>)> {
    let spec = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

#[tokio::test]
async fn istio_stand_ins_install_the_real_crds_the_cni_daemonset_and_the_merged_mesh_config() {
    let client = e2e::client().await;
    // istiod's stand-in renders GatewayClass `istio` when the Gateway API is there.
    let crd = std::fs::read_to_string(e2e::mirror_file(GATEWAYCLASSES_CRD)).unwrap();
    e2e::apply_yaml(&client, &crd, None).await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    e2e::wait_for(
        &crds,
        "gatewayclasses.gateway.networking.k8s.io",
        DEFAULT_TIMEOUT,
        e2e::is_crd_established,
    )
    .await;

    let istio = TestNamespace::create(&client, "istio-system").await;
    let cni = TestNamespace::create(&client, "kube-system").await;

    install("istio-base", "base", istio.name(), "{}").await;
    let authz = "authorizationpolicies.security.istio.io";
    e2e::wait_for(&crds, authz, DEFAULT_TIMEOUT, e2e::is_crd_established).await;

    install(
        "istio-cni",
        "cni",
        cni.name(),
        "cni:\n  chained: true\n  provider: default\n",
    )
    .await;
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), cni.name());
    e2e::wait_for(&daemonsets, "istio-cni-node", DEFAULT_TIMEOUT, |ds| {
        ds.status.as_ref().is_some_and(|s| {
            s.desired_number_scheduled >= 1 && s.number_ready == s.desired_number_scheduled
        })
    })
    .await;

    install(
        "istiod",
        "istiod",
        istio.name(),
        r#"
meshConfig:
  defaultConfig:
    gatewayTopology: {numTrustedProxies: 1}
  extensionProviders:
    - name: oauth2-proxy
      envoyExtAuthzHttp:
        service: oauth2-proxy.sso.svc.cluster.local
        port: 80
        includeRequestHeadersInCheck: [authorization, cookie]
pilot:
  cni: {enabled: true}
  env: {ENABLE_NATIVE_SIDECARS: "true"}
global:
  proxy:
    resources:
      requests: {cpu: 10m, memory: 40Mi}
"#,
    )
    .await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), istio.name());
    let istiod = e2e::wait_for(
        &deployments,
        "istiod",
        DEFAULT_TIMEOUT,
        e2e::is_deployment_available,
    )
    .await;
    let env = env_of(&istiod);
    assert!(
        env.contains(&("ENABLE_NATIVE_SIDECARS".into(), Some("true".into()))),
        "{env:?}"
    );
    Api::<Service>::namespaced(client.clone(), istio.name())
        .get("istiod")
        .await
        .unwrap();

    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), istio.name());
    let mesh_text = configmaps.get("istio").await.unwrap().data.unwrap()["mesh"].clone();
    let mesh: serde_json::Value = serde_saphyr::from_str(&mesh_text).unwrap();
    assert_eq!(
        mesh["extensionProviders"][0]["name"], "oauth2-proxy",
        "{mesh_text}"
    );
    assert_eq!(
        mesh["rootNamespace"],
        istio.name(),
        "defaults stay: {mesh_text}"
    );
    assert_eq!(
        mesh["defaultConfig"]["gatewayTopology"]["numTrustedProxies"], 1,
        "{mesh_text}"
    );
    assert!(
        mesh["defaultConfig"]["discoveryAddress"].is_string(),
        "merged, not replaced: {mesh_text}"
    );
    let injector = configmaps
        .get("istio-sidecar-injector")
        .await
        .unwrap()
        .data
        .unwrap()["values"]
        .clone();
    assert!(
        injector.contains("\"memory\":\"40Mi\""),
        "global.proxy.resources: {injector}"
    );

    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GatewayClass");
    let classes = Api::<DynamicObject>::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let class = classes.get("istio").await.unwrap();
    assert_eq!(
        class.data["spec"]["controllerName"],
        "istio.io/gateway-controller"
    );

    uninstall("istiod", istio.name()).await;
    uninstall("istio-cni", cni.name()).await;
    uninstall("istio-base", istio.name()).await;
    assert!(
        classes.get_opt("istio").await.unwrap().is_none(),
        "GatewayClass removed with istiod"
    );
    cni.delete().await;
    istio.delete().await;
    let gatewayclasses = "gatewayclasses.gateway.networking.k8s.io";
    e2e::delete_and_wait(&crds, gatewayclasses, DEFAULT_TIMEOUT).await;
}

#[tokio::test]
async fn sso_stand_ins_take_the_values_the_project_sets() {
    let client = e2e::client().await;
    let sso = TestNamespace::create(&client, "sso").await;
    e2e::apply_yaml(
        &client,
        r#"
apiVersion: v1
kind: Secret
metadata: {name: oauth2-proxy-client}
stringData: {client-id: oauth2-proxy, client-secret: s3cr3t, cookie-secret: 0123456789abcdef}
"#,
        Some(sso.name()),
    )
    .await;

    install(
        "dex",
        "dex",
        sso.name(),
        r#"
config:
  issuer: http://dex.example.com/dex
  storage: {type: memory}
  staticClients:
    - id: oauth2-proxy
      secretEnv: OAUTH2_PROXY_CLIENT_SECRET
envVars:
  - name: OAUTH2_PROXY_CLIENT_SECRET
    valueFrom:
      secretKeyRef: {name: oauth2-proxy-client, key: client-secret}
service:
  ports:
    http: {port: 80}
hostAliases:
  - ip: 127.0.0.1
    hostnames: [dex.example.com]
"#,
    )
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), sso.name());
    let dex = e2e::wait_for(
        &deployments,
        "dex",
        DEFAULT_TIMEOUT,
        e2e::is_deployment_available,
    )
    .await;
    let pod = dex.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.host_aliases.as_ref().unwrap()[0].ip, "127.0.0.1");
    let secret = Api::<Secret>::namespaced(client.clone(), sso.name())
        .get("dex")
        .await
        .unwrap();
    let config = String::from_utf8(secret.data.unwrap()["config.yaml"].0.clone()).unwrap();
    assert!(
        config.contains("secretEnv: OAUTH2_PROXY_CLIENT_SECRET"),
        "{config}"
    );
    let services = Api::<Service>::namespaced(client.clone(), sso.name());
    let ports = services
        .get("dex")
        .await
        .unwrap()
        .spec
        .unwrap()
        .ports
        .unwrap();
    assert_eq!(
        (ports[0].port, ports[0].target_port.clone()),
        (80, Some(IntOrString::String("http".into())))
    );
    assert_eq!(ports[1].port, 5558);

    install(
        "oauth2-proxy",
        "oauth2-proxy",
        sso.name(),
        r#"
config:
  existingSecret: oauth2-proxy-client
  requiredSecretKeys: [client-id, client-secret, cookie-secret]
  configFile: |
    email_domains = [ "*" ]
    upstreams = [ "static://200" ]
    cookie_secure = false
hostAliases:
  - ip: 10.96.0.10
    hostnames: [dex.example.com]
extraArgs:
  whitelist-domain: .example.com
extraEnv:
  - name: OAUTH2_PROXY_COOKIE_DOMAINS
    value: .example.com
"#,
    )
    .await;
    let proxy = e2e::wait_for(
        &deployments,
        "oauth2-proxy",
        DEFAULT_TIMEOUT,
        e2e::is_deployment_available,
    )
    .await;
    let pod = proxy.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--whitelist-domain=.example.com".to_string()),
        "{args:?}"
    );
    let env = env_of(&proxy);
    assert!(
        env.iter()
            .any(|(name, _)| name == "OAUTH2_PROXY_CLIENT_SECRET"),
        "{env:?}"
    );
    assert!(
        env.contains(&(
            "OAUTH2_PROXY_COOKIE_DOMAINS".into(),
            Some(".example.com".into())
        )),
        "{env:?}"
    );
    assert_eq!(
        pod.host_aliases.as_ref().unwrap()[0].hostnames,
        Some(vec!["dex.example.com".to_string()])
    );
    let ports = services
        .get("oauth2-proxy")
        .await
        .unwrap()
        .spec
        .unwrap()
        .ports
        .unwrap();
    assert_eq!(
        (ports[0].port, ports[0].target_port.clone()),
        (80, Some(IntOrString::String("http".into())))
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 4180);
    let cfg = Api::<ConfigMap>::namespaced(client.clone(), sso.name())
        .get("oauth2-proxy")
        .await
        .unwrap();
    assert!(cfg.data.unwrap()["oauth2_proxy.cfg"].contains("static://200"));

    uninstall("oauth2-proxy", sso.name()).await;
    uninstall("dex", sso.name()).await;
    sso.delete().await;
}
