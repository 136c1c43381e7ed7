//! Module `cluster`: the Kubernetes cluster itself.
//!
//! Providers: `kind` (a local kind cluster with the gateway's nodePort mapped to a host port,
//! as in the walkthrough), `kwok` (the test control plane of `cargo xtask testenv`) and
//! `existing` (any kubeconfig context; never created or deleted).

use config::{ConfigError, Environment, Provider};
use engine::{
    Address, ClusterProvider, ClusterSpec, Module, Output, OutputRef, Resource, ResourceKind,
    ResourceSpec,
};
use serde_json::{Value, json};

/// This module's name: the first part of its addresses.
pub const NAME: &str = "cluster";

/// The module, as xtask's registry lists it.
pub static MODULE: Cluster = Cluster;

/// Module `cluster`: the Kubernetes cluster itself.
pub struct Cluster;

/// `plan`, `apply` and `destroy` of this module's part (`--module cluster`).
impl live::session::ModuleCommands for Cluster {
    fn module_name(&self) -> &'static str {
        NAME
    }
}

impl config::ModuleDef for Cluster {
    fn name(&self) -> &'static str {
        NAME
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["context"]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        declare(env)
    }
}

/// What the cluster module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let cluster = &env.settings.cluster;
    let (provider, context) = match cluster.provider {
        Provider::Kind => (
            ClusterProvider::Kind {
                node_image: cluster.kind.node_image.clone(),
                config: kind_config(env),
            },
            format!("kind-{}", cluster.name),
        ),
        Provider::Kwok => (ClusterProvider::Kwok, format!("kwok-{}", cluster.name)),
        Provider::Existing => {
            let context = cluster.context.clone().unwrap_or_default();
            (
                ClusterProvider::Existing {
                    context: context.clone(),
                },
                context,
            )
        }
    };
    let address = Address::new(NAME, ResourceKind::Cluster, &cluster.name).map_err(|e| {
        env.error_at(
            &env.infra_dir.join("environment.yaml"),
            "cluster.name",
            e.to_string(),
        )
    })?;
    let spec = ClusterSpec {
        name: cluster.name.clone(),
        provider,
        context: context.clone(),
    };
    Ok(Module::new(NAME)
        .with_output(Output::known(
            OutputRef::new(NAME, "context"),
            address.clone(),
            Value::String(context),
        ))
        .with_resource(Resource::new(address, ResourceSpec::Cluster(spec))))
}

/// The kind `Cluster` configuration: one control-plane node of the pinned image, with the
/// gateway's nodePort published on the host.
pub fn kind_config(env: &Environment) -> Value {
    let cluster = &env.settings.cluster;
    json!({
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": cluster.name,
        "nodes": [{
            "role": "control-plane",
            "image": cluster.kind.node_image,
            "extraPortMappings": [{
                "containerPort": cluster.kind.node_port,
                "hostPort": cluster.kind.host_port,
                "listenAddress": cluster.kind.listen_address,
                "protocol": "TCP",
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infra() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
    }

    #[test]
    fn kind_cluster_maps_the_gateway_node_port_to_the_host() {
        let env = config::load(&infra(), None, &xtask::REGISTRY).expect("infra/ loads");
        let module = declare(&env).unwrap();
        assert_eq!(module.resources.len(), 1);
        let ResourceSpec::Cluster(spec) = &module.resources[0].spec else {
            panic!("a cluster")
        };
        assert_eq!(spec.context, "kind-istio");
        let ClusterProvider::Kind { config, node_image } = &spec.provider else {
            panic!("kind")
        };
        assert_eq!(node_image, "kindest/node:v1.36.1");
        let mapping = &config["nodes"][0]["extraPortMappings"][0];
        assert_eq!(mapping["containerPort"], 30080);
        assert_eq!(mapping["hostPort"], 80);
    }

    /// The shipped kind config (moved here from `live::provider`, whose unused builder of the
    /// same document is gone): exactly one control-plane node of the pinned image with the
    /// gateway's nodePort on the host, written as YAML that reads back as the same document.
    #[test]
    fn kind_config_publishes_the_gateway_node_port_on_the_host() {
        let env = config::load(&infra(), None, &xtask::REGISTRY).expect("infra/ loads");
        let config = kind_config(&env);
        assert_eq!(
            config,
            json!({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "istio",
                "nodes": [{"role": "control-plane", "image": "kindest/node:v1.36.1",
                "extraPortMappings": [{"containerPort": 30080, "hostPort": 80,
                    "listenAddress": "127.0.0.1", "protocol": "TCP"}]}]})
        );
        let yaml = live::provider::kind_config_yaml(&config).unwrap();
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(
            back, config,
            "the YAML reads back as the same document:\n{yaml}"
        );
        assert!(
            yaml.contains("apiVersion: kind.x-k8s.io/v1alpha4"),
            "{yaml}"
        );
    }

    /// A recorded cluster built by this module is replaced for a change of its config, and a
    /// new node image (which the config repeats) is named once.
    #[test]
    fn shipped_config_changes_decide_a_replacement() {
        let env = config::load(&infra(), None, &xtask::REGISTRY).expect("infra/ loads");
        let document = |env: &Environment| {
            let module = declare(env).unwrap();
            let ResourceSpec::Cluster(spec) = &module.resources[0].spec else {
                panic!("a cluster")
            };
            live::provider::cluster_document(spec)
        };
        let recorded = document(&env);
        assert_eq!(
            live::provider::replace_decision(Some(&recorded), &recorded),
            None
        );
        let mut moved = env.clone();
        moved.settings.cluster.kind.host_port = 8080;
        assert_eq!(
            live::provider::replace_decision(Some(&recorded), &document(&moved)).as_deref(),
            Some("provider.config.nodes[0].extraPortMappings[0].hostPort 80 -> 8080")
        );
        let mut newer = env.clone();
        newer.settings.cluster.kind.node_image = "kindest/node:v1.37.0".into();
        assert_eq!(
            live::provider::replace_decision(Some(&recorded), &document(&newer)).as_deref(),
            Some("node image kindest/node:v1.36.1 -> kindest/node:v1.37.0")
        );
    }

    #[test]
    fn kwok_environment_uses_the_kwokctl_context() {
        let env =
            config::load(&infra(), Some("kwok"), &xtask::REGISTRY).expect("infra/ loads for kwok");
        let module = declare(&env).unwrap();
        let ResourceSpec::Cluster(spec) = &module.resources[0].spec else {
            panic!("a cluster")
        };
        assert!(matches!(spec.provider, ClusterProvider::Kwok));
        assert_eq!(spec.context, format!("kwok-{}", env.settings.cluster.name));
    }
}
