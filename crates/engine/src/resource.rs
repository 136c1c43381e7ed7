//! What a module declares: resources, their specs and dependencies, and outputs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::address::{Address, AddressError, ResourceKind};
use crate::values::OutputRef;

/// Everything one module wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The module's name, the first part of its addresses (`sso`).
    pub name: String,
    /// The resources it declares.
    pub resources: Vec<Resource>,
    /// The outputs it offers to other modules.
    pub outputs: Vec<Output>,
}

impl Module {
    /// An empty module.
    pub fn new(name: impl Into<String>) -> Module {
        Module {
            name: name.into(),
            resources: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Adds a resource (builder style).
    pub fn with_resource(mut self, resource: Resource) -> Module {
        self.resources.push(resource);
        self
    }

    /// Adds an output (builder style).
    pub fn with_output(mut self, output: Output) -> Module {
        self.outputs.push(output);
        self
    }
}

/// One thing the engine converges.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Its stable address; `address.kind` must match the spec.
    pub address: Address,
    /// What is wanted.
    pub spec: ResourceSpec,
    /// Explicit dependencies, in addition to those derived from placeholders and kinds.
    pub depends_on: Vec<Dependency>,
}

impl Resource {
    /// A resource without explicit dependencies.
    pub fn new(address: Address, spec: ResourceSpec) -> Resource {
        Resource {
            address,
            spec,
            depends_on: Vec::new(),
        }
    }

    /// A Kubernetes object of `module`, addressed from its manifest (see [`Address::object`]).
    pub fn object(
        module: &str,
        manifest: Value,
        ownership: Ownership,
    ) -> Result<Resource, AddressError> {
        let address = Address::object(module, &manifest)?;
        Ok(Resource::new(
            address,
            ResourceSpec::Object(ObjectSpec {
                manifest,
                ownership,
            }),
        ))
    }

    /// Adds an explicit dependency (builder style).
    pub fn depends_on(mut self, dependency: Dependency) -> Resource {
        self.depends_on.push(dependency);
        self
    }
}

/// An explicit dependency of a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependency {
    /// Apply after this resource.
    Resource(Address),
    /// Apply after the producer of this output (used when the value itself is not needed).
    Output(OutputRef),
}

/// What kind of thing a resource is, with its desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceSpec {
    /// The cluster itself.
    Cluster(ClusterSpec),
    /// A Helm release.
    HelmRelease(HelmReleaseSpec),
    /// A Kubernetes object.
    Object(ObjectSpec),
    /// A Secret with generated keys.
    GeneratedSecret(GeneratedSecretSpec),
}

impl ResourceSpec {
    /// The kind this spec belongs to.
    pub fn kind(&self) -> ResourceKind {
        match self {
            ResourceSpec::Cluster(_) => ResourceKind::Cluster,
            ResourceSpec::HelmRelease(_) => ResourceKind::HelmRelease,
            ResourceSpec::Object(_) => ResourceKind::Object,
            ResourceSpec::GeneratedSecret(_) => ResourceKind::GeneratedSecret,
        }
    }
}

/// The cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// The cluster's name (e.g. the kind cluster name).
    pub name: String,
    /// How the cluster is provided.
    pub provider: ClusterProvider,
    /// The kubeconfig context that reaches it.
    pub context: String,
}

/// How a cluster is provided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterProvider {
    /// A kind cluster.
    Kind {
        /// The node image, e.g. `kindest/node:v1.36.1`.
        node_image: String,
        /// The kind `Cluster` config document (`kind.x-k8s.io/v1alpha4`).
        config: Value,
    },
    /// A kwok (simulated) cluster.
    Kwok,
    /// A cluster that exists already; the engine never creates or deletes it.
    Existing {
        /// The kubeconfig context.
        context: String,
    },
}

/// A Helm release.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmReleaseSpec {
    /// The release name.
    pub release: String,
    /// The namespace it is installed into.
    pub namespace: String,
    /// Whether helm should create the namespace.
    pub create_namespace: bool,
    /// Where the chart comes from.
    pub chart: ChartSource,
    /// The release values; may contain placeholders.
    pub values: Value,
    /// Field paths inside `values` (see [`crate::FieldPath`]) whose values are sensitive.
    pub sensitive_paths: Vec<String>,
}

/// Where a chart comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartSource {
    /// The repository URL (`https://…` or `oci://…`); `None` for a local chart.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repo: Option<String>,
    /// The chart name.
    pub chart: String,
    /// The chart version.
    pub version: String,
    /// A local chart directory, used instead of the repository.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// The expected sha256 of the chart archive, if pinned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

/// A Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    /// The manifest; may contain placeholders.
    pub manifest: Value,
    /// Whether we own the whole object or only the fields in the manifest.
    pub ownership: Ownership,
}

/// How much of an object the engine manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    /// We create and delete the object; it carries the ownership label and annotations.
    Owned,
    /// We manage only the fields in the manifest of an object someone else owns (e.g. a label
    /// on namespace `default`); destroy removes our fields, not the object.
    FieldsOnly,
}

/// A Secret whose sensitive keys are generated once, at apply.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSecretSpec {
    /// The Kubernetes Secret's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Keys that are not secret (e.g. `client-id`), shown in plans.
    pub plain: BTreeMap<String, String>,
    /// Keys generated at apply, never shown.
    pub generated: BTreeMap<String, Generator>,
}

/// How one generated key is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    /// How many random bytes.
    pub bytes: usize,
    /// How they are encoded into the key's value.
    pub encoding: Encoding,
}

/// The text encoding of generated bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Standard base64 with padding.
    Base64,
    /// URL-safe base64 with padding.
    Base64Url,
    /// Lowercase hex.
    Hex,
}

impl Generator {
    /// Encodes random bytes (supplied by the caller: the engine has no randomness) into the
    /// key's value. `random` should be exactly `self.bytes` long.
    pub fn encode(&self, random: &[u8]) -> String {
        match self.encoding {
            Encoding::Base64 => general_purpose::STANDARD.encode(random),
            Encoding::Base64Url => general_purpose::URL_SAFE.encode(random),
            Encoding::Hex => crate::hash::hex(random),
        }
    }
}

/// A value a module offers to others.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its name, `<module>.<name>`.
    pub r#ref: OutputRef,
    /// The resource that produces it; consumers are applied after it.
    pub producer: Address,
    /// The value when known at plan time; `None` means known only after apply.
    pub value: Option<Value>,
    /// Where the live value is read once the producer exists (for outputs known after apply).
    pub source: Option<LiveField>,
}

/// A field of a live object, e.g. `spec.clusterIP` of Service `sso/dex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveField {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// A JSON pointer into the object, e.g. `/spec/clusterIP`.
    pub pointer: String,
}

impl Output {
    /// An output known at plan time.
    pub fn known(r#ref: OutputRef, producer: Address, value: Value) -> Output {
        Output {
            r#ref,
            producer,
            value: Some(value),
            source: None,
        }
    }

    /// An output known only after its producer is applied, read from a field of a live object.
    pub fn after_apply(r#ref: OutputRef, producer: Address, source: LiveField) -> Output {
        Output {
            r#ref,
            producer,
            value: None,
            source: Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generators_encode_like_the_rfcs() {
        let b64 = Generator {
            bytes: 6,
            encoding: Encoding::Base64,
        };
        // RFC 4648 test vectors.
        assert_eq!(b64.encode(b""), "");
        assert_eq!(b64.encode(b"f"), "Zg==");
        assert_eq!(b64.encode(b"fo"), "Zm8=");
        assert_eq!(b64.encode(b"foo"), "Zm9v");
        assert_eq!(b64.encode(b"foobar"), "Zm9vYmFy");
        let url = Generator {
            bytes: 2,
            encoding: Encoding::Base64Url,
        };
        assert_eq!(b64.encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(url.encode(&[0xfb, 0xff]), "-_8=");
        let hex = Generator {
            bytes: 3,
            encoding: Encoding::Hex,
        };
        assert_eq!(hex.encode(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn object_resources_are_addressed_from_the_manifest() {
        let r = Resource::object(
            "gateway",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gateway"}}),
            Ownership::Owned,
        )
        .unwrap()
        .depends_on(Dependency::Output(OutputRef::new("mesh", "gateway_class")));
        assert_eq!(r.address.to_string(), "gateway.object.namespace/gateway");
        assert_eq!(r.spec.kind(), ResourceKind::Object);
        assert_eq!(r.depends_on.len(), 1);
    }
}
