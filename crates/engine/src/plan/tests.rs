use super::*;
use crate::redact::SENSITIVE;
use crate::render::{render_yaml_documents, to_yaml};
use crate::testutil::*;
use serde_json::json;

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "app"}, "data": data})
}

fn change(
    address: &str,
    action: Action,
    before: Option<Value>,
    after: Option<Value>,
) -> ResourceChange {
    ResourceChange::new(addr(address), action, before, after, Sensitivity::default())
}

/// A change that creates `after`.
fn create(address: &str, after: Value) -> ResourceChange {
    change(address, Action::Create, None, Some(after))
}

/// A change that deletes `before`.
fn delete(address: &str, before: Value) -> ResourceChange {
    change(address, Action::Delete, Some(before), None)
}

/// A plan of the environment `dev` with these changes.
fn plan_of(changes: Vec<ResourceChange>) -> Plan {
    let mut plan = Plan::new("dev");
    plan.changes = changes;
    plan
}

/// A small plan with one of each action.
fn mixed_plan() -> Plan {
    plan_of(vec![
        create("app.object.configmap/app/new", cm("new", json!({"k": "v"})))
            .with_waits_for(["customresourcedefinition/things.example.com".to_owned()]),
        change(
            "app.object.configmap/app/same",
            Action::NoOp,
            Some(cm("same", json!({}))),
            Some(cm("same", json!({}))),
        ),
        change(
            "app.object.configmap/app/edited",
            Action::Update,
            Some(cm(
                "edited",
                json!({"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}),
            )),
            Some(cm(
                "edited",
                json!({"a": "1", "b": "2", "c": "3", "d": "four", "e": "5"}),
            )),
        )
        .with_drift(FieldDrift {
            path: "data.d".into(),
            manager: Some("kubectl-edit".into()),
            operation: Some("Update".into()),
            time: Some("2026-11-28T12:00:00Z".into()),
        })
        .with_note("kubectl edit changed this object"),
        delete("app.object.configmap/app/old", cm("old", json!({"k": "v"}))),
        change(
            "cluster.cluster.istio",
            Action::Replace {
                reason: "the node image changed".into(),
            },
            Some(json!({"name": "istio", "node_image": "kindest/node:v1.35.0"})),
            Some(json!({"name": "istio", "node_image": "kindest/node:v1.36.1"})),
        ),
    ])
}

const MIXED_PLAN_TEXT: &str = r#"envctl plan for environment "dev"

Resource actions are indicated with the following symbols:
  + create
  ~ update in-place
  - destroy
-/+ destroy and then create replacement

envctl will perform the following actions:

  # app.object.configmap/app/new will be created (after customresourcedefinition/things.example.com)
    + apiVersion: v1
    + kind: ConfigMap
    + metadata:
    +   name: new
    +   namespace: app
    + data:
    +   k: v

  # app.object.configmap/app/edited will be updated in-place
    @@ -7,5 +7,5 @@
        a: "1"
        b: "2"
        c: "3"
    -   d: "4"
    +   d: four
        e: "5"
    Changed outside envctl (will be overwritten):
      field data.d: last written by kubectl-edit (Update, 2026-11-28T12:00:00Z)
    Note: kubectl edit changed this object

  # app.object.configmap/app/old will be destroyed
    - apiVersion: v1
    - kind: ConfigMap
    - metadata:
    -   name: old
    -   namespace: app
    - data:
    -   k: v

  # cluster.cluster.istio must be replaced (the node image changed)
    @@ -1,2 +1,2 @@
      name: istio
    - node_image: kindest/node:v1.35.0
    + node_image: kindest/node:v1.36.1

Plan: 2 to add, 1 to change, 2 to destroy.
"#;

#[test]
fn plan_text_without_colour() {
    assert_eq!(mixed_plan().render_text(false), MIXED_PLAN_TEXT);
}

#[test]
fn plan_text_with_colour() {
    let mut plan = plan_of(vec![
        create("app.object.configmap/app/a", json!({"k": "v"})),
        change(
            "app.object.configmap/app/b",
            Action::Update,
            Some(json!({"x": 1})),
            Some(json!({"x": 2})),
        ),
        delete("app.object.configmap/app/c", json!({"k": "v"})),
    ]);
    plan.changes[1].sensitive_changes = vec!["data.password".into()];
    let expected = [
        "envctl plan for environment \"dev\"",
        "",
        "Resource actions are indicated with the following symbols:",
        "\x1b[32m  +\x1b[0m create",
        "\x1b[33m  ~\x1b[0m update in-place",
        "\x1b[31m  -\x1b[0m destroy",
        "",
        "envctl will perform the following actions:",
        "",
        "  \x1b[1m# app.object.configmap/app/a will be created\x1b[0m",
        "    \x1b[32m+ k: v\x1b[0m",
        "",
        "  \x1b[1m# app.object.configmap/app/b will be updated in-place\x1b[0m",
        "    @@ -1 +1 @@",
        "    \x1b[31m- x: 1\x1b[0m",
        "    \x1b[32m+ x: 2\x1b[0m",
        "    \x1b[33m~ data.password: (sensitive value)\x1b[0m",
        "",
        "  \x1b[1m# app.object.configmap/app/c will be destroyed\x1b[0m",
        "    \x1b[31m- k: v\x1b[0m",
        "",
        "\x1b[1mPlan: 1 to add, 1 to change, 1 to destroy.\x1b[0m",
        "",
    ]
    .join("\n");
    assert_eq!(plan.render_text(true), expected);
    // Without colour there is no escape at all.
    assert!(!plan.render_text(false).contains('\x1b'));
}

#[test]
fn no_changes_text() {
    let mut plan = Plan::new("dev");
    plan.changes.push(change(
        "app.object.configmap/app/a",
        Action::NoOp,
        Some(json!({})),
        Some(json!({})),
    ));
    assert!(!plan.has_changes());
    assert_eq!(
        plan.render_text(false),
        "envctl plan for environment \"dev\"\n\nNo changes. Your environment matches the configuration.\n"
    );
}

#[test]
fn summary_counts_replace_as_add_and_destroy() {
    let plan = mixed_plan();
    assert!(plan.has_changes());
    assert_eq!(
        plan.summary(),
        Summary {
            add: 2,
            change: 1,
            destroy: 2
        }
    );
    assert_eq!(
        plan.summary().to_string(),
        "Plan: 2 to add, 1 to change, 2 to destroy."
    );
    assert_eq!(Plan::new("x").summary(), Summary::default());
}

#[test]
fn drift_without_details() {
    let drift = FieldDrift {
        path: "spec.replicas".into(),
        manager: None,
        operation: None,
        time: None,
    };
    assert_eq!(
        drift.to_string(),
        "field spec.replicas: changed outside envctl"
    );
}

#[test]
fn json_has_the_documented_fields() {
    let mut plan = mixed_plan();
    plan.fingerprints
        .insert(addr("cluster.cluster.istio"), "abc".into());
    let json = plan.to_json();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "format_version",
            "environment",
            "resource_changes",
            "summary",
            "fingerprints"
        ]
    );
    assert_eq!(json["format_version"], json!("1"));
    assert_eq!(json["environment"], json!("dev"));
    assert_eq!(
        json["summary"],
        json!({"add": 2, "change": 1, "destroy": 2})
    );
    assert_eq!(
        json["fingerprints"],
        json!({"cluster.cluster.istio": "abc"})
    );
    let changes = json["resource_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 5, "no-op changes are listed too");
    let first = changes[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "address",
            "module",
            "kind",
            "action",
            "reason",
            "before",
            "after",
            "unknown",
            "waits_for",
            "drift",
            "notes",
            "sensitive_changes",
            "object_changes"
        ]
    );
    assert_eq!(first["object_changes"], Value::Null, "not a Helm release");
    assert_eq!(first["address"], json!("app.object.configmap/app/new"));
    assert_eq!(first["module"], json!("app"));
    assert_eq!(first["kind"], json!("object"));
    assert_eq!(first["action"], json!("create"));
    assert_eq!(first["reason"], Value::Null);
    assert_eq!(first["before"], Value::Null);
    assert_eq!(
        first["waits_for"],
        json!(["customresourcedefinition/things.example.com"])
    );
    let actions: Vec<&str> = changes
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "no-op", "update", "delete", "replace"]);
    assert_eq!(changes[4]["reason"], json!("the node image changed"));
    assert_eq!(changes[4]["kind"], json!("cluster"));
    assert_eq!(
        changes[2]["drift"],
        json!([{"path": "data.d", "manager": "kubectl-edit", "operation": "Update",
                "time": "2026-11-28T12:00:00Z"}])
    );
}

#[test]
fn json_round_trips_and_checks_the_version() {
    let plan = mixed_plan();
    let back = Plan::from_json(&plan.to_json()).unwrap();
    assert_eq!(back.render_text(false), MIXED_PLAN_TEXT);
    assert_eq!(back.to_json(), plan.to_json());

    let mut json = plan.to_json();
    json["format_version"] = json!("2");
    assert_eq!(
        Plan::from_json(&json).unwrap_err(),
        PlanJsonError::Version("2".into())
    );
    let err = Plan::from_json(&json!({"hello": 1})).unwrap_err();
    assert!(matches!(err, PlanJsonError::Schema(_)), "{err}");
    let mut json = plan.to_json();
    json["resource_changes"][0]["action"] = json!("explode");
    assert!(matches!(
        Plan::from_json(&json).unwrap_err(),
        PlanJsonError::Action { .. }
    ));
}

// Secret material, in clear and base64, that must never appear in any rendering.
const SECRETS: [&str; 6] = [
    "hunter2",
    "aHVudGVyMg==",
    "old-client-secret",
    "new-client-secret",
    "cookie-0123456789abcdef",
    "Y29va2llLTAxMjM0NTY3ODlhYmNkZWY=",
];

fn secret_plan() -> Plan {
    let secret = |client_secret: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "oauth2-proxy", "namespace": "sso"},
            "data": {"client-id": "b2F1dGgyLXByb3h5", "cookie-secret": "Y29va2llLTAxMjM0NTY3ODlhYmNkZWY="},
            "stringData": {"client-secret": client_secret}})
    };
    let values = |client_secret: &str| {
        json!({"release": "dex", "values": {"config": {"staticClients": [
            {"id": "oauth2-proxy", "secret": client_secret}]}, "adminPassword": "hunter2"}})
    };
    let mut plan = Plan::new("dev");
    plan.changes.push(ResourceChange::new(
        addr("sso.generated_secret.oauth2-proxy"),
        Action::Update,
        Some(secret("old-client-secret")),
        Some(secret("new-client-secret")),
        Sensitivity {
            paths: vec![],
            plain_keys: vec!["client-id".into()],
        },
    ));
    plan.changes.push(ResourceChange::new(
        addr("sso.helm_release.dex"),
        Action::Update,
        Some(values("old-client-secret")),
        Some(values("new-client-secret")),
        Sensitivity::paths([
            "values.config.staticClients[*].secret",
            "values.adminPassword",
        ]),
    ));
    plan.changes.push(ResourceChange::new(
        addr("sso.object.secret/sso/raw"),
        Action::Create,
        None,
        Some(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "raw"},
            "stringData": {"password": "hunter2"}}),
        ),
        Sensitivity::default(),
    ));
    plan
}

#[test]
fn no_secret_material_survives_rendering() {
    let plan = secret_plan();
    let renderings = [
        plan.render_text(false),
        plan.render_text(true),
        plan.to_json().to_string(),
        format!("{plan:?}"),
    ];
    for text in &renderings {
        for secret in SECRETS {
            assert!(!text.contains(secret), "`{secret}` leaked into:\n{text}");
        }
    }
    let text = &renderings[0];
    // ...but the reader still sees that the sensitive values changed, and the plain key.
    assert!(
        text.contains("    ~ stringData.client-secret: (sensitive value)\n"),
        "{text}"
    );
    assert!(
        text.contains("    ~ values.config.staticClients[0].secret: (sensitive value)\n"),
        "{text}"
    );
    assert!(
        !text.contains("~ values.adminPassword"),
        "unchanged values are not reported: {text}"
    );
    // A plain key of a generated secret stays readable.
    assert_eq!(
        plan.to_json()["resource_changes"][0]["after"]["data"]["client-id"],
        json!("b2F1dGgyLXByb3h5")
    );
    assert!(text.contains(&format!("password: {SENSITIVE}")), "{text}");
    assert_eq!(
        plan.to_json()["resource_changes"][0]["sensitive_changes"],
        json!(["stringData.client-secret"])
    );
}

#[test]
fn hand_built_changes_are_redacted_when_rendered() {
    // A caller that fills `before`/`after` directly still cannot leak a Secret or a sensitive path.
    let mut plan = Plan::new("dev");
    let mut raw = change("sso.helm_release.dex", Action::Create, None, None);
    raw.after = Some(json!({"values": {"adminPassword": "hunter2"}}));
    raw.sensitivity = Sensitivity::paths(["values.adminPassword"]);
    plan.changes.push(raw);
    let mut secret = change("sso.object.secret/sso/x", Action::Create, None, None);
    secret.after = Some(json!({"kind": "Secret", "data": {"k": "aHVudGVyMg=="}}));
    plan.changes.push(secret);
    for text in [plan.render_text(false), plan.to_json().to_string()] {
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg=="),
            "{text}"
        );
    }
}

#[test]
fn offline_plan_of_the_walkthrough() {
    let graph = Graph::build(walkthrough()).unwrap();
    let plan = Plan::offline(&graph, "dev", &graph.bindings()).unwrap();
    assert_eq!(
        plan.summary(),
        Summary {
            add: 13,
            change: 0,
            destroy: 0
        }
    );
    let order: Vec<&Address> = plan.changes.iter().map(|c| &c.address).collect();
    assert_eq!(order, graph.order().iter().collect::<Vec<_>>());
    let text = plan.render_text(false);
    assert!(text.contains(
        "  # sso.object.httproute/sso/dex will be created (after customresourcedefinition/httproutes.gateway.networking.k8s.io)\n"
    ), "{text}");
    assert!(
        text.contains("    +   - ip: (known after apply <- sso.dex_cluster_ip)\n"),
        "{text}"
    );
    assert!(text.contains("    +   client-id: oauth2-proxy\n"), "{text}");
    assert!(
        text.contains("    +   cookie-secret: (sensitive value)\n"),
        "{text}"
    );
    assert!(
        !text.contains("dex-client-secret-value"),
        "helm sensitive path leaked: {text}"
    );
    let oauth2 = plan
        .changes
        .iter()
        .find(|c| c.address == addr("sso.helm_release.oauth2-proxy"))
        .unwrap();
    assert_eq!(oauth2.unknown, [OutputRef::new("sso", "dex_cluster_ip")]);
    assert_eq!(
        plan.to_json()["resource_changes"][11]["unknown"],
        json!(["sso.dex_cluster_ip"])
    );
}

#[test]
fn yaml_documents_for_render() {
    let graph =
        Graph::build(
            vec![crate::resource::Module::new("app").with_resource(
        crate::resource::Resource::object(
            "app",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
            crate::resource::Ownership::FieldsOnly,
        )
        .unwrap(),
    )
    .with_resource(helm("app", "web", "app", json!({"replicas": 2, "password": "x"})))],
        )
        .unwrap();
    let mut docs = graph.desired_all(&graph.bindings(), "dev").unwrap();
    docs[1].sensitivity = Sensitivity::paths(["values.password"]);
    assert_eq!(
        render_yaml_documents(&docs),
        "---
# app.object.namespace/app
apiVersion: v1
kind: Namespace
metadata:
  name: app
---
# app.helm_release.web
release: web
namespace: app
create_namespace: false
chart:
  repo: https://charts.example.com/web
  chart: web
  version: \"1.0.0\"
values:
  replicas: 2
  password: (sensitive value)
"
    );
}

#[test]
fn yaml_keeps_insertion_order() {
    assert_eq!(
        to_yaml(&json!({"z": 1, "a": {"y": [1, "two"], "b": null}})),
        "z: 1\na:\n  \"y\":\n  - 1\n  - two\n  b: null\n"
    );
}

#[test]
fn plan_json_md_documents_every_field() {
    const DOC: &str = include_str!("../../PLAN_JSON.md");
    let json = mixed_plan().to_json();
    let mut fields: Vec<&String> = json.as_object().unwrap().keys().collect();
    fields.extend(json["resource_changes"][0].as_object().unwrap().keys());
    for field in fields {
        assert!(
            DOC.contains(&format!("| `{field}` |")),
            "PLAN_JSON.md does not document `{field}`"
        );
    }
    // The example in the document is a plan this version reads.
    let example = DOC
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("PLAN_JSON.md has a json example");
    let example: Value = serde_json::from_str(example).unwrap();
    let plan = Plan::from_json(&example).unwrap();
    assert_eq!(
        plan.summary(),
        Summary {
            add: 1,
            change: 0,
            destroy: 0
        }
    );
    assert_eq!(
        plan.to_json(),
        example,
        "the example is exactly what to_json writes"
    );
}

fn release_doc(port: u16, version: &str) -> Value {
    json!({"release": "dex", "namespace": "sso", "create_namespace": false,
        "chart": {"repo": "https://charts.dexidp.io", "chart": "dex", "version": version},
        "values": {"service": {"ports": {"http": {"port": port}}}}})
}

fn dex_service(port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "dex", "namespace": "sso"},
        "spec": {"ports": [{"name": "http", "port": port, "targetPort": "http"}]}})
}

fn dex_secret(config: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dex", "namespace": "sso"},
        "data": {"config.yaml": config}})
}

/// An upgrade of `dex` that changes the Service's port, the config Secret, creates a
/// ConfigMap and deletes a ServiceAccount.
fn release_plan() -> Plan {
    let mut plan = Plan::new("dev");
    let objects = vec![
        crate::ObjectChange::create(&cm("extra", json!({"k": "v"})), &[]),
        crate::ObjectChange::update(
            &dex_secret("b2xkLWNvbmZpZw=="),
            &dex_secret("bmV3LWNvbmZpZw=="),
            &[],
        )
        .unwrap(),
        crate::ObjectChange::update(&dex_service(80), &dex_service(8080), &[]).unwrap(),
        crate::ObjectChange::delete(
            &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "old", "namespace": "sso"}}),
            &[],
        ),
    ];
    plan.changes = vec![
        change(
            "sso.helm_release.dex",
            Action::Update,
            Some(release_doc(80, "0.24.0")),
            Some(release_doc(8080, "0.24.0")),
        )
        .with_objects(objects),
    ];
    plan
}

const RELEASE_PLAN_TEXT: &str = r#"envctl plan for environment "dev"

Resource actions are indicated with the following symbols:
  ~ update in-place

envctl will perform the following actions:

  # sso.helm_release.dex will be updated in-place
    @@ -9,4 +9,4 @@
        service:
          ports:
            http:
    -         port: 80
    +         port: 8080
    Objects the upgrade changes (server-side dry run):
      + configmap/app/extra
      ~ secret/sso/dex
          ~ data["config.yaml"]: (sensitive value)
      ~ service/sso/dex
          ~ spec.ports[0].port: 80 -> 8080
      - serviceaccount/sso/old

Plan: 0 to add, 1 to change, 0 to destroy.
"#;

#[test]
fn a_release_change_shows_its_object_changes_under_the_values_diff() {
    let plan = release_plan();
    assert_eq!(plan.render_text(false), RELEASE_PLAN_TEXT);
    let coloured = plan.render_text(true);
    assert!(
        coloured.contains("    \x1b[33m  ~ service/sso/dex\x1b[0m"),
        "{coloured}"
    );
    assert!(coloured.contains("    \x1b[32m  + configmap/app/extra\x1b[0m"));
    assert!(coloured.contains("    \x1b[31m  - serviceaccount/sso/old\x1b[0m"));
    // No Secret value in any rendering.
    let json = plan.to_json().to_string();
    for text in [plan.render_text(false), json.clone()] {
        assert!(!text.contains("b2xk") && !text.contains("bmV3"), "{text}");
    }
    // The JSON carries the object changes under the release's change, and reads back.
    let json = plan.to_json();
    let objects = json["resource_changes"][0]["object_changes"]
        .as_array()
        .unwrap();
    let summary: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| (o["object"].as_str().unwrap(), o["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("configmap/app/extra", "create"),
            ("secret/sso/dex", "update"),
            ("service/sso/dex", "update"),
            ("serviceaccount/sso/old", "delete")
        ]
    );
    assert_eq!(
        objects[2]["fields"],
        json!([{"path": "spec.ports[0].port", "before": 80, "after": 8080}])
    );
    assert_eq!(objects[2]["after"], dex_service(8080));
    assert_eq!(objects[1]["after"]["data"]["config.yaml"], json!(SENSITIVE));
    let back = Plan::from_json(&json).unwrap();
    assert_eq!(back.render_text(false), RELEASE_PLAN_TEXT);
    assert_eq!(back.to_json(), json);
}

#[test]
fn a_release_change_that_renders_the_same_objects_says_so() {
    let plan = plan_of(vec![
        change(
            "sso.helm_release.dex",
            Action::Update,
            Some(release_doc(80, "0.24.0")),
            Some(release_doc(8080, "0.24.0")),
        )
        .with_objects(vec![]),
        change(
            "sso.helm_release.other",
            Action::Update,
            Some(release_doc(80, "0.24.0")),
            Some(release_doc(80, "0.25.0")),
        )
        .with_objects(vec![]),
    ]);
    let text = plan.render_text(false);
    assert!(
        text.contains("+         port: 8080\n    Objects: values changed, no object changes\n"),
        "{text}"
    );
    assert!(
        text.contains("    Objects: chart changed, no object changes\n"),
        "{text}"
    );
    assert_eq!(
        plan.to_json()["resource_changes"][0]["object_changes"],
        json!([])
    );
}

#[test]
fn an_install_lists_the_objects_it_creates() {
    let plan = plan_of(vec![
        create("sso.helm_release.dex", release_doc(80, "0.24.0")).with_objects(vec![
            crate::ObjectChange::create(&dex_secret("c2VjcmV0"), &[]),
            crate::ObjectChange::create(&dex_service(80), &[]),
        ]),
    ]);
    let text = plan.render_text(false);
    assert!(
        text.contains(
            "    Objects the install creates:\n      + secret/sso/dex\n      + service/sso/dex\n"
        ),
        "{text}"
    );
    assert!(!plan.to_json().to_string().contains("c2VjcmV0"));
}

#[test]
fn plan_json_md_documents_the_object_changes() {
    const DOC: &str = include_str!("../../PLAN_JSON.md");
    let json = release_plan().to_json();
    let object = &json["resource_changes"][0]["object_changes"][2];
    let mut fields: Vec<&String> = object.as_object().unwrap().keys().collect();
    fields.extend(object["fields"][0].as_object().unwrap().keys());
    for field in fields {
        assert!(
            DOC.contains(&format!("| `{field}` |")),
            "PLAN_JSON.md does not document `{field}` of an object change"
        );
    }
}
