//! `cargo xtask`: the command line of this project. The only place that knows all modules.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod cli;
mod converge;
mod doctor;
mod environment;
mod live_line;
mod offline;
mod test;
mod testenv;
mod verify;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "A local Kubernetes environment as code: kind, Gateway API, Istio, Dex, OAuth2 Proxy",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every object and Helm release that apply would send, as YAML (offline).
    Render(cli::RenderArgs),
    /// Print the resources and their edges in apply order (offline).
    Graph(offline::GraphArgs),
    /// Show what apply would change.
    Plan(cli::PlanArgs),
    /// Bring the live environment in line with the configuration.
    Apply(converge::ApplyArgs),
    /// Delete everything this environment owns.
    Destroy(converge::DestroyArgs),
    /// Detect drift between the configuration and the live environment (exit 2 on drift).
    Drift(converge::DriftArgs),
    /// Log in through the gateway as a browser would, step by step (exit 1 naming the failed step).
    Verify(verify::VerifyArgs),
    /// Generate new values for a generated secret, and restart the workloads that read it.
    RotateSecret(converge::RotateArgs),
    /// Remove the environment's lock left by a run that died (its ID is in the refusal).
    ForceUnlock(converge::ForceUnlockArgs),
    /// Time `plan` against `kubectl diff --server-side` on the same objects (needs the testenv).
    Bench(bench::BenchArgs),
    /// Run unit tests, then the integration tests against a fresh testenv.
    Test,
    /// Check the prerequisites of a cluster provider (docker, kind, helm, kubectl, context).
    Doctor(doctor::DoctorArgs),
    /// Manage the local test control plane (kube-apiserver + kwok).
    Testenv {
        #[command(subcommand)]
        command: testenv::TestenvCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test => return test::main(),
        Command::Testenv { command } => return testenv::main(command),
        Command::Render(args) if args.as_applied => converge::render_as_applied(&args),
        Command::Render(args) => offline::render(&args),
        Command::Bench(args) => bench::main(&args),
        Command::Graph(args) => offline::graph(&args),
        Command::Plan(args) if args.offline => offline::plan(&args),
        Command::Plan(args) => converge::plan(&args),
        Command::Doctor(args) => doctor::main(&args),
        Command::Apply(args) => converge::apply(&args),
        Command::Destroy(args) => converge::destroy(&args),
        Command::Drift(args) => converge::drift(&args),
        Command::RotateSecret(args) => converge::rotate_secret(&args),
        Command::ForceUnlock(args) => converge::force_unlock(&args),
        Command::Verify(args) => verify::main(&args),
    };
    live_line::finish();
    match result {
        Ok(code) => code,
        Err(error) => {
            let text = format!("{error:#}");
            if text.starts_with("error") {
                eprintln!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set (https://no-color.org).
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
