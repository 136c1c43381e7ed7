//! Planning: live facts turned into engine changes, resource by resource.

use super::*;

/// The documents of a plan, resolved with what is known.
#[derive(Default)]
struct Resolved {
    /// Every object's document, by address.
    documents: BTreeMap<Address, Desired>,
    /// The objects of the selected modules, as they are sent.
    objects: Vec<DesiredObject>,
    /// What the plan creates that other objects wait for.
    planned: PlannedCreations,
}

impl Runner<'_> {
    /// The plan of the whole environment (or the selected modules) against the live cluster:
    /// every document resolved, the facts of the objects gathered, the other resources planned
    /// concurrently, then the changes in graph order and the prunes. The other resources
    /// (releases: their renders, the longest part of a plan from empty) are planned from their
    /// own documents as soon as the bindings are known, while every object's document is
    /// resolved and the objects' facts gathered; an error of the objects' side is reported
    /// first. Every read of the live state goes through one [`Snapshot`], made for this plan
    /// and dropped with it: one list per type for the whole plan (a read waits for the list
    /// of its type already under way).
    pub async fn plan(&self) -> Result<Plan, LiveError> {
        let snapshot = self.snapshot();
        // The types known from the configuration are listed at once (and Helm's storage),
        // while the outputs are read and the documents resolved.
        let known = self.known_types();
        let planned = async {
            let bindings = self.bindings_in(Some(&snapshot)).await?;
            let others = async {
                let documents = self.other_documents(&bindings)?;
                self.plan_others(&documents, &snapshot).await
            };
            let objects = async {
                let resolved = self.resolve_documents(&bindings).await?;
                self.check_adopt(&resolved.objects)?;
                // Types this environment applied before (its inventory): an object whose kind
                // no longer appears in the configuration is still found, and pruned.
                let inventory = self.read_inventory(&snapshot).await?;
                let facts = objects::gather(
                    &self.cluster,
                    &self.environment,
                    &resolved.objects,
                    &resolved.planned,
                    &inventory,
                    self.options.concurrency,
                    &snapshot,
                )
                .await?;
                Ok::<_, LiveError>((resolved, facts))
            };
            let (objects, others) = tokio::join!(objects, others);
            Ok::<_, LiveError>((objects?, others?))
        };
        let ((), ((resolved, facts), others)) =
            tokio::try_join!(snapshot.prefetch(&known), planned)?;
        let mut plan = Plan::new(&self.environment);
        self.push_changes(&mut plan, &resolved, &facts, others)?;
        self.push_prunes(&mut plan, &facts.orphans);
        Ok(plan)
    }

    /// The types a plan reads whatever the cluster holds: those of the configuration's
    /// objects, of the outputs' sources, Namespaces, ConfigMaps (the records) and Secrets
    /// (generated ones, Helm's).
    fn known_types(&self) -> Vec<crate::TypeInfo> {
        let mut wanted: BTreeSet<(String, String)> = [("v1", "Namespace"), ("v1", "ConfigMap")]
            .into_iter()
            .map(|(v, k)| (v.to_owned(), k.to_owned()))
            .collect();
        for resource in self.graph.resources() {
            match &resource.spec {
                ResourceSpec::Object(spec) if self.selected(&resource.address) => {
                    let (v, k) = type_of(&spec.manifest);
                    wanted.insert((v.to_owned(), k.to_owned()));
                }
                ResourceSpec::GeneratedSecret(_) | ResourceSpec::HelmRelease(_)
                    if self.selected(&resource.address) =>
                {
                    wanted.insert(("v1".into(), "Secret".into()));
                }
                _ => {}
            }
        }
        for output in self.graph.outputs() {
            if let Some(source) = output.source.as_ref().filter(|_| output.value.is_none()) {
                wanted.insert((source.api_version.clone(), source.kind.clone()));
            }
        }
        wanted
            .iter()
            .filter_map(|(v, k)| self.cluster.resolve(v, k))
            .collect()
    }

    /// The documents of the selected resources that are not plain objects (what
    /// [`Self::plan_others`] plans), resolved with what is known.
    fn other_documents(
        &self,
        bindings: &Bindings,
    ) -> Result<BTreeMap<Address, Desired>, LiveError> {
        self.graph
            .order()
            .iter()
            .filter(|a| self.selected(a) && a.kind != ResourceKind::Object)
            .map(|a| Ok((a.clone(), self.desired(a, bindings)?)))
            .collect()
    }

    /// Every object's document resolved with what is known, the objects of the selected
    /// modules as they are sent, and what the plan creates that others wait for (CRDs,
    /// namespaces).
    async fn resolve_documents(&self, bindings: &Bindings) -> Result<Resolved, LiveError> {
        let mut resolved = Resolved::default();
        for address in self.graph.order() {
            let resource = self.graph.resource(address).expect("graph resource");
            match &resource.spec {
                ResourceSpec::Object(spec) => {
                    let desired = self.desired(address, bindings)?;
                    let manifest = self.object_manifest(&desired, spec.ownership).await?;
                    resolved.planned.note(&manifest, spec.ownership);
                    if self.selected(address) {
                        resolved.objects.push(DesiredObject {
                            address: address.to_string(),
                            manifest,
                            owned: spec.ownership == Ownership::Owned,
                            has_unknowns: !desired.unknown.is_empty(),
                            adopt: self.options.adopt.contains(&address.to_string()),
                        });
                    }
                    resolved.documents.insert(address.clone(), desired);
                }
                ResourceSpec::HelmRelease(spec) if spec.create_namespace => {
                    resolved.planned.namespaces.insert(spec.namespace.clone());
                }
                _ => {}
            }
        }
        Ok(resolved)
    }

    /// Every `--adopt` address names a declared object (or generated Secret) of this plan.
    fn check_adopt(&self, desired_objects: &[DesiredObject]) -> Result<(), LiveError> {
        for wanted in &self.options.adopt {
            let adoptable = desired_objects.iter().any(|d| &d.address == wanted)
                || self.graph.order().iter().any(|a| {
                    a.kind == ResourceKind::GeneratedSecret
                        && self.selected(a)
                        && &a.to_string() == wanted
                });
            if !adoptable {
                return Err(LiveError::NotOwned {
                    address: wanted.clone(),
                    detail: "`--adopt` names no object of this plan".into(),
                    help: "give the address of a declared object as `plan` shows it, e.g. \
                           gateway.object.configmap/default/settings"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// Releases, secrets and the cluster: each asks helm or the API server on its own, so
    /// they are planned concurrently (helm renders dominate a plan's time).
    async fn plan_others(
        &self,
        documents: &BTreeMap<Address, Desired>,
        snapshot: &Snapshot,
    ) -> Result<BTreeMap<Address, ResourceChange>, LiveError> {
        let others: Vec<&Address> = self
            .graph
            .order()
            .iter()
            .filter(|a| self.selected(a) && a.kind != ResourceKind::Object)
            .collect();
        futures::stream::iter(others)
            .map(|address| {
                let resource = self.graph.resource(address).expect("graph resource");
                let desired = &documents[address];
                async move {
                    self.other_change(address, resource, desired, snapshot)
                        .await
                        .map(|c| (address.clone(), c))
                        .map_err(|e| crate::retry::again_in_plan(address, e))
                }
            })
            .buffer_unordered(self.options.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// The change of every selected resource, in graph order, with its live fingerprint.
    fn push_changes(
        &self,
        plan: &mut Plan,
        resolved: &Resolved,
        facts: &objects::ObjectFacts,
        mut others: BTreeMap<Address, ResourceChange>,
    ) -> Result<(), LiveError> {
        let mut pending: BTreeSet<Address> = BTreeSet::new();
        // What each object's apply sends, by address (one lookup per object, not a scan).
        let sent_by_address: BTreeMap<&str, &Value> = resolved
            .objects
            .iter()
            .map(|d| (d.address.as_str(), &d.manifest))
            .collect();
        for address in self.graph.order() {
            if !self.selected(address) {
                continue;
            }
            let resource = self.graph.resource(address).expect("graph resource");
            let change = match &resource.spec {
                ResourceSpec::Object(_) => {
                    let key = address.to_string();
                    let state = facts.states.get(&key).expect("a state per desired object");
                    let sent = sent_by_address.get(key.as_str()).copied();
                    let desired = &resolved.documents[address];
                    self.object_change(address, desired, sent, state, &pending)?
                }
                _ => others.remove(address).expect("planned above"),
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
        Ok(())
    }

    /// Owned objects nobody declares any more: pruned last, in reverse order of discovery.
    fn push_prunes(&self, plan: &mut Plan, orphans: &[Value]) {
        for orphan in orphans.iter().rev() {
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
    }

    fn object_change(
        &self,
        address: &Address,
        desired: &Desired,
        sent: Option<&Value>,
        state: &ObjectState,
        pending: &BTreeSet<Address>,
    ) -> Result<ResourceChange, LiveError> {
        // A pinned upstream file is shown by name and source, not as its (large) content.
        let pinned = annotation(&desired.doc, SOURCE_ANNOTATION).is_some();
        let shown = match sent {
            Some(manifest) if !pinned => strip_bookkeeping(manifest),
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
                    c = c.with_waits_for(self.graph.waits_for(address));
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
                return Err(LiveError::Rejected {
                    address: address.to_string(),
                    message: message.clone(),
                });
            }
            ObjectState::UnservedKind => {
                // Its CRD may come with any chart it (transitively) waits for.
                let upstream = transitive_pending(self.graph, address, pending);
                if upstream.is_empty() {
                    return Err(LiveError::Unserved {
                        address: Some(address.to_string()),
                        api_version: text(&desired.doc, "/apiVersion").to_owned(),
                        kind: text(&desired.doc, "/kind").to_owned(),
                        hint: ", and nothing planned before it installs a CustomResourceDefinition \
                               for it (a missing CRD or chart, or a misspelt apiVersion?)",
                    });
                }
                let mut c = change(Action::Create, None, Some(shown));
                c.waits_for = upstream;
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
        snapshot: &Snapshot,
    ) -> Result<ResourceChange, LiveError> {
        match &resource.spec {
            ResourceSpec::Cluster(spec) => {
                let record = crate::provider::read_record_in(&self.cluster, snapshot).await?;
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
            ResourceSpec::HelmRelease(spec) => {
                self.release_change(address, spec, desired, snapshot).await
            }
            ResourceSpec::GeneratedSecret(spec) => {
                // One read serves both questions (whose is it, which keys does it hold).
                let secret_type = self.cluster.resolve("v1", "Secret");
                let live = match &secret_type {
                    Some(ty) => snapshot
                        .get(ty, Some(&spec.namespace), &spec.name)
                        .await
                        .or_else(|e| match e {
                            // The namespace may not exist yet: the secret is simply absent.
                            e if e.is_not_found() => Ok(None),
                            e => Err(e),
                        })?,
                    None => None,
                };
                if !self.options.adopt.contains(&address.to_string())
                    && let Some(live) = secrets::foreign_of(live.as_ref(), &self.environment)
                {
                    let what = format!("Secret {}/{}", spec.namespace, spec.name);
                    return Err(crate::objects::not_owned(
                        &address.to_string(),
                        &what,
                        &live,
                    ));
                }
                let state = secrets::state_of_object(spec, live.as_ref())?;
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

    async fn release_change(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        desired: &Desired,
        snapshot: &Snapshot,
    ) -> Result<ResourceChange, LiveError> {
        let helm_err = |e: crate::helm::HelmError| LiveError::from(e).at(address);
        // A local chart's version is its Chart.yaml's: a new version of the chart in the same
        // (or another) directory shows as a chart change, like a repository chart's.
        let desired = &local_chart_version(&spec.chart)
            .filter(|_| spec.chart.version.is_empty())
            .map(|version| {
                let mut desired = desired.clone();
                desired.doc["chart"]["version"] = Value::String(version);
                desired
            })
            .unwrap_or_else(|| desired.clone());
        let desired_values = desired.doc.get("values").cloned().unwrap_or_default();
        // The release's sensitive values, scrubbed from the objects shown.
        let secrets = engine::sensitive_strings(&desired.doc, &desired.sensitivity);
        let caps = self.capabilities().await?;
        // Helm's own storage, read with the kube client (one list for every release of the
        // plan): no helm process.
        let storage = snapshot
            .helm_storage(&spec.release, &spec.namespace)
            .await?;
        let Some(stored) =
            crate::helm_storage::latest_release(&storage, &spec.release, &spec.namespace)?
        else {
            // An install: list the objects it creates (once every value is known).
            let change = ResourceChange::from_desired(Action::Create, None, desired);
            if !desired.unknown.is_empty() {
                return Ok(change.with_note(
                    "its objects are listed once the values known only after apply are known",
                ));
            }
            let chart_ref = ChartRef::from_source(&spec.chart, Path::new(""))
                .ok_or_else(|| LiveError::config(address, "no chart source"))?;
            let rendered = self
                .render_release(
                    address,
                    spec,
                    &caps,
                    &chart_ref,
                    &desired_values,
                    crate::helm::Render::Install,
                )
                .await?;
            let changes = crate::helm::install_changes(&rendered, &secrets);
            return Ok(change.with_objects(changes.objects));
        };
        let status = stored.status.clone();
        let deployed = stored.values.clone();
        let mut chart = spec.chart.clone();
        chart.version = status.chart_version.clone();
        let before = engine::helm_release_document(
            &spec.release,
            &spec.namespace,
            spec.create_namespace,
            &chart,
            deployed.clone(),
        );
        let mut notes = Vec::new();
        if !status.is_deployed() {
            match self
                .helm(address)?
                .pending(&spec.release, &spec.namespace)
                .await
                .map_err(helm_err)?
            {
                Some(pending) => notes.push(pending.to_string()),
                None => notes.push(format!(
                    "the last revision ({}) is `{}`",
                    status.revision, status.status
                )),
            }
        }
        // What the deployed revision made (its manifest), compared with the live objects:
        // edits and deletions out of band that Helm itself never sees. The manifest, not a
        // new render: a changed chart or chart version must not read as drift.
        let chart_ref = ChartRef::from_source(&spec.chart, Path::new(""))
            .ok_or_else(|| LiveError::config(address, "no chart source"))?;
        // Unchanged since verified (same revision, values, chart, capabilities, and every
        // object at its recorded resourceVersion): no dry run.
        let verified = status.is_deployed()
            && before == desired.doc
            && desired.unknown.is_empty()
            && self
                .still_verified(&stored, &chart_ref, &caps, snapshot)
                .await?;
        // The deployed manifest parsed only when it is used (istio-base's holds its CRDs: a
        // steady-state plan of a verified release does not read it).
        let mut deployed_objects: Option<Vec<Value>> = None;
        let drift = if verified {
            crate::helm::ReleaseDrift::default()
        } else {
            let objects = deployed_objects.insert(self.deployed_objects(address, spec, &stored)?);
            crate::helm::objects_drift(&self.cluster, objects).await?
        };
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
        // What the upgrade does to the cluster, object by object: the new chart and values
        // rendered, each object's patch sent as a dry run.
        if change.action == Action::Update && desired.unknown.is_empty() {
            let rendered = self
                .render_release(
                    address,
                    spec,
                    &caps,
                    &chart_ref,
                    &desired_values,
                    crate::helm::Render::Upgrade,
                )
                .await?;
            let deployed = match deployed_objects.take() {
                Some(objects) => objects,
                None => self.deployed_objects(address, spec, &stored)?,
            };
            let changes =
                crate::helm::upgrade_changes(&self.cluster, &deployed, &rendered, &secrets).await?;
            for skipped in changes.skipped {
                notes.push(format!("object not compared: {skipped}"));
            }
            change = change.with_objects(changes.objects);
        }
        for note in notes {
            change = change.with_note(note);
        }
        Ok(change)
    }
}

impl Runner<'_> {
    /// Whether the release's record (see [`crate::helm_storage`]) still holds: recorded for
    /// this revision, the same chart and capabilities, every object at its resourceVersion.
    /// The objects are read from `snapshot` (the plan's; after an apply, one made then).
    async fn still_verified(
        &self,
        stored: &crate::helm_storage::StoredRelease,
        chart: &ChartRef,
        caps: &crate::helm::Capabilities,
        snapshot: &Snapshot,
    ) -> Result<bool, LiveError> {
        let Some(record) = &stored.record else {
            return Ok(false);
        };
        if record.revision != stored.status.revision
            || record.chart != crate::helm_storage::chart_digest(chart)?
            || record.capabilities != crate::helm_storage::capabilities_digest(caps)
        {
            return Ok(false);
        }
        crate::helm_storage::unchanged_since(&self.cluster, record, snapshot).await
    }

    /// The objects of a release's deployed revision (its stored manifest, hooks excluded),
    /// with namespaces filled in.
    fn deployed_objects(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        stored: &crate::helm_storage::StoredRelease,
    ) -> Result<Vec<Value>, LiveError> {
        let mut objects = crate::helm::parse_manifest(&stored.manifest).map_err(|problem| {
            LiveError::Unreadable {
                what: format!("{address}: the deployed manifest"),
                problem,
            }
        })?;
        crate::helm::fill_namespaces(&mut objects, &spec.namespace, Some(&self.cluster));
        objects.retain(|o| !crate::helm::is_hook(o));
        Ok(objects)
    }

    /// The release's chart rendered with `values` against this run's capabilities, as an
    /// install or as an upgrade of what is deployed.
    async fn render_release(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        caps: &crate::helm::Capabilities,
        chart: &ChartRef,
        values: &Value,
        mode: crate::helm::Render,
    ) -> Result<Vec<Value>, LiveError> {
        self.helm(address)?
            .template_with(
                Some(caps),
                Some(&self.cluster),
                &spec.release,
                &spec.namespace,
                chart,
                values,
                mode,
            )
            .await
            .map_err(|e| LiveError::from(e).at(address))
    }

    /// After an apply: every selected deployed release without a valid record is verified
    /// in full (each object of its deployed manifest dry-run against the live one);
    /// when nothing drifts, the resourceVersions read BEFORE the check are recorded on its
    /// storage Secret (a write after them changes them, so the record never hides it). A
    /// release whose record still holds costs no write. `checked`: releases whose objects
    /// apply already checked while the other changes ran ([`Self::check_release_objects`]),
    /// recorded here without a second check when their revision is still the one checked.
    pub(super) async fn record_verified_releases(
        &self,
        checked: &BTreeMap<Address, CheckedRelease>,
    ) -> Result<(), LiveError> {
        let releases: Vec<(&Address, &engine::HelmReleaseSpec)> = self
            .graph
            .order()
            .iter()
            .filter(|a| self.selected(a))
            .filter_map(|a| match &self.graph.resource(a)?.spec {
                ResourceSpec::HelmRelease(spec) => Some((a, spec)),
                _ => None,
            })
            .collect();
        if releases.is_empty() {
            return Ok(());
        }
        // The charts may have installed CRDs: the capabilities as the cluster serves them now.
        self.cluster.refresh_discovery().await?;
        let caps = self.capabilities().await?;
        // Whether a record still holds is read from one snapshot, made now (after every
        // write of the apply) and shared by the releases.
        let snapshot = self.snapshot();
        // Releases are verified concurrently: after an apply from empty each is rendered and
        // dry-run in full, which would otherwise add up at the end of the run.
        let results: Vec<Result<(), LiveError>> = futures::stream::iter(releases)
            .map(|(address, spec)| {
                self.record_verified_release(address, spec, &caps, checked.get(address), &snapshot)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// [`Self::record_verified_releases`] for one release.
    async fn record_verified_release(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        caps: &crate::helm::Capabilities,
        checked: Option<&CheckedRelease>,
        snapshot: &Snapshot,
    ) -> Result<(), LiveError> {
        let Some(chart) = ChartRef::from_source(&spec.chart, Path::new("")) else {
            return Ok(());
        };
        let Some(stored) =
            crate::helm_storage::read_release(&self.cluster, &spec.release, &spec.namespace)
                .await?
        else {
            return Ok(());
        };
        let objects = match checked {
            Some(c) if c.secret == stored.secret && c.revision == stored.status.revision => {
                c.objects.clone()
            }
            _ => {
                if !stored.status.is_deployed()
                    || self.still_verified(&stored, &chart, caps, snapshot).await?
                {
                    return Ok(());
                }
                match self.verified_objects(address, spec, &stored).await? {
                    Some(objects) => objects,
                    None => return Ok(()),
                }
            }
        };
        let record = crate::helm_storage::VerifiedRecord {
            revision: stored.status.revision,
            chart: crate::helm_storage::chart_digest(&chart)?,
            capabilities: crate::helm_storage::capabilities_digest(caps),
            objects,
        };
        crate::helm_storage::write_record(&self.cluster, &spec.namespace, &stored.secret, &record)
            .await?;
        Ok(())
    }

    /// The check of [`Self::record_verified_releases`] for a release apply has just installed
    /// or upgraded, made while the other changes run: its deployed objects' resourceVersions
    /// (read first) when none of them drifts; `None` when it cannot be recorded (not deployed,
    /// an object missing or drifting).
    pub(super) async fn check_release_objects(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
    ) -> Result<Option<CheckedRelease>, LiveError> {
        let Some(stored) =
            crate::helm_storage::read_release(&self.cluster, &spec.release, &spec.namespace)
                .await?
        else {
            return Ok(None);
        };
        if !stored.status.is_deployed() {
            return Ok(None);
        }
        Ok(self
            .verified_objects(address, spec, &stored)
            .await?
            .map(|objects| CheckedRelease {
                secret: stored.secret.clone(),
                revision: stored.status.revision,
                objects,
            }))
    }

    /// The resourceVersions of a deployed revision's objects, read before each is dry-run
    /// against the live one; `None` when one is missing or drifts.
    async fn verified_objects(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        stored: &crate::helm_storage::StoredRelease,
    ) -> Result<Option<Vec<crate::helm_storage::RecordedObject>>, LiveError> {
        let objects = self.deployed_objects(address, spec, stored)?;
        let Some(versions) = crate::helm_storage::live_versions(&self.cluster, &objects).await?
        else {
            return Ok(None);
        };
        let drift = crate::helm::objects_drift(&self.cluster, &objects).await?;
        if !drift.is_empty() {
            return Ok(None);
        }
        // Each object's content as verified in sync: a later write of its status alone (no
        // generation tells that apart for every type) leaves the record valid.
        let versions = versions
            .into_iter()
            .map(|mut o| {
                let identity = (
                    o.api_version.clone(),
                    o.kind.clone(),
                    o.namespace.clone(),
                    o.name.clone(),
                );
                o.content = drift.in_sync.get(&identity).cloned();
                o
            })
            .collect();
        Ok(Some(versions))
    }
}

/// A release whose objects apply checked right after installing it: the revision (and its
/// storage Secret) checked, and its objects' resourceVersions.
#[derive(Debug, Clone)]
pub(super) struct CheckedRelease {
    secret: String,
    revision: u64,
    objects: Vec<crate::helm_storage::RecordedObject>,
}

/// The `version` of a local chart's `Chart.yaml`; `None` for repository charts or when it
/// cannot be read (helm reports that itself when it renders the chart).
fn local_chart_version(chart: &engine::ChartSource) -> Option<String> {
    let path = Path::new(chart.path.as_deref()?).join("Chart.yaml");
    let text = std::fs::read_to_string(path).ok()?;
    let meta: Value = serde_saphyr::from_str(&text).ok()?;
    match meta.get("version")? {
        Value::String(v) => Some(v.clone()),
        other => Some(other.to_string()),
    }
}
