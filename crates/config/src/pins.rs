//! `infra/pins/gateway-api.yaml` as written: the upstream files pinned per release, and the
//! compatibility table. Which release is used, and what its files declare, is the gateway
//! module's; what pairs with what is the mesh module's.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One object of a pinned file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinnedObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// For a CustomResourceDefinition: the kind it defines (its group is the CRD name's
    /// suffix after the first `.`).
    #[serde(default)]
    pub defines: Option<String>,
}

/// One row of the compatibility table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compatibility {
    /// `1.30`.
    pub istio_minor: String,
    /// Istio release used when `versions.istio` is not set.
    #[serde(default)]
    pub istio: Option<String>,
    /// The Gateway API release this Istio minor pairs with.
    pub gateway_api: String,
    /// Oldest Kubernetes minor (`1.32`).
    pub min_kubernetes: String,
}

/// The pins file as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pins {
    /// URL of a pinned file, with `{version}` and `{file}` to fill in.
    pub base_url: String,
    /// The pinned files by release (`v1.5.1`).
    pub releases: BTreeMap<String, PinnedRelease>,
    /// The compatibility table.
    pub compatibility: Vec<Compatibility>,
}

/// The pinned files of one release, in the file's order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinnedRelease {
    pub files: Vec<PinnedEntry>,
}

/// One upstream file with its expected digest, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinnedEntry {
    /// File name, e.g. `gateway.networking.k8s.io_httproutes.yaml`.
    pub name: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
    /// The objects the file holds, so that a plan can name (and order) them before the file is
    /// fetched.
    pub objects: Vec<PinnedObject>,
}
