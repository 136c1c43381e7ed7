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
//! - [`FieldPath`]: `spec.containers[0].image`, used in errors, sensitive paths and drift.
//! - [`values`]: placeholders (`${output.m.n}`, `${secret.m.n}`), [`find_placeholders`],
//!   [`resolve`].
//! - [`Module`], [`Resource`], [`ResourceSpec`], [`Output`]: what a module declares.
//! - [`hash`]: [`sha256_hex`], [`canonical_hash`].

// Errors carry the address, field path and known names they report; they are built once, on
// the way out, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod address;
pub mod desired;
pub mod graph;
pub mod hash;
pub mod path;
pub mod plan;
pub mod redact;
pub mod render;
pub mod resource;
pub mod values;

#[cfg(test)]
mod testutil;

pub use address::{Address, AddressError, ResourceKind};
pub use desired::{Desired, helm_release_document, with_ownership};
pub use graph::{DesiredError, Edge, EdgeReason, Graph, GraphError};
pub use hash::{canonical_hash, canonical_json, sha256_hex};
pub use path::{FieldPath, PathError, PathSegment};
pub use plan::{
    Action, FieldDrift, PLAN_FORMAT_VERSION, Plan, PlanJsonError, ResourceChange, Summary,
};
pub use redact::{SENSITIVE, Sensitivity, redact, redact_with, sensitive_changes};
pub use render::{render_yaml_documents, to_yaml};
pub use resource::{
    ChartSource, ClusterProvider, ClusterSpec, Dependency, Encoding, GeneratedSecretSpec,
    Generator, HelmReleaseSpec, Module, ObjectSpec, Output, Ownership, Resource, ResourceSpec,
};
pub use values::{
    Bindings, OutputRef, Placeholder, PlaceholderUse, Resolved, SecretRef, ValueError,
    find_placeholders, known_after_apply, resolve,
};
