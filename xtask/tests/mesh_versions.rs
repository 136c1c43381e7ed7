//! The mesh's cross-version rules (Istio with Gateway API and Kubernetes), as `config::load`
//! reports them: at the setting's file, line and column, with help.

#[path = "support/infra_copy.rs"]
mod infra_copy;
mod support;

use infra_copy::Infra;

const ENV: &str = "environment.yaml";

#[test]
fn incompatible_istio_and_gateway_api() {
    let infra = Infra::copy();
    infra.edit(ENV, "gatewayApi: v1.5.1", "gatewayApi: v1.3.0");
    infra.edit(ENV, "# istio: 1.30.3", "istio: 1.30.3");
    let e = infra.expect(
        None,
        "Gateway API v1.3.0 does not pair with Istio 1.30.3",
        ENV,
        infra.pos(ENV, "gatewayApi:", "v1.3.0"),
        "versions.gatewayApi",
    );
    assert!(e.help.unwrap().contains("1.27.x"));
}

#[test]
fn istio_minor_missing_from_the_table_points_at_versions_istio() {
    let infra = Infra::copy();
    infra.edit(ENV, "# istio: 1.30.3", "istio: 1.19.0");
    let e = infra.expect(
        None,
        "Istio 1.19.0 is not in the compatibility table",
        ENV,
        infra.pos(ENV, "istio:", "1.19.0"),
        "versions.istio",
    );
    assert!(e.help.unwrap().contains("`1.30`"));
}

#[test]
fn kubernetes_too_old_for_istio() {
    let infra = Infra::copy();
    infra.edit(ENV, "kindest/node:v1.36.1\n", "kindest/node:v1.29.2\n");
    infra.expect(
        None,
        "Kubernetes 1.29 (kindest/node:v1.29.2) is older than 1.32",
        ENV,
        infra.pos(ENV, "nodeImage:", "kindest"),
        "cluster.kind.nodeImage",
    );
}

/// The one-line switch to the walkthrough's Gateway API release works (Istio follows).
#[test]
fn gateway_api_v1_3_0_is_one_line_away() {
    let infra = Infra::copy();
    infra.edit(ENV, "gatewayApi: v1.5.1", "gatewayApi: v1.3.0");
    let env = config::load(&infra.root, None, &xtask::REGISTRY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.settings.version("istio"), Some("1.27.9"));
    let pins = gateway::pinned_files(&env).unwrap();
    assert_eq!(pins.files.len(), 5);
    assert!(pins.files[0].url.starts_with(
        "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.3.0/config/crd/standard/"
    ));
    assert!(
        matches!(&env.release("istiod").unwrap().chart, config::ChartSource::Repo { version, .. } if version == "1.27.9")
    );
}

/// Without the mesh module, config checks no Istio pairing: the rule is the module's.
#[test]
fn the_pairing_rule_is_the_mesh_modules() {
    let infra = Infra::copy();
    infra.edit(ENV, "gatewayApi: v1.5.1", "gatewayApi: v1.3.0");
    infra.edit(ENV, "# istio: 1.30.3", "istio: 1.30.3");
    let without_mesh: Vec<&dyn config::ModuleDef> = xtask::REGISTRY
        .iter()
        .copied()
        .filter(|m| m.name() != mesh::NAME)
        .collect();
    let errors = match config::load(&infra.root, None, &without_mesh) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().collect(),
    };
    assert!(
        !errors.iter().any(|e| e.message.contains("does not pair")),
        "{errors:?}"
    );
}

/// Mesh reads the cluster's Kubernetes through the version the cluster module provides
/// (`kubernetes`): a kwok cluster provides none, so an old node image (unused there) is not
/// held against Istio; without the cluster module, nothing is.
#[test]
fn the_kubernetes_version_comes_from_the_cluster_module() {
    let infra = Infra::copy();
    infra.edit(ENV, "kindest/node:v1.36.1\n", "kindest/node:v1.29.2\n");
    let without_cluster: Vec<&dyn config::ModuleDef> = xtask::REGISTRY
        .iter()
        .copied()
        .filter(|m| m.name() != cluster::NAME)
        .collect();
    let errors = match config::load(&infra.root, None, &without_cluster) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().collect(),
    };
    assert!(
        !errors.iter().any(|e| e.message.contains("Kubernetes 1.29")),
        "{errors:?}"
    );
    infra.edit(ENV, "provider: kind", "provider: kwok");
    config::load(&infra.root, None, &xtask::REGISTRY).unwrap_or_else(|e| panic!("{e}"));
}
