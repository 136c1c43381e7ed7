//! Cluster providers: `kind` (created and deleted by envctl through the kind CLI), `kwok` (the
//! testenv, owned by `cargo xtask testenv`) and `existing` (any kubeconfig context). Only kind
//! clusters are ever created or deleted, and only kind clusters envctl created are deleted.
//!
//! Every provider records the desired cluster document and its sha256 in the ConfigMap
//! `kube-public/envctl-cluster` ([`record`]), so that a later run knows what the cluster was
//! made from ([`cluster_state`]) and whether it must be replaced ([`replace_decision`]: any
//! change to a kind cluster's spec needs a new cluster).
//!
//! The cluster document is the engine's (`{name, context, provider}`, see
//! [`cluster_document`]); it is recorded as canonical JSON.
//!
//! Facts and actions only; the orchestration decides (with [`replace_decision`] and
//! [`destroy_decision`]) and runs [`Kind::create`] / [`Kind::delete`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::{Address, ClusterProvider, ClusterSpec, FieldPath, PathSegment};
use serde_json::{Value, json};

use crate::process::Invocation;
use crate::{Cluster, LiveError};

/// Name of the ConfigMap that records the cluster's spec.
pub const RECORD_NAME: &str = "envctl-cluster";
/// Its namespace (every cluster has it; readable by everyone, holds nothing secret).
pub const RECORD_NAMESPACE: &str = "kube-public";
/// Environment variable naming the kind binary.
pub const KIND_ENV: &str = "ENVCTL_KIND";
/// How to get kind, for error messages.
pub const KIND_INSTALL_HINT: &str = "install kind (`go install sigs.k8s.io/kind@v0.32.0`) and \
     put it on PATH, or set ENVCTL_KIND to the kind binary; kind needs Docker \
     (https://docs.docker.com/engine/install/)";
/// How long kind waits for the control plane (`--wait`).
pub const KIND_WAIT: Duration = Duration::from_secs(120);
/// Bound of `kind create cluster` as a whole (image pull included).
const KIND_CREATE_TIMEOUT: Duration = Duration::from_secs(900);
const KIND_QUICK_TIMEOUT: Duration = Duration::from_secs(120);

// ----- kind: pure parts -----

/// The config document as the YAML file kind reads.
pub fn kind_config_yaml(config: &Value) -> Result<String, LiveError> {
    serde_saphyr::to_string(config).map_err(|e| LiveError::Config {
        address: None,
        message: format!("cannot write the kind config as YAML: {e}"),
    })
}

/// The kubeconfig context kind creates for cluster `name`.
pub fn kind_context(name: &str) -> String {
    format!("kind-{name}")
}

fn with_kubeconfig(mut args: Vec<OsString>, kubeconfig: Option<&Path>) -> Vec<OsString> {
    if let Some(path) = kubeconfig {
        args.push("--kubeconfig".into());
        args.push(path.as_os_str().to_owned());
    }
    args
}

/// `kind create cluster --name N --config FILE --image IMAGE --wait 120s [--kubeconfig K]`.
pub fn kind_create_args(
    name: &str,
    config_file: &Path,
    image: &str,
    kubeconfig: Option<&Path>,
) -> Vec<OsString> {
    let args: Vec<OsString> = vec![
        "create".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--config".into(),
        config_file.as_os_str().to_owned(),
        "--image".into(),
        image.into(),
        "--wait".into(),
        format!("{}s", KIND_WAIT.as_secs()).into(),
    ];
    with_kubeconfig(args, kubeconfig)
}

/// `kind delete cluster --name N [--kubeconfig K]`.
pub fn kind_delete_args(name: &str, kubeconfig: Option<&Path>) -> Vec<OsString> {
    with_kubeconfig(
        vec![
            "delete".into(),
            "cluster".into(),
            "--name".into(),
            name.into(),
        ],
        kubeconfig,
    )
}

/// `kind get clusters`.
pub fn kind_get_clusters_args() -> Vec<OsString> {
    vec!["get".into(), "clusters".into()]
}

// ----- the recorded spec -----

/// The cluster's desired document, as the engine plans it: `{name, context, provider}`.
pub fn cluster_document(spec: &ClusterSpec) -> Value {
    json!({
        "name": spec.name,
        "context": spec.context,
        "provider": serde_json::to_value(&spec.provider).unwrap_or(Value::Null),
    })
}

/// `kind`, `kwok` or `existing`.
pub fn provider_name(provider: &ClusterProvider) -> &'static str {
    match provider {
        ClusterProvider::Kind { .. } => "kind",
        ClusterProvider::Kwok => "kwok",
        ClusterProvider::Existing { .. } => "existing",
    }
}

/// The ConfigMap that records `spec`. `created_by_envctl` must stay true once it was (pass
/// the recorded value or'ed with "just created"): it is what allows destroy to delete the
/// cluster.
pub fn record_manifest(
    spec: &ClusterSpec,
    created_by_envctl: bool,
    environment: &str,
    address: &Address,
) -> Value {
    let document = cluster_document(spec);
    let mut data = json!({
        "spec": engine::canonical_json(&document),
        "sha256": engine::canonical_hash(&document),
        "provider": provider_name(&spec.provider),
    });
    if created_by_envctl {
        data["created-by"] = json!("envctl");
    }
    let base = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": RECORD_NAME, "namespace": RECORD_NAMESPACE},
        "data": data,
    });
    // Ownership label and annotations, but deliberately not the environment label: object
    // pruning selects on that label, and the record must outlive the objects (destroy reads
    // `created-by` from it).
    engine::with_ownership(&base, address, environment)
}

/// What the record ConfigMap says.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub spec: Option<Value>,
    pub sha256: Option<String>,
    pub provider: Option<String>,
    pub created_by_envctl: bool,
}

/// Reads a record ConfigMap object (pure).
pub fn parse_record(config_map: &Value) -> Record {
    let data = |key: &str| {
        config_map
            .pointer("/data")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
    };
    Record {
        spec: data("spec").and_then(|s| serde_json::from_str(s).ok()),
        sha256: data("sha256").map(str::to_owned),
        provider: data("provider").map(str::to_owned),
        created_by_envctl: data("created-by") == Some("envctl"),
    }
}

/// The record of a connected cluster; `None` when there is none.
pub async fn read_record(cluster: &Cluster) -> Result<Option<Record>, LiveError> {
    let ty = cluster.resolve_served("v1", "ConfigMap")?;
    Ok(cluster
        .get(&ty, Some(RECORD_NAMESPACE), RECORD_NAME)
        .await?
        .map(|cm| parse_record(&cm)))
}

/// [`read_record`], from a plan's snapshot (the record carries the ownership label: it is in
/// the snapshot's list of ConfigMaps).
pub async fn read_record_in(
    cluster: &Cluster,
    snapshot: &crate::snapshot::Snapshot,
) -> Result<Option<Record>, LiveError> {
    let ty = cluster.resolve_served("v1", "ConfigMap")?;
    Ok(snapshot
        .get(&ty, Some(RECORD_NAMESPACE), RECORD_NAME)
        .await?
        .map(|cm| parse_record(&cm)))
}

/// Writes the record (server-side apply, forced).
pub async fn record(
    cluster: &Cluster,
    spec: &ClusterSpec,
    created_by_envctl: bool,
    environment: &str,
    address: &Address,
) -> Result<(), LiveError> {
    let ty = cluster.resolve_served("v1", "ConfigMap")?;
    let manifest = record_manifest(spec, created_by_envctl, environment, address);
    cluster.apply(&ty, &manifest, false, true).await?;
    Ok(())
}

// ----- state and decisions -----

/// What exists of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterState {
    /// kind: no kind cluster of that name. kwok/existing: the context does not answer (apply
    /// cannot create it: start the testenv, or fix the kubeconfig). `reason` says which.
    Absent { reason: String },
    /// It exists. `reachable` is false when kind lists it but its API server does not answer
    /// (then nothing is known of its record).
    Present {
        reachable: bool,
        recorded_sha256: Option<String>,
        recorded_spec: Option<Value>,
        created_by_envctl: bool,
    },
}

impl ClusterState {
    fn present(record: Option<Record>) -> ClusterState {
        let record = record.unwrap_or(Record {
            spec: None,
            sha256: None,
            provider: None,
            created_by_envctl: false,
        });
        ClusterState::Present {
            reachable: true,
            recorded_sha256: record.sha256,
            recorded_spec: record.spec,
            created_by_envctl: record.created_by_envctl,
        }
    }
}

/// Whether the cluster of `spec` exists, and what it recorded. `kind` is needed for the kind
/// provider (it is asked with `kind get clusters`); the API is reached with `spec.context`
/// (for `existing`, its own context) in `kubeconfig` (default `$KUBECONFIG`, then
/// `~/.kube/config`). Returns the connection too when the cluster answered.
pub async fn cluster_state(
    spec: &ClusterSpec,
    kubeconfig: Option<&Path>,
    kind: Option<&Kind>,
) -> Result<(ClusterState, Option<Cluster>), LiveError> {
    state_of_cluster(spec, kubeconfig, kind, true).await
}

/// [`cluster_state`]; the record read only when `with_record` (else the state says nothing
/// recorded).
async fn state_of_cluster(
    spec: &ClusterSpec,
    kubeconfig: Option<&Path>,
    kind: Option<&Kind>,
    with_record: bool,
) -> Result<(ClusterState, Option<Cluster>), LiveError> {
    if let ClusterProvider::Kind { .. } = spec.provider {
        let kind = kind.ok_or_else(|| LiveError::Config {
            address: Some(format!("cluster {}", spec.name)),
            message: format!("the kind provider needs kind: {KIND_INSTALL_HINT}"),
        })?;
        if !kind.clusters().await?.iter().any(|c| c == &spec.name) {
            return Ok((
                ClusterState::Absent {
                    reason: format!("`kind get clusters` does not list `{}`", spec.name),
                },
                None,
            ));
        }
    }
    let context = context_of(spec);
    match Cluster::connect(kubeconfig, Some(context)).await {
        Ok(cluster) => {
            let record = match with_record {
                true => read_record(&cluster).await?,
                false => None,
            };
            Ok((ClusterState::present(record), Some(cluster)))
        }
        Err(e) => match spec.provider {
            ClusterProvider::Kind { .. } => Ok((
                ClusterState::Present {
                    reachable: false,
                    recorded_sha256: None,
                    recorded_spec: None,
                    created_by_envctl: false,
                },
                None,
            )),
            _ => Ok((
                ClusterState::Absent {
                    reason: e.to_string(),
                },
                None,
            )),
        },
    }
}

/// The kubeconfig context that reaches the cluster of `spec`.
pub fn context_of(spec: &ClusterSpec) -> &str {
    match &spec.provider {
        ClusterProvider::Existing { context } => context,
        _ => &spec.context,
    }
}

/// Whether a present cluster must be replaced to match `desired` (both cluster documents, see
/// [`cluster_document`]); the reason names each changed field, e.g.
/// `node image kindest/node:v1.35.0 -> kindest/node:v1.36.1`.
///
/// Only kind clusters are replaced, and any change to their document needs a new cluster.
/// Without a record (`None`) nothing is known, so nothing is decided (`None`): the caller may
/// record the spec to adopt the cluster, but a cluster without a record was not created by
/// envctl and is never deleted.
pub fn replace_decision(recorded: Option<&Value>, desired: &Value) -> Option<String> {
    let recorded = recorded?;
    let kind_of = |doc: &Value| {
        doc.pointer("/provider/type")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if kind_of(desired).as_deref() != Some("kind") {
        return None;
    }
    if kind_of(recorded).as_deref() != Some("kind") {
        return Some(format!(
            "provider {} -> kind",
            kind_of(recorded).unwrap_or_else(|| "(none)".into())
        ));
    }
    let old_image = recorded.pointer("/provider/node_image");
    let new_image = desired.pointer("/provider/node_image");
    let image_changed = old_image != new_image;
    let node_image = FieldPath::root().key("provider").key("node_image");
    let config = FieldPath::root().key("provider").key("config");
    let mut reasons = Vec::new();
    for path in engine::changed_paths(recorded, desired) {
        let old = path.get(recorded);
        let new = path.get(desired);
        if path == node_image {
            reasons.push(format!("node image {} -> {}", show(old), show(new)));
            continue;
        }
        // The config's node image repeats the spec's: say it once.
        let is_config_image = path.segments.starts_with(&config.segments)
            && matches!(path.segments.last(), Some(PathSegment::Key(k)) if k == "image");
        if image_changed && is_config_image && old == old_image && new == new_image {
            continue;
        }
        reasons.push(format!("{path} {} -> {}", show(old), show(new)));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// What destroy does with a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyDecision {
    /// Delete it (`kind delete cluster`).
    Delete,
    /// Leave it; the reason says why.
    Keep(String),
}

/// Destroy deletes only kind clusters that envctl created (recorded `created-by: envctl`).
pub fn destroy_decision(spec: &ClusterSpec, state: &ClusterState) -> DestroyDecision {
    match (&spec.provider, state) {
        (_, ClusterState::Absent { .. }) => DestroyDecision::Keep("it does not exist".into()),
        (ClusterProvider::Kwok, _) => DestroyDecision::Keep(
            "a kwok cluster belongs to `cargo xtask testenv` (stop it with `cargo xtask testenv down`)"
                .into(),
        ),
        (ClusterProvider::Existing { context }, _) => DestroyDecision::Keep(format!(
            "an existing cluster (context `{context}`) is never deleted"
        )),
        (
            ClusterProvider::Kind { .. },
            ClusterState::Present {
                created_by_envctl: true,
                ..
            },
        ) => DestroyDecision::Delete,
        (ClusterProvider::Kind { .. }, ClusterState::Present { reachable: false, .. }) => {
            DestroyDecision::Keep(format!(
                "kind cluster `{}` does not answer, so its record cannot be read; delete it \
                 yourself if envctl created it: kind delete cluster --name {}",
                spec.name, spec.name
            ))
        }
        (ClusterProvider::Kind { .. }, ClusterState::Present { .. }) => {
            DestroyDecision::Keep(format!(
                "kind cluster `{}` was not created by envctl (no `created-by: envctl` in \
                 {RECORD_NAMESPACE}/{RECORD_NAME})",
                spec.name
            ))
        }
    }
}

// ----- finding, creating and deleting a cluster -----

/// The cluster of `spec` as it is now: reachable (with a connection), or absent (why).
pub enum Target {
    Connected(Cluster),
    Absent { reason: String },
}

fn kind_for(spec: &ClusterSpec) -> Result<Option<Kind>, LiveError> {
    match spec.provider {
        ClusterProvider::Kind { .. } => Kind::locate().map(Some),
        _ => Ok(None),
    }
}

/// Looks for the cluster: `kind get clusters` for the kind provider, then the kubeconfig
/// context. Plan uses this to tell "create the cluster" from "plan against it".
pub async fn find(spec: &ClusterSpec, kubeconfig: Option<&Path>) -> Result<Target, LiveError> {
    let kind = kind_for(spec)?;
    // Whether it answers, not its record: the plan reads that (from its snapshot).
    match state_of_cluster(spec, kubeconfig, kind.as_ref(), false).await? {
        (ClusterState::Absent { reason }, _) => Ok(Target::Absent { reason }),
        (_, Some(cluster)) => Ok(Target::Connected(cluster)),
        (_, None) => Err(LiveError::Connect(format!(
            "cluster {} exists but context `{}` does not answer",
            spec.name, spec.context
        ))),
    }
}

/// Whether envctl creates this cluster when it is absent (kind only).
pub fn creates(spec: &ClusterSpec) -> bool {
    matches!(spec.provider, ClusterProvider::Kind { .. })
}

/// A cluster envctl does not create ([`creates`]) does not answer (`reason`: why, when known).
pub fn unreachable(spec: &ClusterSpec, reason: Option<&str>) -> LiveError {
    let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
    LiveError::Connect(format!(
        "cluster {} is not reachable through context `{}`{reason}, and envctl creates only kind \
         clusters (for kwok: `cargo xtask testenv up`, then `eval \"$(cargo xtask testenv env)\"`)",
        spec.name,
        context_of(spec)
    ))
}

/// Creates the cluster (kind only; the other providers are never created by envctl), then
/// connects and records its spec with `created-by: envctl`.
pub async fn create(
    spec: &ClusterSpec,
    kubeconfig: Option<&Path>,
    environment: &str,
    address: &Address,
) -> Result<Cluster, LiveError> {
    let Some(kind) = kind_for(spec)? else {
        return Err(unreachable(spec, None));
    };
    kind.create(spec, kubeconfig).await?;
    let cluster = Cluster::connect(kubeconfig, Some(&spec.context)).await?;
    record(&cluster, spec, true, environment, address).await?;
    Ok(cluster)
}

/// What [`destroy`] did with the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Destroyed {
    /// `kind delete cluster` ran.
    Deleted { name: String },
    /// The cluster stays (only its record was removed); `reason` says why.
    Kept { name: String, reason: String },
}

impl std::fmt::Display for Destroyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destroyed::Deleted { name } => write!(f, "cluster {name} deleted"),
            Destroyed::Kept { name, reason } => write!(f, "cluster {name} left in place: {reason}"),
        }
    }
}

/// Deletes the cluster if envctl created it; otherwise says why it stays, and removes the
/// record of its spec (the last thing envctl owns in it).
pub async fn destroy(
    spec: &ClusterSpec,
    kubeconfig: Option<&Path>,
) -> Result<Destroyed, LiveError> {
    let kind = kind_for(spec)?;
    let (state, connection) = cluster_state(spec, kubeconfig, kind.as_ref()).await?;
    match destroy_decision(spec, &state) {
        DestroyDecision::Delete => {
            kind.expect("only kind clusters are deleted")
                .delete(&spec.name, kubeconfig)
                .await?;
            Ok(Destroyed::Deleted {
                name: spec.name.clone(),
            })
        }
        DestroyDecision::Keep(reason) => {
            if let Some(cluster) = connection
                && let Some(ty) = cluster.resolve("v1", "ConfigMap")
            {
                cluster
                    .delete(&ty, Some(RECORD_NAMESPACE), RECORD_NAME)
                    .await?;
            }
            Ok(Destroyed::Kept {
                name: spec.name.clone(),
                reason,
            })
        }
    }
}

// ----- kind: running the CLI -----

/// The kind CLI.
#[derive(Debug, Clone)]
pub struct Kind {
    pub bin: PathBuf,
}

impl Kind {
    /// The kind of `$ENVCTL_KIND`, else `kind` on `PATH`; an error says how to install it.
    pub fn locate() -> Result<Kind, LiveError> {
        crate::helm::locate_binary(KIND_ENV, "kind")
            .map(|bin| Kind { bin })
            .map_err(|_| {
                LiveError::Connect(format!(
                    "kind binary not found ({KIND_ENV} is not set and `kind` is not on PATH): \
                     {KIND_INSTALL_HINT}"
                ))
            })
    }

    /// The names of the kind clusters (`kind get clusters`).
    pub async fn clusters(&self) -> Result<Vec<String>, LiveError> {
        let out = self
            .run(kind_get_clusters_args(), KIND_QUICK_TIMEOUT)
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("No kind clusters"))
            .map(str::to_owned)
            .collect())
    }

    /// Creates the kind cluster of `spec` (its config written to a temporary file), waiting
    /// for the control plane. The caller then records the spec with `created_by_envctl`.
    pub async fn create(
        &self,
        spec: &ClusterSpec,
        kubeconfig: Option<&Path>,
    ) -> Result<(), LiveError> {
        let ClusterProvider::Kind { node_image, config } = &spec.provider else {
            return Err(LiveError::Config {
                address: Some(format!("cluster {}", spec.name)),
                message: "only kind clusters are created".into(),
            });
        };
        let yaml = kind_config_yaml(config)?;
        let dir = crate::helm::private_dir_with_prefix("envctl-kind-").map_err(|source| {
            LiveError::Io {
                what: "cannot create a temporary directory".into(),
                source,
            }
        })?;
        let file = dir.path().join("kind-config.yaml");
        tokio::fs::write(&file, yaml)
            .await
            .map_err(|source| LiveError::Io {
                what: format!("cannot write {}", file.display()),
                source,
            })?;
        let args = kind_create_args(&spec.name, &file, node_image, kubeconfig);
        self.run(args, KIND_CREATE_TIMEOUT).await?;
        drop(dir);
        Ok(())
    }

    /// Deletes kind cluster `name` (check [`destroy_decision`] first).
    pub async fn delete(&self, name: &str, kubeconfig: Option<&Path>) -> Result<(), LiveError> {
        self.run(kind_delete_args(name, kubeconfig), KIND_CREATE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Runs kind (see [`crate::process`]); its output holds nothing secret.
    async fn run(&self, args: Vec<OsString>, timeout: Duration) -> Result<String, LiveError> {
        let done = crate::process::run_async(Invocation::new(&self.bin, args, timeout)).await?;
        Ok(String::from_utf8_lossy(&done.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// A kind spec whose config has the shape `cluster::kind_config` ships (that builder and
    /// its YAML are tested in crates/cluster, which builds it from an environment).
    fn kind_spec(image: &str, host_port: u16) -> ClusterSpec {
        ClusterSpec {
            name: "istio".into(),
            context: kind_context("istio"),
            provider: ClusterProvider::Kind {
                node_image: image.into(),
                config: json!({
                    "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "istio",
                    "nodes": [{"role": "control-plane", "image": image, "extraPortMappings": [{
                        "containerPort": 30080, "hostPort": host_port,
                        "listenAddress": "127.0.0.1", "protocol": "TCP"}]}]
                }),
            },
        }
    }

    #[test]
    fn kind_command_lines() {
        assert_eq!(
            strings(&kind_create_args(
                "istio",
                Path::new("/tmp/k/kind-config.yaml"),
                "kindest/node:v1.36.1",
                None
            )),
            [
                "create",
                "cluster",
                "--name",
                "istio",
                "--config",
                "/tmp/k/kind-config.yaml",
                "--image",
                "kindest/node:v1.36.1",
                "--wait",
                "120s"
            ]
        );
        assert_eq!(
            strings(&kind_delete_args("istio", Some(Path::new("/k/config")))),
            [
                "delete",
                "cluster",
                "--name",
                "istio",
                "--kubeconfig",
                "/k/config"
            ]
        );
        assert_eq!(strings(&kind_get_clusters_args()), ["get", "clusters"]);
        assert_eq!(kind_context("istio"), "kind-istio");
    }

    #[test]
    fn a_new_node_image_replaces_the_cluster_and_says_so_once() {
        let old = cluster_document(&kind_spec("kindest/node:v1.35.0", 80));
        let new = cluster_document(&kind_spec("kindest/node:v1.36.1", 80));
        assert_eq!(
            replace_decision(Some(&old), &new).as_deref(),
            Some("node image kindest/node:v1.35.0 -> kindest/node:v1.36.1")
        );
        assert_eq!(replace_decision(Some(&new), &new), None);
        assert_eq!(
            replace_decision(None, &new),
            None,
            "no record: nothing known"
        );
    }

    #[test]
    fn any_config_change_replaces_a_kind_cluster() {
        let old = cluster_document(&kind_spec("kindest/node:v1.36.1", 80));
        let new = cluster_document(&kind_spec("kindest/node:v1.36.1", 8080));
        assert_eq!(
            replace_decision(Some(&old), &new).as_deref(),
            Some("provider.config.nodes[0].extraPortMappings[0].hostPort 80 -> 8080")
        );
    }

    #[test]
    fn kwok_and_existing_clusters_are_never_replaced() {
        let kwok = cluster_document(&ClusterSpec {
            name: "t".into(),
            context: "kwok-t".into(),
            provider: ClusterProvider::Kwok,
        });
        let kind = cluster_document(&kind_spec("kindest/node:v1.36.1", 80));
        assert_eq!(replace_decision(Some(&kind), &kwok), None);
        assert_eq!(
            replace_decision(Some(&kwok), &kind).as_deref(),
            Some("provider kwok -> kind")
        );
    }

    #[test]
    fn the_record_round_trips_and_hashes_the_canonical_document() {
        let spec = kind_spec("kindest/node:v1.36.1", 80);
        let address: Address = "cluster.cluster.istio".parse().unwrap();
        let cm = record_manifest(&spec, true, "dev", &address);
        assert_eq!(cm["metadata"]["namespace"], "kube-public");
        assert_eq!(cm["metadata"]["name"], "envctl-cluster");
        assert_eq!(
            cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "envctl"
        );
        assert_eq!(cm["data"]["provider"], "kind");
        assert!(
            cm["metadata"]["labels"]
                .get("envctl.dev/environment")
                .is_none(),
            "never selected for pruning"
        );
        let record = parse_record(&cm);
        assert!(record.created_by_envctl);
        assert_eq!(record.spec.as_ref(), Some(&cluster_document(&spec)));
        assert_eq!(
            record.sha256.as_deref(),
            Some(engine::canonical_hash(&cluster_document(&spec)).as_str())
        );
        let not_ours = record_manifest(&spec, false, "dev", &address);
        assert!(not_ours["data"].get("created-by").is_none());
        assert!(!parse_record(&not_ours).created_by_envctl);
    }

    #[test]
    fn destroy_deletes_only_kind_clusters_envctl_created() {
        let kind = kind_spec("kindest/node:v1.36.1", 80);
        let present = |created| ClusterState::Present {
            reachable: true,
            recorded_sha256: None,
            recorded_spec: None,
            created_by_envctl: created,
        };
        assert_eq!(
            destroy_decision(&kind, &present(true)),
            DestroyDecision::Delete
        );
        assert!(
            matches!(destroy_decision(&kind, &present(false)), DestroyDecision::Keep(r) if r.contains("not created by envctl"))
        );
        let kwok = ClusterSpec {
            name: "t".into(),
            context: "kwok-t".into(),
            provider: ClusterProvider::Kwok,
        };
        assert!(matches!(
            destroy_decision(&kwok, &present(true)),
            DestroyDecision::Keep(_)
        ));
        let existing = ClusterSpec {
            name: "prod".into(),
            context: "prod".into(),
            provider: ClusterProvider::Existing {
                context: "prod".into(),
            },
        };
        assert!(matches!(
            destroy_decision(&existing, &present(true)),
            DestroyDecision::Keep(_)
        ));
        assert_eq!(context_of(&existing), "prod");
    }
}
