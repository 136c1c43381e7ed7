//! Commands that read only `infra/`: `render`, `graph`, `plan --offline`.

use std::process::ExitCode;

use anyhow::Context as _;
use engine::Plan;

use crate::cli::{PlanArgs, RenderArgs, exit_code, print_plan};
use crate::environment::{self, EnvArgs};

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

pub fn render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    environment::check_module(args.live.module.as_deref())?;
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
    let loaded = environment::load(&args.live.env)?;
    let mut plan = Plan::offline(&loaded.graph, loaded.name(), &loaded.graph.bindings())
        .context("resolving placeholders")?;
    if let Some(module) = &args.live.module {
        plan.changes.retain(|c| &c.address.module == module);
    }
    print_plan(&plan, args.output)?;
    Ok(exit_code(&plan, args.detailed_exitcode))
}
