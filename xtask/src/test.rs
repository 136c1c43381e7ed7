//! `cargo xtask test`: formatting and clippy, unit tests (with the tidy tests of
//! `xtask/tests/tidy.rs`), then the integration tests (`crates/e2e`) against a fresh
//! testenv, which is torn down afterwards whatever happened.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use xshell::Shell;

use crate::testenv::{self, Layout};

/// Entry point of `cargo xtask test`.
pub fn main() -> ExitCode {
    let result = Shell::new()
        .map_err(anyhow::Error::from)
        .and_then(|sh| run(&sh));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(sh: &Shell) -> Result<()> {
    let mut phases: Vec<(&str, Duration, bool)> = Vec::new();
    let result = run_phases(sh, &mut phases);
    eprintln!("\ncargo xtask test: phases");
    for (phase, took, ok) in &phases {
        let state = if *ok { "ok" } else { "FAILED" };
        eprintln!("  {phase:<20} {state:<7} {:>7.1}s", took.as_secs_f64());
    }
    result
}

fn timed<T>(
    phases: &mut Vec<(&'static str, Duration, bool)>,
    phase: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    eprintln!("\n==> {phase}");
    let started = Instant::now();
    let result = f();
    phases.push((phase, started.elapsed(), result.is_ok()));
    result
}

fn run_phases(sh: &Shell, phases: &mut Vec<(&'static str, Duration, bool)>) -> Result<()> {
    let root = Layout::discover()?.root;
    let sh = sh.with_current_dir(&root);
    // Formatting and lints first: they fail in seconds and need no cluster.
    timed(phases, "fmt", || {
        Ok(sh
            .cmd("cargo")
            .args(["fmt", "--all", "--", "--check"])
            .run_echo()?)
    })?;
    timed(phases, "clippy", || {
        Ok(sh
            .cmd("cargo")
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .run_echo()?)
    })?;
    // Default members only: `crates/e2e` needs the testenv and runs below.
    timed(phases, "unit tests", || {
        Ok(sh.cmd("cargo").arg("test").run_echo()?)
    })?;
    // Compile the integration tests before the cluster starts, so that its lifetime is short.
    timed(phases, "build e2e", || {
        Ok(sh
            .cmd("cargo")
            .args(["test", "-p", "e2e", "--no-run"])
            .run_echo()?)
    })?;

    let layout = Layout::discover()?;
    let pins = testenv::load_pins(&layout)?;
    // A fresh cluster: no state left over from an earlier run.
    timed(phases, "testenv down (old)", || {
        testenv::down(&sh, &layout, &pins)
    })?;
    let env = match timed(phases, "testenv up", || testenv::up(&sh, &layout, &pins)) {
        Ok(env) => env,
        Err(err) => {
            bail!("the testenv could not start, so the integration tests cannot run: {err:#}")
        }
    };
    let tests = timed(phases, "integration tests", || {
        let mut cmd = sh.cmd("cargo").args(["test", "-p", "e2e"]);
        for (key, value) in env.vars() {
            cmd = cmd.env(key, value);
        }
        Ok(cmd.run_echo()?)
    });
    let teardown = timed(phases, "testenv down", || {
        testenv::down(&sh, &layout, &pins)
    });
    tests?;
    teardown
}
