//! The registry of modules: the one place that lists every module crate. The `cargo xtask`
//! binary (`main.rs`) and the tests that load `infra/` read it from here.

use std::sync::LazyLock;

/// What a module crate's `MODULE` is: its definition for `config` ([`config::ModuleDef`]) and
/// its own commands against the cluster ([`live::session::ModuleCommands`]).
pub trait Module: config::ModuleDef + live::session::ModuleCommands {}

impl<T: config::ModuleDef + live::session::ModuleCommands> Module for T {}

/// Every module, in the order their releases and manifests are read (one line per crate).
pub static MODULES: &[&dyn Module] = &[
    &cluster::MODULE,
    &gateway::MODULE,
    &mesh::MODULE,
    &sso::MODULE,
    &policy::MODULE,
];

/// [`MODULES`] as `config` reads them: what [`config::load`] takes.
pub static REGISTRY: LazyLock<Vec<&'static dyn config::ModuleDef>> = LazyLock::new(|| {
    MODULES
        .iter()
        .map(|m| *m as &dyn config::ModuleDef)
        .collect()
});

/// The module `name`, from the registry.
pub fn module(name: &str) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.name() == name)
}

/// The readiness rules of the modules that have one (what apply waits for, and how).
pub fn readiness_rules() -> Vec<&'static dyn live::ReadinessRule> {
    MODULES.iter().filter_map(|m| m.readiness()).collect()
}
