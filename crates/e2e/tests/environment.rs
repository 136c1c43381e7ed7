//! The whole environment (`--env kwok`: the fixture charts stand in for the upstream ones)
//! through the `cargo xtask` CLI, against the testenv: apply from nothing, no changes after,
//! Helm releases that upgrade only when something differs (values, or objects changed behind
//! Helm's back), generated secrets that stay the same and never show, destroy that leaves nothing.
//!
//! One scenario, in order; this file is its own test binary, so nothing else runs beside it.

use std::collections::BTreeMap;

use base64::Engine as _;
use e2e::{InfraCopy, describe, xtask};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

struct Session<'a> {
    infra: &'a InfraCopy,
    /// Everything every command printed, to search for secrets at the end.
    transcript: String,
}

impl Session<'_> {
    fn run(&mut self, args: &[&str]) -> std::process::Output {
        let infra_dir = self.infra.path().display().to_string();
        let mut all = args.to_vec();
        all.extend(["--env", "kwok", "--infra", &infra_dir]);
        let output = xtask(&all);
        self.transcript.push_str(&describe(&output));
        output
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "{:?}: {}", args, describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn helm_revision(release: &str, namespace: &str) -> Option<u64> {
    let out = std::process::Command::new(e2e::helm_binary())
        .args([
            "list",
            "-n",
            namespace,
            "-o",
            "json",
            "--filter",
            &format!("^{release}$"),
        ])
        .output()
        .expect("running helm");
    let list: Value = serde_json::from_slice(&out.stdout).expect("helm list JSON");
    list.as_array()?
        .first()?
        .get("revision")?
        .as_str()?
        .parse()
        .ok()
}

/// The values of the generated Secret: `(key, value)` of every key.
async fn secret_values(client: &kube::Client) -> BTreeMap<String, String> {
    let secrets = e2e::typed_api(client, "v1", "Secret", "secrets", Some("sso"));
    let secret = secrets
        .get("oauth2-proxy")
        .await
        .expect("the generated secret exists");
    secret.data["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), String::from_utf8(raw).unwrap())
        })
        .collect()
}

async fn owned_objects(client: &kube::Client) -> Vec<String> {
    e2e::objects_matching(client, "app.kubernetes.io/managed-by=envctl")
        .await
        .into_keys()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_environment_applies_converges_keeps_its_secrets_and_destroys_cleanly() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();
    let mut s = Session {
        infra: &infra,
        transcript: String::new(),
    };

    // From nothing to the whole environment, then nothing to do.
    let applied = s.ok(&["apply", "--auto-approve"]);
    // 27 objects, releases and secrets to create; namespace `default` (label) and the cluster
    // record to update. (Namespace istio-system counts as a change where it exists already.)
    let summary = applied
        .lines()
        .find(|l| l.starts_with("Apply complete!"))
        .expect("a summary line");
    let counts: Vec<usize> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(counts.len(), 3, "{summary}");
    assert_eq!((counts[0] + counts[1], counts[2]), (29, 0), "{summary}");
    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("No changes."));

    // Cross-module values landed: Dex's ClusterIP in OAuth2 Proxy's host alias, the provider in
    // the mesh config.
    let dex_ip = e2e::typed_api(&client, "v1", "Service", "services", Some("sso"))
        .get("dex")
        .await
        .unwrap()
        .data["spec"]["clusterIP"]
        .clone();
    let values = std::process::Command::new(e2e::helm_binary())
        .args(["get", "values", "oauth2-proxy", "-n", "sso", "-o", "json"])
        .output()
        .unwrap();
    let values: Value = serde_json::from_slice(&values.stdout).unwrap();
    assert_eq!(values["hostAliases"][0]["ip"], dex_ip);
    assert_eq!(values["config"]["existingSecret"], "oauth2-proxy");
    let mesh = e2e::typed_api(
        &client,
        "v1",
        "ConfigMap",
        "configmaps",
        Some("istio-system"),
    )
    .get("istio")
    .await
    .unwrap();
    assert!(
        mesh.data["data"]["mesh"]
            .as_str()
            .unwrap()
            .contains("name: oauth2-proxy")
    );

    // A second apply: no change, no new Helm revision, the same secrets.
    let secrets = secret_values(&client).await;
    assert_eq!(
        secrets.keys().collect::<Vec<_>>(),
        ["client-id", "client-secret", "cookie-secret"]
    );
    assert_eq!(
        secrets["cookie-secret"].len(),
        44,
        "32 bytes, URL-safe base64"
    );
    assert_eq!(helm_revision("dex", "sso"), Some(1));
    let again = s.ok(&["apply", "--auto-approve"]);
    assert!(again.contains("No changes."), "{again}");
    assert_eq!(
        helm_revision("dex", "sso"),
        Some(1),
        "no upgrade without a difference"
    );
    assert_eq!(
        secret_values(&client).await,
        secrets,
        "generated once, reused"
    );

    // A values change upgrades the release.
    let dex_values = infra.read("sso/dex.values.yaml");
    assert!(dex_values.contains("idTokens: 1h"));
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 2h"),
    );
    let plan = s.ok(&["plan"]);
    assert!(
        plan.contains("# sso.helm_release.dex will be updated in-place"),
        "{plan}"
    );
    assert!(
        plan.contains("-       idTokens: 1h") && plan.contains("+       idTokens: 2h"),
        "{plan}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_eq!(helm_revision("dex", "sso"), Some(2));

    // A chart object edited behind Helm's back: drift names the manager; apply repairs.
    let deployments = e2e::typed_api(&client, "apps/v1", "Deployment", "deployments", Some("sso"));
    deployments
        .patch(
            "dex",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let drift = s.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(2), "{}", describe(&drift));
    let text = String::from_utf8_lossy(&drift.stdout).into_owned();
    assert!(
        text.contains("# sso.helm_release.dex will be updated in-place"),
        "{text}"
    );
    assert!(
        text.contains("field deployment/sso/dex spec.replicas: last written by kubectl-edit"),
        "{text}"
    );
    s.ok(&["apply", "--auto-approve"]);
    assert_eq!(
        deployments.get("dex").await.unwrap().data["spec"]["replicas"],
        1
    );
    assert_eq!(helm_revision("dex", "sso"), Some(3));

    // A chart object deleted out of band: shown, and recreated.
    let services = e2e::typed_api(&client, "v1", "Service", "services", Some("sso"));
    services
        .delete("oauth2-proxy", &Default::default())
        .await
        .unwrap();
    let drift = s.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(2), "{}", describe(&drift));
    assert!(
        String::from_utf8_lossy(&drift.stdout)
            .contains("service/sso/oauth2-proxy was deleted out of band"),
        "{}",
        describe(&drift)
    );
    s.ok(&["apply", "--auto-approve"]);
    assert!(services.get_opt("oauth2-proxy").await.unwrap().is_some());
    assert_eq!(s.run(&["drift"]).status.code(), Some(0));
    assert_eq!(
        secret_values(&client).await,
        secrets,
        "still the same secrets"
    );

    // Dex's Service deleted: Dex's release repairs it with a new ClusterIP, which OAuth2 Proxy's
    // host alias then follows (an output known after apply, re-read during the same apply).
    services.delete("dex", &Default::default()).await.unwrap();
    let plan = s.ok(&["plan"]);
    assert!(
        plan.contains("service/sso/dex was deleted out of band"),
        "{plan}"
    );
    assert!(
        plan.contains("# sso.helm_release.oauth2-proxy will be updated in-place"),
        "{plan}"
    );
    assert!(
        plan.contains("(known after apply <- sso.dex_cluster_ip)"),
        "{plan}"
    );
    s.ok(&["apply", "--auto-approve"]);
    let new_ip = services.get("dex").await.unwrap().data["spec"]["clusterIP"].clone();
    let values = std::process::Command::new(e2e::helm_binary())
        .args(["get", "values", "oauth2-proxy", "-n", "sso", "-o", "json"])
        .output()
        .unwrap();
    let values: Value = serde_json::from_slice(&values.stdout).unwrap();
    assert_eq!(
        values["hostAliases"][0]["ip"], new_ip,
        "the host alias follows Dex's new ClusterIP"
    );
    assert_eq!(s.run(&["drift"]).status.code(), Some(0));

    // Nothing any command printed (text, JSON, progress, errors) holds a secret.
    s.ok(&["plan", "--output", "json"]);
    s.ok(&["render"]);
    let destroyed = s.ok(&["destroy", "--auto-approve"]);
    assert!(destroyed.contains("Destroy complete!"), "{destroyed}");
    for (key, value) in &secrets {
        if key == "client-id" {
            continue;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        assert!(
            !s.transcript.contains(value.as_str()),
            "{key} appears in the output"
        );
        assert!(
            !s.transcript.contains(&encoded),
            "{key} (base64) appears in the output"
        );
    }

    // Destroy left nothing this project owns, and no release.
    assert_eq!(owned_objects(&client).await, Vec::<String>::new());
    for (release, ns) in [
        ("istio-base", "istio-system"),
        ("istio-cni", "kube-system"),
        ("istiod", "istio-system"),
        ("dex", "sso"),
        ("oauth2-proxy", "sso"),
    ] {
        assert_eq!(helm_revision(release, ns), None, "{release} is uninstalled");
    }
}
