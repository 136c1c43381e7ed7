//! Helm releases read from Helm's own storage with the kube client, without running helm, and
//! the record that lets a steady-state plan skip a release's render and dry runs.
//!
//! # Helm's storage
//! Helm 3 keeps each revision of a release in a Secret `sh.helm.release.v1.<name>.v<rev>` of
//! type `helm.sh/release.v1` in the release namespace, labelled `owner=helm`, `name`,
//! `status` and `version`. Its `data.release` is base64 of gzip of the release as JSON
//! (`info.status`, `chart.metadata`, `config` = the values the user supplied, `manifest`,
//! `version`). [`latest_release`] takes the highest `version` of those Secrets and decodes it:
//! what `helm get metadata`, `helm get values` and `helm get manifest` print, with no process.
//! A plan lists the storage Secrets of all its releases at once
//! ([`crate::snapshot::Snapshot::helm_storage`]); [`read_release`] lists one release's (one
//! request), for apply.
//!
//! # The verified record
//! At the end of an apply, each deployed release whose objects were verified against the
//! chart (rendered with the deployed values, every object compared live with a dry run: no
//! drift) gets a record: the annotation [`RECORD_ANNOTATION`] on the storage Secret of that
//! revision, holding the revision, a digest of the chart and of the cluster's capabilities it
//! was rendered with, and the `resourceVersion` of every object of the release. A later plan
//! that finds the same revision, the same values, the same chart and capabilities digests,
//! and every object still at its recorded `resourceVersion` (read from the plan's
//! [`crate::snapshot::Snapshot`]: one list per type for the whole plan) knows the release is
//! as verified: no render, no dry run. Any write to any of its objects (kubectl edit, delete,
//! a controller) changes a `resourceVersion`, and the release is checked in full again,
//! except a write of the status alone: an object that has a `metadata.generation` (which
//! changes with its spec) and whose generation and metadata (labels, annotations, owners,
//! finalizers) are as recorded counts as unchanged, so that a controller reporting status (a
//! CRD becoming Established after apply recorded it, a Deployment's conditions) does not make
//! every later plan check the release in full. An object without a generation (a
//! HorizontalPodAutoscaler, whose controller writes its status some seconds after apply)
//! whose resourceVersion moved counts as unchanged when its [`engine::content_hash`]
//! (everything but the status and the server's bookkeeping) is the one recorded from the
//! object verified in sync (the snapshot holds it in full: no further read); any other write
//! changes that hash.
//! A new revision (an upgrade or rollback by anyone) is a new Secret without the record.
//!
//! The record lives with the revision it describes, so it can never be mistaken for another
//! revision's, and Helm removes it with the revision. It holds no values: names, versions and
//! digests only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::helm::{Capabilities, ChartRef, ReleaseStatus};
use crate::{Cluster, LiveError};

/// The annotation on a Helm storage Secret that records its verified objects.
pub const RECORD_ANNOTATION: &str = "envctl.dev/verified-objects";

/// The latest revision of a release as Helm stored it. `values` may hold secrets.
#[derive(Clone)]
pub struct StoredRelease {
    /// The storage Secret of this revision.
    pub secret: String,
    pub status: ReleaseStatus,
    /// The values the user supplied (`{}` when none).
    pub values: Value,
    /// The rendered objects (hooks excluded), as `helm get manifest` prints them.
    pub manifest: String,
    /// The record of the last verification, when this revision has one.
    pub record: Option<VerifiedRecord>,
}

impl std::fmt::Debug for StoredRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRelease")
            .field("secret", &self.secret)
            .field("status", &self.status)
            .field("values", &"(not shown)")
            .field("record", &self.record)
            .finish()
    }
}

/// One object of a release and the `resourceVersion` it had when verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct RecordedObject {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(rename = "resourceVersion")]
    pub resource_version: String,
    /// `metadata.generation`, for types that have one (it changes with the spec, not with
    /// the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Digest of the metadata a write out of band can change without changing the
    /// generation: labels, annotations, owner references, finalizers, deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// [`engine::content_hash`] of the object as verified in sync: all of it but its status
    /// and the server's bookkeeping, so a write of the status alone leaves it unchanged (an
    /// HPA has no generation, and its controller writes its status after apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl RecordedObject {
    /// Whether `now` (the same object read again) is as recorded: the same resourceVersion,
    /// or, for an object with a generation, the same generation and metadata digest (only its
    /// status was written since: a controller reporting, e.g. a CRD becoming Established or
    /// a Deployment's conditions, which is no drift of what apply wrote).
    pub fn unchanged(&self, now: &RecordedObject) -> bool {
        let same_object = (&self.api_version, &self.kind, &self.namespace, &self.name)
            == (&now.api_version, &now.kind, &now.namespace, &now.name);
        same_object
            && (self.resource_version == now.resource_version
                || (self.generation.is_some()
                    && self.metadata.is_some()
                    && self.generation == now.generation
                    && self.metadata == now.metadata))
    }

    /// Whether `live` (this object read in full) has the content recorded, although its
    /// resourceVersion moved: only its status was written. `false` without a recorded content.
    pub fn same_content(&self, live: &Value) -> bool {
        self.content
            .as_ref()
            .is_some_and(|c| *c == engine::content_hash(live))
    }
}

/// [`RecordedObject::metadata`] of an object's metadata.
fn metadata_digest(meta: &kube::api::ObjectMeta) -> String {
    engine::canonical_hash(&serde_json::json!({
        "labels": meta.labels,
        "annotations": meta.annotations,
        "ownerReferences": meta.owner_references,
        "finalizers": meta.finalizers,
        "deletionTimestamp": meta.deletion_timestamp,
    }))
}

/// What a verification found in sync (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedRecord {
    pub revision: u64,
    /// [`chart_digest`] of the chart the objects were rendered from.
    pub chart: String,
    /// [`capabilities_digest`] of the cluster they were rendered for.
    pub capabilities: String,
    pub objects: Vec<RecordedObject>,
}

/// The release JSON fields read here.
#[derive(Deserialize)]
struct ReleaseJson {
    #[serde(default)]
    info: InfoJson,
    #[serde(default)]
    chart: ChartJson,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    manifest: String,
    #[serde(default)]
    version: u64,
}

#[derive(Deserialize, Default)]
struct InfoJson {
    #[serde(default)]
    status: String,
}

#[derive(Deserialize, Default)]
struct ChartJson {
    #[serde(default)]
    metadata: ChartMetadataJson,
}

#[derive(Deserialize, Default)]
struct ChartMetadataJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "appVersion")]
    app_version: String,
}

/// Decodes `data.release` of a storage Secret (the bytes after Kubernetes' own base64):
/// base64, then gzip when it starts with gzip's magic bytes (as Helm decodes it).
pub fn decode_release(data: &[u8]) -> Result<Value, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("not base64: {e}"))?;
    let json = if raw.starts_with(&[0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("not gzip: {e}"))?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|e| format!("not a release: {e}"))
}

/// The latest revision of `release` in `namespace` from Helm's storage (one list of Secrets);
/// `None` when there is no release.
pub async fn read_release(
    cluster: &Cluster,
    release: &str,
    namespace: &str,
) -> Result<Option<StoredRelease>, LiveError> {
    let Some(ty) = cluster.resolve("v1", "Secret") else {
        return Ok(None);
    };
    let secrets = cluster
        .list_where(
            &ty,
            Some(namespace),
            &crate::snapshot::storage_selector([release]),
            &format!("type={}", crate::snapshot::HELM_STORAGE_TYPE),
        )
        .await?;
    latest_release(&secrets, release, namespace)
}

/// The latest revision of `release` in `namespace` among Helm's storage Secrets `secrets` (as
/// listed: `data` in Kubernetes' base64); `None` when there is none.
pub fn latest_release(
    secrets: &[Value],
    release: &str,
    namespace: &str,
) -> Result<Option<StoredRelease>, LiveError> {
    let label = |s: &Value, key: &str| {
        s.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let latest = secrets
        .iter()
        .filter(|s| {
            s.get("type").and_then(Value::as_str) == Some(crate::snapshot::HELM_STORAGE_TYPE)
                && label(s, "owner").as_deref() == Some("helm")
                && label(s, "name").as_deref() == Some(release)
                && s.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
        })
        .max_by_key(|s| {
            label(s, "version")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        });
    let Some(secret) = latest else {
        return Ok(None);
    };
    let name = secret
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let bad = |message: String| LiveError::Unreadable {
        what: format!("Helm's storage Secret {namespace}/{name} of release {release}"),
        problem: message,
    };
    let data = secret
        .pointer("/data/release")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no `release` data".into()))?;
    // Kubernetes' own base64 of `data`, then Helm's encoding.
    let data = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| bad(format!("`data.release` is not base64: {e}")))?;
    let release_json: ReleaseJson = serde_json::from_value(decode_release(&data).map_err(bad)?)
        .map_err(|e| bad(e.to_string()))?;
    let record = secret
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RECORD_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<VerifiedRecord>(text).ok());
    let values = match release_json.config {
        Value::Null => Value::Object(Default::default()),
        other => other,
    };
    Ok(Some(StoredRelease {
        secret: name,
        status: ReleaseStatus {
            revision: release_json.version,
            chart_name: release_json.chart.metadata.name,
            chart_version: release_json.chart.metadata.version,
            status: release_json.info.status,
            app_version: release_json.chart.metadata.app_version,
        },
        values,
        manifest: release_json.manifest,
        record,
    }))
}

/// The recovery of a release whose latest revision is `pending-*` (as `helm history` would
/// tell, see [`crate::helm::pending_from_history`]), read from the labels of Helm's storage
/// Secrets (`version`, `status`) with one metadata-only list and no helm process; the pending
/// revision's Secret's creation time is when it was written. `None`: not pending, or no
/// release.
pub async fn pending(
    cluster: &Cluster,
    release: &str,
    namespace: &str,
) -> Result<Option<crate::helm::Pending>, LiveError> {
    let api: Api<Secret> = Api::namespaced(cluster.client().clone(), namespace);
    let list = api
        .list_metadata(
            &ListParams::default()
                .labels(&format!("owner=helm,name={release}"))
                .fields("type=helm.sh/release.v1"),
        )
        .await?;
    let history: Vec<(u64, String, String)> = list
        .items
        .into_iter()
        .filter_map(|s| {
            let labels = s.metadata.labels?;
            let revision = labels.get("version")?.parse::<u64>().ok()?;
            let status = labels.get("status")?.clone();
            let since = s
                .metadata
                .creation_timestamp
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            Some((revision, status, since))
        })
        .collect();
    Ok(crate::helm::pending_from_history(&history))
}

/// A digest of what a chart renders from: for a repository chart its repository, name,
/// version and pin; for a chart directory every file's path and content (a directory changes
/// without a version change).
pub fn chart_digest(chart: &ChartRef) -> Result<String, LiveError> {
    match chart {
        ChartRef::Repo {
            repo,
            chart,
            version,
            sha256,
        } => Ok(engine::sha256_hex(
            format!(
                "{repo}\n{chart}\n{version}\n{}",
                sha256.as_deref().unwrap_or("")
            )
            .as_bytes(),
        )),
        ChartRef::Local(path) => {
            let mut files = Vec::new();
            collect_files(path, path, &mut files).map_err(|source| LiveError::Io {
                what: format!("reading chart {}", path.display()),
                source,
            })?;
            files.sort();
            let mut all = Vec::new();
            for (relative, content) in files {
                all.extend_from_slice(relative.as_bytes());
                all.push(0);
                all.extend_from_slice(engine::sha256_hex(&content).as_bytes());
                all.push(b'\n');
            }
            Ok(engine::sha256_hex(&all))
        }
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push((String::new(), std::fs::read(dir)?));
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((relative, std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// A digest of the capabilities a chart was rendered for.
pub fn capabilities_digest(caps: &Capabilities) -> String {
    engine::sha256_hex(
        format!("{}\n{}", caps.kube_version, caps.api_versions.join("\n")).as_bytes(),
    )
}

/// The identity of an object of a release (namespace filled in where namespaced).
fn identity(object: &Value) -> (String, String, Option<String>, String) {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let namespace = Some(text("/metadata/namespace")).filter(|n| !n.is_empty());
    (
        text("/apiVersion"),
        text("/kind"),
        namespace,
        text("/metadata/name"),
    )
}

/// `name -> (resourceVersion, generation, metadata digest)` of one type in one namespace.
type Versions = BTreeMap<String, (String, Option<i64>, String)>;

/// One metadata-only list of a type (in `namespace`, or cluster-wide).
async fn list_versions(
    cluster: &Cluster,
    ty: &crate::TypeInfo,
    namespace: Option<&str>,
) -> Result<Versions, LiveError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(cluster.client().clone(), ns, &ty.resource),
        None => Api::all_with(cluster.client().clone(), &ty.resource),
    };
    let listed = api.list_metadata(&ListParams::default()).await?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|o| {
            let digest = metadata_digest(&o.metadata);
            Some((
                o.metadata.name?,
                (o.metadata.resource_version?, o.metadata.generation, digest),
            ))
        })
        .collect())
}

/// The `resourceVersion` of each of `objects` now, by one metadata-only list per type and
/// namespace (what apply records); `None` when one of them does not exist or its type is not
/// served.
pub async fn live_versions(
    cluster: &Cluster,
    objects: &[Value],
) -> Result<Option<Vec<RecordedObject>>, LiveError> {
    let wanted: Vec<(String, String, Option<String>, String)> =
        objects.iter().map(identity).collect();
    let mut groups: BTreeMap<(String, String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    for (v, k, ns, name) in &wanted {
        groups
            .entry((v.clone(), k.clone(), ns.clone()))
            .or_default()
            .insert(name.clone());
    }
    let mut out = Vec::new();
    for ((api_version, kind, namespace), names) in groups {
        let Some(ty) = cluster.resolve(&api_version, &kind) else {
            return Ok(None);
        };
        let scope = namespace.as_deref().filter(|_| ty.namespaced);
        let versions = list_versions(cluster, &ty, scope).await?;
        for name in names {
            let Some((resource_version, generation, digest)) = versions.get(&name) else {
                return Ok(None);
            };
            out.push(RecordedObject {
                api_version: api_version.clone(),
                kind: kind.clone(),
                namespace: namespace.clone().filter(|_| ty.namespaced),
                name,
                resource_version: resource_version.clone(),
                generation: *generation,
                metadata: Some(digest.clone()),
                content: None,
            });
        }
    }
    out.sort();
    Ok(Some(out))
}

/// `recorded`'s object as `live` (the same object read now, in full) is: its resourceVersion,
/// generation and metadata digest.
fn now_of(recorded: &RecordedObject, live: &Value) -> Result<RecordedObject, LiveError> {
    let meta: kube::api::ObjectMeta =
        serde_json::from_value(live.get("metadata").cloned().unwrap_or_default())?;
    Ok(RecordedObject {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        generation: meta.generation,
        metadata: Some(metadata_digest(&meta)),
        content: None,
        ..recorded.clone()
    })
}

/// Whether every recorded object is still as recorded ([`RecordedObject::unchanged`]), or,
/// its resourceVersion moved without a generation that tells a status write apart (an HPA),
/// has its recorded content ([`RecordedObject::same_content`]). Each object is read from the
/// plan's [`Snapshot`](crate::snapshot::Snapshot): from the list of its type (Helm labels its
/// objects `app.kubernetes.io/managed-by=Helm`), else (its label removed, or never set) with
/// a get.
pub async fn unchanged_since(
    cluster: &Cluster,
    record: &VerifiedRecord,
    snapshot: &crate::snapshot::Snapshot,
) -> Result<bool, LiveError> {
    // Every type of the record listed at once (shared with the rest of the plan).
    let mut types = BTreeMap::new();
    for r in &record.objects {
        match cluster.resolve(&r.api_version, &r.kind) {
            Some(ty) => types.insert(
                (ty.resource.api_version.clone(), ty.resource.plural.clone()),
                ty,
            ),
            None => return Ok(false),
        };
    }
    snapshot
        .prefetch(&types.into_values().collect::<Vec<_>>())
        .await?;
    for r in &record.objects {
        let Some(ty) = cluster.resolve(&r.api_version, &r.kind) else {
            return Ok(false);
        };
        let namespace = r.namespace.as_deref().filter(|_| ty.namespaced);
        let Some(live) = snapshot.get(&ty, namespace, &r.name).await? else {
            return Ok(false);
        };
        if !(r.unchanged(&now_of(r, &live)?) || r.same_content(&live)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `record` on the storage Secret of the release's revision (server-side apply of
/// the annotation only, field manager `envctl`).
pub async fn write_record(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
    record: &VerifiedRecord,
) -> Result<(), LiveError> {
    let Some(ty) = cluster.resolve("v1", "Secret") else {
        return Ok(());
    };
    let patch = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret, "namespace": namespace,
            "annotations": {RECORD_ANNOTATION: serde_json::to_string(record)?}},
    });
    cluster.apply(&ty, &patch, false, true).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn encode(json: &Value, gzip: bool) -> Vec<u8> {
        let body = serde_json::to_vec(json).unwrap();
        let raw = if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        } else {
            body
        };
        base64::engine::general_purpose::STANDARD
            .encode(raw)
            .into_bytes()
    }

    #[test]
    fn releases_decode_as_helm_stores_them_gzipped_or_not() {
        let release = serde_json::json!({"name": "dex", "version": 3,
            "info": {"status": "deployed"}, "config": {"replicas": 2},
            "chart": {"metadata": {"name": "dex", "version": "0.24.0"}}, "manifest": "---\n"});
        assert_eq!(decode_release(&encode(&release, true)).unwrap(), release);
        assert_eq!(decode_release(&encode(&release, false)).unwrap(), release);
        assert!(
            decode_release(b"%%%")
                .unwrap_err()
                .starts_with("not base64")
        );
    }

    #[test]
    fn the_latest_revision_of_the_release_is_read_from_listed_secrets() {
        let secret = |ns: &str, release: &str, version: u64, kind: &str, record: bool| {
            let body = serde_json::json!({"name": release, "version": version,
                "info": {"status": "deployed"}, "config": {"replicas": version},
                "chart": {"metadata": {"name": "dex", "version": "0.24.0"}}, "manifest": ""});
            let data = String::from_utf8(encode(&body, true)).unwrap();
            let mut annotations = serde_json::Map::new();
            if record {
                annotations.insert(
                    RECORD_ANNOTATION.into(),
                    serde_json::json!(
                        r#"{"revision":3,"chart":"c","capabilities":"k","objects":[]}"#
                    ),
                );
            }
            serde_json::json!({"type": kind, "metadata": {"namespace": ns,
                "name": format!("sh.helm.release.v1.{release}.v{version}"),
                "labels": {"owner": "helm", "name": release, "version": version.to_string()},
                "annotations": annotations},
                // Kubernetes' own base64 around Helm's.
                "data": {"release": base64::engine::general_purpose::STANDARD.encode(data)}})
        };
        let listed = [
            secret("sso", "dex", 2, "helm.sh/release.v1", false),
            secret("sso", "dex", 3, "helm.sh/release.v1", true),
            // Another release of the same name, another namespace; not Helm's storage type.
            secret("other", "dex", 9, "helm.sh/release.v1", false),
            secret("sso", "dex", 8, "Opaque", false),
            secret("sso", "oauth2-proxy", 5, "helm.sh/release.v1", false),
        ];
        let stored = latest_release(&listed, "dex", "sso").unwrap().unwrap();
        assert_eq!(stored.secret, "sh.helm.release.v1.dex.v3");
        assert_eq!(stored.status.revision, 3);
        assert_eq!(stored.values, serde_json::json!({"replicas": 3}));
        assert_eq!(stored.record.map(|r| r.revision), Some(3));
        assert!(latest_release(&listed, "istiod", "sso").unwrap().is_none());
    }

    #[test]
    fn a_chart_directory_digest_follows_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("Chart.yaml"), "name: c\nversion: 1.0.0\n").unwrap();
        std::fs::write(dir.path().join("templates/a.yaml"), "kind: ConfigMap\n").unwrap();
        let chart = ChartRef::Local(dir.path().to_owned());
        let first = chart_digest(&chart).unwrap();
        assert_eq!(first, chart_digest(&chart).unwrap());
        std::fs::write(dir.path().join("templates/a.yaml"), "kind: Secret\n").unwrap();
        assert_ne!(
            first,
            chart_digest(&chart).unwrap(),
            "same version, new content"
        );
    }

    #[test]
    fn the_record_round_trips_and_holds_no_values() {
        let record = VerifiedRecord {
            revision: 2,
            chart: "c".into(),
            capabilities: "k".into(),
            objects: vec![RecordedObject {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("sso".into()),
                name: "dex".into(),
                resource_version: "123".into(),
                generation: Some(1),
                metadata: Some("m".into()),
                content: Some("h".into()),
            }],
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<VerifiedRecord>(&text).unwrap(),
            record
        );
        assert!(text.contains("\"resourceVersion\":\"123\""), "{text}");
    }

    #[test]
    fn a_status_write_is_no_change_but_a_spec_or_metadata_write_is() {
        let recorded = RecordedObject {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: "gateways.networking.istio.io".into(),
            resource_version: "100".into(),
            generation: Some(1),
            metadata: Some("digest".into()),
            content: None,
        };
        let now = |rv: &str, generation: Option<i64>, metadata: &str| RecordedObject {
            resource_version: rv.into(),
            generation,
            metadata: Some(metadata.into()),
            ..recorded.clone()
        };
        assert!(recorded.unchanged(&now("100", Some(1), "digest")));
        // The controller set its status (Established): the spec and metadata are as recorded.
        assert!(recorded.unchanged(&now("104", Some(1), "digest")));
        // The spec was edited: a new generation.
        assert!(!recorded.unchanged(&now("105", Some(2), "digest")));
        // A label or annotation was edited: the generation stays, the metadata does not.
        assert!(!recorded.unchanged(&now("106", Some(1), "other")));
        // A type without a generation (a ConfigMap): any write counts.
        let config_map = RecordedObject {
            generation: None,
            ..recorded.clone()
        };
        assert!(!config_map.unchanged(&RecordedObject {
            resource_version: "101".into(),
            ..config_map.clone()
        }));
        // A record written before generations were recorded: resourceVersions only.
        let old = RecordedObject {
            generation: None,
            metadata: None,
            ..recorded.clone()
        };
        assert!(!old.unchanged(&now("104", Some(1), "digest")));
        assert!(old.unchanged(&now("100", Some(1), "digest")));
        // Another object is never the same.
        assert!(!recorded.unchanged(&RecordedObject {
            name: "other".into(),
            ..recorded.clone()
        }));
    }

    #[test]
    fn an_object_without_generation_is_compared_by_its_content() {
        let live = |max: i64, rv: &str, status: Value| {
            serde_json::json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "istiod", "namespace": "istio-system",
                    "resourceVersion": rv},
                "spec": {"maxReplicas": max}, "status": status,
            })
        };
        let recorded = RecordedObject {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: Some("istio-system".into()),
            name: "istiod".into(),
            resource_version: "100".into(),
            generation: None,
            metadata: Some("digest".into()),
            content: Some(engine::content_hash(&live(5, "100", Value::Null))),
        };
        // Its controller wrote its status: a new resourceVersion, the same content.
        assert!(recorded.same_content(&live(5, "104", serde_json::json!({"currentReplicas": 1}))));
        // Its spec was edited out of band.
        assert!(!recorded.same_content(&live(9, "105", Value::Null)));
        // A record without content (written before contents were recorded) never matches.
        let old = RecordedObject {
            content: None,
            ..recorded.clone()
        };
        assert!(!old.same_content(&live(5, "100", Value::Null)));
    }
}
