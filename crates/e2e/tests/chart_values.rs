//! Tidy: every values leaf that `infra/` sets is read by the real chart it is given to.
//!
//! For each release of each environment (the default one and every overlay in `infra/envs/`),
//! the real chart (the mirror's tree, at the configured version) is rendered with `helm
//! template` and the configured values; then, for every leaf those values set (a scalar, or an
//! empty list or mapping), once with that leaf changed. A leaf whose change does not change the
//! output is a key the chart ignores: misspelt, moved by a chart bump, or a legacy spelling
//! only copied by a compatibility template. The first key of every leaf must also be a key of
//! the chart's `values.yaml` (for Istio's charts, of its `_internal_defaults_do_not_set`): Istio
//! still copies `pilot.*` (istiod) and `cni.*` (istio-cni) to the top level through legacy
//! templates, so those render, but they are not the charts' current keys.
//!
//! Failures name the file and line of the leaf. Needs only helm (the testenv's, `ENVCTL_HELM`)
//! and the mirror, not the cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use engine::FieldPath;
use serde_json::Value;

/// A leaf of a values document: its path (an `engine::FieldPath`, printed as config's errors
/// print fields, `a.b[0]["c.d"]`) and the pointer into the JSON.
#[derive(Debug, Clone)]
struct Leaf {
    path: String,
    pointer: String,
}

fn leaves(value: &Value, path: &str, pointer: &str, out: &mut Vec<Leaf>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                let child = FieldPath::append_key(path, k);
                leaves(v, &child, &format!("{pointer}/{escaped}"), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                let child = FieldPath::append_index(path, i);
                leaves(v, &child, &format!("{pointer}/{i}"), out);
            }
        }
        _ if pointer.is_empty() => {}
        _ => out.push(Leaf {
            path: path.to_owned(),
            pointer: pointer.to_owned(),
        }),
    }
}

/// `${output.sso.dex_cluster_ip}` and `${secret.sso.oauth2-proxy}` are only known at apply:
/// stand-in values of the right shape.
fn resolve_placeholders(value: &mut Value) {
    match value {
        Value::String(s) => {
            while let Some(start) = s.find("${") {
                let Some(len) = s[start..].find('}') else {
                    break;
                };
                let inner = &s[start + 2..start + len];
                let sample = if inner.ends_with("_ip") {
                    "10.96.0.10".to_owned()
                } else {
                    inner.rsplit('.').next().unwrap_or("x").to_owned()
                };
                s.replace_range(start..=start + len, &sample);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(resolve_placeholders),
        Value::Object(map) => map.values_mut().for_each(resolve_placeholders),
        _ => {}
    }
}

/// The same leaf with another value of its type.
fn changed(value: &Value) -> Value {
    match value {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i + 1),
            None => Value::from(n.as_f64().unwrap_or(0.0) + 1.0),
        },
        Value::String(s) if s.contains('\n') => Value::String(format!("{s}\n# changed\n")),
        Value::String(s) => Value::String(format!("{s}x")),
        Value::Array(_) => serde_json::json!(["envctl-tidy"]),
        Value::Object(_) => serde_json::json!({"envctl-tidy": "x"}),
        Value::Null => Value::String("x".into()),
    }
}

fn template(
    chart: &Path,
    release: &str,
    namespace: &str,
    values: &Value,
) -> Result<String, String> {
    template_with(chart, release, namespace, values, &[])
}

fn template_with(
    chart: &Path,
    release: &str,
    namespace: &str,
    values: &Value,
    extra: &[&str],
) -> Result<String, String> {
    let dir = std::env::temp_dir().join("envctl-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.json", e2e::unique_name("tidy-values")));
    std::fs::write(&file, serde_json::to_vec(values).unwrap()).unwrap();
    let output = Command::new(e2e::helm_binary())
        .arg("template")
        .arg(release)
        .arg(chart)
        .args(["--namespace", namespace, "--values"])
        .arg(&file)
        .args(extra)
        .output()
        .expect("running helm");
    let _ = std::fs::remove_file(&file);
    if output.status.success() {
        Ok(without_values_dump(&String::from_utf8_lossy(
            &output.stdout,
        )))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The rendered documents without istiod's `values` ConfigMap, a copy of every value given
/// (any key, read or not) that the chart renders "for debugging purposes ... modifying these
/// values has no effect": compared with it, every key would look read.
fn without_values_dump(rendered: &str) -> String {
    engine::split_documents(rendered)
        .into_iter()
        .filter(|doc| {
            !doc.text
                .contains("# Source: istiod/templates/configmap-values.yaml")
        })
        .map(|doc| format!("---\n{}", doc.text))
        .collect()
}

/// The chart's declared top-level values keys (Istio's: also those of its internal defaults).
fn declared_keys(chart: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    let mut keys: BTreeSet<String> = values
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(internal) = values
        .get("_internal_defaults_do_not_set")
        .and_then(Value::as_object)
    {
        keys.extend(internal.keys().cloned());
    }
    keys
}

fn environments() -> Vec<Option<String>> {
    let mut envs = vec![None];
    let dir = e2e::workspace_root().join("infra/envs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    envs.extend(names.into_iter().map(Some));
    envs
}

/// One render job: a leaf of one release of one environment, and where it was written.
struct Job {
    chart: PathBuf,
    release: String,
    namespace: String,
    values: Value,
    base: String,
    leaf: Leaf,
    at: String,
}

#[test]
fn every_values_leaf_in_infra_changes_what_the_real_chart_renders() {
    let infra = e2e::workspace_root().join("infra");
    let mut problems = Vec::new();
    let mut jobs = Vec::new();
    // A leaf written once (same file and line) is checked once, in the first environment.
    let mut seen = BTreeSet::new();
    let mut rendered = 0;
    for env_name in environments() {
        let env = config::load(&infra, env_name.as_deref(), &xtask::REGISTRY)
            .unwrap_or_else(|e| panic!("infra/ ({env_name:?}) does not load: {e}"));
        for release in &env.releases {
            let chart = e2e::chart(&release.name);
            let mut values = release.values.value.clone();
            resolve_placeholders(&mut values);
            let base = template(&chart, &release.name, &release.namespace, &values)
                .unwrap_or_else(|e| panic!("{} ({env_name:?}) does not render: {e}", release.name));
            let again = template(&chart, &release.name, &release.namespace, &values).unwrap();
            assert_eq!(base, again, "{}: helm template is not stable", release.name);
            rendered += 1;
            let declared = declared_keys(&chart);
            let mut found = Vec::new();
            leaves(&values, "", "", &mut found);
            for leaf in found {
                let in_values: FieldPath = leaf.path.parse().expect("a printed FieldPath");
                let overlay = in_values
                    .prefixed(
                        &FieldPath::root()
                            .key("charts")
                            .key(&release.name)
                            .key("values"),
                    )
                    .to_string();
                let location = env
                    .locate_setting(&overlay)
                    .or_else(|| env.locate_in(&release.values, &leaf.path));
                let at = match &location {
                    Some(l) => format!(
                        "{}:{}",
                        l.file
                            .strip_prefix(&infra)
                            .map(|p| format!("infra/{}", p.display()))
                            .unwrap_or_else(|_| l.file.display().to_string()),
                        l.line
                    ),
                    None => format!("(unlocated) {} of {}", leaf.path, release.name),
                };
                if !seen.insert((at.clone(), release.name.clone())) {
                    continue;
                }
                let top = leaf
                    .pointer
                    .split('/')
                    .nth(1)
                    .unwrap_or_default()
                    .replace("~1", "/")
                    .replace("~0", "~");
                if !declared.contains(&top) {
                    problems.push(format!(
                        "{at}: `{}` of release {}: `{top}` is not a key of the chart's values.yaml \
                         (a legacy spelling or a typo; use the chart's current key)",
                        leaf.path, release.name
                    ));
                }
                jobs.push(Job {
                    chart: chart.clone(),
                    release: release.name.clone(),
                    namespace: release.namespace.clone(),
                    values: values.clone(),
                    base: base.clone(),
                    leaf,
                    at,
                });
            }
        }
    }
    assert!(rendered >= 5, "every release rendered");
    let total = jobs.len();
    assert!(
        total > 30,
        "the values of infra/ have more leaves than {total}"
    );
    // Two at a time: the machine is shared.
    let chunks: Vec<Vec<Job>> = {
        let mut chunks = vec![Vec::new(), Vec::new()];
        for (i, job) in jobs.into_iter().enumerate() {
            chunks[i % 2].push(job);
        }
        chunks
    };
    let results: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let mut problems = Vec::new();
                    for job in chunk {
                        let mut values = job.values.clone();
                        let slot = values.pointer_mut(&job.leaf.pointer).unwrap();
                        *slot = changed(slot);
                        match template(&job.chart, &job.release, &job.namespace, &values) {
                            Ok(out) if out == job.base => problems.push(format!(
                                "{}: `{}` of release {}: changing it changes nothing the chart \
                                 renders (a key the chart ignores)",
                                job.at, job.leaf.path, job.release
                            )),
                            // A changed value the chart refuses is read by it.
                            Ok(_) | Err(_) => {}
                        }
                    }
                    problems
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    problems.extend(results.into_iter().flatten());
    assert!(
        problems.is_empty(),
        "{} of {total} values leaves are not read by their chart:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!("{total} values leaves checked against the real charts");
}

#[test]
fn the_tidy_check_catches_an_ignored_and_a_legacy_key() {
    // The check itself: a key istiod ignores renders the same; `pilot.env` (legacy) renders
    // like `env` but is not a declared key.
    let chart = e2e::chart("istiod");
    let base = serde_json::json!({"env": {"A": "1"}});
    let out = template(&chart, "istiod", "istio-system", &base).unwrap();
    let ignored = serde_json::json!({"env": {"A": "1"}, "noSuchKey": {"x": 1}});
    assert_eq!(
        template(&chart, "istiod", "istio-system", &ignored).unwrap(),
        out,
        "an unknown key renders the same"
    );
    let legacy = serde_json::json!({"pilot": {"env": {"A": "1"}}});
    assert_eq!(
        template(&chart, "istiod", "istio-system", &legacy).unwrap(),
        out,
        "pilot.env is copied to env by a legacy template"
    );
    let declared = declared_keys(&chart);
    assert!(declared.contains("env") && declared.contains("meshConfig"));
    assert!(!declared.contains("pilot") && !declared.contains("noSuchKey"));
    let mut found = Vec::new();
    leaves(&ignored, "", "", &mut found);
    let paths: Vec<&str> = found.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, ["env.A", "noSuchKey.x"]);
}

/// The objects the real chart of `release` renders with the values of environment `env`.
fn rendered(env: Option<&str>, release: &str) -> Vec<Value> {
    let loaded = config::load(&e2e::workspace_root().join("infra"), env, &xtask::REGISTRY).unwrap();
    let config = loaded.release(release).unwrap();
    let mut values = config.values.value.clone();
    resolve_placeholders(&mut values);
    let out = template(&e2e::chart(release), release, &config.namespace, &values)
        .unwrap_or_else(|e| panic!("{release} ({env:?}): {e}"));
    live::helm::parse_manifest(&out).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[test]
fn the_default_environment_gets_istiods_injector_and_kwok_leaves_it_out() {
    let default = rendered(None, "istiod");
    let injector = find(
        &default,
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector",
    )
    .expect("the default environment installs the sidecar injector");
    let by_namespace = injector["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "namespace.sidecar-injector.istio.io")
        .unwrap();
    // What gateway/default-namespace.yaml labels `default` with (mesh's output
    // `injection_ready`) is what the injector selects; and it refuses pods when istiod does not
    // answer, which is why the kwok overlay leaves it out.
    assert_eq!(
        by_namespace["namespaceSelector"]["matchExpressions"][0],
        serde_json::json!({"key": "istio-injection", "operator": "In", "values": ["enabled"]})
    );
    assert_eq!(by_namespace["failurePolicy"], "Fail");
    assert!(
        find(
            &default,
            "ValidatingWebhookConfiguration",
            "istio-validator-istio-system"
        )
        .is_some()
    );

    let kwok = rendered(Some("kwok"), "istiod");
    assert!(
        find(
            &kwok,
            "MutatingWebhookConfiguration",
            "istio-sidecar-injector"
        )
        .is_none()
    );
    let validator = find(
        &kwok,
        "ValidatingWebhookConfiguration",
        "istio-validator-istio-system",
    )
    .expect("the validation webhook stays under kwok");
    assert_eq!(validator["webhooks"][0]["failurePolicy"], "Ignore");

    // On an upgrade the charts render no failurePolicy (the API server's default is Fail, and
    // on kind istiod sets it once it serves); under kwok nobody would, so the overlay keeps
    // both validators fail-open on upgrades too.
    for (release, name) in [
        ("istiod", "istio-validator-istio-system"),
        ("istio-base", "istiod-default-validator"),
    ] {
        for (env, expected) in [(None, Value::Null), (Some("kwok"), Value::from("Ignore"))] {
            let loaded =
                config::load(&e2e::workspace_root().join("infra"), env, &xtask::REGISTRY).unwrap();
            let config = loaded.release(release).unwrap();
            let out = template_with(
                &e2e::chart(release),
                release,
                &config.namespace,
                &config.values.value,
                &["--is-upgrade"],
            )
            .unwrap();
            let objects = live::helm::parse_manifest(&out).unwrap();
            let hook = find(&objects, "ValidatingWebhookConfiguration", name).unwrap();
            assert_eq!(
                hook["webhooks"][0]["failurePolicy"], expected,
                "{release} upgrade ({env:?})"
            );
        }
    }
}

#[test]
fn a_host_port_other_than_80_is_in_every_url_the_login_compares() {
    let dex = rendered(Some("staging"), "dex");
    let secret = find(&dex, "Secret", "dex").expect("Dex's config Secret");
    let config = secret["stringData"]["config.yaml"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            use base64::Engine as _;
            let raw = secret["data"]["config.yaml"].as_str().unwrap();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap(),
            )
            .unwrap()
        });
    let config: Value = serde_saphyr::from_str(&config).unwrap();
    assert_eq!(
        config["issuer"],
        "http://login.staging.example.com:8080/dex"
    );
    assert_eq!(
        config["staticClients"][0]["redirectURIs"][0],
        "http://app.staging.example.com:8080/oauth2/callback"
    );
    let service = find(&dex, "Service", "dex").unwrap();
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);

    let proxy = rendered(Some("staging"), "oauth2-proxy");
    let cfg = find(&proxy, "ConfigMap", "oauth2-proxy").unwrap()["data"]["oauth2_proxy.cfg"]
        .as_str()
        .unwrap()
        .to_owned();
    for line in [
        "oidc_issuer_url = \"http://login.staging.example.com:8080/dex\"",
        "redirect_url = \"http://app.staging.example.com:8080/oauth2/callback\"",
    ] {
        assert!(cfg.contains(line), "{line} in {cfg}");
    }
    // The hardened defaults, as the chart renders them.
    let service = find(&proxy, "Service", "oauth2-proxy").unwrap();
    let ports: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ports.len(), 1, "no metrics port: {ports:?}");
    assert!(
        !proxy.iter().any(|o| o["kind"] == "StatefulSet"),
        "no redis-ha"
    );
    assert!(
        !cfg.lines()
            .any(|l| l.trim_start().starts_with("cookie_domains"))
    );
}
