//! `cargo xtask testenv`: a real Kubernetes control plane for the integration tests.
//!
//! kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (k8s.io/kubernetes),
//! etcd, kwok/kwokctl, helm, kind, Dex and OAuth2 Proxy are built from Go modules at the versions pinned in
//! `infra/testenv/versions.yaml` and cached by version under `~/.cache/envctl/testenv/`
//! (`$ENVCTL_CACHE_DIR/testenv` if set). `kwokctl --runtime binary` runs the control plane as
//! local processes bound to 127.0.0.1; the kwok controller simulates one node on which pods are
//! scheduled and become Ready. Nothing is downloaded at run time but Go modules.
//!
//! The environment the tests get (see `Testenv::vars`): `KUBECONFIG`, `ENVCTL_TESTENV` (the
//! cache directory), `ENVCTL_HELM`, `ENVCTL_KUBECTL`, `ENVCTL_DEX`, `ENVCTL_OAUTH2_PROXY`,
//! `ENVCTL_MIRROR` (the
//! offline mirror of upstream files and the real charts, `../shared/mirror` by default),
//! `ENVCTL_XTASK` (the xtask binary itself) and `PATH` with the testenv's binaries first.

mod go_build;
mod pins;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use xshell::Shell;

use pins::GoBuild;
pub use pins::Pins;

#[derive(Subcommand)]
pub enum TestenvCommand {
    /// Build what is missing, start the cluster, print where its kubeconfig is.
    Up,
    /// Stop every process of the cluster and remove its state.
    Down,
    /// Say what runs.
    Status,
    /// Print `export KUBECONFIG=...` lines for a shell (`eval "$(cargo xtask testenv env)"`).
    Env,
}

/// Entry point of `cargo xtask testenv <command>`.
pub fn main(command: TestenvCommand) -> ExitCode {
    let result = Shell::new()
        .map_err(anyhow::Error::from)
        .and_then(|sh| run(&sh, command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The pins of `infra/testenv/versions.yaml`.
pub fn load_pins(layout: &Layout) -> Result<Pins> {
    layout.pins()
}

fn run(sh: &Shell, command: TestenvCommand) -> Result<()> {
    let layout = Layout::discover()?;
    let pins = layout.pins()?;
    match command {
        TestenvCommand::Up => {
            let testenv = up(sh, &layout, &pins)?;
            println!(
                "testenv is up; kubeconfig: {}",
                testenv.kubeconfig.display()
            );
            println!("use it with: eval \"$(cargo xtask testenv env)\"");
        }
        TestenvCommand::Down => down(sh, &layout, &pins)?,
        TestenvCommand::Status => status(sh, &layout, &pins)?,
        TestenvCommand::Env => {
            if !layout.kubeconfig(&pins).is_file() {
                bail!("the testenv is not up: run `cargo xtask testenv up` first");
            }
            for (key, value) in Testenv::new(&layout, &pins).vars() {
                println!("export {key}='{value}'");
            }
        }
    }
    Ok(())
}

/// Where things are: the repository and the cache.
pub struct Layout {
    /// The repository root.
    pub root: PathBuf,
    /// `~/.cache/envctl/testenv`.
    pub cache: PathBuf,
}

impl Layout {
    pub fn discover() -> Result<Layout> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let cache = match std::env::var_os("ENVCTL_CACHE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("XDG_CACHE_HOME") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("envctl"),
                _ => {
                    let home = std::env::var_os("HOME")
                        .context("HOME is not set: set ENVCTL_CACHE_DIR to a cache directory")?;
                    PathBuf::from(home).join(".cache/envctl")
                }
            },
        };
        Ok(Layout {
            root,
            cache: cache.join("testenv"),
        })
    }

    fn pins(&self) -> Result<Pins> {
        Pins::load(&self.testenv_infra().join("versions.yaml"))
    }

    fn testenv_infra(&self) -> PathBuf {
        self.root.join("infra/testenv")
    }

    fn bin_dir(&self, build: &GoBuild) -> PathBuf {
        self.cache
            .join("bin")
            .join(format!("{}-{}", build.name, build.version))
    }

    fn src_dir(&self, build: &GoBuild) -> PathBuf {
        self.cache
            .join("src")
            .join(format!("{}-{}", build.name, build.version))
    }

    fn binary(&self, pins: &Pins, name: &str) -> Result<PathBuf> {
        Ok(self.bin_dir(pins.build_of(name)?).join(name))
    }

    /// Symlinks to the pinned binaries, for PATH.
    fn path_dir(&self) -> PathBuf {
        self.cache.join("path")
    }

    /// Where kwokctl keeps its clusters: `$ENVCTL_TESTENV_WORKDIR` if set, so that several
    /// checkouts on one machine can each run their own testenv (kwokctl picks free ports), else
    /// `~/.cache/envctl/testenv/kwok`. The built binaries are shared either way.
    fn kwok_workdir(&self) -> PathBuf {
        match std::env::var_os("ENVCTL_TESTENV_WORKDIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => self.cache.join("kwok"),
        }
    }

    fn cluster_dir(&self, pins: &Pins) -> PathBuf {
        self.kwok_workdir()
            .join("clusters")
            .join(&pins.cluster.name)
    }

    fn kubeconfig(&self, pins: &Pins) -> PathBuf {
        self.cluster_dir(pins).join("kubeconfig.yaml")
    }

    /// The offline mirror of upstream files: `$ENVCTL_MIRROR`, else `../shared/mirror`.
    pub(crate) fn mirror_dir(&self) -> PathBuf {
        match std::env::var_os("ENVCTL_MIRROR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => self.root.join("../shared/mirror"),
        }
    }
}

/// The path of this binary for the CLI tests. `cargo test` in the unit-test phase may relink
/// `target/debug/xtask` (dev-dependencies unify other features) while this process runs from
/// it; Linux then reports our own path with a " (deleted)" suffix, and the file at the plain
/// path is the same source's new build.
fn xtask_binary() -> String {
    let path = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match path.strip_suffix(" (deleted)") {
        Some(plain) => plain.to_string(),
        None => path,
    }
}

/// A running testenv: what a process needs to use it.
pub struct Testenv {
    pub kubeconfig: PathBuf,
    vars: Vec<(String, String)>,
}

impl Testenv {
    fn new(layout: &Layout, pins: &Pins) -> Testenv {
        let kubeconfig = layout.kubeconfig(pins);
        let binary = |name: &str| {
            layout
                .binary(pins, name)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let path = match std::env::var("PATH") {
            Ok(path) if !path.is_empty() => format!("{}:{path}", layout.path_dir().display()),
            _ => layout.path_dir().display().to_string(),
        };
        let vars = vec![
            ("KUBECONFIG".to_string(), kubeconfig.display().to_string()),
            (
                "ENVCTL_TESTENV".to_string(),
                layout.cache.display().to_string(),
            ),
            ("ENVCTL_HELM".to_string(), binary("helm")),
            ("ENVCTL_KUBECTL".to_string(), binary("kubectl")),
            // The programs behind the login, run as local processes by the e2e test of verify.
            ("ENVCTL_DEX".to_string(), binary("dex")),
            ("ENVCTL_OAUTH2_PROXY".to_string(), binary("oauth2-proxy")),
            (
                "ENVCTL_MIRROR".to_string(),
                layout.mirror_dir().display().to_string(),
            ),
            ("PATH".to_string(), path),
            // This binary: the CLI tests of crates/e2e run it.
            ("ENVCTL_XTASK".to_string(), xtask_binary()),
        ];
        Testenv { kubeconfig, vars }
    }

    /// Environment variables for processes that use the testenv.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }
}

/// Builds what is missing and starts the cluster (or keeps a
/// healthy one that already runs).
pub fn up(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<Testenv> {
    let started = Instant::now();
    for build in &pins.go_builds {
        go_build::ensure(sh, layout, build)?;
    }
    link_path_dir(layout, pins)?;
    eprintln!("testenv: binaries ready in {:.1?}", started.elapsed());

    let cluster_started = Instant::now();
    let testenv = Testenv::new(layout, pins);
    if layout.cluster_dir(pins).exists() {
        if healthy(sh, layout, pins) {
            eprintln!("testenv: cluster `{}` already runs", pins.cluster.name);
            return Ok(testenv);
        }
        eprintln!(
            "testenv: cluster `{}` is not healthy; recreating it",
            pins.cluster.name
        );
        down(sh, layout, pins)?;
    }
    if let Err(err) = create_cluster(sh, layout, pins) {
        let logs = layout.cluster_dir(pins).join("logs");
        eprintln!(
            "testenv: the cluster did not start; component logs are in {}",
            logs.display()
        );
        print_log_tails(&logs);
        let _ = down(sh, layout, pins);
        return Err(err);
    }
    eprintln!(
        "testenv: cluster started in {:.1?}",
        cluster_started.elapsed()
    );
    Ok(testenv)
}

fn link_path_dir(layout: &Layout, pins: &Pins) -> Result<()> {
    let dir = layout.path_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for build in &pins.go_builds {
        for binary in build.binaries.keys() {
            std::os::unix::fs::symlink(layout.bin_dir(build).join(binary), dir.join(binary))?;
        }
    }
    Ok(())
}

fn kwokctl(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<xshell::Cmd> {
    Ok(sh
        .cmd(layout.binary(pins, "kwokctl")?)
        .env("KWOK_WORKDIR", layout.kwok_workdir()))
}

fn kubectl(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<xshell::Cmd> {
    Ok(sh.cmd(layout.binary(pins, "kubectl")?).arg(format!(
        "--kubeconfig={}",
        layout.kubeconfig(pins).display()
    )))
}

fn create_cluster(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<()> {
    let config = layout.cache.join("kwokctl.yaml");
    let template = std::fs::read_to_string(layout.testenv_infra().join("kwokctl.yaml"))?;
    // The pins file owns the bind address; the template must not disagree with it.
    let config_text = template.replace(
        "bindAddress: 127.0.0.1",
        &format!("bindAddress: {}", pins.cluster.bind_address),
    );
    std::fs::write(&config, config_text)?;

    let binary = |name: &str| layout.binary(pins, name).map(|p| p.display().to_string());
    kwokctl(sh, layout, pins)?
        .args(["create", "cluster", "--name", &pins.cluster.name])
        .arg(format!("--config={}", config.display()))
        // Keep ~/.kube/config untouched: tests use the cluster's own kubeconfig.
        .arg("--kubeconfig=")
        .arg("--runtime=binary")
        .arg(format!(
            "--kube-apiserver-binary={}",
            binary("kube-apiserver")?
        ))
        .arg(format!(
            "--kube-controller-manager-binary={}",
            binary("kube-controller-manager")?
        ))
        .arg(format!(
            "--kube-scheduler-binary={}",
            binary("kube-scheduler")?
        ))
        .arg(format!("--kwok-controller-binary={}", binary("kwok")?))
        .arg(format!("--etcd-binary={}", binary("etcd")?))
        .arg("--timeout=5m")
        .arg("--wait=2m")
        .timeout(Duration::from_secs(6 * 60))
        .run_echo()
        .context("kwokctl create cluster failed")?;

    // The simulated node, then what every test needs: the node Ready and the default
    // ServiceAccount (created by kube-controller-manager; pods are refused without it).
    kubectl(sh, layout, pins)?
        .args([
            "apply",
            "--server-side",
            "--field-manager=envctl-testenv",
            "-f",
        ])
        .arg(layout.testenv_infra().join("node.yaml"))
        .timeout(Duration::from_secs(60))
        .run_echo()?;
    kubectl(sh, layout, pins)?
        .args([
            "wait",
            "--for=condition=Ready",
            "node/kwok-node-0",
            "--timeout=120s",
        ])
        .timeout(Duration::from_secs(130))
        .run_echo()?;
    wait_until(
        Duration::from_secs(120),
        "ServiceAccount default/default",
        || {
            kubectl(sh, layout, pins)
                .and_then(|cmd| {
                    Ok(cmd
                        .args(["get", "serviceaccount", "default", "-n", "default"])
                        .run()?)
                })
                .is_ok()
        },
    )?;
    check_loopback_only(sh, layout, pins)?;
    Ok(())
}

fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// True when the cluster's processes run and the apiserver answers.
fn healthy(sh: &Shell, layout: &Layout, pins: &Pins) -> bool {
    let all_alive = {
        let pids = cluster_pids(layout, pins);
        !pids.is_empty() && pids.iter().all(|(_, pid)| alive(*pid))
    };
    all_alive
        && kubectl(sh, layout, pins)
            .and_then(|cmd| {
                Ok(cmd
                    .args(["get", "--raw=/readyz"])
                    .timeout(Duration::from_secs(10))
                    .run()?)
            })
            .is_ok()
}

/// `(component, pid)` from kwokctl's pid files.
fn cluster_pids(layout: &Layout, pins: &Pins) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir(layout.cluster_dir(pins).join("pids")) else {
        return Vec::new();
    };
    let mut pids: Vec<(String, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let component = path.file_stem()?.to_str()?.to_string();
            let pid = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
            Some((component, pid))
        })
        .collect();
    pids.sort();
    pids
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Listening TCP sockets of the cluster's processes, from `ss -ltnpH`.
fn listening(sh: &Shell, pids: &[(String, u32)]) -> Vec<(String, String)> {
    let Ok(out) = sh.cmd("ss").args(["-ltnpH"]).read() else {
        return Vec::new();
    };
    let mut sockets = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(local) = fields.get(3) else { continue };
        for (component, pid) in pids {
            if line.contains(&format!("pid={pid},")) {
                sockets.push((component.clone(), local.to_string()));
            }
        }
    }
    sockets
}

/// Fails when a process of the cluster listens beyond the pinned bind address.
fn check_loopback_only(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<()> {
    let bind = &pins.cluster.bind_address;
    let exposed: Vec<String> = listening(sh, &cluster_pids(layout, pins))
        .into_iter()
        .filter(|(_, local)| {
            let host = local.rsplit_once(':').map(|(h, _)| h).unwrap_or(local);
            host != bind.as_str() && host != "127.0.0.1" && host != "[::1]"
        })
        .map(|(component, local)| format!("{component} on {local}"))
        .collect();
    if !exposed.is_empty() {
        bail!(
            "testenv processes listen beyond {bind}: {}",
            exposed.join(", ")
        );
    }
    Ok(())
}

/// Stops every process of the cluster (also of a half-started one) and removes its state.
pub fn down(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<()> {
    let dir = layout.cluster_dir(pins);
    if !dir.exists() {
        eprintln!("testenv: cluster `{}` is not running", pins.cluster.name);
        return Ok(());
    }
    let pids = cluster_pids(layout, pins);
    let deleted = kwokctl(sh, layout, pins)?
        .args(["delete", "cluster", "--name", &pins.cluster.name])
        .timeout(Duration::from_secs(120))
        .run_echo();
    if let Err(err) = deleted {
        eprintln!(
            "testenv: kwokctl delete cluster failed ({err}); stopping the processes directly"
        );
    }
    for (component, pid) in &pids {
        if alive(*pid) {
            eprintln!("testenv: stopping {component} (pid {pid})");
            let _ = sh.cmd("kill").arg(pid.to_string()).run();
        }
    }
    let _ = wait_until(
        Duration::from_secs(20),
        "the cluster's processes to stop",
        || pids.iter().all(|(_, pid)| !alive(*pid)),
    );
    for (component, pid) in &pids {
        if alive(*pid) {
            eprintln!("testenv: killing {component} (pid {pid})");
            let _ = sh.cmd("kill").args(["-KILL", &pid.to_string()]).run();
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    eprintln!("testenv: cluster `{}` is down", pins.cluster.name);
    Ok(())
}

fn status(sh: &Shell, layout: &Layout, pins: &Pins) -> Result<()> {
    println!("cache: {}", layout.cache.display());
    for build in &pins.go_builds {
        let dir = layout.bin_dir(build);
        let built = build.binaries.keys().all(|b| dir.join(b).is_file());
        let state = if built { "built" } else { "not built" };
        println!(
            "{} {}: {state} ({})",
            build.module,
            build.version,
            dir.display()
        );
    }
    let dir = layout.cluster_dir(pins);
    if !dir.exists() {
        println!("cluster {}: not running", pins.cluster.name);
        return Ok(());
    }
    let pids = cluster_pids(layout, pins);
    let sockets = listening(sh, &pids);
    println!("cluster {} ({}):", pins.cluster.name, dir.display());
    for (component, pid) in &pids {
        let state = if alive(*pid) { "running" } else { "STOPPED" };
        let listens: Vec<&str> = sockets
            .iter()
            .filter(|(c, _)| c == component)
            .map(|(_, local)| local.as_str())
            .collect();
        println!(
            "  {component:<24} pid {pid:<8} {state:<8} listens on {}",
            listens.join(" ")
        );
    }
    println!("kubeconfig: {}", layout.kubeconfig(pins).display());
    let ready = healthy(sh, layout, pins);
    println!("apiserver: {}", if ready { "ready" } else { "NOT ready" });
    Ok(())
}

fn print_log_tails(logs: &Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("---- {} (last lines) ----", entry.path().display());
        for line in &lines[lines.len().saturating_sub(15)..] {
            eprintln!("{line}");
        }
    }
}
