//! Module `cluster`: the Kubernetes cluster itself.
//!
//! Providers: `kind` (a local kind cluster with the gateway's nodePort mapped to a host port,
//! as in the walkthrough), `kwok` (the test control plane of `cargo xtask testenv`) and
//! `existing` (any kubeconfig context; never created or deleted).
//!
//! The module owns the `cluster:` section of the environment file ([`ClusterSettings`], its
//! rules in [`settings`]) and gives the rest of the environment what it needs from it through
//! `config`'s generic hooks: the gateway's host port as the port of `${env.url.*}`
//! ([`config::ModuleDef::url_port`]), the Kubernetes version of a kind node image to the other
//! modules' version rules ([`KUBERNETES`], [`config::ModuleDef::provided_versions`]), and the
//! rule that no two kind environments bind one host port
//! ([`config::ModuleDef::check_environments`]).

pub mod settings;

use config::{ConfigError, Environment, OtherEnvironment, ProvidedVersion, Section};
use engine::{
    Address, ClusterProvider, ClusterSpec, Module, Output, OutputRef, Resource, ResourceKind,
    ResourceSpec,
};
use serde_json::{Value, json};

pub use settings::{ClusterSettings, KindSettings, Provider};

/// The key of the version this module gives the others' version rules: the cluster's
/// Kubernetes version (`v1.36.1`), for a kind cluster (from its node image's tag).
pub const KUBERNETES: &str = "kubernetes";

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

    fn has_settings(&self) -> bool {
        true
    }

    fn check_settings(&self, section: &Section) -> Result<Vec<ConfigError>, ConfigError> {
        settings::check(section)
    }

    fn provided_versions(&self, section: &Section) -> Vec<ProvidedVersion> {
        let Ok(cluster) = section.parse::<ClusterSettings>() else {
            return Vec::new();
        };
        match (cluster.provider, cluster.kind.image_tag()) {
            (Provider::Kind, Some(tag)) => {
                vec![section.provide(KUBERNETES, "kind.nodeImage", tag, &cluster.kind.node_image)]
            }
            _ => Vec::new(),
        }
    }

    fn url_port(&self, section: &Section) -> Option<u16> {
        let cluster = section.parse::<ClusterSettings>().ok()?;
        Some(cluster.kind.host_port)
    }

    fn check_environments(
        &self,
        section: &Section,
        others: &[OtherEnvironment],
    ) -> Vec<ConfigError> {
        settings::check_across(section, others)
    }
}

/// The `cluster:` section of `env`, as written.
fn section(env: &Environment) -> Result<&Section, ConfigError> {
    env.section(NAME).ok_or_else(|| {
        env.error_at(
            &env.infra_dir.join("environment.yaml"),
            NAME,
            "the environment has no `cluster:` section",
        )
    })
}

/// The `cluster:` section of `env` (checked when `env` was loaded).
pub fn settings(env: &Environment) -> Result<ClusterSettings, ConfigError> {
    section(env)?.parse()
}

/// What the cluster module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let section = section(env)?;
    let cluster: ClusterSettings = section.parse()?;
    let spec = spec(&cluster);
    let address = Address::new(NAME, ResourceKind::Cluster, &cluster.name)
        .map_err(|e| section.error("name", e.to_string()))?;
    Ok(Module::new(NAME)
        .with_output(Output::known(
            OutputRef::new(NAME, "context"),
            address.clone(),
            Value::String(spec.context.clone()),
        ))
        .with_resource(Resource::new(address, ResourceSpec::Cluster(spec))))
}

/// The cluster the section describes: its provider and the kube context it is reached by.
pub fn spec(cluster: &ClusterSettings) -> ClusterSpec {
    let (provider, context) = match cluster.provider {
        Provider::Kind => (
            ClusterProvider::Kind {
                node_image: cluster.kind.node_image.clone(),
                config: kind_config(cluster),
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
    ClusterSpec {
        name: cluster.name.clone(),
        provider,
        context,
    }
}

/// The kind `Cluster` configuration: one control-plane node of the pinned image, with the
/// gateway's nodePort published on the host.
pub fn kind_config(cluster: &ClusterSettings) -> Value {
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
