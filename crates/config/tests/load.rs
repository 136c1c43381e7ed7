//! The real `infra/` loads for every shipped environment.

use std::path::{Path, PathBuf};

use config::{ChartSource, Ownership, Provider};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}

fn load(env: Option<&str>) -> config::Environment {
    config::load(&infra(), env).unwrap_or_else(|errors| panic!("{errors}"))
}

#[test]
fn default_environment_loads() {
    let env = load(None);
    let s = &env.settings;
    assert_eq!(s.name, "default");
    assert_eq!(s.cluster.provider, Provider::Kind);
    assert_eq!(s.nginx_fqdn(), "nginx.example.com");
    assert_eq!(s.versions.istio, "1.30.3");
    assert_eq!(env.pins.version, "v1.5.1");
    assert_eq!(env.pins.files.len(), 9);
    assert!(
        env.pins
            .files
            .iter()
            .any(|f| f.name.contains("vap_safeupgrades"))
    );
    let names: Vec<&str> = env.releases.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["istio-base", "istio-cni", "istiod", "dex", "oauth2-proxy"]
    );
    let istiod = env.release("istiod").unwrap();
    assert_eq!(
        istiod.chart,
        ChartSource::Repo {
            repo: "https://istio-release.storage.googleapis.com/charts".into(),
            chart: "istiod".into(),
            version: "1.30.3".into(),
            sha256: None
        }
    );
    let provider = &istiod.values.value["meshConfig"]["extensionProviders"][0];
    assert_eq!(provider["name"], "oauth2-proxy");
    let dex = env.release("dex").unwrap();
    assert_eq!(
        dex.values.value["config"]["issuer"],
        "http://dex.example.com/dex"
    );
    let o2p = env.release("oauth2-proxy").unwrap();
    assert_eq!(
        o2p.values.value["hostAliases"][0]["ip"],
        "${output.sso.dex_cluster_ip}"
    );
    assert_eq!(
        o2p.values.value["config"]["existingSecret"],
        "${secret.sso.oauth2-proxy}"
    );
    // The gateway's nodePort reaches the ConfigMap's `service` overlay as text.
    let cm = env
        .manifests
        .iter()
        .find(|d| d.kind() == Some("ConfigMap"))
        .unwrap();
    assert!(
        cm.value["data"]["service"]
            .as_str()
            .unwrap()
            .contains("nodePort: 30080")
    );
    let default_ns = env
        .manifests
        .iter()
        .find(|d| d.kind() == Some("Namespace") && d.name() == Some("default"))
        .unwrap();
    assert_eq!(default_ns.ownership, Ownership::FieldsOnly);
    assert!(default_ns.value["metadata"].get("annotations").is_none());
    assert_eq!(env.generated_secrets.len(), 1);
    let secret = &env.generated_secrets[0];
    assert_eq!(
        (secret.module.as_str(), secret.name.as_str()),
        ("sso", "oauth2-proxy")
    );
    assert_eq!(secret.plain["client-id"], "oauth2-proxy");
    assert_eq!(secret.generated.len(), 2);
    let policy = env.manifests_of("policy").next().unwrap();
    assert_eq!(
        policy.value["spec"]["rules"][0]["to"][0]["operation"]["paths"][0],
        "/*"
    );
}

#[test]
fn kwok_environment_loads() {
    let env = load(Some("kwok"));
    assert_eq!(env.settings.name, "kwok");
    assert_eq!(env.settings.cluster.provider, Provider::Kwok);
    for release in &env.releases {
        assert!(
            matches!(&release.chart, ChartSource::Local { path } if path.starts_with(infra().join("testenv/charts"))),
            "{}: {:?}",
            release.name,
            release.chart
        );
    }
}

#[test]
fn staging_environment_loads() {
    let env = load(Some("staging"));
    assert_eq!(env.settings.name, "staging");
    assert_eq!(env.settings.cluster.name, "istio-staging");
    assert_eq!(env.settings.nginx_fqdn(), "app.staging.example.com");
    let dex = env.release("dex").unwrap();
    assert_eq!(
        dex.values.value["config"]["issuer"],
        "http://login.staging.example.com/dex"
    );
    let o2p = env.release("oauth2-proxy").unwrap();
    assert!(
        o2p.values.value["config"]["configFile"]
            .as_str()
            .unwrap()
            .contains("cookie_domains = [ \".staging.example.com\" ]")
    );
}

#[test]
fn locate_maps_placeholders_and_fields_back() {
    let env = load(None);
    let values = infra().join("sso/oauth2-proxy.values.yaml");
    let at = env.locate(&values, "${output.sso.dex_cluster_ip}").unwrap();
    assert_eq!((at.line, at.column), (6, 9));
    let at = env
        .locate(
            Path::new("sso/oauth2-proxy.values.yaml"),
            "config.existingSecret",
        )
        .unwrap();
    assert_eq!(at.line, 12);
    let at = env.locate_setting("cluster.kind.hostPort").unwrap();
    assert!(at.file.ends_with("environment.yaml"));
    let e = env.error_at(&values, "${output.sso.dex_cluster_ip}", "no producer");
    assert_eq!(e.field, "hostAliases[0].ip");
}
