//! The edge to the live cluster: the Kubernetes API (server-side apply, dry runs, discovery,
//! readiness waits) and the helm and kind CLIs.
//!
//! The pure parts (noise removal, field diffs, managedFields attribution) live in [`fields`]
//! and are unit-tested; everything that talks to a cluster is tested against the testenv in
//! `crates/e2e`.

pub mod charts;
pub mod cluster;
pub mod fields;
pub mod helm;
pub mod helm_storage;
pub mod objects;
pub mod provider;
pub mod retry;
pub mod runner;
pub mod secrets;
pub mod session;
pub mod sources;
pub mod verify;
pub mod wait;

pub use cluster::{Cluster, Conflict, FIELD_MANAGER, TypeInfo};

/// An error talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Connect(String),
    #[error("conflict with field manager(s) {}: {}", .0.managers.join(", "), .0.message)]
    Conflict(Conflict),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("unexpected object from the API server: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{address}: {detail}\n  = help: {help}")]
    NotOwned {
        address: String,
        detail: String,
        help: String,
    },
    #[error("{0}")]
    Other(String),
}
