//! Module `mesh`: Istio via Helm (`istio-base`, `istio-cni`, `istiod`).
//!
//! Order inside the module: base (the Istio CRDs) before cni and istiod; cni rolled out before
//! istiod, so that no injected pod starts before the CNI plugin is on the node (NOTES.md).
//! istiod waits for the Gateway API CRDs (it creates the `istio` GatewayClass) and carries the
//! ext-authz provider in its mesh config before the CUSTOM policy exists.

use config::{ConfigError, Environment};
use engine::{Address, Dependency, Module, Output, OutputRef, ResourceKind};
use serde_json::Value;

/// This module's name: the first part of its addresses.
pub const NAME: &str = "mesh";

/// The module, as xtask's registry lists it.
pub static MODULE: Mesh = Mesh;

/// Module `mesh`: Istio via Helm.
pub struct Mesh;

impl config::ModuleDef for Mesh {
    fn name(&self) -> &'static str {
        NAME
    }

    fn outputs(&self) -> &'static [&'static str] {
        &[
            "gateway_class",
            "ext_authz_provider",
            "injection_ready",
            "proxy_config_hash",
        ]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        declare(env)
    }
}

/// What the mesh module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let release = |name: &str| {
        Address::new(NAME, ResourceKind::HelmRelease, name).expect("valid release name")
    };
    let (base, cni, istiod) = (
        release("istio-base"),
        release("istio-cni"),
        release("istiod"),
    );
    let mut module = Module::new(NAME);
    for mut resource in env.declared_resources(NAME)? {
        if resource.address == cni || resource.address == istiod {
            resource = resource.depends_on(Dependency::Resource(base.clone()));
        }
        if resource.address == istiod {
            resource = resource
                .depends_on(Dependency::Resource(cni.clone()))
                .depends_on(Dependency::Output(OutputRef::new(
                    "gateway",
                    "gateway_api_crds",
                )));
        }
        module.resources.push(resource);
    }
    let known = |name: &str, value: &str| {
        Output::known(
            OutputRef::new(NAME, name),
            istiod.clone(),
            Value::String(value.to_owned()),
        )
    };
    Ok(module
        // istiod creates this GatewayClass when it starts.
        .with_output(known("gateway_class", "istio"))
        // The extension provider in istiod's meshConfig (infra/mesh/istiod.values.yaml).
        .with_output(known(
            "ext_authz_provider",
            &env.settings.sso.ext_authz.provider,
        ))
        // The value of the `istio-injection` namespace label istiod's injector selects.
        .with_output(known("injection_ready", "enabled"))
        // What proxies read only at start: workloads carry it as a pod annotation, so that they
        // restart when (and only when) it changes.
        .with_output(known("proxy_config_hash", &proxy_config_hash(env))))
}

/// A short hash of istiod's `meshConfig.defaultConfig` (the proxy bootstrap config).
pub fn proxy_config_hash(env: &Environment) -> String {
    let default_config = env
        .release("istiod")
        .and_then(|r| r.values.value.pointer("/meshConfig/defaultConfig").cloned())
        .unwrap_or(Value::Null);
    engine::canonical_hash(&default_config)[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istiod_comes_after_base_cni_and_the_gateway_api_crds() {
        let env = config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra"),
            None,
            xtask::MODULES,
        )
        .expect("infra/ loads");
        let module = declare(&env).unwrap();
        let istiod = module
            .resources
            .iter()
            .find(|r| r.address.name == "istiod")
            .unwrap();
        let deps: Vec<String> = istiod
            .depends_on
            .iter()
            .map(|d| match d {
                Dependency::Resource(a) => a.to_string(),
                Dependency::Output(o) => o.to_string(),
            })
            .collect();
        assert_eq!(
            deps,
            [
                "mesh.helm_release.istio-base",
                "mesh.helm_release.istio-cni",
                "gateway.gateway_api_crds"
            ]
        );
        assert_eq!(
            module
                .outputs
                .iter()
                .find(|o| o.r#ref.name == "ext_authz_provider")
                .unwrap()
                .value,
            Some(Value::String("oauth2-proxy".into()))
        );
    }
}
