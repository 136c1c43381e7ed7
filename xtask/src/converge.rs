//! Commands that talk to the live cluster: `plan`, `apply`, `destroy`, `drift`.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use engine::{Action, Plan};
use live::runner::{RunOptions, Runner};
use live::sources::Sources;

use crate::environment::{self, EnvArgs, Loaded};
use crate::offline::{OutputFormat, exit_code, print_plan};

/// How to reach the cluster and what to look at.
#[derive(clap::Args, Debug, Clone)]
pub struct LiveArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Only this module's resources.
    #[arg(long, value_name = "MODULE")]
    pub module: Option<String>,
    /// Read pinned upstream files from DIR/<host>/<path> and repository charts from
    /// DIR/charts/<repository URL without scheme>/<chart>-<version>/ instead of the network.
    #[arg(long, value_name = "DIR", env = "ENVCTL_MIRROR")]
    pub mirror: Option<PathBuf>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; for provider kwok, the
    /// testenv's).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Parallel API requests at most.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Take over an object that exists but was not created by envctl (plan, apply): from then
    /// on it is envctl's (overwritten by apply, deleted by destroy). Repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    pub adopt: Vec<String>,
}

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
    /// A plan saved with `plan --out`: applied only if the cluster has not changed since.
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

fn reporter(line: &str) {
    eprintln!("{line}");
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The kubeconfig and context for an environment.
fn kubeconfig_and_context(loaded: &Loaded, args: &LiveArgs) -> (Option<PathBuf>, String) {
    let context = loaded
        .graph
        .bindings()
        .outputs
        .get(&engine::OutputRef::new("cluster", "context"))
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let kubeconfig = args.kubeconfig.clone().or_else(|| {
        // The testenv's kubeconfig, when nothing else is said and the environment targets it.
        (loaded.env.settings.cluster.provider == config::Provider::Kwok
            && std::env::var_os("KUBECONFIG").is_none())
        .then(|| testenv_kubeconfig(&loaded.env.settings.cluster.name))
        .flatten()
    });
    (kubeconfig, context)
}

/// The offline mirror of pinned files and charts: `--mirror`/`ENVCTL_MIRROR`, else for the
/// testenv (provider kwok, which has no network by design) the testenv's mirror.
fn mirror(loaded: &Loaded, args: &LiveArgs) -> Option<PathBuf> {
    args.mirror.clone().or_else(|| {
        (loaded.env.settings.cluster.provider == config::Provider::Kwok)
            .then(|| crate::testenv::Layout::discover().ok())
            .flatten()
            .map(|layout| layout.mirror_dir())
            .filter(|dir| dir.is_dir())
    })
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

/// The cluster resource of the environment.
fn cluster_spec(loaded: &Loaded) -> anyhow::Result<(engine::Address, engine::ClusterSpec)> {
    loaded
        .graph
        .resources()
        .find_map(|r| match &r.spec {
            engine::ResourceSpec::Cluster(spec) => Some((r.address.clone(), spec.clone())),
            _ => None,
        })
        .context("the configuration declares no cluster")
}

/// A runner against the environment's cluster, or why there is no cluster to run against.
enum Target<'a> {
    Connected(Box<Runner<'a>>),
    Absent { reason: String },
}

fn options(
    loaded: &Loaded,
    args: &LiveArgs,
    kubeconfig: Option<PathBuf>,
    context: &str,
    force_conflicts: bool,
) -> anyhow::Result<RunOptions> {
    let mirror = mirror(loaded, args);
    let helm = if loaded.env.releases.is_empty() {
        None
    } else {
        let charts = live::charts::ChartStore::new(
            mirror.clone(),
            live::charts::ChartStore::default_cache(),
        );
        Some(
            live::helm::Helm::locate(
                kubeconfig,
                Some(context.to_owned()).filter(|c| !c.is_empty()),
            )?
            .with_charts(charts),
        )
    };
    Ok(RunOptions {
        concurrency: args.concurrency.max(1),
        force_conflicts,
        sources: Sources { mirror },
        modules: args.module.clone().map(|m| BTreeSet::from([m])),
        helm,
        wait: live::wait::WaitOptions::from_env()?,
        adopt: args.adopt.iter().cloned().collect(),
        ..RunOptions::default()
    })
}

async fn target<'a>(
    loaded: &'a Loaded,
    args: &LiveArgs,
    force_conflicts: bool,
) -> anyhow::Result<Target<'a>> {
    environment::check_module(args.module.as_deref())?;
    let (kubeconfig, context) = kubeconfig_and_context(loaded, args);
    let (_, spec) = cluster_spec(loaded)?;
    match cluster::find(&spec, kubeconfig.as_deref()).await? {
        cluster::Target::Absent { reason } => Ok(Target::Absent { reason }),
        cluster::Target::Connected(connection) => {
            let options = options(loaded, args, kubeconfig, &context, force_conflicts)?;
            Ok(Target::Connected(Box::new(Runner::new(
                connection,
                &loaded.graph,
                loaded.name(),
                options,
                &reporter,
            ))))
        }
    }
}

/// A module crate's own plan when `--module` names one, else the whole environment's.
async fn plan_with(runner: &Runner<'_>, module: Option<&str>) -> anyhow::Result<Plan> {
    Ok(match module {
        Some(gateway::NAME) => gateway::plan(runner).await?,
        Some(mesh::NAME) => mesh::plan(runner).await?,
        Some(sso::NAME) => sso::plan(runner).await?,
        Some(policy::NAME) => policy::plan(runner).await?,
        Some(other) => runner.module(other).plan().await?,
        None => runner.plan().await?,
    })
}

/// The plan when the cluster does not exist yet: every resource created.
fn plan_from_nothing(loaded: &Loaded, module: Option<&str>, reason: &str) -> anyhow::Result<Plan> {
    let mut plan = Plan::offline(&loaded.graph, loaded.name(), &loaded.graph.bindings())
        .context("resolving placeholders")?;
    plan.changes
        .retain(|c| module.is_none_or(|m| c.address.module == m));
    if let Some(first) = plan
        .changes
        .iter_mut()
        .find(|c| c.address.kind == engine::ResourceKind::Cluster)
    {
        first
            .notes
            .push(format!("the cluster does not exist: {reason}"));
    }
    Ok(plan)
}

/// The plan of the environment as the cluster is now (everything created when it does not
/// exist yet).
fn current_plan(loaded: &Loaded, live: &LiveArgs) -> anyhow::Result<Plan> {
    runtime()?.block_on(async {
        match target(loaded, live, false).await? {
            Target::Connected(runner) => plan_with(&runner, live.module.as_deref()).await,
            Target::Absent { reason } => plan_from_nothing(loaded, live.module.as_deref(), &reason),
        }
    })
}

/// `plan` against the live cluster.
pub fn plan(args: &crate::offline::PlanArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let plan = current_plan(&loaded, &args.live)?;
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&plan.to_json())?;
        std::fs::write(out, text)
            .with_context(|| format!("writing the plan to {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}. To apply exactly this plan: cargo xtask apply {}",
            out.display(),
            out.display()
        );
    }
    print_plan(&plan, args.output)?;
    Ok(exit_code(&plan, args.detailed_exitcode))
}

/// `render --as-applied`: the objects as apply sends them, as a JSON `List`.
pub fn render_as_applied(args: &crate::offline::RenderArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let items = runtime()?.block_on(async {
        match target(&loaded, &args.live, false).await? {
            Target::Connected(runner) => runner.sent_objects().await.map_err(anyhow::Error::from),
            Target::Absent { reason } => anyhow::bail!("the cluster does not exist ({reason})"),
        }
    })?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(ExitCode::SUCCESS)
}

/// `drift`: the plan, read as a drift report. Exit 0 no drift, 2 drift, 1 error.
pub fn drift(args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let plan = current_plan(&loaded, &args.live)?;
    print_plan(&plan, args.output)?;
    if plan.has_changes() {
        if args.output == OutputFormat::Text {
            eprintln!("Drift detected: the live environment differs from the configuration.");
        }
        Ok(ExitCode::from(2))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Fails early when a prerequisite of the cluster provider is missing (`cargo xtask doctor`).
fn preflight(loaded: &Loaded) -> anyhow::Result<()> {
    let provider = loaded.env.settings.cluster.provider.as_str();
    let checks = crate::doctor::check(provider);
    if checks.iter().any(|c| c.blocks()) {
        anyhow::bail!(
            "prerequisites are missing:\n{}",
            crate::doctor::render(provider, &checks)
        );
    }
    Ok(())
}

/// Asks for `yes` on a terminal; refuses without one unless `--auto-approve`.
fn confirm(question: &str, auto_approve: bool) -> anyhow::Result<bool> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to ask for confirmation; re-run with --auto-approve to proceed without asking"
        );
    }
    print!("\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// `apply`: plan, show, confirm, converge. Creates the cluster first when it does not exist.
pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    preflight(&loaded)?;
    runtime()?.block_on(async {
        let (runner, created) = match target(&loaded, &args.live, args.force_conflicts).await? {
            Target::Connected(runner) => (runner, false),
            Target::Absent { reason } => {
                let plan = plan_from_nothing(&loaded, args.live.module.as_deref(), &reason)?;
                if let Some(file) = &args.plan_file {
                    check_saved_plan(file, &plan)?;
                }
                print_plan(&plan, OutputFormat::Text)?;
                if !confirm("Do you want to perform these actions?", args.auto_approve || args.plan_file.is_some())? {
                    eprintln!("Apply cancelled.");
                    return Ok(ExitCode::FAILURE);
                }
                let (address, spec) = cluster_spec(&loaded)?;
                let (kubeconfig, context) = kubeconfig_and_context(&loaded, &args.live);
                let start = std::time::Instant::now();
                eprintln!("{address}: Creating...");
                let connection = cluster::create(&spec, kubeconfig.as_deref(), loaded.name(), &address).await?;
                eprintln!("{address}: Creation complete after {}s", start.elapsed().as_secs());
                let options = options(&loaded, &args.live, kubeconfig, &context, args.force_conflicts)?;
                (Box::new(Runner::new(connection, &loaded.graph, loaded.name(), options, &reporter)), true)
            }
        };
        let plan = plan_with(&runner, args.live.module.as_deref()).await?;
        if !created {
            if let Some(file) = &args.plan_file {
                check_saved_plan(file, &plan)?;
            }
            print_plan(&plan, OutputFormat::Text)?;
            if !plan.has_changes() {
                return Ok(ExitCode::SUCCESS);
            }
            let replace = plan.changes.iter().find(|c| {
                c.address.kind == engine::ResourceKind::Cluster && matches!(c.action, Action::Replace { .. })
            });
            if let Some(change) = replace {
                if !args.allow_replace {
                    anyhow::bail!(
                        "{} must be replaced ({}), which deletes everything in it; apply refuses without \
                         --allow-replace (or change the configuration back)",
                        change.address,
                        change.action.reason().unwrap_or_default()
                    );
                }
                if !confirm("Do you want to delete and recreate the cluster?", args.auto_approve)? {
                    eprintln!("Apply cancelled.");
                    return Ok(ExitCode::FAILURE);
                }
                return replace_cluster(&loaded, args).await;
            }
            if !confirm("Do you want to perform these actions?", args.auto_approve || args.plan_file.is_some())? {
                eprintln!("Apply cancelled.");
                return Ok(ExitCode::FAILURE);
            }
        }
        let report = runner.apply(&plan).await?;
        println!(
            "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
            report.created + report.replaced + usize::from(created),
            report.updated,
            report.deleted + report.replaced
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Deletes the cluster (only one envctl created), creates it anew and applies everything.
async fn replace_cluster(loaded: &Loaded, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let (address, spec) = cluster_spec(loaded)?;
    let (kubeconfig, context) = kubeconfig_and_context(loaded, &args.live);
    let outcome = cluster::destroy(&spec, kubeconfig.as_deref()).await?;
    if outcome.contains("left in place") {
        anyhow::bail!("{outcome}; delete it yourself to replace it");
    }
    eprintln!("{address}: {outcome}; Creating...");
    let connection = cluster::create(&spec, kubeconfig.as_deref(), loaded.name(), &address).await?;
    let options = options(
        loaded,
        &args.live,
        kubeconfig,
        &context,
        args.force_conflicts,
    )?;
    let runner = Runner::new(connection, &loaded.graph, loaded.name(), options, &reporter);
    let plan = plan_with(&runner, args.live.module.as_deref()).await?;
    let report = runner.apply(&plan).await?;
    println!(
        "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
        report.created + 1,
        report.updated,
        report.deleted + 1
    );
    Ok(ExitCode::SUCCESS)
}

/// A saved plan is applied only if planning now gives the same changes from the same live
/// state (fingerprints of every live document it was computed from).
fn check_saved_plan(file: &PathBuf, fresh: &Plan) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the plan {}", file.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a plan file", file.display()))?;
    let saved =
        Plan::from_json(&json).with_context(|| format!("{} is not a plan file", file.display()))?;
    if saved.environment != fresh.environment {
        anyhow::bail!(
            "{} is a plan for environment `{}`, not `{}`",
            file.display(),
            saved.environment,
            fresh.environment
        );
    }
    let actions = |p: &Plan| {
        p.changes
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| (c.address.to_string(), c.action.as_str()))
            .collect::<Vec<_>>()
    };
    let mut stale: Vec<String> = saved
        .fingerprints
        .iter()
        .filter(|(a, f)| fresh.fingerprints.get(*a) != Some(*f))
        .map(|(a, _)| a.to_string())
        .collect();
    stale.extend(
        fresh
            .fingerprints
            .keys()
            .filter(|a| !saved.fingerprints.contains_key(*a))
            .map(ToString::to_string),
    );
    if !stale.is_empty() || actions(&saved) != actions(fresh) {
        stale.sort();
        stale.dedup();
        anyhow::bail!(
            "the saved plan {} is stale: the cluster or the configuration changed since it was made{}; run `cargo xtask plan` again",
            file.display(),
            if stale.is_empty() {
                String::new()
            } else {
                format!(" ({})", stale.join(", "))
            }
        );
    }
    Ok(())
}

/// `destroy`: delete what this environment owns, in reverse order, then the cluster if envctl
/// created it.
pub fn destroy(args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    runtime()?.block_on(async {
        let runner = match target(&loaded, &args.live, false).await? {
            Target::Connected(runner) => runner,
            Target::Absent { reason } => {
                println!("Nothing to destroy: the cluster does not exist ({reason}).");
                return Ok(ExitCode::SUCCESS);
            }
        };
        let plan = runner.plan_destroy().await?;
        print_plan(&plan, OutputFormat::Text)?;
        let whole = args.live.module.is_none() || args.live.module.as_deref() == Some("cluster");
        if !plan.has_changes() && !whole {
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(
            "Do you really want to destroy all resources?",
            args.auto_approve,
        )? {
            eprintln!("Destroy cancelled.");
            return Ok(ExitCode::FAILURE);
        }
        let report = runner.destroy(&plan).await?;
        if whole {
            let (_, spec) = cluster_spec(&loaded)?;
            let (kubeconfig, _) = kubeconfig_and_context(&loaded, &args.live);
            println!("{}", cluster::destroy(&spec, kubeconfig.as_deref()).await?);
        }
        println!(
            "\nDestroy complete! Resources: {} destroyed, {} released.",
            report.deleted, report.updated
        );
        Ok(ExitCode::SUCCESS)
    })
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

/// `rotate-secret`: the only way generated secrets change. New values are generated and
/// stored (never shown), then the Deployments that read the Secret are restarted.
pub fn rotate_secret(args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.live.env)?;
    let address: engine::Address = args.address.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(engine::ResourceSpec::GeneratedSecret(spec)) =
        loaded.graph.resource(&address).map(|r| &r.spec)
    else {
        let known: Vec<String> = loaded
            .graph
            .resources()
            .filter(|r| r.address.kind == engine::ResourceKind::GeneratedSecret)
            .map(|r| r.address.to_string())
            .collect();
        anyhow::bail!(
            "`{address}` is not a generated secret of this environment (generated secrets: {})",
            known.join(", ")
        );
    };
    let keys = if args.keys.is_empty() {
        spec.generated.keys().cloned().collect()
    } else {
        args.keys.clone()
    };
    runtime()?.block_on(async {
        let Target::Connected(runner) = target(&loaded, &args.live, false).await? else {
            anyhow::bail!(
                "the cluster of environment `{}` does not exist",
                loaded.name()
            );
        };
        let question = format!(
            "Rotate {} of Secret {}/{}? Workloads that read it restart.",
            keys.join(", "),
            spec.namespace,
            spec.name
        );
        if !confirm(&question, args.auto_approve)? {
            eprintln!("Rotation cancelled.");
            return Ok(ExitCode::FAILURE);
        }
        live::secrets::rotate(&runner.cluster, spec, &keys, loaded.name(), &address).await?;
        let restarted = restart_readers(&runner.cluster, &spec.namespace, &spec.name).await?;
        println!(
            "Rotated {} of Secret {}/{}; restarted: {}.",
            keys.join(", "),
            spec.namespace,
            spec.name,
            if restarted.is_empty() {
                "nothing reads it".to_owned()
            } else {
                restarted.join(", ")
            }
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Restarts (pod template annotation, like `kubectl rollout restart`) every Deployment in
/// `namespace` whose pods read Secret `name`.
async fn restart_readers(
    cluster: &live::Cluster,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<String>> {
    let ty = cluster
        .resolve("apps/v1", "Deployment")
        .context("the cluster serves no Deployments")?;
    let mut restarted = Vec::new();
    for deployment in cluster.list(&ty, "").await? {
        if deployment
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            != Some(namespace)
        {
            continue;
        }
        let pod_spec = deployment
            .pointer("/spec/template/spec")
            .cloned()
            .unwrap_or_default();
        if !reads_secret(&pod_spec, name) {
            continue;
        }
        let deployment_name = deployment
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let patch = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": deployment_name, "namespace": namespace},
            "spec": {"template": {"metadata": {"annotations": {
                "envctl.dev/secret-rotated-at": format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()),
            }}}},
        });
        cluster.apply_as(&ty, &patch, "envctl-rotate").await?;
        restarted.push(format!("deployment/{namespace}/{deployment_name}"));
    }
    Ok(restarted)
}

/// Whether a pod spec reads Secret `name` (env, envFrom or a volume).
fn reads_secret(pod_spec: &serde_json::Value, name: &str) -> bool {
    find_secret_refs(pod_spec).iter().any(|n| n == name)
}

fn find_secret_refs(value: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("secretKeyRef" | "secretRef", serde_json::Value::Object(r)) => {
                        out.extend(r.get("name").and_then(|n| n.as_str()).map(str::to_owned));
                    }
                    ("secret", serde_json::Value::Object(r)) => {
                        out.extend(
                            r.get("secretName")
                                .and_then(|n| n.as_str())
                                .map(str::to_owned),
                        );
                    }
                    _ => out.extend(find_secret_refs(v)),
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|i| out.extend(find_secret_refs(i)))
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_readers_are_found_in_env_env_from_and_volumes() {
        let env = json!({"containers": [{"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]}]});
        let env_from = json!({"containers": [{"envFrom": [{"secretRef": {"name": "creds"}}]}]});
        let volume = json!({"volumes": [{"name": "v", "secret": {"secretName": "creds"}}], "containers": []});
        let other = json!({"containers": [{"envFrom": [{"secretRef": {"name": "other"}}]}]});
        assert!(reads_secret(&env, "creds"));
        assert!(reads_secret(&env_from, "creds"));
        assert!(reads_secret(&volume, "creds"));
        assert!(!reads_secret(&other, "creds"));
    }
}
