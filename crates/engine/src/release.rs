//! What installing or upgrading a Helm release does to the cluster, object by object.
//!
//! The live side renders the chart with the new values and chart, asks the server in a dry run
//! what each object would become, and hands the engine the two versions of each object; the
//! engine turns them into [`ObjectChange`]s: created, deleted, or updated with the list of
//! changed fields ([`FieldChange`]).
//!
//! Redaction happens when a change is built, like for [`crate::ResourceChange`]: every value
//! under `data`/`stringData` of a `Secret` becomes [`SENSITIVE`] (a Secret shows its keys
//! only), and so does every string that contains one of the release's sensitive values
//! (passed as `secrets`; a chart may copy a value into a ConfigMap or an argument).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path::{FieldPath, PathSegment, changed_paths};
use crate::redact::{SENSITIVE, redact};

/// Shorter sensitive strings are not scrubbed from object documents (they would blank out
/// unrelated values and cannot be meaningful secrets).
const SCRUB_MIN_LEN: usize = 4;

/// What happens to one object of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectAction {
    /// The chart renders it and it does not exist: Helm creates it.
    Create,
    /// It exists and the server says it would change.
    Update,
    /// The deployed revision has it and the new one does not: Helm deletes it.
    Delete,
}

impl ObjectAction {
    /// `create`, `update`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectAction::Create => "create",
            ObjectAction::Update => "update",
            ObjectAction::Delete => "delete",
        }
    }

    fn sign(self) -> &'static str {
        match self {
            ObjectAction::Create => "+",
            ObjectAction::Update => "~",
            ObjectAction::Delete => "-",
        }
    }
}

/// One changed field of an updated object. Values are redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field, as a [`FieldPath`] (`spec.ports[0].port`).
    pub path: String,
    /// Its value before; `None` when the field is added.
    pub before: Option<Value>,
    /// Its value after; `None` when the field is removed.
    pub after: Option<Value>,
}

/// What an install or upgrade does to one object of a release. Documents are redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectChange {
    /// `<lowercase kind>/<namespace>/<name>` (`<lowercase kind>/<name>` when cluster-scoped).
    pub object: String,
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub action: ObjectAction,
    /// The live object, stripped of server noise; `None` for a create.
    pub before: Option<Value>,
    /// What the object becomes (the server's dry-run answer for an update, the rendered object
    /// for a create); `None` for a delete.
    pub after: Option<Value>,
    /// The changed fields of an update, in document order; empty otherwise.
    pub fields: Vec<FieldChange>,
}

impl ObjectChange {
    /// An object the chart renders that does not exist yet.
    pub fn create(after: &Value, secrets: &[String]) -> ObjectChange {
        ObjectChange::build(ObjectAction::Create, None, Some(after), secrets)
    }

    /// An object of the deployed revision the new one no longer renders.
    pub fn delete(before: &Value, secrets: &[String]) -> ObjectChange {
        ObjectChange::build(ObjectAction::Delete, Some(before), None, secrets)
    }

    /// An existing object that changes from `before` (live) to `after` (the dry run), both
    /// stripped of server noise and with keys in the same order. `None` when they are equal.
    pub fn update(before: &Value, after: &Value, secrets: &[String]) -> Option<ObjectChange> {
        (before != after)
            .then(|| ObjectChange::build(ObjectAction::Update, Some(before), Some(after), secrets))
    }

    fn build(
        action: ObjectAction,
        before: Option<&Value>,
        after: Option<&Value>,
        secrets: &[String],
    ) -> ObjectChange {
        let identity = after.or(before).cloned().unwrap_or(Value::Null);
        let text = |pointer: &str| {
            identity
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind, name) =
            (text("/apiVersion"), text("/kind"), text("/metadata/name"));
        let namespace = Some(text("/metadata/namespace")).filter(|n| !n.is_empty());
        let object = match &namespace {
            Some(ns) => format!("{}/{ns}/{name}", kind.to_lowercase()),
            None => format!("{}/{name}", kind.to_lowercase()),
        };
        // Paths from the real documents (a changed Secret value reads the same once redacted),
        // values from the redacted ones.
        let paths = match (before, after) {
            (Some(b), Some(a)) => changed_paths(b, a),
            _ => Vec::new(),
        };
        let clean = |doc: &Value| scrub(&redact(doc, &[]), secrets);
        let (before, after) = (before.map(clean), after.map(clean));
        let fields = paths
            .into_iter()
            .map(|path| FieldChange {
                path: path.to_string(),
                before: before.as_ref().and_then(|b| path.get(b)).cloned(),
                after: after.as_ref().and_then(|a| path.get(a)).cloned(),
            })
            .collect();
        ObjectChange {
            object,
            api_version,
            kind,
            namespace,
            name,
            action,
            before,
            after,
            fields,
        }
    }

    /// This change redacted again (rendering redacts what it shows, whatever it was given):
    /// a Secret's `data`/`stringData` values become [`SENSITIVE`] in documents and fields.
    pub fn redacted(&self) -> ObjectChange {
        let mut out = self.clone();
        out.before = out.before.map(|d| redact(&d, &[]));
        out.after = out.after.map(|d| redact(&d, &[]));
        if self.kind == "Secret" {
            for field in &mut out.fields {
                if is_secret_value(&field.path) {
                    field.before = field.before.take().map(|v| keys_only(&v));
                    field.after = field.after.take().map(|v| keys_only(&v));
                }
            }
        }
        out
    }

    /// One line per change for a plan: `~ service/sso/dex`, then each field indented,
    /// e.g. `~ spec.ports[0].port: 80 -> 8080`, `+ metadata.labels.tier: web`.
    pub fn text_lines(&self) -> Vec<(ObjectAction, String)> {
        let mut lines = vec![(
            self.action,
            format!("{} {}", self.action.sign(), self.object),
        )];
        for field in &self.fields {
            let line = match (&field.before, &field.after) {
                (Some(b), Some(a)) if is_sensitive(b) && is_sensitive(a) => {
                    format!("    ~ {}: {SENSITIVE}", field.path)
                }
                (Some(b), Some(a)) => {
                    format!("    ~ {}: {} -> {}", field.path, inline(b), inline(a))
                }
                (None, Some(a)) => format!("    + {}: {}", field.path, inline(a)),
                (Some(b), None) => format!("    - {}: {}", field.path, inline(b)),
                (None, None) => format!("    ~ {}", field.path),
            };
            let action = match (&field.before, &field.after) {
                (None, Some(_)) => ObjectAction::Create,
                (Some(_), None) => ObjectAction::Delete,
                _ => ObjectAction::Update,
            };
            lines.push((action, line));
        }
        lines
    }
}

/// A map with every value [`SENSITIVE`]; anything else is [`SENSITIVE`].
fn keys_only(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|k| (k.clone(), Value::String(SENSITIVE.to_owned())))
                .collect(),
        ),
        _ => Value::String(SENSITIVE.to_owned()),
    }
}

/// True if a field of a Secret holds its values (is at or under `data` or `stringData`); a path
/// that does not parse is taken to hold them.
fn is_secret_value(path: &str) -> bool {
    path.parse::<FieldPath>().map_or(true, |p| {
        matches!(p.segments.first(), Some(PathSegment::Key(k)) if k == "data" || k == "stringData")
    })
}

fn is_sensitive(value: &Value) -> bool {
    value.as_str() == Some(SENSITIVE)
}

/// A value on one line: strings as they are (quoted when empty or with spaces at the ends),
/// everything else as compact JSON.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() && s.trim() == s && !s.contains('\n') => s.clone(),
        other => other.to_string(),
    }
}

/// `value` with every string that contains one of `secrets` (4 characters or longer)
/// replaced by [`SENSITIVE`].
pub fn scrub(value: &Value, secrets: &[String]) -> Value {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.chars().count() >= SCRUB_MIN_LEN)
        .collect();
    if secrets.is_empty() {
        return value.clone();
    }
    fn go(value: &Value, secrets: &[&str]) -> Value {
        match value {
            Value::String(s) if secrets.iter().any(|secret| s.contains(secret)) => {
                Value::String(SENSITIVE.to_owned())
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| go(v, secrets)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), go(v, secrets)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    go(value, &secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(port: u16) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "dex", "namespace": "sso"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.12",
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"},
                          {"name": "telemetry", "port": 5558, "targetPort": "telemetry", "protocol": "TCP"}]}})
    }

    fn secret(config: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dex", "namespace": "sso"},
            "type": "Opaque", "data": {"config.yaml": config}})
    }

    fn lines(change: &ObjectChange) -> Vec<String> {
        change.text_lines().into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn an_updated_object_lists_each_changed_field_with_both_values() {
        let change = ObjectChange::update(&service(80), &service(8080), &[]).unwrap();
        assert_eq!(change.object, "service/sso/dex");
        assert_eq!(
            (
                change.kind.as_str(),
                change.namespace.as_deref(),
                change.name.as_str()
            ),
            ("Service", Some("sso"), "dex")
        );
        assert_eq!(change.action, ObjectAction::Update);
        assert_eq!(
            change.fields,
            [FieldChange {
                path: "spec.ports[0].port".into(),
                before: Some(json!(80)),
                after: Some(json!(8080)),
            }]
        );
        assert_eq!(
            lines(&change),
            ["~ service/sso/dex", "    ~ spec.ports[0].port: 80 -> 8080"]
        );
        assert_eq!(ObjectChange::update(&service(80), &service(80), &[]), None);
    }

    #[test]
    fn added_removed_and_list_length_changes_are_one_line_each() {
        let mut before = service(80);
        before["metadata"]["labels"] = json!({"old": "x"});
        let mut after = service(80);
        after["metadata"]["annotations"] = json!({"example.com/owner": "team a"});
        after["spec"]["ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "grpc", "port": 5557}));
        let change = ObjectChange::update(&before, &after, &[]).unwrap();
        assert_eq!(
            lines(&change),
            [
                "~ service/sso/dex",
                "    - metadata.labels: {\"old\":\"x\"}",
                "    + metadata.annotations: {\"example.com/owner\":\"team a\"}",
                "    + spec.ports[2]: {\"name\":\"grpc\",\"port\":5557}",
            ]
        );
    }

    #[test]
    fn secret_values_are_found_by_the_path_not_its_text() {
        for (path, holds_values) in [
            ("data", true),
            ("data[\"config.yaml\"]", true),
            ("stringData.password", true),
            ("metadata.labels.data", false),
            ("dataset", false),
            ("type", false),
            ("data[", true),
        ] {
            assert_eq!(is_secret_value(path), holds_values, "{path}");
        }
    }

    #[test]
    fn secrets_show_keys_only_and_a_changed_value_as_sensitive() {
        let before = secret("aXNzdWVyOiBodHRwOi8vZGV4L2RleA==");
        let mut after = secret("aXNzdWVyOiBodHRwOi8vZGV4LmV4YW1wbGUuY29tL2RleA==");
        after["data"]["extra.yaml"] = json!("c2VjcmV0LWFkZGVk");
        let change = ObjectChange::update(&before, &after, &[]).unwrap();
        assert_eq!(
            lines(&change),
            [
                "~ secret/sso/dex",
                "    ~ data[\"config.yaml\"]: (sensitive value)",
                "    + data[\"extra.yaml\"]: (sensitive value)",
            ]
        );
        let json = serde_json::to_string(&change).unwrap();
        assert!(
            !json.contains("aXNzdWVy") && !json.contains("c2VjcmV0"),
            "{json}"
        );
        assert_eq!(
            change.after.as_ref().unwrap()["data"]["config.yaml"],
            SENSITIVE
        );
        // A created or deleted Secret shows its keys, never its values.
        let created = ObjectChange::create(&after, &[]);
        assert_eq!(
            created.after.unwrap()["data"],
            json!({"config.yaml": SENSITIVE, "extra.yaml": SENSITIVE})
        );
        let deleted = ObjectChange::delete(&before, &[]);
        assert_eq!(deleted.before.unwrap()["data"]["config.yaml"], SENSITIVE);
        // Rendering redacts again what it was handed, in documents and fields alike.
        let mut leaky = change.clone();
        leaky.after = Some(after.clone());
        leaky.fields[0].after = Some(json!({"config.yaml": "cmF3"}));
        leaky.fields[0].path = "data".into();
        let again = leaky.redacted();
        assert_eq!(again.after.unwrap()["data"]["extra.yaml"], SENSITIVE);
        assert_eq!(
            again.fields[0].after,
            Some(json!({"config.yaml": SENSITIVE}))
        );
    }

    #[test]
    fn the_releases_sensitive_values_are_scrubbed_from_any_object() {
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app", "namespace": "web"},
            "data": {"url": "postgres://app:hunter2-pw@db/app", "mode": "fast"}});
        let change = ObjectChange::create(&config, &["hunter2-pw".into(), "ab".into()]);
        let after = change.after.unwrap();
        assert_eq!(after["data"]["url"], SENSITIVE);
        assert_eq!(
            after["data"]["mode"], "fast",
            "short strings are not scrubbed"
        );
    }
}
