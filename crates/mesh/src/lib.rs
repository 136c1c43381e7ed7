//! Module `mesh`: Istio via Helm (`istio-base`, `istio-cni`, `istiod`).
//!
//! Order inside the module: base (the Istio CRDs) before cni and istiod; cni rolled out before
//! istiod, so that no injected pod starts before the CNI plugin is on the node (NOTES.md).
//! istiod waits for the Gateway API CRDs (it creates the `istio` GatewayClass) and carries the
//! ext-authz provider in its mesh config before the CUSTOM policy exists.

use config::{ConfigError, Environment, VersionCheck, VersionKey};
use engine::{Address, Dependency, Module, Output, OutputRef, ResourceKind};
use serde_json::Value;

/// This module's name: the first part of its addresses.
pub const NAME: &str = "mesh";

/// The module, as xtask's registry lists it.
pub static MODULE: Mesh = Mesh;

/// Module `mesh`: Istio via Helm.
pub struct Mesh;

/// `plan`, `apply` and `destroy` of this module's part (`--module mesh`).
impl live::session::ModuleCommands for Mesh {
    fn module_name(&self) -> &'static str {
        NAME
    }
}

/// The keys of `versions:` this module reads.
const VERSIONS: &[VersionKey] = &[VersionKey::optional(ISTIO)];

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

    fn versions(&self) -> &'static [VersionKey] {
        VERSIONS
    }

    fn check_versions(&self, check: &mut VersionCheck<'_>) {
        check_istio_version(check);
    }
}

/// The Istio release (= chart version) in `versions:`; optional, the compatibility table's
/// default for `versions.gatewayApi` when left out.
const ISTIO: &str = "istio";

/// The gateway module's key of `versions:`, which Istio must pair with.
const GATEWAY_API: &str = "gatewayApi";

/// Istio with Gateway API and Kubernetes: `versions.istio` (filled from the compatibility row
/// of `versions.gatewayApi` when left out) must be a release whose minor is in the table and
/// pairs with the chosen Gateway API; the cluster's Kubernetes, when a module provides it
/// (`kubernetes`: the cluster module, for a kind node image), must be one that Istio minor
/// supports.
pub fn check_istio_version(check: &mut VersionCheck<'_>) {
    let Some(istio) = istio_release(check) else {
        return;
    };
    let gateway_api = gateway_api(check).to_owned();
    let pins_file = check.pins_file;
    let istio_field = if check.is_written("versions.istio") {
        "versions.istio"
    } else {
        "versions.gatewayApi"
    };
    let Some((major, minor)) = config::parse_minor(&istio) else {
        let error = check
            .error(istio_field, format!("invalid Istio version `{istio}`"))
            .with_help("write a release like 1.30.3");
        return check.stop(error);
    };
    let istio_minor = format!("{major}.{minor}");
    let Some(row) = check
        .compatibility
        .iter()
        .find(|row| row.istio_minor == istio_minor)
        .cloned()
    else {
        let known: Vec<String> = check
            .compatibility
            .iter()
            .map(|r| format!("`{}`", r.istio_minor))
            .collect();
        let error = check
            .error(
                istio_field,
                format!("Istio {istio} is not in the compatibility table"),
            )
            .with_help(format!(
                "use one of the Istio minors {}, or add a row to `compatibility` in {pins_file}",
                known.join(", ")
            ));
        return check.stop(error);
    };
    if row.gateway_api != gateway_api {
        let error = unpaired(check, &istio, &istio_minor, &row);
        return check.stop(error);
    }
    check_kubernetes(check, &istio_minor, &row);
}

/// `versions.istio`, or the table's default Istio release for `versions.gatewayApi` (written
/// into the settings). `None` (error recorded) when there is neither.
fn istio_release(check: &mut VersionCheck<'_>) -> Option<String> {
    if check.settings.version(ISTIO).unwrap_or_default().is_empty() {
        let gateway_api = gateway_api(check).to_owned();
        let default = check
            .compatibility
            .iter()
            .rev()
            .filter(|row| row.gateway_api == gateway_api)
            .find_map(|row| row.istio.clone());
        match default {
            Some(istio) => {
                check.settings.versions.insert(ISTIO.to_owned(), istio);
            }
            None => {
                let error = check
                    .error(
                        "versions.gatewayApi",
                        format!(
                            "no default Istio release for Gateway API `{gateway_api}` in the compatibility table"
                        ),
                    )
                    .with_help("set `versions.istio` to a release of a matching Istio minor");
                check.stop(error);
                return None;
            }
        }
    }
    check.settings.version(ISTIO).map(str::to_owned)
}

/// `versions.gatewayApi`: the gateway module's setting, which the pairing is checked against.
fn gateway_api<'a>(check: &'a VersionCheck<'_>) -> &'a str {
    check.settings.version(GATEWAY_API).unwrap_or_default()
}

/// The error for an Istio release whose row names another Gateway API release.
fn unpaired(
    check: &VersionCheck<'_>,
    istio: &str,
    istio_minor: &str,
    row: &config::Compatibility,
) -> ConfigError {
    let gateway_api = gateway_api(check);
    let pairs: Vec<String> = check
        .compatibility
        .iter()
        .filter(|r| r.gateway_api == gateway_api)
        .map(|r| format!("{}.x", r.istio_minor))
        .collect();
    let other = if pairs.is_empty() {
        String::new()
    } else {
        format!(
            ", or keep {gateway_api} with Istio {} (set versions.istio, or remove it to take the table's default)",
            pairs.join(" / ")
        )
    };
    check
        .error(
            "versions.gatewayApi",
            format!(
                "Gateway API {gateway_api} does not pair with Istio {istio}: Istio {istio_minor} pairs with Gateway API {}",
                row.gateway_api
            ),
        )
        .with_help(format!("set versions.gatewayApi: {}{other}", row.gateway_api))
}

/// The version another module's section gives for the cluster's Kubernetes (the cluster
/// module, from a kind node image; no other provider says which Kubernetes it runs before it
/// is reached).
const KUBERNETES: &str = "kubernetes";

/// A cluster's Kubernetes (a kind node image's) older than the oldest the Istio minor
/// supports, at the setting it comes from.
fn check_kubernetes(check: &mut VersionCheck<'_>, istio_minor: &str, row: &config::Compatibility) {
    let Some(kubernetes) = check.provided(KUBERNETES) else {
        return;
    };
    let (Some(have), Some(need)) = (
        config::parse_minor(&kubernetes.version),
        config::parse_minor(&row.min_kubernetes),
    ) else {
        return;
    };
    if have < need {
        let error = kubernetes
            .error(format!(
                "Kubernetes {}.{} ({}) is older than {}, the oldest Istio {istio_minor} supports",
                have.0, have.1, kubernetes.written, row.min_kubernetes
            ))
            .with_help(format!(
                "use a kindest/node image of Kubernetes {} or newer, e.g. kindest/node:v1.36.1",
                row.min_kubernetes
            ));
        check.push(error);
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
        .with_output(known("ext_authz_provider", &ext_authz_provider(env)?))
        // The value of the `istio-injection` namespace label istiod's injector selects.
        .with_output(known("injection_ready", "enabled"))
        // What proxies read only at start: workloads carry it as a pod annotation, so that they
        // restart when (and only when) it changes.
        .with_output(known("proxy_config_hash", &proxy_config_hash(env))))
}

/// The name of istiod's ext-authz extension provider: the entry of
/// `meshConfig.extensionProviders` with `envoyExtAuthzHttp`.
pub fn ext_authz_provider(env: &Environment) -> Result<String, ConfigError> {
    let istiod = env.release("istiod");
    istiod
        .and_then(|r| r.values.value.pointer("/meshConfig/extensionProviders"))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("envoyExtAuthzHttp").is_some())
        .and_then(|p| p.get("name")?.as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            let file = istiod.map_or_else(
                || env.infra_dir.join("modules.yaml"),
                |r| r.values.file.clone(),
            );
            env.error_at(
                &file,
                "meshConfig.extensionProviders",
                "istiod's meshConfig names no `envoyExtAuthzHttp` extension provider (the CUSTOM policy's)",
            )
            .with_help("add one with `name:` and `envoyExtAuthzHttp:` (see infra/mesh/istiod.values.yaml)")
        })
}

/// A short hash of istiod's `meshConfig.defaultConfig` (the proxy bootstrap config).
pub fn proxy_config_hash(env: &Environment) -> String {
    let default_config = env
        .release("istiod")
        .and_then(|r| r.values.value.pointer("/meshConfig/defaultConfig").cloned())
        .unwrap_or(Value::Null);
    engine::canonical_hash(&default_config)[..16].to_owned()
}
