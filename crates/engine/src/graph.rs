//! The dependency graph of all resources of an environment, and its apply order.
//!
//! Edges (producer before consumer) come from:
//! - placeholders: `${output.m.n}` from the output's producer, `${secret.m.n}` from
//!   `m.generated_secret.n`;
//! - explicit [`Dependency`]s;
//! - kinds: every `cluster` before everything else; a `Namespace` object before the objects,
//!   Helm releases and generated secrets in that namespace; a `CustomResourceDefinition` object
//!   before the objects of the group and kind it defines.
//!
//! The apply order is a topological order that breaks ties by address (Kahn's algorithm with a
//! sorted ready set), so it is the same on every run. Destroy walks it backwards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::address::{Address, ResourceKind};
use crate::desired::{self, Desired};
use crate::path::{FieldPath, PathError};
use crate::resource::{Dependency, Module, Output, Resource, ResourceSpec};
use crate::values::{
    Bindings, OutputRef, Placeholder, PlaceholderUse, SecretRef, ValueError, any_dollar,
    find_placeholders, resolve_owned,
};

/// Why one resource must come before another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeReason {
    /// The consumer uses this output (placeholder or `depends_on`).
    Output(OutputRef),
    /// The consumer names this generated secret.
    Secret(SecretRef),
    /// An explicit `depends_on` on the resource.
    DependsOn,
    /// The consumer lives in this namespace.
    Namespace(String),
    /// The consumer is an instance of the custom resource this CRD (by name) defines.
    CustomResourceDefinition(String),
    /// Everything needs the cluster.
    Cluster,
}

impl fmt::Display for EdgeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdgeReason::Output(r) => write!(f, "output {r}"),
            EdgeReason::Secret(r) => write!(f, "secret {r}"),
            EdgeReason::DependsOn => f.write_str("depends_on"),
            EdgeReason::Namespace(ns) => write!(f, "namespace {ns}"),
            EdgeReason::CustomResourceDefinition(name) => write!(f, "crd {name}"),
            EdgeReason::Cluster => f.write_str("cluster"),
        }
    }
}

/// `from` must be applied before `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edge {
    /// The producer.
    pub from: Address,
    /// The consumer.
    pub to: Address,
    /// Why.
    pub reason: EdgeReason,
}

/// Why the modules do not form a valid graph. Each message says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Two resources share an address.
    #[error("`{0}` is declared twice; give one of them another name")]
    DuplicateAddress(Address),
    /// Two outputs share a name.
    #[error("output `{0}` is declared twice; outputs must be unique")]
    DuplicateOutput(OutputRef),
    /// A resource sits in a module other than the one its address names.
    #[error(
        "module `{module}` declares `{address}`; a module may only declare addresses that start with `{module}.`"
    )]
    ForeignAddress {
        /// The declaring module.
        module: String,
        /// The address.
        address: Address,
    },
    /// An output sits in a module other than the one its name names.
    #[error(
        "module `{module}` declares output `{output}`; a module may only declare outputs named `{module}.<name>`"
    )]
    ForeignOutput {
        /// The declaring module.
        module: String,
        /// The output.
        output: OutputRef,
    },
    /// The address kind and the spec disagree.
    #[error(
        "`{address}` has a `{spec_kind}` spec; use address kind `{spec_kind}` or change the spec"
    )]
    KindMismatch {
        /// The address.
        address: Address,
        /// The spec's kind.
        spec_kind: ResourceKind,
    },
    /// An output's producer is not a declared resource.
    #[error(
        "output `{output}` is produced by `{producer}`, which is not declared; declare it or fix the producer address"
    )]
    UnknownProducer {
        /// The output.
        output: OutputRef,
        /// Its producer.
        producer: Address,
    },
    /// A consumer uses an output nobody declares.
    #[error(
        "`{consumer}` field `{path}` uses output `{output}`, which no module declares; known outputs: {}",
        list(known)
    )]
    MissingOutput {
        /// Who uses it.
        consumer: Address,
        /// Where (`depends_on` for an explicit dependency).
        path: String,
        /// The missing output.
        output: OutputRef,
        /// Every declared output.
        known: Vec<OutputRef>,
    },
    /// A consumer uses a generated secret nobody declares.
    #[error(
        "`{consumer}` field `{path}` uses `${{secret.{secret}}}`, but there is no `{module}.generated_secret.{name}`; known generated secrets: {}",
        list(known), module = secret.module, name = secret.name
    )]
    MissingSecret {
        /// Who uses it.
        consumer: Address,
        /// Where.
        path: String,
        /// The missing secret.
        secret: SecretRef,
        /// Every declared generated secret.
        known: Vec<SecretRef>,
    },
    /// An explicit dependency names an undeclared resource.
    #[error(
        "`{consumer}` depends on `{dependency}`, which is not declared; fix the address or declare it"
    )]
    MissingDependency {
        /// Who depends.
        consumer: Address,
        /// On what.
        dependency: Address,
    },
    /// A placeholder in a resource is malformed.
    #[error("`{address}`: {source}")]
    Placeholder {
        /// The resource.
        address: Address,
        /// The problem, with its field path.
        source: ValueError,
    },
    /// A sensitive path of a resource does not parse.
    #[error("`{address}`: sensitive path: {source}")]
    SensitivePath {
        /// The resource.
        address: Address,
        /// The problem.
        source: PathError,
    },
    /// The dependencies form a cycle.
    #[error(
        "dependency cycle: {}; remove one of these dependencies:{}",
        cycle_path(cycle),
        cycle_edges(edges)
    )]
    Cycle {
        /// The addresses on the cycle, starting at the smallest; the last one depends back on the
        /// first.
        cycle: Vec<Address>,
        /// One edge per step of the cycle, in order.
        edges: Vec<Edge>,
    },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cycle_path(cycle: &[Address]) -> String {
    let mut parts: Vec<String> = cycle.iter().map(ToString::to_string).collect();
    if let Some(first) = cycle.first() {
        parts.push(first.to_string());
    }
    parts.join(" -> ")
}

fn cycle_edges(edges: &[Edge]) -> String {
    edges
        .iter()
        .map(|e| format!("\n  {} -> {} ({})", e.from, e.to, e.reason))
        .collect()
}

/// Why a desired document could not be produced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesiredError {
    /// The address is not in the graph.
    #[error(
        "`{0}` is not a resource of this environment; see `cargo xtask graph` for the addresses"
    )]
    UnknownAddress(Address),
    /// A placeholder could not be resolved.
    #[error("`{address}`: {source}")]
    Value {
        /// The resource.
        address: Address,
        /// The problem, with its field path.
        source: ValueError,
    },
}

/// The validated dependency graph of an environment.
#[derive(Debug, Clone)]
pub struct Graph {
    resources: BTreeMap<Address, Resource>,
    outputs: BTreeMap<OutputRef, Output>,
    edges: Vec<Edge>,
    /// Indexes into `edges` by target and by source: a lookup per resource must not scan
    /// every edge (thousands of objects would make that quadratic).
    into: BTreeMap<Address, Vec<usize>>,
    out_of: BTreeMap<Address, Vec<usize>>,
    order: Vec<Address>,
    stages: Vec<Vec<Address>>,
}

/// The namespace a resource lives in, if it is namespaced.
fn namespace_of(resource: &Resource) -> Option<&str> {
    match &resource.spec {
        ResourceSpec::Object(spec) => spec
            .manifest
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str),
        ResourceSpec::HelmRelease(spec) => Some(&spec.namespace),
        ResourceSpec::GeneratedSecret(spec) => Some(&spec.namespace),
        ResourceSpec::Cluster(_) => None,
    }
}

fn manifest_of(resource: &Resource) -> Option<&Value> {
    match &resource.spec {
        ResourceSpec::Object(spec) => Some(&spec.manifest),
        _ => None,
    }
}

fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// `(group, kind)` of a manifest; the core group is `""`.
fn group_kind(manifest: &Value) -> Option<(&str, &str)> {
    let api_version = str_at(manifest, &["apiVersion"])?;
    let kind = str_at(manifest, &["kind"])?;
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    Some((group, kind))
}

fn namespace_name(manifest: &Value) -> Option<&str> {
    match group_kind(manifest)? {
        ("", "Namespace") => str_at(manifest, &["metadata", "name"]),
        _ => None,
    }
}

/// `(group, kind, crd name)` defined by a CRD manifest.
fn crd_defines(manifest: &Value) -> Option<(&str, &str, &str)> {
    match group_kind(manifest)? {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Some((
            str_at(manifest, &["spec", "group"])?,
            str_at(manifest, &["spec", "names", "kind"])?,
            str_at(manifest, &["metadata", "name"])?,
        )),
        _ => None,
    }
}

impl Graph {
    /// Validates the modules and builds the graph.
    ///
    /// Checks: unique addresses and outputs, every address in its own module with the kind of
    /// its spec, every output's producer declared, every placeholder well formed with a
    /// producer, every explicit dependency declared, sensitive paths parse, no cycle.
    pub fn build(modules: Vec<Module>) -> Result<Graph, GraphError> {
        let mut resources = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        for module in modules {
            for resource in module.resources {
                if resource.address.module != module.name {
                    return Err(GraphError::ForeignAddress {
                        module: module.name,
                        address: resource.address,
                    });
                }
                if resource.address.kind != resource.spec.kind() {
                    return Err(GraphError::KindMismatch {
                        spec_kind: resource.spec.kind(),
                        address: resource.address,
                    });
                }
                if resources.contains_key(&resource.address) {
                    return Err(GraphError::DuplicateAddress(resource.address));
                }
                resources.insert(resource.address.clone(), resource);
            }
            for output in module.outputs {
                if output.r#ref.module != module.name {
                    return Err(GraphError::ForeignOutput {
                        module: module.name,
                        output: output.r#ref,
                    });
                }
                if outputs.contains_key(&output.r#ref) {
                    return Err(GraphError::DuplicateOutput(output.r#ref));
                }
                outputs.insert(output.r#ref.clone(), output);
            }
        }
        for output in outputs.values() {
            if !resources.contains_key(&output.producer) {
                return Err(GraphError::UnknownProducer {
                    output: output.r#ref.clone(),
                    producer: output.producer.clone(),
                });
            }
        }
        let edges = derive_edges(&resources, &outputs)?;
        let (order, stages) = topological_order(&resources, &edges)?;
        let mut into: BTreeMap<Address, Vec<usize>> = BTreeMap::new();
        let mut out_of: BTreeMap<Address, Vec<usize>> = BTreeMap::new();
        for (i, edge) in edges.iter().enumerate() {
            into.entry(edge.to.clone()).or_default().push(i);
            out_of.entry(edge.from.clone()).or_default().push(i);
        }
        Ok(Graph {
            resources,
            outputs,
            edges,
            into,
            out_of,
            order,
            stages,
        })
    }

    /// Every address, in apply order.
    pub fn order(&self) -> &[Address] {
        &self.order
    }

    /// Every address, in destroy order (apply order reversed).
    pub fn reverse_order(&self) -> Vec<Address> {
        self.order.iter().rev().cloned().collect()
    }

    /// Resources grouped in stages: each stage depends only on earlier stages, so the resources
    /// of one stage could be applied in parallel. Within a stage, addresses are sorted.
    pub fn stages(&self) -> &[Vec<Address>] {
        &self.stages
    }

    /// Every resource, in apply order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.order.iter().filter_map(|a| self.resources.get(a))
    }

    /// One resource.
    pub fn resource(&self, address: &Address) -> Option<&Resource> {
        self.resources.get(address)
    }

    /// The resources of one module, in apply order.
    pub fn resources_of_module(&self, module: &str) -> Vec<&Resource> {
        self.resources()
            .filter(|r| r.address.module == module)
            .collect()
    }

    /// Every edge, sorted by `from`, `to`, reason.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edges into `address`: what it waits for, and why.
    pub fn dependencies_of(&self, address: &Address) -> Vec<&Edge> {
        let mut found: Vec<&Edge> = self
            .into
            .get(address)
            .into_iter()
            .flatten()
            .map(|&i| &self.edges[i])
            .collect();
        found.sort_by(|a, b| (&a.from, &a.reason).cmp(&(&b.from, &b.reason)));
        found
    }

    /// The edges out of `address`: what waits for it.
    pub fn dependents_of(&self, address: &Address) -> Vec<&Edge> {
        self.out_of
            .get(address)
            .into_iter()
            .flatten()
            .map(|&i| &self.edges[i])
            .collect()
    }

    /// Every output, sorted by name.
    pub fn outputs(&self) -> impl Iterator<Item = &Output> {
        self.outputs.values()
    }

    /// The CRDs `address` waits for (as `customresourcedefinition/<name>`), for plans that say
    /// "will be created (after …)".
    pub fn waits_for(&self, address: &Address) -> Vec<String> {
        self.dependencies_of(address)
            .into_iter()
            .filter_map(|e| match &e.reason {
                EdgeReason::CustomResourceDefinition(name) => {
                    Some(format!("customresourcedefinition/{name}"))
                }
                _ => None,
            })
            .collect()
    }

    /// What is known at plan time: outputs with a value, and the Secret name of every generated
    /// secret. Add outputs learnt during apply with `bindings.outputs.insert(..)`.
    pub fn bindings(&self) -> Bindings {
        let outputs = self
            .outputs
            .values()
            .filter_map(|o| Some((o.r#ref.clone(), o.value.clone()?)))
            .collect();
        let secrets = self
            .resources
            .values()
            .filter_map(|r| match &r.spec {
                ResourceSpec::GeneratedSecret(spec) => Some((
                    SecretRef::new(&r.address.module, &r.address.name),
                    spec.name.clone(),
                )),
                _ => None,
            })
            .collect();
        Bindings { outputs, secrets }
    }

    /// The desired document of `address` (see [`crate::desired`]), resolved against
    /// `bindings`, for `environment` (recorded in the ownership annotations).
    pub fn desired(
        &self,
        address: &Address,
        bindings: &Bindings,
        environment: &str,
    ) -> Result<Desired, DesiredError> {
        let resource = self
            .resources
            .get(address)
            .ok_or_else(|| DesiredError::UnknownAddress(address.clone()))?;
        let (template, sensitivity) = desired::template(resource, environment);
        let resolved = resolve_owned(template, bindings).map_err(|source| DesiredError::Value {
            address: address.clone(),
            source,
        })?;
        Ok(Desired {
            address: address.clone(),
            doc: resolved.value,
            unknown: resolved.unknown,
            sensitivity,
        })
    }

    /// The desired document of every resource, in apply order.
    pub fn desired_all(
        &self,
        bindings: &Bindings,
        environment: &str,
    ) -> Result<Vec<Desired>, DesiredError> {
        self.order
            .iter()
            .map(|a| self.desired(a, bindings, environment))
            .collect()
    }

    /// The graph as text: resources in apply order, each followed by its incoming edges.
    ///
    /// ```text
    /// gateway.object.gateway/gateway/istio-gateway
    ///     <- mesh.helm_release.istiod (output mesh.gateway_class)
    /// ```
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for address in &self.order {
            out.push_str(&address.to_string());
            out.push('\n');
            for edge in self.dependencies_of(address) {
                out.push_str(&format!("    <- {} ({})\n", edge.from, edge.reason));
            }
        }
        out
    }

    /// The graph in Graphviz dot syntax (nodes in apply order, edges sorted).
    pub fn render_dot(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = String::from("digraph envctl {\n    rankdir=LR;\n    node [shape=box];\n");
        for address in &self.order {
            out.push_str(&format!("    {};\n", quote(&address.to_string())));
        }
        for edge in &self.edges {
            out.push_str(&format!(
                "    {} -> {} [label={}];\n",
                quote(&edge.from.to_string()),
                quote(&edge.to.to_string()),
                quote(&edge.reason.to_string())
            ));
        }
        out.push_str("}\n");
        out
    }
}

fn derive_edges(
    resources: &BTreeMap<Address, Resource>,
    outputs: &BTreeMap<OutputRef, Output>,
) -> Result<Vec<Edge>, GraphError> {
    let mut edges = BTreeSet::new();
    let known_outputs: Vec<OutputRef> = outputs.keys().cloned().collect();
    let known_secrets: Vec<SecretRef> = resources
        .keys()
        .filter(|a| a.kind == ResourceKind::GeneratedSecret)
        .map(|a| SecretRef::new(&a.module, &a.name))
        .collect();

    // Kind-derived producers.
    let clusters: Vec<&Address> = resources
        .keys()
        .filter(|a| a.kind == ResourceKind::Cluster)
        .collect();
    let mut namespaces: BTreeMap<&str, Vec<&Address>> = BTreeMap::new();
    let mut crds: BTreeMap<(&str, &str), Vec<(&Address, &str)>> = BTreeMap::new();
    for resource in resources.values() {
        if let Some(manifest) = manifest_of(resource) {
            if let Some(ns) = namespace_name(manifest) {
                namespaces.entry(ns).or_default().push(&resource.address);
            }
            if let Some((group, kind, name)) = crd_defines(manifest) {
                crds.entry((group, kind))
                    .or_default()
                    .push((&resource.address, name));
            }
        }
    }

    for resource in resources.values() {
        let consumer = &resource.address;
        let mut add = |from: &Address, reason: EdgeReason| {
            edges.insert(Edge {
                from: from.clone(),
                to: consumer.clone(),
                reason,
            });
        };
        if consumer.kind != ResourceKind::Cluster {
            for cluster in &clusters {
                add(cluster, EdgeReason::Cluster);
            }
        }
        if let Some(ns) = namespace_of(resource) {
            for producer in namespaces.get(ns).into_iter().flatten() {
                if *producer != consumer {
                    add(producer, EdgeReason::Namespace(ns.to_owned()));
                }
            }
        }
        if let Some((group, kind)) = manifest_of(resource).and_then(group_kind) {
            for (producer, name) in crds.get(&(group, kind)).into_iter().flatten() {
                if *producer != consumer {
                    add(
                        producer,
                        EdgeReason::CustomResourceDefinition((*name).to_owned()),
                    );
                }
            }
        }

        // Placeholders, with paths relative to the desired document.
        let uses = match &resource.spec {
            // An object's document is its manifest plus the ownership label and annotations
            // (module, address: no `$`) and no sensitive paths: without a `$` in the manifest
            // it holds no placeholder, and need not be built (most objects).
            ResourceSpec::Object(spec)
                if !any_dollar(&spec.manifest)
                    && !consumer.module.contains('$')
                    && !consumer.name.contains('$') =>
            {
                Vec::new()
            }
            _ => {
                let (template, sensitivity) = desired::template(resource, "");
                for path in &sensitivity.paths {
                    path.parse::<FieldPath>()
                        .map_err(|source| GraphError::SensitivePath {
                            address: consumer.clone(),
                            source,
                        })?;
                }
                find_placeholders(&template).map_err(|source| GraphError::Placeholder {
                    address: consumer.clone(),
                    source,
                })?
            }
        };
        for PlaceholderUse { path, placeholder } in uses {
            match placeholder {
                Placeholder::Output(output) => {
                    let producer = &outputs
                        .get(&output)
                        .ok_or_else(|| GraphError::MissingOutput {
                            consumer: consumer.clone(),
                            path,
                            output: output.clone(),
                            known: known_outputs.clone(),
                        })?
                        .producer;
                    add(producer, EdgeReason::Output(output));
                }
                Placeholder::Secret(secret) => {
                    let producer = Address {
                        module: secret.module.clone(),
                        kind: ResourceKind::GeneratedSecret,
                        name: secret.name.clone(),
                    };
                    if !resources.contains_key(&producer) {
                        return Err(GraphError::MissingSecret {
                            consumer: consumer.clone(),
                            path,
                            secret,
                            known: known_secrets.clone(),
                        });
                    }
                    add(&producer, EdgeReason::Secret(secret));
                }
            }
        }

        for dependency in &resource.depends_on {
            match dependency {
                Dependency::Resource(producer) => {
                    if !resources.contains_key(producer) {
                        return Err(GraphError::MissingDependency {
                            consumer: consumer.clone(),
                            dependency: producer.clone(),
                        });
                    }
                    add(producer, EdgeReason::DependsOn);
                }
                Dependency::Output(output) => {
                    let producer = &outputs
                        .get(output)
                        .ok_or_else(|| GraphError::MissingOutput {
                            consumer: consumer.clone(),
                            path: "depends_on".to_owned(),
                            output: output.clone(),
                            known: known_outputs.clone(),
                        })?
                        .producer;
                    add(producer, EdgeReason::Output(output.clone()));
                }
            }
        }
    }
    Ok(edges.into_iter().collect())
}

type Order = (Vec<Address>, Vec<Vec<Address>>);

fn topological_order(
    resources: &BTreeMap<Address, Resource>,
    edges: &[Edge],
) -> Result<Order, GraphError> {
    let mut successors: BTreeMap<&Address, BTreeSet<&Address>> = BTreeMap::new();
    let mut predecessors: BTreeMap<&Address, BTreeSet<&Address>> =
        resources.keys().map(|a| (a, BTreeSet::new())).collect();
    for edge in edges {
        successors.entry(&edge.from).or_default().insert(&edge.to);
        predecessors.entry(&edge.to).or_default().insert(&edge.from);
    }
    let mut waiting: BTreeMap<&Address, usize> =
        predecessors.iter().map(|(a, p)| (*a, p.len())).collect();
    let mut ready: BTreeSet<&Address> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(a, _)| *a)
        .collect();
    let mut order = Vec::with_capacity(resources.len());
    let mut level: BTreeMap<&Address, usize> = BTreeMap::new();
    while let Some(next) = ready.pop_first() {
        let my_level = predecessors[next]
            .iter()
            .map(|p| level[p] + 1)
            .max()
            .unwrap_or(0);
        level.insert(next, my_level);
        order.push(next.clone());
        for succ in successors.get(next).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(succ) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(succ);
                }
            }
        }
    }
    if order.len() < resources.len() {
        let done: BTreeSet<&Address> = level.keys().copied().collect();
        let remaining: BTreeSet<&Address> =
            resources.keys().filter(|a| !done.contains(a)).collect();
        return Err(find_cycle(&remaining, &predecessors, edges));
    }
    let mut stages: Vec<Vec<Address>> = Vec::new();
    for (address, l) in level {
        if stages.len() <= l {
            stages.resize(l + 1, Vec::new());
        }
        stages[l].push(address.clone());
    }
    Ok((order, stages))
}

/// Every remaining node has a remaining predecessor, so walking predecessors from the smallest
/// remaining node must revisit a node: that loop is a cycle.
fn find_cycle(
    remaining: &BTreeSet<&Address>,
    predecessors: &BTreeMap<&Address, BTreeSet<&Address>>,
    edges: &[Edge],
) -> GraphError {
    let mut walk: Vec<&Address> = Vec::new();
    let mut current = *remaining.first().expect("a cycle leaves nodes behind");
    let start = loop {
        if let Some(pos) = walk.iter().position(|a| *a == current) {
            break pos;
        }
        walk.push(current);
        current = predecessors[current]
            .iter()
            .copied()
            .find(|p| remaining.contains(p))
            .expect("every remaining node has a remaining predecessor");
    };
    // walk[start..] lists the cycle backwards: walk[i + 1] -> walk[i].
    let mut cycle: Vec<Address> = walk[start..].iter().rev().map(|a| (*a).clone()).collect();
    let smallest = cycle
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.cmp(b.1))
        .map_or(0, |(i, _)| i);
    cycle.rotate_left(smallest);
    let cycle_edges = (0..cycle.len())
        .filter_map(|i| {
            let from = &cycle[i];
            let to = &cycle[(i + 1) % cycle.len()];
            edges
                .iter()
                .find(|e| &e.from == from && &e.to == to)
                .cloned()
        })
        .collect();
    GraphError::Cycle {
        cycle,
        edges: cycle_edges,
    }
}

#[cfg(test)]
mod tests;
