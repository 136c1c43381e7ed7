//! Destroying what an environment owns, in reverse order.

use super::*;

impl Runner<'_> {
    /// The plan that destroys what this environment owns, in reverse apply order: owned
    /// objects no longer declared first, then each declared resource. Objects this project
    /// only patches lose its fields and stay.
    pub async fn plan_destroy(&self) -> Result<Plan, LiveError> {
        let bindings = self.bindings().await?;
        let mut plan = Plan::new(&self.environment);
        let mut owned = self.owned_objects(&self.snapshot()).await?;
        let undeclared: Vec<Address> = owned
            .keys()
            .filter(|a| {
                self.selected(a)
                    && a.kind == ResourceKind::Object
                    && self.graph.resource(a).is_none()
            })
            .cloned()
            .collect();
        for address in undeclared.into_iter().rev() {
            let live = owned.remove(&address).expect("listed");
            plan.changes.push(
                ResourceChange::new(
                    address,
                    Action::Delete,
                    Some(fields::strip_noise(&live)),
                    None,
                    Default::default(),
                )
                .with_note("no longer in the configuration"),
            );
        }
        for address in self.graph.reverse_order() {
            if !self.selected(&address) {
                continue;
            }
            let resource = self.graph.resource(&address).expect("graph resource");
            let desired = self.desired(&address, &bindings)?;
            let change = match &resource.spec {
                // Only what this environment owns; an unowned namesake stays untouched.
                ResourceSpec::Object(spec) if spec.ownership == Ownership::Owned => {
                    owned.remove(&address).map(|live| {
                        ResourceChange::new(
                            address.clone(),
                            Action::Delete,
                            Some(fields::strip_noise(&live)),
                            None,
                            desired.sensitivity.clone(),
                        )
                    })
                }
                ResourceSpec::Object(_) => self.release_patched_fields(&address, &desired).await?,
                ResourceSpec::Cluster(_) => None,
                ResourceSpec::HelmRelease(spec) => {
                    self.uninstall_change(&address, spec, &desired).await?
                }
                ResourceSpec::GeneratedSecret(spec) => {
                    self.secret_delete(&address, spec, &desired).await?
                }
            };
            plan.changes.extend(change);
        }
        Ok(plan)
    }

    /// Every object this environment owns, by address, found with one list per type (of the
    /// configuration and of the inventory), not one request per object.
    async fn owned_objects(
        &self,
        snapshot: &Snapshot,
    ) -> Result<BTreeMap<Address, Value>, LiveError> {
        let mut types: BTreeSet<(String, String)> =
            self.read_inventory(snapshot).await?.into_iter().collect();
        for resource in self.graph.resources() {
            if let ResourceSpec::Object(spec) = &resource.spec {
                let (v, k) = type_of(&spec.manifest);
                types.insert((v.to_owned(), k.to_owned()));
            }
        }
        let types: Vec<(String, String)> = types.into_iter().collect();
        let owned = objects::gather(
            &self.cluster,
            &self.environment,
            &[],
            &PlannedCreations::default(),
            &types,
            self.options.concurrency,
            snapshot,
        )
        .await?
        .orphans;
        Ok(owned
            .into_iter()
            .filter_map(|o| {
                let address = annotation(&o, objects::ADDRESS_ANNOTATION)?.parse().ok()?;
                Some((address, o))
            })
            .collect())
    }

    /// An object this project only patches: its fields removed, when any are there.
    async fn release_patched_fields(
        &self,
        address: &Address,
        desired: &Desired,
    ) -> Result<Option<ResourceChange>, LiveError> {
        let (api_version, kind) = type_of(&desired.doc);
        let Some(ty) = self.cluster.resolve(api_version, kind) else {
            return Ok(None);
        };
        let (namespace, name) = identity(&desired.doc);
        let Some(live) = self
            .cluster
            .get(&ty, namespace.as_deref(), &name)
            .await
            .map_err(|e| e.at(address))?
        else {
            return Ok(None);
        };
        let before = fields::strip_noise(&live);
        let mut after = before.clone();
        remove_fields(&mut after, &desired.doc);
        if after == before {
            return Ok(None); // none of envctl's fields are there
        }
        Ok(Some(
            ResourceChange::new(
                address.clone(),
                Action::Update,
                Some(before),
                Some(after),
                desired.sensitivity.clone(),
            )
            .with_note("not owned by envctl: only its fields are removed"),
        ))
    }

    /// A release that exists: `helm uninstall`, saying what the chart keeps.
    async fn uninstall_change(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
        desired: &Desired,
    ) -> Result<Option<ResourceChange>, LiveError> {
        let status = self
            .helm(address)?
            .status(&spec.release, &spec.namespace)
            .await
            .map_err(|e| LiveError::from(e).at(address))?;
        let Some(status) = status else {
            return Ok(None);
        };
        let kept = self.kept_by_uninstall(address, spec).await?;
        let before = engine::helm_release_document(
            &spec.release,
            &spec.namespace,
            spec.create_namespace,
            &spec.chart,
            Value::Null,
        );
        let mut change = ResourceChange::new(
            address.clone(),
            Action::Delete,
            Some(before),
            None,
            desired.sensitivity.clone(),
        )
        .with_note(format!("helm uninstall of revision {}", status.revision));
        if !kept.is_empty() {
            change = change.with_note(format!(
                "kept by helm uninstall, as the chart asks \
                 (helm.sh/resource-policy: keep): {}; delete them yourself \
                 (kubectl delete) if nothing else uses them",
                kept.join(", ")
            ));
        }
        Ok(Some(change))
    }

    /// A generated Secret that exists and is envctl's: deleted. Someone else's Secret of that
    /// name is not envctl's to delete. Absent (also: its namespace is gone) is nothing to
    /// delete; any other failure to read it stops the plan, naming it.
    async fn secret_delete(
        &self,
        address: &Address,
        spec: &engine::GeneratedSecretSpec,
        desired: &Desired,
    ) -> Result<Option<ResourceChange>, LiveError> {
        let foreign = secrets::foreign(&self.cluster, spec, &self.environment)
            .await
            .map_err(|e| e.at(address))?
            .is_some();
        if foreign {
            return Ok(None);
        }
        let state = match secrets::secret_state(&self.cluster, spec).await {
            Err(e) if e.is_not_found() => SecretState::Absent,
            other => other.map_err(|e| e.at(address))?,
        };
        Ok((state != SecretState::Absent).then(|| {
            ResourceChange::new(
                address.clone(),
                Action::Delete,
                Some(desired.doc.clone()),
                None,
                desired.sensitivity.clone(),
            )
        }))
    }

    /// The objects of a release that `helm uninstall` leaves in place because the chart marks
    /// them `helm.sh/resource-policy: keep` (Istio's base chart: its CRDs, whose deletion would
    /// delete every Istio resource of the cluster, whoever made it), as `<kind>/<name>`.
    async fn kept_by_uninstall(
        &self,
        address: &Address,
        spec: &engine::HelmReleaseSpec,
    ) -> Result<Vec<String>, LiveError> {
        let manifest = self
            .helm(address)?
            .deployed_manifest(&spec.release, &spec.namespace)
            .await
            .map_err(|e| LiveError::from(e).at(address))?
            .unwrap_or_default();
        Ok(manifest
            .iter()
            .filter(|o| annotation(o, "helm.sh/resource-policy").as_deref() == Some("keep"))
            .map(crate::helm::object_id)
            .collect())
    }

    /// Executes a destroy plan, waiting until each deleted object is gone. Destroying the
    /// whole environment also removes its inventory.
    pub async fn destroy(&self, plan: &Plan) -> Result<ApplyReport, LiveError> {
        let report = self.destroy_changes(plan).await?;
        if !report.interrupted
            && self.options.modules.is_none()
            && let Some(ty) = self.cluster.resolve("v1", "ConfigMap")
        {
            self.cluster
                .delete(&ty, Some(INVENTORY_NAMESPACE), &self.inventory_name())
                .await?;
        }
        Ok(report)
    }

    async fn destroy_changes(&self, plan: &Plan) -> Result<ApplyReport, LiveError> {
        let mut report = ApplyReport {
            total: plan
                .changes
                .iter()
                .filter(|c| c.action != Action::NoOp)
                .count(),
            ..ApplyReport::default()
        };
        for change in &plan.changes {
            let address = &change.address;
            if change.action != Action::NoOp && self.options.interrupt.requested() {
                report.interrupted = true;
                return Ok(report);
            }
            let start = Instant::now();
            match change.action {
                Action::Delete => {
                    self.progress(Progress::Started {
                        address: address.to_string(),
                        step: Step::Destroy,
                    });
                    let before = change.before.clone().unwrap_or_default();
                    match address.kind {
                        ResourceKind::HelmRelease => {
                            let release = text(&before, "/release");
                            let namespace = text(&before, "/namespace");
                            self.helm(address)?
                                .uninstall(release, namespace, Some(self.options.wait.timeout))
                                .await
                                .map_err(|e| LiveError::from(e).at(address))?;
                        }
                        _ => self
                            .delete_object(address, &before)
                            .await
                            .map_err(|e| e.at(address))?,
                    }
                    report.deleted += 1;
                    self.progress(Progress::Done {
                        address: address.to_string(),
                        step: Step::Destroy,
                        elapsed: start.elapsed(),
                    });
                }
                Action::Update => {
                    self.progress(Progress::Started {
                        address: address.to_string(),
                        step: Step::RemoveFields,
                    });
                    let manifest =
                        objects::release_fields(change.before.as_ref().unwrap_or(&Value::Null));
                    let (api_version, kind) = type_of(&manifest);
                    if let Some(ty) = self.cluster.resolve(api_version, kind) {
                        self.cluster
                            .apply(&ty, &manifest, false, false)
                            .await
                            .map_err(|e| e.at(address))?;
                    }
                    report.updated += 1;
                    self.progress(Progress::Done {
                        address: address.to_string(),
                        step: Step::RemoveFields,
                        elapsed: start.elapsed(),
                    });
                }
                _ => {}
            }
        }
        Ok(report)
    }
}
