//! What the layers below the module crates know of a module: the interface each module crate
//! implements once ([`ModuleDef`]), and the registry of them that the caller (xtask) hands to
//! [`crate::load`]. Nothing here names a particular module.

use crate::{ConfigError, Environment};

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

/// The module named `name`.
pub fn find<'a>(modules: Registry<'a>, name: &str) -> Option<&'a dyn ModuleDef> {
    modules.iter().copied().find(|m| m.name() == name)
}
