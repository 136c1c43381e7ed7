//! Loading an environment and every module's declaration into one graph: the step every
//! command starts with.

use std::path::{Path, PathBuf};

use engine::{Address, Graph, GraphError, Module};
use xtask::REGISTRY;

/// Flags shared by every command that reads `infra/`.
#[derive(clap::Args, Debug, Clone)]
pub struct EnvArgs {
    /// Environment overlay: `infra/envs/<ENV>.yaml` over `infra/environment.yaml`.
    #[arg(long = "env", value_name = "ENV", env = "ENVCTL_ENV")]
    pub env: Option<String>,
    /// The infra directory (default: `infra/` of this repository).
    #[arg(long, value_name = "DIR", env = "ENVCTL_INFRA")]
    pub infra: Option<PathBuf>,
}

impl EnvArgs {
    pub fn infra_dir(&self) -> PathBuf {
        self.infra
            .clone()
            .unwrap_or_else(|| repo_root().join("infra"))
    }
}

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository")
        .to_path_buf()
}

/// An environment with every module declared and the graph built.
pub struct Loaded {
    pub env: config::Environment,
    pub graph: Graph,
}

impl Loaded {
    /// The environment's name (recorded on every object).
    pub fn name(&self) -> &str {
        &self.env.settings.name
    }
}

/// Every module's declaration, in registry order ([`xtask::MODULES`]).
pub fn declare_all(env: &config::Environment) -> Result<Vec<Module>, config::ConfigError> {
    REGISTRY.iter().map(|m| m.declare(env)).collect()
}

/// Loads `infra/` and builds the graph. Errors are ready to print: they name the file, line,
/// column and field where the configuration can say so.
pub fn load(args: &EnvArgs) -> anyhow::Result<Loaded> {
    let infra = args.infra_dir();
    let env = config::load(&infra, args.env.as_deref(), &REGISTRY)
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let modules = declare_all(&env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let graph =
        Graph::build(modules).map_err(|e| anyhow::anyhow!("{}", locate_graph_error(&env, &e)))?;
    Ok(Loaded { env, graph })
}

/// The module `--module` names, from the registry.
pub fn find_module(name: &str) -> anyhow::Result<&'static dyn xtask::Module> {
    xtask::module(name).ok_or_else(|| {
        let names: Vec<&str> = REGISTRY.iter().map(|m| m.name()).collect();
        anyhow::anyhow!("unknown module `{name}`; modules are: {}", names.join(", "))
    })
}

/// Checks the name `--module` gives, if any.
pub fn check_module(module: Option<&str>) -> anyhow::Result<()> {
    module.map_or(Ok(()), |m| find_module(m).map(|_| ()))
}

/// A graph error, with the file position of the placeholder or declaration at fault when the
/// configuration has one.
fn locate_graph_error(env: &config::Environment, error: &GraphError) -> String {
    let (consumer, needle, help) = match error {
        GraphError::MissingOutput {
            consumer, output, ..
        } => (
            consumer,
            format!("${{output.{output}}}"),
            "declare the output in its module, or fix the placeholder's name",
        ),
        GraphError::MissingSecret {
            consumer, secret, ..
        } => (
            consumer,
            format!("${{secret.{secret}}}"),
            "declare the output in its module, or fix the placeholder's name",
        ),
        // A cycle is at the first placeholder on it that a file holds.
        GraphError::Cycle { edges, .. } => match edges.iter().find_map(|e| match &e.reason {
            engine::EdgeReason::Output(o) => Some((&e.to, format!("${{output.{o}}}"))),
            engine::EdgeReason::Secret(s) => Some((&e.to, format!("${{secret.{s}}}"))),
            _ => None,
        }) {
            Some((consumer, needle)) => (
                consumer,
                needle,
                "remove this placeholder (or another dependency on the cycle): a resource \
                 cannot wait for itself",
            ),
            None => return format!("error: {error}"),
        },
        _ => return format!("error: {error}"),
    };
    match source_file(env, consumer).and_then(|file| env.locate(&file, &needle)) {
        Some(location) => format!(
            "error: {error}\n  --> {}:{}:{}\n  = help: {help}",
            location.file.display(),
            location.line,
            location.column
        ),
        None => format!("error: {error}"),
    }
}

/// The file a resource was declared in.
fn source_file(env: &config::Environment, address: &Address) -> Option<PathBuf> {
    if let Some(release) = env
        .releases
        .iter()
        .find(|r| r.module == address.module && r.name == address.name)
    {
        return Some(release.values.file.clone());
    }
    env.manifests
        .iter()
        .find(|d| Address::object(&d.module, &d.value).is_ok_and(|a| &a == address))
        .map(|d| d.file.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tidy: the outputs each module declares are the ones it lists (which config checks
    /// `${output...}` names against), and the contract documents them (docs/dev/contract.md).
    #[test]
    fn declared_outputs_are_the_documented_contract() {
        let env = config::load(&repo_root().join("infra"), None, &REGISTRY).expect("infra/ loads");
        let mut known = Vec::new();
        for module in REGISTRY.iter() {
            let mut declared: Vec<String> = module
                .declare(&env)
                .expect("modules declare")
                .outputs
                .iter()
                .map(|o| o.r#ref.to_string())
                .collect();
            declared.sort();
            let mut listed: Vec<String> = module
                .outputs()
                .iter()
                .map(|o| format!("{}.{o}", module.name()))
                .collect();
            listed.sort();
            assert_eq!(declared, listed, "module `{}`", module.name());
            known.extend(listed);
        }
        let contract = std::fs::read_to_string(repo_root().join("docs/dev/contract.md")).unwrap();
        for output in &known {
            assert!(
                contract.contains(&format!("`{output}`")),
                "docs/dev/contract.md lacks {output}"
            );
        }
    }

    #[test]
    fn the_graph_runs_cluster_then_crds_then_mesh_gateway_sso_policy() {
        let loaded = load(&EnvArgs {
            env: None,
            infra: None,
        })
        .expect("infra/ loads");
        let order: Vec<String> = loaded
            .graph
            .order()
            .iter()
            .map(ToString::to_string)
            .collect();
        let at = |a: &str| {
            order
                .iter()
                .position(|x| x == a)
                .unwrap_or_else(|| panic!("{a} in {order:?}"))
        };
        assert_eq!(at("cluster.cluster.istio"), 0);
        let chain = [
            "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io",
            "mesh.helm_release.istio-base",
            "mesh.helm_release.istio-cni",
            "mesh.helm_release.istiod",
            "gateway.object.gateway/gateway/istio-gateway",
            "sso.helm_release.oauth2-proxy",
            "policy.object.authorizationpolicy/default/oauth2-policy",
        ];
        for pair in chain.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{} before {}", pair[0], pair[1]);
        }
        assert!(
            at("gateway.object.namespace/default") < at("gateway.object.deployment/default/nginx"),
            "injection label before nginx"
        );
        assert!(
            at("sso.helm_release.dex") < at("sso.helm_release.oauth2-proxy"),
            "Dex before OAuth2 Proxy"
        );
    }
}
