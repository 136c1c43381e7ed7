//! From loaded data to the engine's resources: the part of every module's declaration that is
//! the same for all of them (its manifests, Helm releases and generated secrets as written in
//! `infra/`). Modules add what only they know: outputs, explicit dependencies, the cluster,
//! pinned upstream files.

use std::collections::BTreeSet;

use engine::{
    Address, AddressError, ChartSource as EngineChart, Encoding, GeneratedSecretSpec, Generator,
    HelmReleaseSpec, Ownership as EngineOwnership, Resource, ResourceKind, ResourceSpec,
};

use crate::{ChartSource, ConfigError, Environment, Ownership, SecretEncoding};

impl Environment {
    /// Every manifest, Helm release and generated secret of `module`, as engine resources.
    ///
    /// A release is installed with `--create-namespace` unless the configuration declares its
    /// namespace as an object (then the namespace edge orders them instead).
    pub fn declared_resources(&self, module: &str) -> Result<Vec<Resource>, ConfigError> {
        let declared_namespaces: BTreeSet<&str> = self
            .manifests
            .iter()
            .filter(|d| d.kind() == Some("Namespace") && d.ownership == Ownership::Object)
            .filter_map(|d| d.name())
            .collect();
        let mut out = Vec::new();
        for doc in self.manifests_of(module) {
            let ownership = match doc.ownership {
                Ownership::Object => EngineOwnership::Owned,
                Ownership::FieldsOnly => EngineOwnership::FieldsOnly,
            };
            let resource = Resource::object(module, doc.value.clone(), ownership)
                .map_err(|e| self.address_error(doc, e))?;
            out.push(resource);
        }
        for release in self.releases_of(module) {
            let chart = match &release.chart {
                ChartSource::Repo {
                    repo,
                    chart,
                    version,
                    sha256,
                } => EngineChart {
                    repo: Some(repo.clone()),
                    chart: chart.clone(),
                    version: version.clone(),
                    path: None,
                    sha256: sha256.clone(),
                },
                ChartSource::Local { path } => EngineChart {
                    repo: None,
                    chart: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    version: String::new(),
                    path: Some(path.display().to_string()),
                    sha256: None,
                },
            };
            let address = Address::new(module, ResourceKind::HelmRelease, &release.name)
                .map_err(|e| self.address_error(&release.values, e))?;
            out.push(Resource::new(
                address,
                ResourceSpec::HelmRelease(HelmReleaseSpec {
                    release: release.name.clone(),
                    namespace: release.namespace.clone(),
                    create_namespace: !declared_namespaces.contains(release.namespace.as_str()),
                    chart,
                    values: release.values.value.clone(),
                    sensitive_paths: Vec::new(),
                }),
            ));
        }
        for secret in self.generated_secrets_of(module) {
            let address = Address::new(module, ResourceKind::GeneratedSecret, &secret.name)
                .map_err(|e| {
                    ConfigError::new(
                        crate::Location {
                            file: secret.file.clone(),
                            line: 0,
                            column: 0,
                        },
                        "metadata.name",
                        e.to_string(),
                    )
                })?;
            let generated = secret
                .generated
                .iter()
                .map(|(k, g)| {
                    let encoding = match g.encoding {
                        SecretEncoding::Base64url => Encoding::Base64Url,
                        SecretEncoding::Base64 => Encoding::Base64,
                        SecretEncoding::Hex => Encoding::Hex,
                    };
                    (
                        k.clone(),
                        Generator {
                            bytes: g.bytes,
                            encoding,
                        },
                    )
                })
                .collect();
            out.push(Resource::new(
                address,
                ResourceSpec::GeneratedSecret(GeneratedSecretSpec {
                    name: secret.name.clone(),
                    namespace: secret.namespace.clone(),
                    plain: secret.plain.clone(),
                    generated,
                }),
            ));
        }
        Ok(out)
    }

    fn address_error(&self, doc: &crate::Document, e: AddressError) -> ConfigError {
        let location = self
            .locate_in(doc, "metadata.name")
            .unwrap_or(crate::Location {
                file: doc.file.clone(),
                line: 0,
                column: 0,
            });
        ConfigError::new(location, "metadata.name", e.to_string())
    }
}
