//! Resource addresses: `<module>.<kind>.<name>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The kind of a resource, the middle part of an [`Address`].
///
/// Variants are declared in alphabetical order of their names, so the derived `Ord` sorts
/// kinds the way their text sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// The Kubernetes cluster itself (`cluster`).
    Cluster,
    /// A Kubernetes Secret whose sensitive keys are generated once at apply (`generated_secret`).
    GeneratedSecret,
    /// A Helm release (`helm_release`).
    HelmRelease,
    /// A Kubernetes object applied server-side (`object`).
    Object,
}

impl ResourceKind {
    /// Every kind, in `Ord` order.
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::Cluster,
        ResourceKind::GeneratedSecret,
        ResourceKind::HelmRelease,
        ResourceKind::Object,
    ];

    /// The name used in addresses: `cluster`, `generated_secret`, `helm_release`, `object`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Cluster => "cluster",
            ResourceKind::GeneratedSecret => "generated_secret",
            ResourceKind::HelmRelease => "helm_release",
            ResourceKind::Object => "object",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| AddressError::UnknownKind { kind: s.to_owned() })
    }
}

/// The stable address of a resource: `<module>.<kind>.<name>`.
///
/// Examples: `cluster.cluster.istio`, `sso.helm_release.dex`,
/// `gateway.object.deployment/default/nginx`,
/// `gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io`.
///
/// The module is a plain identifier (no dots); the name is everything after the second dot, so
/// it may itself contain dots. Addresses sort by module, then kind, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The module that declares the resource (`sso`).
    pub module: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The name, unique within module and kind (`dex`, `deployment/default/nginx`).
    pub name: String,
}

impl Address {
    /// An address from its parts, checking that each part is well formed.
    pub fn new(
        module: impl Into<String>,
        kind: ResourceKind,
        name: impl Into<String>,
    ) -> Result<Address, AddressError> {
        let address = Address {
            module: module.into(),
            kind,
            name: name.into(),
        };
        validate_module(&address.module, &address.to_string())?;
        validate_name(&address.name, &address.to_string())?;
        Ok(address)
    }

    /// The address of a Kubernetes object declared by `module`: the name is
    /// `<lowercase kind>/<namespace>/<name>` when the manifest has `metadata.namespace`, else
    /// `<lowercase kind>/<name>`.
    pub fn object(module: &str, manifest: &Value) -> Result<Address, AddressError> {
        let kind = manifest
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or(AddressError::ManifestField { field: "kind" })?;
        let metadata = manifest.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or(AddressError::ManifestField {
                field: "metadata.name",
            })?;
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let kind = kind.to_ascii_lowercase();
        let object_name = match namespace {
            Some(ns) => format!("{kind}/{ns}/{name}"),
            None => format!("{kind}/{name}"),
        };
        Address::new(module, ResourceKind::Object, object_name)
    }
}

fn validate_module(module: &str, whole: &str) -> Result<(), AddressError> {
    let ok = !module.is_empty()
        && module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AddressError::BadModule {
            address: whole.to_owned(),
            module: module.to_owned(),
        })
    }
}

fn validate_name(name: &str, whole: &str) -> Result<(), AddressError> {
    let ok = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(AddressError::BadName {
            address: whole.to_owned(),
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.module, self.kind, self.name)
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '.');
        let (Some(module), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AddressError::Syntax {
                address: s.to_owned(),
            });
        };
        let kind: ResourceKind = kind.parse()?;
        let address = Address::new(module, kind, name)?;
        Ok(address)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why an address could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not three dot-separated parts.
    #[error(
        "`{address}` is not an address; write `<module>.<kind>.<name>`, e.g. `sso.helm_release.dex`"
    )]
    Syntax {
        /// The text that was parsed.
        address: String,
    },
    /// The middle part is not a known kind.
    #[error(
        "unknown resource kind `{kind}`; use one of `cluster`, `helm_release`, `object`, `generated_secret`"
    )]
    UnknownKind {
        /// The kind that was given.
        kind: String,
    },
    /// The module part is empty or has characters other than ASCII letters, digits, `_`, `-`.
    #[error(
        "address `{address}`: module `{module}` must be non-empty ASCII letters, digits, `_` or `-`"
    )]
    BadModule {
        /// The whole address.
        address: String,
        /// The module part.
        module: String,
    },
    /// The name part is empty or contains whitespace.
    #[error("address `{address}`: the name must be non-empty and contain no whitespace")]
    BadName {
        /// The whole address.
        address: String,
    },
    /// A manifest lacks a field needed for its address.
    #[error(
        "the manifest has no `{field}`; every Kubernetes object needs `kind` and `metadata.name`"
    )]
    ManifestField {
        /// The missing field.
        field: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_and_parse_round_trip() {
        for text in [
            "cluster.cluster.istio",
            "sso.helm_release.dex",
            "sso.generated_secret.oauth2-proxy",
            "gateway.object.deployment/default/nginx",
            "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        let crd: Address =
            "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io"
                .parse()
                .unwrap();
        assert_eq!(crd.module, "gateway");
        assert_eq!(crd.kind, ResourceKind::Object);
        assert_eq!(
            crd.name,
            "customresourcedefinition/gateways.gateway.networking.k8s.io"
        );
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let err = "sso.dex".parse::<Address>().unwrap_err();
        assert!(matches!(err, AddressError::Syntax { .. }));
        assert!(err.to_string().contains("<module>.<kind>.<name>"));

        let err = "sso.chart.dex".parse::<Address>().unwrap_err();
        assert_eq!(
            err,
            AddressError::UnknownKind {
                kind: "chart".into()
            }
        );

        let err = "s o.object.x".parse::<Address>().unwrap_err();
        assert!(matches!(err, AddressError::BadModule { .. }));

        let err = "sso.object.".parse::<Address>().unwrap_err();
        assert!(matches!(err, AddressError::BadName { .. }));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in ResourceKind::ALL {
            assert_eq!(kind.to_string().parse::<ResourceKind>().unwrap(), kind);
        }
        assert_eq!(ResourceKind::HelmRelease.to_string(), "helm_release");
        assert_eq!(
            ResourceKind::GeneratedSecret.to_string(),
            "generated_secret"
        );
    }

    #[test]
    fn object_addresses_from_manifests() {
        let namespaced = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default"}});
        assert_eq!(
            Address::object("gateway", &namespaced).unwrap().to_string(),
            "gateway.object.deployment/default/nginx"
        );
        let cluster_scoped = json!({"apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gateways.gateway.networking.k8s.io"}});
        assert_eq!(
            Address::object("gateway", &cluster_scoped)
                .unwrap()
                .to_string(),
            "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io"
        );
        let nameless = json!({"kind": "ConfigMap", "metadata": {}});
        assert_eq!(
            Address::object("gateway", &nameless).unwrap_err(),
            AddressError::ManifestField {
                field: "metadata.name"
            }
        );
    }

    #[test]
    fn addresses_sort_by_module_kind_name() {
        let mut addresses: Vec<Address> = [
            "sso.helm_release.oauth2-proxy",
            "gateway.object.namespace/gateway",
            "sso.generated_secret.oauth2-proxy",
            "sso.helm_release.dex",
            "cluster.cluster.istio",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        addresses.sort();
        let sorted: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            [
                "cluster.cluster.istio",
                "gateway.object.namespace/gateway",
                "sso.generated_secret.oauth2-proxy",
                "sso.helm_release.dex",
                "sso.helm_release.oauth2-proxy",
            ]
        );
    }

    #[test]
    fn serde_uses_the_text_form() {
        let address: Address = "sso.helm_release.dex".parse().unwrap();
        let json = serde_json::to_value(&address).unwrap();
        assert_eq!(json, json!("sso.helm_release.dex"));
        let back: Address = serde_json::from_value(json).unwrap();
        assert_eq!(back, address);
    }
}
