//! The gateway module's readiness rule, through live's readiness hook, against the testenv:
//! apply waits for a Gateway only when the registry holds the gateway module's rule and a
//! controller has accepted the Gateway's class. The test plays the controller: it sets the
//! class's `Accepted` and the Gateway's `Programmed` through the status subresource, as Istio
//! would. Without the rule (a registry without the gateway module), the same Gateway is done
//! as soon as it is applied.
//!
//! The CRDs and classes it creates are deleted at the end (every test file shares one cluster).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{DEFAULT_TIMEOUT, TestNamespace};
use engine::{Graph, Module, Ownership, Resource};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use live::runner::{RunOptions, Runner};
use live::wait::WaitOptions;
use live::{Cluster, Progress};
use serde_json::{Value, json};

const CRDS: [(&str, &str); 2] = [
    (
        "gatewayclasses.gateway.networking.k8s.io",
        "gateway.networking.k8s.io_gatewayclasses.yaml",
    ),
    (
        "gateways.gateway.networking.k8s.io",
        "gateway.networking.k8s.io_gateways.yaml",
    ),
];

fn condition(kind: &str, reason: &str) -> Value {
    json!({"type": kind, "status": "True", "reason": reason, "message": "set by the test",
           "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
}

fn gateway(namespace: &str, name: &str, class: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": class,
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
    })
}

/// One Gateway as an environment of its own, and the progress events its apply reported.
struct Run {
    graph: Graph,
    environment: String,
    events: Arc<Mutex<Vec<Progress>>>,
}

impl Run {
    fn new(gateway: Value) -> Run {
        let resource = Resource::object("gw", gateway, Ownership::Owned).expect("an address");
        Run {
            graph: Graph::build(vec![Module::new("gw").with_resource(resource)]).expect("a graph"),
            environment: e2e::unique_name("gwready"),
            events: Arc::default(),
        }
    }

    /// Applies the Gateway; what was reported.
    async fn apply(&self, rules: Vec<&'static dyn live::ReadinessRule>) -> Vec<Progress> {
        let cluster = Cluster::connect(Some(&e2e::kubeconfig()), None)
            .await
            .expect("connecting to the testenv");
        let sink = self.events.clone();
        let reporter = move |event: &Progress| sink.lock().unwrap().push(event.clone());
        let options = RunOptions {
            readiness: rules,
            wait: WaitOptions {
                timeout: Duration::from_secs(60),
                poll: Duration::from_secs(1),
                progress_every: Duration::from_secs(1),
                ..WaitOptions::default()
            },
            ..RunOptions::default()
        };
        let runner = Runner::new(cluster, &self.graph, &self.environment, options, &reporter);
        let plan = runner.plan().await.expect("plan");
        runner.apply(&plan).await.expect("apply");
        self.events.lock().unwrap().clone()
    }

    async fn destroy(&self) {
        let cluster = Cluster::connect(Some(&e2e::kubeconfig()), None)
            .await
            .expect("connecting to the testenv");
        let runner = Runner::new(
            cluster,
            &self.graph,
            &self.environment,
            RunOptions::default(),
            &|_: &Progress| {},
        );
        let plan = runner.plan_destroy().await.expect("plan destroy");
        runner.destroy(&plan).await.expect("destroy");
    }
}

fn waited(events: &[Progress]) -> bool {
    events.iter().any(|e| matches!(e, Progress::Waiting { .. }))
}

fn done(events: &[Progress]) -> bool {
    events.iter().any(|e| matches!(e, Progress::Done { .. }))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_is_awaited_only_through_the_gateway_modules_rule_where_its_class_is_served() {
    let client = e2e::client().await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for (name, file) in CRDS {
        let path = format!(
            "raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.5.1/config/crd/standard/{file}"
        );
        let yaml = std::fs::read_to_string(e2e::mirror_file(&path)).unwrap();
        e2e::apply_yaml(&client, &yaml, None).await;
        e2e::wait_for(&crds, name, DEFAULT_TIMEOUT, e2e::is_crd_established).await;
    }
    let ns = TestNamespace::create(&client, "gwready").await;
    let classes = e2e::typed_api(
        &client,
        "gateway.networking.k8s.io/v1",
        "GatewayClass",
        "gatewayclasses",
        None,
    );
    let gateways = e2e::typed_api(
        &client,
        "gateway.networking.k8s.io/v1",
        "Gateway",
        "gateways",
        Some(ns.name()),
    );
    // A class some controller accepted, and one nothing serves.
    let served = e2e::unique_name("e2e-served");
    let unserved = e2e::unique_name("e2e-unserved");
    for class in [&served, &unserved] {
        let object = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": class}, "spec": {"controllerName": "envctl.test/e2e"}});
        e2e::apply_yaml(&client, &object.to_string(), None).await;
    }
    classes
        .patch_status(
            &served,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [condition("Accepted", "Accepted")]}})),
        )
        .await
        .expect("accepting the class");
    let rules = xtask::readiness_rules;

    // The registry's rules, a class nothing serves: nothing will program it, no wait.
    let unserved_run = Run::new(gateway(ns.name(), "unserved", &unserved));
    let unserved_events = e2e::bounded(
        "apply of a Gateway of an unserved class",
        Duration::from_secs(30),
        unserved_run.apply(rules()),
    )
    .await;

    // A registry without the gateway module's rule: a served class, and still no wait.
    let without_run = Run::new(gateway(ns.name(), "without-rule", &served));
    let without_events = e2e::bounded(
        "apply of a Gateway without the gateway rule",
        Duration::from_secs(30),
        without_run.apply(Vec::new()),
    )
    .await;

    // The registry's rules and a served class: apply waits until the Gateway is Programmed.
    let served_run = Run::new(gateway(ns.name(), "served", &served));
    let apply = served_run.apply(rules());
    let controller = async {
        // Waiting, until the "controller" programs it.
        e2e::wait_until("apply to wait for the Gateway", DEFAULT_TIMEOUT, || async {
            waited(&served_run.events.lock().unwrap()).then_some(())
        })
        .await;
        let done_early = done(&served_run.events.lock().unwrap());
        gateways
            .patch_status(
                "served",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": [
                    condition("Accepted", "Accepted"),
                    condition("Programmed", "Programmed"),
                ]}})),
            )
            .await
            .expect("programming the Gateway");
        done_early
    };
    let (served_events, done_early) = e2e::bounded(
        "apply of a Gateway of a served class",
        Duration::from_secs(90),
        async { tokio::join!(apply, controller) },
    )
    .await;

    // Clean up before asserting (the CRDs would be foreign to the next test).
    for run in [&unserved_run, &without_run, &served_run] {
        run.destroy().await;
    }
    ns.delete().await;
    for class in [&served, &unserved] {
        e2e::delete_and_wait(&classes, class, DEFAULT_TIMEOUT).await;
    }
    for (name, _) in CRDS {
        e2e::delete_and_wait(&crds, name, DEFAULT_TIMEOUT).await;
    }

    assert!(
        done(&unserved_events) && !waited(&unserved_events),
        "no wait for a class nothing serves: {unserved_events:#?}"
    );
    assert!(
        done(&without_events) && !waited(&without_events),
        "no wait without the gateway rule: {without_events:#?}"
    );
    assert!(
        !done_early,
        "done before it was programmed: {served_events:#?}"
    );
    let waiting = served_events
        .iter()
        .find(|e| matches!(e, Progress::Waiting { .. }))
        .expect("a wait");
    assert!(
        matches!(waiting, Progress::Waiting { what, .. } if what == "condition Programmed"),
        "{waiting:?}"
    );
    assert!(done(&served_events), "{served_events:#?}");
}
