//! Plans: what apply would change, resource by resource.
//!
//! A [`Plan`] holds one [`ResourceChange`] per resource, in the order apply (or destroy) will
//! process them. Changes never hold secret material: [`ResourceChange::new`] redacts `before`
//! and `after` (see [`mod@crate::redact`]) after noting which sensitive values changed.
//!
//! Text rendering is in [`Plan::render_text`]; the JSON form ([`Plan::to_json`]) is documented
//! in `crates/engine/PLAN_JSON.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::address::Address;
use crate::desired::Desired;
use crate::graph::{DesiredError, Graph};
use crate::redact::{Sensitivity, redact_owned, redact_with, sensitive_changes};
use crate::release::ObjectChange;
use crate::values::{Bindings, OutputRef};

/// The version of the plan JSON schema ([`Plan::to_json`]).
pub const PLAN_FORMAT_VERSION: &str = "1";

/// What apply will do to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create it.
    Create,
    /// Change it in place.
    Update,
    /// Delete it.
    Delete,
    /// Delete it and create it again.
    Replace {
        /// Why an in-place update is not possible (e.g. "the node image changed").
        reason: String,
    },
    /// Nothing to do.
    NoOp,
}

impl Action {
    /// The name used in plan JSON: `create`, `update`, `delete`, `replace`, `no-op`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Replace { .. } => "replace",
            Action::NoOp => "no-op",
        }
    }

    /// The reason of a replace.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Action::Replace { reason } => Some(reason),
            _ => None,
        }
    }
}

/// A field of a live object that someone other than envctl changed, from `managedFields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDrift {
    /// The field, as a [`crate::FieldPath`] (`spec.replicas`).
    pub path: String,
    /// The field manager that last wrote it (`kubectl-edit`).
    pub manager: Option<String>,
    /// Its operation (`Update` or `Apply`).
    pub operation: Option<String>,
    /// When (RFC 3339).
    pub time: Option<String>,
}

impl fmt::Display for FieldDrift {
    /// `field spec.replicas: last written by kubectl-edit (Update, 2026-11-28T12:00:00Z)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: ", self.path)?;
        match &self.manager {
            Some(manager) => write!(f, "last written by {manager}")?,
            None => f.write_str("changed outside envctl")?,
        }
        let details: Vec<&str> = [&self.operation, &self.time]
            .into_iter()
            .filter_map(|d| d.as_deref())
            .collect();
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        Ok(())
    }
}

/// The planned change of one resource. `before` and `after` are redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceChange {
    /// Which resource.
    pub address: Address,
    /// What will happen.
    pub action: Action,
    /// The live document (redacted); `None` if it does not exist.
    pub before: Option<Value>,
    /// The desired document (redacted); `None` for a delete.
    pub after: Option<Value>,
    /// Outputs in `after` that are known only after apply.
    pub unknown: Vec<OutputRef>,
    /// What apply waits for first, e.g. `customresourcedefinition/httproutes.gateway.networking.k8s.io`.
    pub waits_for: Vec<String>,
    /// Fields changed outside envctl.
    pub drift: Vec<FieldDrift>,
    /// Anything else the reader should know.
    pub notes: Vec<String>,
    /// What of `before`/`after` is sensitive.
    pub sensitivity: Sensitivity,
    /// Sensitive fields whose value changes (compared by hash; shown as `~ path: (sensitive value)`).
    pub sensitive_changes: Vec<String>,
    /// For a Helm release that will be installed or upgraded: what that does to each of its
    /// objects (only the objects that change). `None` when not computed (other kinds, offline
    /// plans, values known only after apply); `Some(empty)` when nothing rendered changes.
    pub objects: Option<Vec<ObjectChange>>,
}

impl ResourceChange {
    /// A change from real documents: notes which sensitive values differ, then redacts both.
    pub fn new(
        address: Address,
        action: Action,
        before: Option<Value>,
        after: Option<Value>,
        sensitivity: Sensitivity,
    ) -> ResourceChange {
        let sensitive_changes = match (&before, &after) {
            (Some(b), Some(a)) => sensitive_changes(b, a, &sensitivity),
            _ => Vec::new(),
        };
        ResourceChange {
            address,
            action,
            before: before.map(|b| redact_owned(b, &sensitivity)),
            after: after.map(|a| redact_owned(a, &sensitivity)),
            unknown: Vec::new(),
            waits_for: Vec::new(),
            drift: Vec::new(),
            notes: Vec::new(),
            sensitivity,
            sensitive_changes,
            objects: None,
        }
    }

    /// A change towards a desired document (anything but a delete).
    pub fn from_desired(
        action: Action,
        before: Option<Value>,
        desired: &Desired,
    ) -> ResourceChange {
        let mut change = ResourceChange::new(
            desired.address.clone(),
            action,
            before,
            Some(desired.doc.clone()),
            desired.sensitivity.clone(),
        );
        change.unknown = desired.unknown.clone();
        change
    }

    /// Adds what apply waits for (builder style).
    pub fn with_waits_for(mut self, waits_for: impl IntoIterator<Item = String>) -> Self {
        self.waits_for.extend(waits_for);
        self
    }

    /// Adds a drifted field (builder style).
    pub fn with_drift(mut self, drift: FieldDrift) -> Self {
        self.drift.push(drift);
        self
    }

    /// Sets what an install or upgrade of a release does to its objects (builder style).
    pub fn with_objects(mut self, objects: Vec<ObjectChange>) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Adds a note (builder style).
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// Counts of a plan, like Terraform's: a replace is one add and one destroy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Creates and replaces.
    pub add: usize,
    /// In-place updates.
    pub change: usize,
    /// Deletes and replaces.
    pub destroy: usize,
}

impl fmt::Display for Summary {
    /// `Plan: 1 to add, 0 to change, 0 to destroy.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Plan: {} to add, {} to change, {} to destroy.",
            self.add, self.change, self.destroy
        )
    }
}

/// What apply would do to an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The environment's name.
    pub environment: String,
    /// One change per resource, in the order they will be processed.
    pub changes: Vec<ResourceChange>,
    /// The sha256 ([`crate::canonical_hash`]) of each live document the plan was computed
    /// from, so that applying a saved plan can refuse when the cluster changed since.
    pub fingerprints: BTreeMap<Address, String>,
}

impl Plan {
    /// An empty plan.
    pub fn new(environment: impl Into<String>) -> Plan {
        Plan {
            environment: environment.into(),
            changes: Vec::new(),
            fingerprints: BTreeMap::new(),
        }
    }

    /// The plan against an empty cluster: every resource created, in apply order.
    pub fn offline(
        graph: &Graph,
        environment: &str,
        bindings: &Bindings,
    ) -> Result<Plan, DesiredError> {
        let mut plan = Plan::new(environment);
        for address in graph.order() {
            let desired = graph.desired(address, bindings, environment)?;
            plan.changes.push(
                ResourceChange::from_desired(Action::Create, None, &desired)
                    .with_waits_for(graph.waits_for(address)),
            );
        }
        Ok(plan)
    }

    /// The counts of the plan.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Create => summary.add += 1,
                Action::Update => summary.change += 1,
                Action::Delete => summary.destroy += 1,
                Action::Replace { .. } => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
                Action::NoOp => {}
            }
        }
        summary
    }

    /// True if apply would change anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    /// The plan as JSON (schema `format_version` [`PLAN_FORMAT_VERSION`], see
    /// `crates/engine/PLAN_JSON.md`). Redacted like the text.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(PlanJson::from(self)).unwrap_or(Value::Null)
    }

    /// Reads a plan written by [`Plan::to_json`] (e.g. a saved plan to apply).
    pub fn from_json(json: &Value) -> Result<Plan, PlanJsonError> {
        let parsed =
            PlanJson::deserialize(json).map_err(|e| PlanJsonError::Schema(e.to_string()))?;
        if parsed.format_version != PLAN_FORMAT_VERSION {
            return Err(PlanJsonError::Version(parsed.format_version));
        }
        let changes = parsed
            .resource_changes
            .into_iter()
            .map(ChangeJson::into_change)
            .collect::<Result<_, _>>()?;
        Ok(Plan {
            environment: parsed.environment,
            changes,
            fingerprints: parsed.fingerprints,
        })
    }
}

/// A plan JSON document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanJsonError {
    /// Written by another version of envctl.
    #[error(
        "the plan has format_version {0:?}, this envctl reads \"1\"; run `plan` again with this version"
    )]
    Version(String),
    /// Not a plan.
    #[error("not an envctl plan ({0}); pass a file written by `plan --json`")]
    Schema(String),
    /// A change names an action this version does not know, or a replace without a reason.
    #[error(
        "resource change `{address}`: unknown action `{action}`; run `plan` again with this version"
    )]
    Action {
        /// The change's address.
        address: String,
        /// The action.
        action: String,
    },
}

#[derive(Serialize, Deserialize)]
struct PlanJson {
    format_version: String,
    environment: String,
    resource_changes: Vec<ChangeJson>,
    summary: Summary,
    #[serde(default)]
    fingerprints: BTreeMap<Address, String>,
}

#[derive(Serialize, Deserialize)]
struct ChangeJson {
    address: Address,
    module: String,
    kind: String,
    action: String,
    reason: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    #[serde(default)]
    unknown: Vec<OutputRef>,
    #[serde(default)]
    waits_for: Vec<String>,
    #[serde(default)]
    drift: Vec<FieldDrift>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    sensitive_changes: Vec<String>,
    #[serde(default)]
    object_changes: Option<Vec<ObjectChange>>,
}

impl From<&Plan> for PlanJson {
    fn from(plan: &Plan) -> PlanJson {
        PlanJson {
            format_version: PLAN_FORMAT_VERSION.to_owned(),
            environment: plan.environment.clone(),
            resource_changes: plan.changes.iter().map(ChangeJson::from).collect(),
            summary: plan.summary(),
            fingerprints: plan.fingerprints.clone(),
        }
    }
}

impl From<&ResourceChange> for ChangeJson {
    fn from(change: &ResourceChange) -> ChangeJson {
        let redact =
            |doc: &Option<Value>| doc.as_ref().map(|d| redact_with(d, &change.sensitivity));
        ChangeJson {
            address: change.address.clone(),
            module: change.address.module.clone(),
            kind: change.address.kind.to_string(),
            action: change.action.as_str().to_owned(),
            reason: change.action.reason().map(str::to_owned),
            before: redact(&change.before),
            after: redact(&change.after),
            unknown: change.unknown.clone(),
            waits_for: change.waits_for.clone(),
            drift: change.drift.clone(),
            notes: change.notes.clone(),
            sensitive_changes: change.sensitive_changes.clone(),
            object_changes: change
                .objects
                .as_ref()
                .map(|objects| objects.iter().map(ObjectChange::redacted).collect()),
        }
    }
}

impl ChangeJson {
    fn into_change(self) -> Result<ResourceChange, PlanJsonError> {
        let action = match (self.action.as_str(), self.reason) {
            ("create", _) => Action::Create,
            ("update", _) => Action::Update,
            ("delete", _) => Action::Delete,
            ("replace", Some(reason)) => Action::Replace { reason },
            ("no-op", _) => Action::NoOp,
            _ => {
                return Err(PlanJsonError::Action {
                    address: self.address.to_string(),
                    action: self.action,
                });
            }
        };
        Ok(ResourceChange {
            address: self.address,
            action,
            before: self.before,
            after: self.after,
            unknown: self.unknown,
            waits_for: self.waits_for,
            drift: self.drift,
            notes: self.notes,
            sensitivity: Sensitivity::default(),
            sensitive_changes: self.sensitive_changes,
            objects: self.object_changes,
        })
    }
}

#[cfg(test)]
mod tests;
