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
use crate::sources::Sources;
use crate::wait::{self, WaitOptions};
use crate::{Cluster, LiveError, fields};

use engine::desired::{SOURCE_ANNOTATION, SOURCE_SHA256_ANNOTATION};

/// Where each environment's inventory (the object types it applied) is kept.
const INVENTORY_NAMESPACE: &str = "kube-public";

/// How a run behaves.
#[derive(Clone)]
pub struct RunOptions {
    /// Parallel requests at most.
    pub concurrency: usize,
    /// Take ownership of fields another manager owns on objects this project does not own.
    pub force_conflicts: bool,
    pub wait: WaitOptions,
    pub sources: Sources,
    /// Only these modules (all when `None`).
    pub modules: Option<BTreeSet<String>>,
    /// The helm CLI, for Helm releases (`None`: an environment without releases).
    pub helm: Option<Helm>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 16,
            force_conflicts: false,
            wait: WaitOptions::default(),
            sources: Sources::default(),
            modules: None,
            helm: None,
        }
    }
}

/// Where progress lines go (stderr in the CLI, a buffer in tests).
pub type Reporter = dyn Fn(&str) + Send + Sync;

/// One environment against one cluster.
pub struct Runner<'a> {
    pub cluster: Cluster,
    pub graph: &'a Graph,
    pub environment: String,
    pub options: RunOptions,
    pub report: &'a Reporter,
    /// Pinned files already loaded in this run, by URL.
    pinned: Mutex<BTreeMap<String, Vec<Value>>>,
}

/// What an apply or destroy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub replaced: usize,
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
        }
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
        let mut bindings = self.graph.bindings();
        for output in self.graph.outputs() {
            if output.value.is_some() {
                continue;
            }
            if let Some(value) = self.read_output(output).await? {
                bindings.outputs.insert(output.r#ref.clone(), value);
            }
        }
        Ok(bindings)
    }

    async fn read_output(&self, output: &engine::Output) -> Result<Option<Value>, LiveError> {
        let Some(source) = &output.source else {
            return Ok(None);
        };
        let Some(ty) = self.cluster.resolve(&source.api_version, &source.kind) else {
            return Ok(None);
        };
        let object = self
            .cluster
            .get(&ty, source.namespace.as_deref(), &source.name)
            .await?;
        Ok(object
            .and_then(|o| o.pointer(&source.pointer).cloned())
            .filter(|v| !v.is_null() && v != "" && v != "None"))
    }

    /// The manifest that will be sent for an object resource: pinned content where declared
    /// from a pinned file, ownership metadata, environment label and configuration hash.
    fn object_manifest(&self, desired: &Desired, ownership: Ownership) -> Result<Value, LiveError> {
        let mut manifest = desired.doc.clone();
        if let Some(url) = annotation(&manifest, SOURCE_ANNOTATION) {
            let sha = annotation(&manifest, SOURCE_SHA256_ANNOTATION).unwrap_or_default();
            let mut cache = self.pinned.lock().expect("pinned cache");
            if !cache.contains_key(&url) {
                let objects = self.options.sources.load(&url, &sha)?;
                cache.insert(url.clone(), objects);
            }
            let kind = manifest.get("kind").cloned();
            let name = manifest.pointer("/metadata/name").cloned();
            let content = cache[&url]
                .iter()
                .find(|o| {
                    o.get("kind").cloned() == kind && o.pointer("/metadata/name").cloned() == name
                })
                .cloned()
                .ok_or_else(|| {
                    LiveError::Other(format!(
                        "{}: {url} holds no such object (are the pins' `objects` right?)",
                        desired.address
                    ))
                })?;
            manifest = merge_metadata(content, &manifest);
        }
        // `status` is the server's (upstream CRD files carry an empty one): never sent.
        if let Some(object) = manifest.as_object_mut() {
            object.remove("status");
        }
        Ok(match ownership {
            Ownership::Owned => objects::stamp(&manifest, &self.environment),
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
            let desired = self
                .graph
                .desired(address, &bindings, &self.environment)
                .map_err(|e| LiveError::Other(e.to_string()))?;
            out.push(self.object_manifest(&desired, spec.ownership)?);
        }
        Ok(out)
    }

    /// The plan of the whole environment (or the selected modules) against the live cluster.
    pub async fn plan(&self) -> Result<Plan, LiveError> {
        let bindings = self.bindings().await?;
        let mut plan = Plan::new(&self.environment);
        let mut desired_objects = Vec::new();
        let mut planned = PlannedCreations::default();
        let mut documents = BTreeMap::new();
        for address in self.graph.order() {
            let resource = self.graph.resource(address).expect("graph resource");
            let desired = self
                .graph
                .desired(address, &bindings, &self.environment)
                .map_err(|e| LiveError::Other(e.to_string()))?;
            match &resource.spec {
                ResourceSpec::Object(spec) => {
                    let manifest = self.object_manifest(&desired, spec.ownership)?;
                    if manifest.get("kind").and_then(Value::as_str)
                        == Some("CustomResourceDefinition")
                    {
                        let group = text(&manifest, "/spec/group");
                        let kind = text(&manifest, "/spec/names/kind");
                        let name = text(&manifest, "/metadata/name");
                        planned
                            .kinds
                            .insert(format!("{group}/{kind}"), name.to_owned());
                    }
                    if manifest.get("kind").and_then(Value::as_str) == Some("Namespace")
                        && spec.ownership == Ownership::Owned
                    {
                        planned
                            .namespaces
                            .insert(text(&manifest, "/metadata/name").to_owned());
                    }
                    if self.selected(address) {
                        desired_objects.push(DesiredObject {
                            address: address.to_string(),
                            manifest,
                            owned: spec.ownership == Ownership::Owned,
                            has_unknowns: !desired.unknown.is_empty(),
                        });
                    }
                }
                ResourceSpec::HelmRelease(spec) if spec.create_namespace => {
                    planned.namespaces.insert(spec.namespace.clone());
                }
                _ => {}
            }
            documents.insert(address.clone(), desired);
        }

        // Types this environment applied before (its inventory): an object whose kind no longer
        // appears in the configuration is still found, and pruned.
        let inventory = self.read_inventory().await?;
        let facts = objects::gather(
            &self.cluster,
            &self.environment,
            &desired_objects,
            &planned,
            &inventory,
            self.options.concurrency,
        )
        .await?;
        // Releases, secrets and the cluster: each asks helm or the API server on its own, so
        // they are planned concurrently (helm renders dominate a plan's time).
        let others: Vec<&Address> = self
            .graph
            .order()
            .iter()
            .filter(|a| self.selected(a) && a.kind != ResourceKind::Object)
            .collect();
        let mut other_changes: BTreeMap<Address, ResourceChange> = futures::stream::iter(others)
            .map(|address| {
                let resource = self.graph.resource(address).expect("graph resource");
                let desired = &documents[address];
                async move {
                    self.other_change(address, resource, desired)
                        .await
                        .map(|c| (address.clone(), c))
                }
            })
            .buffer_unordered(self.options.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut pending: BTreeSet<Address> = BTreeSet::new();
        for address in self.graph.order() {
            if !self.selected(address) {
                continue;
            }
            let resource = self.graph.resource(address).expect("graph resource");
            let desired = &documents[address];
            let change = match &resource.spec {
                ResourceSpec::Object(_) => {
                    let state = facts
                        .states
                        .get(&address.to_string())
                        .expect("a state per desired object");
                    let sent = desired_objects
                        .iter()
                        .find(|d| d.address == address.to_string())
                        .map(|d| d.manifest.clone());
                    self.object_change(address, desired, sent, state, &pending)?
                }
                _ => other_changes.remove(address).expect("planned above"),
            };
            if change.action != Action::NoOp {
                pending.insert(address.clone());
            }
            if let Some(before) = &change.before {
                plan.fingerprints
                    .insert(address.clone(), engine::canonical_hash(before));
            }
            plan.changes.push(change);
        }
        // Owned objects nobody declares any more: pruned last, in reverse order of discovery.
        for orphan in facts.orphans.iter().rev() {
            let Some(address) = annotation(orphan, objects::ADDRESS_ANNOTATION)
                .and_then(|a| a.parse::<Address>().ok())
            else {
                continue;
            };
            // Only plain objects are pruned this way (a generated secret is a resource of its
            // own), and never one the configuration still declares under another kind.
            if !self.selected(&address)
                || address.kind != ResourceKind::Object
                || self.graph.resource(&address).is_some()
            {
                continue;
            }
            let before = fields::strip_noise(orphan);
            plan.fingerprints
                .insert(address.clone(), engine::canonical_hash(&before));
            plan.changes.push(
                ResourceChange::new(
                    address,
                    Action::Delete,
                    Some(before),
                    None,
                    Default::default(),
                )
                .with_note("no longer in the configuration"),
            );
        }
        Ok(plan)
    }

    fn object_change(
        &self,
        address: &Address,
        desired: &Desired,
        sent: Option<Value>,
        state: &ObjectState,
        pending: &BTreeSet<Address>,
    ) -> Result<ResourceChange, LiveError> {
        let waits = self.graph.waits_for(address);
        // A pinned upstream file is shown by name and source, not as its (large) content.
        let pinned = annotation(&desired.doc, SOURCE_ANNOTATION).is_some();
        let shown = match sent {
            Some(manifest) if !pinned => strip_bookkeeping(&manifest),
            _ => desired.doc.clone(),
        };
        let change = |action, before: Option<Value>, after: Option<Value>| {
            let mut c = ResourceChange::new(
                address.clone(),
                action,
                before,
                after,
                desired.sensitivity.clone(),
            );
            c.unknown = desired.unknown.clone();
            c
        };
        Ok(match state {
            ObjectState::Absent {
                waits_for,
                validated,
            } => {
                let mut c =
                    change(Action::Create, None, Some(shown)).with_waits_for(waits_for.clone());
                if waits_for.is_none() && !*validated && desired.unknown.is_empty() {
                    c = c.with_waits_for(waits);
                }
                c
            }
            ObjectState::InSync { live } => {
                change(Action::NoOp, Some(fields::strip_noise(live)), Some(shown))
            }
            ObjectState::Differs {
                before,
                after,
                drift,
                conflict,
                ..
            } => {
                let after = strip_bookkeeping(after);
                let before = fields::align_order(&strip_bookkeeping(before), &after);
                let mut c = change(Action::Update, Some(before), Some(after));
                c.drift = drift
                    .iter()
                    .filter(|d| {
                        d.manager
                            .as_deref()
                            .is_some_and(|m| m != crate::FIELD_MANAGER)
                    })
                    .map(|d| FieldDrift {
                        path: d.path.clone(),
                        manager: d.manager.clone(),
                        operation: d.operation.clone(),
                        time: d.time.clone(),
                    })
                    .collect();
                if let Some(conflict) = conflict {
                    c = c.with_note(format!(
                        "conflict: {} own{} {}; apply with --force-conflicts to take them over",
                        conflict.managers.join(", "),
                        if conflict.managers.len() == 1 {
                            "s"
                        } else {
                            ""
                        },
                        conflict.fields.join(", ")
                    ));
                }
                c
            }
            ObjectState::Unknown { live } => {
                change(Action::Update, Some(fields::strip_noise(live)), Some(shown))
                    .with_note("depends on values known only after apply")
            }
            ObjectState::Invalid {
                live,
                message,
                immutable: true,
            } => change(
                Action::Replace {
                    reason: format!("the server refuses an in-place update: {message}"),
                },
                live.as_ref().map(fields::strip_noise),
                Some(shown),
            ),
            ObjectState::Invalid { message, .. } => {
                return Err(LiveError::Other(format!(
                    "{address}: the API server rejects this object: {message}"
                )));
            }
            ObjectState::UnservedKind => {
                let providers: Vec<String> = self
                    .graph
                    .dependencies_of(address)
                    .into_iter()
                    .map(|e| e.from.clone())
                    .filter(|a| pending.contains(a) && a.kind == ResourceKind::HelmRelease)
                    .map(|a| a.to_string())
                    .collect();
                let upstream = transitive_pending(self.graph, address, pending);
                if providers.is_empty() && upstream.is_empty() {
                    let kind = text(&desired.doc, "/kind");
                    let api = text(&desired.doc, "/apiVersion");
                    return Err(LiveError::Other(format!(
                        "{address}: the cluster does not serve {api} {kind}, and nothing planned before it installs a \
                         CustomResourceDefinition for it (a missing CRD or chart, or a misspelt apiVersion?)"
                    )));
                }
                let mut c = change(Action::Create, None, Some(shown));
                c.waits_for = if providers.is_empty() {
                    upstream
                } else {
                    providers
                };
                c.with_note("its kind is served once the resources it waits for are applied")
            }
        })
    }

    /// Plans a resource that is not a plain object: the cluster (its recorded spec), a Helm
    /// release (values, chart version and the live drift of the objects it made), a generated
    /// secret (present with every key; values never read into the plan).
    async fn other_change(
        &self,
        address: &Address,
        resource: &engine::Resource,
        desired: &Desired,
    ) -> Result<ResourceChange, LiveError> {
        match &resource.spec {
            ResourceSpec::Cluster(spec) => {
                let record = crate::provider::read_record(&self.cluster).await?;
                let wanted = crate::provider::cluster_document(spec);
                let recorded = record.as_ref().and_then(|r| r.spec.clone());
                Ok(match (&recorded, crate::provider::replace_decision(recorded.as_ref(), &wanted)) {
                    (None, _) => ResourceChange::from_desired(Action::Update, None, desired)
                        .with_note(format!("context {} answers; its spec is recorded in ConfigMap kube-public/envctl-cluster", self.cluster.context)),
                    (Some(before), Some(reason)) => ResourceChange::from_desired(Action::Replace { reason }, Some(before.clone()), desired),
                    (Some(before), None) if before != &wanted => ResourceChange::from_desired(Action::Update, Some(before.clone()), desired),
                    (Some(before), None) => ResourceChange::from_desired(Action::NoOp, Some(before.clone()), desired),
                })
            }
            ResourceSpec::HelmRelease(spec) => self.release_change(address, spec, desired).await,
            ResourceSpec::GeneratedSecret(spec) => {
                let state =
                    secrets::secret_state(&self.cluster, spec)
                        .await
                        .or_else(|e| match e {
                            // The namespace may not exist yet: the secret is simply absent.
                            LiveError::Api(kube::Error::Api(s)) if s.code == 404 => {
                                Ok(SecretState::Absent)
                            }
                            e => Err(e),
                        })?;
                Ok(match state {
                    SecretState::Absent => {
                        ResourceChange::from_desired(Action::Create, None, desired)
                    }
                    SecretState::Complete { plain_differs } if plain_differs.is_empty() => {
                        ResourceChange::from_desired(
                            Action::NoOp,
                            Some(desired.doc.clone()),
                            desired,
                        )
                    }
                    SecretState::Complete { plain_differs } => {
                        ResourceChange::from_desired(Action::Update, None, desired).with_note(
                            format!(
                                "keys set from the configuration change: {}",
                                plain_differs.join(", ")
                            ),
                        )
                    }
                    SecretState::MissingKeys {
                        missing,
                        plain_differs,
                    } => {
                        let mut c = ResourceChange::from_desired(Action::Update, None, desired)
                            .with_note(format!("keys to generate: {}", missing.join(", ")));
                        if !plain_differs.is_empty() {
                            c = c.with_note(format!(
                                "keys set from the configuration change: {}",
                                plain_differs.join(", ")
                            ));
                        }
                        c
                    }
                })
            }
            ResourceSpec::Object(_) => unreachable!("objects are planned from their facts"),
        }
    }

    fn helm(&self, address: &Address) -> Result<&Helm, LiveError> {
        self.options
            .helm
            .as_ref()
            .ok_or_else(|| LiveError::Other(format!("{address}: Helm releases need the helm CLI")))
    }

    async fn release_change(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        desired: &Desired,
    ) -> Result<ResourceChange, LiveError> {
        let helm = self.helm(address)?;
        let helm_err = |e: crate::helm::HelmError| LiveError::Other(format!("{address}: {e}"));
        let Some(status) = helm
            .status(&spec.release, &spec.namespace)
            .await
            .map_err(helm_err)?
        else {
            return Ok(ResourceChange::from_desired(Action::Create, None, desired));
        };
        let deployed = helm
            .deployed_values(&spec.release, &spec.namespace)
            .await
            .map_err(helm_err)?
            .unwrap_or(Value::Object(Default::default()));
        let mut chart = spec.chart.clone();
        if chart.path.is_none() {
            chart.version = status.chart_version.clone();
        }
        let before = engine::helm_release_document(
            &spec.release,
            &spec.namespace,
            spec.create_namespace,
            &chart,
            deployed.clone(),
        );
        let mut notes = Vec::new();
        if !status.is_deployed() {
            notes.push(format!(
                "the last revision ({}) is `{}`",
                status.revision, status.status
            ));
        }
        // What the chart made, compared with what it would make now from the deployed values:
        // edits and deletions out of band that Helm itself never sees.
        let chart_ref = ChartRef::from_source(&spec.chart, Path::new(""))
            .ok_or_else(|| LiveError::Other(format!("{address}: no chart source")))?;
        let drift = crate::helm::release_drift(
            &self.cluster,
            helm,
            &spec.release,
            &spec.namespace,
            &chart_ref,
            &deployed,
        )
        .await
        .map_err(helm_err)?;
        let mut field_drift = Vec::new();
        for missing in &drift.missing {
            notes.push(format!("{missing} was deleted out of band"));
        }
        for changed in &drift.changed {
            for f in &changed.fields {
                field_drift.push(FieldDrift {
                    path: format!("{} {}", changed.object, f.path),
                    manager: f.manager.clone(),
                    operation: f.operation.clone(),
                    time: f.time.clone(),
                });
            }
        }
        for skipped in &drift.skipped {
            notes.push(format!("not checked for drift: {skipped}"));
        }
        let differs = before != desired.doc
            || !drift.is_empty()
            || !status.is_deployed()
            || !desired.unknown.is_empty();
        let action = if differs {
            Action::Update
        } else {
            Action::NoOp
        };
        // Helm returns values with sorted keys: show them in the configuration's order.
        let before = fields::align_order(&before, &desired.doc);
        let mut change = ResourceChange::from_desired(action, Some(before), desired);
        change.drift = field_drift;
        if !drift.is_empty() {
            notes.push(format!(
                "revision {} will be upgraded to repair what changed outside Helm",
                status.revision
            ));
        }
        for note in notes {
            change = change.with_note(note);
        }
        Ok(change)
    }

    fn progress(&self, line: &str) {
        (self.report)(line);
    }

    /// Applies `plan` in order. Documents are resolved again with every output known so far,
    /// so values "known after apply" are filled in as their producers complete.
    pub async fn apply(&self, plan: &Plan) -> Result<ApplyReport, LiveError> {
        let mut report = ApplyReport::default();
        let mut bindings = self.bindings().await?;
        let mut deletes = Vec::new();
        for change in &plan.changes {
            let address = &change.address;
            if change.action == Action::Delete {
                deletes.push(change);
                continue;
            }
            if change.action != Action::NoOp {
                let resource = self.graph.resource(address).ok_or_else(|| {
                    LiveError::Other(format!("{address} is not in the configuration"))
                })?;
                let desired = self
                    .graph
                    .desired(address, &bindings, &self.environment)
                    .map_err(|e| LiveError::Other(e.to_string()))?;
                if !desired.unknown.is_empty() {
                    let unknown: Vec<String> =
                        desired.unknown.iter().map(ToString::to_string).collect();
                    return Err(LiveError::Other(format!(
                        "{address}: {} still unknown after applying its dependencies",
                        unknown.join(", ")
                    )));
                }
                let start = Instant::now();
                let verb = match change.action {
                    Action::Create => "Creating",
                    Action::Replace { .. } => "Replacing",
                    _ => "Modifying",
                };
                self.progress(&format!("{address}: {verb}..."));
                match &resource.spec {
                    ResourceSpec::Object(spec) => {
                        if let Action::Replace { .. } = change.action {
                            self.delete_object(address, &desired.doc).await?;
                        }
                        self.apply_object(address, &desired, spec.ownership).await?;
                    }
                    ResourceSpec::HelmRelease(spec) => {
                        let helm = self.helm(address)?;
                        let chart =
                            ChartRef::from_source(&spec.chart, Path::new("")).ok_or_else(|| {
                                LiveError::Other(format!("{address}: no chart source"))
                            })?;
                        let values = desired.doc.get("values").cloned().unwrap_or_default();
                        helm.upgrade_install(
                            &spec.release,
                            &spec.namespace,
                            &chart,
                            &values,
                            spec.create_namespace,
                            self.options.wait.timeout,
                        )
                        .await
                        .map_err(|e| LiveError::Other(format!("{address}: {e}")))?;
                    }
                    ResourceSpec::GeneratedSecret(spec) => {
                        secrets::ensure(&self.cluster, spec, &self.environment, address).await?;
                    }
                    ResourceSpec::Cluster(spec) => {
                        // Creating or replacing the cluster happens before a runner exists (the
                        // cluster module); here only its spec is recorded.
                        let created = crate::provider::read_record(&self.cluster)
                            .await?
                            .is_some_and(|r| r.created_by_envctl);
                        crate::provider::record(
                            &self.cluster,
                            spec,
                            created,
                            &self.environment,
                            address,
                        )
                        .await?;
                    }
                }
                let done = match change.action {
                    Action::Create => {
                        report.created += 1;
                        "Creation complete"
                    }
                    Action::Replace { .. } => {
                        report.replaced += 1;
                        "Replacement complete"
                    }
                    _ => {
                        report.updated += 1;
                        "Modifications complete"
                    }
                };
                self.progress(&format!(
                    "{address}: {done} after {}s",
                    start.elapsed().as_secs()
                ));
            }
            for output in self
                .graph
                .outputs()
                .filter(|o| &o.producer == address && o.value.is_none())
            {
                if let Some(value) = self.read_output(output).await? {
                    bindings.outputs.insert(output.r#ref.clone(), value);
                }
            }
        }
        for change in deletes {
            let start = Instant::now();
            self.progress(&format!("{}: Destroying...", change.address));
            let before = change.before.clone().unwrap_or_default();
            self.delete_object(&change.address, &before).await?;
            report.deleted += 1;
            self.progress(&format!(
                "{}: Destruction complete after {}s",
                change.address,
                start.elapsed().as_secs()
            ));
        }
        self.write_inventory().await?;
        Ok(report)
    }

    fn inventory_name(&self) -> String {
        format!("envctl-inventory-{}", self.environment)
    }

    /// `(apiVersion, kind)` of every type this environment has applied objects of.
    async fn read_inventory(&self) -> Result<Vec<(String, String)>, LiveError> {
        let Some(ty) = self.cluster.resolve("v1", "ConfigMap") else {
            return Ok(Vec::new());
        };
        let record = self
            .cluster
            .get(&ty, Some(INVENTORY_NAMESPACE), &self.inventory_name())
            .await?;
        Ok(record
            .and_then(|r| {
                r.pointer("/data/types")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                line.rsplit_once(' ')
                    .map(|(v, k)| (v.to_owned(), k.to_owned()))
            })
            .collect())
    }

    /// Records the object types of the configuration, with those recorded before (a type
    /// leaves the inventory only when destroy removes the record).
    async fn write_inventory(&self) -> Result<(), LiveError> {
        let Some(ty) = self.cluster.resolve("v1", "ConfigMap") else {
            return Ok(());
        };
        let mut types: BTreeSet<(String, String)> =
            self.read_inventory().await?.into_iter().collect();
        for resource in self.graph.resources() {
            if let ResourceSpec::Object(spec) = &resource.spec {
                let (v, k) = type_of(&spec.manifest);
                types.insert((v.to_owned(), k.to_owned()));
            }
        }
        let text: Vec<String> = types.iter().map(|(v, k)| format!("{v} {k}")).collect();
        let record = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.inventory_name(), "namespace": INVENTORY_NAMESPACE,
                         "annotations": {"envctl.dev/environment": self.environment}},
            "data": {"types": text.join("\n")},
        });
        self.cluster.apply(&ty, &record, false, true).await?;
        Ok(())
    }

    async fn apply_object(
        &self,
        address: &Address,
        desired: &Desired,
        ownership: Ownership,
    ) -> Result<(), LiveError> {
        let manifest = self.object_manifest(desired, ownership)?;
        let (api_version, kind) = type_of(&manifest);
        let ty = match self.cluster.resolve(api_version, kind) {
            Some(ty) => ty,
            None => {
                // Its CRD was just created (or comes with a chart): look again.
                self.cluster.refresh_discovery().await?;
                self.cluster.resolve(api_version, kind).ok_or_else(|| {
                    LiveError::Other(format!("{address}: the cluster does not serve {api_version} {kind} even after its dependencies were applied"))
                })?
            }
        };
        let force = ownership == Ownership::Owned || self.options.force_conflicts;
        match self.cluster.apply(&ty, &manifest, false, force).await {
            Ok(_) => {}
            Err(LiveError::Conflict(conflict)) => {
                return Err(LiveError::Other(format!(
                    "{address}: field manager{} {} own{} {}; run apply with --force-conflicts to take them over",
                    if conflict.managers.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    conflict.managers.join(", "),
                    if conflict.managers.len() == 1 {
                        "s"
                    } else {
                        ""
                    },
                    conflict.fields.join(", ")
                )));
            }
            Err(e) => return Err(e),
        }
        let (namespace, name) = identity(&manifest);
        if kind == "CustomResourceDefinition" {
            wait::wait_ready(
                &self.cluster,
                &ty,
                None,
                &name,
                &address.to_string(),
                self.options.wait,
                self.report,
            )
            .await?;
            self.cluster.refresh_discovery().await?;
        } else if self.needs_wait(&manifest).await? {
            wait::wait_ready(
                &self.cluster,
                &ty,
                namespace.as_deref(),
                &name,
                &address.to_string(),
                self.options.wait,
                self.report,
            )
            .await?;
        }
        Ok(())
    }

    /// Waits for workloads and for anything others depend on; Gateway API objects only when a
    /// controller serves their class (no controller means no status to wait for).
    async fn needs_wait(&self, manifest: &Value) -> Result<bool, LiveError> {
        let kind = text(manifest, "/kind");
        match kind {
            "Deployment" | "DaemonSet" | "Namespace" => Ok(true),
            "Gateway" => {
                self.class_has_controller(
                    manifest
                        .pointer("/spec/gatewayClassName")
                        .and_then(Value::as_str),
                )
                .await
            }
            // A route is Accepted by its Gateway's controller: wait only where one runs.
            "HTTPRoute" => {
                let Some(ty) = self
                    .cluster
                    .resolve("gateway.networking.k8s.io/v1", "Gateway")
                else {
                    return Ok(false);
                };
                let route_ns = manifest
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str);
                for parent in manifest
                    .pointer("/spec/parentRefs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = text(parent, "/name");
                    let ns = parent.get("namespace").and_then(Value::as_str).or(route_ns);
                    let class = self.cluster.get(&ty, ns, name).await?.and_then(|g| {
                        g.pointer("/spec/gatewayClassName")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    });
                    if !self.class_has_controller(class.as_deref()).await? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn class_has_controller(&self, class: Option<&str>) -> Result<bool, LiveError> {
        let Some(class) = class else { return Ok(false) };
        let Some(ty) = self
            .cluster
            .resolve("gateway.networking.k8s.io/v1", "GatewayClass")
        else {
            return Ok(false);
        };
        let accepted = self.cluster.get(&ty, None, class).await?.is_some_and(|c| {
            c.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|conditions| {
                    conditions.iter().any(|x| {
                        x.get("type").and_then(Value::as_str) == Some("Accepted")
                            && x.get("status").and_then(Value::as_str) == Some("True")
                    })
                })
        });
        Ok(accepted)
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

    /// The plan that destroys what this environment owns, in reverse apply order. Objects this
    /// project only patches lose its fields and stay.
    pub async fn plan_destroy(&self) -> Result<Plan, LiveError> {
        let bindings = self.bindings().await?;
        let mut plan = Plan::new(&self.environment);
        // Owned objects no longer declared (of the types in the inventory) go first.
        let inventory = self.read_inventory().await?;
        let leftovers = objects::gather(
            &self.cluster,
            &self.environment,
            &[],
            &PlannedCreations::default(),
            &inventory,
            self.options.concurrency,
        )
        .await?;
        for orphan in leftovers.orphans.iter().rev() {
            let Some(address) = annotation(orphan, objects::ADDRESS_ANNOTATION)
                .and_then(|a| a.parse::<Address>().ok())
            else {
                continue;
            };
            if self.selected(&address)
                && address.kind == ResourceKind::Object
                && self.graph.resource(&address).is_none()
            {
                plan.changes.push(
                    ResourceChange::new(
                        address,
                        Action::Delete,
                        Some(fields::strip_noise(orphan)),
                        None,
                        Default::default(),
                    )
                    .with_note("no longer in the configuration"),
                );
            }
        }
        for address in self.graph.reverse_order() {
            if !self.selected(&address) {
                continue;
            }
            let resource = self.graph.resource(&address).expect("graph resource");
            let desired = self
                .graph
                .desired(&address, &bindings, &self.environment)
                .map_err(|e| LiveError::Other(e.to_string()))?;
            match &resource.spec {
                ResourceSpec::Object(spec) => {
                    let (api_version, kind) = type_of(&desired.doc);
                    let Some(ty) = self.cluster.resolve(api_version, kind) else {
                        continue;
                    };
                    let (namespace, name) = identity(&desired.doc);
                    let Some(live) = self.cluster.get(&ty, namespace.as_deref(), &name).await?
                    else {
                        continue;
                    };
                    if spec.ownership == Ownership::FieldsOnly {
                        let before = fields::strip_noise(&live);
                        let mut after = before.clone();
                        remove_fields(&mut after, &desired.doc);
                        if after == before {
                            continue; // none of envctl's fields are there
                        }
                        plan.changes.push(
                            ResourceChange::new(
                                address.clone(),
                                Action::Update,
                                Some(before),
                                Some(after),
                                desired.sensitivity.clone(),
                            )
                            .with_note("not owned by envctl: only its fields are removed"),
                        );
                    } else if is_owned(&live, &self.environment) {
                        plan.changes.push(ResourceChange::new(
                            address.clone(),
                            Action::Delete,
                            Some(fields::strip_noise(&live)),
                            None,
                            desired.sensitivity.clone(),
                        ));
                    } else {
                        plan.changes.push(
                            ResourceChange::new(
                                address.clone(),
                                Action::NoOp,
                                Some(fields::strip_noise(&live)),
                                None,
                                desired.sensitivity.clone(),
                            )
                            .with_note(
                                "exists but is not owned by this environment: left in place",
                            ),
                        );
                    }
                }
                ResourceSpec::Cluster(_) => {}
                ResourceSpec::HelmRelease(spec) => {
                    let status = self
                        .helm(&address)?
                        .status(&spec.release, &spec.namespace)
                        .await
                        .map_err(|e| LiveError::Other(format!("{address}: {e}")))?;
                    if let Some(status) = status {
                        let before = engine::helm_release_document(
                            &spec.release,
                            &spec.namespace,
                            spec.create_namespace,
                            &spec.chart,
                            Value::Null,
                        );
                        plan.changes.push(
                            ResourceChange::new(
                                address.clone(),
                                Action::Delete,
                                Some(before),
                                None,
                                desired.sensitivity.clone(),
                            )
                            .with_note(format!("helm uninstall of revision {}", status.revision)),
                        );
                    }
                }
                ResourceSpec::GeneratedSecret(spec) => {
                    if !matches!(
                        secrets::secret_state(&self.cluster, spec).await,
                        Ok(SecretState::Absent) | Err(_)
                    ) {
                        plan.changes.push(ResourceChange::new(
                            address.clone(),
                            Action::Delete,
                            Some(desired.doc.clone()),
                            None,
                            desired.sensitivity.clone(),
                        ));
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Executes a destroy plan, waiting until each deleted object is gone. Destroying the
    /// whole environment also removes its inventory.
    pub async fn destroy(&self, plan: &Plan) -> Result<ApplyReport, LiveError> {
        let report = self.destroy_changes(plan).await?;
        if self.options.modules.is_none()
            && let Some(ty) = self.cluster.resolve("v1", "ConfigMap")
        {
            self.cluster
                .delete(&ty, Some(INVENTORY_NAMESPACE), &self.inventory_name())
                .await?;
        }
        Ok(report)
    }

    async fn destroy_changes(&self, plan: &Plan) -> Result<ApplyReport, LiveError> {
        let mut report = ApplyReport::default();
        for change in &plan.changes {
            let address = &change.address;
            let start = Instant::now();
            match change.action {
                Action::Delete => {
                    self.progress(&format!("{address}: Destroying..."));
                    let before = change.before.clone().unwrap_or_default();
                    match address.kind {
                        ResourceKind::HelmRelease => {
                            let release = text(&before, "/release");
                            let namespace = text(&before, "/namespace");
                            self.helm(address)?
                                .uninstall(release, namespace, Some(self.options.wait.timeout))
                                .await
                                .map_err(|e| LiveError::Other(format!("{address}: {e}")))?;
                        }
                        _ => self.delete_object(address, &before).await?,
                    }
                    report.deleted += 1;
                    self.progress(&format!(
                        "{address}: Destruction complete after {}s",
                        start.elapsed().as_secs()
                    ));
                }
                Action::Update => {
                    self.progress(&format!("{address}: Removing envctl's fields..."));
                    let manifest =
                        objects::release_fields(change.before.as_ref().unwrap_or(&Value::Null));
                    let (api_version, kind) = type_of(&manifest);
                    if let Some(ty) = self.cluster.resolve(api_version, kind) {
                        self.cluster.apply(&ty, &manifest, false, false).await?;
                    }
                    report.updated += 1;
                    self.progress(&format!(
                        "{address}: Fields removed after {}s",
                        start.elapsed().as_secs()
                    ));
                }
                _ => {}
            }
        }
        Ok(report)
    }
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

fn is_owned(live: &Value, environment: &str) -> bool {
    live.pointer("/metadata/labels").is_some_and(|l| {
        l.get(engine::desired::MANAGED_BY_LABEL)
            .and_then(Value::as_str)
            == Some(engine::desired::MANAGED_BY_VALUE)
            && l.get(objects::ENVIRONMENT_LABEL).and_then(Value::as_str) == Some(environment)
    })
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

/// Defines a module crate's `plan`, `apply` and `destroy`: the runner restricted to the
/// module named by the crate's `NAME` constant. The engine decides how; the module only says
/// what (its `declare`).
#[macro_export]
macro_rules! module_commands {
    () => {
        /// This module's part of the plan against the live cluster.
        pub async fn plan(
            runner: &$crate::runner::Runner<'_>,
        ) -> Result<engine::Plan, $crate::LiveError> {
            runner.module(NAME).plan().await
        }

        /// Applies this module's part of a plan.
        pub async fn apply(
            runner: &$crate::runner::Runner<'_>,
            plan: &engine::Plan,
        ) -> Result<$crate::runner::ApplyReport, $crate::LiveError> {
            runner.module(NAME).apply(plan).await
        }

        /// Destroys what this module owns.
        pub async fn destroy(
            runner: &$crate::runner::Runner<'_>,
        ) -> Result<$crate::runner::ApplyReport, $crate::LiveError> {
            let runner = runner.module(NAME);
            runner.destroy(&runner.plan_destroy().await?).await
        }
    };
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
