//! config knows no particular module: what a registry hands it is all it reads. These tests
//! load a small infra directory with a local registry of toy modules (no module crate, no
//! xtask); the real `infra/` with the real registry is tested in `xtask/tests/`.

use std::fs;
use std::path::Path;

use config::{
    ConfigError, Environment, ModuleDef, OtherEnvironment, ProvidedVersion, Section, VersionCheck,
    VersionKey,
};

/// A module that declares outputs and version keys, and nothing else.
struct Toy {
    name: &'static str,
    outputs: &'static [&'static str],
    versions: &'static [VersionKey],
    hosts: &'static [&'static str],
}

impl ModuleDef for Toy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn outputs(&self) -> &'static [&'static str] {
        self.outputs
    }

    fn versions(&self) -> &'static [VersionKey] {
        self.versions
    }

    fn hosts(&self) -> &'static [&'static str] {
        self.hosts
    }

    fn declare(&self, env: &Environment) -> Result<engine::Module, ConfigError> {
        let mut module = engine::Module::new(self.name);
        module.resources = env.declared_resources(self.name)?;
        Ok(module)
    }
}

static WEB: Toy = Toy {
    name: "web",
    outputs: &["url"],
    versions: &[VersionKey::required("web")],
    hosts: &["web"],
};

static CACHE: Toy = Toy {
    name: "cache",
    outputs: &[],
    versions: &[VersionKey::optional("cache")],
    hosts: &["cache"],
};

const ENVIRONMENT: &str = "\
name: default
domain: example.com
hosts:
  web: web
  cache: cache
versions:
  web: 1.0.0
charts: {}
";

const MANIFEST: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  namespace: default
data:
  version: ${env.versions.web}
  url: ${output.web.url}
  link: ${env.url.web}/a
  fqdn: ${env.fqdn.cache}
";

/// A small infra directory: the files config reads, one manifest of module `web`, and a
/// module `cache` without files.
fn infra(environment: &str, manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write("environment.yaml", environment);
    write(
        "pins/gateway-api.yaml",
        "baseUrl: https://example.com/{version}/{file}\nreleases: {}\ncompatibility: []\n",
    );
    write(
        "modules.yaml",
        "web:\n  manifests:\n    - web/config.yaml\ncache: {}\n",
    );
    write("web/config.yaml", manifest);
    dir
}

fn load(root: &Path) -> Result<Environment, Vec<ConfigError>> {
    config::load(root, None, &[&WEB, &CACHE]).map_err(|e| e.0)
}

/// The one error whose message contains `message`.
fn only_error(errors: &[ConfigError], message: &str) -> ConfigError {
    let found: Vec<&ConfigError> = errors
        .iter()
        .filter(|e| e.message.contains(message))
        .collect();
    assert_eq!(found.len(), 1, "one `{message}` in {errors:#?}");
    found[0].clone()
}

#[test]
fn a_local_registry_is_all_config_reads() {
    let dir = infra(ENVIRONMENT, MANIFEST);
    let env = load(dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(env.settings.version("web"), Some("1.0.0"));
    assert_eq!(env.settings.version("cache"), None, "optional");
    assert_eq!(env.manifests.len(), 1);
    let data = &env.manifests[0].value["data"];
    assert_eq!(data["version"], "1.0.0");
    assert_eq!(data["url"], "${output.web.url}", "left for the engine");
    assert_eq!(
        data["link"], "http://web.example.com/a",
        "any declared host key"
    );
    assert_eq!(data["fqdn"], "cache.example.com");
    assert_eq!(
        env.settings.fqdn_of("web").as_deref(),
        Some("web.example.com")
    );
    let module = WEB.declare(&env).unwrap();
    assert_eq!(
        module.resources[0].address.to_string(),
        "web.object.configmap/default/web"
    );
}

#[test]
fn an_output_no_module_declares_is_refused_with_the_declared_ones() {
    let dir = infra(
        ENVIRONMENT,
        &MANIFEST.replace("${output.web.url}", "${output.web.uri}"),
    );
    let errors = load(dir.path()).unwrap_err();
    let e = only_error(&errors, "no module produces output `web.uri`");
    assert_eq!((e.line, e.column), (8, 8));
    assert!(e.field.ends_with("data.url"), "{}", e.field);
    assert!(e.help.unwrap().contains("`web.url`"));
}

#[test]
fn version_keys_are_those_the_registry_declares() {
    let dir = infra(
        &ENVIRONMENT.replace("  web: 1.0.0\n", "  cahce: 2.0.0\n"),
        MANIFEST,
    );
    let errors = load(dir.path()).unwrap_err();
    let unknown = only_error(&errors, "unknown key `cahce`");
    assert_eq!(unknown.field, "versions.cahce");
    assert_eq!((unknown.line, unknown.column), (7, 3));
    assert!(unknown.help.unwrap().contains("did you mean `cache`?"));
    let missing = only_error(&errors, "missing key `web`");
    assert_eq!(missing.field, "versions");
    assert_eq!(missing.help.as_deref(), Some("add `web:` here"));
}

/// `hosts:` holds the keys the modules declare (`ModuleDef::hosts`), as `versions:` does.
#[test]
fn host_keys_are_those_the_registry_declares() {
    let dir = infra(
        &ENVIRONMENT.replace(
            "  cache: cache
",
            "  cahce: cache
",
        ),
        MANIFEST.replace("${env.fqdn.cache}", "x").as_str(),
    );
    let errors = load(dir.path()).unwrap_err();
    let unknown = only_error(&errors, "unknown key `cahce`");
    assert_eq!(unknown.field, "hosts.cahce");
    assert_eq!((unknown.line, unknown.column), (5, 3));
    assert!(unknown.help.unwrap().contains("did you mean `cache`?"));
    let missing = only_error(&errors, "missing key `cache`");
    assert_eq!(missing.field, "hosts");
    assert_eq!((missing.line, missing.column), (4, 3));
    assert_eq!(missing.help.as_deref(), Some("add `cache:` here"));
}

/// Two host keys with one host name: the later one is refused, naming the first.
#[test]
fn two_host_keys_with_one_host_name_are_refused_at_the_second() {
    let dir = infra(
        &ENVIRONMENT.replace(
            "  cache: cache
",
            "  cache: web
",
        ),
        MANIFEST,
    );
    let errors = load(dir.path()).unwrap_err();
    let e = only_error(&errors, "hosts clash");
    assert_eq!(e.message, "hosts clash: `web` is also the host of `web`");
    assert_eq!(e.field, "hosts.cache");
    assert_eq!((e.line, e.column), (5, 10));
}

#[test]
fn a_module_the_registry_does_not_list_is_refused() {
    // Without the host key only `cache` declares.
    let dir = infra(
        &ENVIRONMENT.replace("  cache: cache\n", ""),
        &MANIFEST.replace("${env.fqdn.cache}", "x"),
    );
    let errors = config::load(dir.path(), None, &[&WEB]).unwrap_err().0;
    let e = only_error(&errors, "cache");
    assert!(e.file.ends_with("modules.yaml"), "{e:#?}");
}

/// A module with a section (`edge: {port, engine}`) that gives the three facts others read
/// through config's generic hooks: the port of `${env.url.*}`, a version (`engine`) for the
/// other modules' version rules, and a rule across environments (no two share a port).
struct Edge;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeSettings {
    port: u16,
    engine: String,
}

impl ModuleDef for Edge {
    fn name(&self) -> &'static str {
        "edge"
    }

    fn outputs(&self) -> &'static [&'static str] {
        &[]
    }

    fn declare(&self, _env: &Environment) -> Result<engine::Module, ConfigError> {
        Ok(engine::Module::new("edge"))
    }

    fn has_settings(&self) -> bool {
        true
    }

    fn check_settings(&self, section: &Section) -> Result<Vec<ConfigError>, ConfigError> {
        section.parse::<EdgeSettings>().map(|_| Vec::new())
    }

    fn provided_versions(&self, section: &Section) -> Vec<ProvidedVersion> {
        let edge: EdgeSettings = section.parse().unwrap();
        vec![section.provide(
            "engine",
            "engine",
            &edge.engine,
            format!("engine {}", edge.engine),
        )]
    }

    fn url_port(&self, section: &Section) -> Option<u16> {
        section.parse::<EdgeSettings>().ok().map(|e| e.port)
    }

    fn check_environments(
        &self,
        section: &Section,
        others: &[OtherEnvironment],
    ) -> Vec<ConfigError> {
        let ours: EdgeSettings = section.parse().unwrap();
        others
            .iter()
            .filter(|o| {
                o.section
                    .parse::<EdgeSettings>()
                    .is_ok_and(|t| t.port == ours.port)
            })
            .map(|o| section.error("port", format!("port {} is also `{}`'s", ours.port, o.name)))
            .collect()
    }
}

/// A module whose version rule reads the version `Edge` gives (listed before it: the order
/// of the registry does not matter).
struct NeedsEngine;

impl ModuleDef for NeedsEngine {
    fn name(&self) -> &'static str {
        "needs"
    }

    fn outputs(&self) -> &'static [&'static str] {
        &[]
    }

    fn declare(&self, _env: &Environment) -> Result<engine::Module, ConfigError> {
        Ok(engine::Module::new("needs"))
    }

    fn check_versions(&self, check: &mut VersionCheck<'_>) {
        let Some(engine) = check.provided("engine") else {
            return check.push(check.error("versions", "no engine version provided"));
        };
        if config::parse_minor(&engine.version) < Some((2, 0)) {
            let error = engine.error(format!("{} is older than 2.0", engine.written));
            check.push(error.with_help("use engine 2.0 or newer".to_owned()));
        }
    }
}

const EDGE: &str = "edge:\n  port: 8080\n  engine: \"2.1\"\n";

fn load_with_edge(root: &Path, env: Option<&str>) -> Result<Environment, Vec<ConfigError>> {
    config::load(root, env, &[&WEB, &CACHE, &NeedsEngine, &Edge]).map_err(|e| e.0)
}

#[test]
fn a_module_section_decides_the_url_port() {
    let dir = infra(&format!("{ENVIRONMENT}{EDGE}"), MANIFEST);
    let env = load_with_edge(dir.path(), None).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(env.settings.url_port, Some(8080));
    assert_eq!(
        env.manifests[0].value["data"]["link"],
        "http://web.example.com:8080/a"
    );
    assert_eq!(env.section("edge").unwrap().value["port"], 8080);
}

#[test]
fn a_version_one_module_provides_is_read_by_another_at_its_setting() {
    let dir = infra(
        &format!("{ENVIRONMENT}{}", EDGE.replace("2.1", "1.9")),
        MANIFEST,
    );
    let errors = load_with_edge(dir.path(), None).unwrap_err();
    let e = only_error(&errors, "engine 1.9 is older than 2.0");
    assert_eq!(e.field, "edge.engine");
    assert_eq!((e.line, e.column), (11, 11));
}

#[test]
fn a_rule_across_environments_sees_the_other_overlays() {
    let dir = infra(&format!("{ENVIRONMENT}{EDGE}"), MANIFEST);
    let overlay = dir.path().join("envs/other.yaml");
    fs::create_dir_all(overlay.parent().unwrap()).unwrap();
    fs::write(&overlay, "edge:\n  port: 8081\n").unwrap();
    load_with_edge(dir.path(), None).unwrap_or_else(|e| panic!("{e:#?}"));
    fs::write(&overlay, "domain: other.example.com\n").unwrap();
    let errors = load_with_edge(dir.path(), Some("other")).unwrap_err();
    let e = only_error(&errors, "port 8080 is also `default`'s");
    assert_eq!((e.field.as_str(), e.line, e.column), ("edge.port", 10, 9));
    assert!(e.file.ends_with("environment.yaml"), "{e:#?}");
}
