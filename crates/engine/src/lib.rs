//! The engine: the pure model of an environment and of a plan.
//!
//! Desired state (resources, their addresses, values with placeholders), the dependency graph
//! and its ordering, plans and changes, diff rendering, hashing and redaction.
//!
//! Architecture Invariant: this crate does no I/O (no files, no network, no processes, no clock).
