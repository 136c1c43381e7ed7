//! Applying a plan in graph order, resolving outputs as their producers complete, and
//! waiting for what the next step needs.

use super::*;
use crate::retry::{again, helm_again};

impl Runner<'_> {
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
                            self.delete_object(address, &desired.doc)
                                .await
                                .map_err(|e| again(address, e))?;
                        }
                        self.apply_object(address, &desired, spec.ownership)
                            .await
                            .map_err(|e| again(address, e))?;
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
            self.delete_object(&change.address, &before)
                .await
                .map_err(|e| again(&change.address, e))?;
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
}
