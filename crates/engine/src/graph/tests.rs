use super::*;
use crate::resource::Ownership;
use crate::testutil::*;
use serde_json::json;

fn names(addresses: &[Address]) -> Vec<String> {
    addresses.iter().map(ToString::to_string).collect()
}

const WALKTHROUGH_ORDER: [&str; 13] = [
    "cluster.cluster.istio",
    "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io",
    "gateway.object.customresourcedefinition/httproutes.gateway.networking.k8s.io",
    "gateway.object.namespace/gateway",
    "mesh.helm_release.istiod",
    "gateway.object.gateway/gateway/istio-gateway",
    "gateway.object.namespace/default",
    "gateway.object.deployment/default/nginx",
    "sso.object.namespace/sso",
    "sso.generated_secret.oauth2-proxy",
    "sso.helm_release.dex",
    "sso.helm_release.oauth2-proxy",
    "sso.object.httproute/sso/dex",
];

#[test]
fn walkthrough_apply_order_respects_every_edge() {
    let graph = Graph::build(walkthrough()).unwrap();
    assert_eq!(names(graph.order()), WALKTHROUGH_ORDER);
    let position = |a: &Address| graph.order().iter().position(|o| o == a).unwrap();
    for edge in graph.edges() {
        assert!(
            position(&edge.from) < position(&edge.to),
            "{} must come before {}",
            edge.from,
            edge.to
        );
    }
    let mut reversed = WALKTHROUGH_ORDER.to_vec();
    reversed.reverse();
    assert_eq!(names(&graph.reverse_order()), reversed);
}

#[test]
fn order_does_not_depend_on_declaration_order() {
    let forward = Graph::build(walkthrough()).unwrap();
    let mut modules = walkthrough();
    modules.reverse();
    for module in &mut modules {
        module.resources.reverse();
        module.outputs.reverse();
    }
    let backward = Graph::build(modules).unwrap();
    assert_eq!(forward.order(), backward.order());
    assert_eq!(forward.edges(), backward.edges());
    assert_eq!(forward.stages(), backward.stages());
    assert_eq!(forward.render_text(), backward.render_text());
    assert_eq!(forward.render_dot(), backward.render_dot());
}

fn has_edge(graph: &Graph, from: &str, to: &str, reason: EdgeReason) -> bool {
    graph.edges().contains(&Edge {
        from: addr(from),
        to: addr(to),
        reason,
    })
}

#[test]
fn namespaces_come_before_what_lives_in_them() {
    let graph = Graph::build(walkthrough()).unwrap();
    let ns = |n: &str| EdgeReason::Namespace(n.to_owned());
    for consumer in [
        "sso.helm_release.dex",
        "sso.helm_release.oauth2-proxy",
        "sso.generated_secret.oauth2-proxy",
        "sso.object.httproute/sso/dex",
    ] {
        assert!(
            has_edge(&graph, "sso.object.namespace/sso", consumer, ns("sso")),
            "{consumer}"
        );
    }
    // The FieldsOnly namespace `default` (injection label) comes before nginx in it.
    assert!(has_edge(
        &graph,
        "gateway.object.namespace/default",
        "gateway.object.deployment/default/nginx",
        ns("default")
    ));
    // No namespace edge into a namespace itself or into objects of other namespaces.
    assert!(
        graph
            .dependencies_of(&addr("gateway.object.namespace/gateway"))
            .iter()
            .all(|e| e.reason == EdgeReason::Cluster)
    );
    assert!(!has_edge(
        &graph,
        "sso.object.namespace/sso",
        "gateway.object.gateway/gateway/istio-gateway",
        ns("sso")
    ));
}

#[test]
fn crds_come_before_objects_of_their_kind_only() {
    let graph = Graph::build(walkthrough()).unwrap();
    let gateways = "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io";
    let routes = "gateway.object.customresourcedefinition/httproutes.gateway.networking.k8s.io";
    assert!(has_edge(
        &graph,
        gateways,
        "gateway.object.gateway/gateway/istio-gateway",
        EdgeReason::CustomResourceDefinition("gateways.gateway.networking.k8s.io".into())
    ));
    assert!(has_edge(
        &graph,
        routes,
        "sso.object.httproute/sso/dex",
        EdgeReason::CustomResourceDefinition("httproutes.gateway.networking.k8s.io".into())
    ));
    let crd_edges: Vec<&Edge> = graph
        .edges()
        .iter()
        .filter(|e| matches!(e.reason, EdgeReason::CustomResourceDefinition(_)))
        .collect();
    assert_eq!(crd_edges.len(), 2, "{crd_edges:?}");
    assert_eq!(
        graph.waits_for(&addr("sso.object.httproute/sso/dex")),
        ["customresourcedefinition/httproutes.gateway.networking.k8s.io"]
    );
    assert!(graph.waits_for(&addr("sso.helm_release.dex")).is_empty());
}

#[test]
fn the_cluster_comes_before_everything() {
    let graph = Graph::build(walkthrough()).unwrap();
    let cluster = addr("cluster.cluster.istio");
    assert_eq!(graph.order()[0], cluster);
    assert_eq!(
        graph.dependents_of(&cluster).len(),
        WALKTHROUGH_ORDER.len() - 1
    );
    assert!(graph.dependencies_of(&cluster).is_empty());
}

#[test]
fn placeholders_and_depends_on_make_edges() {
    let graph = Graph::build(walkthrough()).unwrap();
    assert!(has_edge(
        &graph,
        "mesh.helm_release.istiod",
        "gateway.object.gateway/gateway/istio-gateway",
        EdgeReason::Output(OutputRef::new("mesh", "gateway_class"))
    ));
    assert!(has_edge(
        &graph,
        "sso.generated_secret.oauth2-proxy",
        "sso.helm_release.oauth2-proxy",
        EdgeReason::Secret(SecretRef::new("sso", "oauth2-proxy"))
    ));
    // depends_on an output: edge from its producer, with the output as reason.
    assert!(has_edge(
        &graph,
        "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io",
        "mesh.helm_release.istiod",
        EdgeReason::Output(OutputRef::new("gateway", "gateway_api_crds"))
    ));
}

#[test]
fn stages_group_independent_resources() {
    let graph = Graph::build(walkthrough()).unwrap();
    let stages: Vec<Vec<String>> = graph.stages().iter().map(|s| names(s)).collect();
    assert_eq!(
        stages,
        vec![
            vec!["cluster.cluster.istio"],
            vec![
                "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io",
                "gateway.object.customresourcedefinition/httproutes.gateway.networking.k8s.io",
                "gateway.object.namespace/gateway",
                "sso.object.namespace/sso",
            ],
            vec![
                "mesh.helm_release.istiod",
                "sso.generated_secret.oauth2-proxy",
                "sso.helm_release.dex",
            ],
            vec![
                "gateway.object.gateway/gateway/istio-gateway",
                "gateway.object.namespace/default",
                "sso.helm_release.oauth2-proxy",
            ],
            vec![
                "gateway.object.deployment/default/nginx",
                "sso.object.httproute/sso/dex",
            ],
        ]
    );
}

#[test]
fn module_queries() {
    let graph = Graph::build(walkthrough()).unwrap();
    let sso: Vec<String> = graph
        .resources_of_module("sso")
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    assert_eq!(sso, &WALKTHROUGH_ORDER[8..]);
    let outputs: Vec<String> = graph.outputs().map(|o| o.r#ref.to_string()).collect();
    assert_eq!(
        outputs,
        [
            "cluster.context",
            "gateway.gateway_api_crds",
            "gateway.gateway_name",
            "gateway.gateway_namespace",
            "mesh.gateway_class",
            "mesh.injection_ready",
            "sso.dex_cluster_ip",
        ]
    );
    let bindings = graph.bindings();
    assert!(
        !bindings
            .outputs
            .contains_key(&OutputRef::new("sso", "dex_cluster_ip"))
    );
    assert_eq!(
        bindings.outputs[&OutputRef::new("mesh", "gateway_class")],
        json!("istio")
    );
    assert_eq!(
        bindings.secrets[&SecretRef::new("sso", "oauth2-proxy")],
        "oauth2-proxy"
    );
}

fn chain(links: &[(&str, &str)]) -> Vec<Module> {
    // Config maps in module `m`; each (a, b) makes a depend on b.
    let mut module = Module::new("m");
    let mut names: Vec<&str> = links.iter().flat_map(|(a, b)| [*a, *b]).collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut resource = object(
            "m",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
        );
        for (a, b) in links {
            if *a == name {
                resource = resource.depends_on(Dependency::Resource(addr(&format!(
                    "m.object.configmap/{b}"
                ))));
            }
        }
        module = module.with_resource(resource);
    }
    vec![module]
}

#[test]
fn a_cycle_names_every_address_on_it() {
    // a needs c, c needs b, b needs a: the cycle is a -> b -> c -> a (producer -> consumer).
    // `d` depends on the cycle but is not on it.
    let err = Graph::build(chain(&[("a", "c"), ("c", "b"), ("b", "a"), ("d", "a")])).unwrap_err();
    let GraphError::Cycle { cycle, edges } = &err else {
        panic!("expected a cycle, got {err}");
    };
    assert_eq!(
        names(cycle),
        [
            "m.object.configmap/a",
            "m.object.configmap/b",
            "m.object.configmap/c"
        ]
    );
    assert_eq!(edges.len(), 3);
    assert_eq!(
        err.to_string(),
        "dependency cycle: m.object.configmap/a -> m.object.configmap/b -> m.object.configmap/c -> m.object.configmap/a; \
remove one of these dependencies:\n  \
m.object.configmap/a -> m.object.configmap/b (depends_on)\n  \
m.object.configmap/b -> m.object.configmap/c (depends_on)\n  \
m.object.configmap/c -> m.object.configmap/a (depends_on)"
    );
}

#[test]
fn a_resource_depending_on_itself_is_a_cycle() {
    let err = Graph::build(chain(&[("a", "a")])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("dependency cycle: m.object.configmap/a -> m.object.configmap/a;"),
        "{err}"
    );
}

#[test]
fn a_missing_output_names_consumer_field_and_known_outputs() {
    let mut modules = walkthrough();
    modules[3].resources.push(object(
        "sso",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "sso"},
            "data": {"ip": "${output.sso.dex_ip}"}}),
    ));
    let err = Graph::build(modules).unwrap_err();
    assert!(
        matches!(&err, GraphError::MissingOutput { consumer, path, output, .. }
            if consumer.to_string() == "sso.object.configmap/sso/x"
            && path == "data.ip"
            && output.to_string() == "sso.dex_ip"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.starts_with(
        "`sso.object.configmap/sso/x` field `data.ip` uses output `sso.dex_ip`, which no module declares; known outputs: `cluster.context`, "
    ), "{message}");
    assert!(message.contains("`sso.dex_cluster_ip`"), "{message}");
}

#[test]
fn a_missing_output_in_depends_on_is_reported() {
    let mut modules = walkthrough();
    modules[2].resources[0]
        .depends_on
        .push(Dependency::Output(OutputRef::new("gateway", "nope")));
    let err = Graph::build(modules).unwrap_err();
    assert!(
        matches!(&err, GraphError::MissingOutput { path, .. } if path == "depends_on"),
        "{err:?}"
    );
}

#[test]
fn a_missing_secret_or_dependency_is_reported() {
    let mut modules = walkthrough();
    modules[3].resources.push(helm(
        "sso",
        "other",
        "sso",
        json!({"existingSecret": "${secret.sso.nope}"}),
    ));
    let err = Graph::build(modules).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`sso.helm_release.other` field `values.existingSecret` uses `${secret.sso.nope}`, but there is no `sso.generated_secret.nope`; known generated secrets: `sso.oauth2-proxy`"
    );

    let mut modules = walkthrough();
    modules[2].resources[0]
        .depends_on
        .push(Dependency::Resource(addr("gateway.object.namespace/nope")));
    let err = Graph::build(modules).unwrap_err();
    assert!(
        matches!(err, GraphError::MissingDependency { .. }),
        "{err:?}"
    );
}

#[test]
fn structural_errors() {
    let mut modules = walkthrough();
    modules[3].resources.push(object("sso", namespace("sso")));
    assert_eq!(
        Graph::build(modules).unwrap_err(),
        GraphError::DuplicateAddress(addr("sso.object.namespace/sso"))
    );

    let mut modules = walkthrough();
    modules[3].resources.push(object("gateway", namespace("x")));
    assert!(matches!(
        Graph::build(modules).unwrap_err(),
        GraphError::ForeignAddress { .. }
    ));

    let mut modules = walkthrough();
    modules[3].resources[0].address = addr("sso.helm_release.ns");
    assert!(matches!(
        Graph::build(modules).unwrap_err(),
        GraphError::KindMismatch { .. }
    ));

    let mut modules = walkthrough();
    modules[3].outputs.push(crate::resource::Output::known(
        OutputRef::new("sso", "x"),
        addr("sso.helm_release.nope"),
        json!(1),
    ));
    assert!(matches!(
        Graph::build(modules).unwrap_err(),
        GraphError::UnknownProducer { .. }
    ));

    let mut modules = walkthrough();
    let output = modules[2].outputs[0].clone();
    modules[2].outputs.push(output);
    assert!(matches!(
        Graph::build(modules).unwrap_err(),
        GraphError::DuplicateOutput(_)
    ));
}

#[test]
fn malformed_placeholders_and_sensitive_paths_are_graph_errors() {
    let mut modules = walkthrough();
    modules[3]
        .resources
        .push(helm("sso", "bad", "sso", json!({"a": ["${output.sso}"]})));
    let err = Graph::build(modules).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`sso.helm_release.bad`: field `values.a[0]`: "),
        "{err}"
    );

    let mut modules = walkthrough();
    let mut bad = helm("sso", "bad", "sso", json!({}));
    if let ResourceSpec::HelmRelease(spec) = &mut bad.spec {
        spec.sensitive_paths = vec!["a[".into()];
    }
    modules[3].resources.push(bad);
    assert!(matches!(
        Graph::build(modules).unwrap_err(),
        GraphError::SensitivePath { .. }
    ));
}

fn small_graph() -> Graph {
    let cm = |name: &str, data: serde_json::Value| {
        crate::resource::Resource::object(
            "app",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "app"}, "data": data}),
            Ownership::Owned,
        )
        .unwrap()
    };
    let module = Module::new("app")
        .with_resource(object("app", namespace("app")))
        .with_resource(cm("b", json!({"from": "${output.app.a_name}"})))
        .with_resource(cm("a", json!({})))
        .with_output(crate::resource::Output::known(
            OutputRef::new("app", "a_name"),
            addr("app.object.configmap/app/a"),
            json!("a"),
        ));
    Graph::build(vec![module]).unwrap()
}

#[test]
fn render_text_lists_incoming_edges() {
    assert_eq!(
        small_graph().render_text(),
        "\
app.object.namespace/app
app.object.configmap/app/a
    <- app.object.namespace/app (namespace app)
app.object.configmap/app/b
    <- app.object.configmap/app/a (output app.a_name)
    <- app.object.namespace/app (namespace app)
"
    );
}

#[test]
fn render_dot_is_graphviz() {
    assert_eq!(
        small_graph().render_dot(),
        r#"digraph envctl {
    rankdir=LR;
    node [shape=box];
    "app.object.namespace/app";
    "app.object.configmap/app/a";
    "app.object.configmap/app/b";
    "app.object.configmap/app/a" -> "app.object.configmap/app/b" [label="output app.a_name"];
    "app.object.namespace/app" -> "app.object.configmap/app/a" [label="namespace app"];
    "app.object.namespace/app" -> "app.object.configmap/app/b" [label="namespace app"];
}
"#
    );
}

#[test]
fn desired_documents_resolve_known_and_mark_unknown() {
    let graph = Graph::build(walkthrough()).unwrap();
    let bindings = graph.bindings();
    let desired = graph
        .desired(&addr("sso.helm_release.oauth2-proxy"), &bindings, "dev")
        .unwrap();
    assert_eq!(
        desired.doc["values"],
        json!({"hostAliases": [{"ip": "(known after apply <- sso.dex_cluster_ip)",
                                "hostnames": ["dex.example.com"]}],
               "config": {"existingSecret": "oauth2-proxy"}})
    );
    assert_eq!(desired.unknown, [OutputRef::new("sso", "dex_cluster_ip")]);

    let mut after_dex = bindings.clone();
    after_dex
        .outputs
        .insert(OutputRef::new("sso", "dex_cluster_ip"), json!("10.96.0.42"));
    let desired = graph
        .desired(&addr("sso.helm_release.oauth2-proxy"), &after_dex, "dev")
        .unwrap();
    assert_eq!(
        desired.doc["values"]["hostAliases"][0]["ip"],
        json!("10.96.0.42")
    );
    assert!(desired.unknown.is_empty());

    let gateway = graph
        .desired(
            &addr("gateway.object.gateway/gateway/istio-gateway"),
            &bindings,
            "dev",
        )
        .unwrap();
    assert_eq!(gateway.doc["spec"]["gatewayClassName"], json!("istio"));
    assert_eq!(
        gateway.doc["metadata"]["annotations"]["envctl.dev/address"],
        json!("gateway.object.gateway/gateway/istio-gateway")
    );
    // A FieldsOnly object gets no ownership metadata: we do not own it.
    let default_ns = graph
        .desired(&addr("gateway.object.namespace/default"), &bindings, "dev")
        .unwrap();
    assert_eq!(
        default_ns.doc["metadata"],
        json!({"name": "default", "labels": {"istio-injection": "enabled"}})
    );

    assert_eq!(
        graph
            .desired(&addr("sso.helm_release.nope"), &bindings, "dev")
            .unwrap_err(),
        DesiredError::UnknownAddress(addr("sso.helm_release.nope"))
    );
}
