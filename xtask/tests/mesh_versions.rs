//! The mesh's cross-version rules (Istio with Gateway API and Kubernetes), as `config::load`
//! reports them: at the setting's file, line and column, with help.

mod support;

use std::fs;
use std::path::PathBuf;

use config::ConfigError;

const ENV: &str = "environment.yaml";

/// A copy of the real `infra/` to break.
struct Infra {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Infra {
    fn copy() -> Infra {
        let dir = tempfile::tempdir().unwrap();
        let root = support::copy_infra(dir.path());
        Infra { _dir: dir, root }
    }

    fn edit(&self, from: &str, to: &str) {
        let path = self.root.join(ENV);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(from).count(), 1, "`{from}` once in {ENV}");
        fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    /// 1-based line and column of `needle` after `after` in the environment file.
    fn pos(&self, after: &str, needle: &str) -> (usize, usize) {
        let text = fs::read_to_string(self.root.join(ENV)).unwrap();
        let at = text.find(after).unwrap();
        let at = at + text[at..].find(needle).unwrap();
        let line = text[..at].matches('\n').count() + 1;
        let column = text[..at].rsplit('\n').next().unwrap().chars().count() + 1;
        (line, column)
    }

    /// The one error whose message contains `message`, at `pos` of `field`.
    fn expect(&self, message: &str, pos: (usize, usize), field: &str) -> ConfigError {
        let errors: Vec<ConfigError> = match config::load(&self.root, None, &xtask::REGISTRY) {
            Ok(_) => panic!("expected errors, the environment loaded"),
            Err(errors) => errors.into_iter().collect(),
        };
        let found: Vec<&ConfigError> = errors
            .iter()
            .filter(|e| e.message.contains(message))
            .collect();
        assert_eq!(found.len(), 1, "one `{message}` in {errors:?}");
        let e = found[0].clone();
        assert_eq!(e.file, self.root.join(ENV), "{e}");
        assert_eq!((e.line, e.column), pos, "{e}");
        assert_eq!(e.field, field, "{e}");
        assert!(e.help.is_some(), "every error says what to do: {e}");
        e
    }
}

#[test]
fn incompatible_istio_and_gateway_api() {
    let infra = Infra::copy();
    infra.edit("gatewayApi: v1.5.1", "gatewayApi: v1.3.0");
    infra.edit("# istio: 1.30.3", "istio: 1.30.3");
    let e = infra.expect(
        "Gateway API v1.3.0 does not pair with Istio 1.30.3",
        infra.pos("gatewayApi:", "v1.3.0"),
        "versions.gatewayApi",
    );
    assert!(e.help.unwrap().contains("1.27.x"));
}

#[test]
fn istio_minor_missing_from_the_table_points_at_versions_istio() {
    let infra = Infra::copy();
    infra.edit("# istio: 1.30.3", "istio: 1.19.0");
    let e = infra.expect(
        "Istio 1.19.0 is not in the compatibility table",
        infra.pos("istio:", "1.19.0"),
        "versions.istio",
    );
    assert!(e.help.unwrap().contains("`1.30`"));
}

#[test]
fn kubernetes_too_old_for_istio() {
    let infra = Infra::copy();
    infra.edit("kindest/node:v1.36.1\n", "kindest/node:v1.29.2\n");
    infra.expect(
        "Kubernetes 1.29 (kindest/node:v1.29.2) is older than 1.32",
        infra.pos("nodeImage:", "kindest"),
        "cluster.kind.nodeImage",
    );
}

/// The one-line switch to the walkthrough's Gateway API release works (Istio follows).
#[test]
fn gateway_api_v1_3_0_is_one_line_away() {
    let infra = Infra::copy();
    infra.edit("gatewayApi: v1.5.1", "gatewayApi: v1.3.0");
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
    infra.edit("gatewayApi: v1.5.1", "gatewayApi: v1.3.0");
    infra.edit("# istio: 1.30.3", "istio: 1.30.3");
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
    infra.edit("kindest/node:v1.36.1\n", "kindest/node:v1.29.2\n");
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
    infra.edit("provider: kind", "provider: kwok");
    config::load(&infra.root, None, &xtask::REGISTRY).unwrap_or_else(|e| panic!("{e}"));
}
