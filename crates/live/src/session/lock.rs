//! One lock per environment: a `coordination.k8s.io/v1` Lease in `kube-public`, named for the
//! environment, taken by every run that may write (and by `plan` unless told not to).
//!
//! - Taken with a create (the API server refuses a second one: `409 AlreadyExists`), or by
//!   replacing an expired Lease with its `resourceVersion` as precondition, so two runs never
//!   both win.
//! - Renewed every [`RENEW_EVERY`] while the run lives; a holder that died stops renewing, and
//!   its Lease is taken over once `renewTime + leaseDurationSeconds` has passed.
//! - Says who holds it: `holderIdentity` is the lock's ID; annotations hold user, host, pid,
//!   command and start time.
//! - Released by deleting it with the Lease's `uid` as precondition (never someone else's).
//! - Watched while held: when a renewal finds the Lease gone (`force-unlock`) or someone
//!   else's, or no renewal succeeded for the Lease's whole duration (so another run may have
//!   taken it), the lock is [`Lost`]: the run is asked to stop after the steps in flight, as a
//!   first Ctrl-C does, and ends with an error that says why.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use std::sync::{Arc, OnceLock};

use tokio::task::JoinHandle;

use super::Interrupt;
use crate::{Cluster, LiveError};

/// The namespace of the locks (every cluster has it).
pub const LOCK_NAMESPACE: &str = "kube-public";
/// How long a Lease lives without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(30);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Annotation keys of the holder's description.
pub const USER_ANNOTATION: &str = "envctl.dev/lock-user";
pub const HOST_ANNOTATION: &str = "envctl.dev/lock-host";
pub const PID_ANNOTATION: &str = "envctl.dev/lock-pid";
pub const COMMAND_ANNOTATION: &str = "envctl.dev/lock-command";
pub const SINCE_ANNOTATION: &str = "envctl.dev/lock-since";

/// The Lease's name for an environment.
pub fn lease_name(environment: &str) -> String {
    format!("envctl-lock-{environment}")
}

/// Who holds a lock, as read from its Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The lock's ID (`holderIdentity`), what `force-unlock` takes.
    pub id: String,
    pub user: String,
    pub host: String,
    pub pid: String,
    pub command: String,
    /// Seconds since the lock was taken.
    pub age: u64,
    /// Seconds until it expires unless renewed.
    pub expires_in: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` by {}@{} (pid {}), taken {}s ago, lock ID {}",
            self.command, self.user, self.host, self.pid, self.age, self.id
        )
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "environment `{environment}` is locked: {holder}. Wait for it to finish; if its run died, the lock expires in {expires_in}s unless renewed, or remove it with `cargo xtask force-unlock {id} --env ...`",
        expires_in = .holder.expires_in, id = .holder.id
    )]
    Held { environment: String, holder: Holder },
    #[error("taking the lock of environment `{environment}`: {source}")]
    Api {
        environment: String,
        #[source]
        source: LiveError,
    },
    #[error(
        "the lock of environment `{environment}` was lost during the run: {why}. The run stopped \
         after the steps in flight ({done} of {total} changes done, recorded); another run may \
         have changed the environment meanwhile: run `cargo xtask plan` to see where it stands"
    )]
    Lost {
        environment: String,
        why: Lost,
        done: usize,
        total: usize,
    },
}

/// Why a held lock stopped being this run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// The Lease was deleted (`force-unlock`).
    Removed,
    /// The Lease now names another holder.
    TakenBy(String),
    /// No renewal succeeded for the Lease's whole duration: another run may take it.
    NotRenewed { seconds: u64, error: String },
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Removed => write!(f, "its Lease was removed (force-unlock?)"),
            Lost::TakenBy(holder) => write!(f, "its Lease is now held by {holder}"),
            Lost::NotRenewed { seconds, error } => write!(
                f,
                "it could not be renewed for {seconds}s, so another run may take it (last error: {error})"
            ),
        }
    }
}

/// A lock this run holds. Released by [`Lock::release`]; if the run dies, it expires.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    id: String,
    renewer: JoinHandle<()>,
    lost: Arc<OnceLock<Lost>>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn description(command: &str) -> (String, [(String, String); 5]) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let pid = std::process::id().to_string();
    let since = now();
    let nonce: u32 = rand::random();
    let id = format!("{}-{pid}-{nonce:08x}", since.as_second());
    (
        id,
        [
            (USER_ANNOTATION.into(), user),
            (HOST_ANNOTATION.into(), host),
            (PID_ANNOTATION.into(), pid),
            (COMMAND_ANNOTATION.into(), command.into()),
            (SINCE_ANNOTATION.into(), since.to_string()),
        ],
    )
}

/// Reads who holds a Lease and how long it has left.
pub fn holder_of(lease: &Lease, at: Timestamp) -> Holder {
    let annotations = lease.metadata.annotations.clone().unwrap_or_default();
    let get = |k: &str| annotations.get(k).cloned().unwrap_or_else(|| "?".into());
    let spec = lease.spec.clone().unwrap_or_default();
    let since = annotations
        .get(SINCE_ANNOTATION)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .or(spec.acquire_time.as_ref().map(|t| t.0))
        .unwrap_or(at);
    let renewed = spec.renew_time.as_ref().map(|t| t.0).unwrap_or(since);
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let expires = renewed.as_second() + duration;
    Holder {
        id: spec.holder_identity.unwrap_or_else(|| "?".into()),
        user: get(USER_ANNOTATION),
        host: get(HOST_ANNOTATION),
        pid: get(PID_ANNOTATION),
        command: get(COMMAND_ANNOTATION),
        age: u64::try_from(at.as_second() - since.as_second()).unwrap_or(0),
        expires_in: u64::try_from(expires - at.as_second()).unwrap_or(0),
    }
}

/// True once nobody renewed the Lease for its duration.
pub fn is_expired(lease: &Lease, at: Timestamp) -> bool {
    let spec = lease.spec.clone().unwrap_or_default();
    let Some(renewed) = spec.renew_time.or(spec.acquire_time) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.0.as_second() + duration < at.as_second()
}

fn lease(name: &str, id: &str, annotations: &[(String, String); 5]) -> Lease {
    let t = now();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(LOCK_NAMESPACE.to_owned()),
            annotations: Some(annotations.iter().cloned().collect()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(id.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(MicroTime(t)),
            renew_time: Some(MicroTime(t)),
            ..LeaseSpec::default()
        }),
    }
}

fn api_error(environment: &str, e: kube::Error) -> LockError {
    LockError::Api {
        environment: environment.to_owned(),
        source: e.into(),
    }
}

/// Takes the lock of `environment` for `command` (e.g. `apply`), or says who holds it. One
/// try, no waiting: a second run is refused at once.
///
/// `stop` is asked to stop the run (as a first signal does) if the lock is lost while held.
pub async fn acquire(
    client: &kube::Client,
    environment: &str,
    command: &str,
    stop: &Interrupt,
) -> Result<Lock, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LOCK_NAMESPACE);
    let name = lease_name(environment);
    let (id, annotations) = description(command);
    let wanted = lease(&name, &id, &annotations);
    // Two rounds: the second when the Lease vanished or expired between our reads.
    for _ in 0..3 {
        match api.create(&PostParams::default(), &wanted).await {
            Ok(_) => return Ok(Lock::hold(api, name, id, stop.clone())),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(api_error(environment, e)),
        }
        let Some(current) = api
            .get_opt(&name)
            .await
            .map_err(|e| api_error(environment, e))?
        else {
            continue;
        };
        if !is_expired(&current, now()) {
            return Err(LockError::Held {
                environment: environment.to_owned(),
                holder: holder_of(&current, now()),
            });
        }
        // Expired: take it over, only if nobody else did in between.
        let mut takeover = wanted.clone();
        takeover.metadata.resource_version = current.metadata.resource_version.clone();
        match api.replace(&name, &PostParams::default(), &takeover).await {
            Ok(_) => return Ok(Lock::hold(api, name, id, stop.clone())),
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => continue,
            Err(e) => return Err(api_error(environment, e)),
        }
    }
    let current = api
        .get_opt(&name)
        .await
        .map_err(|e| api_error(environment, e))?;
    Err(match current {
        Some(current) => LockError::Held {
            environment: environment.to_owned(),
            holder: holder_of(&current, now()),
        },
        None => LockError::Api {
            environment: environment.to_owned(),
            source: LiveError::Contended {
                what: format!("{LOCK_NAMESPACE}/{name}"),
                attempts: 3,
            },
        },
    })
}

impl Lock {
    fn hold(api: Api<Lease>, name: String, id: String, stop: Interrupt) -> Lock {
        let lost = Arc::new(OnceLock::new());
        let renewer = tokio::spawn({
            let (api, name, id, lost) = (api.clone(), name.clone(), id.clone(), lost.clone());
            async move {
                let mut watch = Renewals::new(tokio::time::Instant::now());
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let result = renew(&api, &name, &id).await;
                    // A failed renewal is tried again at the next tick; the Lease outlives
                    // several missed ones, but not its whole duration.
                    if let Some(why) = watch.record(result, tokio::time::Instant::now()) {
                        let _ = lost.set(why);
                        stop.request_stop();
                        return;
                    }
                }
            }
        });
        Lock {
            api,
            name,
            id,
            renewer,
            lost,
        }
    }

    /// Why the lock was lost while held, if it was (see [`Lost`]).
    pub fn lost(&self) -> Option<Lost> {
        self.lost.get().cloned()
    }

    /// The lock's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What releases it without the lock itself (after the run holding it was dropped).
    pub fn handle(&self) -> LockHandle {
        LockHandle {
            api: self.api.clone(),
            name: self.name.clone(),
            id: self.id.clone(),
        }
    }

    /// Stops renewing and deletes the Lease if it is still ours.
    pub async fn release(self) -> Result<(), LiveError> {
        self.renewer.abort();
        remove(&self.api, &self.name, Some(&self.id))
            .await
            .map(|_| ())
    }
}

/// Releases a lock from outside the run that holds it.
pub struct LockHandle {
    api: Api<Lease>,
    name: String,
    id: String,
}

impl LockHandle {
    /// Deletes the Lease if it is still this lock's.
    pub async fn release(&self) -> Result<(), LiveError> {
        remove(&self.api, &self.name, Some(&self.id))
            .await
            .map(|_| ())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Not released (an error unwound the run): stop renewing, so that it expires.
        self.renewer.abort();
    }
}

/// What one renewal found.
#[derive(Debug)]
enum Renewal {
    Renewed,
    Gone,
    Taken(String),
}

async fn renew(api: &Api<Lease>, name: &str, id: &str) -> Result<Renewal, kube::Error> {
    let Some(mut current) = api.get_opt(name).await? else {
        return Ok(Renewal::Gone);
    };
    if current
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        != Some(id)
    {
        return Ok(Renewal::Taken(holder_of(&current, now()).to_string()));
    }
    let spec = current.spec.get_or_insert_with(LeaseSpec::default);
    spec.renew_time = Some(MicroTime(now()));
    api.replace(name, &PostParams::default(), &current).await?;
    Ok(Renewal::Renewed)
}

/// The renewals of a held lock, in order: tells when the lock is lost.
struct Renewals {
    last_renewed: tokio::time::Instant,
}

impl Renewals {
    fn new(taken: tokio::time::Instant) -> Renewals {
        Renewals {
            last_renewed: taken,
        }
    }

    /// Records one renewal's result at `at`; `Some` once the lock is lost. A `409 Conflict`
    /// (someone wrote the Lease between our read and write) is a failed renewal like any other:
    /// the next one reads who holds it.
    fn record(
        &mut self,
        result: Result<Renewal, kube::Error>,
        at: tokio::time::Instant,
    ) -> Option<Lost> {
        match result {
            Ok(Renewal::Renewed) => {
                self.last_renewed = at;
                None
            }
            Ok(Renewal::Gone) => Some(Lost::Removed),
            Ok(Renewal::Taken(holder)) => Some(Lost::TakenBy(holder)),
            Err(error) => {
                let since = at.duration_since(self.last_renewed);
                (since >= LEASE_DURATION).then(|| Lost::NotRenewed {
                    seconds: since.as_secs(),
                    error: error.to_string(),
                })
            }
        }
    }
}

/// Deletes the Lease `name` when its holder is `id` (any holder when `None`); returns whether a
/// Lease was deleted.
async fn remove(api: &Api<Lease>, name: &str, id: Option<&str>) -> Result<bool, LiveError> {
    let Some(current) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let holder = current
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    if id.is_some_and(|id| id != holder) {
        return Ok(false);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: current.metadata.uid.clone(),
            resource_version: current.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A client for `context` of `kubeconfig` without discovery or any request: what taking the
/// lock needs, so that a second run is refused before it does anything else. `None` when the
/// kubeconfig or context cannot be used (the run then finds out why, and locks later).
pub async fn quick_client(
    kubeconfig: Option<&std::path::Path>,
    context: &str,
) -> Option<kube::Client> {
    let file = match kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    }
    .ok()?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_owned()).filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(file, &options)
        .await
        .ok()?;
    kube::Client::try_from(config).ok()
}

/// Who holds the lock of `environment`, if anyone.
pub async fn current(cluster: &Cluster, environment: &str) -> Result<Option<Holder>, LiveError> {
    let api: Api<Lease> = Api::namespaced(cluster.client().clone(), LOCK_NAMESPACE);
    Ok(api
        .get_opt(&lease_name(environment))
        .await?
        .map(|l| holder_of(&l, now())))
}

/// `force-unlock ID`: removes the lock of `environment` if its ID is `id`.
pub async fn force_unlock(
    cluster: &Cluster,
    environment: &str,
    id: &str,
) -> Result<Option<Holder>, LiveError> {
    let api: Api<Lease> = Api::namespaced(cluster.client().clone(), LOCK_NAMESPACE);
    let name = lease_name(environment);
    let Some(lease) = api.get_opt(&name).await? else {
        return Err(LiveError::Lock(format!(
            "environment `{environment}` is not locked"
        )));
    };
    let holder = holder_of(&lease, now());
    if holder.id != id {
        return Err(LiveError::Lock(format!(
            "the lock of environment `{environment}` has ID {}, not {id} (held by {holder})",
            holder.id
        )));
    }
    Ok(remove(&api, &name, Some(id)).await?.then_some(holder))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease_at(renewed: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                annotations: Some(
                    [
                        (USER_ANNOTATION.to_owned(), "ana".to_owned()),
                        (HOST_ANNOTATION.to_owned(), "box".to_owned()),
                        (PID_ANNOTATION.to_owned(), "42".to_owned()),
                        (COMMAND_ANNOTATION.to_owned(), "apply".to_owned()),
                        (
                            SINCE_ANNOTATION.to_owned(),
                            Timestamp::from_second(renewed - 10).unwrap().to_string(),
                        ),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("id-1".into()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..LeaseSpec::default()
            }),
        }
    }

    fn failed() -> Result<Renewal, kube::Error> {
        Err(kube::Error::Api(Box::new(
            kube::core::Status::failure("etcdserver: request timed out", "Timeout").with_code(504),
        )))
    }

    #[test]
    fn failed_renewals_lose_the_lock_only_after_the_lease_duration() {
        let start = tokio::time::Instant::now();
        let mut renewals = Renewals::new(start);
        assert_eq!(renewals.record(failed(), start + RENEW_EVERY), None);
        let renewed = start + RENEW_EVERY * 2;
        assert_eq!(renewals.record(Ok(Renewal::Renewed), renewed), None);
        // Failures for less than the duration since the last renewal: still ours.
        let almost = renewed + LEASE_DURATION - Duration::from_secs(1);
        assert_eq!(renewals.record(failed(), almost), None);
        let lost = renewals.record(failed(), renewed + LEASE_DURATION);
        match lost {
            Some(Lost::NotRenewed { seconds, error }) => {
                assert_eq!(seconds, LEASE_DURATION.as_secs());
                assert!(error.contains("request timed out"), "{error}");
            }
            other => panic!("expected NotRenewed, got {other:?}"),
        }
    }

    #[test]
    fn a_removed_or_taken_lease_is_lost_at_once() {
        let start = tokio::time::Instant::now();
        let mut renewals = Renewals::new(start);
        assert_eq!(
            renewals.record(Ok(Renewal::Gone), start + RENEW_EVERY),
            Some(Lost::Removed)
        );
        let holder = holder_of(&lease_at(1_000, 30), Timestamp::from_second(1_005).unwrap());
        let taken = renewals.record(Ok(Renewal::Taken(holder.to_string())), start + RENEW_EVERY);
        let Some(why @ Lost::TakenBy(_)) = taken else {
            panic!("expected TakenBy, got {taken:?}");
        };
        assert!(why.to_string().contains("lock ID id-1"), "{why}");
    }

    #[test]
    fn a_lease_expires_after_its_duration_without_renewal() {
        let lease = lease_at(1_000, 30);
        assert!(!is_expired(&lease, Timestamp::from_second(1_030).unwrap()));
        assert!(is_expired(&lease, Timestamp::from_second(1_031).unwrap()));
    }

    #[test]
    fn the_holder_says_who_where_what_and_since_when() {
        let holder = holder_of(&lease_at(1_000, 30), Timestamp::from_second(1_005).unwrap());
        assert_eq!(holder.id, "id-1");
        assert_eq!(holder.age, 15);
        assert_eq!(holder.expires_in, 25);
        let text = holder.to_string();
        for part in ["`apply`", "ana@box", "pid 42", "15s ago", "id-1"] {
            assert!(text.contains(part), "{text} names {part}");
        }
    }
}
