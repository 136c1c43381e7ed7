//! A small environment shaped like the walkthrough, for tests.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::address::{Address, ResourceKind};
use crate::resource::{
    ChartSource, ClusterProvider, ClusterSpec, Dependency, Encoding, GeneratedSecretSpec,
    Generator, HelmReleaseSpec, Module, Output, Ownership, Resource, ResourceSpec,
};
use crate::values::OutputRef;

pub fn addr(text: &str) -> Address {
    text.parse().unwrap()
}

pub fn object(module: &str, manifest: Value) -> Resource {
    Resource::object(module, manifest, Ownership::Owned).unwrap()
}

pub fn crd(plural: &str, group: &str, kind: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "names": {"kind": kind, "plural": plural}}})
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn helm(module: &str, release: &str, namespace: &str, values: Value) -> Resource {
    Resource::new(
        Address::new(module, ResourceKind::HelmRelease, release).unwrap(),
        ResourceSpec::HelmRelease(HelmReleaseSpec {
            release: release.into(),
            namespace: namespace.into(),
            create_namespace: false,
            chart: ChartSource {
                repo: Some(format!("https://charts.example.com/{release}")),
                chart: release.into(),
                version: "1.0.0".into(),
                path: None,
                sha256: None,
            },
            values,
            sensitive_paths: Vec::new(),
        }),
    )
}

pub fn cluster_module() -> Module {
    let address = addr("cluster.cluster.istio");
    Module::new("cluster")
        .with_resource(Resource::new(
            address.clone(),
            ResourceSpec::Cluster(ClusterSpec {
                name: "istio".into(),
                provider: ClusterProvider::Kind {
                    node_image: "kindest/node:v1.36.1".into(),
                    config: json!({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}),
                },
                context: "kind-istio".into(),
            }),
        ))
        .with_output(Output::known(
            OutputRef::new("cluster", "context"),
            address,
            json!("kind-istio"),
        ))
}

pub fn gateway_module() -> Module {
    let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "istio-gateway", "namespace": "gateway"},
        "spec": {"gatewayClassName": "${output.mesh.gateway_class}"}});
    let default_ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "default", "labels": {"istio-injection": "${output.mesh.injection_ready}"}}});
    let nginx = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default"}, "spec": {"replicas": 2}});
    Module::new("gateway")
        .with_resource(object(
            "gateway",
            crd("gateways", "gateway.networking.k8s.io", "Gateway"),
        ))
        .with_resource(object(
            "gateway",
            crd("httproutes", "gateway.networking.k8s.io", "HTTPRoute"),
        ))
        .with_resource(object("gateway", namespace("gateway")))
        .with_resource(object("gateway", gateway))
        .with_resource(Resource::object("gateway", default_ns, Ownership::FieldsOnly).unwrap())
        .with_resource(object("gateway", nginx))
        .with_output(Output::known(
            OutputRef::new("gateway", "gateway_api_crds"),
            addr("gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io"),
            json!("v1.5.1"),
        ))
        .with_output(Output::known(
            OutputRef::new("gateway", "gateway_name"),
            addr("gateway.object.gateway/gateway/istio-gateway"),
            json!("istio-gateway"),
        ))
        .with_output(Output::known(
            OutputRef::new("gateway", "gateway_namespace"),
            addr("gateway.object.gateway/gateway/istio-gateway"),
            json!("gateway"),
        ))
}

pub fn mesh_module() -> Module {
    let istiod = addr("mesh.helm_release.istiod");
    Module::new("mesh")
        .with_resource(
            helm("mesh", "istiod", "istio-system", json!({"meshConfig": {}})).depends_on(
                Dependency::Output(OutputRef::new("gateway", "gateway_api_crds")),
            ),
        )
        .with_output(Output::known(
            OutputRef::new("mesh", "gateway_class"),
            istiod.clone(),
            json!("istio"),
        ))
        .with_output(Output::known(
            OutputRef::new("mesh", "injection_ready"),
            istiod,
            json!("enabled"),
        ))
}

pub fn sso_module() -> Module {
    let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "dex", "namespace": "sso"},
        "spec": {"parentRefs": [{"name": "${output.gateway.gateway_name}",
                                 "namespace": "${output.gateway.gateway_namespace}"}]}});
    let mut dex = helm(
        "sso",
        "dex",
        "sso",
        json!({"config": {"staticClients": [
        {"id": "oauth2-proxy", "secret": "dex-client-secret-value"}]}}),
    );
    if let ResourceSpec::HelmRelease(spec) = &mut dex.spec {
        spec.sensitive_paths = vec!["config.staticClients[*].secret".into()];
    }
    Module::new("sso")
        .with_resource(object("sso", namespace("sso")))
        .with_resource(dex)
        .with_resource(Resource::new(
            addr("sso.generated_secret.oauth2-proxy"),
            ResourceSpec::GeneratedSecret(GeneratedSecretSpec {
                name: "oauth2-proxy".into(),
                namespace: "sso".into(),
                plain: BTreeMap::from([("client-id".into(), "oauth2-proxy".into())]),
                generated: BTreeMap::from([(
                    "cookie-secret".into(),
                    Generator { bytes: 32, encoding: Encoding::Base64Url },
                )]),
            }),
        ))
        .with_resource(helm("sso", "oauth2-proxy", "sso", json!({
            "hostAliases": [{"ip": "${output.sso.dex_cluster_ip}", "hostnames": ["dex.example.com"]}],
            "config": {"existingSecret": "${secret.sso.oauth2-proxy}"}})))
        .with_resource(object("sso", route))
        .with_output(Output::after_apply(
            OutputRef::new("sso", "dex_cluster_ip"),
            addr("sso.helm_release.dex"),
            crate::resource::LiveField {
                api_version: "v1".into(),
                kind: "Service".into(),
                namespace: Some("sso".into()),
                name: "dex".into(),
                pointer: "/spec/clusterIP".into(),
            },
        ))
}

pub fn walkthrough() -> Vec<Module> {
    vec![
        cluster_module(),
        gateway_module(),
        mesh_module(),
        sso_module(),
    ]
}
