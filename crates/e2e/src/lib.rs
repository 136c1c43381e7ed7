//! End-to-end tests against a real control plane (the testenv). Run by `cargo xtask test`.
//!
//! The tests live in `tests/`; this library holds the helpers they share. Everything here reads
//! the environment that `cargo xtask testenv` exports (`eval "$(cargo xtask testenv env)"` to run
//! the tests by hand with `cargo test -p e2e`):
//!
//! | variable | what |
//! |---|---|
//! | `KUBECONFIG` | the testenv's kubeconfig |
//! | `ENVCTL_TESTENV` | the testenv's cache directory (says "this cluster is the testenv") |
//! | `ENVCTL_HELM`, `ENVCTL_KUBECTL` | the pinned helm and kubectl binaries |
//! | `ENVCTL_MIRROR` | the offline mirror of upstream files and charts (`mirror_file(..)`, `chart("istiod")`) |
//! | `ENVCTL_XTASK` | the `cargo xtask` binary (`xtask(..)`) |
//! | `ENVCTL_DEX`, `ENVCTL_OAUTH2_PROXY` | Dex and OAuth2 Proxy, built like the control plane ([`workload`]) |
//!
//! Without `KUBECONFIG` and `ENVCTL_TESTENV` every helper panics with a message that says how to
//! get them: an integration test never passes without a cluster.
//!
//! Rules for tests: give each test its own namespace ([`TestNamespace`]); bound every wait
//! ([`wait_until`], [`wait_for`], [`DEFAULT_TIMEOUT`]); never depend on another test's objects
//! (tests of one file run in parallel).
//!
//! ```no_run
//! # async fn example() {
//! use k8s_openapi::api::apps::v1::Deployment;
//! let client = e2e::client().await;
//! let ns = e2e::TestNamespace::create(&client, "example").await;
//! e2e::apply_yaml(&client, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", Some(ns.name())).await;
//! let api = kube::Api::<Deployment>::namespaced(client.clone(), ns.name());
//! // e2e::wait_for(&api, "nginx", e2e::DEFAULT_TIMEOUT, e2e::is_deployment_available).await;
//! ns.delete().await;
//! # }
//! ```

/// The counting proxy of `cargo xtask bench`, shared as source (xtask is a binary crate):
/// counts requests by Kubernetes verb, dry runs apart.
#[path = "../../../xtask/src/bench/proxy.rs"]
pub mod counting_proxy;
pub mod gateway;
pub mod workload;

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::Scope,
};

/// How long a single wait may take unless a test says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Field manager of the objects the tests apply.
pub const FIELD_MANAGER: &str = "envctl-e2e";

const HOW_TO_RUN: &str = "the integration tests need the testenv: run them with `cargo xtask test`, \
     or start it with `cargo xtask testenv up` and `eval \"$(cargo xtask testenv env)\"` first";

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: {HOW_TO_RUN}"),
    }
}

/// The testenv's kubeconfig. Panics when the testenv is not configured.
pub fn kubeconfig() -> PathBuf {
    required_env("ENVCTL_TESTENV");
    PathBuf::from(required_env("KUBECONFIG"))
}

/// A client for the testenv (from `KUBECONFIG`).
pub async fn client() -> Client {
    let path = kubeconfig();
    let config = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    Client::try_from(config).expect("building a kube client")
}

/// The pinned helm binary of the testenv.
pub fn helm_binary() -> PathBuf {
    kubeconfig();
    PathBuf::from(required_env("ENVCTL_HELM"))
}

/// The pinned kubectl binary of the testenv.
pub fn kubectl_binary() -> PathBuf {
    kubeconfig();
    PathBuf::from(required_env("ENVCTL_KUBECTL"))
}

/// A real chart of the environment, from the offline mirror's source trees, by release name
/// (`istio-base`, `istio-cni`, `istiod`, `dex`, `oauth2-proxy`), at the version and from the
/// repository `infra/` configures: `<mirror>/charts/<repo without scheme>/<chart>-<version>/`.
pub fn chart(release: &str) -> PathBuf {
    let env = config::load(&workspace_root().join("infra"), None, &xtask::REGISTRY)
        .unwrap_or_else(|e| panic!("infra/ does not load: {e}"));
    let release_config = env
        .release(release)
        .unwrap_or_else(|| panic!("no release `{release}` in infra/modules.yaml"));
    let config::ChartSource::Repo {
        repo,
        chart,
        version,
        ..
    } = &release_config.chart
    else {
        panic!("release `{release}` has a local chart, not a repository one");
    };
    let store = live::charts::ChartStore::new(Some(mirror_dir()), None);
    let dir = store
        .mirror_dir(repo, chart, version)
        .expect("a mirror is set");
    assert!(
        dir.join("Chart.yaml").is_file(),
        "no chart {chart} {version} at {}: set ENVCTL_MIRROR to the mirror",
        dir.display()
    );
    dir
}

/// The offline mirror: `$ENVCTL_MIRROR`, else `../shared/mirror` beside the workspace.
pub fn mirror_dir() -> PathBuf {
    match std::env::var_os("ENVCTL_MIRROR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("../shared/mirror"),
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the offline mirror of upstream files, e.g.
/// `raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.5.1/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml`.
/// The mirror is `$ENVCTL_MIRROR`, else `../shared/mirror` beside the workspace.
pub fn mirror_file(path: &str) -> PathBuf {
    let file = mirror_dir().join(path);
    assert!(
        file.is_file(),
        "{} is missing: set ENVCTL_MIRROR to the mirror",
        file.display()
    );
    file
}

/// Writes `yaml` to a fresh file under the system temp directory (for `helm --values`).
pub fn values_file(yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("envctl-e2e");
    std::fs::create_dir_all(&dir).expect("creating the temp directory");
    let path = dir.join(format!("{}.yaml", unique_name("values")));
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// A name no other test (of this or an earlier run) uses: `<prefix>-<suffix>`, at most 63 chars.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{:x}{:x}{n}", std::process::id(), nanos);
    let prefix: String = prefix.chars().take(63 - 1 - suffix.len()).collect();
    format!("{prefix}-{suffix}")
}

/// A namespace of its own for one test. Delete it at the end with [`TestNamespace::delete`]; a
/// namespace left behind by a failed test goes away with the testenv.
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<unique suffix>`.
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let name = unique_name(&format!("e2e-{prefix}"));
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": FIELD_MANAGER } },
        }))
        .expect("a valid Namespace");
        bounded("creating a namespace", DEFAULT_TIMEOUT, async {
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        })
        .await;
        TestNamespace {
            name,
            client: client.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace and waits until it is gone (its finalizers have run).
    pub async fn delete(self) {
        delete_namespace(&self.client, &self.name, DEFAULT_TIMEOUT).await;
    }
}

/// Deletes a namespace and waits until the apiserver no longer has it.
pub async fn delete_namespace(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<Namespace>::all(client.clone());
    bounded(
        "deleting a namespace",
        timeout,
        api.delete(name, &DeleteParams::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("deleting namespace {name}: {e}"));
    wait_until(
        &format!("namespace {name} to disappear"),
        timeout,
        || async {
            match api.get_opt(name).await {
                Ok(None) => Some(()),
                _ => None,
            }
        },
    )
    .await;
}

/// Deletes the object `name` (if it exists) and waits until the apiserver no longer has it.
/// Tests delete the cluster-scoped objects they create (CRDs, classes): the integration tests
/// of every file share one cluster.
pub async fn delete_and_wait<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match bounded(
        "deleting an object",
        timeout,
        api.delete(name, &DeleteParams::background()),
    )
    .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return,
        Err(e) => panic!("deleting {name}: {e}"),
    }
    wait_until(&format!("{name} to disappear"), timeout, || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

/// Runs `future`, panicking with `what` when it takes longer than `timeout`.
pub async fn bounded<F: Future>(what: &str, timeout: Duration, future: F) -> F::Output {
    match tokio::time::timeout(timeout, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}

/// Polls `check` (every 250 ms) until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(value)) = tokio::time::timeout(left, check()).await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the object `name` exists and satisfies `condition`; returns it. On timeout the
/// panic message shows the object's last state.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: impl Fn(&K) -> bool,
) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let mut last: Option<K> = None;
    let what = format!(
        "{} {name} ({})",
        K::kind(&Default::default()),
        api.resource_url()
    );
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Ok(Some(object))) =
            tokio::time::timeout(Duration::from_secs(10), api.get_opt(name)).await
        {
            if condition(&object) {
                return object;
            }
            last = Some(object);
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Condition: the Deployment's `Available` condition is True and all replicas are ready.
pub fn is_deployment_available(deployment: &Deployment) -> bool {
    let Some(status) = &deployment.status else {
        return false;
    };
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let available = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True");
    let observed = status.observed_generation >= deployment.metadata.generation;
    available && observed && status.ready_replicas.unwrap_or(0) >= wanted
}

/// Condition: the CRD is `Established` (its API is served).
pub fn is_crd_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Applies every document of a (multi-document) YAML server-side, with field manager
/// [`FIELD_MANAGER`]; namespaced objects without a namespace go to `namespace`. Returns the
/// applied objects. Panics on an error (with the object's kind and name).
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    namespace: Option<&str>,
) -> Vec<DynamicObject> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("parsing YAML: {e}"));
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let object: DynamicObject =
            serde_json::from_value(doc).unwrap_or_else(|e| panic!("not a Kubernetes object: {e}"));
        applied.push(apply_object(client, object, namespace).await);
    }
    applied
}

/// Result of [`try_apply`] for one object.
pub type ApplyResult = Result<DynamicObject, kube::Error>;

/// Like [`apply_yaml`] for one object, but returns the apiserver's answer (to test rejections).
pub async fn try_apply(
    client: &Client,
    object: &serde_json::Value,
    namespace: Option<&str>,
) -> ApplyResult {
    let object: DynamicObject = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("not a Kubernetes object: {e}"));
    let (api, name) = dynamic_api(client, &object, namespace).await;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    bounded(
        "server-side apply",
        DEFAULT_TIMEOUT,
        api.patch(&name, &params, &Patch::Apply(&object)),
    )
    .await
}

async fn apply_object(
    client: &Client,
    object: DynamicObject,
    namespace: Option<&str>,
) -> DynamicObject {
    let value = serde_json::to_value(&object).expect("serializable");
    let kind = object
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    try_apply(client, &value, namespace)
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"))
}

async fn dynamic_api(
    client: &Client,
    object: &DynamicObject,
    namespace: Option<&str>,
) -> (Api<DynamicObject>, String) {
    let types = object
        .types
        .as_ref()
        .expect("the object has apiVersion and kind");
    let gvk = GroupVersionKind::try_from(types).expect("a valid apiVersion");
    let name = object
        .metadata
        .name
        .clone()
        .expect("the object has metadata.name");
    let (resource, capabilities) = bounded(
        "API discovery",
        DEFAULT_TIMEOUT,
        kube::discovery::pinned_kind(client, &gvk),
    )
    .await
    .unwrap_or_else(|e| panic!("the apiserver does not serve {gvk:?}: {e}"));
    let api = match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let ns = object
                .metadata
                .namespace
                .as_deref()
                .or(namespace)
                .unwrap_or_else(|| panic!("{} {name} is namespaced: give a namespace", gvk.kind));
            Api::namespaced_with(client.clone(), ns, &resource)
        }
    };
    (api, name)
}

/// Runs the testenv's helm with `KUBECONFIG` set, bounded by `timeout` (pass helm's own
/// `--timeout` too when it waits). Returns its output whatever the exit status.
pub async fn helm(args: &[&str], timeout: Duration) -> Output {
    run_bounded(helm_binary(), args, timeout).await
}

/// Like [`helm`], but panics with helm's stderr unless it exits 0; returns stdout.
pub async fn helm_ok(args: &[&str], timeout: Duration) -> String {
    let output = helm(args, timeout).await;
    assert!(
        output.status.success(),
        "helm {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the testenv's kubectl, like [`helm`].
pub async fn kubectl(args: &[&str], timeout: Duration) -> Output {
    run_bounded(kubectl_binary(), args, timeout).await
}

async fn run_bounded(program: PathBuf, args: &[&str], timeout: Duration) -> Output {
    let mut command = tokio::process::Command::from(Command::new(&program));
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let what = format!("{} {}", program.display(), args.join(" "));
    bounded(&what, timeout, command.output())
        .await
        .unwrap_or_else(|e| panic!("running {what}: {e}"))
}

/// Runs the `cargo xtask` binary (`$ENVCTL_XTASK`, exported by `cargo xtask test`) with `args`,
/// in the testenv's environment, without a terminal. Returns its output; asserts nothing.
pub fn xtask(args: &[&str]) -> Output {
    kubeconfig();
    let bin = PathBuf::from(required_env("ENVCTL_XTASK"));
    Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// stdout and stderr of a run, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A copy of the repository's `infra/` in a fresh temporary directory, for tests that edit the
/// configuration. Removed when dropped.
pub struct InfraCopy {
    dir: PathBuf,
}

impl InfraCopy {
    pub fn new() -> InfraCopy {
        let dir = std::env::temp_dir().join(unique_name("envctl-infra"));
        copy_dir(&workspace_root().join("infra"), &dir.join("infra"));
        InfraCopy { dir }
    }

    /// The `infra/` directory of the copy.
    pub fn path(&self) -> PathBuf {
        self.dir.join("infra")
    }

    /// Reads a file of the copy (relative to `infra/`).
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"))
    }

    /// `<args> --env kwok --module gateway --infra <this copy>`: the arguments of a CLI run on
    /// the `gateway` module of this copy.
    pub fn gateway_args(&self, args: &[&str]) -> Vec<String> {
        let infra = self.path().display().to_string();
        let tail = ["--env", "kwok", "--module", "gateway", "--infra", &infra];
        args.iter().chain(&tail).map(|a| a.to_string()).collect()
    }

    /// Runs [`xtask`] with [`InfraCopy::gateway_args`].
    pub fn xtask_gateway(&self, args: &[&str]) -> Output {
        let all = self.gateway_args(args);
        xtask(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Writes `gateway/<name>` and lists it in modules.yaml after `gateway/nginx.yaml`.
    pub fn add_to_gateway(&self, name: &str, text: &str) {
        self.write(&format!("gateway/{name}"), text);
        let modules = self.read("modules.yaml");
        let listed = modules.replace(
            "    - gateway/nginx.yaml\n",
            &format!("    - gateway/nginx.yaml\n    - gateway/{name}\n"),
        );
        assert_ne!(listed, modules, "modules.yaml lists gateway/nginx.yaml");
        self.write("modules.yaml", &listed);
    }

    /// Writes a file of the copy (relative to `infra/`).
    pub fn write(&self, file: &str, text: &str) {
        let path = self.path().join(file);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating directories");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

impl Default for InfraCopy {
    fn default() -> Self {
        InfraCopy::new()
    }
}

impl Drop for InfraCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()))
    {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

/// A change out of band: merge-patches the object `name` as the field manager `manager` (as
/// `kubectl edit`, `kubectl patch` or `kubectl label` write it). Panics if the patch fails.
pub async fn patch_as(
    api: &Api<DynamicObject>,
    name: &str,
    manager: &str,
    patch: serde_json::Value,
) -> DynamicObject {
    let params = PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("patching {name} as {manager}: {e}"))
}

/// The strings of a JSON array (others left out); none if `v` is not an array.
pub(crate) fn json_strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// An API for any type by apiVersion, kind and plural, e.g.
/// `typed_api(&client, "apps/v1", "Deployment", "deployments", Some("default"))`.
pub fn typed_api(
    client: &Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Every object of every listable type that matches `selector`, as `Kind/namespace/name` ->
/// resourceVersion (to show that something was, or was not, written).
pub async fn objects_matching(
    client: &Client,
    selector: &str,
) -> std::collections::BTreeMap<String, String> {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut out = std::collections::BTreeMap::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(kube::discovery::verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let Ok(list) = api
                .list(&kube::api::ListParams::default().labels(selector))
                .await
            else {
                continue;
            };
            for o in list.items {
                let key = format!(
                    "{}/{}/{}",
                    resource.kind,
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default()
                );
                out.insert(key, o.metadata.resource_version.clone().unwrap_or_default());
            }
        }
    }
    out
}

/// `kubectl proxy` on loopback with the testenv's credentials, the counting proxy
/// ([`counting_proxy`]) in front of it, and a kubeconfig (same context name) that points at the
/// counting proxy: every request of a run given this kubeconfig is counted by verb. Stops the
/// `kubectl proxy` when dropped.
pub struct CountedApi {
    counted: counting_proxy::Counted,
    dir: PathBuf,
}

impl CountedApi {
    pub fn start() -> CountedApi {
        let dir = std::env::temp_dir().join(unique_name("envctl-counted"));
        std::fs::create_dir_all(&dir).expect("a directory for the kubeconfig");
        let counted = counting_proxy::Counted::start(
            &kubectl_binary(),
            &kubeconfig(),
            &dir.join("kubeconfig"),
        )
        .expect("kubectl proxy and the counting proxy in front of it");
        CountedApi { counted, dir }
    }

    /// The kubeconfig whose requests are counted.
    pub fn kubeconfig(&self) -> PathBuf {
        self.counted.kubeconfig.clone()
    }

    /// The requests counted since the last call, by verb (`patch (dry run)` apart).
    pub fn take(&self) -> std::collections::BTreeMap<counting_proxy::Request, usize> {
        self.counted.counter.take()
    }

    /// [`CountedApi::take`], with each request's method and target in the order they came
    /// (for messages: which reads a count is made of).
    pub fn take_logged(
        &self,
    ) -> (
        std::collections::BTreeMap<counting_proxy::Request, usize>,
        Vec<String>,
    ) {
        self.counted.counter.take_logged()
    }
}

impl Drop for CountedApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
