//! The Gateway API's readiness rule: a Gateway is `Programmed` and an HTTPRoute `Accepted`
//! (with its references resolved) only by a controller that serves their GatewayClass; where
//! none does (no mesh yet, or a class nothing implements), nothing will ever set their status,
//! so apply waits for them only where a controller has accepted the class.

use futures::future::BoxFuture;
use live::wait::{self, Readiness};
use live::{Cluster, LiveError, ReadinessRule};
use serde_json::Value;

/// The API group of the Gateway API.
const GROUP: &str = "gateway.networking.k8s.io";
/// The version this rule reads Gateways and GatewayClasses as.
const API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// The rule, as [`crate::Gateway`]'s `readiness` hands it to live.
pub static RULE: GatewayReadiness = GatewayReadiness;

/// Readiness of Gateways and HTTPRoutes.
pub struct GatewayReadiness;

impl ReadinessRule for GatewayReadiness {
    fn governs(&self, api_version: &str, kind: &str) -> bool {
        api_version.split_once('/').map(|(g, _)| g) == Some(GROUP)
            && matches!(kind, "Gateway" | "HTTPRoute")
    }

    fn wait_for<'a>(
        &'a self,
        cluster: &'a Cluster,
        manifest: &'a Value,
    ) -> BoxFuture<'a, Result<bool, LiveError>> {
        Box::pin(wait_for(cluster, manifest))
    }

    fn readiness(&self, object: &Value) -> Readiness {
        readiness(object)
    }
}

/// Waits for a Gateway when a controller serves its class; for an HTTPRoute when one serves
/// the class of each of its parent Gateways (a route is Accepted by its Gateway's controller).
async fn wait_for(cluster: &Cluster, manifest: &Value) -> Result<bool, LiveError> {
    match manifest.get("kind").and_then(Value::as_str) {
        Some("Gateway") => class_has_controller(cluster, gateway_class(manifest)).await,
        Some("HTTPRoute") => {
            let Some(ty) = cluster.resolve(API_VERSION, "Gateway") else {
                return Ok(false);
            };
            for (namespace, name) in parent_gateways(manifest) {
                let gateway = cluster.get(&ty, namespace, name).await?;
                let class = gateway.as_ref().and_then(gateway_class);
                if !class_has_controller(cluster, class).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Whether a controller has accepted the GatewayClass `class` (`None`: no class named).
async fn class_has_controller(cluster: &Cluster, class: Option<&str>) -> Result<bool, LiveError> {
    let Some(class) = class else { return Ok(false) };
    let Some(ty) = cluster.resolve(API_VERSION, "GatewayClass") else {
        return Ok(false);
    };
    Ok(cluster
        .get(&ty, None, class)
        .await?
        .is_some_and(|c| accepted(&c)))
}

/// A Gateway's `spec.gatewayClassName`.
fn gateway_class(gateway: &Value) -> Option<&str> {
    gateway
        .pointer("/spec/gatewayClassName")
        .and_then(Value::as_str)
}

/// `(namespace, name)` of each parent Gateway of a route: a parentRef's own namespace, else
/// the route's.
fn parent_gateways(route: &Value) -> Vec<(Option<&str>, &str)> {
    let route_ns = route.pointer("/metadata/namespace").and_then(Value::as_str);
    route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|parent| {
            let name = parent
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let ns = parent.get("namespace").and_then(Value::as_str).or(route_ns);
            (ns, name)
        })
        .collect()
}

/// Whether a GatewayClass is `Accepted=True`: a controller serves it.
fn accepted(class: &Value) -> bool {
    class
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Accepted")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// - Gateway: `Programmed`.
/// - HTTPRoute: every parent `Accepted` and `ResolvedRefs`.
pub fn readiness(object: &Value) -> Readiness {
    match object.get("kind").and_then(Value::as_str) {
        Some("Gateway") => wait::condition_ready(object, "Programmed"),
        Some("HTTPRoute") => http_route(object),
        _ => Readiness::Ready,
    }
}

fn http_route(object: &Value) -> Readiness {
    let parents = object.pointer("/status/parents").and_then(Value::as_array);
    let Some(parents) = parents.filter(|p| !p.is_empty()) else {
        return wait::waiting("Accepted by its parent Gateway", "no parent status yet");
    };
    for parent in parents {
        for kind in ["Accepted", "ResolvedRefs"] {
            if let waiting @ Readiness::Waiting { .. } =
                wait::conditions_ready(parent.get("conditions"), kind)
            {
                return waiting;
            }
        }
    }
    Readiness::Ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use live::readiness::rule_for;
    use serde_json::json;

    #[test]
    fn it_governs_the_gateway_apis_gateways_and_routes_only() {
        assert!(RULE.governs("gateway.networking.k8s.io/v1", "Gateway"));
        assert!(RULE.governs("gateway.networking.k8s.io/v1beta1", "HTTPRoute"));
        // Istio's own Gateway is not the Gateway API's.
        assert!(!RULE.governs("networking.istio.io/v1", "Gateway"));
        assert!(!RULE.governs("gateway.networking.k8s.io/v1", "GatewayClass"));
    }

    /// The registry decides: with this rule a Gateway has one; without it (no gateway
    /// module registered) apply does not wait for Gateways at all.
    #[test]
    fn gateways_are_awaited_only_through_this_rule() {
        let v = "gateway.networking.k8s.io/v1";
        assert!(rule_for(&[], v, "Gateway").is_none());
        assert!(rule_for(&[], v, "HTTPRoute").is_none());
        let rules: [&dyn ReadinessRule; 1] = [&RULE];
        let rule = rule_for(&rules, v, "Gateway").expect("the gateway rule");
        let unprogrammed = json!({"kind": "Gateway", "status": {"conditions": [
            {"type": "Programmed", "status": "False", "reason": "Pending"}]}});
        assert!(matches!(
            rule.readiness(&unprogrammed),
            Readiness::Waiting { .. }
        ));
        // Other kinds keep live's built-in rule.
        assert!(rule_for(&rules, "apps/v1", "Deployment").is_some());
    }

    #[test]
    fn a_class_is_served_once_a_controller_accepted_it() {
        let class = |status: &str| {
            json!({"kind": "GatewayClass", "status": {"conditions": [
                {"type": "Accepted", "status": status}]}})
        };
        assert!(accepted(&class("True")));
        assert!(!accepted(&class("False")));
        assert!(!accepted(&class("Unknown")));
        // As created, before any controller looked at it.
        assert!(!accepted(&json!({"kind": "GatewayClass"})));
    }

    #[test]
    fn a_routes_parents_are_in_its_namespace_unless_named() {
        let route = json!({"kind": "HTTPRoute", "metadata": {"namespace": "app"},
            "spec": {"parentRefs": [{"name": "gw"}, {"name": "shared", "namespace": "infra"}]}});
        assert_eq!(
            parent_gateways(&route),
            [(Some("app"), "gw"), (Some("infra"), "shared")]
        );
        assert_eq!(
            gateway_class(&json!({"spec": {"gatewayClassName": "istio"}})),
            Some("istio")
        );
        assert_eq!(gateway_class(&json!({"spec": {}})), None);
    }

    #[test]
    fn a_gateway_is_ready_once_programmed() {
        let gateway = |status: &str| {
            json!({"kind": "Gateway", "status": {"conditions": [
                {"type": "Accepted", "status": "True"},
                {"type": "Programmed", "status": status, "reason": "AddressNotAssigned"}]}})
        };
        assert_eq!(readiness(&gateway("True")), Readiness::Ready);
        assert_eq!(
            readiness(&gateway("False")),
            wait::waiting(
                "condition Programmed",
                "Programmed=False: AddressNotAssigned"
            )
        );
    }

    #[test]
    fn http_route_needs_every_parent_accepted_and_resolved() {
        let route = json!({"kind": "HTTPRoute", "status": {"parents": [{"conditions": [
            {"type": "Accepted", "status": "True"},
            {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "service sso/dex not found"}]}]}});
        assert_eq!(
            readiness(&route),
            wait::waiting(
                "condition ResolvedRefs",
                "ResolvedRefs=False: BackendNotFound: service sso/dex not found"
            )
        );
        assert_eq!(
            readiness(&json!({"kind": "HTTPRoute"})),
            wait::waiting("Accepted by its parent Gateway", "no parent status yet")
        );
    }
}
