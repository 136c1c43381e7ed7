//! What the layers below the module crates know of a module: the interface each module crate
//! implements once ([`ModuleDef`]), and the registry of them that the caller (xtask) hands to
//! [`crate::load`]. Nothing here names a particular module.

use crate::error::Location;
use crate::yaml::{Node, locate_in_tree};
use crate::{Compatibility, ConfigError, Environment, Settings};

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

    /// What the module wants: its resources, outputs and explicit dependencies.
    fn declare(&self, env: &Environment) -> Result<engine::Module, ConfigError>;

    /// The module's cross-version rules: checks (and may complete, e.g. a version left out)
    /// the versions it installs against the pinned compatibility table, before anything else
    /// is read from them. Errors go to [`VersionCheck::push`] or [`VersionCheck::stop`].
    fn check_versions(&self, _check: &mut VersionCheck<'_>) {}
}

/// What a module's [`ModuleDef::check_versions`] sees: the settings of the environment file
/// (merged with its overlay), the compatibility table of `pins/gateway-api.yaml`, and where
/// each setting was written.
pub struct VersionCheck<'a> {
    /// The settings; a module may fill in a version the file leaves out.
    pub settings: &'a mut Settings,
    /// The rows of the compatibility table, as written.
    pub compatibility: &'a [Compatibility],
    /// The file the table is in (for help texts), relative to the infra directory.
    pub pins_file: &'static str,
    pub(crate) tree: &'a Node,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) stopped: bool,
}

impl VersionCheck<'_> {
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

    /// Records an error after which the versions cannot be used: loading stops after the
    /// version checks.
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
