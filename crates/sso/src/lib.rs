//! Module `sso`: Dex (OIDC provider) and OAuth2 Proxy via Helm, their generated credentials,
//! and the HTTPRoutes that expose them through the gateway.
//!
//! OAuth2 Proxy resolves Dex's public host name inside the cluster through a host alias to
//! Dex's ClusterIP: an output known only after Dex is installed, so OAuth2 Proxy (which runs
//! OIDC discovery at start) always comes after Dex.

use config::{ConfigError, Environment};
use engine::{Address, LiveField, Module, Output, OutputRef, ResourceKind};
use serde_json::Value;

/// This module's name: the first part of its addresses.
pub const NAME: &str = "sso";

/// The module, as xtask's registry lists it.
pub static MODULE: Sso = Sso;

/// Module `sso`: Dex and OAuth2 Proxy.
pub struct Sso;

/// `plan`, `apply` and `destroy` of this module's part (`--module sso`).
impl live::session::ModuleCommands for Sso {
    fn module_name(&self) -> &'static str {
        NAME
    }
}

impl config::ModuleDef for Sso {
    fn name(&self) -> &'static str {
        NAME
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["dex_cluster_ip", "ext_authz_service"]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        declare(env)
    }
}

/// What the sso module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let release = |name: &str| {
        Address::new(NAME, ResourceKind::HelmRelease, name).expect("valid release name")
    };
    let mut module = Module::new(NAME);
    module.resources.extend(env.declared_resources(NAME)?);
    if let Some(dex) = env.release("dex") {
        // Read from Service `dex` (the chart names it after the release), once Dex is installed.
        let service = LiveField {
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: Some(dex.namespace.clone()),
            name: dex.name.clone(),
            pointer: "/spec/clusterIP".into(),
        };
        module = module.with_output(Output::after_apply(
            OutputRef::new(NAME, "dex_cluster_ip"),
            release("dex"),
            service,
        ));
    }
    if let Some(proxy) = env.release("oauth2-proxy") {
        // The service istiod's ext-authz provider calls (infra/mesh/istiod.values.yaml).
        let service = format!("{}.{}.svc.cluster.local", proxy.name, proxy.namespace);
        module = module.with_output(Output::known(
            OutputRef::new(NAME, "ext_authz_service"),
            release("oauth2-proxy"),
            Value::String(service),
        ));
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dex_cluster_ip_is_known_only_after_apply() {
        let env = config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra"),
            None,
            &xtask::REGISTRY,
        )
        .expect("infra/ loads");
        let module = declare(&env).unwrap();
        let ip = module
            .outputs
            .iter()
            .find(|o| o.r#ref.name == "dex_cluster_ip")
            .unwrap();
        assert_eq!(ip.value, None);
        assert_eq!(ip.producer.to_string(), "sso.helm_release.dex");
        let svc = module
            .outputs
            .iter()
            .find(|o| o.r#ref.name == "ext_authz_service")
            .unwrap();
        assert_eq!(
            svc.value,
            Some(Value::String("oauth2-proxy.sso.svc.cluster.local".into()))
        );
        assert!(
            module
                .resources
                .iter()
                .any(|r| r.address.to_string() == "sso.generated_secret.oauth2-proxy")
        );
    }
}
