//! Applying a plan in graph order, resolving outputs as their producers complete, and
//! waiting for what the next step needs.

use super::*;
use crate::retry::{again, helm_again};
use futures::FutureExt;

impl Runner<'_> {
    /// Applies `plan` along the graph: a change starts as soon as every change it depends on
    /// (directly, or through resources the plan leaves alone) is applied and ready, at most
    /// [`RunOptions::parallelism`] at once; of the ready ones, the one heading the costliest
    /// chain of changes still to come first ([`schedule`]). A document is resolved when its change starts, with
    /// every output known by then (its producers are among what it depends on), so values
    /// "known after apply" are filled in. A failure stops new starts; the changes in flight
    /// finish, and every failure is reported; once the API server is found unreachable, the
    /// object changes in flight are cancelled instead (Helm releases still finish). Deletions
    /// (prunes) come last, one at a time.
    pub async fn apply(&self, plan: &Plan) -> Result<ApplyReport, LiveError> {
        let mut report = ApplyReport {
            total: plan
                .changes
                .iter()
                .filter(|c| c.action != Action::NoOp)
                .count(),
            ..ApplyReport::default()
        };
        if report.total == 0 {
            self.record_verified_releases(&BTreeMap::new()).await?;
            return Ok(report);
        }
        // Write-ahead: every type this run may create is recorded before the first object.
        self.write_inventory().await?;
        let mut bindings = self.bindings().await?;
        let deletes: Vec<&ResourceChange> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .collect();
        let changes: Vec<&ResourceChange> = plan
            .changes
            .iter()
            .filter(|c| !matches!(c.action, Action::Delete | Action::NoOp))
            .collect();
        let pending: BTreeSet<Address> = changes.iter().map(|c| c.address.clone()).collect();
        let mut waiting: Vec<(&ResourceChange, BTreeSet<Address>)> = changes
            .iter()
            .map(|c| (*c, self.changed_dependencies(c, &pending)))
            .collect();
        let priority = schedule::priorities(
            &waiting
                .iter()
                .map(|(c, deps)| (c.address.clone(), deps.clone()))
                .collect(),
            schedule::cost,
        );
        let mut done: BTreeSet<Address> = BTreeSet::new();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut failures: Vec<LiveError> = Vec::new();
        let parallelism = self.options.parallelism.max(1);
        // Once a change finds the API server unreachable, the other object changes in flight
        // are cancelled rather than each running out its own retries and wait (a Helm
        // release in flight is left to finish: its helm process would outlive the run).
        let (cancel, cancelled) = tokio::sync::watch::channel(false);
        // A release just installed has its objects checked for the record of
        // `record_verified_releases` while the other changes run, rather than all at the end
        // (a check that fails is left to be made there again).
        let mut checking = futures::stream::FuturesUnordered::new();
        let mut checked = BTreeMap::new();
        loop {
            // Start what is ready, in plan order, while there is room, nothing failed and no
            // signal asked to stop (the changes in flight finish either way).
            if self.options.interrupt.requested() {
                report.interrupted = true;
            }
            while failures.is_empty() && !report.interrupted && in_flight.len() < parallelism {
                let Some(i) = schedule::next_ready(&waiting, |c| &c.address, &done, &priority)
                else {
                    break;
                };
                let (change, _) = waiting.remove(i);
                match self.start_change(change, &bindings) {
                    Ok((resource, desired)) => {
                        // Said when it is started, not when its future is first polled: the
                        // lines then show the order of the decisions (a change started before a
                        // failure came in is seen to be).
                        self.progress(Progress::Started {
                            address: change.address.to_string(),
                            step: step_of(change),
                        });
                        let cancellable = !matches!(resource.spec, ResourceSpec::HelmRelease(_));
                        let work = self.apply_change(change, resource, desired);
                        let mut cancelled = cancelled.clone();
                        let start = Instant::now();
                        in_flight.push(async move {
                            if !cancellable {
                                return work.await;
                            }
                            tokio::select! {
                                done = work => done,
                                _ = cancelled.wait_for(|c| *c) => {
                                    self.progress(Progress::Cancelled {
                                        address: change.address.to_string(),
                                        elapsed: start.elapsed(),
                                    });
                                    (change, Err(LiveError::Cancelled { address: change.address.to_string() }))
                                }
                            }
                        });
                    }
                    Err(e) => failures.push(e.at(&change.address)),
                }
            }
            let first = tokio::select! {
                next = in_flight.next() => match next {
                    Some(next) => next,
                    None => break,
                },
                Some((address, check)) = checking.next(), if !checking.is_empty() => {
                    if let Ok(Some(release)) = check {
                        checked.insert(address, release);
                    }
                    continue;
                }
            };
            // Every change that has ended by now is taken in before anything new starts, so a
            // failure that came in together with a success stops the next start.
            let mut ended = vec![first];
            while let Some(Some(next)) = in_flight.next().now_or_never() {
                ended.push(next);
            }
            for (change, result) in ended {
                match result {
                    Ok(outputs) => {
                        if let Some(ResourceSpec::HelmRelease(spec)) =
                            self.graph.resource(&change.address).map(|r| &r.spec)
                        {
                            let address = change.address.clone();
                            checking.push(async move {
                                let check = self.check_release_objects(&address, spec).await;
                                (address, check)
                            });
                        }
                        match change.action {
                            Action::Create => report.created += 1,
                            Action::Replace { .. } => report.replaced += 1,
                            _ => report.updated += 1,
                        }
                        bindings.outputs.extend(outputs);
                        done.insert(change.address.clone());
                    }
                    Err(e) => {
                        if found_unreachable(&e) {
                            let _ = cancel.send(true);
                        }
                        failures.push(e.at(&change.address));
                    }
                }
            }
        }
        if !failures.is_empty() {
            let not_started: Vec<String> =
                waiting.iter().map(|(c, _)| c.address.to_string()).collect();
            return Err(LiveError::Failed {
                failures,
                not_started,
            });
        }
        if report.interrupted {
            return Ok(report);
        }
        if !waiting.is_empty() {
            let stuck: Vec<String> = waiting.iter().map(|(c, _)| c.address.to_string()).collect();
            return Err(LiveError::Stuck(stuck));
        }
        for change in deletes {
            if self.options.interrupt.requested() {
                report.interrupted = true;
                return Ok(report);
            }
            let start = Instant::now();
            self.progress(Progress::Started {
                address: change.address.to_string(),
                step: Step::Destroy,
            });
            let before = change.before.clone().unwrap_or_default();
            self.delete_object(&change.address, &before)
                .await
                .map_err(|e| again(&change.address, e))?;
            report.deleted += 1;
            self.progress(Progress::Done {
                address: change.address.to_string(),
                step: Step::Destroy,
                elapsed: start.elapsed(),
            });
        }
        while let Some((address, check)) = checking.next().await {
            if let Ok(Some(release)) = check {
                checked.insert(address, release);
            }
        }
        self.write_inventory().await?;
        self.record_verified_releases(&checked).await?;
        Ok(report)
    }

    /// The changes of this plan that `change` must wait for: every pending address it depends
    /// on, directly or through resources the plan does not change, and those it waits for.
    fn changed_dependencies(
        &self,
        change: &ResourceChange,
        pending: &BTreeSet<Address>,
    ) -> BTreeSet<Address> {
        let mut out: BTreeSet<Address> = change
            .waits_for
            .iter()
            .filter_map(|a| a.parse::<Address>().ok())
            .filter(|a| pending.contains(a) && a != &change.address)
            .collect();
        let mut seen = BTreeSet::new();
        let mut stack = vec![change.address.clone()];
        while let Some(a) = stack.pop() {
            for edge in self.graph.dependencies_of(&a) {
                if seen.insert(edge.from.clone()) {
                    if pending.contains(&edge.from) {
                        out.insert(edge.from.clone());
                    }
                    stack.push(edge.from.clone());
                }
            }
        }
        out
    }

    /// The resource and its document for a change about to start (every output it reads is
    /// known by now).
    fn start_change<'g>(
        &'g self,
        change: &ResourceChange,
        bindings: &Bindings,
    ) -> Result<(&'g engine::Resource, Desired), LiveError> {
        let address = &change.address;
        let resource = self
            .graph
            .resource(address)
            .ok_or_else(|| LiveError::config(address, "not in the configuration"))?;
        let desired = self.desired(address, bindings)?;
        if !desired.unknown.is_empty() {
            let unknown: Vec<String> = desired.unknown.iter().map(ToString::to_string).collect();
            return Err(LiveError::config(
                address,
                format!(
                    "{} still unknown after applying its dependencies",
                    unknown.join(", ")
                ),
            ));
        }
        Ok((resource, desired))
    }

    /// Makes one change (its start was said by the caller), with a progress line when it is
    /// done (and ready) or failed, with its elapsed time; returns the outputs it produces.
    async fn apply_change<'c>(
        &self,
        change: &'c ResourceChange,
        resource: &engine::Resource,
        desired: Desired,
    ) -> (
        &'c ResourceChange,
        Result<Vec<(engine::OutputRef, Value)>, LiveError>,
    ) {
        let address = &change.address;
        let start = Instant::now();
        let step = step_of(change);
        let result = async {
            self.make_change(change, resource, &desired).await?;
            let mut outputs = Vec::new();
            for output in self
                .graph
                .outputs()
                .filter(|o| &o.producer == address && o.value.is_none())
            {
                if let Some(value) = self.read_output(output, None).await? {
                    outputs.push((output.r#ref.clone(), value));
                }
            }
            Ok::<_, LiveError>(outputs)
        }
        .await;
        match &result {
            Ok(_) => self.progress(Progress::Done {
                address: address.to_string(),
                step,
                elapsed: start.elapsed(),
            }),
            Err(e) => {
                // The error names the address itself (LiveError::at): not twice on one line.
                let text = e.to_string();
                let prefix = format!("{address}: ");
                self.progress(Progress::Failed {
                    address: address.to_string(),
                    elapsed: start.elapsed(),
                    error: text.strip_prefix(&prefix).unwrap_or(&text).to_owned(),
                })
            }
        }
        (change, result)
    }

    async fn make_change(
        &self,
        change: &ResourceChange,
        resource: &engine::Resource,
        desired: &Desired,
    ) -> Result<(), LiveError> {
        let address = &change.address;
        match &resource.spec {
            ResourceSpec::Object(spec) => {
                if let Action::Replace { .. } = change.action {
                    self.delete_object(address, &desired.doc)
                        .await
                        .map_err(|e| again(address, e))?;
                }
                self.apply_object(address, desired, spec.ownership)
                    .await
                    .map_err(|e| again(address, e))?;
            }
            ResourceSpec::HelmRelease(spec) => {
                let helm = self.helm(address)?;
                let chart = ChartRef::from_source(&spec.chart, Path::new(""))
                    .ok_or_else(|| LiveError::config(address, "no chart source"))?;
                let values = desired.doc.get("values").cloned().unwrap_or_default();
                // An install: this run's plan, made under the lock it still holds, found no
                // revision of the release at all, so none can be pending (no list on the way).
                if change.action != Action::Create {
                    self.recover_release(address, helm, &spec.release, &spec.namespace)
                        .await?;
                }
                helm.upgrade_install(
                    &spec.release,
                    &spec.namespace,
                    &chart,
                    &values,
                    spec.create_namespace,
                    self.options.wait.timeout,
                )
                .await
                .map_err(|e| helm_again(address, e))?;
            }
            ResourceSpec::GeneratedSecret(spec) => {
                secrets::ensure(&self.cluster, spec, &self.environment, address)
                    .await
                    .map_err(|e| again(address, e))?;
            }
            ResourceSpec::Cluster(spec) => {
                // Creating or replacing the cluster happens before a runner exists (the
                // cluster module); here only its spec is recorded.
                let created = crate::provider::read_record(&self.cluster)
                    .await?
                    .is_some_and(|r| r.created_by_envctl);
                crate::provider::record(&self.cluster, spec, created, &self.environment, address)
                    .await?;
            }
        }
        Ok(())
    }

    /// A release left `pending-*` by a run that died is rolled back (or uninstalled, if it
    /// never deployed) before it is upgraded: helm refuses to upgrade it otherwise. Its
    /// history is read from Helm's storage (one request, no helm process: this is on the
    /// way of every release).
    async fn recover_release(
        &self,
        address: &Address,
        helm: &Helm,
        release: &str,
        namespace: &str,
    ) -> Result<(), LiveError> {
        let helm_err = |e: crate::helm::HelmError| LiveError::from(e).at(address);
        let Some(pending) = crate::helm_storage::pending(&self.cluster, release, namespace)
            .await
            .map_err(|e| e.at(address))?
        else {
            return Ok(());
        };
        self.progress(Progress::Recovering {
            address: address.to_string(),
            pending: pending.clone(),
        });
        helm.recover(release, namespace, &pending, self.options.wait.timeout)
            .await
            .map_err(helm_err)?;
        self.progress(Progress::Recovered {
            address: address.to_string(),
        });
        Ok(())
    }

    /// The type of an object whose CRD was just created (or comes with a chart). An
    /// Established CRD can be missing from discovery for a moment, and with parallel apply a
    /// refresh started earlier by another change can land after ours with an older view: look
    /// again, a bounded number of times, before saying the cluster does not serve it.
    async fn resolve_new_type(
        &self,
        address: &Address,
        api_version: &str,
        kind: &str,
    ) -> Result<crate::cluster::TypeInfo, LiveError> {
        const ATTEMPTS: u32 = 20;
        for attempt in 1..=ATTEMPTS {
            self.cluster.refresh_discovery().await?;
            if let Some(ty) = self.cluster.resolve(api_version, kind) {
                return Ok(ty);
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(std::time::Duration::from_millis(
                    250 * u64::from(attempt.min(4)),
                ))
                .await;
            }
        }
        Err(LiveError::Unserved {
            address: Some(address.to_string()),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            hint: " even after its dependencies were applied",
        })
    }

    async fn apply_object(
        &self,
        address: &Address,
        desired: &Desired,
        ownership: Ownership,
    ) -> Result<(), LiveError> {
        let manifest = self.object_manifest(desired, ownership).await?;
        let (api_version, kind) = type_of(&manifest);
        let ty = match self.cluster.resolve(api_version, kind) {
            Some(ty) => ty,
            None => self.resolve_new_type(address, api_version, kind).await?,
        };
        let force = ownership == Ownership::Owned || self.options.force_conflicts;
        // A conflict names the address, and says how to take the fields over.
        self.cluster
            .apply(&ty, &manifest, false, force)
            .await
            .map_err(|e| e.at(address))?;
        let (namespace, name) = identity(&manifest);
        if let Some(rule) = self.wait_rule(&manifest).await? {
            wait::wait_ready(
                &self.cluster,
                &ty,
                namespace.as_deref(),
                &name,
                &address.to_string(),
                rule,
                self.options.wait,
                self.report,
            )
            .await?;
        }
        if kind == "CustomResourceDefinition" {
            self.cluster.refresh_discovery().await?;
        }
        Ok(())
    }

    /// The readiness rule apply waits for an applied object by (a module's, for the kinds of
    /// its domain, or live's built-in one); `None`: nothing to wait for.
    async fn wait_rule(
        &self,
        manifest: &Value,
    ) -> Result<Option<&'static dyn crate::ReadinessRule>, LiveError> {
        let (api_version, kind) = type_of(manifest);
        let Some(rule) = crate::readiness::rule_for(&self.options.readiness, api_version, kind)
        else {
            return Ok(None);
        };
        Ok(rule
            .wait_for(&self.cluster, manifest)
            .await?
            .then_some(rule))
    }
}

/// What a change does, as its progress lines say it.
fn step_of(change: &ResourceChange) -> Step {
    match change.action {
        Action::Create => Step::Create,
        Action::Replace { .. } => Step::Replace,
        _ => Step::Modify,
    }
}

/// Whether a failed change found the API server unreachable (what a later run can get past):
/// the other changes in flight are then cancelled.
fn found_unreachable(error: &LiveError) -> bool {
    match error {
        LiveError::RunAgain { .. } => true,
        LiveError::Timeout { unreachable, .. } => *unreachable,
        other => crate::retry::is_transient(other),
    }
}
