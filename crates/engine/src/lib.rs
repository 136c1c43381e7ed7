//! The engine: the pure model of an environment and of a plan.
//!
//! Desired state (resources, their addresses, values with placeholders), the dependency graph
//! and its ordering, plans and changes, diff rendering, hashing and redaction.
//!
//! Architecture Invariant: this crate does no I/O (no files, no network, no processes, no clock,
//! no environment variables, no randomness). Everything here is unit-tested without a cluster.
//!
//! # Map
//! - [`Address`], [`ResourceKind`]: `<module>.<kind>.<name>`.
//! - [`FieldPath`]: `spec.containers[0].image`, the one path syntax of errors, sensitive paths
//!   and drift.
//! - [`split_documents`]: the one splitter of multi-document YAML streams read as text.
//! - [`values`]: placeholders (`${output.m.n}`, `${secret.m.n}`), [`find_placeholders`],
//!   [`resolve`] against [`Bindings`].
//! - [`Module`], [`Resource`], [`ResourceSpec`], [`Output`]: what a module declares.
//! - [`Graph`]: validation, derived edges ([`EdgeReason`]), apply order, stages, cycles, and
//!   the [`Desired`] document of each resource ([`desired`] lists their shapes).
//! - [`Plan`], [`ResourceChange`], [`Action`]: what apply would do; [`Plan::render_text`]
//!   (Terraform-like, see [`render`]) and [`Plan::to_json`] (`crates/engine/PLAN_JSON.md`).
//! - [`release`]: what installing or upgrading a Helm release does to each of its objects
//!   ([`ObjectChange`]), shown under the release's change.
//! - [`redact`](mod@redact): `(sensitive value)`; plans never hold secret material.
//! - [`hash`]: [`sha256_hex`], [`canonical_hash`] (fingerprints, values and spec hashes),
//!   [`content_hash`] (a live object's content without its status and server bookkeeping).
//!
//! # Example
//!
//! ```
//! use engine::{Graph, Module, Output, OutputRef, Ownership, Plan, Resource};
//! use serde_json::json;
//!
//! let namespace = Resource::object(
//!     "app",
//!     json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
//!     Ownership::Owned,
//! )?;
//! let config = Resource::object(
//!     "app",
//!     json!({"apiVersion": "v1", "kind": "ConfigMap",
//!            "metadata": {"name": "settings", "namespace": "app"},
//!            "data": {"greeting": "${output.app.greeting}"}}),
//!     Ownership::Owned,
//! )?;
//! let module = Module::new("app")
//!     .with_output(Output::known(
//!         OutputRef::new("app", "greeting"),
//!         namespace.address.clone(),
//!         json!("hello"),
//!     ))
//!     .with_resource(config)
//!     .with_resource(namespace);
//!
//! let graph = Graph::build(vec![module])?;
//! assert_eq!(
//!     graph.render_text(),
//!     "app.object.namespace/app\n\
//!      app.object.configmap/app/settings\n\
//!      \x20   <- app.object.namespace/app (output app.greeting)\n\
//!      \x20   <- app.object.namespace/app (namespace app)\n"
//! );
//!
//! let plan = Plan::offline(&graph, "dev", &graph.bindings())?;
//! assert_eq!(plan.summary().to_string(), "Plan: 2 to add, 0 to change, 0 to destroy.");
//! assert!(plan.render_text(false).contains("    +   greeting: hello\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Errors carry the address, field path and known names they report; they are built once, on
// the way out, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod address;
pub mod desired;
pub mod documents;
pub mod graph;
pub mod hash;
pub mod path;
pub mod plan;
pub mod redact;
pub mod release;
pub mod render;
pub mod resource;
pub mod values;

#[cfg(test)]
mod testutil;

pub use address::{Address, AddressError, ResourceKind};
pub use desired::{Desired, helm_release_document, with_ownership};
pub use documents::{YamlDocument, split_documents};
pub use graph::{DesiredError, Edge, EdgeReason, Graph, GraphError};
pub use hash::{canonical_hash, canonical_json, content_hash, sha256_hex};
pub use path::{FieldPath, PathError, PathSegment, changed_paths};
pub use plan::{
    Action, FieldDrift, PLAN_FORMAT_VERSION, Plan, PlanJsonError, ResourceChange, Summary,
};
pub use redact::{
    SENSITIVE, Sensitivity, redact, redact_owned, redact_with, sensitive_changes, sensitive_strings,
};
pub use release::{FieldChange, ObjectAction, ObjectChange};
pub use render::{render_yaml_documents, to_yaml};
pub use resource::{
    ChartSource, ClusterProvider, ClusterSpec, Dependency, Encoding, GeneratedSecretSpec,
    Generator, HelmReleaseSpec, LiveField, Module, ObjectSpec, Output, Ownership, Resource,
    ResourceSpec,
};
pub use values::{
    Bindings, OutputRef, Placeholder, PlaceholderUse, Resolved, SecretRef, ValueError,
    find_placeholders, known_after_apply, resolve,
};
