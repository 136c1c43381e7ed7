//! A failing wait says why, early (`live::wait`), against the testenv: an admission webhook
//! that refuses every Pod create in the test's namespace (failurePolicy Fail, its URL a port on
//! 127.0.0.1 where nothing listens). Applying a Deployment there must end long before the wait's
//! timeout, with the ReplicaSet's `FailedCreate` event and the Deployment's address; while it
//! waits, the reporter shows the event as it happens. Removing the webhook lets the next apply
//! converge.
//!
//! The webhook is scoped by namespaceSelector to the test's own namespace, so nothing else on
//! the testenv is refused, and it is removed before any assertion can fail.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::TestNamespace;
use engine::{Graph, Module, Ownership, Resource};
use live::runner::{RunOptions, Runner};
use live::wait::WaitOptions;
use live::{Cluster, Progress};
use serde_json::json;

/// A port on 127.0.0.1 where nothing listens (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    listener.local_addr().expect("its address").port()
}

fn deployment(namespace: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "registry.invalid/web:1"}],
                    // kwok runs pods on its simulated node only.
                    "nodeSelector": {"type": "kwok"}
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_refusing_every_pod_ends_the_wait_early_with_its_reason() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "refused").await;
    let webhooks = e2e::typed_api(
        &client,
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        None,
    );
    let webhook_name = e2e::unique_name("envctl-e2e-refuse");
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": webhook_name},
        "webhooks": [{
            "name": "refuse.envctl.test",
            "clientConfig": {"url": format!("https://127.0.0.1:{}/refuse", closed_port())},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name()}}
        }]
    });
    e2e::apply_yaml(&client, &webhook.to_string(), None).await;

    let cluster = Cluster::connect(Some(&e2e::kubeconfig()), None)
        .await
        .expect("connecting to the testenv");
    let resource =
        Resource::object("web", deployment(ns.name()), Ownership::Owned).expect("an address");
    let address = resource.address.to_string();
    let graph = Graph::build(vec![Module::new("web").with_resource(resource)]).expect("a graph");
    let environment = e2e::unique_name("waits");
    let lines = Arc::new(Mutex::new(Vec::<(Duration, Progress)>::new()));
    let start = Instant::now();
    let sink = lines.clone();
    let reporter =
        move |event: &Progress| sink.lock().unwrap().push((start.elapsed(), event.clone()));
    let options = RunOptions {
        wait: WaitOptions {
            timeout: Duration::from_secs(300),
            ..WaitOptions::default()
        },
        ..RunOptions::default()
    };
    let runner = Runner::new(cluster, &graph, &environment, options, &reporter);

    let plan = runner.plan().await.expect("plan");
    let applied = e2e::bounded(
        "apply against the refusing webhook",
        Duration::from_secs(200),
        runner.apply(&plan),
    )
    .await;
    let took = start.elapsed();

    // Remove the webhook before asserting anything.
    webhooks
        .delete(&webhook_name, &Default::default())
        .await
        .expect("removing the webhook");
    let printed: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|(t, l)| format!("[{:>3}s] {l}", t.as_secs()))
        .collect();
    let printed = printed.join("\n");
    eprintln!(
        "progress of the refused apply ({}s):\n{printed}",
        took.as_secs()
    );

    let error = applied.expect_err("the apply must fail").to_string();
    eprintln!("error: {error}");
    assert!(
        took < Duration::from_secs(90),
        "ended after {}s; the wait's timeout is 300s, the refusal should end it within its settle time",
        took.as_secs()
    );
    assert!(error.starts_with(&address), "names the address: {error}");
    assert!(
        error.contains("will not become ready by waiting"),
        "{error}"
    );
    assert!(error.contains("FailedCreate"), "{error}");
    assert!(
        error.contains("refuse.envctl.test"),
        "names the webhook: {error}"
    );
    assert!(error.contains("run apply again"), "{error}");
    // While waiting, the event was shown as it happened, long before the end.
    let (shown_at, _) = lines
        .lock()
        .unwrap()
        .iter()
        .find(|(_, event)| {
            matches!(event, Progress::Warning { address: a, reason, object, message }
                if a == &address && reason == "FailedCreate"
                    && object.starts_with("replicaset/") && message.contains("refuse.envctl.test"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no FailedCreate warning among the progress lines:\n{printed}"));
    assert!(
        shown_at < Duration::from_secs(20),
        "warning shown after {}s",
        shown_at.as_secs()
    );
    assert!(
        printed.contains(&format!("{address}: Warning FailedCreate")),
        "prefixed with the address:\n{printed}"
    );

    // With the webhook gone, the next apply converges.
    lines.lock().unwrap().clear();
    let plan = runner.plan().await.expect("plan after the webhook is gone");
    e2e::bounded(
        "apply after the webhook is gone",
        Duration::from_secs(240),
        runner.apply(&plan),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "apply after the webhook is gone: {e}\n{:?}",
            lines.lock().unwrap()
        )
    });
    let destroy = runner.plan_destroy().await.expect("plan destroy");
    runner.destroy(&destroy).await.expect("destroy");
    ns.delete().await;
}
