//! Transient faults of the API server during `cargo xtask apply` (the `gateway` module: CRDs,
//! a namespace, a Gateway, nginx and its route), against the testenv:
//!
//! - the testenv's kube-apiserver is stopped (SIGTERM) and started again (its own command line,
//!   read from /proc) in the middle of an apply, at several points: the run either completes
//!   after retries or fails naming the resource and "run apply again"; the next apply
//!   converges and the plan after it says No changes;
//! - the kube-apiserver is frozen (SIGSTOP) in the middle of an apply for longer than the
//!   client's read timeout, retry budget and wait timeout (all shortened through their
//!   environment variables): the run ends on its own while the server is still frozen, with
//!   "run apply again"; after SIGCONT the next apply converges;
//! - frozen for 12 seconds only (longer than the read timeout), the run rides it out.
//!
//! One scenario, in order: this file is its own test binary and disturbs the whole testenv, so
//! nothing else may run beside it.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e::{InfraCopy, describe};

/// kwokctl's pid file of a component of the testenv (`<cluster dir>/pids/`, beside the
/// kubeconfig).
fn pid_file(component: &str) -> PathBuf {
    let kubeconfig = e2e::kubeconfig();
    let path = kubeconfig
        .parent()
        .expect("the kubeconfig is in the cluster's directory")
        .join(format!("pids/{component}.pid"));
    assert!(path.is_file(), "no pid file at {}", path.display());
    path
}

fn pid_of(component: &str) -> u32 {
    let path = pid_file(component);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        // A zombie (state Z) is gone for our purpose.
        .is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Blocks until the API server answers `/readyz` (bounded).
fn wait_ready(within: Duration) {
    let start = Instant::now();
    loop {
        let output = Command::new(e2e::kubectl_binary())
            .args(["get", "--raw=/readyz", "--request-timeout=3s"])
            .env("KUBECONFIG", e2e::kubeconfig())
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl");
        if output.status.success() {
            return;
        }
        assert!(
            start.elapsed() < within,
            "the API server is not ready {}s after its restart: {}",
            within.as_secs(),
            describe(&output)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `kwokctl start cluster` for the testenv: starts every component whose process is gone (it
/// reads kwokctl's pid files), leaving the running ones alone. kwokctl's own supervisor, in
/// effect: used to start the API server again, and the controllers that exit when they lose
/// their leader lease while it is away.
fn kwokctl_start() {
    let kubeconfig = e2e::kubeconfig();
    let cluster_dir = kubeconfig.parent().expect("the cluster's directory");
    let name = cluster_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("the cluster's name");
    let workdir = cluster_dir
        .parent()
        .and_then(|p| p.parent())
        .expect("kwokctl's workdir");
    let kwokctl = PathBuf::from(std::env::var("ENVCTL_TESTENV").expect("ENVCTL_TESTENV"))
        .join("path/kwokctl");
    let output = Command::new(&kwokctl)
        .args(["start", "cluster", "--name", name])
        .env("KWOK_WORKDIR", workdir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", kwokctl.display()));
    assert!(
        output.status.success(),
        "kwokctl start cluster: {}",
        describe(&output)
    );
}

/// The controllers that exit when they lose their leader lease while the API server is away.
const CONTROLLERS: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// Starts again the controllers that are gone, if any (kwokctl leaves the running ones alone).
fn start_dead_controllers() {
    let dead: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| !alive(pid_of(c)))
        .collect();
    if !dead.is_empty() {
        eprintln!(
            "-- {} exited while the API server was away; starting again",
            dead.join(", ")
        );
        kwokctl_start();
    }
}

/// Once the API server answers, starts again what exited meanwhile.
///
/// A controller that lost its lease notices within its renew deadline (10s) and exits only
/// then, later still on a loaded machine: watch for 25s (bounded), not just once, so that one
/// exiting after a single look is not left dead for the rest of the test (its Services would
/// keep their `foregroundDeletion` finalizer, and the cleanup destroy would wait in vain).
fn revive() {
    wait_ready(Duration::from_secs(90));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_secs(1));
        start_dead_controllers();
    }
}

/// Stops the kube-apiserver (SIGTERM as kwokctl does; SIGKILL after 3s, since it drains its
/// watches for up to a minute and its port may be taken meanwhile on a shared machine), keeps
/// it down for `down`, and starts it again; returns once it answers and the controllers run.
fn restart_apiserver(down: Duration) {
    let pid = pid_of("kube-apiserver");
    signal(pid, "TERM");
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > Duration::from_secs(3) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "kube-apiserver {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(down);
    kwokctl_start();
    revive();
}

/// SIGCONT on drop: a frozen API server never outlives the test.
struct Frozen(u32);

impl Frozen {
    fn freeze() -> Frozen {
        let pid = pid_of("kube-apiserver");
        signal(pid, "STOP");
        Frozen(pid)
    }

    /// SIGCONT, and the controllers that gave up meanwhile started again.
    fn thaw(self) {
        drop(self);
        revive();
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// A finished run: exit status, all it printed, and when it ended.
struct Run {
    success: bool,
    text: String,
    took: Duration,
}

impl Run {
    /// Prints what the run printed, under `what` and how long it took.
    fn show(&self, what: &str) {
        eprintln!("--- {what} ({}s):\n{}", self.took.as_secs(), self.text);
    }

    /// [`Run::show`], and the run's line of the test's figures: completed or not, in how long.
    fn figure(&self, what: &str) -> String {
        self.show(what);
        let ended = if self.success {
            "completed"
        } else {
            "failed, run apply again"
        };
        format!("{what}: {ended} in {}s", self.took.as_secs())
    }
}

/// Runs `cargo xtask <args> --env kwok --module gateway --infra <copy>` with `env`; once
/// `trigger` lines of stderr contain "Creation complete", calls `fault` (on this thread, while
/// the run goes on). Bounded by `limit`.
fn run_with_fault(
    infra: &InfraCopy,
    args: &[&str],
    env: &[(&str, &str)],
    trigger: usize,
    limit: Duration,
    mut fault: impl FnMut(),
) -> Run {
    let bin = std::env::var("ENVCTL_XTASK").expect("ENVCTL_XTASK (run through cargo xtask test)");
    let start = Instant::now();
    let mut child = Command::new(&bin)
        .args(infra.gateway_args(args))
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cargo xtask");
    let (lines, received) = mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let err_lines = lines.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_lines.send(format!("E {line}"));
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(format!("O {line}"));
            }
        }),
    ];
    let mut text = String::new();
    let mut completed = 0;
    let mut fired = trigger == 0;
    if fired {
        fault();
    }
    let status = loop {
        while let Ok(line) = received.try_recv() {
            if line.starts_with("E ") && line.contains("Creation complete") {
                completed += 1;
            }
            text.push_str(&line);
            text.push('\n');
            if !fired && completed >= trigger {
                fired = true;
                text.push_str(&format!("-- fault at {}s\n", start.elapsed().as_secs()));
                fault();
                text.push_str(&format!(
                    "-- fault over at {}s\n",
                    start.elapsed().as_secs()
                ));
            }
        }
        if let Some(status) = child.try_wait().expect("polling the run") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run did not end within {}s:\n{text}", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    for reader in readers {
        let _ = reader.join();
    }
    while let Ok(line) = received.try_recv() {
        text.push_str(&line);
        text.push('\n');
    }
    assert!(
        fired,
        "the run ended before {trigger} resources were created:\n{text}"
    );
    Run {
        success: status.success(),
        text,
        took,
    }
}

/// A run that failed must name a resource of the module and say to run apply again.
fn assert_recoverable(run: &Run) {
    if !run.success {
        assert!(
            run.text.contains("run apply again") || run.text.contains("run apply (or plan) again"),
            "a failed run says to run apply again:\n{}",
            run.text
        );
        // The resource's line says why, or the line after it does (a failure the next run
        // gets past prints "the API server did not answer in time" under its address).
        let lines: Vec<&str> = run.text.lines().collect();
        let says_why = |l: &str| l.contains("did not answer") || l.contains("gave up after");
        assert!(
            lines.iter().enumerate().any(|(i, l)| l.starts_with("E ")
                && l.contains("gateway.object.")
                && (says_why(l) || lines.get(i + 1).is_some_and(|next| says_why(next)))),
            "the failure names the resource:\n{}",
            run.text
        );
    }
}

/// The next apply converges and the plan after it says No changes.
fn assert_converges(infra: &InfraCopy) {
    let applied = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(
        applied.status.success(),
        "apply after the fault: {}",
        describe(&applied)
    );
    let plan = infra.xtask_gateway(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan after the fault: {}",
        describe(&plan)
    );
    assert!(String::from_utf8_lossy(&plan.stdout).contains("No changes."));
}

fn destroy(infra: &InfraCopy) {
    // Deletion with finalizers needs the controller manager.
    start_dead_controllers();
    let destroyed = infra.xtask_gateway(&["destroy", "--auto-approve"]);
    assert!(
        destroyed.status.success(),
        "destroy: {}",
        describe(&destroyed)
    );
}

#[test]
fn apply_survives_apiserver_restarts_and_stalls_or_says_run_apply_again() {
    let infra = InfraCopy::new();
    // A testenv an earlier run of this test left with its controllers stopped is whole again.
    revive();
    // From nothing, whatever an earlier run of this test left.
    destroy(&infra);
    let mut figures = Vec::new();

    // 1. Restarts in the middle of an apply, after 1, 3 and 6 resources were created.
    for trigger in [1, 3, 6] {
        let run = run_with_fault(
            &infra,
            &["apply", "--auto-approve"],
            &[],
            trigger,
            Duration::from_secs(400),
            || restart_apiserver(Duration::from_secs(2)),
        );
        figures.push(run.figure(&format!("restart after {trigger} creations")));
        assert_recoverable(&run);
        assert_converges(&infra);
        destroy(&infra);
    }

    // 2. Frozen for longer than every timeout: the run ends while the server is still frozen.
    // (A server-side apply of the largest Gateway API CRD can take several seconds on a loaded
    // 2-core machine: the read timeout stays above that.)
    let short = [
        ("ENVCTL_API_CONNECT_TIMEOUT", "5"),
        ("ENVCTL_API_READ_TIMEOUT", "10"),
        ("ENVCTL_API_RETRY_FOR", "15"),
        ("ENVCTL_WAIT_TIMEOUT", "20"),
    ];
    let mut frozen = None;
    let mut frozen_at = None;
    let run = run_with_fault(
        &infra,
        &["apply", "--auto-approve"],
        &short,
        2,
        Duration::from_secs(240),
        || {
            frozen = Some(Frozen::freeze());
            frozen_at = Some(Instant::now());
        },
    );
    let frozen_for = frozen_at.expect("frozen").elapsed();
    run.show("frozen for good after 2 creations");
    assert!(
        !run.success,
        "nothing can complete while the server is frozen:\n{}",
        run.text
    );
    assert_recoverable(&run);
    // Deadline: with parallel apply every change in flight finishes its step first (a request:
    // 15s of retries plus one 10s read; a wait: 20s), then the lock's release gets its own
    // request budget. Bounded, not hung: well under the run's limit.
    assert!(
        frozen_for < Duration::from_secs(150),
        "the run ended {}s after the freeze",
        frozen_for.as_secs()
    );
    figures.push(format!(
        "frozen for good after 2 creations: failed {}s after the freeze",
        frozen_for.as_secs()
    ));
    frozen.take().expect("frozen").thaw();
    assert_converges(&infra);
    destroy(&infra);

    // 3. Frozen for 12s (longer than the 6s read timeout, shorter than the retry budget).
    let run = run_with_fault(
        &infra,
        &["apply", "--auto-approve"],
        &[
            ("ENVCTL_API_CONNECT_TIMEOUT", "5"),
            ("ENVCTL_API_READ_TIMEOUT", "6"),
            ("ENVCTL_API_RETRY_FOR", "40"),
        ],
        2,
        Duration::from_secs(300),
        || {
            let frozen = Frozen::freeze();
            std::thread::sleep(Duration::from_secs(12));
            frozen.thaw();
        },
    );
    figures.push(run.figure("frozen for 12s after 2 creations"));
    assert_recoverable(&run);
    assert_converges(&infra);
    destroy(&infra);

    eprintln!("figures:\n{}", figures.join("\n"));
}
