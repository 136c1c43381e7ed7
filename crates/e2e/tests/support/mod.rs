//! Running `cargo xtask` in the background against the testenv's `--env kwok`, watching its
//! progress lines, and signalling it: for the lock, interrupt and crash tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use e2e::{InfraCopy, describe, xtask};
use serde_json::Value;

/// Bound of one whole apply or destroy of the environment.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// `args` with `--env kwok --infra <copy>`.
pub fn with_env(infra: &InfraCopy, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend([
        "--env".into(),
        "kwok".into(),
        "--infra".into(),
        infra.path().display().to_string(),
    ]);
    all
}

/// Runs to the end.
pub fn run(infra: &InfraCopy, args: &[&str]) -> Output {
    let all = with_env(infra, args);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    xtask(&refs)
}

/// Runs to the end and asserts success; returns stdout.
pub fn ok(infra: &InfraCopy, args: &[&str]) -> String {
    let output = run(infra, args);
    assert!(output.status.success(), "{args:?}: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `cargo xtask` run in the background, in its own process group (so that a kill of the
/// group also kills its helm children, as a closed terminal or a cancelled CI job does).
pub struct Background {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line seen so far.
    pub seen: Vec<String>,
    stdout: std::thread::JoinHandle<String>,
    /// The run's own `TMPDIR` (the machine's is shared with other runs).
    tmp: PathBuf,
}

impl Background {
    pub fn start(infra: &InfraCopy, args: &[&str]) -> Background {
        e2e::kubeconfig();
        let bin = PathBuf::from(std::env::var("ENVCTL_XTASK").expect("ENVCTL_XTASK"));
        let tmp = std::env::temp_dir().join(e2e::unique_name("envctl-run-tmp"));
        std::fs::create_dir_all(&tmp).expect("creating the run's TMPDIR");
        let mut child = Command::new(&bin)
            .args(with_env(infra, args))
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        let (tx, lines) = channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
            stdout,
            tmp,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stderr line for which `matches` holds; returns it, or `None`
    /// when the run ended or the time ran out first.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Sends `signal` (`-KILL`, `-INT`, ...) to the process only.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// Stops the run itself (SIGSTOP; not its children): from then on it can neither end on
    /// its own nor renew its lock, while a helm it started goes on.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Whether a process other than the run itself lives in its process group (a helm it
    /// started), read from `/proc`.
    pub fn has_children(&self) -> bool {
        let group = self.pid();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        entries.flatten().any(|entry| {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                return false;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|p| p.parse::<u32>().ok());
            pid != group && pgrp == Some(group)
        })
    }

    /// Sends `signal` to the whole process group (the run and its helm children).
    pub fn signal_group(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.pid())])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} -{}", self.pid());
    }

    /// Waits (bounded) for the end; returns the exit code (None: killed), all output, and the
    /// names of the files the run left in its `TMPDIR` (which is then removed).
    pub fn finish(mut self, timeout: Duration) -> (Option<i32>, String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the run") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the run did not end within {timeout:?}; last lines:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stdout = self.stdout.join().unwrap_or_default();
        let left: Vec<String> = std::fs::read_dir(&self.tmp)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.tmp);
        (
            status.code(),
            format!("--- stdout\n{stdout}\n--- stderr\n{}", self.seen.join("\n")),
            left,
        )
    }
}

/// `helm list -A <filter> -o json`, each release as `show` puts it.
fn helm_list(filter: &str, show: impl Fn(&Value) -> String) -> Vec<String> {
    let out = Command::new(e2e::helm_binary())
        .args(["list", "-A", filter, "-o", "json"])
        .output()
        .expect("running helm list");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list.as_array().into_iter().flatten().map(show).collect()
}

/// Releases in any `pending-*` state, as `namespace/name: status`.
pub fn pending_releases() -> Vec<String> {
    helm_list("--pending", |r| {
        format!("{}/{}: {}", r["namespace"], r["name"], r["status"])
    })
}

/// Waits (bounded, polling every 50 ms) until some release is `pending-*`: a Helm operation is
/// in flight. Returns false if none was seen in time.
pub fn wait_pending(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !pending_releases().is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Every Helm release, as `namespace/name`.
pub fn releases() -> Vec<String> {
    helm_list("-a", |r| format!("{}/{}", r["namespace"], r["name"]))
}

/// The lock ID a refused run names (`force-unlock <ID>`).
pub fn lock_id(refusal: &str) -> Option<String> {
    let after = refusal.split("cargo xtask force-unlock ").nth(1)?;
    Some(after.split_whitespace().next()?.to_owned())
}

/// Removes a lock left by a killed run: the refusal of the next run names its ID.
pub fn unlock_after_kill(infra: &InfraCopy) {
    let probe = run(infra, &["plan"]);
    let text = describe(&probe);
    if probe.status.success() {
        return;
    }
    let id = lock_id(&text).unwrap_or_else(|| panic!("a lock refusal naming the ID: {text}"));
    ok(infra, &["force-unlock", &id]);
}
