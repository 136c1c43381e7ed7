//! The one way this crate runs a program (helm, kind, curl): every argument separate (never a
//! shell string), stdin closed, stdout and stderr captured, bounded by a timeout after which
//! the program is killed. Failures are typed ([`ProcessError`]): a missing binary, a timeout
//! and a non-zero exit are told apart by what the OS says, not by an error message.
//!
//! [`run`] blocks: call it from blocking code (helm's steps run on tokio's blocking pool, with
//! their temporary files). Async code calls [`run_async`], which runs it on the blocking pool:
//! a program never holds up the async runtime.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A program to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub timeout: Duration,
    /// How the command is shown in errors (defaults to the program and its arguments; set it
    /// when an argument must not be shown).
    pub shown: Option<String>,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, timeout: Duration) -> Self {
        Invocation {
            program: program.into(),
            args,
            timeout,
            shown: None,
        }
    }

    /// The command line as shown in errors.
    pub fn display(&self) -> String {
        if let Some(shown) = &self.shown {
            return shown.clone();
        }
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a program that ran to its end printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A program that could not run, or failed. `stderr` is the program's own, untouched: callers
/// that may see secrets in it scrub it before it is shown (see `helm`).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("`{command}`: {} not found", .program.display())]
    NotFound { command: String, program: PathBuf },
    #[error("`{command}` did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed{}: {}", exit_text(*.exit), tail(.stderr))]
    Failed {
        command: String,
        /// The exit code; `None` when a signal ended it.
        exit: Option<i32>,
        stderr: String,
    },
    #[error("running `{command}`: {source}")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

fn exit_text(exit: Option<i32>) -> String {
    match exit {
        Some(code) => format!(" (exit {code})"),
        None => " (killed by a signal)".into(),
    }
}

/// The longest piece of a program's stderr shown in an error (its end: programs print the
/// reason last).
pub const STDERR_LIMIT: usize = 2000;

/// `text` trimmed and cut to its last [`STDERR_LIMIT`] bytes.
pub fn tail(text: &str) -> String {
    let text = text.trim();
    if text.len() <= STDERR_LIMIT {
        return text.to_owned();
    }
    let mut start = text.len() - STDERR_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Runs `invocation` to its end (blocking); a non-zero exit is [`ProcessError::Failed`].
pub fn run(invocation: &Invocation) -> Result<Finished, ProcessError> {
    let command = invocation.display();
    let mut child = Command::new(&invocation.program)
        .args(&invocation.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ProcessError::NotFound {
                command: command.clone(),
                program: invocation.program.clone(),
            },
            _ => ProcessError::Io {
                command: command.clone(),
                source,
            },
        })?;
    // Both pipes are drained while the program runs, so that a full pipe never stalls it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + invocation.timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(ProcessError::Io { command, source }),
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            // The readers end when the pipes close; a grandchild may hold them: not joined.
            return Err(ProcessError::Timeout {
                command,
                timeout: invocation.timeout,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        Ok(Finished { stdout, stderr })
    } else {
        Err(ProcessError::Failed {
            command,
            exit: status.code(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// [`run`] on tokio's blocking pool, for async code.
pub async fn run_async(invocation: Invocation) -> Result<Finished, ProcessError> {
    let command = invocation.display();
    tokio::task::spawn_blocking(move || run(&invocation))
        .await
        .map_err(|e| ProcessError::Io {
            command,
            source: std::io::Error::other(e.to_string()),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Invocation {
        Invocation::new("/bin/sh", vec!["-c".into(), script.into()], timeout)
    }

    #[test]
    fn output_and_failure_are_captured() {
        let done = run(&sh("echo out; echo err >&2", Duration::from_secs(10))).unwrap();
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr, b"err\n");
        match run(&sh("echo why >&2; exit 3", Duration::from_secs(10))) {
            Err(ProcessError::Failed { exit, stderr, .. }) => {
                assert_eq!(exit, Some(3));
                assert_eq!(stderr.trim(), "why");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_program_and_a_timeout_are_told_apart() {
        let missing = Invocation::new(
            "/nonexistent/envctl-no-such-program",
            vec![],
            Duration::from_secs(5),
        );
        assert!(matches!(run(&missing), Err(ProcessError::NotFound { .. })));
        let start = Instant::now();
        assert!(matches!(
            run(&sh("sleep 30", Duration::from_millis(300))),
            Err(ProcessError::Timeout { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_large_output_does_not_stall_the_program() {
        // More than a pipe buffer (64 KiB) on both streams at once.
        let script = "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2";
        let done = run(&sh(script, Duration::from_secs(30))).unwrap();
        assert_eq!(done.stdout.len(), 1_000_000);
        assert_eq!(done.stderr.len(), 1_000_000);
    }

    #[test]
    fn stderr_is_cut_to_its_end() {
        let long = format!("{}END", "x".repeat(5000));
        let cut = tail(&long);
        assert!(cut.ends_with("END") && cut.len() <= STDERR_LIMIT + "…".len());
    }

    #[tokio::test]
    async fn the_async_runner_does_not_block_the_runtime() {
        // One runtime thread: had the program run on it, the ticker could not tick meanwhile.
        let ticker = tokio::spawn(async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        run_async(sh("sleep 0.5", Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(ticker.is_finished(), "the runtime was blocked");
    }
}
