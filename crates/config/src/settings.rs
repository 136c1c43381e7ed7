//! The environment file (`infra/environment.yaml` + `infra/envs/<name>.yaml`) as typed data.
//!
//! Field names are the file's keys in camelCase. Every struct refuses unknown keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The environment file, after the overlay is merged and defaults are resolved, without the
/// sections modules own (see [`crate::Section`]).
///
/// `${env.<path>}` placeholders read this structure serialized with the file's key names
/// (e.g. `${env.domain}`), the modules' sections (`${env.cluster.kind.nodePort}`), plus the
/// computed `fqdn` and `url` maps (see [`Settings::fqdns`], [`Settings::urls`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Environment name (`default`, or the overlay's file name).
    pub name: String,
    /// DNS domain of every host: a host is `<host>.<domain>`.
    pub domain: String,
    pub hosts: Hosts,
    pub versions: Versions,
    /// Chart source per Helm release name, as written; see [`crate::ReleaseConfig::chart`] for
    /// the resolved source.
    pub charts: BTreeMap<String, ChartSpec>,
    /// The port a browser reaches the hosts on, when a module's section decides it
    /// ([`crate::ModuleDef::url_port`]: the cluster's gateway host port); 80 when none does.
    /// Not a key of the file.
    #[serde(skip)]
    pub url_port: Option<u16>,
}

impl Settings {
    /// `<host>.<domain>`.
    pub fn fqdn(&self, host: &str) -> String {
        format!("{host}.{}", self.domain)
    }

    /// The FQDN of host key `key` (`hosts.<key>` + the domain), if `hosts:` has it; what
    /// `${env.fqdn.<key>}` reads. A module reads the keys it declares
    /// ([`crate::ModuleDef::hosts`]), which loading guarantees are set.
    pub fn fqdn_of(&self, key: &str) -> Option<String> {
        self.hosts.get(key).map(|host| self.fqdn(host))
    }

    /// The URL of host key `key` ([`Settings::url`]), if `hosts:` has it; what
    /// `${env.url.<key>}` reads.
    pub fn url_of(&self, key: &str) -> Option<String> {
        self.hosts.get(key).map(|host| self.url(host))
    }

    /// The URL a browser uses for a host: `http://<host>.<domain>`, with `:<port>` when the
    /// [`Settings::url_port`] is not 80 (a browser sends that port in `Host`, and OIDC compares
    /// issuer and redirect URIs exactly).
    pub fn url(&self, host: &str) -> String {
        match self.url_port.unwrap_or(80) {
            80 => format!("http://{}", self.fqdn(host)),
            port => format!("http://{}:{port}", self.fqdn(host)),
        }
    }

    /// Every host's URL by host key: what `${env.url.<key>}` reads (see [`Settings::url`]).
    pub fn urls(&self) -> BTreeMap<String, String> {
        self.hosts
            .iter()
            .map(|(key, host)| (key.clone(), self.url(host)))
            .collect()
    }

    /// The version `versions.<key>` (`gatewayApi`), if the file (or a module's version check)
    /// sets it.
    pub fn version(&self, key: &str) -> Option<&str> {
        self.versions.get(key).map(String::as_str)
    }

    /// Every host's FQDN by host key: what `${env.fqdn.<key>}` reads.
    pub fn fqdns(&self) -> BTreeMap<String, String> {
        self.hosts
            .iter()
            .map(|(key, host)| (key.clone(), self.fqdn(host)))
            .collect()
    }
}

/// `1.36.1` / `v1.36` / `1.36` -> (1, 36).
pub fn parse_minor(version: &str) -> Option<(u32, u32)> {
    let version = version.strip_prefix('v').unwrap_or(version);
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `hosts:` as written: the host name (first DNS label; the domain is added) of each public
/// endpoint by host key (`app: nginx`). Each key is declared by a module that reads it
/// ([`crate::ModuleDef::hosts`]); `config` refuses a key no module declares, a missing
/// declared one, and two keys with the same host name. `${env.fqdn.<key>}` and
/// `${env.url.<key>}` read them by key.
pub type Hosts = BTreeMap<String, String>;

/// `versions:` as written: a version string by key (`gatewayApi: v1.5.1`). Each key is read by
/// the module that declares it ([`crate::ModuleDef::versions`]); `config` refuses a key no
/// module declares and a missing required one. `versionFrom` in `modules.yaml` and
/// `${env.versions.<key>}` read them by key.
pub type Versions = BTreeMap<String, String>;

/// One entry of `charts:` as written (all optional; see [`crate::ChartSource`] for the result).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Local chart directory, relative to `infra/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// sha256 of the chart archive, 64 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Values deep-merged over the release's values file (mappings key by key, `null` removes
    /// a key, anything else replaces), like a second `helm --values`: how an overlay changes a
    /// release's values. May hold `${env.*}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
}
