//! Pure helpers over Kubernetes object JSON: removing server noise and attributing a field to
//! the manager that last wrote it (from `metadata.managedFields`). The fields that differ
//! between two versions of an object are [`engine::changed_paths`].
//!
//! Nothing here talks to a cluster; it is unit-tested on literal objects.

use engine::{FieldPath, PathSegment};
use serde_json::{Map, Value};

/// Metadata fields the server assigns or maintains. They never show in a diff.
const NOISY_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionGracePeriodSeconds",
];

/// Annotations written by controllers, not by users.
const NOISY_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Returns `object` without `status`, server-assigned metadata and controller annotations.
///
/// Used on both sides of a diff (live, and the server's dry-run result), so that what remains
/// differs only where this project's configuration changes something.
pub fn strip_noise(object: &Value) -> Value {
    // Built by copying only what stays (a live object's managedFields are most of it), with
    // the keys in the order `Map::remove` (a swap-remove) of the noise would leave them.
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::new();
    for (key, value) in swap_removed(map, &["status"]) {
        let value = match (key.as_str(), value) {
            ("metadata", Value::Object(meta)) => Value::Object(strip_metadata(meta)),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// `metadata` without [`NOISY_METADATA`] and [`NOISY_ANNOTATIONS`] (an annotations map left
/// empty removed too).
fn strip_metadata(meta: &Map<String, Value>) -> Map<String, Value> {
    let mut kept = swap_removed(meta, NOISY_METADATA);
    let mut stripped_annotations = None;
    if let Some(i) = kept.iter().position(|(k, _)| k.as_str() == "annotations")
        && let Value::Object(annotations) = kept[i].1
    {
        let left: Map<String, Value> = swap_removed(annotations, NOISY_ANNOTATIONS)
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if left.is_empty() {
            kept.swap_remove(i);
        } else {
            stripped_annotations = Some(Value::Object(left));
        }
    }
    kept.into_iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "annotations" => stripped_annotations.take().unwrap_or_else(|| v.clone()),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The entries of `map` in the order they would have after `map.remove(key)` (with
/// `preserve_order`, a swap-remove: the last entry takes the removed one's place) of each of
/// `keys` in turn; nothing is copied.
pub(crate) fn swap_removed<'a>(
    map: &'a Map<String, Value>,
    keys: &[&str],
) -> Vec<(&'a String, &'a Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    for key in keys {
        if let Some(i) = entries.iter().position(|(k, _)| k.as_str() == *key) {
            entries.swap_remove(i);
        }
    }
    entries
}

/// `value` with the keys of every map in the order `like` has them (keys `like` lacks come
/// after), so that a text diff of the two shows changed values, not moved keys.
pub fn align_order(value: &Value, like: &Value) -> Value {
    match (value, like) {
        (Value::Object(v), Value::Object(l)) => {
            let mut out = Map::new();
            for (k, lv) in l {
                if let Some(vv) = v.get(k) {
                    out.insert(k.clone(), align_order(vv, lv));
                }
            }
            for (k, vv) in v {
                if !l.contains_key(k) {
                    out.insert(k.clone(), vv.clone());
                }
            }
            Value::Object(out)
        }
        (Value::Array(v), Value::Array(l)) => v
            .iter()
            .enumerate()
            .map(|(i, vv)| {
                l.get(i)
                    .map_or_else(|| vv.clone(), |lv| align_order(vv, lv))
            })
            .collect(),
        _ => value.clone(),
    }
}

/// True when every field set in `desired` has the same value in `live`.
///
/// Lists must have the same length and each desired element must be contained in the live
/// element at the same index (the server adds defaulted fields inside elements). A `false`
/// is not proof of a change (the server may have normalised a value, e.g. `0.1` CPU to `100m`);
/// callers then ask the server with a dry run. A `true` together with an unchanged
/// configuration hash means the object needs no request at all.
pub fn is_contained(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| is_contained(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_contained(dv, lv))
        }
        _ => desired == live,
    }
}

/// Whether a server-side apply of `desired` by `manager` would change nothing on `live`,
/// decided without asking the server: every field of `desired` has its value live, and the
/// manager's own apply entry in `metadata.managedFields` holds exactly the fields of
/// `desired` (so the apply would neither set, take over nor give up a field).
///
/// Only for documents made of maps and scalars (a list's field set depends on its merge keys,
/// which only the server knows): for anything else this says `false` and the caller asks the
/// server with a dry run.
pub fn apply_is_noop(desired: &Value, live: &Value, manager: &str) -> bool {
    let Some(wanted) = applied_field_set(desired, 0) else {
        return false;
    };
    if !is_contained(desired, live) {
        return false;
    }
    let mut ours = managed_fields(live)
        .into_iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource.is_none());
    match (ours.next(), ours.next()) {
        (Some(entry), None) => entry.fields == wanted,
        _ => false,
    }
}

/// The `fieldsV1` set a server-side apply of `value` records (at `depth` 0, the object:
/// `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` identify it and are not
/// recorded). `None` for a list or an empty map, whose set this does not derive.
fn applied_field_set(value: &Value, depth: usize) -> Option<Value> {
    let Value::Object(map) = value else {
        return match value {
            Value::Array(_) => None,
            _ => Some(Value::Object(Map::new())),
        };
    };
    if map.is_empty() && depth > 0 {
        return None;
    }
    let mut set = Map::new();
    for (key, child) in map {
        let identity = match depth {
            0 => key == "apiVersion" || key == "kind",
            _ => false,
        };
        if identity {
            continue;
        }
        let child_set = if depth == 0 && key == "metadata" {
            let mut meta = child.clone();
            if let Some(m) = meta.as_object_mut() {
                m.remove("name");
                m.remove("namespace");
                if m.is_empty() {
                    continue;
                }
            }
            applied_field_set(&meta, depth + 1)?
        } else {
            applied_field_set(child, depth + 1)?
        };
        set.insert(format!("f:{key}"), child_set);
    }
    Some(Value::Object(set))
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    fields: Value,
}

/// Parses `metadata.managedFields` of a live object.
pub fn managed_fields(object: &Value) -> Vec<ManagedFieldsEntry> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            Some(ManagedFieldsEntry {
                manager: e.get("manager")?.as_str()?.to_owned(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                time: e.get("time").and_then(Value::as_str).map(str::to_owned),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                fields: e.get("fieldsV1").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

impl ManagedFieldsEntry {
    /// Whether this entry owns `path` (or a field below it) of `object`.
    ///
    /// Field sets use `f:<name>` for map keys, `k:{...}` for list elements identified by keys,
    /// `v:<json>` for set elements and `i:<n>` for positions; list elements are matched against
    /// the element of `object` at the path's index.
    pub fn owns(&self, object: &Value, path: &FieldPath) -> bool {
        owns_in(&self.fields, object, &path.segments)
    }
}

fn owns_in(set: &Value, object: &Value, steps: &[PathSegment]) -> bool {
    let Some(set) = set.as_object() else {
        return false;
    };
    let Some((step, rest)) = steps.split_first() else {
        // The path ends here: owned if the set names it (as a leaf or with children).
        return true;
    };
    match step {
        PathSegment::Key(key) => {
            let Some(child) = set.get(&format!("f:{key}")) else {
                return false;
            };
            let next = object.get(key).unwrap_or(&Value::Null);
            owns_in(child, next, rest)
        }
        PathSegment::Index(i) => {
            let Some(element) = object.as_array().and_then(|a| a.get(*i)) else {
                return false;
            };
            set.iter()
                .any(|(k, child)| list_key_matches(k, element, *i) && owns_in(child, element, rest))
        }
        // Wildcards name no field of a managed field set.
        PathSegment::AnyKey | PathSegment::AnyIndex => false,
    }
}

fn list_key_matches(key: &str, element: &Value, index: usize) -> bool {
    if let Some(json) = key.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(json) else {
            return false;
        };
        keys.iter().all(|(k, v)| element.get(k) == Some(v))
    } else if let Some(json) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(json).is_ok_and(|v| &v == element)
    } else if let Some(n) = key.strip_prefix("i:") {
        n.parse::<usize>() == Ok(index)
    } else {
        false
    }
}

/// The manager that last wrote `path`: an owner of the path itself, else an owner of its
/// immediate parent (a removed field is attributed to whoever last wrote the map it was in).
///
/// Entries are tried newest first, so that of two managers sharing a field the one that wrote
/// it last is named.
pub fn last_writer<'a>(
    entries: &'a [ManagedFieldsEntry],
    object: &Value,
    path: &FieldPath,
    ignore_manager: &str,
) -> Option<&'a ManagedFieldsEntry> {
    let mut ordered: Vec<&ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| e.manager != ignore_manager)
        .collect();
    ordered.sort_by(|a, b| b.time.cmp(&a.time));
    if let Some(found) = ordered.iter().find(|e| e.owns(object, path)) {
        return Some(found);
    }
    // Only the immediate parent: a manager that owns some other field of `spec` did not
    // necessarily touch `spec.template...`.
    let parent = FieldPath {
        segments: path.segments[..path.segments.len().saturating_sub(1)].to_vec(),
    };
    if parent.segments.is_empty() {
        return None;
    }
    ordered.into_iter().find(|e| e.owns(object, &parent))
}

/// Sets `metadata.labels[key] = value` (creating the maps on the way).
pub fn set_label(object: &mut Value, key: &str, value: &str) {
    set_metadata_entry(object, "labels", key, value);
}

/// Sets `metadata.annotations[key] = value` (creating the maps on the way).
pub fn set_annotation(object: &mut Value, key: &str, value: &str) {
    set_metadata_entry(object, "annotations", key, value);
}

fn set_metadata_entry(object: &mut Value, map_name: &str, key: &str, value: &str) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let map = meta
        .entry(map_name)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(map) = map.as_object_mut() {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "nginx", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2026-11-28T10:00:00Z",
                "annotations": {"deployment.kubernetes.io/revision": "2"},
                "labels": {"app": "nginx"},
                "managedFields": [
                    {"manager": "envctl", "operation": "Apply", "time": "2026-11-28T10:00:00Z",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                                  "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                                      "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-28T11:00:00Z",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                     "time": "2026-11-28T11:00:01Z", "fieldsV1": {"f:status": {"f:replicas": {}}}}
                ]
            },
            "spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27", "terminationMessagePath": "/dev/termination-log"}]}}},
            "status": {"replicas": 5}
        })
    }

    #[test]
    fn strip_noise_removes_server_fields_and_keeps_user_fields() {
        let stripped = strip_noise(&live_deployment());
        let meta = stripped["metadata"].as_object().unwrap();
        assert_eq!(
            meta.keys().collect::<Vec<_>>(),
            ["name", "namespace", "labels"],
            "only user metadata remains"
        );
        assert!(stripped.get("status").is_none());
        assert_eq!(stripped["spec"]["replicas"], 5);
    }

    /// What `strip_noise` did before it copied only what stays: copy, then `Map::remove`.
    fn strip_noise_by_removal(object: &Value) -> Value {
        let mut out = object.clone();
        let Some(map) = out.as_object_mut() else {
            return out;
        };
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for key in NOISY_METADATA {
                meta.remove(*key);
            }
            if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
                for key in NOISY_ANNOTATIONS {
                    annotations.remove(*key);
                }
                if annotations.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
        out
    }

    #[test]
    fn strip_noise_keeps_the_key_order_of_removing_the_noise() {
        let revision = "deployment.kubernetes.io/revision";
        let objects = [
            live_deployment(),
            json!({"status": {}, "kind": "ConfigMap", "metadata": {"uid": "u", "name": "a",
                "annotations": {(revision): "1"}, "namespace": "n", "generation": 2,
                "labels": {"x": "y"}, "resourceVersion": "7"}, "data": {"k": "v"}}),
            json!({"kind": "ConfigMap", "metadata": {"annotations": {"a": "1", (revision): "1",
                "b": "2"}, "managedFields": [], "name": "a", "uid": "u"}, "apiVersion": "v1"}),
            json!({"metadata": {"annotations": "not a map", "name": "a"}, "status": 1, "z": 0}),
            json!({"metadata": [1, 2], "status": {}}),
            json!(["not", "an", "object"]),
        ];
        for object in objects {
            let fast = strip_noise(&object);
            let slow = strip_noise_by_removal(&object);
            assert_eq!(fast, slow, "{object}");
            // Same keys in the same order at every level (serialised with preserve_order).
            assert_eq!(fast.to_string(), slow.to_string(), "{object}");
        }
    }

    #[test]
    fn contained_ignores_defaulted_fields_inside_list_elements() {
        let desired = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}});
        assert!(is_contained(&desired, &live_deployment()));
        let changed = json!({"spec": {"replicas": 2}});
        assert!(!is_contained(&changed, &live_deployment()));
        let longer = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx"}, {"name": "x"}]}}}});
        assert!(!is_contained(&longer, &live_deployment()));
    }

    #[test]
    fn drifted_field_is_attributed_to_the_manager_that_wrote_it_last() {
        let live = live_deployment();
        let entries = managed_fields(&live);
        let replicas: FieldPath = "spec.replicas".parse().unwrap();
        let writer = last_writer(&entries, &live, &replicas, "envctl").unwrap();
        assert_eq!(writer.manager, "kubectl-edit");
        assert_eq!(writer.operation, "Update");
        assert_eq!(writer.time.as_deref(), Some("2026-11-28T11:00:00Z"));
    }

    #[test]
    fn list_elements_are_matched_by_their_keys() {
        let live = live_deployment();
        let entries = managed_fields(&live);
        let image: FieldPath = "spec.template.spec.containers[0].image".parse().unwrap();
        assert!(
            entries[0].owns(&live, &image),
            "envctl owns the image of container nginx"
        );
        assert!(!entries[1].owns(&live, &image));
        assert!(last_writer(&entries, &live, &image, "envctl").is_none());
    }

    #[test]
    fn a_removed_field_is_attributed_to_the_owner_of_its_parent() {
        let mut live = live_deployment();
        live["metadata"]["managedFields"][1]["fieldsV1"] = json!({"f:metadata": {"f:labels": {}}});
        let entries = managed_fields(&live);
        let gone: FieldPath = "metadata.labels.tier".parse().unwrap();
        assert_eq!(
            last_writer(&entries, &live, &gone, "envctl")
                .unwrap()
                .manager,
            "kubectl-edit"
        );
    }

    #[test]
    fn aligning_key_order_keeps_every_key_and_value() {
        let value = json!({"spec": {"b": 1, "a": 2}, "kind": "X", "extra": true});
        let like = json!({"kind": "X", "spec": {"a": 0, "b": 0}});
        let aligned = align_order(&value, &like);
        assert_eq!(aligned, value, "same content");
        let keys: Vec<&String> = aligned.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "spec", "extra"]);
        let inner: Vec<&String> = aligned["spec"].as_object().unwrap().keys().collect();
        assert_eq!(inner, ["a", "b"]);
    }

    #[test]
    fn labels_and_annotations_are_added_without_losing_existing_ones() {
        let mut object = json!({"metadata": {"name": "x", "labels": {"keep": "1"}}});
        set_label(&mut object, "app.kubernetes.io/managed-by", "envctl");
        set_annotation(&mut object, "envctl.dev/module", "gateway");
        assert_eq!(object["metadata"]["labels"]["keep"], "1");
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "envctl"
        );
        assert_eq!(
            object["metadata"]["annotations"]["envctl.dev/module"],
            "gateway"
        );
    }

    #[test]
    fn an_apply_is_a_noop_only_when_values_and_our_field_set_are_as_desired() {
        let desired = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}
        });
        let ours = json!({"manager": "envctl", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:istio-injection": {}}}}});
        let server = json!({"manager": "kube-apiserver", "operation": "Update",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}}});
        let live = |labels: Value, managers: Value| {
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "default", "labels": labels, "managedFields": managers}
            })
        };
        let labels =
            json!({"istio-injection": "enabled", "kubernetes.io/metadata.name": "default"});

        assert!(apply_is_noop(
            &desired,
            &live(labels.clone(), json!([server, ours])),
            "envctl"
        ));
        // Another value live (someone edited the label): the server must be asked.
        let edited =
            json!({"istio-injection": "disabled", "kubernetes.io/metadata.name": "default"});
        assert!(!apply_is_noop(
            &desired,
            &live(edited, json!([server, ours])),
            "envctl"
        ));
        // The value is there but envctl never applied it (another manager wrote it).
        assert!(!apply_is_noop(
            &desired,
            &live(labels.clone(), json!([server])),
            "envctl"
        ));
        // envctl applied more than it wants now: the apply would remove a label.
        let more = json!({"manager": "envctl", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:istio-injection": {}, "f:old": {}}}}});
        assert!(!apply_is_noop(
            &desired,
            &live(labels.clone(), json!([server, more])),
            "envctl"
        ));
        // A document with a list: its field set needs the server's merge keys.
        let mut with_list = desired.clone();
        with_list["spec"] = json!({"finalizers": ["kubernetes"]});
        assert!(!apply_is_noop(
            &with_list,
            &live(labels, json!([server, ours])),
            "envctl"
        ));
    }
}
