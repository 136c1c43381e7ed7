//! `load`: reads `infra/` into an [`Environment`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::de::from_node;
use crate::error::{ConfigError, Errors, Location};
use crate::module::{OtherEnvironment, Registry, Section, VersionCheck, VersionKey, known_outputs};
use crate::pins::Pins;
use crate::placeholder::{Placeholder, placeholders};
use crate::settings::{ChartSpec, Settings};
use crate::yaml::{
    Entry, MAX_FILE_BYTES, Node, NodeValue, SourceFile, SourceMap, join_index, join_key,
    locate_in_tree,
};
use crate::{
    ChartSource, Document, Environment, GeneratedKey, GeneratedSecret, Ownership, ReleaseConfig,
    SecretEncoding, literal_secrets, suggest, validate,
};

/// File names inside the infra directory.
const ENVIRONMENT_FILE: &str = "environment.yaml";
const ENVS_DIR: &str = "envs";
const PINS_FILE: &str = "pins/gateway-api.yaml";
const MODULES_FILE: &str = "modules.yaml";

/// Annotation that marks a manifest as [`Ownership::FieldsOnly`].
const OWNERSHIP_ANNOTATION: &str = "envctl.dev/ownership";

/// Keys whose integer values in a manifest are TCP/UDP ports.
const PORT_KEYS: [&str; 5] = [
    "port",
    "containerPort",
    "targetPort",
    "nodePort",
    "hostPort",
];

/// Kinds that are cluster-scoped (others must name a namespace).
const CLUSTER_SCOPED: [&str; 12] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "GatewayClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
];

/// Loads the environment from `infra_dir`: `environment.yaml`, merged with
/// `envs/<env>.yaml` when `env` is given, then the pins, `modules.yaml` and every values file
/// and manifest it lists. `modules` are the module crates (xtask's registry): their names are
/// the sections of `modules.yaml`, their outputs the names `${output.*}` may use.
///
/// # Errors
/// Every problem found, each with file, line, column and field path (loading goes on after
/// most errors; it stops early only when the environment file itself cannot be read).
pub fn load(
    infra_dir: &Path,
    env: Option<&str>,
    modules: Registry<'_>,
) -> Result<Environment, Errors> {
    let mut loader = Loader {
        infra_dir: infra_dir.to_path_buf(),
        modules,
        known_outputs: known_outputs(modules),
        errors: Errors::default(),
        sources: SourceMap::default(),
        secret_refs: Vec::new(),
    };
    let result = loader.run(env);
    match result {
        Some(environment) if loader.errors.is_empty() => Ok(environment),
        _ => Err(loader.errors),
    }
}

struct Loader<'m> {
    infra_dir: PathBuf,
    /// The module crates, in registry order.
    modules: Registry<'m>,
    /// `<module>.<output>` of every module.
    known_outputs: Vec<String>,
    errors: Errors,
    sources: SourceMap,
    /// `${secret.*}` seen in values and manifests, checked once every secret is known.
    secret_refs: Vec<(String, String, Location, String)>,
}

/// modules.yaml as written: the files of each module, by module name.
#[derive(Debug, Default)]
struct ModulesFile(BTreeMap<String, ModuleFiles>);

impl ModulesFile {
    fn module(&self, name: &str) -> &ModuleFiles {
        static NONE: ModuleFiles = ModuleFiles {
            releases: Vec::new(),
            manifests: Vec::new(),
        };
        self.0.get(name).unwrap_or(&NONE)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFiles {
    #[serde(default)]
    releases: Vec<ReleaseEntry>,
    #[serde(default)]
    manifests: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReleaseEntry {
    name: String,
    namespace: String,
    values: String,
    #[serde(default)]
    version_from: Option<String>,
}

/// The manifests read so far.
#[derive(Default)]
struct Manifests {
    objects: Vec<Document>,
    secrets: Vec<GeneratedSecret>,
    /// Where each object (group, kind, namespace, name) is first declared.
    seen: HashMap<ObjectKey, Location>,
}

/// An object's group, kind, namespace and name.
type ObjectKey = (String, String, String, String);

fn kind_of(doc: &Node) -> &str {
    doc.get("kind").and_then(Node::as_str).unwrap_or_default()
}

fn is_generated_secret(doc: &Node) -> bool {
    doc.get("apiVersion").and_then(Node::as_str) == Some("envctl.dev/v1")
        && kind_of(doc) == "GeneratedSecret"
}

/// What every release of `modules.yaml` is read against.
struct ReleaseContext<'a> {
    modules_file: &'a SourceFile,
    settings: &'a Settings,
    /// The merged environment file, for error positions.
    tree: &'a Node,
    env_json: &'a Value,
    /// `settings.versions` with the file's key names (what `versionFrom` names).
    versions: Value,
}

/// A GeneratedSecret document as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GeneratedSecretDoc {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: SecretMeta,
    #[serde(default)]
    data: BTreeMap<String, String>,
    generate: BTreeMap<String, GeneratedKeyDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretMeta {
    name: String,
    namespace: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneratedKeyDoc {
    bytes: usize,
    encoding: SecretEncoding,
}

impl Loader<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.infra_dir.join(rel)
    }

    fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Reads and parses a file; `None` (error recorded) when it is missing or not valid YAML.
    fn read(&mut self, rel: &str, what: &str, field: (&Path, &str)) -> Option<Arc<SourceFile>> {
        let path = self.path(rel);
        let text = match read_text(&path) {
            Ok(Ok(text)) => text,
            Ok(Err(error)) => {
                self.push(error);
                return None;
            }
            Err(e) => {
                let (file, f) = field;
                let error = match self
                    .sources
                    .resolve(&self.infra_dir, file)
                    .and_then(|s| (0..s.docs.len()).find_map(|i| s.locate_field(i, f)))
                {
                    Some(location) => ConfigError::new(
                        location,
                        f,
                        format!("{what} `{}` cannot be read: {e}", path.display()),
                    ),
                    None => ConfigError::in_file(
                        &path,
                        "",
                        format!("{what} `{}` cannot be read: {e}", path.display()),
                    ),
                };
                self.push(error.with_help(format!(
                    "create the file, or correct the path (relative to {})",
                    self.infra_dir.display()
                )));
                return None;
            }
        };
        let (file, errors) = SourceFile::parse(&path, &text);
        let complete = file.complete;
        let file = Arc::new(file);
        self.sources.insert(file.clone());
        for e in errors {
            self.push(e);
        }
        complete.then_some(file)
    }

    fn run(&mut self, env: Option<&str>) -> Option<Environment> {
        let no_field = (Path::new(""), "");
        let base_file = self.read(ENVIRONMENT_FILE, "the environment file", no_field)?;
        let mut tree = single_doc(&base_file)?;
        let mut overlay_names_itself = false;
        if let Some(name) = env {
            let overlay = self.read_overlay(name)?;
            let overlay_tree = single_doc(&overlay)?;
            if let Some(entry) = overlay_tree.entry("name") {
                overlay_names_itself = true;
                if entry.value.as_str() != Some(name) {
                    self.push(
                        ConfigError::new(
                            entry.value.location(),
                            "name",
                            format!(
                                "the overlay envs/{name}.yaml names its environment `{}`",
                                entry.value.as_str().unwrap_or("?")
                            ),
                        )
                        .with_help(format!(
                            "remove `name:` (an overlay is named after its file) or set it to `{name}`"
                        )),
                    );
                }
            }
            tree.merge(overlay_tree);
        }
        self.sources.settings = Some(Arc::new(tree.clone()));
        let sections = self.module_sections(&mut tree);
        let unreadable_section = sections.is_none();
        let tree = Arc::new(tree);

        let mut settings: Settings = match from_node(&tree, "") {
            Ok(s) if !unreadable_section => s,
            Ok(_) => return None,
            Err(e) => {
                self.push(e);
                return None;
            }
        };
        let sections = sections?;
        if let (Some(name), false) = (env, overlay_names_itself) {
            settings.name = name.to_string();
        }

        let hosts_ok = self.check_host_keys(&tree);
        if !self.check_version_keys(&tree) || !hosts_ok {
            return None;
        }
        let pins = self.read_pins();
        self.check_settings(&settings, &tree);
        let pins = pins?;
        settings.url_port = self.url_port(&sections);
        if !self.check_versions(&mut settings, &sections, &tree, &pins) {
            return None;
        }
        self.check_environments(&sections, env);

        let env_json = env_context(&settings, &sections);
        let modules_file = self.read(MODULES_FILE, "the module index", no_field)?;
        let modules_doc = single_doc(&modules_file)?;
        let modules = self.read_module_index(&modules_doc)?;

        let releases = self.load_releases(&modules, &modules_file, &settings, &tree, &env_json);
        let (manifests, generated_secrets) =
            self.load_manifests(&modules, &modules_file, &env_json);
        self.check_unlisted_files(&modules);
        self.check_secret_refs(&generated_secrets);

        Some(Environment {
            infra_dir: self.infra_dir.clone(),
            settings,
            sections,
            pins,
            releases,
            manifests,
            generated_secrets,
            sources: std::mem::take(&mut self.sources),
        })
    }

    /// Takes the sections that modules own out of the environment file's tree (the rest is
    /// [`Settings`]) and has each module check its own. A missing section is an error; `None`
    /// when a section is missing or cannot be read (errors recorded).
    fn module_sections(&mut self, tree: &mut Node) -> Option<BTreeMap<String, Section>> {
        let mut sections = BTreeMap::new();
        let mut readable = true;
        let owners: Vec<&str> = self
            .modules
            .iter()
            .filter(|m| m.has_settings())
            .map(|m| m.name())
            .collect();
        let mut taken = take_sections(tree, &owners);
        for module in self.modules.iter().filter(|m| m.has_settings()) {
            let name = module.name();
            let Some(node) = taken.remove(name) else {
                self.push(
                    ConfigError::new(tree.location(), name, format!("missing key `{name}`"))
                        .with_help(format!(
                            "add `{name}:` here (the settings of module `{name}`)"
                        )),
                );
                readable = false;
                continue;
            };
            let section = Section::new(name, node);
            match module.check_settings(&section) {
                Ok(errors) => errors.into_iter().for_each(|e| self.push(e)),
                Err(e) => {
                    self.push(e);
                    readable = false;
                }
            }
            sections.insert(name.to_owned(), section);
        }
        readable.then_some(sections)
    }

    /// The port of the environment's URLs: the first module's that decides it
    /// ([`crate::ModuleDef::url_port`]).
    fn url_port(&self, sections: &BTreeMap<String, Section>) -> Option<u16> {
        self.modules
            .iter()
            .find_map(|m| m.url_port(sections.get(m.name())?))
    }

    /// `modules.yaml`: one section per module of the registry (others are refused).
    fn read_module_index(&mut self, doc: &Node) -> Option<ModulesFile> {
        let files: BTreeMap<String, ModuleFiles> = match from_node(doc, "") {
            Ok(m) => m,
            Err(e) => {
                self.push(e);
                return None;
            }
        };
        let names: Vec<&str> = self.modules.iter().map(|m| m.name()).collect();
        for name in files.keys() {
            if !names.contains(&name.as_str()) {
                let at = doc.entry(name).map_or_else(
                    || doc.location(),
                    |e| Location {
                        file: doc.file.to_path_buf(),
                        line: e.key_pos.line,
                        column: e.key_pos.column,
                    },
                );
                self.push(
                    ConfigError::new(at, name, format!("unknown module `{name}`"))
                        .with_help(suggest::help_for(name, names.iter().copied(), "modules")),
                );
            }
        }
        Some(ModulesFile(files))
    }

    fn read_overlay(&mut self, name: &str) -> Option<Arc<SourceFile>> {
        let available = available_envs(&self.path(ENVS_DIR));
        if !available.iter().any(|e| e == name) {
            let names: Vec<&str> = available.iter().map(String::as_str).collect();
            let help = if names.is_empty() {
                format!(
                    "create {} to define it; without --env the defaults of environment.yaml are used",
                    self.path(ENVS_DIR).join(format!("{name}.yaml")).display()
                )
            } else {
                format!(
                    "{}; or create envs/{name}.yaml",
                    suggest::help_for(name, names.iter().copied(), "available environments")
                )
            };
            self.push(
                ConfigError::in_file(
                    self.path(ENVS_DIR),
                    "--env",
                    format!("unknown environment `{name}`"),
                )
                .with_help(help),
            );
            return None;
        }
        self.read(
            &format!("{ENVS_DIR}/{name}.yaml"),
            "the environment overlay",
            (Path::new(""), ""),
        )
    }

    fn read_pins(&mut self) -> Option<Pins> {
        let file = self.read(PINS_FILE, "the pins file", (Path::new(""), ""))?;
        let doc = single_doc(&file)?;
        match from_node::<Pins>(&doc, "") {
            Ok(pins) => {
                for (version, release) in &pins.releases {
                    for (i, entry) in release.files.iter().enumerate() {
                        if let Err(why) = validate::sha256_hex(&entry.sha256) {
                            let field = format!("releases.{version}.files[{i}].sha256");
                            self.push(
                                self.error_in(&file, 0, &field, format!("invalid sha256: {why}"))
                                    .with_help("copy the digest from `sha256sum <file>`"),
                            );
                        }
                    }
                }
                Some(pins)
            }
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// An error at a field of document `doc` in `file` (at the file when not found).
    fn error_in(&self, file: &SourceFile, doc: usize, field: &str, message: String) -> ConfigError {
        let location = file.locate_field(doc, field).unwrap_or(Location {
            file: file.path.to_path_buf(),
            line: 0,
            column: 0,
        });
        ConfigError::new(location, field, message)
    }

    /// An error at a setting of the merged environment file.
    fn setting_error(&self, tree: &Node, field: &str, message: String) -> ConfigError {
        let location = locate_in_tree(tree, field).unwrap_or_else(|| tree.location());
        ConfigError::new(location, field, message)
    }

    /// The rules of the generic settings: names, hosts.
    fn check_settings(&mut self, s: &Settings, tree: &Node) {
        let broken = [naming_rules(s), host_rules(s, tree)];
        for rule in broken.into_iter().flatten() {
            let error = self
                .setting_error(tree, &rule.field, rule.message)
                .with_help(rule.help);
            self.push(error);
        }
    }

    /// The keys of `versions:` are those the modules declare ([`crate::ModuleDef::versions`]):
    /// an unknown key is refused at its position, a missing required one at `versions`.
    /// `false` (errors recorded) when one is wrong: the modules cannot read their versions.
    fn check_version_keys(&mut self, tree: &Node) -> bool {
        let declared: Vec<VersionKey> = self
            .modules
            .iter()
            .flat_map(|m| m.versions().iter().copied())
            .collect();
        let keys: Vec<(&str, bool)> = declared.iter().map(|k| (k.key, k.required)).collect();
        self.check_declared_keys(tree, "versions", &keys, "the versions the modules read")
    }

    /// The keys of `hosts:` are those the modules declare ([`crate::ModuleDef::hosts`]): an
    /// unknown key is refused at its position, a missing one at `hosts`. `false` (errors
    /// recorded) when one is wrong: the modules cannot read their hosts.
    fn check_host_keys(&mut self, tree: &Node) -> bool {
        let mut keys: Vec<(&str, bool)> = Vec::new();
        for key in self.modules.iter().flat_map(|m| m.hosts().iter().copied()) {
            if !keys.iter().any(|(k, _)| *k == key) {
                keys.push((key, true));
            }
        }
        self.check_declared_keys(tree, "hosts", &keys, "the hosts the modules read")
    }

    /// A map of the file whose keys the modules declare (`(key, required)`): an unknown key is
    /// refused at its position with the closest declared one, a missing required one at the
    /// map. `false` (errors recorded) when one is wrong.
    fn check_declared_keys(
        &mut self,
        tree: &Node,
        section: &str,
        declared: &[(&str, bool)],
        what: &str,
    ) -> bool {
        let Some(map) = tree.get(section) else {
            return true; // a missing section is a missing key of the file
        };
        let mut errors = Vec::new();
        if let NodeValue::Map(entries) = &map.value {
            for entry in entries {
                if declared.iter().any(|(k, _)| *k == entry.key) {
                    continue;
                }
                let location = Location {
                    file: map.file.to_path_buf(),
                    line: entry.key_pos.line,
                    column: entry.key_pos.column,
                };
                errors.push(
                    ConfigError::new(
                        location,
                        join_key(section, &entry.key),
                        format!("unknown key `{}`", entry.key),
                    )
                    .with_help(suggest::help_for(
                        &entry.key,
                        declared.iter().map(|(k, _)| *k),
                        &format!("valid keys here ({what})"),
                    )),
                );
            }
        }
        for (key, _) in declared.iter().filter(|(_, required)| *required) {
            if map.get(key).is_none() {
                errors.push(
                    ConfigError::new(map.location(), section, format!("missing key `{key}`"))
                        .with_help(format!("add `{key}:` here")),
                );
            }
        }
        let ok = errors.is_empty();
        for e in errors {
            self.push(e);
        }
        ok
    }

    /// Each module's cross-version rules ([`crate::ModuleDef::check_versions`]), in registry
    /// order until one stops; `false` when one did (the versions cannot be used).
    ///
    /// Each module first gives the versions its section holds for the others' rules
    /// ([`crate::ModuleDef::provided_versions`]).
    fn check_versions(
        &mut self,
        settings: &mut Settings,
        sections: &BTreeMap<String, Section>,
        tree: &Node,
        pins: &Pins,
    ) -> bool {
        let provided = self
            .modules
            .iter()
            .filter_map(|m| Some(m.provided_versions(sections.get(m.name())?)))
            .flatten()
            .collect();
        let mut check = VersionCheck {
            settings,
            compatibility: &pins.compatibility,
            pins,
            pins_file: PINS_FILE,
            tree,
            provided,
            errors: Vec::new(),
            stopped: false,
        };
        for module in self.modules {
            module.check_versions(&mut check);
            if check.stopped {
                break;
            }
        }
        let VersionCheck {
            errors, stopped, ..
        } = check;
        for e in errors {
            self.push(e);
        }
        !stopped
    }

    /// Each module's rules across environments ([`crate::ModuleDef::check_environments`]):
    /// its section here against its section in every other environment of the directory.
    fn check_environments(&mut self, sections: &BTreeMap<String, Section>, env: Option<&str>) {
        let mut others: Vec<Option<String>> = available_envs(&self.path(ENVS_DIR))
            .into_iter()
            .filter(|e| Some(e.as_str()) != env)
            .map(Some)
            .collect();
        if env.is_some() {
            others.push(None);
        }
        let owners: Vec<&str> = sections.keys().map(String::as_str).collect();
        let mut theirs: BTreeMap<String, Vec<OtherEnvironment>> = BTreeMap::new();
        for other in &others {
            let name = other.as_deref().unwrap_or("default");
            for (module, section) in quiet_sections(&self.infra_dir, other.as_deref(), &owners) {
                theirs.entry(module).or_default().push(OtherEnvironment {
                    name: name.to_owned(),
                    section,
                });
            }
        }
        for module in self.modules {
            let Some(section) = sections.get(module.name()) else {
                continue;
            };
            let others = theirs.get(module.name()).map_or(&[][..], Vec::as_slice);
            for error in module.check_environments(section, others) {
                self.push(error);
            }
        }
    }

    /// Every release of `modules.yaml`, module by module in registry order; then every
    /// `charts.<name>` that names no release is an error.
    fn load_releases(
        &mut self,
        modules: &ModulesFile,
        modules_file: &SourceFile,
        settings: &Settings,
        tree: &Node,
        env_json: &Value,
    ) -> Vec<ReleaseConfig> {
        let at = ReleaseContext {
            modules_file,
            settings,
            tree,
            env_json,
            versions: serde_json::to_value(&settings.versions).unwrap_or(Value::Null),
        };
        let mut releases = Vec::new();
        let mut declared = BTreeSet::new();
        for module in self.modules.iter().map(|m| m.name()) {
            for (i, entry) in modules.module(module).releases.iter().enumerate() {
                declared.insert(entry.name.clone());
                let base = format!("{module}.releases[{i}]");
                releases.extend(self.load_release(&at, module, &base, entry));
            }
        }
        self.check_chart_names(settings, tree, &declared);
        releases
    }

    /// One release: its names, its values (file and overlay), its chart source.
    fn load_release(
        &mut self,
        at: &ReleaseContext<'_>,
        module: &str,
        base: &str,
        entry: &ReleaseEntry,
    ) -> Option<ReleaseConfig> {
        if !self.check_release_entry(at.modules_file, base, entry) {
            return None;
        }
        let overlay = self.overlay_values(at.tree, &entry.name, at.env_json);
        let values_field = format!("{base}.values");
        let values = self.load_values(
            module,
            &entry.values,
            at.modules_file,
            &values_field,
            at.env_json,
            overlay,
        );
        let Some(spec) = at.settings.charts.get(&entry.name) else {
            self.push(
                self.setting_error(at.tree, "charts", format!("no chart source for release `{}`", entry.name))
                    .with_help(format!(
                        "add `charts.{}: {{repo: <url>, chart: <name>}}` (or `path:`) to environment.yaml",
                        entry.name
                    )),
            );
            return None;
        };
        let chart_field = join_key("charts", &entry.name);
        self.check_version_from(at, entry);
        let words_ok = self.check_chart_words(
            at.tree,
            &chart_field,
            spec.chart.as_deref(),
            spec.version.as_deref(),
        );
        let chart = match &spec.path {
            Some(path) => Some(self.local_chart(at.tree, &chart_field, path)),
            None => self.repo_chart(at, base, entry, spec, &chart_field),
        };
        self.check_chart_sha256(at.tree, &chart_field, spec);
        Some(ReleaseConfig {
            name: entry.name.clone(),
            module: module.to_string(),
            namespace: entry.namespace.clone(),
            chart: chart?,
            values: values?,
        })
        .filter(|_| words_ok)
    }

    /// The namespace and release name of a `modules.yaml` entry; `false` when the name is
    /// unusable (the release is skipped).
    fn check_release_entry(
        &mut self,
        modules_file: &SourceFile,
        base: &str,
        entry: &ReleaseEntry,
    ) -> bool {
        if let Err(why) = validate::dns_label(&entry.namespace) {
            let field = format!("{base}.namespace");
            self.push(
                self.error_in(
                    modules_file,
                    0,
                    &field,
                    format!("invalid namespace `{}`: {why}", entry.namespace),
                )
                .with_help("a namespace is one DNS label: lowercase letters, digits, `-`"),
            );
        }
        if let Err(why) = validate::release_name(&entry.name) {
            let field = format!("{base}.name");
            self.push(
                self.error_in(
                    modules_file,
                    0,
                    &field,
                    format!("invalid release name `{}`: {why}", entry.name),
                )
                .with_help(
                    "a release name is lowercase letters, digits and `-`, starting \
                     with a letter or digit, at most 53 characters",
                ),
            );
            return false;
        }
        true
    }

    /// The chart version `versionFrom` names must be a version.
    fn check_version_from(&mut self, at: &ReleaseContext<'_>, entry: &ReleaseEntry) {
        if let Some(key) = &entry.version_from
            && let Some(version) = at.versions.get(key).and_then(Value::as_str)
            && let Err(why) = validate::chart_version(version)
        {
            self.push(
                self.setting_error(
                    at.tree,
                    &format!("versions.{key}"),
                    format!("invalid chart version `{version}`: {why}"),
                )
                .with_help("write a version such as 0.24.0"),
            );
        }
    }

    /// `charts.<release>.path`: a chart directory with a `Chart.yaml` (error recorded if not).
    fn local_chart(&mut self, tree: &Node, chart_field: &str, path: &str) -> ChartSource {
        let dir = self.infra_dir.join(path);
        if !dir.join("Chart.yaml").is_file() {
            let why = if dir.is_dir() {
                "has no Chart.yaml"
            } else {
                "does not exist"
            };
            self.push(
                self.setting_error(tree, &format!("{chart_field}.path"), format!("chart directory `{}` {why}", dir.display()))
                    .with_help(format!(
                        "the path is relative to {}; create the chart there, or remove `path:` to use the repository",
                        self.infra_dir.display()
                    )),
            );
        }
        ChartSource::Local { path: dir }
    }

    /// A repository chart: `repo`, `chart` and a version (`version`, or the `versions` key
    /// `versionFrom` names). `None` (error recorded) when one is missing.
    fn repo_chart(
        &mut self,
        at: &ReleaseContext<'_>,
        base: &str,
        entry: &ReleaseEntry,
        spec: &ChartSpec,
        chart_field: &str,
    ) -> Option<ChartSource> {
        let version = spec.version.clone().or_else(|| {
            let key = entry.version_from.as_deref()?;
            at.versions.get(key)?.as_str().map(str::to_string)
        });
        if let Some(key) = &entry.version_from
            && at.versions.get(key).is_none()
        {
            let field = format!("{base}.versionFrom");
            let keys: Vec<String> = at
                .versions
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            self.push(
                self.error_in(
                    at.modules_file,
                    0,
                    &field,
                    format!("`versions` has no key `{key}`"),
                )
                .with_help(suggest::help_for(
                    key,
                    keys.iter().map(String::as_str),
                    "keys of versions",
                )),
            );
        }
        let (Some(repo), Some(chart), Some(version)) = (&spec.repo, &spec.chart, &version) else {
            let missing = [
                ("repo", spec.repo.is_none()),
                ("chart", spec.chart.is_none()),
                ("version", version.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
            self.push(
                self.setting_error(at.tree, chart_field, format!("the chart of release `{}` has no {missing}", entry.name))
                    .with_help("set `repo`, `chart` and `version` (or `versionFrom` in modules.yaml), or `path` to a local chart"),
            );
            return None;
        };
        if !["https://", "http://", "oci://"]
            .iter()
            .any(|scheme| repo.starts_with(scheme))
        {
            self.push(
                self.setting_error(
                    at.tree,
                    &format!("{chart_field}.repo"),
                    format!("`{repo}` is not a repository URL"),
                )
                .with_help("write an https://, http:// or oci:// URL"),
            );
        }
        Some(ChartSource::Repo {
            repo: repo.clone(),
            chart: chart.clone(),
            version: version.clone(),
            sha256: spec.sha256.clone(),
        })
    }

    /// `charts.<release>.sha256`, when set, is a sha256 digest.
    fn check_chart_sha256(&mut self, tree: &Node, chart_field: &str, spec: &ChartSpec) {
        if let Some(sha) = &spec.sha256
            && let Err(why) = validate::sha256_hex(sha)
        {
            self.push(
                self.setting_error(
                    tree,
                    &format!("{chart_field}.sha256"),
                    format!("invalid sha256: {why}"),
                )
                .with_help("write the sha256sum of the chart's .tgz, or remove the line"),
            );
        }
    }

    /// Every `charts.<name>` names a release of `modules.yaml`.
    fn check_chart_names(&mut self, settings: &Settings, tree: &Node, declared: &BTreeSet<String>) {
        for name in settings.charts.keys() {
            if !declared.contains(name) {
                let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                self.push(
                    self.setting_error(
                        tree,
                        &join_key("charts", name),
                        format!("`{name}` is not a release in {MODULES_FILE}"),
                    )
                    .with_help(suggest::help_for(
                        name,
                        names.iter().copied(),
                        "releases",
                    )),
                );
            }
        }
    }

    /// A chart name and version reach helm as arguments: they may not look like flags.
    fn check_chart_words(
        &mut self,
        tree: &Node,
        chart_field: &str,
        chart: Option<&str>,
        version: Option<&str>,
    ) -> bool {
        let mut ok = true;
        if let Some(chart) = chart
            && let Err(why) = validate::chart_name(chart)
        {
            self.push(
                self.setting_error(tree, &format!("{chart_field}.chart"), format!("invalid chart name `{chart}`: {why}"))
                    .with_help("write the chart's name in its repository, e.g. `dex` (letters, digits, `-`, `_`, `.`)"),
            );
            ok = false;
        }
        if let Some(version) = version
            && let Err(why) = validate::chart_version(version)
        {
            self.push(
                self.setting_error(
                    tree,
                    &format!("{chart_field}.version"),
                    format!("invalid chart version `{version}`: {why}"),
                )
                .with_help("write a version such as 0.24.0"),
            );
            ok = false;
        }
        ok
    }

    /// `charts.<release>.values` of the environment file, substituted: merged over the
    /// release's values file. `None` when not set (or not a mapping: error recorded).
    fn overlay_values(&mut self, tree: &Node, release: &str, env_json: &Value) -> Option<Node> {
        let field = format!("{}.values", join_key("charts", release));
        let (node, _) = tree.walk(&field.parse().ok()?)?;
        if !matches!(node.value, NodeValue::Map(_)) {
            self.push(
                ConfigError::new(
                    node.location(),
                    &field,
                    format!("values must be a mapping, not {}", node.describe()),
                )
                .with_help("write the chart's values keys as a mapping, as in a values file"),
            );
            return None;
        }
        let file = self.sources.files.get(&*node.file).cloned()?;
        let secrets = literal_secrets::find(&file, node, "the environment file's chart values");
        if !secrets.is_empty() {
            for e in secrets {
                self.push(e);
            }
            return None;
        }
        Some(self.substitute(&file, node.clone(), "", env_json))
    }

    fn load_values(
        &mut self,
        module: &str,
        rel: &str,
        modules_file: &SourceFile,
        field: &str,
        env_json: &Value,
        overlay: Option<Node>,
    ) -> Option<Document> {
        let file = self.read(rel, "values file", (&modules_file.path, field))?;
        if file.docs.len() > 1 {
            self.push(
                ConfigError::new(
                    file.docs[1].location(),
                    "",
                    "a values file holds one YAML document",
                )
                .with_help("remove the `---` and merge the documents"),
            );
        }
        let node = file
            .docs
            .first()
            .cloned()
            .unwrap_or_else(|| empty_map(&file));
        let node = if node.is_null() {
            empty_map(&file)
        } else {
            node
        };
        if !matches!(node.value, NodeValue::Map(_)) {
            self.push(
                ConfigError::new(
                    node.location(),
                    "",
                    format!("values must be a mapping, not {}", node.describe()),
                )
                .with_help("write `key: value` pairs (or `{}` for none)"),
            );
            return None;
        }
        let secrets = literal_secrets::find(&file, &node, "the values file");
        if !secrets.is_empty() {
            for e in secrets {
                self.push(e);
            }
            return None;
        }
        let mut node = self.substitute(&file, node, "", env_json);
        if let Some(overlay) = overlay {
            node.merge(overlay);
        }
        Some(Document {
            file: file.path.to_path_buf(),
            index_in_file: 0,
            module: module.to_string(),
            ownership: Ownership::Object,
            value: node.to_json(),
        })
    }

    /// Every manifest of `modules.yaml`, module by module in registry order: objects to
    /// apply, and the GeneratedSecrets among them.
    fn load_manifests(
        &mut self,
        modules: &ModulesFile,
        modules_file: &SourceFile,
        env_json: &Value,
    ) -> (Vec<Document>, Vec<GeneratedSecret>) {
        let mut loaded = Manifests::default();
        for module in self.modules.iter().map(|m| m.name()) {
            for (i, rel) in modules.module(module).manifests.iter().enumerate() {
                let field = format!("{module}.manifests[{i}]");
                if let Some(file) = self.read(rel, "manifest", (&modules_file.path, &field)) {
                    self.load_manifest_file(&file, module, env_json, &mut loaded);
                }
            }
        }
        (loaded.objects, loaded.secrets)
    }

    /// The documents of one manifest file (empty ones skipped).
    fn load_manifest_file(
        &mut self,
        file: &SourceFile,
        module: &str,
        env_json: &Value,
        loaded: &mut Manifests,
    ) {
        for (index, doc) in file.docs.iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let Some(doc) = self.check_object(doc) else {
                continue;
            };
            let doc = self.substitute(file, doc, "", env_json);
            if !self.first_declaration(&doc, &mut loaded.seen) {
                continue;
            }
            let at = (file, index);
            if is_generated_secret(&doc) {
                loaded
                    .secrets
                    .extend(self.generated_secret(at, &doc, module));
            } else if let Some(e) = self.literal_secrets_in_manifest(file, &doc, kind_of(&doc)) {
                self.push(e);
            } else {
                loaded
                    .objects
                    .push(self.manifest_document(at, &doc, module));
            }
        }
    }

    /// `false` (error recorded) when an object of the same group, kind, namespace and name is
    /// already declared.
    fn first_declaration(&mut self, doc: &Node, seen: &mut HashMap<ObjectKey, Location>) -> bool {
        let text =
            |node: Option<&Node>| node.and_then(Node::as_str).unwrap_or_default().to_string();
        let api_version = text(doc.get("apiVersion"));
        let kind = text(doc.get("kind"));
        let meta = doc.get("metadata");
        let name_node = meta.and_then(|m| m.get("name"));
        let name = text(name_node);
        let namespace = text(meta.and_then(|m| m.get("namespace")));
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let key = (
            group.to_string(),
            kind.clone(),
            namespace.clone(),
            name.clone(),
        );
        let here = name_node.map_or_else(|| doc.location(), Node::location);
        let Some(first) = seen.get(&key) else {
            seen.insert(key, here);
            return true;
        };
        let what = if namespace.is_empty() {
            name
        } else {
            format!("{namespace}/{name}")
        };
        self.push(
            ConfigError::new(
                here,
                "metadata.name",
                format!("duplicate object: {kind} {what} is already declared"),
            )
            .with_help(format!(
                "it is first declared at {}:{}:{}; remove one of them or rename it",
                first.file.display(),
                first.line,
                first.column
            )),
        );
        false
    }

    /// A GeneratedSecret document (`apiVersion: envctl.dev/v1`); `None` (error recorded) when
    /// it cannot be read.
    fn generated_secret(
        &mut self,
        (file, index): (&SourceFile, usize),
        doc: &Node,
        module: &str,
    ) -> Option<GeneratedSecret> {
        let secret = match from_node::<GeneratedSecretDoc>(doc, "") {
            Ok(secret) => secret,
            Err(e) => {
                self.push(e);
                return None;
            }
        };
        for (key, gen_key) in &secret.generate {
            if !(1..=1024).contains(&gen_key.bytes) {
                let field = format!("generate.{key}.bytes");
                self.push(
                    self.error_in(
                        file,
                        index,
                        &field,
                        format!("{} random bytes is out of range", gen_key.bytes),
                    )
                    .with_help(
                        "use 16, 24 or 32 (OAuth2 Proxy's cookie secret needs one of these)",
                    ),
                );
            }
        }
        let generated = secret
            .generate
            .into_iter()
            .map(|(k, g)| {
                let key = GeneratedKey {
                    bytes: g.bytes,
                    encoding: g.encoding,
                };
                (k, key)
            })
            .collect();
        Some(GeneratedSecret {
            module: module.to_string(),
            name: secret.metadata.name,
            namespace: secret.metadata.namespace,
            plain: secret.data,
            generated,
            file: file.path.to_path_buf(),
            index_in_file: index,
        })
    }

    /// An object to apply, with its ownership annotation taken out.
    fn manifest_document(
        &mut self,
        (file, index): (&SourceFile, usize),
        doc: &Node,
        module: &str,
    ) -> Document {
        let mut value = doc.to_json();
        let ownership = take_ownership(&mut value).unwrap_or_else(|text| {
            let field = format!("metadata.annotations[\"{OWNERSHIP_ANNOTATION}\"]");
            self.push(
                self.error_in(file, index, &field, format!("unknown ownership `{text}`"))
                    .with_help("write `fields` (envctl owns only the fields written here), or remove the annotation"),
            );
            Ownership::Object
        });
        Document {
            file: file.path.to_path_buf(),
            index_in_file: index,
            module: module.to_string(),
            ownership,
            value,
        }
    }

    /// A `Secret` with data, or a literal secret under a secret-like key: the first one found
    /// (never with its value).
    fn literal_secrets_in_manifest(
        &self,
        file: &SourceFile,
        doc: &Node,
        kind: &str,
    ) -> Option<ConfigError> {
        if kind == "Secret" {
            for key in ["data", "stringData"] {
                if let Some(entry) = doc.entry(key)
                    && matches!(&entry.value.value, NodeValue::Map(m) if !m.is_empty())
                {
                    return Some(
                        ConfigError::new(
                            entry.value.location(),
                            key,
                            "a Secret manifest holds its values in infra/ (they are not shown)",
                        )
                        .with_help(
                            "declare a GeneratedSecret instead (apiVersion envctl.dev/v1; see \
                             sso/oauth2-proxy.secret.yaml): sensitive keys are generated at \
                             apply, plain ones go under its `data:`",
                        ),
                    );
                }
            }
        }
        literal_secrets::find(file, doc, "the manifest")
            .into_iter()
            .next()
    }

    /// apiVersion, kind, metadata.name (and namespace for namespaced kinds) are present and
    /// valid; returns the document when it can be used.
    fn check_object(&mut self, doc: &Node) -> Option<Node> {
        if !matches!(doc.value, NodeValue::Map(_)) {
            self.push(
                ConfigError::new(
                    doc.location(),
                    "",
                    format!("a manifest must be a mapping, not {}", doc.describe()),
                )
                .with_help("write a Kubernetes object: apiVersion, kind, metadata, ..."),
            );
            return None;
        }
        let errors = type_errors(doc)
            .into_iter()
            .chain(name_error(doc))
            .chain(namespace_error(doc))
            .chain(port_errors(doc));
        let mut ok = true;
        for e in errors {
            self.push(e);
            ok = false;
        }
        ok.then(|| doc.clone())
    }

    /// Every `*.yaml` in a module's directory must be listed in modules.yaml.
    fn check_unlisted_files(&mut self, modules: &ModulesFile) {
        for module in self.modules.iter().map(|m| m.name()) {
            let dir = self.path(module);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let files = modules.module(module);
            let listed: BTreeSet<PathBuf> = files
                .manifests
                .iter()
                .chain(files.releases.iter().map(|r| &r.values))
                .map(|rel| self.path(rel))
                .collect();
            let mut unlisted: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .filter(|p| !listed.contains(p))
                .collect();
            unlisted.sort();
            for path in unlisted {
                let rel = path
                    .strip_prefix(&self.infra_dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                let kind = if rel.ends_with(".values.yaml") {
                    "a release's `values`"
                } else {
                    "`manifests`"
                };
                self.push(
                    ConfigError::new(
                        Location {
                            file: path.clone(),
                            line: 1,
                            column: 1,
                        },
                        "",
                        format!("`{rel}` is not listed in {MODULES_FILE}"),
                    )
                    .with_help(format!(
                        "add it to {kind} of module `{module}` in {MODULES_FILE}, or delete it"
                    )),
                );
            }
        }
    }

    fn check_secret_refs(&mut self, secrets: &[GeneratedSecret]) {
        for (module, name, location, field) in std::mem::take(&mut self.secret_refs) {
            if !secrets.iter().any(|s| s.module == module && s.name == name) {
                let known: Vec<String> = secrets
                    .iter()
                    .map(|s| format!("{}.{}", s.module, s.name))
                    .collect();
                let wanted = format!("{module}.{name}");
                self.push(
                    ConfigError::new(
                        location,
                        field,
                        format!("`${{secret.{wanted}}}`: no such generated secret"),
                    )
                    .with_help(suggest::help_for(
                        &wanted,
                        known.iter().map(String::as_str),
                        "generated secrets",
                    )),
                );
            }
        }
    }

    /// Substitutes `${env.*}` in every string of `node`; checks `${output.*}` names and
    /// remembers `${secret.*}` for later.
    fn substitute(&mut self, file: &SourceFile, node: Node, path: &str, env: &Value) -> Node {
        let Node {
            value,
            pos,
            file: origin,
        } = node;
        let value = match value {
            NodeValue::Str(text) => {
                return self.substitute_str(
                    file,
                    Node {
                        value: NodeValue::Null,
                        pos,
                        file: origin,
                    },
                    text,
                    path,
                    env,
                );
            }
            NodeValue::Seq(items) => NodeValue::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| self.substitute(file, item, &join_index(path, i), env))
                    .collect(),
            ),
            NodeValue::Map(entries) => NodeValue::Map(
                entries
                    .into_iter()
                    .map(|e| {
                        let child = join_key(path, &e.key);
                        Entry {
                            value: self.substitute(file, e.value, &child, env),
                            ..e
                        }
                    })
                    .collect(),
            ),
            other => other,
        };
        Node {
            value,
            pos,
            file: origin,
        }
    }

    fn substitute_str(
        &mut self,
        file: &SourceFile,
        mut node: Node,
        text: String,
        path: &str,
        env: &Value,
    ) -> Node {
        let found = placeholders(&text);
        if found.is_empty() {
            node.value = NodeValue::Str(text);
            return node;
        }
        let at = |needle: &str| {
            file.find_in(node.pos, needle)
                .unwrap_or_else(|| node.location())
        };
        let mut out = String::new();
        let mut last = 0;
        let whole = found.len() == 1
            && found[0]
                .as_ref()
                .is_ok_and(|(r, _)| r.start == 0 && r.end == text.len());
        for item in &found {
            match item {
                Err(e) => {
                    self.push(
                        ConfigError::new(at(&text[e.range.clone()]), path, e.message.clone())
                            .with_help(e.help.clone()),
                    );
                }
                Ok((range, placeholder)) => {
                    out.push_str(&text[last..range.start]);
                    last = range.end;
                    let raw = &text[range.clone()];
                    match placeholder {
                        Placeholder::Env(env_path) => match lookup(env, env_path) {
                            Ok(value) if whole => {
                                node.value = json_to_node_value(value, &node);
                                return node;
                            }
                            found => self.env_in_string(found, raw, path, &mut out, &at),
                        },
                        Placeholder::Output { module, name } => {
                            self.check_output(module, name, raw, path, &at);
                            out.push_str(raw);
                        }
                        Placeholder::Secret { module, name } => {
                            self.secret_refs.push((
                                module.clone(),
                                name.clone(),
                                at(raw),
                                path.to_string(),
                            ));
                            out.push_str(raw);
                        }
                    }
                }
            }
        }
        out.push_str(&text[last.min(text.len())..]);
        node.value = NodeValue::Str(out);
        node
    }

    /// An `${env.*}` placeholder inside a longer string: its value, written as text into
    /// `out`; an error for a value that is no scalar or a setting that does not exist.
    fn env_in_string(
        &mut self,
        found: Result<&Value, (String, String)>,
        raw: &str,
        path: &str,
        out: &mut String,
        at: &dyn Fn(&str) -> Location,
    ) {
        match found {
            Ok(Value::String(s)) => out.push_str(s),
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
            Ok(v) => self.push(
                ConfigError::new(
                    at(raw),
                    path,
                    format!(
                        "`{raw}` is {}, which cannot be part of a string",
                        describe_json(v)
                    ),
                )
                .with_help("use the placeholder as the whole value, or point it at a single value"),
            ),
            Err((message, help)) => self.push(
                ConfigError::new(at(raw), path, format!("unknown setting `{raw}`: {message}"))
                    .with_help(help),
            ),
        }
    }

    /// An `${output.<module>.<name>}` placeholder must name an output a module declares.
    fn check_output(
        &mut self,
        module: &str,
        name: &str,
        raw: &str,
        path: &str,
        at: &dyn Fn(&str) -> Location,
    ) {
        let full = format!("{module}.{name}");
        if self.known_outputs.contains(&full) {
            return;
        }
        let help = suggest::help_for(
            &full,
            self.known_outputs.iter().map(String::as_str),
            "outputs (docs/dev/contract.md)",
        );
        self.push(
            ConfigError::new(at(raw), path, format!("no module produces output `{full}`"))
                .with_help(help),
        );
    }
}

/// A file's text; `Ok(Err(_))` when it is too large or not UTF-8 (with where and why).
/// An object's `apiVersion` and `kind` are non-empty strings.
fn type_errors(doc: &Node) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for key in ["apiVersion", "kind"] {
        let example = if key == "kind" { "ConfigMap" } else { "v1" };
        match doc.get(key) {
            Some(node) if node.as_str().is_some_and(|s| !s.is_empty()) => {}
            Some(node) => errors.push(
                ConfigError::new(
                    node.location(),
                    key,
                    format!("`{key}` must be a non-empty string"),
                )
                .with_help(format!("write e.g. `{key}: {example}`")),
            ),
            None => errors.push(
                ConfigError::new(doc.location(), key, format!("the object has no `{key}`"))
                    .with_help(format!("add `{key}:` (e.g. `{key}: {example}`)")),
            ),
        }
    }
    errors
}

/// An object's `metadata.name` is a DNS subdomain (unless a placeholder fills it in).
fn name_error(doc: &Node) -> Option<ConfigError> {
    let name = doc.get("metadata").and_then(|m| m.get("name"));
    match name.map(|n| (n, n.as_str())) {
        None => {
            let at = doc.get("metadata").unwrap_or(doc);
            Some(
                ConfigError::new(
                    at.location(),
                    "metadata.name",
                    "the object has no `metadata.name`",
                )
                .with_help("add `metadata: {name: <name>}`"),
            )
        }
        Some((node, None)) => Some(
            ConfigError::new(
                node.location(),
                "metadata.name",
                format!("`metadata.name` must be a string, not {}", node.describe()),
            )
            .with_help("write a name, e.g. `name: nginx`"),
        ),
        Some((node, Some(text))) if placeholders(text).is_empty() => {
            validate::dns_subdomain(text).err().map(|why| {
                ConfigError::new(
                    node.location(),
                    "metadata.name",
                    format!("invalid name `{text}`: {why}"),
                )
                .with_help("use lowercase letters, digits, `-` and `.`")
            })
        }
        Some(_) => None,
    }
}

/// A namespaced object has a `metadata.namespace`, a DNS label (unless a placeholder fills it
/// in).
fn namespace_error(doc: &Node) -> Option<ConfigError> {
    let kind = doc.get("kind").and_then(Node::as_str).unwrap_or_default();
    let namespace = doc.get("metadata").and_then(|m| m.get("namespace"));
    match namespace.map(|n| (n, n.as_str())) {
        None if !CLUSTER_SCOPED.contains(&kind) && !kind.is_empty() => {
            let at = doc.get("metadata").unwrap_or(doc);
            Some(
                ConfigError::new(at.location(), "metadata.namespace", format!("{kind} is namespaced but has no `metadata.namespace`"))
                    .with_help("add `namespace: <namespace>` under metadata (objects never land in a namespace by accident)"),
            )
        }
        Some((node, Some(ns))) if placeholders(ns).is_empty() => {
            validate::dns_label(ns).err().map(|why| {
                ConfigError::new(
                    node.location(),
                    "metadata.namespace",
                    format!("invalid namespace `{ns}`: {why}"),
                )
                .with_help("a namespace is one DNS label: lowercase letters, digits, `-`")
            })
        }
        _ => None,
    }
}

/// Every port-like key (`port`, `containerPort`, ...) written as a number is 1-65535.
fn port_errors(doc: &Node) -> Vec<ConfigError> {
    let mut bad_ports = Vec::new();
    crate::yaml::visit_entries(doc, "", &mut |key, node, path| {
        if PORT_KEYS.contains(&key)
            && let NodeValue::Int(port) = node.value
            && !(1..=65535).contains(&port)
        {
            bad_ports.push(
                ConfigError::new(
                    node.location(),
                    path,
                    format!("`{key}: {port}` is not a port (1-65535)"),
                )
                .with_help("write a port number from 1 to 65535"),
            );
        }
    });
    bad_ports
}

/// A broken rule of the environment file: the field, what is wrong, what to do.
struct BrokenRule {
    field: String,
    message: String,
    help: &'static str,
}

/// `Some` when `result` is an error: `<what>: <why>` at `field`.
fn rule(
    field: &str,
    result: Result<(), String>,
    what: &str,
    help: &'static str,
) -> Option<BrokenRule> {
    result.err().map(|why| BrokenRule {
        field: field.to_owned(),
        message: format!("{what}: {why}"),
        help,
    })
}

/// The environment's name and the domain are DNS names.
fn naming_rules(s: &Settings) -> Vec<BrokenRule> {
    [
        rule(
            "name",
            validate::dns_label(&s.name),
            &format!("invalid environment name `{}`", s.name),
            "use lowercase letters, digits and `-` (it becomes an annotation value and file name)",
        ),
        rule(
            "domain",
            validate::dns_subdomain(&s.domain),
            &format!("invalid domain `{}`", s.domain),
            "use a DNS name such as `example.com` (lowercase, no scheme, no trailing dot)",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Each host is one DNS label, and no two host keys share one (in file order: the second is
/// refused, naming the first).
fn host_rules(s: &Settings, tree: &Node) -> Vec<BrokenRule> {
    // File order (the merged tree's), so that the clash is reported at the later key.
    let keys: Vec<&str> = match tree.get("hosts").map(|n| &n.value) {
        Some(NodeValue::Map(entries)) => entries.iter().map(|e| e.key.as_str()).collect(),
        _ => s.hosts.keys().map(String::as_str).collect(),
    };
    let mut broken = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(host) = s.hosts.get(*key) else {
            continue;
        };
        let field = join_key("hosts", key);
        broken.extend(rule(
            &field,
            validate::dns_label(host),
            &format!("invalid host name `{host}`"),
            "a host is one DNS label (lowercase letters, digits, `-`); the domain is added",
        ));
        if let Some(first) = keys[..i].iter().find(|k| s.hosts.get(**k) == Some(host)) {
            broken.extend(rule(
                &field,
                Err(format!("`{host}` is also the host of `{first}`")),
                "hosts clash",
                "each host key needs its own host name (they route to different services)",
            ));
        }
    }
    broken
}

fn read_text(path: &Path) -> std::io::Result<Result<String, ConfigError>> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE_BYTES {
        return Ok(Err(ConfigError::new(
            Location {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
            },
            "",
            format!(
                "the file is {:.1} MiB, over the {} MiB limit for a file in infra/",
                size as f64 / 1_048_576.0,
                MAX_FILE_BYTES / 1_048_576
            ),
        )
        .with_help(
            "split it, or keep large data out of infra/ (a pinned file is fetched by digest)",
        )));
    }
    let bytes = std::fs::read(path)?;
    Ok(String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let column = valid
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        ConfigError::new(
            Location {
                file: path.to_path_buf(),
                line,
                column,
            },
            "",
            format!(
                "the file is not UTF-8 (byte 0x{:02x} at offset {})",
                e.as_bytes()[valid.len()],
                valid.len()
            ),
        )
        .with_help("save the file as UTF-8 (YAML files are text)")
    }))
}

/// The document of a file that must hold one (an empty file is an empty mapping).
fn single_doc(file: &SourceFile) -> Option<Node> {
    let node = file
        .docs
        .first()
        .cloned()
        .unwrap_or_else(|| empty_map(file));
    Some(if node.is_null() {
        empty_map(file)
    } else {
        node
    })
}

fn empty_map(file: &SourceFile) -> Node {
    Node {
        value: NodeValue::Map(Vec::new()),
        pos: crate::yaml::Pos {
            line: 1,
            column: 1,
            start: 0,
            end: 0,
        },
        file: file.path.clone(),
    }
}

/// Names of `envs/*.yaml`, sorted.
fn available_envs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "yaml").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names
}

/// Another environment's sections of `owners` (module names), as written, for the rules
/// across environments; none when its files do not read.
fn quiet_sections(infra_dir: &Path, env: Option<&str>, owners: &[&str]) -> Vec<(String, Section)> {
    let read = |rel: &str| {
        let path = infra_dir.join(rel);
        let text = std::fs::read_to_string(&path).ok()?;
        let (file, errors) = SourceFile::parse(&path, &text);
        errors.is_empty().then(|| single_doc(&file))?
    };
    let tree = read(ENVIRONMENT_FILE).and_then(|mut tree| {
        if let Some(name) = env {
            tree.merge(read(&format!("{ENVS_DIR}/{name}.yaml"))?);
        }
        Some(tree)
    });
    let Some(mut tree) = tree else {
        return Vec::new();
    };
    take_sections(&mut tree, owners)
        .into_iter()
        .map(|(name, node)| {
            let section = Section::new(&name, node);
            (name, section)
        })
        .collect()
}

/// The entries `owners` (module names) of a mapping, taken out of it.
fn take_sections(tree: &mut Node, owners: &[&str]) -> BTreeMap<String, Node> {
    let NodeValue::Map(entries) = &mut tree.value else {
        return BTreeMap::new();
    };
    let (taken, kept) = std::mem::take(entries)
        .into_iter()
        .partition(|e| owners.contains(&e.key.as_str()));
    *entries = kept;
    taken.into_iter().map(|e: Entry| (e.key, e.value)).collect()
}

/// What `${env.*}` reads: the settings and the modules' sections with the file's key names,
/// plus `fqdn` and `url`.
fn env_context(settings: &Settings, sections: &BTreeMap<String, Section>) -> Value {
    let mut value = serde_json::to_value(settings).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for (name, section) in sections {
            map.insert(name.clone(), section.value.clone());
        }
        let strings = |m: BTreeMap<String, String>| {
            Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
        };
        map.insert("fqdn".to_string(), strings(settings.fqdns()));
        map.insert("url".to_string(), strings(settings.urls()));
    }
    value
}

/// Follows `a.b.c` in the env context; on failure says where and suggests.
fn lookup<'a>(env: &'a Value, path: &str) -> Result<&'a Value, (String, String)> {
    let mut value = env;
    let mut walked = String::new();
    for segment in path.split('.') {
        let next = match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None => {
                let at = if walked.is_empty() {
                    "the environment file".to_string()
                } else {
                    format!("`{walked}`")
                };
                let help = match value {
                    Value::Object(map) => {
                        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                        let prefix = if walked.is_empty() {
                            String::new()
                        } else {
                            format!("{walked}.")
                        };
                        match suggest::closest(segment, keys.iter().copied()) {
                            Some(best) => format!(
                                "did you mean `${{env.{prefix}{best}}}`? keys of {at}: {}",
                                suggest::list(keys.iter().copied())
                            ),
                            None => {
                                format!("keys of {at}: {}", suggest::list(keys.iter().copied()))
                            }
                        }
                    }
                    _ => format!("{at} is a single value, it has no `{segment}`"),
                };
                return Err((format!("{at} has no `{segment}`"), help));
            }
        }
        walked = if walked.is_empty() {
            segment.to_string()
        } else {
            format!("{walked}.{segment}")
        };
    }
    Ok(value)
}

fn describe_json(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "a mapping",
        Value::Array(_) => "a list",
        Value::Null => "null",
        _ => "a value",
    }
}

fn json_to_node_value(value: &Value, at: &Node) -> NodeValue {
    match value {
        Value::Null => NodeValue::Null,
        Value::Bool(b) => NodeValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => NodeValue::Int(i),
            None => NodeValue::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => NodeValue::Str(s.clone()),
        Value::Array(items) => NodeValue::Seq(
            items
                .iter()
                .map(|v| Node {
                    value: json_to_node_value(v, at),
                    ..at.clone()
                })
                .collect(),
        ),
        Value::Object(map) => NodeValue::Map(
            map.iter()
                .map(|(k, v)| Entry {
                    key: k.clone(),
                    key_pos: at.pos,
                    value: Node {
                        value: json_to_node_value(v, at),
                        ..at.clone()
                    },
                })
                .collect(),
        ),
    }
}

/// Removes the ownership annotation (and an emptied `annotations`); `Err(text)` if unknown.
fn take_ownership(value: &mut Value) -> Result<Ownership, String> {
    let Some(annotations) = value
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    else {
        return Ok(Ownership::Object);
    };
    let Some(text) = annotations.remove(OWNERSHIP_ANNOTATION) else {
        return Ok(Ownership::Object);
    };
    if annotations.is_empty()
        && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("annotations");
    }
    match text.as_str() {
        Some("fields") => Ok(Ownership::FieldsOnly),
        Some("object") => Ok(Ownership::Object),
        _ => Err(text
            .as_str()
            .map_or_else(|| text.to_string(), str::to_owned)),
    }
}
