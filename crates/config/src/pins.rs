//! `infra/pins/gateway-api.yaml`: the Gateway API CRD files per release, and the compatibility
//! table.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The Gateway API files to apply for the chosen release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiPins {
    /// e.g. `v1.5.1`.
    pub version: String,
    /// In the file's order.
    pub files: Vec<PinnedFile>,
}

/// One upstream file with its expected digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedFile {
    /// File name, e.g. `gateway.networking.k8s.io_httproutes.yaml`.
    pub name: String,
    /// Where to fetch it (`https://raw.githubusercontent.com/...`); an offline mirror holds it at
    /// `<mirror>/<host>/<path>`.
    pub url: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
    /// The objects the file holds, so that a plan can name (and order) them before the file is
    /// fetched.
    pub objects: Vec<PinnedObject>,
}

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

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PinsFile {
    pub base_url: String,
    pub releases: BTreeMap<String, PinsRelease>,
    pub compatibility: Vec<Compatibility>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PinsRelease {
    pub files: Vec<PinsEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PinsEntry {
    pub name: String,
    pub sha256: String,
    pub objects: Vec<PinnedObject>,
}
