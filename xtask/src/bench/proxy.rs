//! A counting HTTP proxy on loopback for the benchmark: `kubectl proxy` holds the testenv's
//! credentials and TLS; this proxy in front of it counts each request by Kubernetes verb and
//! passes it on unchanged (one request per connection: it asks both sides to close after
//! each response, so no parsing of responses is needed).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub type Counts = Arc<Mutex<BTreeMap<Request, usize>>>;
/// Each request since the last [`Counter::take`]: its method and target (path and query; never
/// a body, so never a value).
pub type Log = Arc<Mutex<Vec<String>>>;

/// One request as counted: its Kubernetes verb, and whether it was a dry run or a write of
/// envctl's lock (a Lease: the only Leases a run writes). Shown as `patch (dry run)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    /// `discovery`, `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    pub dry_run: bool,
    pub lock: bool,
}

impl Request {
    /// Whether it changes the cluster.
    pub fn is_write(&self) -> bool {
        !self.dry_run && !matches!(self.verb.as_str(), "discovery" | "get" | "list" | "watch")
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.verb)?;
        if self.dry_run {
            write!(f, " (dry run)")
        } else if self.lock {
            write!(f, " (lock)")
        } else {
            Ok(())
        }
    }
}

/// `kubectl proxy` on loopback with the credentials of a kubeconfig, the counting proxy in
/// front of it, and a kubeconfig (same context name) that points at the counting proxy: what
/// the bench and the e2e tests count a run's requests through. `kubectl proxy` is stopped when
/// this is dropped, also when starting it failed halfway.
pub struct Counted {
    pub counter: Counter,
    /// The kubeconfig whose requests are counted.
    pub kubeconfig: PathBuf,
    child: Child,
}

impl Counted {
    /// Starts both proxies for `kubeconfig` and writes the counted kubeconfig to `counted`.
    pub fn start(kubectl: &Path, kubeconfig: &Path, counted: &Path) -> std::io::Result<Counted> {
        let context = Command::new(kubectl)
            .args(["config", "current-context"])
            .env("KUBECONFIG", kubeconfig)
            .output()?;
        let context = String::from_utf8_lossy(&context.stdout).trim().to_owned();
        if context.is_empty() {
            return Err(std::io::Error::other(format!(
                "{} has no current context",
                kubeconfig.display()
            )));
        }
        let child = Command::new(kubectl)
            .args(["proxy", "--port=0", "--address=127.0.0.1"])
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut guard = KillOnDrop(Some(child));
        let child = guard.0.as_mut().expect("just set");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        // "Starting to serve on 127.0.0.1:41234"
        let upstream: SocketAddr = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|e| std::io::Error::other(format!("kubectl proxy said {line:?}: {e}")))?;
        let counter = Counter::start(upstream)?;
        std::fs::write(
            counted,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: counted\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: counted\n  user: {{}}\ncontexts:\n- name: {context}\n  context:\n    cluster: counted\n    user: counted\ncurrent-context: {context}\n",
                counter.port
            ),
        )?;
        Ok(Counted {
            counter,
            kubeconfig: counted.to_owned(),
            child: guard.0.take().expect("still held"),
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped while still held.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running proxy: its port, and the requests counted so far.
pub struct Counter {
    pub port: u16,
    pub counts: Counts,
    pub log: Log,
}

impl Counter {
    /// Starts listening on 127.0.0.1 (an ephemeral port), forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Counter> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let counts: Counts = Arc::default();
        let log: Log = Arc::default();
        let (shared, shared_log) = (counts.clone(), log.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (counts, log) = (shared.clone(), shared_log.clone());
                std::thread::spawn(move || {
                    let _ = forward(client, upstream, &counts, &log);
                });
            }
        });
        Ok(Counter { port, counts, log })
    }

    /// The counts so far, and zero them (and the log).
    pub fn take(&self) -> BTreeMap<Request, usize> {
        self.take_logged().0
    }

    /// The counts and the log of the requests so far (method and target, in the order they
    /// came), and zero both.
    pub fn take_logged(&self) -> (BTreeMap<Request, usize>, Vec<String>) {
        let mut counts = self.counts.lock().expect("counts");
        let mut log = self.log.lock().expect("log");
        (std::mem::take(&mut *counts), std::mem::take(&mut *log))
    }
}

fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    counts: &Counts,
    log: &Log,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut request_line = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            request_line = line.clone();
            head.extend_from_slice(line.as_bytes());
            continue;
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.extend_from_slice(line.as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    {
        // Both under the counts' lock, so that a take sees each request in both or neither.
        let mut counts = counts.lock().expect("counts");
        *counts.entry(classify(method, target)).or_default() += 1;
        log.lock().expect("log").push(format!("{method} {target}"));
    }

    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut client = client;
    std::io::copy(&mut up, &mut client)?;
    client.shutdown(std::net::Shutdown::Both)
}

/// What a request is: its Kubernetes verb (`discovery`, `get`, `list`, `watch`, `create`,
/// `update`, `patch`, `delete`), whether it is a dry run, whether it is about a Lease (envctl's
/// lock; the only Leases a run writes).
pub fn classify(method: &str, target: &str) -> Request {
    let discovery = Request {
        verb: "discovery".into(),
        dry_run: false,
        lock: false,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return discovery,
    };
    if rest.is_empty() {
        return discovery;
    }
    let named = if rest[0] == "namespaces" && rest.len() >= 3 {
        rest.len() >= 4
    } else {
        rest.len() >= 2
    };
    let dry = query.split('&').any(|p| p == "dryRun=All");
    let verb = match method {
        "GET"
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1") =>
        {
            "watch"
        }
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        other => other,
    };
    // envctl's lock is a Lease (kube-public/envctl-lock-<env>): its writes are told apart.
    Request {
        verb: verb.to_owned(),
        dry_run: dry,
        lock: rest.contains(&"leases"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(method: &str, target: &str) -> String {
        classify(method, target).to_string()
    }

    #[test]
    fn requests_are_classified_by_verb() {
        assert_eq!(shown("GET", "/apis"), "discovery");
        assert_eq!(shown("GET", "/api/v1/namespaces"), "list");
        assert_eq!(shown("GET", "/api/v1/namespaces/sso"), "get");
        assert_eq!(
            shown(
                "GET",
                "/api/v1/namespaces/sso/secrets?labelSelector=owner%3Dhelm"
            ),
            "list"
        );
        assert_eq!(
            shown("GET", "/apis/apps/v1/namespaces/sso/deployments/dex"),
            "get"
        );
        assert_eq!(
            shown(
                "PATCH",
                "/apis/apps/v1/namespaces/sso/deployments/dex?dryRun=All&force=true"
            ),
            "patch (dry run)"
        );
        assert_eq!(
            shown("GET", "/apis/apps/v1/deployments?watch=true"),
            "watch"
        );
        assert_eq!(shown("GET", "/version"), "discovery");
        let patch = |target| classify("PATCH", target);
        assert!(patch("/api/v1/namespaces/a/configmaps/b").is_write());
        assert!(!patch("/api/v1/namespaces/a/configmaps/b?dryRun=All").is_write());
        assert!(!classify("GET", "/api/v1/namespaces").is_write());
        assert_eq!(
            shown(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-public/leases"
            ),
            "create (lock)"
        );
        assert_eq!(
            shown(
                "DELETE",
                "/apis/coordination.k8s.io/v1/namespaces/kube-public/leases/envctl-lock-kwok"
            ),
            "delete (lock)"
        );
        let lease = classify(
            "DELETE",
            "/apis/coordination.k8s.io/v1/namespaces/kube-public/leases/envctl-lock-kwok",
        );
        assert!(lease.is_write() && lease.lock);
        assert!(!classify("DELETE", "/api/v1/namespaces/a/configmaps/b").lock);
    }
}
