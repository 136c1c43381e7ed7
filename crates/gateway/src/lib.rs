//! Module `gateway`: the Gateway API CRDs (pinned upstream files), the Istio-class Gateway with
//! its NodePort declared through `spec.infrastructure.parametersRef`, and the nginx demo app
//! behind an HTTPRoute, in a namespace labelled for sidecar injection.

use config::{ConfigError, Environment, PinnedObject, Pins, VersionCheck, VersionKey};
use engine::{Module, Output, OutputRef, Ownership, Resource, ResourceSpec};
use serde_json::{Value, json};

pub mod readiness;

/// This module's name: the first part of its addresses.
pub const NAME: &str = "gateway";

/// The module, as xtask's registry lists it.
pub static MODULE: Gateway = Gateway;

/// Module `gateway`: the Gateway API CRDs, the Gateway and the demo app.
pub struct Gateway;

/// `plan`, `apply` and `destroy` of this module's part (`--module gateway`).
impl live::session::ModuleCommands for Gateway {
    fn module_name(&self) -> &'static str {
        NAME
    }

    /// Gateways and HTTPRoutes are awaited only where a controller serves their class.
    fn readiness(&self) -> Option<&'static dyn live::ReadinessRule> {
        Some(&readiness::RULE)
    }
}

/// The key of `hosts:` of the demo application (its HTTPRoute's host name).
pub const HOST_KEY: &str = "nginx";

/// The demo application's FQDN (`nginx.example.com`), `None` when `hosts:` lacks
/// [`HOST_KEY`] (loading refuses that while this module is registered).
pub fn app_fqdn(settings: &config::Settings) -> Option<String> {
    settings.fqdn_of(HOST_KEY)
}

/// The keys of `versions:` this module reads.
const VERSIONS: &[VersionKey] = &[VersionKey::required(VERSION_KEY)];

impl config::ModuleDef for Gateway {
    fn name(&self) -> &'static str {
        NAME
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["gateway_api_crds", "gateway_name", "gateway_namespace"]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        declare(env)
    }

    fn versions(&self) -> &'static [VersionKey] {
        VERSIONS
    }

    fn hosts(&self) -> &'static [&'static str] {
        &[HOST_KEY]
    }

    fn check_versions(&self, check: &mut VersionCheck<'_>) {
        check_pins(check);
    }
}

/// The key of `versions:` that chooses the Gateway API release (of the pins file).
const VERSION_KEY: &str = "gatewayApi";
/// The same as a field path of the environment file.
const VERSION_FIELD: &str = "versions.gatewayApi";

/// The Gateway API files to apply for the chosen release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiPins {
    /// e.g. `v1.5.1`.
    pub version: String,
    /// In the pins file's order.
    pub files: Vec<PinnedFile>,
}

/// One upstream file of the chosen release, with its expected digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedFile {
    /// File name, e.g. `gateway.networking.k8s.io_httproutes.yaml`.
    pub name: String,
    /// Where to fetch it (`https://raw.githubusercontent.com/...`); an offline mirror holds it at
    /// `<mirror>/<host>/<path>`.
    pub url: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
    /// The objects the file holds (named before the file is fetched).
    pub objects: Vec<PinnedObject>,
}

/// The pinned files of Gateway API `version`, with their URLs; `None` when the pins file has
/// no such release.
pub fn pinned_release(pins: &Pins, version: &str) -> Option<GatewayApiPins> {
    let release = pins.releases.get(version)?;
    let files = release
        .files
        .iter()
        .map(|f| PinnedFile {
            name: f.name.clone(),
            url: pins
                .base_url
                .replace("{version}", version)
                .replace("{file}", &f.name),
            sha256: f.sha256.clone(),
            objects: f.objects.clone(),
        })
        .collect();
    Some(GatewayApiPins {
        version: version.to_owned(),
        files,
    })
}

/// The Gateway API files of the environment (`versions.gatewayApi`).
pub fn pinned_files(env: &Environment) -> Result<GatewayApiPins, ConfigError> {
    let version = env.settings.version(VERSION_KEY).unwrap_or_default();
    pinned_release(&env.pins, version).ok_or_else(|| {
        env.error_at(
            &env.infra_dir.join("environment.yaml"),
            VERSION_FIELD,
            format!("no pinned files for Gateway API `{version}`"),
        )
    })
}

/// `versions.gatewayApi` must have pinned files: without them nothing can be declared, so the
/// version checks stop here.
fn check_pins(check: &mut VersionCheck<'_>) {
    let version = check
        .settings
        .version(VERSION_KEY)
        .unwrap_or_default()
        .to_owned();
    if check.pins.releases.contains_key(&version) {
        return;
    }
    let pins_file = check.pins_file;
    let help = format!(
        "{}; or add `releases.{version}` to {pins_file}",
        config::help_for(
            &version,
            check.pins.releases.keys().map(String::as_str),
            "pinned releases"
        )
    );
    let error = check
        .error(
            VERSION_FIELD,
            format!("no pinned files for Gateway API `{version}` in {pins_file}"),
        )
        .with_help(help);
    check.stop(error);
}

use engine::desired::{SOURCE_ANNOTATION, SOURCE_SHA256_ANNOTATION};

/// What the gateway module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let mut module = Module::new(NAME);
    let pins = pinned_files(env)?;
    let mut gateways_crd = None;
    for file in &pins.files {
        for object in pinned_objects(file) {
            let resource = Resource::object(NAME, object, Ownership::Owned).map_err(|e| {
                env.error_at(
                    &env.infra_dir.join("pins/gateway-api.yaml"),
                    &file.name,
                    e.to_string(),
                )
            })?;
            if resource.address.name
                == "customresourcedefinition/gateways.gateway.networking.k8s.io"
            {
                gateways_crd = Some(resource.address.clone());
            }
            module.resources.push(resource);
        }
    }
    if let Some(crd) = gateways_crd {
        module = module.with_output(Output::known(
            OutputRef::new(NAME, "gateway_api_crds"),
            crd,
            Value::String(pins.version.clone()),
        ));
    }
    module.resources.extend(env.declared_resources(NAME)?);
    if let Some(gateway) = module.resources.iter().find(|r| is_kind(r, "Gateway")) {
        let manifest = match &gateway.spec {
            ResourceSpec::Object(o) => &o.manifest,
            _ => unreachable!("is_kind matched an object"),
        };
        let name = manifest
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or_default();
        let namespace = manifest
            .pointer("/metadata/namespace")
            .cloned()
            .unwrap_or_default();
        let address = gateway.address.clone();
        module = module
            .with_output(Output::known(
                OutputRef::new(NAME, "gateway_name"),
                address.clone(),
                name,
            ))
            .with_output(Output::known(
                OutputRef::new(NAME, "gateway_namespace"),
                address,
                namespace,
            ));
    }
    Ok(module)
}

fn is_kind(resource: &Resource, kind: &str) -> bool {
    matches!(&resource.spec, ResourceSpec::Object(o) if o.manifest.get("kind").and_then(Value::as_str) == Some(kind))
}

/// The objects of a pinned file as declared before it is fetched: identity, the source
/// annotations and, for a CRD, the group and kind it defines (so that the graph orders its
/// custom resources after it).
pub fn pinned_objects(file: &PinnedFile) -> Vec<Value> {
    file.objects
        .iter()
        .map(|o| {
            let mut object = json!({
                "apiVersion": o.api_version,
                "kind": o.kind,
                "metadata": {
                    "name": o.name,
                    "annotations": {
                        SOURCE_ANNOTATION: file.url,
                        SOURCE_SHA256_ANNOTATION: file.sha256,
                    },
                },
            });
            if let Some(kind) = &o.defines {
                let group = o.name.split_once('.').map(|(_, g)| g).unwrap_or_default();
                object["spec"] = json!({"group": group, "names": {"kind": kind}});
            }
            object
        })
        .collect()
}

/// Whether `address` names an object declared from a pinned file.
pub fn is_pinned(manifest: &Value) -> bool {
    manifest
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SOURCE_ANNOTATION))
        .is_some()
}
