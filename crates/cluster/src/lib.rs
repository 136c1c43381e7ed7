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
