//! `cargo xtask bench`: how long `cargo xtask plan` takes next to `kubectl diff --server-side`
//! on the same objects, in the same run, against the testenv. Prints medians and ratios; asserts
//! nothing (speed is measured here, not tested).
//!
//! Cases: the gateway module's objects (the Gateway API CRDs, the Gateway, nginx, ...), then the
//! same plus 100 and 1000 generated ConfigMaps. Each case is applied first, so both tools
//! compare a cluster that matches the configuration (the common case in CI drift checks).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Generated object counts to measure besides the module's own objects.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub objects: Vec<usize>,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

pub fn main(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let kubeconfig = std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()).context(
        "the benchmark runs against the testenv: `cargo xtask testenv up` and `eval \"$(cargo xtask testenv env)\"` first",
    )?;
    let kubectl = std::env::var("ENVCTL_KUBECTL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "kubectl".into());
    let mirror = std::env::var("ENVCTL_MIRROR").ok();
    let xtask = std::env::current_exe()?;
    let work = std::env::temp_dir().join(format!("envctl-bench-{}", std::process::id()));
    copy_dir(
        &crate::environment::repo_root().join("infra"),
        &work.join("infra"),
    )?;
    let infra = work.join("infra");

    let mut cases = vec![0];
    cases.extend(args.objects.iter().copied());
    println!(
        "{:<28} {:>12} {:>18} {:>8}",
        "objects", "envctl plan", "kubectl diff", "ratio"
    );
    let mut plan_times = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for &n in &cases {
            write_generated(&infra, n)?;
            let base = |cmd: &str| {
                let mut c = Command::new(&xtask);
                c.args([cmd, "--env", "kwok", "--module", "gateway", "--infra"])
                    .arg(&infra);
                if let Some(m) = &mirror {
                    c.args(["--mirror", m]);
                }
                c.env("KUBECONFIG", &kubeconfig)
                    .env("NO_COLOR", "1")
                    .stdin(Stdio::null());
                c
            };
            run_ok(base("apply").arg("--auto-approve"), "apply")?;
            let manifests = work.join(format!("sent-{n}.json"));
            let sent = base("render")
                .arg("--as-applied")
                .output()
                .context("render --as-applied")?;
            if !sent.status.success() {
                bail!(
                    "render --as-applied failed: {}",
                    String::from_utf8_lossy(&sent.stderr)
                );
            }
            std::fs::write(&manifests, &sent.stdout)?;
            let count: usize = serde_json::from_slice::<serde_json::Value>(&sent.stdout)?["items"]
                .as_array()
                .map_or(0, Vec::len);
            let plan = median(args.runs, || {
                let out = base("plan").arg("--detailed-exitcode").output()?;
                if out.status.code() != Some(0) {
                    bail!(
                        "plan found changes right after apply:\n{}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
                Ok(())
            })?;
            let diff = median(args.runs, || {
                let out = Command::new(&kubectl)
                    .args([
                        "diff",
                        "--server-side",
                        "--field-manager=envctl",
                        "--force-conflicts",
                        "-f",
                    ])
                    .arg(&manifests)
                    .env("KUBECONFIG", &kubeconfig)
                    .stdin(Stdio::null())
                    .output()?;
                // kubectl diff: 0 no differences, 1 differences, >1 error.
                if out.status.code().is_none_or(|c| c > 1) {
                    bail!(
                        "kubectl diff failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            })?;
            plan_times.push((count, plan));
            println!(
                "{:<28} {:>11.2}s {:>17.2}s {:>7.2}x",
                format!("{count} (module + {n} generated)"),
                plan.as_secs_f64(),
                diff.as_secs_f64(),
                plan.as_secs_f64() / diff.as_secs_f64()
            );
        }
        Ok(())
    })();
    // Leave the testenv as it was: the generated objects and the module go.
    let _ = write_generated(&infra, 0);
    let mut destroy = Command::new(&xtask);
    destroy
        .args([
            "destroy",
            "--env",
            "kwok",
            "--module",
            "gateway",
            "--auto-approve",
            "--infra",
        ])
        .arg(&infra);
    if let Some(m) = &mirror {
        destroy.args(["--mirror", m]);
    }
    let _ = destroy
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output();
    let _ = Command::new(&kubectl)
        .args([
            "delete",
            "namespace",
            "envctl-bench",
            "--ignore-not-found",
            "--wait=true",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    if let (Some(small), Some(large)) = (plan_times.get(1), plan_times.last()) {
        let objects = large.0 as f64 / small.0 as f64;
        let time = large.1.as_secs_f64() / small.1.as_secs_f64();
        println!(
            "\nenvctl plan from {} to {} objects: {objects:.1}x the objects, {time:.2}x the time",
            small.0, large.0
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn median(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Adds `n` ConfigMaps (and their namespace) to the gateway module of the copied infra.
fn write_generated(infra: &Path, n: usize) -> anyhow::Result<()> {
    let modules_path = infra.join("modules.yaml");
    let modules = std::fs::read_to_string(&modules_path)?;
    let line = "    - gateway/bench.yaml\n";
    let without = modules.replace(line, "");
    let bench = infra.join("gateway/bench.yaml");
    if n == 0 {
        std::fs::write(&modules_path, without)?;
        let _ = std::fs::remove_file(bench);
        return Ok(());
    }
    let mut yaml =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: envctl-bench\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{i:04}\n  namespace: envctl-bench\ndata:\n  index: \"{i}\"\n"
        ));
    }
    std::fs::write(&bench, yaml)?;
    let with = without.replace(
        "    - gateway/nginx.yaml\n",
        &format!("    - gateway/nginx.yaml\n{line}"),
    );
    std::fs::write(&modules_path, with)?;
    Ok(())
}

fn copy_dir(from: &Path, to: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
