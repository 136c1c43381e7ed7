//! Module `cluster`: the Kubernetes cluster itself.
//!
//! Providers: `kind` (a local kind cluster with the gateway's nodePort mapped to a host port,
//! as in the walkthrough), `kwok` (the test control plane of `cargo xtask testenv`) and
//! `existing` (any kubeconfig context; never created or deleted).

use std::path::Path;

use config::{ConfigError, Environment, Provider};
use engine::{
    Address, ClusterProvider, ClusterSpec, Module, Output, OutputRef, Resource, ResourceKind,
    ResourceSpec,
};
use live::provider::{self, ClusterState, DestroyDecision, Kind};
use live::{Cluster, LiveError};
use serde_json::{Value, json};

/// This module's name: the first part of its addresses.
pub const NAME: &str = "cluster";

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

/// The cluster of `spec` as it is now: reachable (with a connection), or absent (why).
pub enum Target {
    Connected(Cluster),
    Absent { reason: String },
}

fn kind_for(spec: &ClusterSpec) -> Result<Option<Kind>, LiveError> {
    match spec.provider {
        ClusterProvider::Kind { .. } => Kind::locate().map(Some),
        _ => Ok(None),
    }
}

/// Looks for the cluster: `kind get clusters` for the kind provider, then the kubeconfig
/// context. Plan uses this to tell "create the cluster" from "plan against it".
pub async fn find(spec: &ClusterSpec, kubeconfig: Option<&Path>) -> Result<Target, LiveError> {
    let kind = kind_for(spec)?;
    match provider::cluster_state(spec, kubeconfig, kind.as_ref()).await? {
        (ClusterState::Absent { reason }, _) => Ok(Target::Absent { reason }),
        (_, Some(cluster)) => Ok(Target::Connected(cluster)),
        (_, None) => Err(LiveError::Connect(format!(
            "cluster {} exists but context `{}` does not answer",
            spec.name, spec.context
        ))),
    }
}

/// Creates the cluster (kind only; the other providers are never created by envctl), then
/// connects and records its spec with `created-by: envctl`.
pub async fn create(
    spec: &ClusterSpec,
    kubeconfig: Option<&Path>,
    environment: &str,
    address: &Address,
) -> Result<Cluster, LiveError> {
    let Some(kind) = kind_for(spec)? else {
        return Err(LiveError::Connect(format!(
            "cluster {} is not reachable through context `{}`, and envctl creates only kind clusters \
             (for kwok: `cargo xtask testenv up`)",
            spec.name, spec.context
        )));
    };
    kind.create(spec, kubeconfig).await?;
    let cluster = Cluster::connect(kubeconfig, Some(&spec.context)).await?;
    provider::record(&cluster, spec, true, environment, address).await?;
    Ok(cluster)
}

/// Deletes the cluster if envctl created it; otherwise says why it stays, and removes the
/// record of its spec (the last thing envctl owns in it).
pub async fn destroy(spec: &ClusterSpec, kubeconfig: Option<&Path>) -> Result<String, LiveError> {
    let kind = kind_for(spec)?;
    let (state, connection) = provider::cluster_state(spec, kubeconfig, kind.as_ref()).await?;
    match provider::destroy_decision(spec, &state) {
        DestroyDecision::Delete => {
            kind.expect("only kind clusters are deleted")
                .delete(&spec.name, kubeconfig)
                .await?;
            Ok(format!("cluster {} deleted", spec.name))
        }
        DestroyDecision::Keep(reason) => {
            if let Some(cluster) = connection
                && let Some(ty) = cluster.resolve("v1", "ConfigMap")
            {
                cluster
                    .delete(&ty, Some(provider::RECORD_NAMESPACE), provider::RECORD_NAME)
                    .await?;
            }
            Ok(format!("cluster {} left in place: {reason}", spec.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infra() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
    }

    #[test]
    fn kind_cluster_maps_the_gateway_node_port_to_the_host() {
        let env = config::load(&infra(), None).expect("infra/ loads");
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

    #[test]
    fn kwok_environment_uses_the_kwokctl_context() {
        let env = config::load(&infra(), Some("kwok")).expect("infra/ loads for kwok");
        let module = declare(&env).unwrap();
        let ResourceSpec::Cluster(spec) = &module.resources[0].spec else {
            panic!("a cluster")
        };
        assert!(matches!(spec.provider, ClusterProvider::Kwok));
        assert_eq!(spec.context, format!("kwok-{}", env.settings.cluster.name));
    }
}
