//! sha256 hashing of bytes and of JSON documents in a canonical form.
//!
//! [`canonical_hash`] is what fingerprints (live state seen by a plan), values hashes and the
//! cluster spec hash use: two documents that differ only in map key order hash the same.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The sha256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `value` as compact JSON with every map's keys sorted (by their UTF-8 bytes) at every level.
///
/// Numbers and strings are written the way `serde_json` writes them, so the text is stable
/// across runs and platforms.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // Only `serde_json`'s output and ASCII punctuation were written: valid UTF-8.
    String::from_utf8(out).expect("canonical JSON is UTF-8")
}

/// Writes [`canonical_json`] of `value` to `out`. Strings and scalars are written by
/// `serde_json` straight into `out` (no text allocated per field: a plan hashes every object
/// it sees).
fn write_canonical<W: std::io::Write>(value: &Value, out: &mut W) {
    // Writing to a `Vec` or to a hasher cannot fail.
    let write = |out: &mut W, bytes: &[u8]| out.write_all(bytes).expect("in-memory write");
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write(out, b"{");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    write(out, b",");
                }
                write_string(k, out);
                write(out, b":");
                write_canonical(v, out);
            }
            write(out, b"}");
        }
        Value::Array(items) => {
            write(out, b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write(out, b",");
                }
                write_canonical(item, out);
            }
            write(out, b"]");
        }
        Value::String(text) => write_string(text, out),
        Value::Null => write(out, b"null"),
        Value::Bool(true) => write(out, b"true"),
        Value::Bool(false) => write(out, b"false"),
        number => write_scalar(number, out),
    }
}

/// A string or scalar as `serde_json` writes it (compact).
fn write_scalar<W: std::io::Write, T: serde::Serialize + ?Sized>(value: &T, out: &mut W) {
    serde_json::to_writer(out, value).expect("in-memory write");
}

/// A string as `serde_json` writes it: as it is between quotes when it holds nothing
/// `serde_json` escapes (`"`, `\\`, control characters below U+0020), which is nearly always.
fn write_string<W: std::io::Write>(text: &str, out: &mut W) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return write_scalar(text, out);
    }
    let quote: &[u8] = b"\"";
    for part in [quote, text.as_bytes(), quote] {
        out.write_all(part).expect("in-memory write");
    }
}

/// The sha256 (hex) of [`canonical_json`] of `value`.
pub fn canonical_hash(value: &Value) -> String {
    let mut out = Vec::with_capacity(1024);
    write_canonical(value, &mut out);
    sha256_hex(&out)
}

/// Metadata the API server rewrites when anything of an object is written, its status included.
const SERVER_BOOKKEEPING: &[&str] = &["managedFields", "resourceVersion"];

/// The sha256 (hex) of a live object's content without what a write of its status alone
/// changes: `status`, `metadata.managedFields` (a controller's status entry) and
/// `metadata.resourceVersion`. Everything else (spec, data, rules, labels, annotations,
/// owners, finalizers, uid, deletion) counts, so a write of anything but the status changes it.
///
/// Two reads of an object between which only its status was written hash the same: a
/// controller reporting (an HPA's current metrics, say) is not taken for a change.
pub fn content_hash(object: &Value) -> String {
    let mut copy = object.clone();
    if let Value::Object(map) = &mut copy {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for key in SERVER_BOOKKEEPING {
                meta.remove(*key);
            }
        }
    }
    canonical_hash(&copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sha256_of_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn canonical_hash_ignores_key_order_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [1, {"q": 1, "p": 2}], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, {"p": 2, "q": 1}]}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"s","y":[1,{"p":2,"q":1}]},"b":1}"#
        );
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
    }

    #[test]
    fn canonical_json_writes_strings_and_numbers_as_serde_json_does() {
        let doc = json!({"q\"uote": "a\"b\\c\n\t\u{1}é✓", "n": [-0.5, 1e300, 42, -7, u64::MAX],
            "e": {}, "l": [], "z": null, "b": false});
        // With the keys sorted, serde_json's own compact text.
        let mut sorted = serde_json::Map::new();
        for key in ["b", "e", "l", "n", "q\"uote", "z"] {
            sorted.insert(key.to_owned(), doc[key].clone());
        }
        assert_eq!(canonical_json(&doc), Value::Object(sorted).to_string());
        assert_eq!(
            canonical_hash(&doc),
            sha256_hex(canonical_json(&doc).as_bytes())
        );
    }

    #[test]
    fn canonical_hash_sees_real_differences() {
        let base = json!({"a": [1, 2]});
        for other in [
            json!({"a": [2, 1]}),
            json!({"a": [1, 2, 3]}),
            json!({"a": ["1", 2]}),
            json!({"A": [1, 2]}),
        ] {
            assert_ne!(canonical_hash(&base), canonical_hash(&other), "{other}");
        }
    }

    #[test]
    fn canonical_hash_is_pinned() {
        // Changing the canonical form invalidates every stored fingerprint: do it on purpose only.
        assert_eq!(
            canonical_hash(&json!({"b": "x", "a": [true, null, 1.5]})),
            sha256_hex(br#"{"a":[true,null,1.5],"b":"x"}"#)
        );
    }

    fn hpa() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "istiod", "namespace": "istio-system", "uid": "u-1",
                "resourceVersion": "100", "labels": {"app": "istiod"},
                "managedFields": [{"manager": "envctl", "operation": "Apply"}]},
            "spec": {"minReplicas": 1, "maxReplicas": 5},
        })
    }

    #[test]
    fn content_hash_ignores_a_write_of_the_status_alone() {
        let before = hpa();
        let mut after = hpa();
        after["metadata"]["resourceVersion"] = json!("107");
        after["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"manager": "kube-controller-manager", "operation": "Update",
                "subresource": "status"}),
            );
        after["status"] = json!({"currentReplicas": 1, "desiredReplicas": 1});
        assert_eq!(content_hash(&before), content_hash(&after));
    }

    #[test]
    fn content_hash_sees_every_other_write() {
        let base = content_hash(&hpa());
        let edits: [(&str, Value); 5] = [
            ("/spec/maxReplicas", json!(9)),
            ("/metadata/labels/app", json!("other")),
            ("/metadata/uid", json!("u-2")),
            ("/metadata/annotations", json!({"note": "x"})),
            ("/metadata/deletionTimestamp", json!("2026-01-01T00:00:00Z")),
        ];
        for (path, value) in edits {
            let mut edited = hpa();
            let (parent, key) = path.rsplit_once('/').unwrap();
            edited.pointer_mut(parent).unwrap()[key] = value;
            assert_ne!(content_hash(&edited), base, "{path}");
        }
    }

    #[test]
    fn content_hash_is_independent_of_key_order() {
        let a =
            json!({"kind": "ConfigMap", "data": {"a": "1", "b": "2"}, "metadata": {"name": "x"}});
        let b =
            json!({"metadata": {"name": "x"}, "data": {"b": "2", "a": "1"}, "kind": "ConfigMap"});
        assert_eq!(content_hash(&a), content_hash(&b));
    }
}
