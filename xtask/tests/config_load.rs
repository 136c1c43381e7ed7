//! The real `infra/` loads for every shipped environment.

use std::path::{Path, PathBuf};

use cluster::Provider;
use config::{ChartSource, Ownership};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

fn load(env: Option<&str>) -> config::Environment {
    config::load(&infra(), env, &xtask::REGISTRY).unwrap_or_else(|errors| panic!("{errors}"))
}

#[test]
fn default_environment_loads() {
    let env = load(None);
    let s = &env.settings;
    assert_eq!(s.name, "default");
    assert_eq!(cluster::settings(&env).unwrap().provider, Provider::Kind);
    assert_eq!(gateway::app_fqdn(s).unwrap(), "nginx.example.com");
    assert_eq!(s.version("istio"), Some("1.30.3"));
    let pins = gateway::pinned_files(&env).unwrap();
    assert_eq!(pins.version, "v1.5.1");
    assert_eq!(pins.files.len(), 9);
    assert!(
        pins.files
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
    assert_eq!(cluster::settings(&env).unwrap().provider, Provider::Kwok);
    // The real charts, from their repositories (served by the mirror), as by default.
    let default = load(None);
    for release in &env.releases {
        assert!(
            matches!(&release.chart, ChartSource::Repo { .. }),
            "{}: {:?}",
            release.name,
            release.chart
        );
        assert_eq!(
            release.chart,
            default.release(&release.name).unwrap().chart,
            "{}",
            release.name
        );
    }
    // The overlay's values are merged over the values files: added keys beside the file's.
    let istiod = &env.release("istiod").unwrap().values.value;
    assert_eq!(istiod["global"]["operatorManageWebhooks"], true);
    assert_eq!(istiod["base"]["validationFailurePolicy"], "Ignore");
    assert_eq!(
        istiod["global"]["proxy"]["resources"]["requests"]["cpu"], "10m",
        "the values file's keys stay"
    );
    assert_eq!(
        env.release("istio-base").unwrap().values.value["base"]["validationFailurePolicy"],
        "Ignore"
    );
    assert_eq!(
        env.release("dex").unwrap().values.value,
        default.release("dex").unwrap().values.value,
        "releases the overlay does not name keep their values"
    );
    let at = env
        .locate_setting("charts.istiod.values.global.operatorManageWebhooks")
        .unwrap();
    assert!(at.file.ends_with("envs/kwok.yaml"), "{at:?}");
}

#[test]
fn staging_environment_loads() {
    let env = load(Some("staging"));
    assert_eq!(env.settings.name, "staging");
    assert_eq!(cluster::settings(&env).unwrap().name, "istio-staging");
    assert_eq!(
        gateway::app_fqdn(&env.settings).unwrap(),
        "app.staging.example.com"
    );
    // Host port 8080: every URL a browser or OIDC compares carries it.
    let dex = env.release("dex").unwrap();
    assert_eq!(
        dex.values.value["config"]["issuer"],
        "http://login.staging.example.com:8080/dex"
    );
    assert_eq!(
        dex.values.value["config"]["staticClients"][0]["redirectURIs"][0],
        "http://app.staging.example.com:8080/oauth2/callback"
    );
    assert_eq!(dex.values.value["service"]["ports"]["http"]["port"], 8080);
    let config = env.release("oauth2-proxy").unwrap().values.value["config"]["configFile"]
        .as_str()
        .unwrap()
        .to_owned();
    for line in [
        "oidc_issuer_url = \"http://login.staging.example.com:8080/dex\"",
        "redirect_url = \"http://app.staging.example.com:8080/oauth2/callback\"",
    ] {
        assert!(config.contains(line), "{line} in {config}");
    }
    let route = env
        .manifests_of("sso")
        .find(|d| d.kind() == Some("HTTPRoute") && d.name() == Some("dex"))
        .unwrap();
    assert_eq!(
        route.value["spec"]["rules"][0]["backendRefs"][0]["port"],
        8080
    );

    // On port 80 the URLs have no port.
    let default = load(None);
    assert_eq!(
        default.release("dex").unwrap().values.value["config"]["issuer"],
        "http://dex.example.com/dex"
    );
    assert_eq!(default.settings.url("nginx"), "http://nginx.example.com");
}

#[test]
fn the_defaults_are_hardened() {
    let env = load(None);
    let o2p = &env.release("oauth2-proxy").unwrap().values.value;
    let config = o2p["config"]["configFile"].as_str().unwrap();
    // Only non-comment lines count.
    let settings: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for line in [
        "cookie_samesite = \"lax\"",
        "code_challenge_method = \"S256\"",
        "reverse_proxy = true",
        "trusted_proxy_ips = [ \"10.244.0.0/16\" ]",
    ] {
        assert!(settings.contains(&line), "{line} in {settings:#?}");
    }
    assert!(
        !settings.iter().any(|l| l.starts_with("cookie_domains")),
        "a host-only session cookie: {settings:#?}"
    );
    assert_eq!(o2p["metrics"]["enabled"], false);
    assert_eq!(o2p["redis-ha"]["enabled"], false);
    let istiod = &env.release("istiod").unwrap().values.value;
    let provider = &istiod["meshConfig"]["extensionProviders"][0]["envoyExtAuthzHttp"];
    assert!(provider.get("includeHeadersInCheck").is_none());
    assert!(
        provider["includeRequestHeadersInCheck"]
            .as_array()
            .unwrap()
            .contains(&"cookie".into())
    );
    assert!(istiod.get("pilot").is_none(), "the chart's current keys");
    assert_eq!(istiod["cni"]["enabled"], true);
    assert_eq!(
        env.release("istio-cni").unwrap().values.value["chained"],
        true
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
