//! What the layers below the module crates know of a module: the interface each module crate
//! implements once ([`ModuleDef`]), and the registry of them that the caller (xtask) hands to
//! [`crate::load`]. Nothing here names a particular module.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::de::from_node;
use crate::error::Location;
use crate::yaml::{Node, locate_in_tree};
use crate::{Compatibility, ConfigError, Environment, Pins, Settings};

/// One module of the environment: a crate under `crates/` that exports one value implementing
/// this, listed once in xtask's registry.
pub trait ModuleDef: Sync {
    /// The module's name: the first part of its addresses (`mesh.helm_release.istiod`), its
    /// key in `modules.yaml` and its directory under `infra/`.
    fn name(&self) -> &'static str;

    /// The outputs the module declares, by name (`gateway_class` for
    /// `${output.mesh.gateway_class}`). `config` refuses a placeholder naming any other; the
    /// module's [`ModuleDef::declare`] must produce exactly these.
    fn outputs(&self) -> &'static [&'static str];

    /// The keys of `versions:` in the environment file that the module reads (`gatewayApi`).
    /// `config` refuses a key that no module declares and a missing required one.
    fn versions(&self) -> &'static [VersionKey] {
        &[]
    }

    /// The keys of `hosts:` in the environment file that the module reads (`dex`); the file
    /// must set each. `config` refuses a key that no module declares and a missing one.
    /// Two modules may declare the same key (both read it).
    fn hosts(&self) -> &'static [&'static str] {
        &[]
    }

    /// What the module wants: its resources, outputs and explicit dependencies.
    fn declare(&self, env: &Environment) -> Result<engine::Module, ConfigError>;

    /// Whether the module has a section of the environment file, under its name (`sso:`).
    /// `config` keeps the section as written ([`Section`]) and refuses a file without it;
    /// the module reads and checks it ([`ModuleDef::check_settings`]).
    fn has_settings(&self) -> bool {
        false
    }

    /// Checks the module's section: `Err` when its typed form cannot be read
    /// ([`Section::parse`]: unknown keys, wrong types; loading stops there, as for the rest of
    /// the environment file), else the values that break its rules. Every error names the
    /// file, line, column and field.
    fn check_settings(&self, _section: &Section) -> Result<Vec<ConfigError>, ConfigError> {
        Ok(Vec::new())
    }

    /// The module's cross-version rules: checks (and may complete, e.g. a version left out)
    /// the versions it installs against the pinned compatibility table, before anything else
    /// is read from them. Errors go to [`VersionCheck::push`] or [`VersionCheck::stop`].
    fn check_versions(&self, _check: &mut VersionCheck<'_>) {}

    /// The versions the module's section gives for other modules' cross-version rules, by key
    /// (the cluster's `kubernetes`, from its node image): every [`ModuleDef::check_versions`]
    /// sees them through [`VersionCheck::provided`], whatever the registry order. Called
    /// with a section that passed [`ModuleDef::check_settings`].
    fn provided_versions(&self, _section: &Section) -> Vec<ProvidedVersion> {
        Vec::new()
    }

    /// The port browsers reach the environment's hosts on, if the module's section decides it
    /// (the cluster maps the gateway to a host port): `${env.url.<key>}` carries it when it is
    /// not 80 ([`Settings::url`]). The first module of the registry that answers decides.
    fn url_port(&self, _section: &Section) -> Option<u16> {
        None
    }

    /// Rules across environments: the module's section in this environment against the same
    /// section of every other environment of the infra directory (`environment.yaml` alone and
    /// with each other overlay, those that read without error). Errors are at fields of
    /// `section` ([`Section::error`]).
    fn check_environments(
        &self,
        _section: &Section,
        _others: &[OtherEnvironment],
    ) -> Vec<ConfigError> {
        Vec::new()
    }
}

/// Another environment's section of a module, for [`ModuleDef::check_environments`].
#[derive(Clone, Debug)]
pub struct OtherEnvironment {
    /// The environment's name (`default` for `environment.yaml` alone).
    pub name: String,
    /// Its section of the module, as written (merged with its overlay).
    pub section: Section,
}

/// A version that one module's section gives and another's rules read
/// ([`ModuleDef::provided_versions`]), with the setting it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvidedVersion {
    /// What other modules ask for (`kubernetes`).
    pub key: &'static str,
    /// The version (`v1.36.1`).
    pub version: String,
    /// The setting as written, for messages (`kindest/node:v1.36.1`).
    pub written: String,
    /// The setting's field path (`cluster.kind.nodeImage`).
    pub field: String,
    location: Location,
}

impl ProvidedVersion {
    /// An error at the setting the version comes from.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.location.clone(), &self.field, message)
    }
}

/// A key of `versions:` that a module reads ([`ModuleDef::versions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionKey {
    /// The key as written (`gatewayApi`).
    pub key: &'static str,
    /// Whether the file must set it (else the module's version check may fill it in).
    pub required: bool,
}

impl VersionKey {
    /// A key the file must set.
    pub const fn required(key: &'static str) -> VersionKey {
        VersionKey {
            key,
            required: true,
        }
    }

    /// A key the file may leave out.
    pub const fn optional(key: &'static str) -> VersionKey {
        VersionKey {
            key,
            required: false,
        }
    }
}

/// A module's section of the environment file (merged with the overlay), as written: the
/// module reads its typed form with [`Section::parse`], `${env.<module>.*}` reads its values.
#[derive(Clone, Debug)]
pub struct Section {
    /// The key (the module's name).
    pub name: String,
    /// The section's value, as JSON.
    pub value: Value,
    pub(crate) node: Node,
}

impl Section {
    pub(crate) fn new(name: &str, node: Node) -> Section {
        Section {
            name: name.to_owned(),
            value: node.to_json(),
            node,
        }
    }

    /// The section as `T` (a struct of the module, usually `deny_unknown_fields`); an error
    /// names the file, line, column and field (`sso.clientId`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        from_node(&self.node, &self.name)
    }

    /// An error at `field` of the section (`clientId`, `staticUser.email`): where the file or
    /// its overlay writes it, at the section when not written.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.locate(field), self.full_field(field), message)
    }

    /// `key`'s version, given by the setting `field` of the section (written there as
    /// `written`): what [`ModuleDef::provided_versions`] returns.
    pub fn provide(
        &self,
        key: &'static str,
        field: &str,
        version: impl Into<String>,
        written: impl Into<String>,
    ) -> ProvidedVersion {
        ProvidedVersion {
            key,
            version: version.into(),
            written: written.into(),
            field: self.full_field(field),
            location: self.locate(field),
        }
    }

    /// Where the file or its overlay writes `field` of the section; the section when not
    /// written.
    fn locate(&self, field: &str) -> Location {
        locate_in_tree(&self.node, field).unwrap_or_else(|| self.node.location())
    }

    /// The section's name before the field, in the one path syntax (`sso["a.b"]`).
    fn full_field(&self, field: &str) -> String {
        match field.parse::<engine::FieldPath>() {
            Ok(path) => path
                .prefixed(&engine::FieldPath::root().key(&self.name))
                .to_string(),
            Err(_) => format!("{}.{field}", self.name),
        }
    }
}

/// What a module's [`ModuleDef::check_versions`] sees: the settings of the environment file
/// (merged with its overlay), the compatibility table of `pins/gateway-api.yaml`, and where
/// each setting was written.
pub struct VersionCheck<'a> {
    /// The settings; a module may fill in a version the file leaves out.
    pub settings: &'a mut Settings,
    /// The rows of the compatibility table, as written.
    pub compatibility: &'a [Compatibility],
    /// The whole pins file, as written (the pinned files per release).
    pub pins: &'a Pins,
    /// The file the table is in (for help texts), relative to the infra directory.
    pub pins_file: &'static str,
    pub(crate) tree: &'a Node,
    pub(crate) provided: Vec<ProvidedVersion>,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) stopped: bool,
}

impl VersionCheck<'_> {
    /// The version `key` another module's section gives ([`ModuleDef::provided_versions`]),
    /// if one does (the cluster gives `kubernetes` only for a cluster it creates from a node
    /// image).
    pub fn provided(&self, key: &str) -> Option<&ProvidedVersion> {
        self.provided.iter().find(|p| p.key == key)
    }

    /// Whether the environment file (or its overlay) writes `field` (`versions.istio`).
    pub fn is_written(&self, field: &str) -> bool {
        locate_in_tree(self.tree, field).is_some()
    }

    /// An error at the setting `field` (where the file or overlay writes it; at the file's
    /// top when it is not written).
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        let location: Location =
            locate_in_tree(self.tree, field).unwrap_or_else(|| self.tree.location());
        ConfigError::new(location, field, message)
    }

    /// Records an error; loading goes on (more errors may be found).
    pub fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Records an error after which the versions cannot be used: the modules after this one
    /// are not checked, and loading stops after the version checks.
    pub fn stop(&mut self, error: ConfigError) {
        self.errors.push(error);
        self.stopped = true;
    }
}

/// The modules of an environment, in the order their releases and manifests are read.
pub type Registry<'a> = &'a [&'a dyn ModuleDef];

/// `<module>.<output>` for every output of every module, in registry order.
pub(crate) fn known_outputs(modules: Registry<'_>) -> Vec<String> {
    modules
        .iter()
        .flat_map(|m| m.outputs().iter().map(|o| format!("{}.{o}", m.name())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::SourceFile;

    /// A section's errors name the field in engine::FieldPath's syntax, the section first.
    #[test]
    fn section_errors_prefix_the_field_path_with_the_section() {
        let (file, errors) = SourceFile::parse(
            std::path::Path::new("environment.yaml"),
            "sso:\n  a.b: 1\n  c:\n    d: 2\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let section = Section::new("sso", file.docs[0].get("sso").unwrap().clone());
        let quoted = section.error("[\"a.b\"]", "m");
        assert_eq!(quoted.field, "sso[\"a.b\"]");
        assert_eq!(quoted.line, 2);
        let nested = section.error("c.d", "m");
        assert_eq!((nested.field.as_str(), nested.line), ("sso.c.d", 4));
        assert_eq!(section.error("", "m").field, "sso");
    }
}
