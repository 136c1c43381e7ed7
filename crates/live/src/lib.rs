//! The edge to the live cluster: the Kubernetes API (server-side apply, dry runs, discovery,
//! readiness waits) and the helm and kind CLIs.
//!
//! The pure parts (noise removal, field diffs, managedFields attribution) live in [`fields`]
//! and are unit-tested; everything that talks to a cluster is tested against the testenv in
//! `crates/e2e`.

pub mod charts;
pub mod cluster;
pub mod fields;
pub mod helm;
pub mod helm_storage;
pub mod objects;
pub mod process;
pub mod progress;
pub mod provider;
pub mod readiness;
pub mod retry;
pub mod runner;
pub mod secrets;
pub mod session;
pub mod snapshot;
pub mod sources;
pub mod wait;

pub use cluster::{Cluster, Conflict, FIELD_MANAGER, TypeInfo};
pub use process::ProcessError;
pub use progress::{Progress, Step};
pub use readiness::ReadinessRule;

/// The status an API server answered a failed request with (`kube::Error::Api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiStatus {
    /// The HTTP code, e.g. 404.
    pub code: u16,
    /// The machine-readable reason, e.g. `NotFound`, `Invalid`, `Forbidden`.
    pub reason: String,
    /// The server's message, naming the object.
    pub message: String,
    /// A field the server refuses to change in place ("field is immutable"; a CRD's own
    /// validation rule may word it differently): the object must be replaced. The API has no
    /// machine-readable reason for this, so it is read once, here, from the status causes.
    pub immutable: bool,
}

impl ApiStatus {
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    /// 400 or 422: the server refuses the object as it is (validation, schema).
    pub fn is_invalid(&self) -> bool {
        matches!(self.code, 400 | 422)
    }

    /// 429 and 5xx answers: a later run can get past them.
    pub fn is_transient(&self) -> bool {
        matches!(self.code, 429 | 500 | 502 | 503 | 504)
    }
}

impl From<&kube::core::Status> for ApiStatus {
    fn from(status: &kube::core::Status) -> ApiStatus {
        let causes = status.details.iter().flat_map(|d| d.causes.iter());
        let immutable = causes
            .map(|c| c.message.as_str())
            .chain([status.message.as_str()])
            .any(|m| m.contains("immutable"));
        ApiStatus {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            immutable,
        }
    }
}

impl std::fmt::Display for ApiStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason.as_str() {
            "" => write!(f, "{} ({})", self.message, self.code),
            reason => write!(f, "{} ({reason}, {})", self.message, self.code),
        }
    }
}

/// `"{address}: "` when the address is known, else nothing.
struct At<'a>(&'a Option<String>);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}: "),
            None => Ok(()),
        }
    }
}

/// An error talking to the cluster (or to helm and kind on its behalf). Variants that concern
/// one resource carry its address (the engine's, e.g. `gateway.object.service/default/nginx`,
/// or `Kind namespace/name` where there is none); [`LiveError::at`] fills it in where the
/// failing call did not know it. Every message names what failed and, where there is one, the
/// next step.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The client cannot be set up: kubeconfig, context, a setting of the environment.
    #[error("{0}")]
    Connect(String),
    /// The API server answered with an error status.
    #[error("{}Kubernetes API: {status}", At(.address))]
    Api {
        address: Option<String>,
        status: ApiStatus,
    },
    /// A request got no answer (connection refused or reset, a stalled server after the
    /// retries of [`retry`]), or the client itself failed.
    #[error("{}Kubernetes API: {source}", At(.address))]
    Transport {
        address: Option<String>,
        #[source]
        source: Box<kube::Error>,
    },
    /// Another field manager owns fields this apply sets.
    #[error("{}", conflict_text(.address, .conflict))]
    Conflict {
        address: Option<String>,
        conflict: Conflict,
    },
    #[error("unexpected object from the API server: {0}")]
    Decode(#[from] serde_json::Error),
    /// A wait ran out of time.
    #[error(
        "{address}: gave up after {}s waiting for {what}; last seen: {last_seen}{}",
        .waited.as_secs(),
        if *.unreachable { format!("\n{}", retry::RUN_AGAIN) } else { String::new() }
    )]
    Timeout {
        address: String,
        waited: std::time::Duration,
        /// What was waited for, e.g. `the rollout`.
        what: String,
        /// The last state seen, with the reasons found.
        last_seen: String,
        /// The API server did not answer at the end: a later run can get past it.
        unreachable: bool,
    },
    /// A wait found a cause that waiting does not fix.
    #[error(
        "{address}: will not become ready by waiting: {reason}; fix the cause and run apply again"
    )]
    WillNotBeReady { address: String, reason: String },
    /// The watch of a wait ended without an answer.
    #[error("{address}: the watch ended")]
    WatchEnded { address: String },
    /// A declared object exists but is not envctl's.
    #[error("{address}: {detail}\n  = help: {help}")]
    NotOwned {
        address: String,
        detail: String,
        help: String,
    },
    /// The API server rejects a declared object, and it cannot be replaced to get past that.
    #[error("{address}: the API server rejects this object: {message}")]
    Rejected { address: String, message: String },
    /// The cluster does not serve a kind. `hint` says what may be missing.
    #[error("{}the cluster does not serve {api_version} {kind}{hint}", At(.address))]
    Unserved {
        address: Option<String>,
        api_version: String,
        kind: String,
        hint: &'static str,
    },
    /// The configuration cannot be turned into what is sent (found only against the cluster,
    /// or a value of the configuration the run cannot use).
    #[error("{}{message}", At(.address))]
    Config {
        address: Option<String>,
        message: String,
    },
    /// A document of the configuration cannot be resolved (it names its address).
    #[error(transparent)]
    Desired(Box<engine::DesiredError>),
    /// helm failed for a release.
    #[error("{}{source}", At(.address))]
    Helm {
        address: Option<String>,
        #[source]
        source: Box<helm::HelmError>,
    },
    /// A CLI (kind) failed.
    #[error("{}{source}", At(.address))]
    Process {
        address: Option<String>,
        #[source]
        source: ProcessError,
    },
    /// A pinned upstream file cannot be used.
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    /// What an object or record holds cannot be read (Helm's storage, a Secret's data).
    #[error("{what}: {problem}")]
    Unreadable { what: String, problem: String },
    /// A local resource failed: a temporary file, the OS random number generator.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Someone else kept changing a record while it was updated.
    #[error(
        "{what}: changed by someone else {attempts} times in a row while being updated; run apply again"
    )]
    Contended { what: String, attempts: usize },
    /// The lock of an environment is not what the request expects.
    #[error("{0}")]
    Lock(String),
    /// A failure a later run can get past (the API server did not answer in time); `source`
    /// names the resource. `nothing_changed`: it happened while planning.
    #[error(
        "{source}\n{}",
        if *.nothing_changed { retry::PLAN_AGAIN } else { retry::RUN_AGAIN }
    )]
    RunAgain {
        source: Box<LiveError>,
        nothing_changed: bool,
    },
    /// Changes of an apply failed (each names its resource); `not_started` were never begun.
    #[error("{}", failed_text(.failures, .not_started))]
    Failed {
        failures: Vec<LiveError>,
        not_started: Vec<String>,
    },
    /// Changes whose dependencies never completed.
    #[error("never ready to start (a dependency cycle?): {}", .0.join(", "))]
    Stuck(Vec<String>),
    /// A change in flight given up because another found the API server unreachable.
    #[error(
        "{address}: cancelled: another change found the API server unreachable\n{}",
        retry::RUN_AGAIN
    )]
    Cancelled { address: String },
}

fn conflict_text(address: &Option<String>, conflict: &Conflict) -> String {
    let one = conflict.managers.len() == 1;
    match address {
        Some(address) => format!(
            "{address}: field manager{} {} own{} {}; run apply with --force-conflicts to take them over",
            if one { "" } else { "s" },
            conflict.managers.join(", "),
            if one { "s" } else { "" },
            conflict.fields.join(", ")
        ),
        None => format!(
            "conflict with field manager(s) {}: {}",
            conflict.managers.join(", "),
            conflict.message
        ),
    }
}

fn failed_text(failures: &[LiveError], not_started: &[String]) -> String {
    let mut text: Vec<String> = failures.iter().map(ToString::to_string).collect();
    if !not_started.is_empty() {
        text.push(format!("not started: {}", not_started.join(", ")));
    }
    text.join("\n")
}

impl From<kube::Error> for LiveError {
    fn from(error: kube::Error) -> LiveError {
        match error {
            kube::Error::Api(status) => LiveError::Api {
                address: None,
                status: ApiStatus::from(status.as_ref()),
            },
            source => LiveError::Transport {
                address: None,
                source: Box::new(source),
            },
        }
    }
}

impl From<engine::DesiredError> for LiveError {
    fn from(error: engine::DesiredError) -> LiveError {
        LiveError::Desired(Box::new(error))
    }
}

impl From<helm::HelmError> for LiveError {
    fn from(error: helm::HelmError) -> LiveError {
        match error {
            helm::HelmError::Live(e) => e,
            other => LiveError::Helm {
                address: None,
                source: Box::new(other),
            },
        }
    }
}

impl From<ProcessError> for LiveError {
    fn from(source: ProcessError) -> LiveError {
        LiveError::Process {
            address: None,
            source,
        }
    }
}

impl LiveError {
    /// The error, naming `address` where it did not name a resource yet.
    pub fn at(self, address: impl std::fmt::Display) -> LiveError {
        fn fill(slot: &mut Option<String>, address: &dyn std::fmt::Display) {
            if slot.is_none() {
                *slot = Some(address.to_string());
            }
        }
        let mut error = self;
        match &mut error {
            LiveError::Api { address: a, .. }
            | LiveError::Transport { address: a, .. }
            | LiveError::Conflict { address: a, .. }
            | LiveError::Unserved { address: a, .. }
            | LiveError::Config { address: a, .. }
            | LiveError::Helm { address: a, .. }
            | LiveError::Process { address: a, .. } => fill(a, &address),
            LiveError::RunAgain { source, .. } => {
                let inner = std::mem::replace(source.as_mut(), LiveError::Stuck(Vec::new()));
                **source = inner.at(address);
            }
            _ => {}
        }
        error
    }

    /// The API server's answer, when the error is one.
    pub fn status(&self) -> Option<&ApiStatus> {
        match self {
            LiveError::Api { status, .. } => Some(status),
            LiveError::RunAgain { source, .. } => source.status(),
            _ => None,
        }
    }

    /// The API server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(ApiStatus::is_not_found)
    }

    /// A configuration error, at `address`.
    pub fn config(address: impl std::fmt::Display, message: impl Into<String>) -> LiveError {
        LiveError::Config {
            address: Some(address.to_string()),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> LiveError {
        LiveError::from(kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        })))
    }

    #[test]
    fn errors_stay_small() {
        // Returned through every async step: big variants are boxed.
        assert!(std::mem::size_of::<LiveError>() <= 128);
    }

    #[test]
    fn an_api_error_keeps_the_status_and_gets_the_address_once() {
        let e = api(403, "Forbidden", "secrets \"x\" is forbidden");
        assert_eq!(
            e.status().map(|s| (s.code, s.reason.as_str())),
            Some((403, "Forbidden"))
        );
        assert!(!e.is_not_found());
        let e = e
            .at("sso.generated_secret.dex")
            .at("ignored: the first address stays");
        assert_eq!(
            e.to_string(),
            "sso.generated_secret.dex: Kubernetes API: secrets \"x\" is forbidden (Forbidden, 403)"
        );
        assert!(api(404, "NotFound", "gone").is_not_found());
    }

    #[test]
    fn immutability_is_read_from_the_status_causes() {
        let status = kube::core::Status {
            code: 422,
            reason: "Invalid".into(),
            message: "Deployment.apps \"web\" is invalid".into(),
            details: Some(kube::core::response::StatusDetails {
                causes: vec![kube::core::response::StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: {}: field is immutable".into(),
                    field: "spec.selector".into(),
                }],
                name: "web".into(),
                group: "apps".into(),
                kind: "deployments".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            }),
            ..Default::default()
        };
        let parsed = ApiStatus::from(&status);
        assert!(parsed.is_invalid() && parsed.immutable);
        assert!(
            !ApiStatus::from(&kube::core::Status {
                code: 422,
                message: "spec.replicas: Invalid value: -1".into(),
                ..Default::default()
            })
            .immutable
        );
    }

    #[test]
    fn a_conflict_at_an_address_says_how_to_take_the_fields_over() {
        let conflict = Conflict {
            managers: vec!["kubectl-edit".into()],
            fields: vec![".spec.replicas".into()],
            message: "Apply failed with 1 conflict".into(),
        };
        let bare = LiveError::Conflict {
            address: None,
            conflict: conflict.clone(),
        };
        assert_eq!(
            bare.to_string(),
            "conflict with field manager(s) kubectl-edit: Apply failed with 1 conflict"
        );
        assert_eq!(
            bare.at("gateway.object.deployment/default/nginx")
                .to_string(),
            "gateway.object.deployment/default/nginx: field manager kubectl-edit owns \
             .spec.replicas; run apply with --force-conflicts to take them over"
        );
    }

    #[test]
    fn failures_of_an_apply_are_listed_each_with_its_address() {
        let e = LiveError::Failed {
            failures: vec![
                api(500, "InternalError", "etcd").at("a.object.x"),
                LiveError::config("b.helm_release.y", "no chart source"),
            ],
            not_started: vec!["c.object.z".into()],
        };
        assert_eq!(
            e.to_string(),
            "a.object.x: Kubernetes API: etcd (InternalError, 500)\n\
             b.helm_release.y: no chart source\n\
             not started: c.object.z"
        );
    }
}
