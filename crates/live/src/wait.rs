//! Readiness: what "done" means for an object the next step depends on, and a bounded wait that
//! says why the object is not ready yet and ends early when waiting cannot help.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::Value;

use crate::progress::Progress;
use crate::readiness::ReadinessRule;
use crate::{Cluster, LiveError, TypeInfo};

/// Whether an object is ready for what comes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; `what` says what is awaited, `last` the latest condition seen.
    Waiting {
        what: String,
        last: String,
    },
}

/// Decides readiness from the object alone (pure).
///
/// - CustomResourceDefinition: `Established`.
/// - Deployment: the controller saw this generation, `Available`, every replica updated.
/// - DaemonSet: rolled out (every scheduled pod updated and ready).
/// - Namespace: `Active`.
/// - Everything else: ready once it exists (a module's [`ReadinessRule`] says more for the
///   kinds of its domain).
pub fn readiness(object: &Value) -> Readiness {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "CustomResourceDefinition" => condition_ready(object, "Established"),
        "Deployment" => deployment(object),
        "DaemonSet" => daemon_set(object),
        "Namespace" => match object.pointer("/status/phase").and_then(Value::as_str) {
            Some("Active") => Readiness::Ready,
            phase => waiting("phase Active", phase.unwrap_or("no phase yet")),
        },
        _ => Readiness::Ready,
    }
}

/// Live's own readiness rule: apply waits for CustomResourceDefinitions, Deployments,
/// DaemonSets and Namespaces, ready as [`readiness`] says.
pub struct BuiltIn;

impl ReadinessRule for BuiltIn {
    fn governs(&self, _api_version: &str, kind: &str) -> bool {
        matches!(
            kind,
            "CustomResourceDefinition" | "Deployment" | "DaemonSet" | "Namespace"
        )
    }

    fn wait_for<'a>(
        &'a self,
        _cluster: &'a Cluster,
        _manifest: &'a Value,
    ) -> futures::future::BoxFuture<'a, Result<bool, LiveError>> {
        Box::pin(async { Ok(true) })
    }

    fn readiness(&self, object: &Value) -> Readiness {
        readiness(object)
    }
}

/// Waiting for `what`, the latest state seen `last`.
pub fn waiting(what: &str, last: &str) -> Readiness {
    Readiness::Waiting {
        what: what.to_owned(),
        last: last.to_owned(),
    }
}

fn condition<'a>(conditions: Option<&'a Value>, kind: &str) -> Option<&'a Value> {
    conditions?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn describe(condition: Option<&Value>, kind: &str) -> String {
    match condition {
        None => format!("no {kind} condition yet"),
        Some(c) => {
            let field = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut out = format!("{kind}={}", field("status"));
            for part in [field("reason"), field("message")] {
                if !part.is_empty() {
                    out.push_str(": ");
                    out.push_str(&part);
                }
            }
            out
        }
    }
}

/// Ready when the object's condition `kind` is `True`; else what it says.
pub fn condition_ready(object: &Value, kind: &str) -> Readiness {
    conditions_ready(object.pointer("/status/conditions"), kind)
}

/// Ready when the condition `kind` of a `conditions` list is `True` (e.g. of one parent of
/// a route's status); else what it says.
pub fn conditions_ready(conditions: Option<&Value>, kind: &str) -> Readiness {
    let found = condition(conditions, kind);
    if found.and_then(|c| c.get("status")).and_then(Value::as_str) == Some("True") {
        Readiness::Ready
    } else {
        waiting(&format!("condition {kind}"), &describe(found, kind))
    }
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn deployment(object: &Value) -> Readiness {
    let generation = int(object, "/metadata/generation");
    if int(object, "/status/observedGeneration") < generation {
        return waiting(
            "the controller to observe the new generation",
            "status not updated yet",
        );
    }
    let wanted = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int(object, "/status/updatedReplicas");
    let available = int(object, "/status/availableReplicas");
    if updated < wanted || available < wanted {
        return waiting(
            "condition Available",
            &format!("{available}/{wanted} available, {updated}/{wanted} updated"),
        );
    }
    condition_ready(object, "Available")
}

fn daemon_set(object: &Value) -> Readiness {
    let generation = int(object, "/metadata/generation");
    if int(object, "/status/observedGeneration") < generation {
        return waiting(
            "the controller to observe the new generation",
            "status not updated yet",
        );
    }
    let wanted = int(object, "/status/desiredNumberScheduled");
    let updated = int(object, "/status/updatedNumberScheduled");
    let ready = int(object, "/status/numberReady");
    if wanted == 0 || updated < wanted || ready < wanted {
        return waiting(
            "rollout",
            &format!("{ready}/{wanted} ready, {updated}/{wanted} updated"),
        );
    }
    Readiness::Ready
}

/// How long to wait, how often to look for reasons, and how often to say so.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// The overall deadline of one wait; failed reads of the API server do not end it early.
    pub timeout: Duration,
    /// How often the reason is looked for (Warning events, owned objects, conditions).
    pub poll: Duration,
    pub progress_every: Duration,
    /// How long a failure that is unlikely to heal (see [`heal`]) must keep recurring before
    /// the wait ends with it (a webhook whose server is still starting heals within seconds).
    pub settle: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(300),
            poll: Duration::from_secs(2),
            progress_every: Duration::from_secs(10),
            settle: Duration::from_secs(20),
        }
    }
}

impl WaitOptions {
    /// The defaults, with the timeout from `ENVCTL_WAIT_TIMEOUT` (whole seconds) when it is set.
    pub fn from_env() -> Result<WaitOptions, LiveError> {
        let mut options = WaitOptions::default();
        if let Ok(text) = std::env::var("ENVCTL_WAIT_TIMEOUT")
            && !text.trim().is_empty()
        {
            let seconds: u64 = text
                .trim()
                .trim_end_matches('s')
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    LiveError::Connect(format!(
                        "ENVCTL_WAIT_TIMEOUT={text:?} is not a number of seconds (e.g. ENVCTL_WAIT_TIMEOUT=600)"
                    ))
                })?;
            options.timeout = Duration::from_secs(seconds);
        }
        Ok(options)
    }
}

/// Watches an object until `rule` says it is ready, through the reporter: every Warning event
/// of the object and of what it owns (a Deployment's ReplicaSets and Pods, a DaemonSet's Pods)
/// as it appears, and every `progress_every` what is awaited, the object's conditions that are
/// not as they should be, its Pods' waiting reasons and the latest warning.
///
/// A failure that will not heal by waiting (see [`heal`]) ends the wait early with its reason;
/// otherwise the error after `timeout` names the object, what was awaited and the last reason
/// seen. A failed read of the API server is reported and retried until the deadline.
#[allow(clippy::too_many_arguments)]
pub async fn wait_ready(
    cluster: &Cluster,
    ty: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
    label: &str,
    rule: &dyn ReadinessRule,
    options: WaitOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<(), LiveError> {
    watch_until(
        cluster,
        ty,
        namespace,
        name,
        label,
        options,
        progress,
        true,
        |object| match object {
            Some(object) => match rule.readiness(object) {
                Readiness::Ready => None,
                Readiness::Waiting { what, last } => Some((what, last)),
            },
            None => Some(("the object to exist".into(), "not found".into())),
        },
    )
    .await
}

/// Watches until an object no longer exists (bounded by `options.timeout`).
pub async fn wait_gone(
    cluster: &Cluster,
    ty: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
    label: &str,
    options: WaitOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<(), LiveError> {
    watch_until(
        cluster,
        ty,
        namespace,
        name,
        label,
        options,
        progress,
        false,
        |object| {
            object.map(|object| {
                let phase = object
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                let finalizers = object
                    .pointer("/metadata/finalizers")
                    .map(Value::to_string)
                    .unwrap_or_default();
                (
                    "its deletion".into(),
                    format!("phase {phase}, finalizers {finalizers}"),
                )
            })
        },
    )
    .await
}

/// Watches one object (kube's watcher, with its backoff: a failed watch or list is retried, not
/// fatal) until `pending` says nothing is awaited any more (`None`); `Some((what, last))` names
/// what is awaited and the latest state seen. With `diagnose`, looks for the reason every
/// `options.poll` (see [`wait_ready`]).
#[allow(clippy::too_many_arguments)]
async fn watch_until(
    cluster: &Cluster,
    ty: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
    label: &str,
    options: WaitOptions,
    progress: &(dyn Fn(&Progress) + Sync),
    diagnose: bool,
    pending: impl Fn(Option<&Value>) -> Option<(String, String)>,
) -> Result<(), LiveError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + options.timeout);
    let api: Api<DynamicObject> = match (ty.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(cluster.client().clone(), ns, &ty.resource),
        _ => Api::all_with(cluster.client().clone(), &ty.resource),
    };
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(crate::cluster::watch_timeout_secs(&cluster.timeouts));
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());

    // The object as last seen: `None` until the first complete list.
    let mut current: Option<Option<Value>> = None;
    let mut listing: Option<Value> = None;
    let mut state: Option<(String, String)> = None;
    let mut reasons = Reasons::default();
    let mut unreachable: Option<String> = None;
    let mut look = tokio::time::interval(options.poll);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_report = options.progress_every;
    let mut installing_since: Option<Duration> = None;
    let mut nudged: Option<Duration> = None;
    let say = |event: Progress| progress(&event);
    let address = || label.to_owned();

    loop {
        tokio::select! {
            event = stream.next() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => {
                        if unreachable.is_none() {
                            say(Progress::Unreachable {
                                address: address(),
                                error: crate::retry::chain_text(&error),
                                elapsed: start.elapsed(),
                            });
                        }
                        unreachable = Some(crate::retry::chain_text(&error));
                        continue;
                    }
                    None => return Err(LiveError::WatchEnded { address: label.to_owned() }),
                };
                if unreachable.take().is_some() {
                    say(Progress::Reachable { address: address() });
                }
                match event {
                    watcher::Event::Init => listing = None,
                    watcher::Event::InitApply(object) => listing = Some(typed(object, ty)?),
                    watcher::Event::InitDone => current = Some(listing.take()),
                    watcher::Event::Apply(object) => current = Some(Some(typed(object, ty)?)),
                    watcher::Event::Delete(_) => current = Some(None),
                }
                let Some(object) = &current else { continue };
                match pending(object.as_ref()) {
                    None => return Ok(()),
                    Some(now) => state = Some(now),
                }
            }
            _ = look.tick() => {
                let elapsed = start.elapsed();
                if let Some(Some(object)) = &current {
                    installing_since = crd_installing(object)
                        .then(|| installing_since.unwrap_or(elapsed));
                    if let Some(since) = installing_since
                        && elapsed.saturating_sub(since) >= CRD_NUDGE_AFTER
                        && nudged.is_none_or(|at| elapsed.saturating_sub(at) >= CRD_NUDGE_AFTER * 3)
                    {
                        nudged = Some(elapsed);
                        say(Progress::Nudged {
                            address: address(),
                            stuck: elapsed.saturating_sub(since),
                        });
                        if let Err(error) = nudge(cluster, ty, name).await {
                            unreachable = Some(error.to_string());
                        }
                    }
                }
                if diagnose && let Some(Some(object)) = &current {
                    // Bounded: a look never holds up the deadline or the next progress line.
                    let bound = deadline
                        .min(tokio::time::Instant::now() + options.poll.max(Duration::from_secs(10)));
                    match tokio::time::timeout_at(bound, look_for_reasons(cluster, object)).await {
                        Err(_) => unreachable = Some("no answer to the look for reasons".into()),
                        Ok(Err(error)) => unreachable = Some(error.to_string()),
                        Ok(Ok(found)) => {
                            for warning in reasons.observe(elapsed, found) {
                                say(Progress::Warning {
                                    address: address(),
                                    reason: warning.reason,
                                    object: warning.object,
                                    message: warning.message,
                                });
                            }
                            if let Some(verdict) = reasons.verdict(elapsed, options.settle) {
                                return Err(LiveError::WillNotBeReady {
                                    address: label.to_owned(),
                                    reason: verdict.to_string(),
                                });
                            }
                        }
                    }
                }
                if elapsed >= next_report {
                    let (what, last) = state.clone().unwrap_or_else(|| {
                        ("the first read of the object".into(), "nothing read yet".into())
                    });
                    say(Progress::Waiting {
                        address: address(),
                        what,
                        elapsed,
                        reason: reasons.summary(&last, unreachable.as_deref()),
                    });
                    next_report += options.progress_every;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let (what, last) = state.unwrap_or_else(|| {
                    ("the first read of the object".into(), "nothing read yet".into())
                });
                return Err(LiveError::Timeout {
                    address: label.to_owned(),
                    waited: start.elapsed(),
                    what,
                    last_seen: reasons.summary(&last, unreachable.as_deref()),
                    unreachable: unreachable.is_some(),
                });
            }
        }
    }
}

/// How long a CRD may sit with its names accepted but not Established before it is nudged (the
/// API server establishes it within a second, or 5 s with several API servers).
const CRD_NUDGE_AFTER: Duration = Duration::from_secs(10);

/// A CRD whose names are accepted and that is not Established: the API server queues it for
/// establishing only on an update event, which an API server that restarted in between never
/// sees (apiextensions-apiserver's `updateCustomResourceDefinition`).
fn crd_installing(object: &Value) -> bool {
    let conditions = object.pointer("/status/conditions");
    let is_true = |kind: &str| {
        condition(conditions, kind)
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True")
    };
    text(object, "/kind") == "CustomResourceDefinition"
        && is_true("NamesAccepted")
        && !is_true("Established")
}

/// Updates a CRD without changing what anyone configured: an annotation set and removed again
/// under a field manager of its own. Each update is an event for the establishing controller.
async fn nudge(cluster: &Cluster, ty: &TypeInfo, name: &str) -> Result<(), LiveError> {
    const MANAGER: &str = "envctl-establish";
    let bare = serde_json::json!({
        "apiVersion": ty.resource.api_version, "kind": ty.resource.kind,
        "metadata": {"name": name},
    });
    let mut marked = bare.clone();
    marked["metadata"]["annotations"] = serde_json::json!({"envctl.dev/establish": "requested"});
    cluster.apply_as(ty, &marked, MANAGER).await?;
    cluster.apply_as(ty, &bare, MANAGER).await?;
    Ok(())
}

/// An object as JSON with its apiVersion and kind (items of a list carry none).
fn typed(object: DynamicObject, ty: &TypeInfo) -> Result<Value, LiveError> {
    let mut value = serde_json::to_value(object)?;
    if let Some(fields) = value.as_object_mut() {
        fields.insert("apiVersion".into(), ty.resource.api_version.clone().into());
        fields.insert("kind".into(), ty.resource.kind.clone().into());
    }
    Ok(value)
}

/// One look at why an object is not ready: its conditions, the Warning events of it and of what
/// it owns, and its Pods' waiting reasons.
async fn look_for_reasons(cluster: &Cluster, object: &Value) -> Result<Found, LiveError> {
    let client = cluster.client().clone();
    let kind = text(object, "/kind");
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let uid = text(object, "/metadata/uid").to_owned();
    let mut found = Found {
        conditions: bad_conditions(object)
            .into_iter()
            .map(|c| (format!("{uid}/{}", c.kind), c))
            .collect(),
        ..Found::default()
    };
    let mut owners = BTreeSet::from([uid.clone()]);
    if let Some(ns) = namespace {
        let selector = match_labels(object);
        let list = |resource: ApiResource| {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            let mut params = ListParams::default().limit(500);
            if let Some(selector) = &selector {
                params = params.labels(selector);
            }
            async move {
                let list = api.list(&params).await?;
                list.items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<Value>, _>>()
                    .map_err(LiveError::from)
            }
        };
        if kind == "Deployment" {
            for replica_set in list(ApiResource::erase::<ReplicaSet>(&())).await? {
                if owned_by(&replica_set, &owners) {
                    owners.insert(text(&replica_set, "/metadata/uid").to_owned());
                    for condition in bad_conditions(&replica_set) {
                        found.conditions.push((
                            format!("{}/{}", text(&replica_set, "/metadata/uid"), condition.kind),
                            condition,
                        ));
                    }
                }
            }
        }
        if matches!(
            kind,
            "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job"
        ) {
            for pod in list(ApiResource::erase::<Pod>(&())).await? {
                if owned_by(&pod, &owners) {
                    owners.insert(text(&pod, "/metadata/uid").to_owned());
                    found.pods.extend(pod_problems(&pod));
                }
            }
        }
        let events: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<Event>(&()));
        for event in events
            .list(&ListParams::default().fields("type=Warning").limit(500))
            .await?
            .items
        {
            let event = serde_json::to_value(event)?;
            if owners.contains(text(&event, "/involvedObject/uid"))
                && let Some(warning) = warning_of(&event)
            {
                found.warnings.push(warning);
            }
        }
    } else {
        let events: Api<DynamicObject> =
            Api::all_with(client.clone(), &ApiResource::erase::<Event>(&()));
        for event in events
            .list(
                &ListParams::default()
                    .fields(&format!("type=Warning,involvedObject.uid={uid}"))
                    .limit(100),
            )
            .await?
            .items
        {
            if let Some(warning) = warning_of(&serde_json::to_value(event)?) {
                found.warnings.push(warning);
            }
        }
    }
    Ok(found)
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `spec.selector.matchLabels` as a label selector (`None` when there is none or it also has
/// expressions: then everything in the namespace is listed and filtered by owner).
fn match_labels(object: &Value) -> Option<String> {
    let selector = object.pointer("/spec/selector")?;
    if selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
    {
        return None;
    }
    let labels = selector.get("matchLabels")?.as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

fn owned_by(object: &Value, owners: &BTreeSet<String>) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| owners.contains(r.get("uid").and_then(Value::as_str).unwrap_or("")))
        })
}

/// What one look found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// Conditions that are not as they should be, keyed by owner uid and type.
    pub conditions: Vec<(String, BadCondition)>,
    pub warnings: Vec<Warning>,
    /// `pod/<ns>/<name> <container>: <reason>: <message>` of waiting or crashing containers.
    pub pods: Vec<String>,
}

/// A condition that holds the object back (`Available=False`, `ReplicaFailure=True`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCondition {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl BadCondition {
    fn text(&self) -> String {
        let mut out = format!("{}={}", self.kind, self.status);
        for part in [&self.reason, &self.message] {
            if !part.is_empty() {
                out.push_str(": ");
                out.push_str(part);
            }
        }
        out
    }
}

/// Conditions whose type says something is wrong when `True`; every other type is expected
/// `True`.
const NEGATIVE_CONDITIONS: [&str; 5] = [
    "ReplicaFailure",
    "Failed",
    "Degraded",
    "Stalled",
    "DisruptionTarget",
];

/// The conditions of an object that are not as they should be (pure).
pub fn bad_conditions(object: &Value) -> Vec<BadCondition> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let kind = c.get("type")?.as_str()?.to_owned();
            let status = c.get("status")?.as_str()?.to_owned();
            let bad = if NEGATIVE_CONDITIONS.contains(&kind.as_str()) {
                status == "True"
            } else {
                status != "True"
            };
            bad.then(|| BadCondition {
                kind,
                status,
                reason: text(c, "/reason").to_owned(),
                message: text(c, "/message").to_owned(),
            })
        })
        .collect()
}

/// Containers of a Pod that wait for something other than their start, or crash (pure).
pub fn pod_problems(pod: &Value) -> Vec<String> {
    let name = format!(
        "pod/{}/{}",
        text(pod, "/metadata/namespace"),
        text(pod, "/metadata/name")
    );
    let mut out = Vec::new();
    for key in ["initContainerStatuses", "containerStatuses"] {
        for status in pod
            .pointer(&format!("/status/{key}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(waiting) = status.pointer("/state/waiting") else {
                continue;
            };
            let reason = text(waiting, "/reason");
            if reason.is_empty() || reason == "ContainerCreating" || reason == "PodInitializing" {
                continue;
            }
            let message = text(waiting, "/message");
            out.push(format!(
                "{name} {}: {reason}{}{message}",
                text(status, "/name"),
                if message.is_empty() { "" } else { ": " }
            ));
        }
    }
    out
}

/// A Warning event, as far as a wait cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `replicaset/<ns>/<name>`.
    pub object: String,
    pub uid: String,
    pub reason: String,
    pub message: String,
    /// How often it happened (`count`, or `series.count`).
    pub count: u64,
    /// Changes whenever it happens again.
    pub version: String,
    /// When it last happened (RFC 3339, as the server wrote it).
    pub time: String,
}

/// Reads a core/v1 Warning event (`None` for any other type).
pub fn warning_of(event: &Value) -> Option<Warning> {
    if text(event, "/type") != "Warning" {
        return None;
    }
    let involved = event.get("involvedObject")?;
    let namespace = text(involved, "/namespace");
    let object = if namespace.is_empty() {
        format!(
            "{}/{}",
            text(involved, "/kind").to_lowercase(),
            text(involved, "/name")
        )
    } else {
        format!(
            "{}/{namespace}/{}",
            text(involved, "/kind").to_lowercase(),
            text(involved, "/name")
        )
    };
    let count = event
        .pointer("/series/count")
        .or_else(|| event.get("count"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let time = [
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| text(event, p))
    .find(|t| !t.is_empty())
    .unwrap_or_default()
    .to_owned();
    Some(Warning {
        object,
        uid: text(involved, "/uid").to_owned(),
        reason: text(event, "/reason").to_owned(),
        message: text(event, "/message").trim().to_owned(),
        count,
        version: format!(
            "{}/{count}/{time}",
            text(event, "/metadata/resourceVersion")
        ),
        time,
    })
}

/// Whether waiting can fix a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heal {
    /// A refusal: a webhook denied the request, an image name is invalid.
    Never,
    /// A failure that heals only if something else changes (a webhook that cannot be called,
    /// an image that does not exist, a quota, a policy): ends the wait once it keeps recurring
    /// for [`WaitOptions::settle`].
    Unlikely,
    /// Shown, but waited for (scheduling, crash loops, missing volumes, service accounts).
    Maybe,
}

/// Classifies a failure by its reason and message (pure).
pub fn heal(reason: &str, message: &str) -> Heal {
    let lower = message.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&["denied the request"])
        || matches!(reason, "InvalidImageName" | "ErrImageNeverPull")
        || has(&["invalidimagename", "errimageneverpull"])
    {
        return Heal::Never;
    }
    let pulling = has(&["pull", "image"]);
    if pulling
        && has(&[
            "not found",
            "manifest unknown",
            "repository does not exist",
            "pull access denied",
            "unauthorized",
        ])
    {
        return Heal::Unlikely;
    }
    if reason == "FailedCreate" {
        if has(&["serviceaccount"]) && has(&["not found"]) {
            return Heal::Maybe;
        }
        return Heal::Unlikely;
    }
    Heal::Maybe
}

/// Warning events and conditions over the looks of one wait (pure): what to report as it
/// appears, the latest reason, and whether it will not heal.
#[derive(Debug, Default)]
pub struct Reasons {
    looks: u32,
    warnings: BTreeMap<(String, String), Tracked>,
    conditions: BTreeMap<String, (BadCondition, Duration)>,
    pods: Vec<String>,
}

#[derive(Debug)]
struct Tracked {
    warning: Warning,
    /// When it last happened again while we looked (`None`: only seen as it already was).
    recurred: Option<Duration>,
    first_recurred: Option<Duration>,
    reported: Option<String>,
}

impl Reasons {
    /// Takes one look (at `now` since the wait started); returns the warnings to report now:
    /// each that happened during the wait, once per message.
    pub fn observe(&mut self, now: Duration, found: Found) -> Vec<Warning> {
        let first = self.looks == 0;
        self.looks += 1;
        let mut lines = Vec::new();
        for warning in found.warnings {
            let key = (warning.uid.clone(), warning.reason.clone());
            let tracked = self.warnings.entry(key).or_insert_with(|| Tracked {
                warning: warning.clone(),
                // Events that exist at the first look may be from an earlier run: only their
                // recurrence counts. Events that appear later happened during the wait.
                recurred: (!first).then_some(now),
                first_recurred: (!first).then_some(now),
                reported: None,
            });
            if tracked.warning.version != warning.version {
                tracked.recurred = Some(now);
                tracked.first_recurred.get_or_insert(now);
            }
            tracked.warning = warning;
            if tracked.recurred.is_some()
                && tracked.reported.as_deref() != Some(&tracked.warning.message)
            {
                tracked.reported = Some(tracked.warning.message.clone());
                lines.push(tracked.warning.clone());
            }
        }
        let mut conditions = BTreeMap::new();
        for (key, condition) in found.conditions {
            let since = match self.conditions.get(&key) {
                Some((old, since)) if old.status == condition.status => *since,
                _ => now,
            };
            conditions.insert(key, (condition, since));
        }
        self.conditions = conditions;
        self.pods = found.pods;
        lines
    }

    /// A failure that will not heal by waiting, if one is seen: a refusal that happened during
    /// the wait, or a failure unlikely to heal that kept recurring (events) or holding
    /// (conditions) for `settle`.
    pub fn verdict(&self, now: Duration, settle: Duration) -> Option<String> {
        for tracked in self.warnings.values() {
            let (Some(last), Some(first)) = (tracked.recurred, tracked.first_recurred) else {
                continue;
            };
            let w = &tracked.warning;
            let fatal = match heal(&w.reason, &w.message) {
                Heal::Never => true,
                Heal::Unlikely => now.saturating_sub(first) >= settle && now - last <= settle,
                Heal::Maybe => false,
            };
            if fatal {
                return Some(format!(
                    "Warning {} on {} ({} time{}): {}",
                    w.reason,
                    w.object,
                    w.count,
                    if w.count == 1 { "" } else { "s" },
                    w.message
                ));
            }
        }
        for (condition, since) in self.conditions.values() {
            let holds_long = now.saturating_sub(*since) >= settle;
            if NEGATIVE_CONDITIONS.contains(&condition.kind.as_str())
                && heal(&condition.reason, &condition.message) != Heal::Maybe
                && holds_long
            {
                return Some(format!(
                    "condition {} for {}s",
                    condition.text(),
                    now.saturating_sub(*since).as_secs()
                ));
            }
        }
        None
    }

    /// What holds the object back, for a progress line: `last` (what the readiness check saw),
    /// the conditions that are not as they should be, Pods' waiting reasons, the latest warning
    /// that happened during the wait, and the API server's state.
    pub fn summary(&self, last: &str, unreachable: Option<&str>) -> String {
        let mut parts = vec![last.to_owned()];
        // A Deployment repeats its ReplicaSet's ReplicaFailure: each text once.
        let mut conditions: Vec<String> = self.conditions.values().map(|(c, _)| c.text()).collect();
        conditions.sort();
        conditions.dedup();
        conditions.retain(|c| c != last);
        parts.extend(conditions);
        parts.extend(self.pods.iter().take(3).cloned());
        if let Some(latest) = self
            .warnings
            .values()
            .filter(|t| t.recurred.is_some())
            .max_by(|a, b| a.warning.time.cmp(&b.warning.time))
        {
            let w = &latest.warning;
            // A ReplicaFailure condition usually carries the same message: not twice.
            let repeated = self
                .conditions
                .values()
                .any(|(c, _)| !c.message.is_empty() && w.message.contains(&c.message));
            parts.push(if repeated {
                format!(
                    "latest warning: {} on {} ({}x), the same",
                    w.reason, w.object, w.count
                )
            } else {
                format!(
                    "latest warning: {} on {} ({}x): {}",
                    w.reason, w.object, w.count, w.message
                )
            });
        }
        if let Some(error) = unreachable {
            parts.push(format!("API server unreachable: {error}"));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_is_ready_when_established() {
        let crd = json!({"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}});
        assert_eq!(readiness(&crd), Readiness::Ready);
        let pending = json!({"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "Established", "status": "False", "reason": "Installing", "message": "the CRD is being installed"}]}});
        assert_eq!(
            readiness(&pending),
            waiting(
                "condition Established",
                "Established=False: Installing: the CRD is being installed"
            )
        );
    }

    #[test]
    fn deployment_waits_for_the_new_generation_and_all_replicas() {
        let old = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1}});
        assert!(matches!(readiness(&old), Readiness::Waiting { .. }));
        let partial = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(
            readiness(&partial),
            waiting("condition Available", "1/2 available, 2/2 updated")
        );
        let done = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True"}]}});
        assert_eq!(readiness(&done), Readiness::Ready);
    }

    #[test]
    fn daemon_set_with_nothing_scheduled_is_not_rolled_out() {
        let ds = json!({"kind": "DaemonSet", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 0}});
        assert!(matches!(readiness(&ds), Readiness::Waiting { .. }));
        let ds = json!({"kind": "DaemonSet", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberReady": 1}});
        assert_eq!(readiness(&ds), Readiness::Ready);
    }

    fn event(
        kind: &str,
        name: &str,
        uid: &str,
        reason: &str,
        message: &str,
        count: u64,
        rv: &str,
    ) -> Value {
        json!({"type": "Warning", "reason": reason, "message": message, "count": count,
               "lastTimestamp": format!("2026-11-29T20:00:{rv:0>2}Z"),
               "metadata": {"resourceVersion": rv},
               "involvedObject": {"kind": kind, "namespace": "web", "name": name, "uid": uid}})
    }

    const WEBHOOK_DOWN: &str = "Error creating: Internal error occurred: failed calling webhook \"deny.envctl.test\": failed to call webhook: Post \"https://127.0.0.1:9/\": dial tcp 127.0.0.1:9: connect: connection refused";

    #[test]
    fn warning_events_are_read_with_their_object_count_and_version() {
        let w = warning_of(&event(
            "ReplicaSet",
            "nginx-5d",
            "u1",
            "FailedCreate",
            WEBHOOK_DOWN,
            7,
            "42",
        ))
        .unwrap();
        assert_eq!(w.object, "replicaset/web/nginx-5d");
        assert_eq!((w.reason.as_str(), w.count), ("FailedCreate", 7));
        let normal = json!({"type": "Normal", "reason": "ScalingReplicaSet", "involvedObject": {}});
        assert_eq!(warning_of(&normal), None);
        // Events of the events.k8s.io API count in their series.
        let series = json!({"type": "Warning", "reason": "FailedScheduling", "message": "0/1 nodes",
            "series": {"count": 4, "lastObservedTime": "2026-11-29T20:01:00.000000Z"},
            "involvedObject": {"kind": "Pod", "namespace": "web", "name": "p", "uid": "u2"}});
        assert_eq!(warning_of(&series).unwrap().count, 4);
    }

    #[test]
    fn failures_are_classified_by_whether_waiting_can_heal_them() {
        assert_eq!(
            heal(
                "FailedCreate",
                "Error creating: admission webhook \"x\" denied the request: no"
            ),
            Heal::Never
        );
        assert_eq!(heal("FailedCreate", WEBHOOK_DOWN), Heal::Unlikely);
        assert_eq!(
            heal(
                "FailedCreate",
                "Error creating: pods \"a\" is forbidden: exceeded quota: q"
            ),
            Heal::Unlikely
        );
        assert_eq!(
            heal(
                "FailedCreate",
                "Error creating: pods \"a\" is forbidden: error looking up service account web/sa: serviceaccount \"sa\" not found"
            ),
            Heal::Maybe
        );
        assert_eq!(
            heal(
                "Failed",
                "Failed to pull image \"nginx:nope\": rpc error: code = NotFound desc = manifest unknown"
            ),
            Heal::Unlikely
        );
        assert_eq!(
            heal(
                "Failed",
                "Failed to pull image \"nginx\": dial tcp: i/o timeout"
            ),
            Heal::Maybe
        );
        assert_eq!(
            heal("InvalidImageName", "Failed to apply default image tag"),
            Heal::Never
        );
        assert_eq!(
            heal("BackOff", "Back-off restarting failed container app"),
            Heal::Maybe
        );
        assert_eq!(
            heal(
                "FailedScheduling",
                "0/1 nodes are available: 1 Insufficient cpu."
            ),
            Heal::Maybe
        );
    }

    #[test]
    fn conditions_that_hold_an_object_back_are_found_both_ways_round() {
        let deployment = json!({"status": {"conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "admission webhook \"x\" denied the request"}]}});
        let bad: Vec<String> = bad_conditions(&deployment)
            .iter()
            .map(BadCondition::text)
            .collect();
        assert_eq!(
            bad,
            [
                "Available=False: MinimumReplicasUnavailable: Deployment does not have minimum availability.",
                "ReplicaFailure=True: FailedCreate: admission webhook \"x\" denied the request",
            ]
        );
    }

    #[test]
    fn pods_waiting_for_something_else_than_their_start_are_named() {
        let pod = json!({"metadata": {"namespace": "web", "name": "nginx-1"}, "status": {"containerStatuses": [
            {"name": "nginx", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nginx:nope\""}}},
            {"name": "side", "state": {"waiting": {"reason": "ContainerCreating"}}},
            {"name": "ok", "state": {"running": {}}}]}});
        assert_eq!(
            pod_problems(&pod),
            ["pod/web/nginx-1 nginx: ImagePullBackOff: Back-off pulling image \"nginx:nope\""]
        );
    }

    fn found(warnings: Vec<Value>) -> Found {
        Found {
            warnings: warnings.iter().filter_map(warning_of).collect(),
            ..Found::default()
        }
    }

    #[test]
    fn a_recurring_failure_that_is_unlikely_to_heal_ends_the_wait_after_settling() {
        let settle = Duration::from_secs(20);
        let s = Duration::from_secs;
        let mut reasons = Reasons::default();
        // First look: an event from before the wait is not reported, and not held against it.
        assert!(
            reasons
                .observe(
                    s(0),
                    found(vec![event(
                        "ReplicaSet",
                        "rs",
                        "u1",
                        "FailedCreate",
                        WEBHOOK_DOWN,
                        3,
                        "1"
                    )])
                )
                .is_empty()
        );
        assert_eq!(reasons.verdict(s(0), settle), None);
        // It happens again: reported once.
        let lines = reasons.observe(
            s(2),
            found(vec![event(
                "ReplicaSet",
                "rs",
                "u1",
                "FailedCreate",
                WEBHOOK_DOWN,
                4,
                "2",
            )]),
        );
        let seen: Vec<(&str, &str, &str)> = lines
            .iter()
            .map(|w| (w.reason.as_str(), w.object.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(seen, [("FailedCreate", "replicaset/web/rs", WEBHOOK_DOWN)]);
        assert!(
            reasons
                .observe(
                    s(4),
                    found(vec![event(
                        "ReplicaSet",
                        "rs",
                        "u1",
                        "FailedCreate",
                        WEBHOOK_DOWN,
                        5,
                        "3"
                    )])
                )
                .is_empty(),
            "once per message"
        );
        assert_eq!(reasons.verdict(s(4), settle), None, "not settled yet");
        reasons.observe(
            s(21),
            found(vec![event(
                "ReplicaSet",
                "rs",
                "u1",
                "FailedCreate",
                WEBHOOK_DOWN,
                9,
                "4",
            )]),
        );
        assert_eq!(
            reasons.verdict(s(21), settle),
            None,
            "recurring for 19s only"
        );
        reasons.observe(
            s(23),
            found(vec![event(
                "ReplicaSet",
                "rs",
                "u1",
                "FailedCreate",
                WEBHOOK_DOWN,
                10,
                "5",
            )]),
        );
        let verdict = reasons.verdict(s(23), settle).expect("settled");
        assert!(
            verdict.starts_with(
                "Warning FailedCreate on replicaset/web/rs (10 times): Error creating"
            ),
            "{verdict}"
        );
        assert!(
            reasons
                .summary("0/1 available", None)
                .contains("latest warning: FailedCreate on replicaset/web/rs (10x)")
        );
    }

    #[test]
    fn a_failure_that_stopped_recurring_or_may_heal_does_not_end_the_wait() {
        let settle = Duration::from_secs(20);
        let s = Duration::from_secs;
        let mut reasons = Reasons::default();
        reasons.observe(s(0), Found::default());
        reasons.observe(
            s(2),
            found(vec![event(
                "ReplicaSet",
                "rs",
                "u1",
                "FailedCreate",
                WEBHOOK_DOWN,
                1,
                "1",
            )]),
        );
        // Nothing new for longer than `settle`: it healed (the webhook's server came up).
        reasons.observe(
            s(60),
            found(vec![event(
                "ReplicaSet",
                "rs",
                "u1",
                "FailedCreate",
                WEBHOOK_DOWN,
                1,
                "1",
            )]),
        );
        assert_eq!(reasons.verdict(s(60), settle), None);
        // A crash loop is shown but waited for.
        let mut reasons = Reasons::default();
        reasons.observe(s(0), Found::default());
        for (t, rv) in [(2, "1"), (30, "2"), (60, "3")] {
            reasons.observe(
                s(t),
                found(vec![event(
                    "Pod",
                    "p",
                    "u2",
                    "BackOff",
                    "Back-off restarting failed container app",
                    t,
                    rv,
                )]),
            );
        }
        assert_eq!(reasons.verdict(s(60), settle), None);
    }

    #[test]
    fn a_refusal_ends_the_wait_at_once_and_a_held_failure_condition_after_settling() {
        let settle = Duration::from_secs(20);
        let s = Duration::from_secs;
        let mut reasons = Reasons::default();
        reasons.observe(s(0), Found::default());
        let denied = "Error creating: admission webhook \"x\" denied the request: no";
        reasons.observe(
            s(2),
            found(vec![event(
                "ReplicaSet",
                "rs",
                "u1",
                "FailedCreate",
                denied,
                1,
                "1",
            )]),
        );
        assert!(reasons.verdict(s(2), settle).is_some());

        let failure = BadCondition {
            kind: "ReplicaFailure".into(),
            status: "True".into(),
            reason: "FailedCreate".into(),
            message: WEBHOOK_DOWN.into(),
        };
        let with = || Found {
            conditions: vec![("u1/ReplicaFailure".into(), failure.clone())],
            ..Found::default()
        };
        let mut reasons = Reasons::default();
        reasons.observe(s(0), with());
        assert_eq!(reasons.verdict(s(10), settle), None);
        reasons.observe(s(21), with());
        assert!(
            reasons
                .verdict(s(21), settle)
                .unwrap()
                .starts_with("condition ReplicaFailure=True: FailedCreate")
        );
        // Cleared in between: the clock starts again.
        reasons.observe(s(22), Found::default());
        reasons.observe(s(30), with());
        assert_eq!(reasons.verdict(s(40), settle), None);
    }

    #[test]
    fn a_crd_is_installing_when_its_names_are_accepted_and_it_is_not_established() {
        let crd = |established: &str| {
            json!({"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": established, "reason": "Installing"}]}})
        };
        assert!(crd_installing(&crd("False")));
        assert!(!crd_installing(&crd("True")));
        let names_pending = json!({"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "False", "reason": "NameConflict"}]}});
        assert!(!crd_installing(&names_pending));
    }

    #[test]
    fn plain_objects_are_ready_when_they_exist() {
        assert_eq!(readiness(&json!({"kind": "ConfigMap"})), Readiness::Ready);
    }
}
