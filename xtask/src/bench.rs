//! `cargo xtask bench`: the whole environment (`--env kwok`) on the testenv, in one run,
//! against what a user would otherwise combine. Every time is the median of `--runs` runs,
//! measured the same way (wall clock around one command, or one group of commands). Prints one
//! Markdown table; asserts nothing (speed is measured here, not tested).
//!
//! - apply from empty, next to the critical path of that same apply: along the longest chain
//!   of what apply waits for (the graph's dependencies and the plan's `waits_for`), the sum of
//!   each resource's time from its start line to its done line (what a fully parallel apply
//!   could not go below). Both come from the same run: the run whose apply took the median
//!   time, with its own critical path;
//! - a steady-state `plan` vs `kubectl diff --server-side` of the environment's objects plus,
//!   for each of its Helm releases, `helm upgrade --dry-run=server` with the deployed values
//!   (the helm-diff plugin renders and compares like this; it is not on the Go module proxy
//!   this project can reach, so the plain helm command stands in for it);
//! - the requests each sends to the API server, by verb, counted by a proxy on loopback
//!   (`kubectl proxy` holds the credentials; [`proxy`] counts), and the writes of an apply
//!   right after an apply;
//! - plan vs kubectl diff with 100, 1000, 5000 extra objects (ConfigMaps), and the ratios.
//!
//! The environment is destroyed at the start and at the end.

mod proxy;

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use engine::{Address, ResourceSpec};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Extra generated objects to measure plan at.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    pub objects: Vec<usize>,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seconds one measurement may take: no further run starts once they are spent (one run
    /// always happens), so the large sizes get fewer runs and the whole bench stays bounded.
    #[arg(long, default_value_t = 60)]
    pub budget: u64,
}

struct Bench {
    xtask: PathBuf,
    kubectl: String,
    helm: String,
    kubeconfig: String,
    mirror: Option<String>,
    infra: PathBuf,
    work: PathBuf,
}

impl Bench {
    fn xtask(&self, args: &[&str], kubeconfig: &str) -> Command {
        let mut c = Command::new(&self.xtask);
        c.args(args)
            .args(["--env", "kwok", "--infra"])
            .arg(&self.infra);
        if let Some(m) = &self.mirror {
            c.args(["--mirror", m]);
        }
        c.env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env("ENVCTL_HELM", &self.helm)
            .stdin(Stdio::null());
        c
    }

    fn run_xtask(&self, args: &[&str]) -> anyhow::Result<String> {
        run_ok(&mut self.xtask(args, &self.kubeconfig), &args.join(" "))
    }

    /// A steady-state plan (exit 0 required: nothing to change).
    fn plan(&self, kubeconfig: &str) -> anyhow::Result<()> {
        let out = self
            .xtask(&["plan", "--detailed-exitcode"], kubeconfig)
            .output()?;
        if out.status.code() != Some(0) {
            bail!(
                "plan found changes in a steady state:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn kubectl_diff(&self, manifests: &Path, kubeconfig: &str) -> anyhow::Result<()> {
        let out = Command::new(&self.kubectl)
            .args([
                "diff",
                "--server-side",
                "--field-manager=envctl",
                "--force-conflicts",
                "-f",
            ])
            .arg(manifests)
            .env("KUBECONFIG", kubeconfig)
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
    }

    /// `helm upgrade --dry-run=server` of each release with its deployed values.
    fn helm_diffs(&self, releases: &[Release], kubeconfig: &str) -> anyhow::Result<()> {
        for r in releases {
            let out = Command::new(&self.helm)
                .args(["upgrade", &r.name])
                .arg(&r.chart)
                .args(["--namespace", &r.namespace, "--dry-run=server", "--values"])
                .arg(&r.values)
                .env("KUBECONFIG", kubeconfig)
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                bail!(
                    "helm upgrade --dry-run {} failed: {}",
                    r.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(())
    }

    /// The objects as apply sends them, for `kubectl diff -f`.
    fn sent_objects(&self, name: &str) -> anyhow::Result<(PathBuf, usize)> {
        let sent = self
            .xtask(&["render", "--as-applied"], &self.kubeconfig)
            .output()
            .context("render --as-applied")?;
        if !sent.status.success() {
            bail!(
                "render --as-applied failed: {}",
                String::from_utf8_lossy(&sent.stderr)
            );
        }
        let path = self.work.join(name);
        std::fs::write(&path, &sent.stdout)?;
        let count = serde_json::from_slice::<serde_json::Value>(&sent.stdout)?["items"]
            .as_array()
            .map_or(0, Vec::len);
        Ok((path, count))
    }

    /// Apply from what is there, timed; each resource's time from its first progress event to
    /// its `Done` (read as JSON events: `ENVCTL_PROGRESS=json`).
    fn timed_apply(&self) -> anyhow::Result<(Duration, BTreeMap<String, Duration>)> {
        let start = Instant::now();
        let mut child = self
            .xtask(&["apply", "--auto-approve"], &self.kubeconfig)
            .env("ENVCTL_PROGRESS", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped");
        let mut started: BTreeMap<String, Instant> = BTreeMap::new();
        let mut took: BTreeMap<String, Duration> = BTreeMap::new();
        let mut transcript = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line?;
            let now = Instant::now();
            // Anything else on stderr (the error at the end) is not an event.
            let Ok(event) = serde_json::from_str::<live::Progress>(&line) else {
                transcript.push_str(&line);
                transcript.push('\n');
                continue;
            };
            transcript.push_str(&event.to_string());
            transcript.push('\n');
            let address = event.address();
            if address.parse::<Address>().is_err() {
                continue;
            }
            let first = *started.entry(address.to_owned()).or_insert(now);
            if let live::Progress::Done { .. } = event {
                took.insert(address.to_owned(), now - first);
            }
        }
        let status = child.wait()?;
        let elapsed = start.elapsed();
        if !status.success() {
            bail!("apply failed:\n{transcript}");
        }
        Ok((elapsed, took))
    }

    fn destroy(&self) -> anyhow::Result<()> {
        self.run_xtask(&["destroy", "--auto-approve"]).map(drop)
    }
}

/// One Helm release of the environment, with its deployed values saved to a file.
struct Release {
    name: String,
    namespace: String,
    chart: PathBuf,
    values: PathBuf,
}

/// The longest chain by the time each resource took, and its total: `order` is a topological
/// order, `before(a)` what `a` waits for (a resource not in `took` counts 0).
fn critical_path(
    order: &[Address],
    before: impl Fn(&Address) -> Vec<Address>,
    took: &BTreeMap<String, Duration>,
) -> (Duration, Vec<String>) {
    let mut best: BTreeMap<&Address, (Duration, Option<Address>)> = BTreeMap::new();
    for address in order {
        let own = took.get(&address.to_string()).copied().unwrap_or_default();
        let longest = before(address)
            .into_iter()
            .filter_map(|d| best.get(&d).map(|v| (d, v.0)))
            .max_by_key(|(_, d)| *d);
        let entry = match longest {
            Some((a, d)) => (d + own, Some(a)),
            None => (own, None),
        };
        best.insert(address, entry);
    }
    let Some((last, total)) = best
        .iter()
        .max_by_key(|(_, v)| v.0)
        .map(|(a, v)| ((*a).clone(), v.0))
    else {
        return (Duration::ZERO, Vec::new());
    };
    let mut chain = vec![last.to_string()];
    let mut at = last;
    while let Some((_, Some(prev))) = best.get(&at) {
        chain.push(prev.to_string());
        at = prev.clone();
    }
    chain.reverse();
    (total, chain)
}

/// What apply waits for before `address`: its dependencies in the graph, and the changes the
/// plan says it waits for (`waits_for` naming addresses: a custom resource waits for the
/// releases whose CRDs it needs).
fn waits_of(
    graph: &engine::Graph,
    plan_waits: &BTreeMap<String, Vec<Address>>,
    address: &Address,
) -> Vec<Address> {
    let mut out: Vec<Address> = graph
        .dependencies_of(address)
        .into_iter()
        .map(|e| e.from.clone())
        .collect();
    out.extend(
        plan_waits
            .get(&address.to_string())
            .into_iter()
            .flatten()
            .cloned(),
    );
    out
}

/// Each change's `waits_for` that names an address, from the JSON plan (from empty).
fn plan_waits(plan_json: &str) -> anyhow::Result<BTreeMap<String, Vec<Address>>> {
    let plan: serde_json::Value = serde_json::from_str(plan_json).context("plan --output json")?;
    let mut out = BTreeMap::new();
    for change in plan["resource_changes"].as_array().into_iter().flatten() {
        let waits: Vec<Address> = change["waits_for"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str()?.parse().ok())
            .collect();
        if let (Some(address), false) = (change["address"].as_str(), waits.is_empty()) {
            out.insert(address.to_owned(), waits);
        }
    }
    Ok(out)
}

pub fn main(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let kubeconfig = std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()).context(
        "the benchmark runs against the testenv: `cargo xtask testenv up` and `eval \"$(cargo xtask testenv env)\"` first",
    )?;
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.into())
    };
    let work = std::env::temp_dir().join(format!("envctl-bench-{}", std::process::id()));
    copy_dir(
        &crate::environment::repo_root().join("infra"),
        &work.join("infra"),
    )?;
    let bench = Bench {
        xtask: std::env::current_exe()?,
        kubectl: var("ENVCTL_KUBECTL", "kubectl"),
        helm: var("ENVCTL_HELM", "helm"),
        kubeconfig,
        mirror: std::env::var("ENVCTL_MIRROR").ok(),
        infra: work.join("infra"),
        work: work.clone(),
    };
    let result = measure(&bench, args);
    // Leave the testenv as it was: the extra objects go with their namespace first (the
    // server deletes its content at once; destroy would delete 5000 objects one by one).
    let _ = Command::new(&bench.kubectl)
        .args([
            "delete",
            "namespace",
            "envctl-bench",
            "--ignore-not-found",
            "--wait=true",
        ])
        .env("KUBECONFIG", &bench.kubeconfig)
        .output();
    let _ = write_generated(&bench.infra, 0);
    let _ = bench.destroy();
    let _ = std::fs::remove_dir_all(&work);
    let table = result?;
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// Adds a row, and shows it at once on stderr (a long run that is stopped keeps its rows).
fn push_row(rows: &mut Vec<[String; 4]>, row: [String; 4]) {
    eprintln!("bench: | {} |", row.join(" | "));
    rows.push(row);
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
}

fn measure(bench: &Bench, args: &BenchArgs) -> anyhow::Result<String> {
    let loaded = crate::environment::load(&crate::environment::EnvArgs {
        env: Some("kwok".into()),
        infra: Some(bench.infra.clone()),
    })?;
    let graph = &loaded.graph;
    let mut rows: Vec<[String; 4]> = Vec::new();
    let budget = Duration::from_secs(args.budget);
    let began = Instant::now();

    // Apply from empty, and its critical path.
    eprintln!("bench: apply from empty ({} runs)", args.runs);
    // What each change waits for besides the graph's edges, from the plan from empty.
    bench.destroy()?;
    let waits = plan_waits(&bench.run_xtask(&["plan", "--output", "json"])?)?;
    // Each run's apply with the critical path of that same run; the median run is shown.
    let mut applies: Vec<(Duration, Duration, Vec<String>)> = Vec::new();
    let applying = Instant::now();
    while applies.len() < args.runs.max(1) && (applies.is_empty() || applying.elapsed() < budget) {
        bench.destroy()?;
        let (total, took) = bench.timed_apply()?;
        let (path, chain) = critical_path(graph.order(), |a| waits_of(graph, &waits, a), &took);
        eprintln!(
            "bench: apply {} / critical path {} ({:.2})",
            secs(total),
            secs(path),
            total.as_secs_f64() / path.as_secs_f64()
        );
        applies.push((total, path, chain));
    }
    applies.sort_by_key(|run| run.0);
    let (apply, path, chain) = applies.swap_remove(applies.len() / 2);
    push_row(
        &mut rows,
        [
            "apply from empty / critical path of its waits".into(),
            secs(apply),
            format!("{} ({} steps)", secs(path), chain.len()),
            ratio(apply, path),
        ],
    );

    // Steady state: plan vs kubectl diff + the releases' dry-run upgrades.
    let releases = save_release_values(bench, graph)?;
    let (manifests, count) = bench.sent_objects("sent-0.json")?;
    eprintln!(
        "bench: steady-state plan ({count} objects, {} releases)",
        releases.len()
    );
    let plan = median(args.runs, budget, || bench.plan(&bench.kubeconfig))?;
    let kubectl_only = median(args.runs, budget, || {
        bench.kubectl_diff(&manifests, &bench.kubeconfig)
    })?;
    let both = median(args.runs, budget, || {
        bench.kubectl_diff(&manifests, &bench.kubeconfig)?;
        bench.helm_diffs(&releases, &bench.kubeconfig)
    })?;
    push_row(
        &mut rows,
        [
            format!(
                "steady-state plan / kubectl diff ({count} objects) + helm upgrade --dry-run=server ({} releases)",
                releases.len()
            ),
            secs(plan),
            format!("{} (kubectl diff alone {})", secs(both), secs(kubectl_only)),
            ratio(plan, both),
        ],
    );

    // Requests by verb, through the counting proxy.
    let counted = proxy::Counted::start(
        std::path::Path::new(&bench.kubectl),
        std::path::Path::new(&bench.kubeconfig),
        &bench.work.join("counted.kubeconfig"),
    )
    .context("starting the counting proxy")?;
    let (counter, counted_str) = (&counted.counter, counted.kubeconfig.display().to_string());
    let result = (|| -> anyhow::Result<()> {
        bench.plan(&counted_str)?; // warm-up (kubectl's discovery cache, say)
        bench.kubectl_diff(&manifests, &counted_str)?;
        counter.take();
        bench.plan(&counted_str)?;
        let envctl = counter.take();
        bench.kubectl_diff(&manifests, &counted_str)?;
        let kubectl = counter.take();
        bench.helm_diffs(&releases, &counted_str)?;
        let helm = counter.take();
        push_row(
            &mut rows,
            [
                "requests per steady-state plan, by verb: envctl / kubectl diff + helm".into(),
                verbs(&envctl),
                format!("{} + {}", verbs(&kubectl), verbs(&helm)),
                format!(
                    "{:.2}",
                    envctl.values().sum::<usize>() as f64
                        / (kubectl.values().sum::<usize>() + helm.values().sum::<usize>()) as f64
                ),
            ],
        );
        run_ok(
            &mut bench.xtask(&["apply", "--auto-approve"], &counted_str),
            "apply after apply",
        )?;
        let again = counter.take();
        let writes: usize = again
            .iter()
            .filter(|(r, _)| r.is_write() && !r.lock)
            .map(|(_, n)| n)
            .sum();
        push_row(
            &mut rows,
            [
                "apply right after apply: writes sent, besides the lock's Lease (all requests)"
                    .into(),
                format!("{writes} ({})", verbs(&again)),
                String::new(),
                String::new(),
            ],
        );
        Ok(())
    })();
    drop(counted);
    result?;

    // Extra objects.
    let mut plans = Vec::new();
    for &n in &args.objects {
        write_generated(&bench.infra, n)?;
        eprintln!(
            "bench: {n} extra objects ({:.0} s so far)",
            began.elapsed().as_secs_f64()
        );
        // Created with many changes in flight: this is setup, not a measure.
        bench.run_xtask(&["apply", "--auto-approve", "--parallelism", "64"])?;
        let (manifests, count) = bench.sent_objects(&format!("sent-{n}.json"))?;
        let plan = median(args.runs, budget, || bench.plan(&bench.kubeconfig))?;
        let diff = median(args.runs, budget, || {
            bench.kubectl_diff(&manifests, &bench.kubeconfig)
        })?;
        push_row(
            &mut rows,
            [
                format!("plan / kubectl diff, {n} extra objects ({count} objects)"),
                secs(plan),
                secs(diff),
                ratio(plan, diff),
            ],
        );
        plans.push((n, plan));
    }
    for pair in plans.windows(2) {
        let ((a, ta), (b, tb)) = (pair[0], pair[1]);
        push_row(
            &mut rows,
            [
                format!("plan({b} extra) / plan({a} extra)"),
                secs(tb),
                secs(ta),
                ratio(tb, ta),
            ],
        );
    }

    let mut table = format!(
        "Whole environment (`--env kwok`, charts: {}), median of up to {} runs within {} s per \
         measurement, {} cores, whole bench {:.0} s.\n\n\
         | measure | envctl | compared with | ratio |\n|---|---|---|---|\n",
        charts_used(graph),
        args.runs.max(1),
        args.budget,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        began.elapsed().as_secs_f64()
    );
    for [a, b, c, d] in rows {
        table.push_str(&format!("| {a} | {b} | {c} | {d} |\n"));
    }
    table.push_str(&format!("\nCritical path: {}\n", chain.join(" → ")));
    Ok(table)
}

fn charts_used(graph: &engine::Graph) -> String {
    let mut out: Vec<String> = graph
        .resources()
        .filter_map(|r| match &r.spec {
            ResourceSpec::HelmRelease(spec) => Some(match &spec.chart.path {
                Some(p) => format!("{} from {p}", spec.chart.chart),
                None => format!("{} {}", spec.chart.chart, spec.chart.version),
            }),
            _ => None,
        })
        .collect();
    out.sort();
    out.join(", ")
}

fn verbs(counts: &BTreeMap<proxy::Request, usize>) -> String {
    let total: usize = counts.values().sum();
    let each: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    format!("{total}: {}", each.join(", "))
}

/// The deployed values of each release, in private files (they may hold secrets).
fn save_release_values(bench: &Bench, graph: &engine::Graph) -> anyhow::Result<Vec<Release>> {
    let mut out = Vec::new();
    let helm = live::helm::Helm::locate(None, None)?.with_charts(live::charts::ChartStore::new(
        bench.mirror.as_ref().map(PathBuf::from),
        live::charts::ChartStore::default_cache(),
    ));
    for resource in graph.resources() {
        let ResourceSpec::HelmRelease(spec) = &resource.spec else {
            continue;
        };
        // The chart as envctl renders it (mirror, cache or local directory).
        let chart_ref = live::helm::ChartRef::from_source(&spec.chart, &bench.infra)
            .with_context(|| format!("{}: no chart source", resource.address))?;
        let chart = helm
            .chart_path(&chart_ref, &bench.work)
            .map_err(|e| anyhow::anyhow!("{}: {e}", resource.address))?;
        let values = Command::new(&bench.helm)
            .args([
                "get",
                "values",
                &spec.release,
                "-n",
                &spec.namespace,
                "-o",
                "json",
            ])
            .env("KUBECONFIG", &bench.kubeconfig)
            .output()?;
        if !values.status.success() {
            bail!("helm get values {}", spec.release);
        }
        let path = bench.work.join(format!("{}.values.json", spec.release));
        write_private(&path, &values.stdout)?;
        out.push(Release {
            name: spec.release.clone(),
            namespace: spec.namespace.clone(),
            chart,
            values: path,
        });
    }
    Ok(out)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)?;
    Ok(())
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The median of up to `runs` runs of `f`, starting no further run once `budget` is spent.
fn median(
    runs: usize,
    budget: Duration,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    let begin = Instant::now();
    while times.len() < runs.max(1) && (times.is_empty() || begin.elapsed() < budget) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median_of(times))
}

fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_starts_no_further_run_but_one_run_always_happens() {
        let mut calls = 0;
        let slow = median(5, Duration::from_millis(30), || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            calls, 2,
            "the second run starts within the budget, a third does not"
        );
        assert!(slow >= Duration::from_millis(20));
        let mut calls = 0;
        median(3, Duration::ZERO, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_critical_path_follows_the_longest_chain_of_waits_and_plan_waits_count() {
        let a = |s: &str| s.parse::<Address>().unwrap();
        let order = [
            a("m.object.namespace/x"),
            a("m.helm_release.base"),
            a("m.helm_release.dex"),
            a("m.object.configmap/x/c"),
        ];
        let took: BTreeMap<String, Duration> = [
            ("m.object.namespace/x", 1),
            ("m.helm_release.base", 10),
            ("m.helm_release.dex", 4),
            ("m.object.configmap/x/c", 2),
        ]
        .into_iter()
        .map(|(k, s)| (k.to_owned(), Duration::from_secs(s)))
        .collect();
        // Graph edges only: the config map follows the namespace and dex (1 + 4 + 2), base
        // alone is 1 + 10.
        let graph_edges = |x: &Address| -> Vec<Address> {
            match x.to_string().as_str() {
                "m.helm_release.base" | "m.helm_release.dex" => vec![a("m.object.namespace/x")],
                "m.object.configmap/x/c" => vec![a("m.helm_release.dex")],
                _ => vec![],
            }
        };
        let (total, chain) = critical_path(&order, graph_edges, &took);
        assert_eq!(total, Duration::from_secs(11));
        assert_eq!(chain, ["m.object.namespace/x", "m.helm_release.base"]);
        // The plan says the config map also waits for base: 1 + 10 + 2.
        let with_plan = |x: &Address| {
            let mut out = graph_edges(x);
            if x.to_string() == "m.object.configmap/x/c" {
                out.push(a("m.helm_release.base"));
            }
            out
        };
        let (total, chain) = critical_path(&order, with_plan, &took);
        assert_eq!(total, Duration::from_secs(13));
        assert_eq!(
            chain,
            [
                "m.object.namespace/x",
                "m.helm_release.base",
                "m.object.configmap/x/c"
            ]
        );
    }

    #[test]
    fn plan_waits_keep_the_addresses_and_drop_crd_names() {
        let json = r#"{"resource_changes": [
            {"address": "p.object.authorizationpolicy/d/x", "waits_for": ["m.helm_release.istiod", "customresourcedefinition/a.b"]},
            {"address": "g.object.httproute/d/r", "waits_for": ["customresourcedefinition/httproutes.g"]},
            {"address": "m.helm_release.istiod", "waits_for": []}]}"#;
        let waits = plan_waits(json).unwrap();
        assert_eq!(waits.len(), 1);
        assert_eq!(
            waits["p.object.authorizationpolicy/d/x"],
            vec!["m.helm_release.istiod".parse::<Address>().unwrap()]
        );
    }

    #[test]
    fn the_median_is_the_middle_run() {
        let t = |s| Duration::from_secs(s);
        assert_eq!(median_of(vec![t(5), t(1), t(3)]), t(3));
        assert_eq!(median_of(vec![]), Duration::ZERO);
    }
}
