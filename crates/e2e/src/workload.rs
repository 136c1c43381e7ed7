//! Runs a Deployment's container as a local process, configured from exactly what the cluster
//! holds: the pod template's args, env (values and `secretKeyRef` / `configMapKeyRef`) and the
//! Secret and ConfigMap volumes it mounts, read back from the API server.
//!
//! Rewritten, and only these (each rewrite is listed in [`Process::rewrites`]):
//! - an address a container listens on (`0.0.0.0:PORT`, `:PORT`, `[::]:PORT` in an argument)
//!   becomes `127.0.0.1:<free port>`: the pod's network namespace is the host's here;
//! - a path under a volume's `mountPath` becomes the same path under the local directory the
//!   volume's files are written to;
//! - the image's entrypoint is the locally built binary: a first argument naming the program
//!   (`dex serve ...` in Dex's chart) is dropped, since the binary is that program;
//! - `HTTP_PROXY` is added: the pod's cluster DNS and Service network, see
//!   [`crate::gateway::start_egress`].

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::Value;

use crate::gateway::LocalWorkload;

/// A running local process of a Deployment.
pub struct Process {
    child: Child,
    pub workload: LocalWorkload,
    /// stdout and stderr of the process.
    pub log: PathBuf,
    /// What was changed from the cluster's pod template, one line each.
    pub rewrites: Vec<String>,
}

impl Process {
    /// The last lines of the process's output, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `0.0.0.0:5556`, `:5556`, `[::]:5556` -> 5556.
fn bind_port(value: &str) -> Option<u16> {
    let port = value
        .strip_prefix("0.0.0.0:")
        .or_else(|| value.strip_prefix("[::]:"))
        .or_else(|| value.strip_prefix(':'))?;
    port.parse().ok()
}

async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> BTreeMap<String, Vec<u8>> {
    let secret = crate::typed_api(client, "v1", "Secret", "secrets", Some(namespace))
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("reading Secret {namespace}/{name}: {e}"));
    secret.data["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or(""))
                .expect("Secret data is base64");
            (k.clone(), bytes)
        })
        .collect()
}

async fn config_map_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> BTreeMap<String, Vec<u8>> {
    let cm = crate::typed_api(client, "v1", "ConfigMap", "configmaps", Some(namespace))
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("reading ConfigMap {namespace}/{name}: {e}"));
    cm.data["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()))
        .collect()
}

/// Starts the first container of `deployment` with `binary` as its entrypoint, in `dir`, adds
/// it to `network` (before it starts: a program may call others while it starts), and waits
/// until its readiness probe answers 2xx or 3xx (at most `timeout`).
pub async fn start(
    client: &kube::Client,
    network: &crate::gateway::Network,
    deployment: &Value,
    binary: &Path,
    egress: SocketAddr,
    dir: &Path,
    timeout: Duration,
) -> Process {
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .expect("a namespace");
    let name = deployment["metadata"]["name"].as_str().expect("a name");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mut rewrites = Vec::new();
    std::fs::create_dir_all(dir).expect("a work directory");

    // Volumes: their files, written where the mounts point to.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume_name = mount["name"].as_str().expect("volumeMounts[].name");
        let mount_path = mount["mountPath"]
            .as_str()
            .expect("volumeMounts[].mountPath");
        let volume = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"].as_str() == Some(volume_name))
            .unwrap_or_else(|| panic!("{name}: no volume {volume_name}"));
        let files = if let Some(secret) = volume["secret"]["secretName"].as_str() {
            secret_data(client, namespace, secret).await
        } else if let Some(cm) = volume["configMap"]["name"].as_str() {
            config_map_data(client, namespace, cm).await
        } else if volume.get("emptyDir").is_some() {
            BTreeMap::new()
        } else {
            panic!(
                "{name}: volume {volume_name} is of a kind this harness does not materialise: {volume}"
            );
        };
        let volume_dir = dir.join("volumes").join(volume_name);
        std::fs::create_dir_all(&volume_dir).expect("a volume directory");
        for (file, bytes) in &files {
            std::fs::write(volume_dir.join(file), bytes).expect("writing a volume file");
        }
        let local = match mount["subPath"].as_str() {
            Some(sub) => volume_dir.join(sub),
            None => volume_dir,
        };
        rewrites.push(format!("mount {mount_path} -> {}", local.display()));
        mounts.push((mount_path.to_string(), local));
    }

    // Args: listen addresses and mounted paths.
    let mut args: Vec<String> = strings(&container["command"])
        .into_iter()
        .chain(strings(&container["args"]))
        .collect();
    let program = binary.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if args.first().map(String::as_str) == Some(program) {
        rewrites.push(format!("argument `{program}`: the binary itself"));
        args.remove(0);
    }
    let mut ports: BTreeMap<u16, SocketAddr> = BTreeMap::new();
    let rewrite_value = |value: &str, ports: &mut BTreeMap<u16, SocketAddr>| -> Option<String> {
        if let Some(port) = bind_port(value) {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("an address");
            ports.insert(port, addr);
            return Some(addr.to_string());
        }
        mounts
            .iter()
            .filter(|(mount, _)| value == mount || value.starts_with(&format!("{mount}/")))
            .max_by_key(|(mount, _)| mount.len())
            .map(|(mount, local)| format!("{}{}", local.display(), &value[mount.len()..]))
    };
    for arg in &mut args {
        let new = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => {
                rewrite_value(value, &mut ports).map(|v| format!("{flag}={v}"))
            }
            _ => rewrite_value(arg, &mut ports),
        };
        if let Some(new) = new {
            rewrites.push(format!("argument `{arg}` -> `{new}`"));
            *arg = new;
        }
    }

    // Env: values and references, as the kubelet resolves them.
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let var_name = var["name"].as_str().expect("env[].name").to_string();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_string()
        } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
            let data = secret_data(client, namespace, r["name"].as_str().expect("name")).await;
            String::from_utf8(data[r["key"].as_str().expect("key")].clone()).expect("UTF-8")
        } else if let Some(r) = var["valueFrom"]["configMapKeyRef"].as_object() {
            let data = config_map_data(client, namespace, r["name"].as_str().expect("name")).await;
            String::from_utf8(data[r["key"].as_str().expect("key")].clone()).expect("UTF-8")
        } else if var["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("metadata.namespace") {
            namespace.to_string()
        } else if var.get("valueFrom").is_none() {
            String::new()
        } else {
            panic!(
                "{name}: env {var_name} comes from a source this harness does not resolve: {var}"
            );
        };
        env.push((var_name, value));
    }
    if container.get("envFrom").is_some() {
        panic!("{name}: envFrom is not resolved by this harness");
    }
    rewrites.push(format!(
        "env HTTP_PROXY=http://{egress} (the pod's cluster network)"
    ));

    let workload = LocalWorkload::from_deployment(deployment, |port| ports.get(&port).copied());
    network.add(workload.clone());
    let log = dir.join("output.log");
    let out = std::fs::File::create(&log).expect("a log file");
    let child = Command::new(binary)
        .args(&args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HTTP_PROXY", format!("http://{egress}"))
        .env("http_proxy", format!("http://{egress}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("a log handle"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let mut process = Process {
        child,
        workload,
        log,
        rewrites,
    };

    // Ready as the kubelet judges it: the readiness probe's HTTP GET answers 2xx/3xx.
    let probe = &container["readinessProbe"]["httpGet"];
    let probe_port = match &probe["port"] {
        Value::Number(n) => n.as_u64().map(|n| n as u16),
        Value::String(s) => container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str() == Some(s.as_str()))
            .and_then(|p| p["containerPort"].as_u64())
            .map(|n| n as u16),
        _ => None,
    };
    let (Some(probe_port), Some(path)) = (probe_port, probe["path"].as_str()) else {
        panic!("{name}: no readiness probe (httpGet) to wait for");
    };
    let addr = *ports.get(&probe_port).unwrap_or_else(|| {
        panic!("{name}: the readiness probe's port {probe_port} is not one the args bind")
    });
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("{name} exited with {status}:\n{}", process.log_tail(30));
        }
        if probe_ok(addr, path).await {
            return process;
        }
        if Instant::now() >= deadline {
            panic!(
                "{name} not ready within {timeout:?}:\n{}",
                process.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn probe_ok(addr: SocketAddr, path: &str) -> bool {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let timeout = Duration::from_secs(2);
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let mut head = [0u8; 12];
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_exact(&mut head).is_ok()
            && matches!(head.get(9), Some(b'2' | b'3'))
    })
    .await
    .unwrap_or(false)
}

use crate::json_strings as strings;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_are_recognised() {
        assert_eq!(bind_port("0.0.0.0:5556"), Some(5556));
        assert_eq!(bind_port(":4180"), Some(4180));
        assert_eq!(bind_port("[::]:1"), Some(1));
        assert_eq!(bind_port("/etc/dex/config.yaml"), None);
        assert_eq!(bind_port("127.0.0.1:80"), None);
    }
}
