//! A Helm change shows what it will do to the cluster, object by object (issue 12), through the
//! `cargo xtask` CLI against the testenv, with Dex from the REAL chart (dex 0.24.0 of the
//! offline mirror, as the kwok environment installs it):
//!
//! - the Service port 80 -> 8080 in the values lists Service `sso/dex` with
//!   `spec.ports[0].port: 80 -> 8080` and nothing else;
//! - a values change that renders nothing different says "values changed, no object changes";
//! - a values change of Dex's config shows its Secret's key, never its value;
//! - a chart version bump (a copy of the real chart with one template changed) shows its
//!   object changes the same way;
//! - after each apply, every shown object's live state equals the shown "after".
//!
//! One scenario, in order; this file is its own test binary, so nothing else runs beside it.

use std::path::{Path, PathBuf};

use e2e::{InfraCopy, describe, xtask};
use serde_json::Value;

/// The real Dex chart of the offline mirror (the one `infra/` pins).
fn real_dex_chart() -> PathBuf {
    e2e::chart("dex")
}

struct Session<'a> {
    infra: &'a InfraCopy,
    /// Everything every command printed, to search for secrets at the end.
    transcript: String,
}

impl Session<'_> {
    fn ok(&mut self, args: &[&str]) -> String {
        let infra_dir = self.infra.path().display().to_string();
        let mut all = args.to_vec();
        all.extend(["--env", "kwok", "--infra", &infra_dir]);
        let output = xtask(&all);
        self.transcript.push_str(&describe(&output));
        assert!(output.status.success(), "{:?}: {}", args, describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `plan` as text and as JSON.
    fn plan(&mut self) -> (String, Value) {
        let text = self.ok(&["plan"]);
        let json = self.ok(&["plan", "--output", "json"]);
        let json = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        (text, json)
    }
}

/// Points the kwok environment's Dex release at a chart directory (`charts.dex.path`; the
/// overlay's `charts:` map is the last block of `envs/kwok.yaml`).
fn use_dex_chart(infra: &InfraCopy, chart: &Path) {
    let env = infra.read("envs/kwok.yaml");
    assert!(
        !env.contains("\n  dex:\n"),
        "envs/kwok.yaml sets charts.dex already: {env}"
    );
    let last_top_level = env
        .lines()
        .rfind(|l| !l.starts_with([' ', '#']) && !l.is_empty());
    assert_eq!(last_top_level, Some("charts:"), "{env}");
    infra.write(
        "envs/kwok.yaml",
        &format!("{env}  dex:\n    path: {}\n", chart.display()),
    );
}

/// The object changes of the Dex release in a JSON plan.
fn dex_objects(plan: &Value) -> Value {
    plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "sso.helm_release.dex")
        .expect("the plan has the dex release")["object_changes"]
        .clone()
}

/// The live object an object change names, stripped and redacted like a plan shows it.
async fn live_as_shown(client: &kube::Client, change: &Value) -> Option<Value> {
    let cluster_client = client.clone();
    let discovery = kube::Discovery::new(cluster_client)
        .run_aggregated()
        .await
        .expect("discovery");
    let api_version = change["api_version"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, change["kind"].as_str().unwrap());
    let (resource, _) = discovery.resolve_gvk(&gvk).expect("a served kind");
    let api: kube::Api<kube::api::DynamicObject> = match change["namespace"].as_str() {
        Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &resource),
        None => kube::Api::all_with(client.clone(), &resource),
    };
    let live = api
        .get_opt(change["name"].as_str().unwrap())
        .await
        .unwrap()?;
    let live = serde_json::to_value(live).unwrap();
    Some(engine::redact(&live::fields::strip_noise(&live), &[]))
}

/// After apply, every object is as the plan showed it: updated and created objects equal
/// their "after" (created ones contain it: the server adds defaults), deleted ones are gone.
async fn assert_applied_as_shown(client: &kube::Client, objects: &Value) {
    for change in objects.as_array().unwrap() {
        let live = live_as_shown(client, change).await;
        let id = change["object"].as_str().unwrap();
        match change["action"].as_str().unwrap() {
            "update" => assert_eq!(
                live.as_ref(),
                Some(&change["after"]),
                "{id}: the live object differs from the shown after"
            ),
            "create" => assert!(
                live.as_ref()
                    .is_some_and(|l| live::fields::is_contained(&change["after"], l)),
                "{id}: not created as shown: {live:?}"
            ),
            "delete" => assert_eq!(live, None, "{id}: not deleted"),
            other => panic!("{id}: unknown action {other}"),
        }
    }
}

fn field_lines(objects: &Value, object: &str) -> Vec<(String, Value, Value)> {
    let change = objects
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == object)
        .unwrap_or_else(|| panic!("{object} is not among the changes: {objects:#}"));
    change["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["before"].clone(),
                f["after"].clone(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_helm_change_shows_what_it_does_to_each_object_and_apply_does_exactly_that() {
    let client = e2e::client().await;
    // The kwok environment installs the real charts (from the offline mirror).
    let infra = InfraCopy::new();
    let mut s = Session {
        infra: &infra,
        transcript: String::new(),
    };

    // An install lists the objects it creates.
    let (text, json) = s.plan();
    let installed = dex_objects(&json);
    let created: Vec<&str> = installed
        .as_array()
        .expect("an install lists its objects")
        .iter()
        .map(|o| o["object"].as_str().unwrap())
        .collect();
    assert!(
        created.contains(&"service/sso/dex")
            && created.contains(&"deployment/sso/dex")
            && created.contains(&"secret/sso/dex"),
        "{created:?}"
    );
    assert!(
        installed
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] == "create"),
        "{installed:#}"
    );
    assert!(
        text.contains("    Objects the install creates:\n"),
        "{text}"
    );
    assert!(text.contains("      + service/sso/dex\n"), "{text}");
    s.ok(&["apply", "--auto-approve"]);
    assert_applied_as_shown(&client, &installed).await;

    // The Service port, 80 -> 8080: Service sso/dex and nothing else. (Nothing else of the
    // real chart derives from the port: the container listens on its named port `http`.)
    // (The values file takes the port from the environment's host port, 80 here.)
    let dex_values = infra.read("sso/dex.values.yaml");
    let port = "      port: ${env.cluster.kind.hostPort}\n";
    assert!(dex_values.contains(port), "{dex_values}");
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace(port, "      port: 8080\n"),
    );
    let (text, json) = s.plan();
    eprintln!("--- plan of the port change\n{text}");
    let objects = dex_objects(&json);
    assert_eq!(objects.as_array().unwrap().len(), 1, "{objects:#}");
    assert_eq!(objects[0]["object"], "service/sso/dex");
    assert_eq!(objects[0]["action"], "update");
    assert_eq!(
        field_lines(&objects, "service/sso/dex"),
        [(
            "spec.ports[0].port".to_owned(),
            Value::from(80),
            Value::from(8080)
        )]
    );
    assert!(
        text.contains(
            "    Objects the upgrade changes (server-side dry run):\n      ~ service/sso/dex\n          ~ spec.ports[0].port: 80 -> 8080\n"
        ),
        "{text}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_applied_as_shown(&client, &objects).await;
    let (text, _) = s.plan();
    assert!(text.contains("No changes."), "{text}");

    // A values change the chart renders nothing from (https is off): no object changes.
    let dex_values = infra.read("sso/dex.values.yaml");
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace(
            "service:\n  ports:\n",
            "service:\n  ports:\n    https:\n      port: 8443\n",
        ),
    );
    let (text, json) = s.plan();
    assert_eq!(dex_objects(&json), serde_json::json!([]), "{text}");
    assert!(
        text.contains("    Objects: values changed, no object changes\n"),
        "{text}"
    );
    let before = release_versions(&client, &created).await;
    s.ok(&["apply", "--auto-approve"]);
    assert_eq!(
        release_versions(&client, &created).await,
        before,
        "no object of the release was written"
    );

    // Dex's config (in a Secret the chart renders): the key shows, never the value; the
    // Deployment's config checksum moves with it.
    let dex_values = infra.read("sso/dex.values.yaml");
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 2h"),
    );
    let (text, json) = s.plan();
    eprintln!("--- plan of the config change\n{text}");
    let objects = dex_objects(&json);
    let changed: Vec<&str> = objects
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["deployment/sso/dex", "secret/sso/dex"], "{text}");
    assert_eq!(
        field_lines(&objects, "secret/sso/dex"),
        [(
            "data[\"config.yaml\"]".to_owned(),
            Value::from(engine::SENSITIVE),
            Value::from(engine::SENSITIVE)
        )]
    );
    let deployment_fields = field_lines(&objects, "deployment/sso/dex");
    assert_eq!(
        deployment_fields
            .iter()
            .map(|(p, _, _)| p.as_str())
            .collect::<Vec<_>>(),
        ["spec.template.metadata.annotations.checksum/config"]
    );
    assert!(
        text.contains(
            "      ~ secret/sso/dex\n          ~ data[\"config.yaml\"]: (sensitive value)\n"
        ),
        "{text}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_applied_as_shown(&client, &objects).await;

    // A chart version bump: a copy of the real chart as 0.24.1 with one template changed.
    let bumped = std::env::temp_dir().join(e2e::unique_name("dex-chart"));
    let chart_dir = bumped.join("dex");
    copy_dir(&real_dex_chart(), &chart_dir);
    let chart_yaml = std::fs::read_to_string(chart_dir.join("Chart.yaml")).unwrap();
    assert!(chart_yaml.contains("version: 0.24.0"), "{chart_yaml}");
    std::fs::write(
        chart_dir.join("Chart.yaml"),
        chart_yaml.replace("version: 0.24.0", "version: 0.24.1"),
    )
    .unwrap();
    let service = std::fs::read_to_string(chart_dir.join("templates/service.yaml")).unwrap();
    std::fs::write(
        chart_dir.join("templates/service.yaml"),
        service.replace(
            "  type: {{ .Values.service.type }}\n",
            "  type: {{ .Values.service.type }}\n  sessionAffinity: ClientIP\n",
        ),
    )
    .unwrap();
    use_dex_chart(&infra, &chart_dir);
    let (text, json) = s.plan();
    eprintln!("--- plan of the chart bump\n{text}");
    assert!(
        text.contains("-   version: \"0.24.0\"") && text.contains("+   version: \"0.24.1\""),
        "{text}"
    );
    let objects = dex_objects(&json);
    // Every object of the real chart carries the chart's version in a label.
    let rendered_objects = created.len();
    let mut service_fields = Vec::new();
    for object in objects.as_array().unwrap() {
        let id = object["object"].as_str().unwrap();
        let fields = field_lines(&objects, id);
        assert!(
            fields.contains(&(
                "metadata.labels[\"helm.sh/chart\"]".to_owned(),
                Value::from("dex-0.24.0"),
                Value::from("dex-0.24.1")
            )),
            "{id}: {fields:?}"
        );
        if id == "service/sso/dex" {
            service_fields = fields;
        }
    }
    assert_eq!(
        objects.as_array().unwrap().len(),
        rendered_objects,
        "every object of the release changes its chart label: {objects:#}"
    );
    assert!(
        service_fields.contains(&(
            "spec.sessionAffinity".to_owned(),
            Value::from("None"),
            Value::from("ClientIP")
        )),
        "the changed template shows, against the server's default: {service_fields:?}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_applied_as_shown(&client, &objects).await;
    let (text, _) = s.plan();
    assert!(text.contains("No changes."), "{text}");

    // No secret material in anything printed: Dex's config Secret and the generated client
    // secret, as stored (base64) and in clear.
    let mut secrets = Vec::new();
    for name in ["dex", "oauth2-proxy"] {
        let secret = e2e::typed_api(&client, "v1", "Secret", "secrets", Some("sso"))
            .get(name)
            .await
            .unwrap();
        for (_, value) in secret.data["data"].as_object().unwrap() {
            let encoded = value.as_str().unwrap().to_owned();
            let decoded =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &encoded)
                    .unwrap();
            secrets.push(encoded);
            secrets.push(String::from_utf8(decoded).unwrap());
        }
    }
    for secret in secrets
        .iter()
        .filter(|s| s.len() >= 12 && s.as_str() != "oauth2-proxy")
    {
        assert!(
            !s.transcript.contains(secret.as_str()),
            "secret material in the output"
        );
    }

    s.ok(&["destroy", "--auto-approve"]);
    let _ = std::fs::remove_dir_all(&bumped);
}

/// `Kind/namespace/name` -> resourceVersion of the release's objects (their ids, lowercase).
async fn release_versions(
    client: &kube::Client,
    ids: &[&str],
) -> std::collections::BTreeMap<String, String> {
    e2e::objects_matching(client, "app.kubernetes.io/instance=dex")
        .await
        .into_iter()
        .filter(|(key, _)| ids.contains(&key.to_lowercase().as_str()))
        .collect()
}
