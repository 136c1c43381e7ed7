//! `infra/testenv/versions.yaml`: every version the testenv uses.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The whole pins file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    pub go_builds: Vec<GoBuild>,
    pub cluster: ClusterPins,
}

/// One Go module built from source through a generated wrapper module.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoBuild {
    /// Cache key prefix, e.g. `kubernetes`.
    pub name: String,
    pub module: String,
    pub version: String,
    /// Version given to every module the upstream go.mod replaces with a local path.
    #[serde(default)]
    pub local_replace_version: Option<String>,
    /// Output binary name -> Go package to build.
    pub binaries: BTreeMap<String, String>,
    #[serde(default)]
    pub ldflags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPins {
    pub name: String,
    pub bind_address: String,
}

impl Pins {
    pub fn load(path: &Path) -> Result<Pins> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let pins: Pins = serde_saphyr::from_str(&text)
            .with_context(|| format!("{}: not a valid testenv pins file", path.display()))?;
        for build in &pins.go_builds {
            build.version_parts().with_context(|| {
                format!("{}: go_builds[{}].version", path.display(), build.name)
            })?;
        }
        Ok(pins)
    }

    /// The build that produces `binary`.
    pub fn build_of(&self, binary: &str) -> Result<&GoBuild> {
        match self
            .go_builds
            .iter()
            .find(|b| b.binaries.contains_key(binary))
        {
            Some(build) => Ok(build),
            None => bail!("infra/testenv/versions.yaml: no go_builds entry produces `{binary}`"),
        }
    }
}

impl GoBuild {
    /// `(major, minor)` of a `vMAJOR.MINOR.PATCH` version.
    pub fn version_parts(&self) -> Result<(String, String)> {
        let mut parts = self.version.strip_prefix('v').unwrap_or("").split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(major), Some(minor), Some(_)) => Ok((major.to_string(), minor.to_string())),
            _ => bail!("`{}` is not of the form vMAJOR.MINOR.PATCH", self.version),
        }
    }

    /// The `-ldflags` value with `{version}`, `{major}`, `{minor}`, `{module_time}` filled in.
    pub fn ldflags(&self, module_time: &str) -> Result<String> {
        let (major, minor) = self.version_parts()?;
        Ok(self
            .ldflags
            .iter()
            .map(|flag| {
                flag.replace("{version}", &self.version)
                    .replace("{major}", &major)
                    .replace("{minor}", &minor)
                    .replace("{module_time}", module_time)
            })
            .collect::<Vec<_>>()
            .join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_pins_parse_and_match_the_workspace_kubernetes_minor() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pins = Pins::load(&root.join("infra/testenv/versions.yaml")).unwrap();
        let kubernetes = pins.build_of("kube-apiserver").unwrap();
        let (_, minor) = kubernetes.version_parts().unwrap();
        let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(
            cargo_toml.contains(&format!("\"v1_{minor}\"")),
            "k8s.io/kubernetes {} does not match the k8s-openapi feature in Cargo.toml",
            kubernetes.version
        );
        for binary in [
            "etcd",
            "kwok",
            "kwokctl",
            "kubectl",
            "helm",
            "kind",
            "dex",
            "oauth2-proxy",
        ] {
            pins.build_of(binary).unwrap();
        }
    }

    #[test]
    fn ldflags_fill_in_the_version() {
        let build = GoBuild {
            name: "k".into(),
            module: "m".into(),
            version: "v1.36.3".into(),
            local_replace_version: None,
            binaries: BTreeMap::new(),
            ldflags: vec![
                "-X a.v={version}".into(),
                "-X a.m={major}.{minor}@{module_time}".into(),
            ],
        };
        assert_eq!(build.ldflags("T").unwrap(), "-X a.v=v1.36.3 -X a.m=1.36@T");
    }
}
