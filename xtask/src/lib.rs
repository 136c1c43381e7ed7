//! The registry of modules: the one place that lists every module crate. The `cargo xtask`
//! binary (`main.rs`) and the tests that load `infra/` read it from here.

/// Every module, in the order their releases and manifests are read (one line per crate).
pub static MODULES: config::Registry<'static> = &[
    &cluster::MODULE,
    &gateway::MODULE,
    &mesh::MODULE,
    &sso::MODULE,
    &policy::MODULE,
];
