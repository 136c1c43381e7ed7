//! Redaction: sensitive values never leave the engine in a plan, text or JSON.
//!
//! What is sensitive in a document:
//! - the fields at the [`Sensitivity::paths`] (see [`crate::FieldPath`], wildcards allowed);
//! - every value under `data` and `stringData` of a Kubernetes `Secret` (also inside a `*List`'s
//!   `items`), except keys listed in [`Sensitivity::plain_keys`].
//!
//! A sensitive value is replaced by the string [`SENSITIVE`]. A sensitive path that does not
//! parse redacts the whole document (fail closed). To show *that* a sensitive value changed
//! without showing it, [`sensitive_changes`] compares the sha256 of the real values.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hash::canonical_hash;
use crate::path::FieldPath;

/// The text that replaces a sensitive value.
pub const SENSITIVE: &str = "(sensitive value)";

/// What must not be shown of a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// Field paths (patterns allowed) whose values are sensitive.
    pub paths: Vec<String>,
    /// Keys of a Secret's `data`/`stringData` that are not secret (e.g. `client-id`).
    pub plain_keys: Vec<String>,
}

impl Sensitivity {
    /// Sensitive paths only.
    pub fn paths(paths: impl IntoIterator<Item = impl Into<String>>) -> Sensitivity {
        Sensitivity {
            paths: paths.into_iter().map(Into::into).collect(),
            plain_keys: Vec::new(),
        }
    }

    /// Every concrete sensitive path in `doc`, or `None` if a sensitive path does not parse.
    fn concrete_paths(&self, doc: &Value) -> Option<Vec<FieldPath>> {
        let mut found = Vec::new();
        for text in &self.paths {
            let pattern: FieldPath = text.parse().ok()?;
            found.extend(pattern.matches(doc));
        }
        secret_paths(doc, &FieldPath::root(), &self.plain_keys, &mut found);
        found.sort();
        found.dedup();
        Some(found)
    }
}

fn is_secret(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("Secret")
}

fn secret_paths(doc: &Value, here: &FieldPath, plain_keys: &[String], found: &mut Vec<FieldPath>) {
    if is_secret(doc) {
        for field in ["data", "stringData"] {
            match doc.get(field) {
                Some(Value::Object(map)) => {
                    for key in map.keys() {
                        if !plain_keys.iter().any(|p| p == key) {
                            found.push(here.key(field).key(key));
                        }
                    }
                }
                Some(_) => found.push(here.key(field)),
                None => {}
            }
        }
    }
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    if is_list && let Some(Value::Array(items)) = doc.get("items") {
        for (i, item) in items.iter().enumerate() {
            secret_paths(item, &here.key("items").index(i), plain_keys, found);
        }
    }
}

fn set(doc: &mut Value, path: &FieldPath, replacement: Value) {
    use crate::path::PathSegment;
    let mut current = doc;
    for segment in &path.segments {
        let next = match (segment, current) {
            (PathSegment::Key(k), Value::Object(map)) => map.get_mut(k),
            (PathSegment::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    *current = replacement;
}

/// `value` with the sensitive fields at `sensitive_paths`, and all of a Secret's `data` and
/// `stringData`, replaced by [`SENSITIVE`].
pub fn redact(value: &Value, sensitive_paths: &[String]) -> Value {
    redact_with(
        value,
        &Sensitivity {
            paths: sensitive_paths.to_vec(),
            plain_keys: Vec::new(),
        },
    )
}

/// `value` with everything `sensitivity` covers replaced by [`SENSITIVE`].
pub fn redact_with(value: &Value, sensitivity: &Sensitivity) -> Value {
    redact_owned(value.clone(), sensitivity)
}

/// [`redact_with`] of a value the caller gives up (no copy of it is made).
pub fn redact_owned(mut value: Value, sensitivity: &Sensitivity) -> Value {
    let Some(paths) = sensitivity.concrete_paths(&value) else {
        return Value::String(SENSITIVE.to_owned());
    };
    for path in &paths {
        set(&mut value, path, Value::String(SENSITIVE.to_owned()));
    }
    value
}

/// Every string at the sensitive paths of `doc` (inside maps and lists there too), to scrub
/// from text derived from it (e.g. the objects a chart renders from a release's values). A
/// sensitive path that does not parse yields every string of `doc` (fail closed).
pub fn sensitive_strings(doc: &Value, sensitivity: &Sensitivity) -> Vec<String> {
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if s != SENSITIVE => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match sensitivity.concrete_paths(doc) {
        Some(paths) => {
            for path in paths {
                if let Some(value) = path.get(doc) {
                    strings(value, &mut out);
                }
            }
        }
        None => strings(doc, &mut out),
    }
    out.sort();
    out.dedup();
    out
}

/// The sensitive paths whose real value differs between `before` and `after` (compared by
/// sha256, never shown), sorted. A value that is already [`SENSITIVE`] on either side (not known
/// to the engine) is not compared. A sensitive path that does not parse reports the whole
/// document (`""`) as changed when the documents differ.
pub fn sensitive_changes(before: &Value, after: &Value, sensitivity: &Sensitivity) -> Vec<String> {
    let (Some(mut paths), Some(after_paths)) = (
        sensitivity.concrete_paths(before),
        sensitivity.concrete_paths(after),
    ) else {
        return if canonical_hash(before) == canonical_hash(after) {
            Vec::new()
        } else {
            vec![String::new()]
        };
    };
    paths.extend(after_paths);
    paths.sort();
    paths.dedup();
    let marker = Value::String(SENSITIVE.to_owned());
    paths
        .into_iter()
        .filter(|path| {
            let old = path.get(before);
            let new = path.get(after);
            if old == Some(&marker) || new == Some(&marker) {
                return false;
            }
            old.map(canonical_hash) != new.map(canonical_hash)
        })
        .map(|path| path.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_paths_with_wildcards() {
        let doc = json!({"config": {"staticClients": [
            {"id": "oauth2-proxy", "secret": "s3cr3t-1"},
            {"id": "other", "secret": "s3cr3t-2"}]}});
        let redacted = redact(&doc, &["config.staticClients[*].secret".into()]);
        assert_eq!(
            redacted,
            json!({"config": {"staticClients": [
                {"id": "oauth2-proxy", "secret": "(sensitive value)"},
                {"id": "other", "secret": "(sensitive value)"}]}})
        );
    }

    #[test]
    fn secrets_are_always_redacted_except_plain_keys() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "oauth2-proxy"},
            "data": {"client-id": "b2F1dGgyLXByb3h5", "client-secret": "c2VjcmV0"},
            "stringData": {"cookie-secret": "hunter2"}});
        let redacted = redact(&secret, &[]);
        assert_eq!(redacted["data"]["client-id"], json!(SENSITIVE));
        assert_eq!(redacted["data"]["client-secret"], json!(SENSITIVE));
        assert_eq!(redacted["stringData"]["cookie-secret"], json!(SENSITIVE));
        assert_eq!(redacted["metadata"], secret["metadata"]);

        let sensitivity = Sensitivity {
            paths: vec![],
            plain_keys: vec!["client-id".into()],
        };
        let redacted = redact_with(&secret, &sensitivity);
        assert_eq!(redacted["data"]["client-id"], json!("b2F1dGgyLXByb3h5"));
        assert_eq!(redacted["data"]["client-secret"], json!(SENSITIVE));

        let list = json!({"kind": "SecretList", "items": [secret]});
        assert!(!redact(&list, &[]).to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn a_bad_sensitive_path_redacts_everything() {
        let doc = json!({"password": "hunter2"});
        assert_eq!(redact(&doc, &["pass[".into()]), json!(SENSITIVE));
    }

    #[test]
    fn sensitive_changes_compare_hashes_not_text() {
        let sensitivity = Sensitivity::paths(["values.password", "values.token"]);
        let before = json!({"values": {"password": "old", "token": "same", "x": 1}});
        let after = json!({"values": {"password": "new", "token": "same", "x": 2}});
        assert_eq!(
            sensitive_changes(&before, &after, &sensitivity),
            ["values.password"]
        );
        // Added and removed sensitive values count as changes too.
        let added = json!({"values": {"password": "old", "token": "same", "extra": 1}});
        let sensitivity = Sensitivity::paths(["values.extra"]);
        assert_eq!(
            sensitive_changes(&before, &added, &sensitivity),
            ["values.extra"]
        );
        // A value the engine does not know (already redacted) is not compared.
        let generated = json!({"kind": "Secret", "data": {"k": SENSITIVE}});
        let live = json!({"kind": "Secret", "data": {"k": "cmVhbA=="}});
        assert!(sensitive_changes(&live, &generated, &Sensitivity::default()).is_empty());
    }
}
