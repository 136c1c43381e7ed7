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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::ResourceSpec;

    #[test]
    fn the_policy_protects_every_path_and_waits_for_the_authorizer() {
        let env = config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra"),
            None,
            &xtask::REGISTRY,
        )
        .expect("infra/ loads");
        let module = declare(&env).unwrap();
        let policy = &module.resources[0];
        assert_eq!(
            policy.address.to_string(),
            "policy.object.authorizationpolicy/default/oauth2-policy"
        );
        let ResourceSpec::Object(o) = &policy.spec else {
            panic!("an object")
        };
        assert_eq!(o.manifest["spec"]["action"], "CUSTOM");
        let paths = &o.manifest["spec"]["rules"][0]["to"][0]["operation"]["paths"];
        assert_eq!(
            paths,
            &serde_json::json!(["/*"]),
            "NOTES.md 1: `/` alone matches only the root"
        );
        assert!(
            policy
                .depends_on
                .contains(&Dependency::Output(OutputRef::new(
                    "sso",
                    "ext_authz_service"
                )))
        );
    }
}
