//! Readiness: what "done" means for an object the next step depends on, and a bounded wait.

use std::time::{Duration, Instant};

use serde_json::Value;

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
/// - HTTPRoute: every parent `Accepted` and `ResolvedRefs`.
/// - Gateway: `Programmed` (callers only wait for it when a controller serves the class).
/// - Everything else: ready once it exists.
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
        "HTTPRoute" => http_route(object),
        "Gateway" => condition_ready(object, "Programmed"),
        _ => Readiness::Ready,
    }
}

fn waiting(what: &str, last: &str) -> Readiness {
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

fn condition_ready(object: &Value, kind: &str) -> Readiness {
    conditions_ready(object.pointer("/status/conditions"), kind)
}

fn conditions_ready(conditions: Option<&Value>, kind: &str) -> Readiness {
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

fn http_route(object: &Value) -> Readiness {
    let parents = object.pointer("/status/parents").and_then(Value::as_array);
    let Some(parents) = parents.filter(|p| !p.is_empty()) else {
        return waiting("Accepted by its parent Gateway", "no parent status yet");
    };
    for parent in parents {
        for kind in ["Accepted", "ResolvedRefs"] {
            if let Readiness::Waiting { what, last } =
                conditions_ready(parent.get("conditions"), kind)
            {
                return Readiness::Waiting { what, last };
            }
        }
    }
    Readiness::Ready
}

/// How long to wait, and how often to say so.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    pub timeout: Duration,
    pub poll: Duration,
    pub progress_every: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(300),
            poll: Duration::from_millis(500),
            progress_every: Duration::from_secs(10),
        }
    }
}

/// Polls an object until [`readiness`] says ready, printing a progress line with the elapsed
/// time through `progress`. On timeout the error names the object and its last condition.
pub async fn wait_ready(
    cluster: &Cluster,
    ty: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
    label: &str,
    options: WaitOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), LiveError> {
    poll(
        cluster,
        ty,
        namespace,
        name,
        label,
        options,
        progress,
        |object| match object {
            Some(object) => match readiness(object) {
                Readiness::Ready => None,
                Readiness::Waiting { what, last } => Some((what, last)),
            },
            None => Some(("the object to exist".into(), "not found".into())),
        },
    )
    .await
}

/// Polls until an object no longer exists (bounded by `options.timeout`).
pub async fn wait_gone(
    cluster: &Cluster,
    ty: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
    label: &str,
    options: WaitOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), LiveError> {
    poll(
        cluster,
        ty,
        namespace,
        name,
        label,
        options,
        progress,
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

/// Reads the object every `options.poll` until `pending` says nothing is awaited any more
/// (`None`); `Some((what, last))` names what is awaited and the latest state seen.
#[allow(clippy::too_many_arguments)]
async fn poll(
    cluster: &Cluster,
    ty: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
    label: &str,
    options: WaitOptions,
    progress: &(dyn Fn(&str) + Sync),
    pending: impl Fn(Option<&Value>) -> Option<(String, String)>,
) -> Result<(), LiveError> {
    let start = Instant::now();
    let mut next_report = options.progress_every;
    loop {
        let object = cluster.get(ty, namespace, name).await?;
        let Some((what, last)) = pending(object.as_ref()) else {
            return Ok(());
        };
        let elapsed = start.elapsed();
        if elapsed >= options.timeout {
            return Err(LiveError::Timeout(format!(
                "{label}: gave up after {}s waiting for {what}; last seen: {last}",
                elapsed.as_secs()
            )));
        }
        if elapsed >= next_report {
            progress(&format!(
                "{label}: still waiting for {what} [{}s elapsed] ({last})",
                elapsed.as_secs()
            ));
            next_report += options.progress_every;
        }
        tokio::time::sleep(options.poll).await;
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

    #[test]
    fn http_route_needs_every_parent_accepted_and_resolved() {
        let route = json!({"kind": "HTTPRoute", "status": {"parents": [{"conditions": [
            {"type": "Accepted", "status": "True"},
            {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "service sso/dex not found"}]}]}});
        assert_eq!(
            readiness(&route),
            waiting(
                "condition ResolvedRefs",
                "ResolvedRefs=False: BackendNotFound: service sso/dex not found"
            )
        );
        assert!(matches!(
            readiness(&json!({"kind": "HTTPRoute"})),
            Readiness::Waiting { .. }
        ));
    }

    #[test]
    fn plain_objects_are_ready_when_they_exist() {
        assert_eq!(readiness(&json!({"kind": "ConfigMap"})), Readiness::Ready);
    }
}
