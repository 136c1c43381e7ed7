//! Whether apply waits for an object it applied, and what "ready" means for it: the hook
//! through which a module brings the readiness rules of its own domain (the `gateway` module:
//! a Gateway is awaited only where a controller serves its class).
//!
//! Live knows no particular module: the rules come in through [`crate::runner::RunOptions`]
//! (from the registry of modules, each module's [`crate::session::ModuleCommands::readiness`]).
//! The generic rules (Deployment, DaemonSet, Namespace, CustomResourceDefinition) are live's
//! own ([`crate::wait::BuiltIn`]) and come after every module's.

use futures::future::BoxFuture;
use serde_json::Value;

use crate::wait::Readiness;
use crate::{Cluster, LiveError};

/// A module's readiness rule for the objects of its domain.
pub trait ReadinessRule: Send + Sync {
    /// Whether this rule decides for objects of `api_version` (e.g. `apps/v1`) and `kind`.
    fn governs(&self, api_version: &str, kind: &str) -> bool;

    /// Whether apply waits for `manifest`, which it has just applied, to be ready before what
    /// depends on it starts. May read the cluster (e.g. whether anything can ever make the
    /// object ready).
    fn wait_for<'a>(
        &'a self,
        cluster: &'a Cluster,
        manifest: &'a Value,
    ) -> BoxFuture<'a, Result<bool, LiveError>>;

    /// The object's readiness, from the object alone (pure).
    fn readiness(&self, object: &Value) -> Readiness;
}

/// The rule that decides for objects of `api_version`/`kind`: the first of `rules` that
/// governs them, else live's built-in rule where it does; `None`: apply does not wait.
pub fn rule_for<'r>(
    rules: &[&'r dyn ReadinessRule],
    api_version: &str,
    kind: &str,
) -> Option<&'r dyn ReadinessRule> {
    rules
        .iter()
        .copied()
        .chain([&crate::wait::BuiltIn as &'r dyn ReadinessRule])
        .find(|r| r.governs(api_version, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_a_modules_rule_only_the_built_in_kinds_are_awaited() {
        for (v, k) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "DaemonSet"),
            ("v1", "Namespace"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ] {
            assert!(rule_for(&[], v, k).is_some(), "{k}");
        }
        // No module registered a rule for the Gateway API: nothing waits for its objects.
        for k in ["Gateway", "HTTPRoute", "GatewayClass"] {
            assert!(
                rule_for(&[], "gateway.networking.k8s.io/v1", k).is_none(),
                "{k}"
            );
        }
        assert!(rule_for(&[], "v1", "ConfigMap").is_none());
    }

    struct Everything;

    impl ReadinessRule for Everything {
        fn governs(&self, _: &str, _: &str) -> bool {
            true
        }
        fn wait_for<'a>(
            &'a self,
            _: &'a Cluster,
            _: &'a Value,
        ) -> BoxFuture<'a, Result<bool, LiveError>> {
            Box::pin(async { Ok(false) })
        }
        fn readiness(&self, _: &Value) -> Readiness {
            Readiness::Waiting {
                what: "nothing".into(),
                last: "never".into(),
            }
        }
    }

    #[test]
    fn a_modules_rule_comes_before_the_built_in_one() {
        let rule = rule_for(&[&Everything], "apps/v1", "Deployment").expect("a rule");
        assert_ne!(
            rule.readiness(&json!({"kind": "Deployment"})),
            Readiness::Ready
        );
    }
}
