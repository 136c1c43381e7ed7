//! The arguments and the plan output shared by the offline and the live commands.

use std::path::PathBuf;
use std::process::ExitCode;

use engine::Plan;

use crate::environment::EnvArgs;

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
    /// Take over an object that exists but was not created by envctl (plan, apply): from then
    /// on it is envctl's (overwritten by apply, deleted by destroy). Repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    pub adopt: Vec<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; for provider kwok, the
    /// testenv's).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Parallel API requests at most.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Changes apply makes at once at most (each starts once what it depends on is ready).
    #[arg(long, value_name = "N", default_value_t = live::runner::DEFAULT_PARALLELISM)]
    pub parallelism: usize,
}

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Print the objects exactly as apply sends them (pinned files fetched, ownership
    /// metadata, outputs read from the cluster) as one JSON `List`, e.g. for `kubectl diff -f -`.
    /// Contacts the cluster.
    #[arg(long)]
    pub as_applied: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Plan against an empty cluster, without contacting any cluster.
    #[arg(long)]
    pub offline: bool,
    /// `text` (for people) or `json` (schema: crates/engine/PLAN_JSON.md).
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan (JSON) to FILE; `cargo xtask apply FILE` applies it only if nothing changed since.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Hold the environment's lock while planning (`--lock=false`: plan while another run
    /// holds it, as Terraform's `-lock=false`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub lock: bool,
}

pub fn print_plan(plan: &Plan, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Text => print!("{}", plan.render_text(crate::use_color())),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&plan.to_json())?),
    }
    Ok(())
}

/// Terraform's `-detailed-exitcode`: 0 no changes, 2 changes.
pub fn exit_code(plan: &Plan, detailed: bool) -> ExitCode {
    if detailed && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
