//! The desired document of each resource: what a plan shows and what apply converges to.
//!
//! | kind | document |
//! |---|---|
//! | `cluster` | `{name, context, provider: {type: kind, node_image, config} \| {type: kwok} \| {type: existing, context}}` |
//! | `helm_release` | `{release, namespace, create_namespace, chart: {repo?, chart, version, path?, sha256?}, values}` ([`helm_release_document`]) |
//! | `object` | the manifest; owned objects get the ownership label and annotations ([`with_ownership`]) |
//! | `generated_secret` | a `v1` Secret: plain keys in `stringData`, generated keys in `data` as `(sensitive value)` |
//!
//! Field paths in errors and sensitive paths are relative to this document (so a Helm value
//! `config.clientSecret` is `values.config.clientSecret`).

use serde_json::{Map, Value, json};

use crate::address::Address;
use crate::redact::{SENSITIVE, Sensitivity};
use crate::resource::{
    ChartSource, ClusterSpec, GeneratedSecretSpec, HelmReleaseSpec, Ownership, Resource,
    ResourceSpec,
};
use crate::values::OutputRef;

/// The field manager used for server-side apply.
pub const FIELD_MANAGER: &str = "envctl";
/// The label every owned object carries, with value [`MANAGED_BY_VALUE`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "envctl";
/// Annotation: the module that declares the object.
pub const MODULE_ANNOTATION: &str = "envctl.dev/module";
/// Annotation: the environment the object belongs to.
pub const ENVIRONMENT_ANNOTATION: &str = "envctl.dev/environment";
/// Annotation: the object's resource address.
pub const ADDRESS_ANNOTATION: &str = "envctl.dev/address";
/// Annotation on an object declared from a pinned upstream file: the file's URL. Plans and
/// `render` show the object by name; apply fetches the file (or reads it from a mirror),
/// checks [`SOURCE_SHA256_ANNOTATION`] and applies its content.
pub const SOURCE_ANNOTATION: &str = "envctl.dev/source";
/// Annotation: the pinned sha256 of [`SOURCE_ANNOTATION`]'s file.
pub const SOURCE_SHA256_ANNOTATION: &str = "envctl.dev/source-sha256";

/// The desired document of one resource, with placeholders resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Which resource.
    pub address: Address,
    /// The document (see the [module docs](self)); unknown outputs appear as
    /// `(known after apply <- module.name)`.
    pub doc: Value,
    /// Outputs not known yet (sorted).
    pub unknown: Vec<OutputRef>,
    /// What must never be shown of `doc` or of the live document it is compared with.
    pub sensitivity: Sensitivity,
}

/// The document of a Helm release. The live crate builds the "before" document of a release
/// with the same function so that plans compare like with like.
pub fn helm_release_document(
    release: &str,
    namespace: &str,
    create_namespace: bool,
    chart: &ChartSource,
    values: Value,
) -> Value {
    json!({
        "release": release,
        "namespace": namespace,
        "create_namespace": create_namespace,
        "chart": serde_json::to_value(chart).unwrap_or(Value::Null),
        "values": values,
    })
}

/// `manifest` with the ownership label and annotations added (existing keys are kept, ours
/// overwrite any stale values).
pub fn with_ownership(manifest: &Value, address: &Address, environment: &str) -> Value {
    let mut manifest = manifest.clone();
    let Some(object) = manifest.as_object_mut() else {
        return manifest;
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return manifest;
    };
    let mut insert = |field: &str, entries: &[(&str, String)]| {
        let map = metadata
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(map) = map.as_object_mut() {
            for (k, v) in entries {
                map.insert((*k).to_owned(), Value::String(v.clone()));
            }
        }
    };
    insert("labels", &[(MANAGED_BY_LABEL, MANAGED_BY_VALUE.to_owned())]);
    insert(
        "annotations",
        &[
            (MODULE_ANNOTATION, address.module.clone()),
            (ENVIRONMENT_ANNOTATION, environment.to_owned()),
            (ADDRESS_ANNOTATION, address.to_string()),
        ],
    );
    manifest
}

fn cluster_document(spec: &ClusterSpec) -> Value {
    json!({
        "name": spec.name,
        "context": spec.context,
        "provider": serde_json::to_value(&spec.provider).unwrap_or(Value::Null),
    })
}

fn generated_secret_document(spec: &GeneratedSecretSpec) -> Value {
    let plain: Map<String, Value> = spec
        .plain
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let generated: Map<String, Value> = spec
        .generated
        .keys()
        .map(|k| (k.clone(), Value::String(SENSITIVE.to_owned())))
        .collect();
    let mut doc = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "type": "Opaque",
    });
    if let Some(object) = doc.as_object_mut() {
        if !plain.is_empty() {
            object.insert("stringData".into(), Value::Object(plain));
        }
        if !generated.is_empty() {
            object.insert("data".into(), Value::Object(generated));
        }
    }
    doc
}

/// The document of a resource before placeholders are resolved, and its sensitivity.
pub(crate) fn template(resource: &Resource, environment: &str) -> (Value, Sensitivity) {
    match &resource.spec {
        ResourceSpec::Cluster(spec) => (cluster_document(spec), Sensitivity::default()),
        ResourceSpec::HelmRelease(spec) => (helm_template(spec), helm_sensitivity(spec)),
        ResourceSpec::Object(spec) => {
            let doc = match spec.ownership {
                Ownership::Owned => with_ownership(&spec.manifest, &resource.address, environment),
                Ownership::FieldsOnly => spec.manifest.clone(),
            };
            (doc, Sensitivity::default())
        }
        ResourceSpec::GeneratedSecret(spec) => {
            let doc = with_ownership(
                &generated_secret_document(spec),
                &resource.address,
                environment,
            );
            let sensitivity = Sensitivity {
                paths: Vec::new(),
                plain_keys: spec.plain.keys().cloned().collect(),
            };
            (doc, sensitivity)
        }
    }
}

fn helm_template(spec: &HelmReleaseSpec) -> Value {
    helm_release_document(
        &spec.release,
        &spec.namespace,
        spec.create_namespace,
        &spec.chart,
        spec.values.clone(),
    )
}

fn helm_sensitivity(spec: &HelmReleaseSpec) -> Sensitivity {
    Sensitivity {
        paths: spec
            .sensitive_paths
            .iter()
            .map(|p| {
                if p.is_empty() {
                    "values".to_owned()
                } else if p.starts_with('[') {
                    format!("values{p}")
                } else {
                    format!("values.{p}")
                }
            })
            .collect(),
        plain_keys: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{Encoding, Generator};
    use std::collections::BTreeMap;

    #[test]
    fn ownership_metadata_is_added_and_existing_kept() {
        let address: Address = "gateway.object.deployment/default/nginx".parse().unwrap();
        let manifest = json!({"kind": "Deployment",
            "metadata": {"name": "nginx", "labels": {"app": "nginx"}}});
        let owned = with_ownership(&manifest, &address, "dev");
        assert_eq!(
            owned["metadata"],
            json!({"name": "nginx",
                "labels": {"app": "nginx", "app.kubernetes.io/managed-by": "envctl"},
                "annotations": {"envctl.dev/module": "gateway", "envctl.dev/environment": "dev",
                    "envctl.dev/address": "gateway.object.deployment/default/nginx"}})
        );
    }

    #[test]
    fn generated_secret_document_hides_generated_keys() {
        let spec = GeneratedSecretSpec {
            name: "oauth2-proxy".into(),
            namespace: "default".into(),
            plain: BTreeMap::from([("client-id".into(), "oauth2-proxy".into())]),
            generated: BTreeMap::from([(
                "cookie-secret".into(),
                Generator {
                    bytes: 32,
                    encoding: Encoding::Base64Url,
                },
            )]),
        };
        let doc = generated_secret_document(&spec);
        assert_eq!(doc["stringData"], json!({"client-id": "oauth2-proxy"}));
        assert_eq!(doc["data"], json!({"cookie-secret": "(sensitive value)"}));
    }

    #[test]
    fn helm_sensitive_paths_are_under_values() {
        let spec = HelmReleaseSpec {
            release: "dex".into(),
            namespace: "dex".into(),
            create_namespace: true,
            chart: ChartSource {
                repo: Some("https://charts.dexidp.io".into()),
                chart: "dex".into(),
                version: "0.24.0".into(),
                path: None,
                sha256: None,
            },
            values: json!({}),
            sensitive_paths: vec!["config.staticClients[*].secret".into(), "[0]".into()],
        };
        assert_eq!(
            helm_sensitivity(&spec).paths,
            ["values.config.staticClients[*].secret", "values[0]"]
        );
        let doc = helm_template(&spec);
        assert_eq!(
            doc["chart"],
            json!({"repo": "https://charts.dexidp.io", "chart": "dex", "version": "0.24.0"})
        );
    }
}
