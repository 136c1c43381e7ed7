//! Module `gateway`: the Gateway API CRDs (pinned upstream files), the Istio-class Gateway with
//! its NodePort declared through `spec.infrastructure.parametersRef`, and the nginx demo app
//! behind an HTTPRoute, in a namespace labelled for sidecar injection.

use config::{ConfigError, Environment, PinnedFile};
use engine::{Module, Output, OutputRef, Ownership, Resource, ResourceSpec};
use serde_json::{Value, json};

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
}

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
}

use engine::desired::{SOURCE_ANNOTATION, SOURCE_SHA256_ANNOTATION};

/// What the gateway module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let mut module = Module::new(NAME);
    let mut gateways_crd = None;
    for file in &env.pins.files {
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
            Value::String(env.pins.version.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra"),
            None,
            &xtask::REGISTRY,
        )
        .expect("infra/ loads")
    }

    #[test]
    fn gateway_api_files_are_declared_by_name_before_they_are_fetched() {
        let module = declare(&env()).unwrap();
        let names: Vec<String> = module
            .resources
            .iter()
            .map(|r| r.address.to_string())
            .collect();
        assert!(
            names.contains(
                &"gateway.object.customresourcedefinition/httproutes.gateway.networking.k8s.io"
                    .to_owned()
            )
        );
        assert!(
            names.contains(
                &"gateway.object.validatingadmissionpolicy/safe-upgrades.gateway.networking.k8s.io"
                    .to_owned()
            )
        );
        let crd = module
            .resources
            .iter()
            .find(|r| {
                r.address
                    .name
                    .starts_with("customresourcedefinition/httproutes")
            })
            .unwrap();
        let ResourceSpec::Object(o) = &crd.spec else {
            panic!()
        };
        assert_eq!(o.manifest["spec"]["names"]["kind"], "HTTPRoute");
        assert_eq!(o.manifest["spec"]["group"], "gateway.networking.k8s.io");
        assert!(is_pinned(&o.manifest));
    }

    #[test]
    fn gateway_outputs_name_the_gateway_object() {
        let module = declare(&env()).unwrap();
        let out: Vec<(String, String)> = module
            .outputs
            .iter()
            .map(|o| (o.r#ref.to_string(), o.producer.to_string()))
            .collect();
        assert!(out.contains(&(
            "gateway.gateway_name".into(),
            "gateway.object.gateway/gateway/istio-gateway".into()
        )));
        assert!(out.contains(&(
            "gateway.gateway_api_crds".into(),
            "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io".into()
        )));
    }
}
