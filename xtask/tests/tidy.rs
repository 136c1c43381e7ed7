//! Tidy tests: the architecture's rules, checked on the workspace itself (as rust-analyzer's
//! tidy tests do). Each `Architecture Invariant` in ARCHITECTURE.md names the test that holds
//! it, and `every_architecture_invariant_names_its_test` checks that those tests exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The module crates (each owns one part of the environment): the registry's names.
fn modules() -> Vec<&'static str> {
    xtask::MODULES.iter().map(|m| m.name()).collect()
}

/// Crates that do I/O (network, processes, async runtimes, files as a service, randomness).
const IO_CRATES: [&str; 12] = [
    "tokio",
    "kube",
    "kube-client",
    "kube-runtime",
    "reqwest",
    "hyper",
    "hyper-util",
    "mio",
    "socket2",
    "xshell",
    "rand",
    "tempfile",
];

/// Package name -> names of its normal (non-dev, non-build) dependencies, from `cargo metadata`.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of_kinds(|kind| kind.is_null())
}

/// Package name -> names of its dependencies of any kind (normal, dev, build).
fn dependency_graph_with_dev() -> BTreeMap<String, BTreeSet<String>> {
    graph_of_kinds(|_| true)
}

/// Package name -> names of its dependencies whose `dep_kinds` (`null` for normal, `"dev"`,
/// `"build"`) include one that `kind` accepts, from `cargo metadata`.
fn graph_of_kinds(kind: impl Fn(&Value) -> bool) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // This machine's platform only: other platforms' crates may not be downloaded.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve graph") {
        let name = names[node["id"].as_str().unwrap()].to_owned();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| kind(&k["kind"]))
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].to_owned())
            .collect();
        graph.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

/// Every package `name` depends on, directly or not (normal dependencies only).
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(next) = todo.pop() {
        for dep in graph.get(&next).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A file's text without its `#[cfg(test)]` module (test code sits at the end of a file).
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Lines of non-test code (in `crates/<name>/src`) that contain one of `needles`, as
/// `file:line: text`.
fn occurrences(krate: &str, needles: &[&str]) -> Vec<String> {
    let src = root().join("crates").join(krate).join("src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file
            .file_name()
            .is_some_and(|n| n == "tests.rs" || n == "testutil.rs")
        {
            continue;
        }
        for (i, line) in non_test_code(&file).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if needles.iter().any(|n| code.contains(n)) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

fn library_crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "e2e") // integration tests: test code
        .collect();
    names.sort();
    names
}

/// The engine is a pure model: no I/O crate anywhere below it, no file, network, process,
/// clock or randomness in its code.
#[test]
fn engine_does_no_io() {
    let graph = dependency_graph();
    let deps = closure(&graph, "engine");
    let io: Vec<&str> = IO_CRATES
        .iter()
        .copied()
        .filter(|c| deps.contains(*c))
        .collect();
    assert!(io.is_empty(), "engine depends on I/O crates: {io:?}");
    let found = occurrences(
        "engine",
        &[
            "std::fs",
            "std::net",
            "std::process",
            "std::env::var",
            "SystemTime",
            "Instant::now",
            "std::io::stdin",
        ],
    );
    assert!(found.is_empty(), "I/O in engine:\n{}", found.join("\n"));
}

/// config reads files; it never reaches a cluster (no Kubernetes client, no runtime).
#[test]
fn config_never_contacts_a_cluster() {
    let graph = dependency_graph();
    let deps = closure(&graph, "config");
    let io: Vec<&str> = ["tokio", "kube", "kube-client", "reqwest", "hyper", "live"]
        .into_iter()
        .filter(|c| deps.contains(*c))
        .collect();
    assert!(io.is_empty(), "config depends on {io:?}");
}

/// config knows no particular module: its code names no module of the registry (no `"sso"`,
/// no `settings.cluster`) and no type of a module's section (the cluster's `Provider`).
#[test]
fn config_names_no_module() {
    let mut needles: Vec<String> = Vec::new();
    for module in modules() {
        needles.push(format!("\"{module}\""));
        needles.push(format!("settings.{module}"));
        needles.push(format!("{module}::"));
    }
    needles
        .extend(["Provider", "KindSettings", "ClusterSettings", "SsoSettings"].map(str::to_owned));
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let found = occurrences("config", &needles);
    assert!(
        found.is_empty(),
        "config names a module:\n{}",
        found.join("\n")
    );
}

/// A module crate never depends on another module crate, directly or through another crate.
#[test]
fn modules_do_not_depend_on_each_other() {
    let graph = dependency_graph();
    let mut wrong = Vec::new();
    let modules = modules();
    for module in modules.iter().copied() {
        assert!(
            graph.contains_key(module),
            "no crate `{module}` in the workspace"
        );
        for other in closure(&graph, module) {
            if modules.contains(&other.as_str()) {
                wrong.push(format!("{module} -> {other}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "module crates depend on each other: {wrong:?}"
    );
}

/// xtask is the composition root: no crate but the end-to-end tests (`e2e`) depends on it, not
/// even for its tests (a dev-dependency on xtask would build a second copy of the crate under
/// test and turn the layering xtask -> modules -> (live, config) -> engine into a cycle).
#[test]
fn nothing_but_e2e_depends_on_xtask() {
    let graph = dependency_graph_with_dev();
    assert!(
        graph.contains_key("xtask"),
        "no crate `xtask` in the workspace"
    );
    let dependents: Vec<&String> = graph
        .iter()
        .filter(|(name, deps)| name.as_str() != "e2e" && deps.contains("xtask"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        dependents.is_empty(),
        "crates depending on xtask (move their tests that need the whole registry to \
         xtask/tests/): {dependents:?}"
    );
}

/// Only xtask prints: every other crate hands text to its caller (errors, reporters).
#[test]
fn nothing_outside_xtask_prints() {
    let mut found = Vec::new();
    for krate in library_crates() {
        found.extend(occurrences(
            &krate,
            &[
                "println!",
                "print!",
                "eprintln!",
                "eprint!",
                "dbg!",
                "io::stdout()",
                "io::stderr()",
            ],
        ));
    }
    assert!(
        found.is_empty(),
        "printing outside xtask (return the text to the caller instead):\n{}",
        found.join("\n")
    );
}

/// Live knows no module's domain: the Gateway API's readiness (wait for a Gateway only where a
/// controller serves its class) is the gateway module's rule, handed to live through
/// `ModuleCommands::readiness`.
#[test]
fn live_holds_no_modules_readiness_rule() {
    let found = occurrences(
        "live",
        &["gateway.networking.k8s.io", "\"Gateway\"", "\"HTTPRoute\""],
    );
    assert!(
        found.is_empty(),
        "Gateway API knowledge in live (it belongs to the gateway module's ReadinessRule):\n{}",
        found.join("\n")
    );
}

/// Each `**Architecture Invariant:**` paragraph names the tests that hold it as
/// ``(tests: `name`, `name`)``, and each named test exists.
#[test]
fn every_architecture_invariant_names_its_test() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut defined = BTreeSet::new();
    for dir in ["crates", "xtask"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines() {
                let line = line.trim_start();
                let rest = line
                    .strip_prefix("async fn ")
                    .or_else(|| line.strip_prefix("fn "))
                    .or_else(|| line.strip_prefix("pub fn "));
                if let Some(name) = rest.and_then(|r| r.split(['(', '<']).next()) {
                    defined.insert(name.to_owned());
                }
            }
        }
    }
    let paragraphs: Vec<String> = doc
        .split("\n\n")
        .filter(|p| p.contains("**Architecture Invariant:**"))
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(paragraphs.len() >= 5, "ARCHITECTURE.md lost its invariants");
    let mut problems = Vec::new();
    for p in &paragraphs {
        let Some((_, tail)) = p.split_once("(tests: ").or_else(|| p.split_once("(test: ")) else {
            problems.push(format!("names no test: {p}"));
            continue;
        };
        let list = tail.split(')').next().unwrap_or_default();
        // The quoted names (the list may group them: `(test: `a`; the rules: `b`, `c`)`).
        let names: Vec<&str> = list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            problems.push(format!("names no test: {p}"));
        }
        for name in names {
            if !defined.contains(name) {
                problems.push(format!("no test `{name}` in the workspace: {p}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
