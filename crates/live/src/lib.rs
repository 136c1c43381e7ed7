//! The edge to the live cluster: the Kubernetes API (server-side apply, dry runs, discovery,
//! readiness waits) and the helm and kind CLIs.
