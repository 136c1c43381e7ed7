//! Loads an environment from `infra/` (YAML the user edits) into typed data, with errors that
//! name the file, line, column and field.
//!
//! ```no_run
//! # let modules: config::Registry = &[]; // xtask's registry of module crates
//! let env = config::load(std::path::Path::new("infra"), Some("kwok"), modules).unwrap_or_else(|errors| {
//!     eprintln!("{errors}");
//!     std::process::exit(1);
//! });
//! for release in &env.releases {
//!     println!("{} {} in {}", release.module, release.name, release.namespace);
//! }
//! ```
//!
//! What is read (see `docs/changing-the-environment.md` for the user's side):
//! - `environment.yaml`, deep-merged with `envs/<name>.yaml` -> [`Settings`], and the sections
//!   modules own (`sso:`) -> [`Section`]s, which each module reads and checks itself;
//! - `pins/gateway-api.yaml` -> [`GatewayApiPins`] for the chosen Gateway API release, and the
//!   Istio / Gateway API / Kubernetes compatibility table;
//! - `modules.yaml`: which values files and manifests belong to which module ->
//!   [`ReleaseConfig`]s, [`Document`]s and [`GeneratedSecret`]s.
//!
//! `${env.<path>}` placeholders are substituted here; `${output.<module>.<name>}` and
//! `${secret.<module>.<name>}` stay in the strings verbatim for the engine, which can map them
//! back to a file position with [`Environment::locate`].
//!
//! **Invariant:** reads files only; never contacts a cluster.

mod de;
mod declare;
mod error;
mod literal_secrets;
mod load;
mod module;
mod pins;
mod placeholder;
mod settings;
mod suggest;
pub mod validate;
mod yaml;
mod yaml11;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::{ConfigError, Errors, Location};
pub use load::load;
pub use module::{
    ModuleDef, OtherEnvironment, ProvidedVersion, Registry, Section, VersionCheck, VersionKey,
};
pub use pins::{Compatibility, PinnedEntry, PinnedObject, PinnedRelease, Pins};
pub use placeholder::{Placeholder, PlaceholderError, placeholders};
pub use settings::{ChartSpec, Hosts, Settings, Versions, parse_minor};
pub use suggest::help_for;

/// The whole environment as typed data: what the modules declare their resources from.
#[derive(Clone, Debug)]
pub struct Environment {
    /// The infra directory this was loaded from (as given to [`load`]).
    pub infra_dir: PathBuf,
    /// The environment file, merged and resolved.
    pub settings: Settings,
    /// The sections of the environment file that modules own (`sso:`), by module name.
    pub sections: BTreeMap<String, Section>,
    /// The pins file (`pins/gateway-api.yaml`) as written; the gateway module picks its
    /// release's files.
    pub pins: Pins,
    /// Helm releases in `modules.yaml` order (module by module, in install order within one).
    pub releases: Vec<ReleaseConfig>,
    /// Kubernetes objects to apply, in file order, each tagged with its module.
    pub manifests: Vec<Document>,
    /// Secrets whose sensitive keys are generated at apply.
    pub generated_secrets: Vec<GeneratedSecret>,
    pub(crate) sources: yaml::SourceMap,
}

/// One YAML document of `infra/` (a values file or a manifest), with `${env.*}` substituted.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The file it came from (infra directory joined with the relative path).
    pub file: PathBuf,
    /// 0-based index of the document in its file (`---` separated).
    pub index_in_file: usize,
    /// The module it belongs to (`modules.yaml`).
    pub module: String,
    /// How much of the object envctl owns (manifests only; values are always `Object`).
    pub ownership: Ownership,
    /// The content. Strings may still hold `${output.*}` / `${secret.*}` placeholders.
    pub value: Value,
}

impl Document {
    /// `apiVersion`, if a string.
    pub fn api_version(&self) -> Option<&str> {
        self.value.get("apiVersion")?.as_str()
    }
    /// `kind`, if a string.
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind")?.as_str()
    }
    /// `metadata.name`, if a string.
    pub fn name(&self) -> Option<&str> {
        self.value.get("metadata")?.get("name")?.as_str()
    }
    /// `metadata.namespace`, if a string (absent for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        self.value.get("metadata")?.get("namespace")?.as_str()
    }
}

/// How much of an object envctl owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ownership {
    /// envctl creates, updates and deletes the object.
    #[default]
    Object,
    /// The object belongs to someone else (e.g. namespace `default`): envctl applies only the
    /// fields written in the manifest, never creates or deletes the object, and on destroy
    /// removes only its fields. Written as annotation `envctl.dev/ownership: fields` (removed
    /// from [`Document::value`]).
    FieldsOnly,
}

/// A Helm release: where its chart comes from and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseConfig {
    /// Release name (`istiod`).
    pub name: String,
    /// Owning module (`mesh`).
    pub module: String,
    /// Namespace the release is installed in.
    pub namespace: String,
    pub chart: ChartSource,
    /// The values file (a mapping; may hold `${output.*}` / `${secret.*}` placeholders).
    pub values: Document,
}

/// Where a chart comes from, resolved from `charts.<release>` and `versions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChartSource {
    /// A chart in a Helm repository.
    Repo {
        repo: String,
        chart: String,
        version: String,
        /// Expected sha256 of the chart archive, if pinned.
        sha256: Option<String>,
    },
    /// A chart directory on disk (an existing directory with a `Chart.yaml`).
    Local {
        /// The infra directory joined with `charts.<release>.path`.
        path: PathBuf,
    },
}

/// A Kubernetes Secret whose sensitive keys are generated once at apply (a `GeneratedSecret`
/// document, `apiVersion: envctl.dev/v1`). Values never hold its material: `${secret.<module>.
/// <name>}` resolves to the Secret's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedSecret {
    pub module: String,
    pub name: String,
    pub namespace: String,
    /// Keys stored as written (not sensitive), `${env.*}` substituted.
    pub plain: BTreeMap<String, String>,
    /// Keys generated at apply.
    pub generated: BTreeMap<String, GeneratedKey>,
    /// Where it is declared.
    pub file: PathBuf,
    pub index_in_file: usize,
}

/// How to generate one key of a [`GeneratedSecret`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratedKey {
    /// Number of random bytes (1-1024).
    pub bytes: usize,
    pub encoding: SecretEncoding,
}

/// How the random bytes are written into the Secret's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    /// URL-safe base64 with padding (`-`, `_`, `=`): 32 bytes -> 44 characters. What OAuth2
    /// Proxy decodes for its cookie secret.
    Base64url,
    /// Standard base64 with padding.
    Base64,
    /// Lowercase hex: 32 bytes -> 64 characters.
    Hex,
}

impl Environment {
    /// Where `what` is in `file`: `what` is either a field path (`spec.gatewayClassName`,
    /// `hostAliases[0].ip`, `metadata.labels["app.kubernetes.io/name"]`; the first document of
    /// the file that has it) or a placeholder's text (`${output.sso.dex_cluster_ip}`; its first
    /// occurrence, pointing at the `$`).
    ///
    /// `file` is compared as stored in [`Document::file`]; a path relative to the infra
    /// directory (`sso/oauth2-proxy.values.yaml`) works too.
    pub fn locate(&self, file: &Path, what: &str) -> Option<Location> {
        let file = self.sources.resolve(&self.infra_dir, file)?;
        if what.starts_with("${") {
            file.find_text(what)
        } else {
            (0..file.docs.len()).find_map(|i| file.locate_field(i, what))
        }
    }

    /// Where `field_path` is in one document (e.g. a value of a release's values, or a field of
    /// a manifest). `None` when the document has no such field.
    pub fn locate_in(&self, document: &Document, field_path: &str) -> Option<Location> {
        self.sources
            .resolve(&self.infra_dir, &document.file)?
            .locate_field(document.index_in_file, field_path)
    }

    /// Where a setting of the environment file was written (in `environment.yaml` or in the
    /// overlay that replaced it), e.g. `cluster.kind.hostPort`.
    pub fn locate_setting(&self, field_path: &str) -> Option<Location> {
        self.sources.locate_setting(field_path)
    }

    /// A [`ConfigError`] at `what` in `file` (see [`Environment::locate`]); at the file itself
    /// when it cannot be found. For errors found after loading, e.g. "no module produces
    /// `${output.sso.dex_cluster_ip}`".
    pub fn error_at(&self, file: &Path, what: &str, message: impl Into<String>) -> ConfigError {
        let location = self.locate(file, what).unwrap_or(Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        });
        let field = if what.starts_with("${") {
            self.sources
                .resolve(&self.infra_dir, file)
                .and_then(|f| f.field_of_text(what))
                .unwrap_or_default()
        } else {
            what.to_string()
        };
        ConfigError::new(location, field, message)
    }

    /// The section of the environment file that module `name` owns.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// The release named `name`.
    pub fn release(&self, name: &str) -> Option<&ReleaseConfig> {
        self.releases.iter().find(|r| r.name == name)
    }

    /// The releases of one module, in order.
    pub fn releases_of<'a>(&'a self, module: &'a str) -> impl Iterator<Item = &'a ReleaseConfig> {
        self.releases.iter().filter(move |r| r.module == module)
    }

    /// The manifests of one module, in order.
    pub fn manifests_of<'a>(&'a self, module: &'a str) -> impl Iterator<Item = &'a Document> {
        self.manifests.iter().filter(move |d| d.module == module)
    }

    /// The generated secrets of one module.
    pub fn generated_secrets_of<'a>(
        &'a self,
        module: &'a str,
    ) -> impl Iterator<Item = &'a GeneratedSecret> {
        self.generated_secrets
            .iter()
            .filter(move |s| s.module == module)
    }
}
