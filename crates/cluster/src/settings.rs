//! The `cluster:` section of the environment file: its typed form and its rules (one
//! environment's, and across the environments of one infra directory).

use std::net::IpAddr;

use config::{ConfigError, OtherEnvironment, Section, validate};
use serde::{Deserialize, Serialize};

/// The `cluster:` section. Field names are the file's keys in camelCase; unknown keys are
/// refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// Cluster name (kind cluster `--name`; kube context `kind-<name>` for kind).
    pub name: String,
    pub provider: Provider,
    /// Kube context to use; required with provider `existing`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// kind settings (used by provider `kind` only; still validated for the others).
    pub kind: KindSettings,
}

/// What kind of cluster the environment runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A local kind cluster, created and deleted by envctl.
    Kind,
    /// The test control plane (kube-apiserver + kwok) from `infra/testenv`.
    Kwok,
    /// A cluster envctl does not create or delete; reached through `cluster.context`.
    Existing,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Kind => "kind",
            Provider::Kwok => "kwok",
            Provider::Existing => "existing",
        }
    }
}

/// `cluster.kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindSettings {
    /// e.g. `kindest/node:v1.36.1`; its tag gives the Kubernetes version that other modules'
    /// version rules read (`kubernetes`, see [`crate::KUBERNETES`]).
    pub node_image: String,
    /// Port on the host (1-65535) mapped to `nodePort` (kind `extraPortMappings.hostPort`).
    pub host_port: u16,
    /// NodePort of the gateway's Service port 80 (30000-32767).
    pub node_port: u16,
    /// Host address `hostPort` binds to (an IP address).
    pub listen_address: String,
}

impl KindSettings {
    /// The tag of `nodeImage` (`kindest/node:v1.36.1@sha256:...` -> `v1.36.1`), if it has one
    /// (a registry's port, `localhost:5000/node`, is not a tag).
    pub fn image_tag(&self) -> Option<&str> {
        let image = self.node_image.split('@').next()?;
        let last = image.rsplit('/').next()?;
        Some(last.rsplit_once(':')?.1)
    }

    /// The Kubernetes `(major, minor)` of `nodeImage`'s tag (`kindest/node:v1.36.1` -> (1, 36)).
    pub fn kubernetes_version(&self) -> Option<(u32, u32)> {
        config::parse_minor(self.image_tag()?)
    }
}

/// A broken rule: the field inside `cluster:`, what is wrong, what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    pub field: &'static str,
    pub message: String,
    pub help: &'static str,
}

/// `Some` when `result` is an error: `<what>: <why>` at `field`.
fn rule(
    field: &'static str,
    result: Result<(), String>,
    what: &str,
    help: &'static str,
) -> Option<Broken> {
    result.err().map(|why| Broken {
        field,
        message: format!("{what}: {why}"),
        help,
    })
}

impl ClusterSettings {
    /// The section's rules: a DNS name, ports in range, an IP address to bind, a node image
    /// with its version, a kube context exactly for provider `existing`.
    pub fn broken_rules(&self) -> Vec<Broken> {
        let mut broken: Vec<Broken> = rule(
            "name",
            validate::dns_label(&self.name),
            &format!("invalid cluster name `{}`", self.name),
            "use lowercase letters, digits and `-`, e.g. `istio-staging`",
        )
        .into_iter()
        .collect();
        broken.extend(self.kind.broken_rules());
        broken.extend(self.context_rule());
        broken
    }

    /// `context` is set exactly for provider `existing`.
    fn context_rule(&self) -> Option<Broken> {
        match (self.provider, &self.context) {
            (Provider::Existing, None) => rule(
                "provider",
                Err("provider `existing` needs `cluster.context`".into()),
                "missing kube context",
                "add `context: <name>` under `cluster:` (see `kubectl config get-contexts`)",
            ),
            (Provider::Kind | Provider::Kwok, Some(_)) => rule(
                "context",
                Err(format!(
                    "provider `{}` picks its own context",
                    self.provider.as_str()
                )),
                "`context` is only for provider `existing`",
                "remove `context:`, or set `provider: existing`",
            ),
            _ => None,
        }
    }

    /// The error of a kind cluster of this environment against one of environment `other`
    /// (its section as written): both would bind the same host port (on the same address,
    /// or one on every address). Other providers bind nothing; the same cluster name is the
    /// same cluster.
    pub fn host_port_clash(&self, other: &ClusterSettings, other_env: &str) -> Option<Broken> {
        let (a, b) = (&self.kind, &other.kind);
        let overlapping = a.listen_address == b.listen_address
            || a.listen_address == "0.0.0.0"
            || b.listen_address == "0.0.0.0";
        let clash = self.provider == Provider::Kind
            && other.provider == Provider::Kind
            && other.name != self.name
            && a.host_port == b.host_port
            && overlapping;
        clash.then(|| Broken {
            field: "kind.hostPort",
            message: format!(
                "hostPort {} clashes with environment `{other_env}` (cluster `{}`), which binds the same port",
                a.host_port, other.name
            ),
            help: "give each kind environment its own hostPort, e.g. 8080",
        })
    }
}

impl KindSettings {
    /// Ports in range, an IP address to bind, a node image with its version.
    fn broken_rules(&self) -> Vec<Broken> {
        let host_port = match self.host_port {
            0 => Err("0 is not a port".to_owned()),
            _ => Ok(()),
        };
        let node_port = match (30000..=32767).contains(&self.node_port) {
            true => Ok(()),
            false => Err(format!("{} is outside 30000-32767", self.node_port)),
        };
        [
            rule(
                "kind.hostPort",
                host_port,
                "hostPort must be between 1 and 65535",
                "pick a free port on this machine, e.g. 80 or 8080",
            ),
            rule(
                "kind.nodePort",
                node_port,
                "nodePort must be in Kubernetes' NodePort range",
                "pick a port from 30000 to 32767, e.g. 30080",
            ),
            rule(
                "kind.listenAddress",
                self.listen_address
                    .parse::<IpAddr>()
                    .map(|_| ())
                    .map_err(|_| format!("`{}` is not an IP address", self.listen_address)),
                "invalid listenAddress",
                "write an IP address: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
            ),
            rule(
                "kind.nodeImage",
                self.kubernetes_version()
                    .map(|_| ())
                    .ok_or_else(|| format!("`{}` has no version tag", self.node_image)),
                "invalid nodeImage",
                "write the image with its Kubernetes version tag, e.g. kindest/node:v1.36.1",
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl Broken {
    /// As an error at its field of `section`.
    pub fn at(self, section: &Section) -> ConfigError {
        section
            .error(self.field, self.message)
            .with_help(self.help.to_owned())
    }
}

/// The section's errors: unreadable (`Err`), or the broken rules.
pub(crate) fn check(section: &Section) -> Result<Vec<ConfigError>, ConfigError> {
    let settings: ClusterSettings = section.parse()?;
    Ok(settings
        .broken_rules()
        .into_iter()
        .map(|b| b.at(section))
        .collect())
}

/// The host port clashes of `section` with the other environments' `cluster:` sections
/// (those that do not read are left out: their own load reports them).
pub(crate) fn check_across(section: &Section, others: &[OtherEnvironment]) -> Vec<ConfigError> {
    let Ok(ours) = section.parse::<ClusterSettings>() else {
        return Vec::new();
    };
    others
        .iter()
        .filter_map(|other| {
            let theirs = other.section.parse::<ClusterSettings>().ok()?;
            Some(ours.host_port_clash(&theirs, &other.name)?.at(section))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_cluster() -> ClusterSettings {
        ClusterSettings {
            name: "istio".into(),
            provider: Provider::Kind,
            context: None,
            kind: KindSettings {
                node_image: "kindest/node:v1.36.1".into(),
                host_port: 80,
                node_port: 30080,
                listen_address: "127.0.0.1".into(),
            },
        }
    }

    fn fields(settings: &ClusterSettings) -> Vec<&'static str> {
        settings.broken_rules().iter().map(|b| b.field).collect()
    }

    #[test]
    fn the_shipped_shape_breaks_no_rule() {
        assert_eq!(kind_cluster().broken_rules(), Vec::new());
    }

    #[test]
    fn names_ports_address_and_image_are_checked() {
        let mut s = kind_cluster();
        s.name = "istio.staging".into();
        s.kind.host_port = 0;
        s.kind.node_port = 8080;
        s.kind.listen_address = "localhost".into();
        s.kind.node_image = "kindest/node".into();
        assert_eq!(
            fields(&s),
            [
                "name",
                "kind.hostPort",
                "kind.nodePort",
                "kind.listenAddress",
                "kind.nodeImage"
            ]
        );
        let broken = s.broken_rules();
        assert_eq!(
            broken[1].message,
            "hostPort must be between 1 and 65535: 0 is not a port"
        );
        assert_eq!(
            broken[2].message,
            "nodePort must be in Kubernetes' NodePort range: 8080 is outside 30000-32767"
        );
        assert_eq!(
            broken[4].message,
            "invalid nodeImage: `kindest/node` has no version tag"
        );
    }

    #[test]
    fn node_port_range_is_inclusive() {
        for (port, ok) in [(29999, false), (30000, true), (32767, true), (32768, false)] {
            let mut s = kind_cluster();
            s.kind.node_port = port;
            assert_eq!(s.broken_rules().is_empty(), ok, "{port}");
        }
    }

    #[test]
    fn a_context_is_needed_exactly_for_an_existing_cluster() {
        let mut s = kind_cluster();
        s.provider = Provider::Existing;
        assert_eq!(fields(&s), ["provider"]);
        s.context = Some("prod".into());
        assert_eq!(fields(&s), Vec::<&str>::new());
        s.provider = Provider::Kwok;
        assert_eq!(fields(&s), ["context"]);
        assert!(
            s.broken_rules()[0]
                .message
                .contains("provider `kwok` picks its own context")
        );
    }

    #[test]
    fn the_kubernetes_version_is_the_image_tag() {
        let mut s = kind_cluster();
        assert_eq!(s.kind.kubernetes_version(), Some((1, 36)));
        s.kind.node_image = "kindest/node:v1.35.0@sha256:abc".into();
        assert_eq!(s.kind.image_tag(), Some("v1.35.0"));
        assert_eq!(s.kind.kubernetes_version(), Some((1, 35)));
        s.kind.node_image = "localhost:5000/node".into();
        assert_eq!(s.kind.image_tag(), None);
        s.kind.node_image = "localhost:5000/node:v1.34.2".into();
        assert_eq!(s.kind.kubernetes_version(), Some((1, 34)));
    }

    #[test]
    fn two_kind_clusters_clash_on_the_same_host_port_and_address() {
        let ours = kind_cluster();
        let mut theirs = kind_cluster();
        theirs.name = "other".into();
        let clash = ours.host_port_clash(&theirs, "staging").unwrap();
        assert_eq!(clash.field, "kind.hostPort");
        assert_eq!(
            clash.message,
            "hostPort 80 clashes with environment `staging` (cluster `other`), which binds the same port"
        );
        // Every address overlaps with any one.
        theirs.kind.listen_address = "0.0.0.0".into();
        assert!(ours.host_port_clash(&theirs, "staging").is_some());
        // Another address, another port, the same cluster, or a cluster that binds nothing.
        theirs.kind.listen_address = "127.0.0.2".into();
        assert!(ours.host_port_clash(&theirs, "staging").is_none());
        let mut other_port = kind_cluster();
        other_port.name = "other".into();
        other_port.kind.host_port = 8080;
        assert!(ours.host_port_clash(&other_port, "staging").is_none());
        assert!(ours.host_port_clash(&kind_cluster(), "staging").is_none());
        let mut kwok = kind_cluster();
        kwok.name = "other".into();
        kwok.provider = Provider::Kwok;
        assert!(ours.host_port_clash(&kwok, "kwok").is_none());
        assert!(kwok.host_port_clash(&ours, "default").is_none());
    }
}
