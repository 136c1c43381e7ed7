//! Commands that read only `infra/`: `render`, `graph`, `plan --offline`.

use std::process::ExitCode;

use anyhow::Context as _;
use engine::Plan;

use crate::environment::{self, EnvArgs};

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub live: crate::converge::LiveArgs,
    /// Print the objects exactly as apply sends them (pinned files fetched, ownership
    /// metadata, outputs read from the cluster) as one JSON `List`, e.g. for `kubectl diff -f -`.
    /// Contacts the cluster.
    #[arg(long)]
    pub as_applied: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Text,
    Dot,
}

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// `text` (apply order with each resource's dependencies) or `dot` (Graphviz).
    #[arg(long, value_enum, default_value = "text")]
    pub format: GraphFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub live: crate::converge::LiveArgs,
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
}

pub fn render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    environment::check_module(args.live.module.as_deref())?;
    if args.as_applied {
        return crate::converge::render_as_applied(args);
    }
    let loaded = environment::load(&args.live.env)?;
    let bindings = loaded.graph.bindings();
    let documents = loaded
        .graph
        .desired_all(&bindings, loaded.name())
        .context("resolving placeholders")?
        .into_iter()
        .filter(|d| {
            args.live
                .module
                .as_deref()
                .is_none_or(|m| d.address.module == m)
        })
        .collect::<Vec<_>>();
    print!("{}", engine::render::render_yaml_documents(&documents));
    Ok(ExitCode::SUCCESS)
}

pub fn graph(args: &GraphArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.env)?;
    match args.format {
        GraphFormat::Text => print!("{}", loaded.graph.render_text()),
        GraphFormat::Dot => print!("{}", loaded.graph.render_dot()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    environment::check_module(args.live.module.as_deref())?;
    if !args.offline {
        return crate::converge::plan(args);
    }
    let loaded = environment::load(&args.live.env)?;
    let mut plan = Plan::offline(&loaded.graph, loaded.name(), &loaded.graph.bindings())
        .context("resolving placeholders")?;
    if let Some(module) = &args.live.module {
        plan.changes.retain(|c| &c.address.module == module);
    }
    print_plan(&plan, args.output)?;
    Ok(exit_code(&plan, args.detailed_exitcode))
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
