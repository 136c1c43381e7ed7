//! Planning and converging Kubernetes objects against the live cluster.
//!
//! For each desired object the server is asked, with a server-side-apply dry run under this
//! project's field manager, what the object would become; the plan is the difference between
//! the live object and that answer, both stripped of server noise. So defaulted fields,
//! `status` and server-assigned metadata never show: only what the configuration changes.
//!
//! A dry run is skipped when it cannot change anything: the live object carries the hash of
//! the configuration it was last applied from, that hash is unchanged, and every desired field
//! still has its value live. Steady-state plans therefore cost one list per type, shared with
//! the rest of the plan ([`crate::snapshot`]).

use std::collections::{BTreeMap, BTreeSet};

use engine::FieldPath;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use std::sync::Arc;

use crate::fields;
use crate::snapshot::{Listed, Lookup, Snapshot};
use crate::{Cluster, LiveError, TypeInfo};

/// Label naming the environment an owned object belongs to (labels can be selected on).
pub const ENVIRONMENT_LABEL: &str = "envctl.dev/environment";
/// Annotation: sha256 of the configuration the object was last applied from.
pub const CONFIG_HASH_ANNOTATION: &str = "envctl.dev/config-hash";
/// Annotation: the object's resource address.
pub const ADDRESS_ANNOTATION: &str = "envctl.dev/address";

/// One object the configuration wants.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    /// Resource address, e.g. `gateway.object.deployment/default/nginx`.
    pub address: String,
    /// The manifest to apply (ownership labels and annotations included for owned objects).
    pub manifest: Value,
    /// False for objects this project only patches (e.g. a label on namespace `default`).
    pub owned: bool,
    /// Whether placeholders in the manifest are still unknown (then no dry run is possible).
    pub has_unknowns: bool,
    /// Take the object over when it exists but is not envctl's (`--adopt`); otherwise such
    /// an object is refused.
    pub adopt: bool,
}

impl DesiredObject {
    fn api_version(&self) -> &str {
        self.manifest
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn kind(&self) -> &str {
        self.manifest
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.manifest
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn namespace(&self) -> Option<&str> {
        self.manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
}

/// A field that differs live from what the configuration wants, and who last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub path: String,
    pub manager: Option<String>,
    pub operation: Option<String>,
    pub time: Option<String>,
}

/// What the cluster says about one desired object.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per desired object, never moved around in bulk
pub enum ObjectState {
    /// Absent. `validated` says whether the server accepted it in a dry run; `waits_for`
    /// names what must be created first (its CRD or namespace) when it could not be checked.
    Absent {
        validated: bool,
        waits_for: Option<String>,
    },
    /// Present and as configured: nothing to send.
    InSync { live: Value },
    /// Present and different: `before`/`after` are stripped of noise.
    Differs {
        live: Value,
        before: Value,
        after: Value,
        drift: Vec<Drift>,
        conflict: Option<crate::Conflict>,
    },
    /// Present, but what it would become is not known until other resources are applied.
    Unknown { live: Value },
    /// The server refused the object even in a dry run (validation error, immutable field).
    Invalid {
        live: Option<Value>,
        message: String,
        immutable: bool,
    },
    /// The cluster does not serve the object's kind and no CRD in this plan defines it: it
    /// may come with a Helm chart planned earlier (the caller knows the graph and decides).
    UnservedKind,
}

/// Facts for a whole set of desired objects, plus owned objects nobody wants any more.
#[derive(Debug, Default)]
pub struct ObjectFacts {
    pub states: BTreeMap<String, ObjectState>,
    /// Owned objects of this environment whose address is not desired: to be pruned.
    pub orphans: Vec<Value>,
    /// Requests made for single objects (gets, dry runs), by verb; the lists are the
    /// snapshot's.
    pub requests: BTreeMap<&'static str, usize>,
}

/// What the planner needs to know about resources that will exist after earlier steps.
#[derive(Debug, Default, Clone)]
pub struct PlannedCreations {
    /// `group/Kind` -> name of the CRD object in this plan that defines it.
    pub kinds: BTreeMap<String, String>,
    /// Namespaces created by this plan.
    pub namespaces: BTreeSet<String>,
}

impl PlannedCreations {
    /// Notes what an object of the plan creates: a CRD's kind, an owned namespace.
    pub fn note(&mut self, manifest: &Value, ownership: engine::Ownership) {
        let text = |pointer| {
            manifest
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        match text("/kind") {
            "CustomResourceDefinition" => {
                let key = format!("{}/{}", text("/spec/group"), text("/spec/names/kind"));
                self.kinds.insert(key, text("/metadata/name").to_owned());
            }
            "Namespace" if ownership == engine::Ownership::Owned => {
                self.namespaces.insert(text("/metadata/name").to_owned());
            }
            _ => {}
        }
    }
}

/// sha256 of a manifest's configuration (what we send, minus the hash annotation itself).
pub fn config_hash(manifest: &Value) -> String {
    // Nothing to take out (the usual case: `stamp` hashes before it annotates): no copy.
    let annotations = manifest.pointer("/metadata/annotations");
    if !annotations.is_some_and(|a| {
        a.as_object()
            .is_some_and(|a| a.is_empty() || a.contains_key(CONFIG_HASH_ANNOTATION))
    }) {
        return engine::canonical_hash(manifest);
    }
    let mut copy = manifest.clone();
    if let Some(Value::Object(meta)) = copy.pointer_mut("/metadata")
        && let Some(Value::Object(a)) = meta.get_mut("annotations")
    {
        a.remove(CONFIG_HASH_ANNOTATION);
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    engine::canonical_hash(&copy)
}

/// Adds the environment label and the configuration hash to an owned manifest.
pub fn stamp(manifest: &Value, environment: &str) -> Value {
    stamp_owned(manifest.clone(), environment)
}

/// [`stamp`] of a manifest the caller gives up (no copy of it is made).
pub fn stamp_owned(mut out: Value, environment: &str) -> Value {
    fields::set_label(&mut out, ENVIRONMENT_LABEL, environment);
    let hash = config_hash(&out);
    fields::set_annotation(&mut out, CONFIG_HASH_ANNOTATION, &hash);
    out
}

fn key(api_version: &str, kind: &str) -> (String, String) {
    (api_version.to_owned(), kind.to_owned())
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

fn live_key(object: &Value) -> (Option<String>, String) {
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (ns, name)
}

/// Gathers the facts for `desired` (all of one environment) in parallel, bounded by
/// `concurrency`. `extra_types` are further `(apiVersion, kind)` pairs to look for orphans in
/// (types this environment applied before, from its inventory). Every type is read from
/// `snapshot` (one list per type, shared with the rest of the plan); the owned objects of this
/// environment are those it labels with [`ENVIRONMENT_LABEL`].
pub async fn gather(
    cluster: &Cluster,
    environment: &str,
    desired: &[DesiredObject],
    planned: &PlannedCreations,
    extra_types: &[(String, String)],
    concurrency: usize,
    snapshot: &Snapshot,
) -> Result<ObjectFacts, LiveError> {
    let mut facts = ObjectFacts::default();

    // One list per served type (the snapshot's), and the owned objects of this environment.
    let mut types: BTreeMap<(String, String), Option<TypeInfo>> = BTreeMap::new();
    for d in desired {
        types.entry(key(d.api_version(), d.kind())).or_insert(None);
    }
    for (v, k) in extra_types {
        types.entry(key(v, k)).or_insert(None);
    }
    for ((v, k), slot) in types.iter_mut() {
        *slot = cluster.resolve(v, k);
    }
    // Namespaces that exist, to tell "create after namespace" from a typo.
    let namespace_type = cluster.resolve("v1", "Namespace");
    let lists = stream::iter(
        types
            .iter()
            .filter_map(|(k, t)| t.clone().map(|t| (Some(k.clone()), t)))
            .chain(namespace_type.map(|t| (None, t))),
    )
    .map(|(k, ty)| async move { snapshot.list(&ty).await.map(|listed| (k, listed)) })
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>()
    .await;
    let mut listed: BTreeMap<(String, String), Arc<Listed>> = BTreeMap::new();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    for result in lists {
        match result? {
            (Some(k), items) => {
                listed.insert(k, items);
            }
            (None, items) => namespaces = items.objects().map(|o| live_key(o).1).collect(),
        }
    }
    // Owned objects of this environment nobody declares any more.
    let desired_addresses: BTreeSet<&str> = desired.iter().map(|d| d.address.as_str()).collect();
    for object in listed
        .values()
        .flat_map(|items| items.objects())
        .filter(|o| is_ours(o, environment))
    {
        let address = object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ADDRESS_ANNOTATION))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !desired_addresses.contains(address) {
            facts.orphans.push(object.clone());
        }
    }

    let results = stream::iter(desired.iter())
        .map(|d| {
            let k = key(d.api_version(), d.kind());
            let ty = types.get(&k).cloned().flatten();
            let seen = match (&ty, listed.get(&k)) {
                (Some(ty), Some(items)) => seen_in(
                    items,
                    d.namespace().filter(|_| ty.namespaced),
                    d.name(),
                    environment,
                ),
                _ => Seen::Unknown,
            };
            let namespaces = &namespaces;
            async move {
                (
                    d.address.clone(),
                    plan_one(cluster, d, ty, seen, namespaces, planned).await,
                )
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    for (address, result) in results {
        let (state, requests) = result.map_err(|e| crate::retry::again_in_plan(&address, e))?;
        for verb in requests {
            *facts.requests.entry(verb).or_default() += 1;
        }
        facts.states.insert(address, state);
    }
    Ok(facts)
}

/// What the list of its type says of the object `namespace`/`name` (pure).
fn seen_in(listed: &Listed, namespace: Option<&str>, name: &str, environment: &str) -> Seen {
    match listed.lookup(namespace, name) {
        Lookup::Found(live) if is_ours(live, environment) => Seen::Ours(live.clone()),
        Lookup::Found(live) => Seen::Other(live.clone()),
        Lookup::Absent => Seen::Absent,
        Lookup::Unknown => Seen::Unknown,
    }
}

/// What the plan's lists say of one desired object.
#[derive(Debug, PartialEq)]
enum Seen {
    /// This environment's, as listed.
    Ours(Value),
    /// Listed, but not this environment's (another manager's, another environment's).
    Other(Value),
    /// Absent (its type is listed whole).
    Absent,
    /// Not selected by the list (no `managed-by` label of envctl or Helm): read it.
    Unknown,
}

/// The requests one object's facts took (for `--stats`), by verb.
type Requests = Vec<&'static str>;

/// The facts of one desired object, in steps: its kind served? its namespace there? the live
/// object (listed, else read), then ownership, and a server-side dry run for what apply would
/// change.
async fn plan_one(
    cluster: &Cluster,
    desired: &DesiredObject,
    ty: Option<TypeInfo>,
    seen: Seen,
    namespaces: &BTreeSet<String>,
    planned: &PlannedCreations,
) -> Result<(ObjectState, Requests), LiveError> {
    let mut requests = Requests::new();
    let Some(ty) = ty else {
        return Ok((unserved_state(desired, planned), requests));
    };
    if let Some(state) = namespace_state(desired, &ty, namespaces, planned)? {
        return Ok((state, requests));
    }
    let ours = matches!(seen, Seen::Ours(_));
    let live = match seen {
        Seen::Ours(live) | Seen::Other(live) => Some(live),
        Seen::Absent => None,
        Seen::Unknown => {
            requests.push("get");
            cluster
                .get(&ty, desired.namespace(), desired.name())
                .await?
        }
    };
    let state = match live {
        None => absent_state(cluster, &ty, desired, &mut requests).await?,
        Some(live) => present_state(cluster, &ty, desired, live, ours, &mut requests).await?,
    };
    Ok((state, requests))
}

/// An object whose kind the cluster does not serve: created after the CRD the plan creates,
/// else unserved.
fn unserved_state(desired: &DesiredObject, planned: &PlannedCreations) -> ObjectState {
    let group_kind = format!("{}/{}", group_of(desired.api_version()), desired.kind());
    match planned.kinds.get(&group_kind) {
        Some(crd) => ObjectState::Absent {
            validated: false,
            waits_for: Some(format!("customresourcedefinition/{crd}")),
        },
        None => ObjectState::UnservedKind,
    }
}

/// When the object's namespace does not exist: absent until the namespace the plan creates,
/// else a configuration error. `None` when the namespace exists (or the kind is cluster-wide).
fn namespace_state(
    desired: &DesiredObject,
    ty: &TypeInfo,
    namespaces: &BTreeSet<String>,
    planned: &PlannedCreations,
) -> Result<Option<ObjectState>, LiveError> {
    let Some(ns) = desired.namespace().filter(|_| ty.namespaced) else {
        return Ok(None);
    };
    if namespaces.contains(ns) {
        return Ok(None);
    }
    if planned.namespaces.contains(ns) {
        return Ok(Some(ObjectState::Absent {
            validated: false,
            waits_for: Some(format!("namespace/{ns}")),
        }));
    }
    Err(LiveError::config(
        &desired.address,
        format!("namespace `{ns}` does not exist and nothing in the configuration creates it"),
    ))
}

/// An object to create: validated by a dry run when every value is known.
async fn absent_state(
    cluster: &Cluster,
    ty: &TypeInfo,
    desired: &DesiredObject,
    requests: &mut Requests,
) -> Result<ObjectState, LiveError> {
    if desired.has_unknowns {
        return Ok(ObjectState::Absent {
            validated: false,
            waits_for: None,
        });
    }
    requests.push("dry-run");
    match cluster.apply(ty, &desired.manifest, true, false).await {
        Ok(_) => Ok(ObjectState::Absent {
            validated: true,
            waits_for: None,
        }),
        Err(LiveError::Api { status, .. }) if status.is_invalid() => Ok(ObjectState::Invalid {
            live: None,
            message: status.message,
            immutable: false,
        }),
        Err(e) => Err(e),
    }
}

/// An object that exists: refused when it is not envctl's (and not adopted), in sync when its
/// configuration hash matches, else what a dry run of the apply would change.
async fn present_state(
    cluster: &Cluster,
    ty: &TypeInfo,
    desired: &DesiredObject,
    live: Value,
    ours: bool,
    requests: &mut Requests,
) -> Result<ObjectState, LiveError> {
    if desired.owned && !ours && !desired.adopt {
        let what = match desired.namespace() {
            Some(ns) => format!("{} {ns}/{}", desired.kind(), desired.name()),
            None => format!("{} {}", desired.kind(), desired.name()),
        };
        return Err(not_owned(&desired.address, &what, &live));
    }
    if desired.has_unknowns {
        return Ok(ObjectState::Unknown { live });
    }
    if desired.owned
        && hash_matches(desired, &live)
        && fields::is_contained(&desired.manifest, &live)
    {
        return Ok(ObjectState::InSync { live });
    }
    // Fields envctl only patches onto an object it does not own (no configuration hash):
    // unchanged when their values are live and envctl's apply entry holds just them.
    if !desired.owned && fields::apply_is_noop(&desired.manifest, &live, crate::FIELD_MANAGER) {
        return Ok(ObjectState::InSync { live });
    }
    dry_run_state(cluster, ty, desired, live, requests).await
}

/// What a server-side dry run of the apply changes. Owned objects are ours: a field someone
/// else overwrote is drift that apply takes back. For objects we only patch, another
/// manager's field is a conflict the user must settle.
async fn dry_run_state(
    cluster: &Cluster,
    ty: &TypeInfo,
    desired: &DesiredObject,
    live: Value,
    requests: &mut Requests,
) -> Result<ObjectState, LiveError> {
    requests.push("dry-run");
    let (after, conflict) = match cluster.apply(ty, &desired.manifest, true, false).await {
        Ok(after) => (after, None),
        Err(LiveError::Conflict { conflict, .. }) => {
            requests.push("dry-run");
            let after = cluster.apply(ty, &desired.manifest, true, true).await?;
            (after, if desired.owned { None } else { Some(conflict) })
        }
        Err(LiveError::Api { status, .. }) if status.is_invalid() => {
            return Ok(ObjectState::Invalid {
                live: Some(live),
                message: status.message,
                immutable: status.immutable,
            });
        }
        Err(e) => return Err(e),
    };
    let before = fields::strip_noise(&live);
    let after_stripped = fields::strip_noise(&after);
    if before == after_stripped {
        return Ok(ObjectState::InSync { live });
    }
    let drift = attribute(&before, &after_stripped, &live);
    Ok(ObjectState::Differs {
        live,
        before,
        after: after_stripped,
        drift,
        conflict,
    })
}

/// Whether a live object is envctl's, for `environment`.
pub(crate) fn is_ours(live: &Value, environment: &str) -> bool {
    let labels = live.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    label("app.kubernetes.io/managed-by") == Some("envctl")
        && label(ENVIRONMENT_LABEL) == Some(environment)
}

/// A declared object exists live but envctl did not create it (for this environment):
/// taking it over silently would overwrite it and let destroy delete it.
pub(crate) fn not_owned(address: &str, what: &str, live: &Value) -> LiveError {
    let labels = live.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let whose = match (
        label("app.kubernetes.io/managed-by"),
        label(ENVIRONMENT_LABEL),
    ) {
        (Some("envctl"), Some(env)) => format!("it belongs to envctl environment `{env}`"),
        (Some(manager), _) => format!("it is managed by `{manager}`"),
        (None, _) => {
            let managers: BTreeSet<&str> = live
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("manager").and_then(Value::as_str))
                .collect();
            if managers.is_empty() {
                "envctl did not create it".to_owned()
            } else {
                format!(
                    "envctl did not create it (written by {})",
                    managers.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        }
    };
    LiveError::NotOwned {
        address: address.to_owned(),
        detail: format!("{what} already exists and is not envctl's: {whose}; nothing was changed"),
        help: format!(
            "to manage it with envctl from now on, run plan and apply with `--adopt {address}` (apply \
             then overwrites it with the configuration and destroy deletes it); otherwise \
             remove it from infra/ or choose another name"
        ),
    }
}

/// The fields that differ between `before` and `after` (both stripped of noise), each with the
/// field manager of `live` that last wrote it (other than envctl).
pub fn attribute(before: &Value, after: &Value, live: &Value) -> Vec<Drift> {
    let managers = fields::managed_fields(live);
    engine::changed_paths(before, after)
        .into_iter()
        .filter(|p| !is_bookkeeping(p))
        .map(|path| {
            let writer = fields::last_writer(&managers, live, &path, crate::FIELD_MANAGER);
            Drift {
                path: path.to_string(),
                manager: writer.map(|w| w.manager.clone()),
                operation: writer.map(|w| w.operation.clone()),
                time: writer.and_then(|w| w.time.clone()),
            }
        })
        .collect()
}

/// Our own bookkeeping annotation changes with every configuration change; it is not drift.
fn is_bookkeeping(path: &FieldPath) -> bool {
    let annotation = FieldPath::root()
        .key("metadata")
        .key("annotations")
        .key(CONFIG_HASH_ANNOTATION);
    path.segments.starts_with(&annotation.segments)
}

fn hash_matches(desired: &DesiredObject, live: &Value) -> bool {
    let want = desired
        .manifest
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION));
    let have = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION));
    want.is_some() && want == have
}

/// The manifest that removes this project's fields from an object it only patches: applying
/// just the identity under our field manager drops every field we managed.
pub fn release_fields(manifest: &Value) -> Value {
    let mut out = serde_json::json!({
        "apiVersion": manifest.get("apiVersion").cloned().unwrap_or_default(),
        "kind": manifest.get("kind").cloned().unwrap_or_default(),
        "metadata": {"name": manifest.pointer("/metadata/name").cloned().unwrap_or_default()},
    });
    if let Some(ns) = manifest.pointer("/metadata/namespace") {
        out["metadata"]["namespace"] = ns.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Drift reports name fields in engine::FieldPath's syntax, one path a change, and each
    /// printed path parses back to the field.
    #[test]
    fn drift_paths_print_in_the_engine_syntax_and_parse_back() {
        let live = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone"},
                                       "annotations": {"a/b": "2", "say \"hi\"": "y",
                                                       CONFIG_HASH_ANNOTATION: "old"}},
                          "data": {"config.yaml": "b"}, "args": ["x", "y", "z"]});
        let desired = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "envctl"},
                                          "annotations": {"a/b": "1", "say \"hi\"": "x",
                                                          CONFIG_HASH_ANNOTATION: "new"}},
                             "data": {"config.yaml": "a"}, "args": ["x", "y"]});
        let drift = attribute(&live, &desired, &live);
        let printed: Vec<&str> = drift.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            printed,
            [
                "metadata.labels[\"app.kubernetes.io/managed-by\"]",
                "metadata.annotations.a/b",
                "metadata.annotations[\"say \\\"hi\\\"\"]",
                "data[\"config.yaml\"]",
                "args[2]",
            ],
            "the config hash is bookkeeping, not drift"
        );
        for text in printed {
            let path: FieldPath = text.parse().unwrap();
            assert_eq!(path.to_string(), text);
        }
    }

    /// The plan lists each type once for everything envctl and Helm manage, cluster-wide:
    /// this environment's objects are told apart by their labels, another manager's or another
    /// environment's object at a desired name is what the list holds (refused later, as a
    /// get's answer would be), and an object the selected list does not hold is unknown (read
    /// with a get).
    #[test]
    fn the_shared_list_is_split_by_environment_client_side() {
        let object = |name: &str, labels: Value| json!({"metadata": {"name": name, "namespace": "default", "labels": labels}});
        let ours = object(
            "a",
            json!({"app.kubernetes.io/managed-by": "envctl", ENVIRONMENT_LABEL: "kwok"}),
        );
        let other_env = object(
            "b",
            json!({"app.kubernetes.io/managed-by": "envctl", ENVIRONMENT_LABEL: "dev"}),
        );
        let helms = object("c", json!({"app.kubernetes.io/managed-by": "Helm"}));
        let listed = Listed::new(vec![ours.clone(), other_env.clone(), helms.clone()], false);
        let seen = |name| seen_in(&listed, Some("default"), name, "kwok");
        assert_eq!(seen("a"), Seen::Ours(ours));
        assert_eq!(seen("b"), Seen::Other(other_env));
        assert_eq!(seen("c"), Seen::Other(helms));
        assert_eq!(seen("d"), Seen::Unknown);
        assert_eq!(
            seen_in(&listed, Some("other"), "a", "kwok"),
            Seen::Unknown,
            "another namespace"
        );
        let whole = Listed::new(vec![], true);
        assert_eq!(seen_in(&whole, None, "x", "kwok"), Seen::Absent);
    }

    #[test]
    fn config_hash_ignores_its_own_annotation_and_key_order() {
        let a =
            json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}});
        let stamped = stamp(&a, "default");
        let reordered = json!({"data": {"b": "2", "a": "1"}, "metadata": {"name": "x",
            "labels": {"envctl.dev/environment": "default"}}, "kind": "ConfigMap"});
        assert_eq!(config_hash(&stamped), config_hash(&reordered));
        assert_eq!(
            stamped["metadata"]["annotations"][CONFIG_HASH_ANNOTATION],
            config_hash(&reordered).as_str()
        );
    }

    #[test]
    fn a_changed_value_changes_the_hash() {
        let a = stamp(
            &json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}),
            "e",
        );
        let b = stamp(
            &json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "2"}}),
            "e",
        );
        assert_ne!(config_hash(&a), config_hash(&b));
    }

    #[test]
    fn releasing_fields_keeps_only_the_identity() {
        let patch = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}});
        assert_eq!(
            release_fields(&patch),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        );
    }
}
