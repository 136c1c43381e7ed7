//! Commands that talk to the live cluster: `plan`, `apply`, `destroy`, `drift`,
//! `rotate-secret`, `force-unlock`, `render --as-applied`. Each parses, builds a
//! [`live::session::Session`] (the flow lives there), hands in how to print and ask, and turns
//! the outcome into output and an exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use engine::Plan;
use live::session::{Callbacks, Interrupt, Outcome, SavedPlan, Session, SessionOptions};

use crate::cli::{LiveArgs, OutputFormat, PlanArgs, RenderArgs, exit_code, print_plan};
use crate::environment::{self, Loaded};

/// Exit code of a run stopped by a signal (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Take ownership of fields that another field manager owns on objects envctl does not own.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Let apply delete and recreate the cluster when its spec changed (everything in it is lost).
    #[arg(long)]
    pub allow_replace: bool,
    /// A plan saved with `plan --out`: applied only if the configuration and the cluster have
    /// not changed since.
    #[arg(value_name = "PLAN_FILE")]
    pub plan_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Destroy without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(clap::Args, Debug)]
pub struct DriftArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// `text` (for people) or `json` (schema: crates/engine/PLAN_JSON.md).
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// The generated secret, e.g. `sso.generated_secret.oauth2-proxy`.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// Only these keys (default: every generated key).
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Rotate without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(clap::Args, Debug)]
pub struct ForceUnlockArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// The lock's ID, as the refused run printed it.
    #[arg(value_name = "ID")]
    pub id: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The kubeconfig of an environment: `--kubeconfig`, else for provider kwok without
/// `$KUBECONFIG` the testenv's, else the default (`$KUBECONFIG`, `~/.kube/config`).
fn kubeconfig(loaded: &Loaded, args: &LiveArgs) -> Option<PathBuf> {
    args.kubeconfig.clone().or_else(|| {
        let cluster = cluster::settings(&loaded.env).ok()?;
        (cluster.provider == cluster::Provider::Kwok && std::env::var_os("KUBECONFIG").is_none())
            .then(|| testenv_kubeconfig(&cluster.name))
            .flatten()
    })
}

/// The offline mirror of pinned files and charts: `--mirror`/`ENVCTL_MIRROR`, else for the
/// testenv (provider kwok, which has no network by design) the testenv's mirror.
fn mirror(loaded: &Loaded, args: &LiveArgs) -> Option<PathBuf> {
    args.mirror.clone().or_else(|| {
        is_kwok(loaded)
            .then(|| crate::testenv::Layout::discover().ok())
            .flatten()
            .map(|layout| layout.mirror_dir())
            .filter(|dir| dir.is_dir())
    })
}

/// Whether the environment runs on the test control plane (provider kwok).
fn is_kwok(loaded: &Loaded) -> bool {
    cluster::settings(&loaded.env).is_ok_and(|c| c.provider == cluster::Provider::Kwok)
}

/// The kubeconfig `cargo xtask testenv up` writes for a kwok cluster of that name, if it exists.
fn testenv_kubeconfig(cluster: &str) -> Option<PathBuf> {
    let layout = crate::testenv::Layout::discover().ok()?;
    let path = layout
        .cache
        .join("kwok/clusters")
        .join(cluster)
        .join("kubeconfig.yaml");
    path.exists().then_some(path)
}

fn session_options(
    loaded: &Loaded,
    args: &LiveArgs,
    command: &str,
    interrupt: Interrupt,
) -> anyhow::Result<SessionOptions> {
    Ok(SessionOptions {
        kubeconfig: kubeconfig(loaded, args),
        concurrency: args.concurrency,
        parallelism: args.parallelism,
        mirror: mirror(loaded, args),
        adopt: args.adopt.iter().cloned().collect(),
        lock: true,
        command: command.to_owned(),
        envctl_version: env!("CARGO_PKG_VERSION").to_owned(),
        interrupt,
        readiness: xtask::readiness_rules(),
        ..SessionOptions::default()
    })
}

/// The module `--module` names: the command runs through its own plan, apply or destroy.
fn module(args: &LiveArgs) -> anyhow::Result<Option<&'static dyn xtask::Module>> {
    args.module
        .as_deref()
        .map(environment::find_module)
        .transpose()
}

/// `plan` of the whole environment, or of the module `--module` names.
async fn plan_of(
    module: Option<&dyn xtask::Module>,
    session: &Session<'_>,
) -> anyhow::Result<live::session::Planned> {
    Ok(match module {
        Some(m) => m.plan(session).await?,
        None => session.plan().await?,
    })
}

fn progress(event: &live::Progress) {
    crate::live_line::progress(event);
}

fn show_plan(plan: &Plan) {
    if let Err(e) = print_plan(plan, OutputFormat::Text) {
        eprintln!("error: printing the plan: {e}");
    }
}

fn show_nothing(_: &Plan) {}

/// Asks for `yes` on a terminal; refuses without one unless `auto_approve`. A signal while
/// waiting for the answer is a no.
fn confirm(question: &str, auto_approve: bool, interrupt: &Interrupt) -> Result<bool, String> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask for confirmation; re-run with --auto-approve to proceed without asking".into());
    }
    print!("\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        let _ = tx.send(read.map(|_| answer));
    });
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(answer) => return Ok(answer.map_err(|e| e.to_string())?.trim() == "yes"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if interrupt.requested() => {
                println!();
                return Ok(false);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(false),
        }
    }
}

fn never_asked(_: &str, _: &Interrupt) -> Result<bool, String> {
    Err("this command asks nothing".into())
}

/// Runs `f` with a session of the environment. `listen`: handle SIGINT/SIGTERM (commands that
/// write); the others keep the default (stop at once).
fn with_session<T>(
    loaded: &Loaded,
    options: impl FnOnce(Interrupt) -> anyhow::Result<SessionOptions>,
    listen: bool,
    ui: Callbacks<'_>,
    f: impl AsyncFnOnce(&Session<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let interrupt = if listen {
            Interrupt::listen().context("listening for signals")?
        } else {
            Interrupt::default()
        };
        let session = Session::new(&loaded.graph, loaded.name(), options(interrupt)?, ui);
        f(&session).await
    });
    // After a second signal, a helm command may still run in a blocking thread: do not wait
    // for it (a normal run has none left).
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// `plan` against the live cluster.
pub fn plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_nothing,
        confirm: &never_asked,
    };
    let module = module(&args.live)?;
    let options = |i| {
        Ok(SessionOptions {
            lock: args.lock,
            ..session_options(&loaded, &args.live, "plan", i)?
        })
    };
    let planned = with_session(&loaded, options, false, ui, async |s| {
        plan_of(module, s).await
    })?;
    if let Some(out) = &args.out {
        std::fs::write(out, planned.saved())
            .with_context(|| format!("writing the plan to {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}. To apply exactly this plan: cargo xtask apply {}",
            out.display(),
            out.display()
        );
    }
    print_plan(&planned.plan, args.output)?;
    Ok(exit_code(&planned.plan, args.detailed_exitcode))
}

/// `render --as-applied`: the objects as apply sends them, as a JSON `List`.
pub fn render_as_applied(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_nothing,
        confirm: &never_asked,
    };
    let module = module(&args.live)?;
    let options = |i| session_options(&loaded, &args.live, "render", i);
    let items = with_session(&loaded, options, false, ui, async |s| {
        Ok(match module {
            Some(m) => s.restricted_to(m.module_name()).sent_objects().await?,
            None => s.sent_objects().await?,
        })
    })?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(ExitCode::SUCCESS)
}

/// `drift`: the plan, read as a drift report (no lock: it writes nothing). Exit 0 no drift,
/// 2 drift, 1 error.
pub fn drift(args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_nothing,
        confirm: &never_asked,
    };
    let module = module(&args.live)?;
    let options = |i| {
        Ok(SessionOptions {
            lock: false,
            ..session_options(&loaded, &args.live, "drift", i)?
        })
    };
    let planned = with_session(&loaded, options, false, ui, async |s| {
        plan_of(module, s).await
    })?;
    print_plan(&planned.plan, args.output)?;
    if planned.plan.has_changes() {
        if args.output == OutputFormat::Text {
            eprintln!("Drift detected: the live environment differs from the configuration.");
        }
        Ok(ExitCode::from(2))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Fails early when a tool the cluster provider requires is missing (the checks of `cargo
/// xtask doctor` that block; the context is checked by the session, see
/// [`crate::doctor::preflight`]).
fn preflight(loaded: &Loaded) -> anyhow::Result<()> {
    let provider = cluster::settings(&loaded.env)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .provider
        .as_str();
    let checks = crate::doctor::preflight(provider);
    if checks.iter().any(|c| c.blocks()) {
        anyhow::bail!(
            "prerequisites are missing:\n{}",
            crate::doctor::render(provider, &checks)
        );
    }
    Ok(())
}

/// What a stopped run says, and its exit code.
fn stopped(outcome: &Outcome, verb: &str) -> Option<ExitCode> {
    match outcome {
        Outcome::Interrupted { done, total } => {
            eprintln!(
                "\n{} interrupted after {done} of {total} changes; run {verb} again.",
                capitalize(verb)
            );
            Some(ExitCode::from(INTERRUPTED))
        }
        Outcome::Aborted => {
            eprintln!(
                "\nStopped at once by a second signal; the step in flight may be half done. Run {verb} again (`plan` shows what is left)."
            );
            Some(ExitCode::from(INTERRUPTED))
        }
        _ => None,
    }
}

/// `apply`: plan, show, confirm, converge. Creates the cluster first when it does not exist.
pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    preflight(&loaded)?;
    let saved = match &args.plan_file {
        Some(file) => Some(SavedPlan {
            file: file.display().to_string(),
            text: std::fs::read_to_string(file)
                .with_context(|| format!("reading the plan {}", file.display()))?,
        }),
        None => None,
    };
    let auto_approve = args.auto_approve;
    let ask = move |q: &str, i: &Interrupt| confirm(q, auto_approve, i);
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_plan,
        confirm: &ask,
    };
    let options = |i| {
        Ok(SessionOptions {
            force_conflicts: args.force_conflicts,
            allow_replace: args.allow_replace,
            ..session_options(&loaded, &args.live, "apply", i)?
        })
    };
    let module = module(&args.live)?;
    let outcome = with_session(&loaded, options, true, ui, async |s| {
        Ok(match module {
            Some(m) => m.apply(s, saved.as_ref()).await?,
            None => s.apply(saved.as_ref()).await?,
        })
    })?;
    if let Some(code) = stopped(&outcome, "apply") {
        return Ok(code);
    }
    match outcome {
        Outcome::Cancelled => {
            eprintln!("Apply cancelled.");
            Ok(ExitCode::FAILURE)
        }
        Outcome::Applied {
            report,
            cluster_created,
            cluster_deleted,
        } => {
            println!(
                "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
                report.created + report.replaced + usize::from(cluster_created),
                report.updated,
                report.deleted + report.replaced + usize::from(cluster_deleted)
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `destroy`: delete what this environment owns, in reverse order, then the cluster if envctl
/// created it.
pub fn destroy(args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let auto_approve = args.auto_approve;
    let ask = move |q: &str, i: &Interrupt| confirm(q, auto_approve, i);
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_plan,
        confirm: &ask,
    };
    let module = module(&args.live)?;
    let options = |i| session_options(&loaded, &args.live, "destroy", i);
    let outcome = with_session(&loaded, options, true, ui, async |s| {
        Ok(match module {
            Some(m) => m.destroy(s).await?,
            None => s.destroy().await?,
        })
    })?;
    if let Some(code) = stopped(&outcome, "destroy") {
        return Ok(code);
    }
    match outcome {
        Outcome::Cancelled => {
            eprintln!("Destroy cancelled.");
            Ok(ExitCode::FAILURE)
        }
        Outcome::Destroyed { report, cluster } => {
            if let Some(cluster) = cluster {
                println!("{cluster}");
            }
            println!(
                "\nDestroy complete! Resources: {} destroyed, {} released.",
                report.deleted, report.updated
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            println!("Nothing to destroy.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `rotate-secret`: the only way generated secrets change. New values are generated and
/// stored (never shown), then the Deployments that read the Secret are restarted.
pub fn rotate_secret(args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let address: engine::Address = args.address.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let auto_approve = args.auto_approve;
    let ask = move |q: &str, i: &Interrupt| confirm(q, auto_approve, i);
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_plan,
        confirm: &ask,
    };
    let options = |i| session_options(&loaded, &args.live, "rotate-secret", i);
    let rotated = with_session(&loaded, options, true, ui, async |s| {
        Ok(s.rotate_secret(&address, &args.keys).await?)
    })?;
    let Some((keys, restarted)) = rotated else {
        eprintln!("Rotation cancelled.");
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "Rotated {} of {address}; restarted: {}.",
        keys.join(", "),
        if restarted.is_empty() {
            "nothing reads it".to_owned()
        } else {
            restarted.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `force-unlock ID`: removes the environment's lock, e.g. after its run was killed, when
/// waiting for it to expire is not wanted.
pub fn force_unlock(args: &ForceUnlockArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let ui = Callbacks {
        progress: &progress,
        show_plan: &show_nothing,
        confirm: &never_asked,
    };
    let options = |i| session_options(&loaded, &args.live, "force-unlock", i);
    let removed = with_session(&loaded, options, false, ui, async |s| {
        Ok(s.force_unlock(&args.id).await?)
    })?;
    match removed {
        Some(holder) => println!(
            "Removed the lock of environment `{}` ({holder}).",
            loaded.name()
        ),
        None => println!(
            "The lock of environment `{}` was already gone.",
            loaded.name()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
