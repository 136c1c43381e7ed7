//! The whole flow of a command against an environment, in one place below the CLI: find the
//! cluster (or plan its creation), take the environment's lock, plan, check a saved plan, ask,
//! apply, record, release. The CLI calls one function per command and hands in what only it
//! knows: how to show a plan, how to ask, where progress goes ([`Callbacks`]), and the
//! process's signals ([`Interrupt`]). It gets back an [`Outcome`] to print and turn into an
//! exit code.
//!
//! Knows no particular module: `--module M` restricts the runner to M's resources, through
//! the module's own commands ([`ModuleCommands`], [`Session::restricted_to`]).
//!
//! Invariants:
//! - Every command that writes (apply, destroy, rotate-secret) holds the environment's lock
//!   from before its plan until after its last write; plan holds it unless told not to.
//! - A saved plan is applied only if planning now gives the same digests ([`saved`]).
//! - An interrupt stops between two steps: what was done is recorded, the lock released.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use engine::{Action, Address, ClusterSpec, Graph, Plan, ResourceKind, ResourceSpec};

use crate::helm::Helm;
use crate::progress::{Progress, Step};
use crate::provider::{self, Destroyed, Target};
use crate::runner::{ApplyReport, RunOptions, Runner};
use crate::sources::Sources;
use crate::{Cluster, LiveError};

pub mod interrupt;
pub mod lock;
mod module;
pub mod saved;

pub use interrupt::Interrupt;
pub use lock::{Holder, Lock, LockError, Lost};
pub use module::ModuleCommands;
pub use saved::StalePlan;

/// What the CLI hands in: how progress, plans and questions reach the user.
#[derive(Clone, Copy)]
pub struct Callbacks<'a> {
    /// A progress event (shown as `address: Creating...`).
    pub progress: &'a crate::progress::Reporter,
    /// Shows a plan before it is confirmed or applied.
    pub show_plan: &'a (dyn Fn(&Plan) + Send + Sync),
    /// Asks a yes/no question; `Err` when it cannot be asked (no terminal). Should give up
    /// (answer no) when a signal arrives while it waits.
    pub confirm: &'a (dyn Fn(&str, &Interrupt) -> Result<bool, String> + Send + Sync),
}

/// How a session runs.
#[derive(Clone, Default)]
pub struct SessionOptions {
    /// Kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Parallel API requests at most.
    pub concurrency: usize,
    /// Changes apply makes at once at most (0: the default, as Terraform's 10).
    pub parallelism: usize,
    /// Take over fields of objects envctl does not own.
    pub force_conflicts: bool,
    /// Let apply delete and recreate the cluster.
    pub allow_replace: bool,
    /// Pinned upstream files and repository charts read from here instead of the network.
    pub mirror: Option<PathBuf>,
    /// Only this module's resources (set by [`Session::restricted_to`], what a module's
    /// [`ModuleCommands`] run).
    pub module: Option<String>,
    /// Addresses of existing objects that are not envctl's, to take over (`--adopt`).
    pub adopt: BTreeSet<String>,
    /// Take the environment's lock (plan: `--lock=false` turns it off; writers always lock).
    pub lock: bool,
    /// The command line, recorded in the lock (`apply`, `destroy`, ...).
    pub command: String,
    /// Recorded in saved plans; a plan saved by another version is refused.
    pub envctl_version: String,
    /// The process's signals.
    pub interrupt: Interrupt,
    /// The readiness rules of the modules ([`ModuleCommands::readiness`] of each).
    pub readiness: Vec<&'static dyn crate::ReadinessRule>,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error(transparent)]
    Lock(Box<LockError>),
    #[error(transparent)]
    Stale(#[from] StalePlan),
    #[error("{0}")]
    Refused(String),
}

/// What a command did, for the CLI to print.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to do.
    NoChanges,
    /// The user said no.
    Cancelled,
    /// Applied (`cluster_created`: the cluster was created or replaced first).
    Applied {
        report: ApplyReport,
        cluster_created: bool,
        cluster_deleted: bool,
    },
    /// Destroyed; what happened to the cluster when the whole environment was destroyed.
    Destroyed {
        report: ApplyReport,
        cluster: Option<Destroyed>,
    },
    /// The first signal stopped the run between two steps.
    Interrupted { done: usize, total: usize },
    /// The second signal stopped the run in the middle of a step.
    Aborted,
}

/// One environment's flow.
pub struct Session<'a> {
    graph: &'a Graph,
    environment: String,
    options: SessionOptions,
    ui: Callbacks<'a>,
    /// The lock held now, to release it even when a second signal drops the run.
    held: std::sync::Mutex<Option<lock::LockHandle>>,
}

/// The plan of a session; its saved form is made only when asked for ([`Planned::saved`]).
pub struct Planned {
    pub plan: Plan,
    envctl_version: String,
}

impl Planned {
    /// The text of `plan --out FILE` (digests of every change: seconds for thousands of
    /// objects in a debug build, so not made for a plan that is only shown).
    pub fn saved(&self) -> String {
        saved::save(&self.plan, &self.envctl_version)
    }
}

impl<'a> Session<'a> {
    pub fn new(
        graph: &'a Graph,
        environment: &str,
        options: SessionOptions,
        ui: Callbacks<'a>,
    ) -> Self {
        Session {
            graph,
            environment: environment.to_owned(),
            options,
            ui,
            held: std::sync::Mutex::new(None),
        }
    }

    /// The same session restricted to one module's resources: its plan, apply and destroy
    /// touch nothing else (`--module M`, through [`ModuleCommands`]).
    pub fn restricted_to(&self, module: &str) -> Session<'a> {
        Session::new(
            self.graph,
            &self.environment,
            SessionOptions {
                module: Some(module.to_owned()),
                ..self.options.clone()
            },
            self.ui,
        )
    }

    /// After a second signal dropped the run: release the lock it held, if it can.
    async fn release_held(&self) {
        let handle = self.held.lock().expect("lock slot").take();
        if let Some(handle) = handle {
            let _ = tokio::time::timeout(RELEASE_WITHIN, handle.release()).await;
        }
    }

    /// A "no": the user's, or a signal's while the question was asked.
    fn cancelled(&self, plan: &Plan) -> Outcome {
        if self.options.interrupt.requested() {
            Outcome::Interrupted {
                done: 0,
                total: plan
                    .changes
                    .iter()
                    .filter(|c| c.action != Action::NoOp)
                    .count(),
            }
        } else {
            Outcome::Cancelled
        }
    }

    /// The run's outcome, unless the lock was lost while it ran ([`lock::Lost`]): then the
    /// lock's error, with how far the run got. An error stays the error (when the API server
    /// stopped answering, that is also why the lock could not be renewed).
    fn unless_lost(
        &self,
        lock: &Lock,
        result: Result<Outcome, SessionError>,
    ) -> Result<Outcome, SessionError> {
        let (Ok(outcome), Some(why)) = (&result, lock.lost()) else {
            return result;
        };
        let (done, total) = match outcome {
            Outcome::Interrupted { done, total } => (*done, *total),
            Outcome::Applied { report, .. } | Outcome::Destroyed { report, .. } => {
                (report.done(), report.total)
            }
            _ => (0, 0),
        };
        Err(SessionError::Lock(Box::new(LockError::Lost {
            environment: self.environment.clone(),
            why,
            done,
            total,
        })))
    }

    /// The environment's cluster resource.
    fn cluster_spec(&self) -> Result<(Address, ClusterSpec), SessionError> {
        self.graph
            .resources()
            .find_map(|r| match &r.spec {
                ResourceSpec::Cluster(spec) => Some((r.address.clone(), spec.clone())),
                _ => None,
            })
            .ok_or_else(|| SessionError::Refused("the configuration declares no cluster".into()))
    }

    fn kubeconfig(&self) -> Option<&std::path::Path> {
        self.options.kubeconfig.as_deref()
    }

    fn run_options(&self, context: &str) -> Result<RunOptions, SessionError> {
        let has_releases = self
            .graph
            .resources()
            .any(|r| r.address.kind == ResourceKind::HelmRelease);
        let helm = if has_releases {
            let charts = crate::charts::ChartStore::new(
                self.options.mirror.clone(),
                crate::charts::ChartStore::default_cache(),
            );
            Some(
                Helm::locate(
                    self.options.kubeconfig.clone(),
                    Some(context.to_owned()).filter(|c| !c.is_empty()),
                )
                .map_err(LiveError::from)?
                .with_charts(charts),
            )
        } else {
            None
        };
        Ok(RunOptions {
            concurrency: self.options.concurrency.max(1),
            parallelism: match self.options.parallelism {
                0 => crate::runner::DEFAULT_PARALLELISM,
                n => n,
            },
            force_conflicts: self.options.force_conflicts,
            sources: Sources {
                mirror: self.options.mirror.clone(),
            },
            modules: self.options.module.clone().map(|m| BTreeSet::from([m])),
            helm,
            interrupt: self.options.interrupt.clone(),
            adopt: self.options.adopt.clone(),
            readiness: self.options.readiness.clone(),
            wait: crate::wait::WaitOptions::from_env()?,
        })
    }

    fn runner(&self, cluster: Cluster, spec: &ClusterSpec) -> Result<Runner<'_>, SessionError> {
        let options = self.run_options(&spec.context)?;
        Ok(Runner::new(
            cluster,
            self.graph,
            &self.environment,
            options,
            self.ui.progress,
        ))
    }

    async fn find(&self) -> Result<(Address, ClusterSpec, Target), SessionError> {
        let (address, spec) = self.cluster_spec()?;
        let target = provider::find(&spec, self.kubeconfig()).await?;
        Ok((address, spec, target))
    }

    async fn lock(&self, cluster: &Cluster) -> Result<Lock, SessionError> {
        let lock = lock::acquire(
            cluster.client(),
            &self.environment,
            &self.options.command,
            &self.options.interrupt,
        )
        .await
        .map_err(|e| SessionError::Lock(Box::new(e)))?;
        *self.held.lock().expect("lock slot") = Some(lock.handle());
        Ok(lock)
    }

    /// Takes the lock first thing, before the cluster is looked at (discovery, records), so
    /// that a second run is refused at once. `None` when the cluster cannot be reached this
    /// way (it may not exist yet): the run locks once it is connected.
    async fn lock_early(&self) -> Result<Option<Lock>, SessionError> {
        let (_, spec) = self.cluster_spec()?;
        let Some(client) = lock::quick_client(self.kubeconfig(), &spec.context).await else {
            return Ok(None);
        };
        match lock::acquire(
            &client,
            &self.environment,
            &self.options.command,
            &self.options.interrupt,
        )
        .await
        {
            Ok(lock) => {
                *self.held.lock().expect("lock slot") = Some(lock.handle());
                Ok(Some(lock))
            }
            Err(LockError::Api { .. }) => Ok(None),
            Err(refused) => Err(SessionError::Lock(Box::new(refused))),
        }
    }

    /// A cluster apply cannot create (kwok, existing) must answer before anything else: one
    /// `GET /readyz`, [`ANSWER_WITHIN`] at most, so that a run against a testenv that is down
    /// fails at once with how to start it (connecting would retry for most of a minute first,
    /// as it does for an API server that stalls mid-run). A kubeconfig or context that cannot
    /// be used is left to the connection, which says why.
    async fn check_answers(&self, spec: &ClusterSpec) -> Result<(), SessionError> {
        let Some(client) = lock::quick_client(self.kubeconfig(), provider::context_of(spec)).await
        else {
            return Ok(());
        };
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a valid request");
        let problem = match tokio::time::timeout(ANSWER_WITHIN, client.request_text(request)).await
        {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => format!("GET /readyz: {}", crate::retry::chain_text(&e)),
            Err(_) => format!("no answer to GET /readyz within {ANSWER_WITHIN:?}"),
        };
        Err(provider::unreachable(spec, Some(&problem)).into())
    }

    /// The lock taken early, or taken now on the connected cluster.
    async fn lock_on(&self, cluster: &Cluster, early: Option<Lock>) -> Result<Lock, SessionError> {
        match early {
            Some(lock) => Ok(lock),
            None => self.lock(cluster).await,
        }
    }

    /// The plan when the cluster does not exist yet: every resource created.
    fn plan_from_nothing(&self, reason: &str) -> Result<Plan, SessionError> {
        let mut plan = Plan::offline(self.graph, &self.environment, &self.graph.bindings())
            .map_err(|e| SessionError::Refused(format!("resolving placeholders: {e}")))?;
        plan.changes.retain(|c| {
            self.options
                .module
                .as_deref()
                .is_none_or(|m| c.address.module == m)
        });
        if let Some(first) = plan
            .changes
            .iter_mut()
            .find(|c| c.address.kind == ResourceKind::Cluster)
        {
            first
                .notes
                .push(format!("the cluster does not exist: {reason}"));
        }
        Ok(plan)
    }

    fn planned(&self, plan: Plan) -> Planned {
        Planned {
            plan,
            envctl_version: self.options.envctl_version.clone(),
        }
    }

    /// `plan` (and `drift`): the plan of the environment as the cluster is now; everything
    /// created when it does not exist yet. Holds the lock while planning when asked to.
    pub async fn plan(&self) -> Result<Planned, SessionError> {
        let planned = self.plan_inner().await;
        self.release_held().await;
        planned
    }

    async fn plan_inner(&self) -> Result<Planned, SessionError> {
        let early = match self.options.lock {
            true => self.lock_early().await?,
            false => None,
        };
        let (_, spec, target) = self.find().await?;
        match target {
            Target::Absent { reason } => {
                release(early).await;
                Ok(self.planned(self.plan_from_nothing(&reason)?))
            }
            Target::Connected(cluster) => {
                let lock = match self.options.lock {
                    true => Some(self.lock_on(&cluster, early).await?),
                    false => None,
                };
                let result = self.runner(cluster, &spec)?.plan().await;
                release(lock).await;
                Ok(self.planned(result?))
            }
        }
    }

    /// `render --as-applied`: every object exactly as apply sends it.
    pub async fn sent_objects(&self) -> Result<Vec<serde_json::Value>, SessionError> {
        let (_, spec, target) = self.find().await?;
        match target {
            Target::Absent { reason } => Err(SessionError::Refused(format!(
                "the cluster does not exist ({reason})"
            ))),
            Target::Connected(cluster) => Ok(self.runner(cluster, &spec)?.sent_objects().await?),
        }
    }

    fn check_saved(&self, saved: Option<&SavedPlan>, fresh: &Plan) -> Result<(), SessionError> {
        if let Some(s) = saved {
            saved::check(&s.file, &s.text, fresh, &self.options.envctl_version)?;
        }
        Ok(())
    }

    fn ask(&self, question: &str) -> Result<bool, SessionError> {
        (self.ui.confirm)(question, &self.options.interrupt).map_err(SessionError::Refused)
    }

    /// `apply`: plan, show, check the saved plan or ask, apply. Creates the cluster first when
    /// it does not exist (kind), replaces it when its spec changed and that is allowed.
    pub async fn apply(&self, saved: Option<&SavedPlan>) -> Result<Outcome, SessionError> {
        let interrupt = self.options.interrupt.clone();
        let outcome = tokio::select! {
            outcome = self.apply_inner(saved) => outcome,
            () = interrupt.forced() => Ok(Outcome::Aborted),
        };
        // Whatever ended the run (an error, a second signal), the lock does not outlive it.
        self.release_held().await;
        outcome
    }

    async fn apply_inner(&self, saved: Option<&SavedPlan>) -> Result<Outcome, SessionError> {
        let (_, spec) = self.cluster_spec()?;
        if !provider::creates(&spec) {
            self.check_answers(&spec).await?;
        }
        let early = self.lock_early().await?;
        let (address, spec, target) = self.find().await?;
        let (cluster, created) = match target {
            Target::Connected(cluster) => (cluster, false),
            // A cluster apply cannot create: refused before a plan is shown or confirmed.
            Target::Absent { reason } if !provider::creates(&spec) => {
                return Err(provider::unreachable(&spec, Some(&reason)).into());
            }
            Target::Absent { reason } => {
                let plan = self.plan_from_nothing(&reason)?;
                self.check_saved(saved, &plan)?;
                (self.ui.show_plan)(&plan);
                if saved.is_none() && !self.ask("Do you want to perform these actions?")? {
                    return Ok(self.cancelled(&plan));
                }
                (self.create_cluster(&address, &spec).await?, true)
            }
        };
        let lock = self.lock_on(&cluster, early).await?;
        let result = self
            .apply_locked(cluster, &address, &spec, saved, created)
            .await;
        let result = self.unless_lost(&lock, result);
        release(Some(lock)).await;
        result
    }

    async fn create_cluster(
        &self,
        address: &Address,
        spec: &ClusterSpec,
    ) -> Result<Cluster, SessionError> {
        let start = Instant::now();
        (self.ui.progress)(&Progress::Started {
            address: address.to_string(),
            step: Step::Create,
        });
        let cluster = provider::create(spec, self.kubeconfig(), &self.environment, address).await?;
        (self.ui.progress)(&Progress::Done {
            address: address.to_string(),
            step: Step::Create,
            elapsed: start.elapsed(),
        });
        Ok(cluster)
    }

    async fn apply_locked(
        &self,
        cluster: Cluster,
        address: &Address,
        spec: &ClusterSpec,
        saved: Option<&SavedPlan>,
        created: bool,
    ) -> Result<Outcome, SessionError> {
        let runner = self.runner(cluster, spec)?;
        let plan = runner.plan().await?;
        if !created {
            self.check_saved(saved, &plan)?;
            (self.ui.show_plan)(&plan);
            if !plan.has_changes() {
                return Ok(Outcome::NoChanges);
            }
            let replace = plan.changes.iter().find(|c| {
                c.address.kind == ResourceKind::Cluster
                    && matches!(c.action, Action::Replace { .. })
            });
            if let Some(change) = replace {
                if !self.options.allow_replace {
                    return Err(SessionError::Refused(format!(
                        "{} must be replaced ({}), which deletes everything in it; apply refuses \
                         without --allow-replace (or change the configuration back)",
                        change.address,
                        change.action.reason().unwrap_or_default()
                    )));
                }
                if !self.ask("Do you want to delete and recreate the cluster?")? {
                    return Ok(Outcome::Cancelled);
                }
                return self.replace_cluster(address, spec).await;
            }
            if saved.is_none() && !self.ask("Do you want to perform these actions?")? {
                return Ok(self.cancelled(&plan));
            }
        }
        Ok(applied(runner.apply(&plan).await?, created, false))
    }

    /// Deletes the cluster (only one envctl created), creates it anew and applies everything.
    async fn replace_cluster(
        &self,
        address: &Address,
        spec: &ClusterSpec,
    ) -> Result<Outcome, SessionError> {
        match provider::destroy(spec, self.kubeconfig()).await? {
            kept @ Destroyed::Kept { .. } => {
                return Err(SessionError::Refused(format!(
                    "{kept}; delete it yourself to replace it"
                )));
            }
            destroyed @ Destroyed::Deleted { .. } => {
                (self.ui.progress)(&Progress::ClusterDestroyed {
                    address: address.to_string(),
                    destroyed,
                });
            }
        }
        let cluster = self.create_cluster(address, spec).await?;
        let lock = self.lock(&cluster).await?;
        let runner = self.runner(cluster, spec)?;
        let result = async {
            let plan = runner.plan().await?;
            Ok(applied(runner.apply(&plan).await?, true, true))
        }
        .await;
        let result = self.unless_lost(&lock, result);
        release(Some(lock)).await;
        result
    }

    /// `destroy`: delete what this environment owns, in reverse order, then the cluster if
    /// envctl created it (the whole environment only).
    pub async fn destroy(&self) -> Result<Outcome, SessionError> {
        let interrupt = self.options.interrupt.clone();
        let outcome = tokio::select! {
            outcome = self.destroy_inner() => outcome,
            () = interrupt.forced() => Ok(Outcome::Aborted),
        };
        // Whatever ended the run (an error, a second signal), the lock does not outlive it.
        self.release_held().await;
        outcome
    }

    async fn destroy_inner(&self) -> Result<Outcome, SessionError> {
        let early = self.lock_early().await?;
        let (_, spec, target) = self.find().await?;
        let Target::Connected(cluster) = target else {
            release(early).await;
            return Ok(Outcome::NoChanges);
        };
        let lock = self.lock_on(&cluster, early).await?;
        let runner = self.runner(cluster, &spec)?;
        // The whole environment, or the module that declares the cluster.
        let cluster_module = self.cluster_spec()?.0.module;
        let whole = self
            .options
            .module
            .as_deref()
            .is_none_or(|m| m == cluster_module);
        let result = async {
            let plan = runner.plan_destroy().await?;
            (self.ui.show_plan)(&plan);
            if !plan.has_changes() && !whole {
                return Ok(None);
            }
            if !self.ask("Do you really want to destroy all resources?")? {
                return Ok(Some(self.cancelled(&plan)));
            }
            let report = runner.destroy(&plan).await?;
            if report.interrupted {
                return Ok(Some(Outcome::Interrupted {
                    done: report.done(),
                    total: report.total,
                }));
            }
            Ok::<_, SessionError>(Some(Outcome::Destroyed {
                report,
                cluster: None,
            }))
        }
        .await;
        let result = match result {
            Ok(Some(outcome)) => self.unless_lost(&lock, Ok(outcome)).map(Some),
            other => other,
        };
        // The lock lives in the cluster: released before the cluster goes.
        release(Some(lock)).await;
        match result? {
            None => Ok(Outcome::NoChanges),
            Some(Outcome::Destroyed { report, .. }) if whole => Ok(Outcome::Destroyed {
                report,
                cluster: Some(provider::destroy(&spec, self.kubeconfig()).await?),
            }),
            Some(other) => Ok(other),
        }
    }

    /// `rotate-secret`: new values for the generated keys `keys` of the generated secret at
    /// `address` (all when empty), then a restart of the Deployments that read it. Returns the
    /// keys rotated and the workloads restarted.
    pub async fn rotate_secret(
        &self,
        address: &Address,
        keys: &[String],
    ) -> Result<Option<(Vec<String>, Vec<String>)>, SessionError> {
        let Some(ResourceSpec::GeneratedSecret(secret)) =
            self.graph.resource(address).map(|r| &r.spec)
        else {
            let known: Vec<String> = self
                .graph
                .resources()
                .filter(|r| r.address.kind == ResourceKind::GeneratedSecret)
                .map(|r| r.address.to_string())
                .collect();
            return Err(SessionError::Refused(format!(
                "`{address}` is not a generated secret of this environment (generated secrets: {})",
                known.join(", ")
            )));
        };
        let keys: Vec<String> = if keys.is_empty() {
            secret.generated.keys().cloned().collect()
        } else {
            keys.to_vec()
        };
        let (_, _, target) = self.find().await?;
        let Target::Connected(cluster) = target else {
            return Err(SessionError::Refused(format!(
                "the cluster of environment `{}` does not exist",
                self.environment
            )));
        };
        let lock = self.lock(&cluster).await?;
        let result = async {
            let question = format!(
                "Rotate {} of Secret {}/{}? Workloads that read it restart.",
                keys.join(", "),
                secret.namespace,
                secret.name
            );
            if !self.ask(&question)? {
                return Ok(None);
            }
            crate::secrets::rotate(&cluster, secret, &keys, &self.environment, address).await?;
            let restarted =
                crate::secrets::restart_readers(&cluster, &secret.namespace, &secret.name).await?;
            Ok::<_, SessionError>(Some((keys.clone(), restarted)))
        }
        .await;
        release(Some(lock)).await;
        result
    }

    /// `force-unlock ID`: removes the environment's lock if its ID is `id`; returns its holder.
    pub async fn force_unlock(&self, id: &str) -> Result<Option<Holder>, SessionError> {
        let (_, _, target) = self.find().await?;
        let Target::Connected(cluster) = target else {
            return Err(SessionError::Refused(format!(
                "the cluster of environment `{}` does not exist",
                self.environment
            )));
        };
        Ok(lock::force_unlock(&cluster, &self.environment, id).await?)
    }
}

/// A plan file given to `apply`.
pub struct SavedPlan {
    /// Its path, as the user wrote it (for messages).
    pub file: String,
    pub text: String,
}

fn applied(report: ApplyReport, cluster_created: bool, cluster_deleted: bool) -> Outcome {
    if report.interrupted {
        Outcome::Interrupted {
            done: report.done(),
            total: report.total,
        }
    } else {
        Outcome::Applied {
            report,
            cluster_created,
            cluster_deleted,
        }
    }
}

/// How long releasing the lock may take. The renewal has stopped by then, so a lock that could
/// not be deleted (an API server that stopped answering, which is often why the run ended)
/// expires by itself within its lease duration; waiting out the request retries for it would
/// only hold the user's terminal.
const RELEASE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long apply waits for a cluster it cannot create to answer its first request (as
/// `cargo xtask doctor`'s `kubectl --request-timeout 5s get --raw /readyz`).
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Releases a lock; a failure leaves it to expire (the run's result matters more).
async fn release(lock: Option<Lock>) {
    if let Some(lock) = lock {
        let _ = tokio::time::timeout(RELEASE_WITHIN, lock.release()).await;
    }
}
