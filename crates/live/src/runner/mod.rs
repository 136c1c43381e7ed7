//! Plan, apply and destroy of a whole environment (or one module of it) against a live
//! cluster: the engine's graph on one side, the facts gathered here on the other.
//!
//! Plan: resolve every desired document with what is known (outputs read from live objects
//! where their producers exist), gather live facts per resource kind, and turn each into an
//! engine [`ResourceChange`]. Apply: walk the plan in graph order, re-resolving documents as
//! outputs become known, waiting for what the next step needs. Destroy: the reverse.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use engine::{
    Action, Address, Bindings, Desired, FieldDrift, Graph, Ownership, Plan, ResourceChange,
    ResourceKind, ResourceSpec,
};
use serde_json::Value;

use crate::helm::{ChartRef, Helm};
use crate::objects::{self, DesiredObject, ObjectState, PlannedCreations};
use crate::secrets::{self, SecretState};
use crate::snapshot::Snapshot;
use crate::sources::Sources;
use crate::wait::{self, WaitOptions};
use crate::{Cluster, LiveError, fields};

use engine::desired::{SOURCE_ANNOTATION, SOURCE_SHA256_ANNOTATION};

mod apply;
mod destroy;
mod plan;
mod schedule;

/// Where each environment's inventory (the object types it applied) is kept.
const INVENTORY_NAMESPACE: &str = "kube-public";

/// How many changes apply makes at once by default (as Terraform).
pub const DEFAULT_PARALLELISM: usize = 10;

/// How a run behaves.
#[derive(Clone)]
pub struct RunOptions {
    /// Parallel requests at most.
    pub concurrency: usize,
    /// Changes applied at once at most (`apply --parallelism`).
    pub parallelism: usize,
    /// Take ownership of fields another manager owns on objects this project does not own.
    pub force_conflicts: bool,
    pub wait: WaitOptions,
    pub sources: Sources,
    /// Only these modules (all when `None`).
    pub modules: Option<BTreeSet<String>>,
    /// The helm CLI, for Helm releases (`None`: an environment without releases).
    pub helm: Option<Helm>,
    /// Signals: apply and destroy stop between two steps after the first.
    pub interrupt: crate::session::Interrupt,
    /// Addresses of objects that exist but are not envctl's, to take over (`--adopt`);
    /// any other such object is refused.
    pub adopt: BTreeSet<String>,
    /// The modules' readiness rules (see [`crate::readiness`]); live's built-in rule comes
    /// after them.
    pub readiness: Vec<&'static dyn crate::ReadinessRule>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 16,
            parallelism: DEFAULT_PARALLELISM,
            force_conflicts: false,
            wait: WaitOptions::default(),
            sources: Sources::default(),
            modules: None,
            helm: None,
            interrupt: Default::default(),
            adopt: BTreeSet::new(),
            readiness: Vec::new(),
        }
    }
}

pub use crate::progress::Reporter;
use crate::progress::{Progress, Step};

/// One environment against one cluster.
pub struct Runner<'a> {
    pub cluster: Cluster,
    pub graph: &'a Graph,
    pub environment: String,
    pub options: RunOptions,
    pub report: &'a Reporter,
    /// Pinned files already loaded in this run, by URL.
    pinned: Mutex<BTreeMap<String, Vec<Value>>>,
    /// The API server's version, asked once per run (see [`Runner::capabilities`]).
    kube_version: tokio::sync::OnceCell<String>,
}

/// What an apply or destroy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub replaced: usize,
    /// Changes the plan asked for.
    pub total: usize,
    /// A signal stopped the run before every change was made.
    pub interrupted: bool,
}

impl ApplyReport {
    /// Changes made.
    pub fn done(&self) -> usize {
        self.created + self.updated + self.deleted + self.replaced
    }
}

impl<'a> Runner<'a> {
    pub fn new(
        cluster: Cluster,
        graph: &'a Graph,
        environment: &str,
        options: RunOptions,
        report: &'a Reporter,
    ) -> Self {
        Runner {
            cluster,
            graph,
            environment: environment.to_owned(),
            options,
            report,
            pinned: Mutex::new(BTreeMap::new()),
            kube_version: tokio::sync::OnceCell::new(),
        }
    }

    /// What every helm render of this run is given as `.Capabilities`: the run's discovery
    /// (as it stands, refreshed after CRDs are applied) and the server's version (one request
    /// per run), instead of a discovery per render.
    pub async fn capabilities(&self) -> Result<crate::helm::Capabilities, LiveError> {
        // Once, even when every release of a plan asks at the same time.
        let version = self
            .kube_version
            .get_or_try_init(|| async {
                Ok::<_, LiveError>(self.cluster.client().apiserver_version().await?.git_version)
            })
            .await?;
        Ok(crate::helm::capabilities_of(
            version.clone(),
            &self.cluster.discovery(),
        ))
    }

    /// The same run, restricted to one module's resources (what a module crate's `plan`,
    /// `apply` and `destroy` use).
    pub fn module(&self, module: &str) -> Runner<'a> {
        let mut options = self.options.clone();
        options.modules = Some(BTreeSet::from([module.to_owned()]));
        Runner::new(
            self.cluster.clone(),
            self.graph,
            &self.environment,
            options,
            self.report,
        )
    }

    fn selected(&self, address: &Address) -> bool {
        self.options
            .modules
            .as_ref()
            .is_none_or(|m| m.contains(&address.module))
    }

    /// What is known now: plan-time outputs, Secret names, and after-apply outputs whose
    /// producers already exist live.
    pub async fn bindings(&self) -> Result<Bindings, LiveError> {
        self.bindings_in(None).await
    }

    /// [`Runner::bindings`], the outputs read from a plan's snapshot when given.
    async fn bindings_in(&self, snapshot: Option<&Snapshot>) -> Result<Bindings, LiveError> {
        let mut bindings = self.graph.bindings();
        for output in self.graph.outputs() {
            if output.value.is_some() {
                continue;
            }
            if let Some(value) = self.read_output(output, snapshot).await? {
                bindings.outputs.insert(output.r#ref.clone(), value);
            }
        }
        Ok(bindings)
    }

    /// An output's value, read live (from the plan's snapshot when given: the list of its
    /// type, else a get).
    async fn read_output(
        &self,
        output: &engine::Output,
        snapshot: Option<&Snapshot>,
    ) -> Result<Option<Value>, LiveError> {
        let Some(source) = &output.source else {
            return Ok(None);
        };
        let Some(ty) = self.cluster.resolve(&source.api_version, &source.kind) else {
            return Ok(None);
        };
        let namespace = source.namespace.as_deref();
        let object = match snapshot {
            Some(snapshot) => snapshot.get(&ty, namespace, &source.name).await?,
            None => self.cluster.get(&ty, namespace, &source.name).await?,
        };
        Ok(object
            .and_then(|o| o.pointer(&source.pointer).cloned())
            .filter(|v| !v.is_null() && v != "" && v != "None"))
    }

    /// The manifest that will be sent for an object resource: pinned content where declared
    /// from a pinned file, ownership metadata, environment label and configuration hash.
    async fn object_manifest(
        &self,
        desired: &Desired,
        ownership: Ownership,
    ) -> Result<Value, LiveError> {
        let mut manifest = desired.doc.clone();
        if let Some(url) = annotation(&manifest, SOURCE_ANNOTATION) {
            let sha = annotation(&manifest, SOURCE_SHA256_ANNOTATION).unwrap_or_default();
            // The cache's lock is never held across the load: it reads or fetches.
            let cached = self.pinned.lock().expect("pinned cache").get(&url).cloned();
            let objects = match cached {
                Some(objects) => objects,
                None => {
                    let objects = self.options.sources.load(&url, &sha).await?;
                    self.pinned
                        .lock()
                        .expect("pinned cache")
                        .insert(url.clone(), objects.clone());
                    objects
                }
            };
            let kind = manifest.get("kind").cloned();
            let name = manifest.pointer("/metadata/name").cloned();
            let content = objects
                .iter()
                .find(|o| {
                    o.get("kind").cloned() == kind && o.pointer("/metadata/name").cloned() == name
                })
                .cloned()
                .ok_or_else(|| {
                    LiveError::config(
                        &desired.address,
                        format!("{url} holds no such object (are the pins' `objects` right?)"),
                    )
                })?;
            manifest = merge_metadata(content, &manifest);
        }
        // `status` is the server's (upstream CRD files carry an empty one): never sent.
        if let Some(object) = manifest.as_object_mut() {
            object.remove("status");
        }
        Ok(match ownership {
            Ownership::Owned => objects::stamp_owned(manifest, &self.environment),
            Ownership::FieldsOnly => manifest,
        })
    }

    /// Every object (of the selected modules) exactly as apply sends it, in apply order: for
    /// `kubectl diff -f`, and for benchmarks against it.
    pub async fn sent_objects(&self) -> Result<Vec<Value>, LiveError> {
        let bindings = self.bindings().await?;
        let mut out = Vec::new();
        for address in self.graph.order() {
            let Some(ResourceSpec::Object(spec)) = self.graph.resource(address).map(|r| &r.spec)
            else {
                continue;
            };
            if !self.selected(address) {
                continue;
            }
            let desired = self.desired(address, &bindings)?;
            out.push(self.object_manifest(&desired, spec.ownership).await?);
        }
        Ok(out)
    }

    fn helm(&self, address: &Address) -> Result<&Helm, LiveError> {
        self.options
            .helm
            .as_ref()
            .ok_or_else(|| LiveError::config(address, "Helm releases need the helm CLI"))
    }

    /// The document of `address` with what `bindings` know.
    fn desired(&self, address: &Address, bindings: &Bindings) -> Result<Desired, LiveError> {
        Ok(self.graph.desired(address, bindings, &self.environment)?)
    }

    fn progress(&self, event: Progress) {
        (self.report)(&event);
    }

    fn inventory_name(&self) -> String {
        format!("envctl-inventory-{}", self.environment)
    }

    /// `(apiVersion, kind)` of every type this environment has applied objects of, from its
    /// inventory record: read from `snapshot` (the record is labelled
    /// `app.kubernetes.io/managed-by=envctl`; one written before it was, with a get).
    async fn read_inventory(
        &self,
        snapshot: &Snapshot,
    ) -> Result<Vec<(String, String)>, LiveError> {
        let Some(ty) = self.cluster.resolve("v1", "ConfigMap") else {
            return Ok(Vec::new());
        };
        let record = snapshot
            .get(&ty, Some(INVENTORY_NAMESPACE), &self.inventory_name())
            .await?
            .map(serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>)
            .transpose()?;
        Ok(record
            .as_ref()
            .map(inventory_types)
            .unwrap_or_default()
            .into_iter()
            .collect())
    }

    /// A snapshot for one plan ([`crate::snapshot`]), knowing the plan's Helm releases.
    fn snapshot(&self) -> Snapshot {
        let releases = self.graph.resources().filter_map(|r| match &r.spec {
            ResourceSpec::HelmRelease(spec) if self.selected(&r.address) => {
                Some(spec.release.clone())
            }
            _ => None,
        });
        Snapshot::new(&self.cluster, releases)
    }

    fn inventory_api(&self) -> kube::Api<k8s_openapi::api::core::v1::ConfigMap> {
        kube::Api::namespaced(self.cluster.client().clone(), INVENTORY_NAMESPACE)
    }

    /// Records the object types of the configuration, with those recorded before (a type
    /// leaves the inventory only when destroy removes the record). Apply calls it before it
    /// creates anything (write-ahead: a crash never leaves an object of a type destroy does
    /// not look at) and again at the end. A read-modify-write with the record's
    /// `resourceVersion` as precondition: a concurrent update is never lost, it is retried.
    async fn write_inventory(&self) -> Result<(), LiveError> {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::PostParams;
        let api = self.inventory_api();
        let name = self.inventory_name();
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        for resource in self.graph.resources() {
            if let ResourceSpec::Object(spec) = &resource.spec {
                let (v, k) = type_of(&spec.manifest);
                wanted.insert((v.to_owned(), k.to_owned()));
            }
        }
        for _ in 0..INVENTORY_ATTEMPTS {
            let current = api.get_opt(&name).await?;
            let mut types = current.as_ref().map(inventory_types).unwrap_or_default();
            let labelled = current
                .as_ref()
                .and_then(|c| c.metadata.labels.as_ref())
                .and_then(|l| l.get(engine::desired::MANAGED_BY_LABEL))
                .is_some_and(|v| v == engine::desired::MANAGED_BY_VALUE);
            if current.is_some() && labelled && wanted.is_subset(&types) {
                return Ok(());
            }
            types.extend(wanted.iter().cloned());
            let text: Vec<String> = types.iter().map(|(v, k)| format!("{v} {k}")).collect();
            // The ownership label (not the environment label: the record is no object to
            // prune) lets a plan read it from its list of ConfigMaps.
            let mut record: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": INVENTORY_NAMESPACE,
                             "labels": {engine::desired::MANAGED_BY_LABEL: engine::desired::MANAGED_BY_VALUE},
                             "annotations": {"envctl.dev/environment": self.environment}},
                "data": {"types": text.join("\n")},
            }))?;
            let result = match &current {
                None => api.create(&PostParams::default(), &record).await,
                Some(current) => {
                    record.metadata.resource_version = current.metadata.resource_version.clone();
                    api.replace(&name, &PostParams::default(), &record).await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(LiveError::Contended {
            what: format!("{INVENTORY_NAMESPACE}/{name}"),
            attempts: INVENTORY_ATTEMPTS,
        })
    }

    async fn delete_object(&self, address: &Address, manifest: &Value) -> Result<(), LiveError> {
        let (api_version, kind) = type_of(manifest);
        let Some(ty) = self.cluster.resolve(api_version, kind) else {
            return Ok(());
        };
        let (namespace, name) = identity(manifest);
        self.cluster
            .delete(&ty, namespace.as_deref(), &name)
            .await?;
        wait::wait_gone(
            &self.cluster,
            &ty,
            namespace.as_deref(),
            &name,
            &address.to_string(),
            self.options.wait,
            self.report,
        )
        .await
    }
}

/// How often an inventory update is tried against concurrent writers.
const INVENTORY_ATTEMPTS: usize = 8;

/// The types an inventory record lists.
fn inventory_types(record: &k8s_openapi::api::core::v1::ConfigMap) -> BTreeSet<(String, String)> {
    record
        .data
        .as_ref()
        .and_then(|d| d.get("types"))
        .map(String::as_str)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            line.rsplit_once(' ')
                .map(|(v, k)| (v.to_owned(), k.to_owned()))
        })
        .collect()
}

/// The string at a JSON pointer, or "".
fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn annotation(object: &Value, key: &str) -> Option<String> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn type_of(manifest: &Value) -> (&str, &str) {
    (text(manifest, "/apiVersion"), text(manifest, "/kind"))
}

fn identity(manifest: &Value) -> (Option<String>, String) {
    (
        manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        text(manifest, "/metadata/name").to_owned(),
    )
}

/// Pinned content with the declared object's labels and annotations laid over its own.
fn merge_metadata(mut content: Value, declared: &Value) -> Value {
    for map in ["labels", "annotations"] {
        if let Some(Value::Object(extra)) = declared.pointer(&format!("/metadata/{map}")) {
            for (k, v) in extra {
                if let Some(s) = v.as_str() {
                    if map == "labels" {
                        fields::set_label(&mut content, k, s);
                    } else {
                        fields::set_annotation(&mut content, k, s);
                    }
                }
            }
        }
    }
    content
}

/// The bookkeeping annotation is noise to a reader of the plan.
fn strip_bookkeeping(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(Value::Object(meta)) = out.pointer_mut("/metadata")
        && let Some(Value::Object(a)) = meta.get_mut("annotations")
    {
        a.remove(objects::CONFIG_HASH_ANNOTATION);
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    out
}

/// Removes from `object` every leaf that `patch` sets (what destroy takes back from an object
/// this project only patches).
fn remove_fields(object: &mut Value, patch: &Value) {
    let (Value::Object(o), Value::Object(p)) = (object, patch) else {
        return;
    };
    for (k, pv) in p {
        if matches!(k.as_str(), "apiVersion" | "kind") || (k == "name" && pv.is_string()) {
            continue;
        }
        match (o.get_mut(k), pv) {
            (Some(ov @ Value::Object(_)), Value::Object(_)) => {
                remove_fields(ov, pv);
                if ov.as_object().is_some_and(|m| m.is_empty()) {
                    o.remove(k);
                }
            }
            (Some(_), _) => {
                o.remove(k);
            }
            (None, _) => {}
        }
    }
}

/// Resources `address` depends on, directly or not, that this plan changes.
fn transitive_pending(
    graph: &Graph,
    address: &Address,
    pending: &BTreeSet<Address>,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![address.clone()];
    let mut out = BTreeSet::new();
    while let Some(a) = stack.pop() {
        for edge in graph.dependencies_of(&a) {
            if seen.insert(edge.from.clone()) {
                if pending.contains(&edge.from) && edge.from.kind == ResourceKind::HelmRelease {
                    out.insert(edge.from.to_string());
                }
                stack.push(edge.from.clone());
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn destroy_of_a_patched_object_removes_only_our_fields() {
        let mut live = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "labels": {"istio-injection": "enabled", "kubernetes.io/metadata.name": "default"}}});
        let patch = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}});
        remove_fields(&mut live, &patch);
        assert_eq!(
            live,
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}})
        );
    }

    #[test]
    fn pinned_content_keeps_the_declared_ownership_metadata() {
        let content = json!({"kind": "CustomResourceDefinition", "metadata": {"name": "x", "annotations": {"upstream": "1"}}, "spec": {"big": true}});
        let declared = json!({"kind": "CustomResourceDefinition", "metadata": {"name": "x",
            "labels": {"app.kubernetes.io/managed-by": "envctl"}, "annotations": {SOURCE_ANNOTATION: "https://h/f"}}});
        let merged = merge_metadata(content, &declared);
        assert_eq!(merged["spec"]["big"], true);
        assert_eq!(merged["metadata"]["annotations"]["upstream"], "1");
        assert_eq!(
            merged["metadata"]["annotations"][SOURCE_ANNOTATION],
            "https://h/f"
        );
        assert_eq!(
            merged["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "envctl"
        );
    }
}
