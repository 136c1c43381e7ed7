//! What a run reports while it works: one typed event per step of a change (started, done,
//! failed, cancelled), per wait (still waiting and why, a warning seen, the API server lost and
//! back) and per recovery. The caller decides on the variants (xtask's live line, the
//! benchmark's timings); [`Progress`]'s `Display` is the line a person reads
//! (`ADDRESS: Creation complete after 1.2s`), and the serde form (`{"event": "done", ...}`) the
//! one a program reads from `ENVCTL_PROGRESS=json`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::helm::Pending;
use crate::provider::Destroyed;

/// Where progress goes (stderr in the CLI, a buffer in tests).
pub type Reporter = dyn Fn(&Progress) + Send + Sync;

/// What one change does (the verb of its progress lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Create,
    Replace,
    Modify,
    Destroy,
    /// Destroy of an object envctl only patches: its fields are taken back.
    RemoveFields,
}

impl Step {
    /// `Creating`, as in `ADDRESS: Creating...`.
    fn started(self) -> &'static str {
        match self {
            Step::Create => "Creating",
            Step::Replace => "Replacing",
            Step::Modify => "Modifying",
            Step::Destroy => "Destroying",
            Step::RemoveFields => "Removing envctl's fields",
        }
    }

    /// `Creation complete`, as in `ADDRESS: Creation complete after 1.2s`.
    fn done(self) -> &'static str {
        match self {
            Step::Create => "Creation complete",
            Step::Replace => "Replacement complete",
            Step::Modify => "Modifications complete",
            Step::Destroy => "Destruction complete",
            Step::RemoveFields => "Fields removed",
        }
    }

    /// Tenths of a second for what apply creates or changes; whole seconds for what is
    /// destroyed (as the lines always read).
    fn tenths(self) -> bool {
        matches!(self, Step::Create | Step::Replace | Step::Modify)
    }
}

/// One progress event of a run; `address` is the resource's (`gateway.object.namespace/x`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A change started.
    Started { address: String, step: Step },
    /// A change is done (and what follows may rely on it: it is ready).
    Done {
        address: String,
        step: Step,
        elapsed: Duration,
    },
    /// A change failed; `error` is the error without the address.
    Failed {
        address: String,
        elapsed: Duration,
        error: String,
    },
    /// A change in flight was stopped: another found the API server unreachable.
    Cancelled { address: String, elapsed: Duration },
    /// A wait goes on: what is awaited, and the reasons seen (conditions, pods, warnings).
    Waiting {
        address: String,
        what: String,
        elapsed: Duration,
        reason: String,
    },
    /// A Warning event of the awaited object or of what it owns, as it happened.
    Warning {
        address: String,
        reason: String,
        object: String,
        message: String,
    },
    /// The API server did not answer a read during a wait (which goes on).
    Unreachable {
        address: String,
        error: String,
        elapsed: Duration,
    },
    /// The API server answers again.
    Reachable { address: String },
    /// A CRD sat with its names accepted and not Established for `stuck`: it is updated to
    /// wake the establishing controller.
    Nudged { address: String, stuck: Duration },
    /// A Helm release left pending by an interrupted run is recovered first.
    Recovering { address: String, pending: Pending },
    /// That recovery is done.
    Recovered { address: String },
    /// The cluster was deleted (to be created anew).
    ClusterDestroyed {
        address: String,
        destroyed: Destroyed,
    },
}

impl Progress {
    /// The resource the event is about.
    pub fn address(&self) -> &str {
        match self {
            Progress::Started { address, .. }
            | Progress::Done { address, .. }
            | Progress::Failed { address, .. }
            | Progress::Cancelled { address, .. }
            | Progress::Waiting { address, .. }
            | Progress::Warning { address, .. }
            | Progress::Unreachable { address, .. }
            | Progress::Reachable { address }
            | Progress::Nudged { address, .. }
            | Progress::Recovering { address, .. }
            | Progress::Recovered { address }
            | Progress::ClusterDestroyed { address, .. } => address,
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.address())?;
        match self {
            Progress::Started { step, .. } => write!(f, "{}...", step.started()),
            Progress::Done { step, elapsed, .. } if step.tenths() => {
                write!(f, "{} after {:.1}s", step.done(), elapsed.as_secs_f64())
            }
            Progress::Done { step, elapsed, .. } => {
                write!(f, "{} after {}s", step.done(), elapsed.as_secs())
            }
            Progress::Failed { elapsed, error, .. } => {
                write!(f, "failed after {:.1}s: {error}", elapsed.as_secs_f64())
            }
            Progress::Cancelled { elapsed, .. } => write!(
                f,
                "cancelled after {:.1}s: another change found the API server unreachable",
                elapsed.as_secs_f64()
            ),
            Progress::Waiting {
                what,
                elapsed,
                reason,
                ..
            } => write!(
                f,
                "still waiting for {what} [{}s elapsed] ({reason})",
                elapsed.as_secs()
            ),
            Progress::Warning {
                reason,
                object,
                message,
                ..
            } => write!(f, "Warning {reason} on {object}: {message}"),
            Progress::Unreachable { error, elapsed, .. } => write!(
                f,
                "cannot read it from the API server ({error}); still waiting [{}s elapsed]",
                elapsed.as_secs()
            ),
            Progress::Reachable { .. } => write!(f, "the API server answers again"),
            Progress::Nudged { stuck, .. } => write!(
                f,
                "names accepted but not Established for {}s (an API server that restarted \
                 misses it): updating it to wake the establishing controller",
                stuck.as_secs()
            ),
            Progress::Recovering { pending, .. } => write!(f, "{pending}"),
            Progress::Recovered { .. } => write!(f, "Recovery complete"),
            Progress::ClusterDestroyed { destroyed, .. } => write!(f, "{destroyed}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> String {
        "sso.helm_release.dex".into()
    }

    /// The lines read exactly as they did when they were strings.
    #[test]
    fn each_event_reads_as_its_line() {
        let s = Duration::from_millis;
        let cases = [
            (
                Progress::Started {
                    address: a(),
                    step: Step::Create,
                },
                "sso.helm_release.dex: Creating...",
            ),
            (
                Progress::Started {
                    address: a(),
                    step: Step::RemoveFields,
                },
                "sso.helm_release.dex: Removing envctl's fields...",
            ),
            (
                Progress::Done {
                    address: a(),
                    step: Step::Replace,
                    elapsed: s(12_340),
                },
                "sso.helm_release.dex: Replacement complete after 12.3s",
            ),
            (
                Progress::Done {
                    address: a(),
                    step: Step::Modify,
                    elapsed: s(800),
                },
                "sso.helm_release.dex: Modifications complete after 0.8s",
            ),
            (
                Progress::Done {
                    address: a(),
                    step: Step::Destroy,
                    elapsed: s(3_900),
                },
                "sso.helm_release.dex: Destruction complete after 3s",
            ),
            (
                Progress::Done {
                    address: a(),
                    step: Step::RemoveFields,
                    elapsed: s(1_000),
                },
                "sso.helm_release.dex: Fields removed after 1s",
            ),
            (
                Progress::Failed {
                    address: a(),
                    elapsed: s(2_000),
                    error: "refused".into(),
                },
                "sso.helm_release.dex: failed after 2.0s: refused",
            ),
            (
                Progress::Cancelled {
                    address: a(),
                    elapsed: s(1_500),
                },
                "sso.helm_release.dex: cancelled after 1.5s: another change found the API server unreachable",
            ),
            (
                Progress::Waiting {
                    address: a(),
                    what: "condition Available".into(),
                    elapsed: s(10_400),
                    reason: "0/1 available".into(),
                },
                "sso.helm_release.dex: still waiting for condition Available [10s elapsed] (0/1 available)",
            ),
            (
                Progress::Warning {
                    address: a(),
                    reason: "FailedCreate".into(),
                    object: "replicaset/sso/dex-1".into(),
                    message: "denied".into(),
                },
                "sso.helm_release.dex: Warning FailedCreate on replicaset/sso/dex-1: denied",
            ),
            (
                Progress::Unreachable {
                    address: a(),
                    error: "connection refused".into(),
                    elapsed: s(4_000),
                },
                "sso.helm_release.dex: cannot read it from the API server (connection refused); still waiting [4s elapsed]",
            ),
            (
                Progress::Reachable { address: a() },
                "sso.helm_release.dex: the API server answers again",
            ),
            (
                Progress::Recovered { address: a() },
                "sso.helm_release.dex: Recovery complete",
            ),
            (
                Progress::ClusterDestroyed {
                    address: "cluster.cluster.istio".into(),
                    destroyed: Destroyed::Deleted {
                        name: "istio".into(),
                    },
                },
                "cluster.cluster.istio: cluster istio deleted",
            ),
        ];
        for (event, line) in cases {
            assert_eq!(event.to_string(), line);
        }
    }

    /// What `ENVCTL_PROGRESS=json` prints is read back as the same event.
    #[test]
    fn an_event_survives_its_json_form() {
        let event = Progress::Done {
            address: a(),
            step: Step::Create,
            elapsed: Duration::from_millis(1_234),
        };
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.starts_with(r#"{"event":"done","#), "{text}");
        assert_eq!(serde_json::from_str::<Progress>(&text).unwrap(), event);
    }
}
