//! End-to-end tests against a real control plane (the testenv). Run by `cargo xtask test`.
