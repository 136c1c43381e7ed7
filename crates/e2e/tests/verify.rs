//! `cargo xtask verify` against the real programs: the environment is applied to the testenv
//! with the real charts, then Dex and OAuth2 Proxy (built from their Go modules at the charts'
//! appVersions, `ENVCTL_DEX`, `ENVCTL_OAUTH2_PROXY`) run as local processes configured from
//! exactly what apply put into the cluster ([`e2e::workload`]: the Deployments' args, env and
//! mounted Secret/ConfigMap, with the generated secrets; only listen addresses, mount paths and
//! the cluster network are rewritten to loopback, each rewrite printed). The one stand-in is
//! the gateway ([`e2e::gateway`]: routes as the HTTPRoutes say, ext_authz as the mesh config's
//! extension provider says, with Envoy's `envoyExtAuthzHttp` semantics), and the app behind it
//! is a loopback server serving nginx's welcome page (kwok runs no containers).
//!
//! One scenario, in order (this file is its own test binary): the login passes on the
//! environment as configured; then each broken configuration is applied and `verify` fails,
//! naming its step (the policy on `/` only, no cookie in the check, no set-cookie on deny,
//! OAuth2 Proxy's sign-in button, a redirect URI Dex does not know); then an overlay whose host
//! port is not 80 (and other host names) logs in too.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

use e2e::{
    InfraCopy, describe,
    gateway::{self, Network, Snapshot},
    workload::{self, Process},
    xtask,
};
use serde_json::Value;

/// The walkthrough's static user's password (the hash in infra/environment.yaml).
const PASSWORD: &str = "password";

const NGINX_PAGE: &str = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head>\
    <body><h1>Welcome to nginx!</h1><p>If you see this page, nginx is working.</p></body></html>";

fn binary(var: &str) -> PathBuf {
    let path = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `cargo xtask test`, or `eval \"$(cargo xtask testenv env)\"`")
    });
    assert!(
        std::path::Path::new(&path).is_file(),
        "{var}={path} does not exist: `cargo xtask testenv up` builds it"
    );
    PathBuf::from(path)
}

/// The login's programs, running locally against one applied configuration.
struct Login {
    gateway: SocketAddr,
    network: Network,
    processes: Vec<Process>,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Login {
    /// Reads the cluster, starts Dex, OAuth2 Proxy and the app, then the gateway.
    async fn start(client: &kube::Client) -> Login {
        let dir = TempDir(std::env::temp_dir().join(e2e::unique_name("envctl-login")));
        let snapshot = Snapshot::read(client, ("gateway", "istio-gateway")).await;
        let network = Network::new(snapshot.clone());
        let mut processes = Vec::new();
        for (name, var) in [
            ("dex", "ENVCTL_DEX"),
            ("oauth2-proxy", "ENVCTL_OAUTH2_PROXY"),
        ] {
            let deployment = snapshot.deployment("sso", name);
            let egress = gateway::start_egress(network.clone(), name).await;
            let process = workload::start(
                client,
                &network,
                deployment,
                &binary(var),
                egress,
                &dir.0.join(name),
                Duration::from_secs(60),
            )
            .await;
            eprintln!("sso/{name} runs locally; changed from the cluster's pod template:");
            for rewrite in &process.rewrites {
                eprintln!("  {rewrite}");
            }
            processes.push(process);
        }
        let app = gateway::start_app(NGINX_PAGE).await;
        let nginx = snapshot.deployment("default", "nginx");
        network.add(gateway::LocalWorkload::from_deployment(nginx, |port| {
            (port == 80).then_some(app)
        }));
        let gateway = gateway::start_gateway(network.clone()).await;
        Login {
            gateway,
            network,
            processes,
            _dir: dir,
        }
    }

    /// What happened, for failure messages: the gateway's log and the programs' last lines.
    fn story(&self) -> String {
        let mut out = String::from("--- gateway\n");
        for line in self.network.log.lock().unwrap().iter() {
            out.push_str(line);
            out.push('\n');
        }
        for p in &self.processes {
            out.push_str(&format!("--- {}\n{}\n", p.workload.name, p.log_tail(15)));
        }
        out
    }
}

/// `cargo xtask verify` through the login's gateway, the password on stdin.
fn verify(infra: &InfraCopy, gateway: SocketAddr, extra: &[&str]) -> Output {
    let bin = PathBuf::from(std::env::var("ENVCTL_XTASK").expect("ENVCTL_XTASK"));
    let infra_dir = infra.path().display().to_string();
    let gateway = gateway.to_string();
    let mut args = vec![
        "verify",
        "--env",
        "kwok",
        "--infra",
        &infra_dir,
        "--gateway",
        &gateway,
        "--password-stdin",
    ];
    args.extend(extra);
    let mut child = Command::new(&bin)
        .args(&args)
        .env("NO_COLOR", "1")
        .env_remove("ENVCTL_VERIFY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running cargo xtask verify");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("writing the password");
    child.wait_with_output().expect("verify's output")
}

fn apply(infra: &InfraCopy, module: Option<&str>) {
    let infra_dir = infra.path().display().to_string();
    let mut args = vec![
        "apply",
        "--auto-approve",
        "--env",
        "kwok",
        "--infra",
        &infra_dir,
    ];
    if let Some(module) = module {
        args.extend(["--module", module]);
    }
    let output = xtask(&args);
    assert!(output.status.success(), "apply: {}", describe(&output));
}

/// The step lines of verify's text output: `(outcome, id)`.
fn outcomes(output: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let outcome = words.next()?;
            ["PASS", "FAIL", "SKIP"]
                .contains(&outcome)
                .then(|| (outcome.to_string(), words.next().unwrap_or("").to_string()))
        })
        .collect()
}

/// Applies `edit` to `file` of the copy, applies `module`, restarts the login, runs verify,
/// asserts it fails at `step` naming `key`, then restores the file and applies again.
#[allow(clippy::too_many_arguments)]
async fn broken(
    client: &kube::Client,
    infra: &InfraCopy,
    what: &str,
    file: &str,
    edit: impl Fn(&str) -> String,
    module: &str,
    step: &str,
    key: &str,
) {
    let original = infra.read(file);
    let changed = edit(&original);
    assert_ne!(
        changed, original,
        "{what}: the edit of {file} changed nothing"
    );
    infra.write(file, &changed);
    apply(infra, Some(module));
    let login = Login::start(client).await;
    let output = verify(infra, login.gateway, &[]);
    let text = describe(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what}: {text}\n{}",
        login.story()
    );
    let failed: Vec<String> = outcomes(&output)
        .into_iter()
        .filter(|(o, _)| o == "FAIL")
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        failed.first().map(String::as_str),
        Some(step),
        "{what}: the first failed step: {text}\n{}",
        login.story()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The step's line and the indented lines under it.
    let block: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with(&format!("  FAIL {step} ")))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with("       "))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(
        block.contains("likely cause:") && block.contains(key),
        "{what}: step {step} names {key}: {text}"
    );
    assert!(
        stdout.contains(&format!("steps failed ({}", failed.join(", "))),
        "{text}"
    );
    eprintln!("{what}: verify failed at {step} as expected:\n{block}");
    drop(login);
    infra.write(file, &original);
    apply(infra, Some(module));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_through_the_gateway_and_broken_configurations_fail_at_their_step() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();
    let _destroy = Destroy(&infra);
    apply(&infra, None);

    // The environment as configured: every step passes, in text and in JSON.
    let login = Login::start(&client).await;
    let output = verify(&infra, login.gateway, &[]);
    let text = describe(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", login.story());
    let steps = outcomes(&output);
    assert_eq!(steps.len(), 8, "{text}");
    assert!(steps.iter().all(|(o, _)| o == "PASS"), "{text}");
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    let json_run = verify(&infra, login.gateway, &["--output", "json"]);
    assert_eq!(json_run.status.code(), Some(0), "{}", describe(&json_run));
    let json: Value = serde_json::from_slice(&json_run.stdout).expect("verify --output json");
    assert_eq!(json["passed"], true);
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(8));
    assert!(json["steps"][0]["elapsed_ms"].is_u64(), "{json}");
    assert_eq!(json["steps"][2]["id"], "login");
    // Nothing secret in any output: the password, the generated secrets, the session cookie.
    let secrets = e2e::typed_api(&client, "v1", "Secret", "secrets", Some("sso"))
        .get("oauth2-proxy")
        .await
        .expect("the generated Secret");
    let everything = format!("{text}{}", describe(&json_run));
    for (key, value) in secrets.data["data"].as_object().expect("data") {
        let value = value.as_str().unwrap_or("");
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap();
        let decoded = String::from_utf8_lossy(&decoded);
        if key != "client-id" {
            assert!(!everything.contains(decoded.as_ref()), "{key} leaked");
        }
    }
    assert!(!everything.contains(&format!("password={PASSWORD}")));
    assert!(
        !everything.contains("_oauth2_proxy="),
        "a cookie value leaked"
    );

    // The password from the environment variable; a wrong one fails at `login`, naming the
    // static user; none at all is an error that says how to give it; no gateway fails first.
    let run = |password: Option<&str>, gateway: &str| {
        let mut command = Command::new(std::env::var("ENVCTL_XTASK").expect("ENVCTL_XTASK"));
        command
            .args(["verify", "--env", "kwok", "--infra"])
            .arg(infra.path())
            .args(["--gateway", gateway, "--timeout", "3"])
            .env("NO_COLOR", "1")
            .env_remove("ENVCTL_VERIFY_PASSWORD")
            .stdin(Stdio::null());
        if let Some(password) = password {
            command.env("ENVCTL_VERIFY_PASSWORD", password);
        }
        command.output().expect("running verify")
    };
    let gateway_address = login.gateway.to_string();
    let wrong = run(Some("not-the-password"), &gateway_address);
    assert_eq!(wrong.status.code(), Some(1), "{}", describe(&wrong));
    let wrong_steps = outcomes(&wrong);
    assert_eq!(
        wrong_steps[2],
        ("FAIL".into(), "login".into()),
        "{}",
        describe(&wrong)
    );
    assert!(
        String::from_utf8_lossy(&wrong.stdout).contains("sso.staticUser"),
        "{}",
        describe(&wrong)
    );
    assert!(!describe(&wrong).contains("not-the-password"));
    let none = run(None, &gateway_address);
    assert_eq!(none.status.code(), Some(1), "{}", describe(&none));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("--password-stdin"),
        "{}",
        describe(&none)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let unreachable = run(Some(PASSWORD), &closed);
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        describe(&unreachable)
    );
    assert_eq!(
        outcomes(&unreachable)[0],
        ("FAIL".into(), "redirect-to-login".into()),
        "{}",
        describe(&unreachable)
    );
    assert!(
        String::from_utf8_lossy(&unreachable.stdout).contains("cluster.kind.hostPort"),
        "{}",
        describe(&unreachable)
    );
    drop(login);

    // Broken configurations: verify fails, naming the step and the likely key.
    broken(
        &client,
        &infra,
        "the policy on `/` only",
        "policy/authorization-policy.yaml",
        |t| t.replace("[\"/*\"]", "[\"/\"]"),
        "policy",
        "no-session-index",
        "spec.rules[].to[].operation.paths",
    )
    .await;
    broken(
        &client,
        &infra,
        "no cookie in the check",
        "mesh/istiod.values.yaml",
        |t| {
            t.lines()
                .filter(|l| l.trim() != "- cookie")
                .map(|l| format!("{l}\n"))
                .collect()
        },
        "mesh",
        "app-page",
        "includeRequestHeadersInCheck",
    )
    .await;
    broken(
        &client,
        &infra,
        "no set-cookie on deny",
        "mesh/istiod.values.yaml",
        |t| {
            t.lines()
                .filter(|l| l.trim() != "- set-cookie")
                .map(|l| format!("{l}\n"))
                .collect()
        },
        "mesh",
        "redirect-to-login",
        "headersToDownstreamOnDeny",
    )
    .await;
    broken(
        &client,
        &infra,
        "OAuth2 Proxy's sign-in button",
        "sso/oauth2-proxy.values.yaml",
        |t| {
            t.replace(
                "skip_provider_button = true",
                "skip_provider_button = false",
            )
        },
        "sso",
        "redirect-to-login",
        "skip_provider_button",
    )
    .await;
    broken(
        &client,
        &infra,
        "a redirect URI Dex does not know",
        "sso/dex.values.yaml",
        |t| t.replace("/oauth2/callback", "/oauth2/unknown-callback"),
        "sso",
        "login-form",
        "config.staticClients[].redirectURIs",
    )
    .await;

    // A host port that is not 80 (and other host names, as infra/envs/staging.yaml has):
    // the issuer URL and the redirect URI carry the port, and the login works.
    let overlay = infra.read("envs/kwok.yaml");
    infra.write(
        "envs/kwok.yaml",
        &format!(
            "{overlay}\n# The e2e test of verify: a host port that is not 80.\ndomain: staging.example.com\nhosts:\n  nginx: app\n  dex: login\n"
        ),
    );
    let with_port = infra.read("envs/kwok.yaml");
    let with_port = match with_port.lines().position(|l| l == "cluster:") {
        Some(at) => {
            let mut lines: Vec<&str> = with_port.lines().collect();
            lines.insert(at + 1, "  kind:\n    hostPort: 8080");
            lines.join("\n") + "\n"
        }
        None => format!("{with_port}cluster:\n  kind:\n    hostPort: 8080\n"),
    };
    infra.write("envs/kwok.yaml", &with_port);
    apply(&infra, None);
    let login = Login::start(&client).await;
    let output = verify(&infra, login.gateway, &[]);
    let text = describe(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "host port 8080: {text}\n{}",
        login.story()
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("http://app.staging.example.com:8080/"),
        "{text}"
    );
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    drop(login);
}

/// Destroys the environment when the test ends, passed or not: the next test binary starts
/// from an empty cluster.
struct Destroy<'a>(&'a InfraCopy);

impl Drop for Destroy<'_> {
    fn drop(&mut self) {
        let destroyed = xtask(&[
            "destroy",
            "--auto-approve",
            "--env",
            "kwok",
            "--infra",
            &self.0.path().display().to_string(),
        ]);
        if !destroyed.status.success() && !std::thread::panicking() {
            panic!("destroy: {}", describe(&destroyed));
        }
    }
}
