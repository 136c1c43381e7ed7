//! `cargo xtask`: the command line of this project. The only place that knows all modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod doctor;
mod test;
mod testenv;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "A local Kubernetes environment as code", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every object and Helm release that apply would send, as YAML.
    Render,
    /// Print the resources and their edges in apply order.
    Graph,
    /// Show what apply would change.
    Plan,
    /// Bring the live environment in line with the configuration.
    Apply,
    /// Delete everything this project created.
    Destroy,
    /// Detect drift between the configuration and the live environment (exit 2 on drift).
    Drift,
    /// Run unit tests, then the integration tests against a fresh testenv.
    Test,
    /// Manage the local test control plane (kube-apiserver + kwok).
    Testenv {
        #[command(subcommand)]
        command: testenv::TestenvCommand,
    },
    /// Check the prerequisites of a cluster provider (docker, kind, helm, kubectl, context).
    Doctor(doctor::DoctorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Test => test::main(),
        Command::Testenv { command } => testenv::main(command),
        Command::Doctor(args) => match doctor::main(&args) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("error: not implemented yet");
            ExitCode::FAILURE
        }
    }
}
