//! Module `policy`: the Istio CUSTOM AuthorizationPolicy that sends every request to the app
//! through OAuth2 Proxy. It is applied only once istiod's mesh config names the provider (else
//! istiod generates deny-all config) and OAuth2 Proxy serves.

use config::{ConfigError, Environment};
use engine::{Dependency, Module, OutputRef};

/// This module's name: the first part of its addresses.
pub const NAME: &str = "policy";

/// The module, as xtask's registry lists it.
pub static MODULE: Policy = Policy;

/// Module `policy`: the CUSTOM AuthorizationPolicy.
pub struct Policy;

/// `plan`, `apply` and `destroy` of this module's part (`--module policy`).
impl live::session::ModuleCommands for Policy {
    fn module_name(&self) -> &'static str {
        NAME
    }
}

impl config::ModuleDef for Policy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn outputs(&self) -> &'static [&'static str] {
        &[]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        declare(env)
    }
}

/// What the policy module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let mut module = Module::new(NAME);
    for resource in env.declared_resources(NAME)? {
        module
            .resources
            .push(resource.depends_on(Dependency::Output(OutputRef::new(
                "sso",
                "ext_authz_service",
            ))));
    }
    Ok(module)
}
