//! Adding a module is one crate plus one registry line: a toy sixth module, declared through
//! the same interface as the five real ones ([`config::ModuleDef`]), is read from
//! `modules.yaml`, its output is a placeholder config accepts, and the graph orders it.

mod support;

use std::fs;
use std::path::Path;

use config::{ConfigError, Environment, ModuleDef};
use engine::{Graph, Module, Output, OutputRef};
use serde_json::Value;

/// The toy module: the manifests `modules.yaml` lists under `toy:`, and one output, the name
/// of its greeting ConfigMap.
struct Toy;

impl ModuleDef for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["greeting"]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        let resources = env.declared_resources(self.name())?;
        let greeting = resources
            .iter()
            .find(|r| r.address.name == "configmap/default/greeting")
            .expect("the toy declares its greeting")
            .address
            .clone();
        let mut module = Module::new(self.name()).with_output(Output::known(
            OutputRef::new(self.name(), "greeting"),
            greeting,
            Value::String("greeting".into()),
        ));
        module.resources = resources;
        Ok(module)
    }
}

/// A copy of `infra/` with the toy's directory and its section in `modules.yaml`: a greeting
/// that reads the gateway's output, and a reader of the toy's own output.
fn infra_with_a_toy(dir: &Path) -> std::path::PathBuf {
    let root = support::copy_infra(dir);
    fs::create_dir(root.join("toy")).unwrap();
    fs::write(
        root.join("toy/greeting.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: default\n\
         data:\n  gateway: ${output.gateway.gateway_name}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: reader\n  namespace: default\n\
         data:\n  reads: ${output.toy.greeting}\n",
    )
    .unwrap();
    let modules = root.join("modules.yaml");
    let text = fs::read_to_string(&modules).unwrap();
    fs::write(
        &modules,
        format!("{text}\ntoy:\n  manifests:\n    - toy/greeting.yaml\n"),
    )
    .unwrap();
    root
}

#[test]
fn a_sixth_module_is_one_crate_and_one_registry_line() {
    let dir = tempfile::tempdir().unwrap();
    let infra = infra_with_a_toy(dir.path());
    // The registry of xtask, plus the toy's one line.
    let mut registry: Vec<&dyn ModuleDef> = xtask::REGISTRY.to_vec();
    registry.push(&Toy);

    let env = config::load(&infra, None, &registry).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env.manifests_of("toy").count(), 2);
    let modules = registry
        .iter()
        .map(|m| m.declare(&env))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let graph = Graph::build(modules).unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<String> = graph.order().iter().map(ToString::to_string).collect();
    let at = |a: &str| {
        order
            .iter()
            .position(|x| x == a)
            .unwrap_or_else(|| panic!("{a} in {order:?}"))
    };
    assert!(
        at("gateway.object.gateway/gateway/istio-gateway")
            < at("toy.object.configmap/default/greeting")
    );
    assert!(
        at("toy.object.configmap/default/greeting") < at("toy.object.configmap/default/reader")
    );
}

/// Without its registry line, the same files are refused (and the toy's manifests are not
/// read): config knows modules only from the registry.
#[test]
fn without_its_registry_line_the_toy_is_refused_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let infra = infra_with_a_toy(dir.path());
    let errors: Vec<ConfigError> = match config::load(&infra, None, &xtask::REGISTRY) {
        Ok(_) => panic!("the toy's files load without the toy"),
        Err(errors) => errors.into_iter().collect(),
    };
    let unknown_module = errors
        .iter()
        .find(|e| e.message == "unknown module `toy`")
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(unknown_module.file, infra.join("modules.yaml"));
    assert_eq!(
        (unknown_module.line, unknown_module.column),
        (
            fs::read_to_string(infra.join("modules.yaml"))
                .unwrap()
                .lines()
                .position(|l| l == "toy:")
                .unwrap()
                + 1,
            1
        )
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}
