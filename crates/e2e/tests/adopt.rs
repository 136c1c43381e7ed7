//! An object that exists but is not envctl's is never taken over silently (issue 8): a
//! ConfigMap created by someone else and then declared in `infra/` is refused by plan and
//! apply, naming its address and `--adopt`; destroy leaves it alone; with `--adopt ADDRESS` it
//! becomes envctl's (overwritten, labelled), and only then does destroy delete it. An object
//! labelled as another manager's (Helm's) is refused the same way.
//!
//! One scenario; this file is its own test binary.

use e2e::{InfraCopy, describe, xtask};

const ADDRESS: &str = "gateway.object.configmap/default/adopt-me";

fn run(infra: &InfraCopy, args: &[&str]) -> std::process::Output {
    let dir = infra.path().display().to_string();
    let mut all = args.to_vec();
    all.extend(["--env", "kwok", "--infra", &dir, "--module", "gateway"]);
    xtask(&all)
}

async fn config_map(client: &kube::Client) -> Option<kube::api::DynamicObject> {
    e2e::typed_api(client, "v1", "ConfigMap", "configmaps", Some("default"))
        .get_opt("adopt-me")
        .await
        .expect("reading the ConfigMap")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_object_is_refused_unless_adopted_and_destroy_leaves_it() {
    let client = e2e::client().await;
    e2e::apply_yaml(
        &client,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adopt-me\n  namespace: default\ndata:\n  owner: someone-else\n",
        Some("default"),
    )
    .await;
    let version = config_map(&client).await.unwrap().metadata.resource_version;

    let infra = InfraCopy::new();
    let mut text = infra.read("gateway/namespace.yaml");
    text.push_str("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adopt-me\n  namespace: default\ndata:\n  owner: envctl\n");
    infra.write("gateway/namespace.yaml", &text);

    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let out = run(&infra, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            stderr.contains(&format!(
                "{ADDRESS}: ConfigMap default/adopt-me already exists and is not envctl's"
            )) && stderr.contains(&format!("--adopt {ADDRESS}"))
                && stderr.contains("envctl-e2e"),
            "{}",
            describe(&out)
        );
    }
    let out = run(&infra, &["destroy", "--auto-approve"]);
    assert!(out.status.success(), "{}", describe(&out));
    let cm = config_map(&client)
        .await
        .expect("destroy left the foreign ConfigMap");
    assert_eq!(cm.metadata.resource_version, version, "nothing wrote to it");
    assert_eq!(cm.data["data"]["owner"], "someone-else");

    // An address that names nothing is refused.
    let out = run(
        &infra,
        &[
            "plan",
            "--adopt",
            "gateway.object.configmap/default/nothing",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    // Adopted on purpose: planned as an update, applied, labelled as envctl's.
    let out = run(&infra, &["plan", "--adopt", ADDRESS]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(ADDRESS),
        "{}",
        describe(&out)
    );
    let out = run(&infra, &["apply", "--auto-approve", "--adopt", ADDRESS]);
    assert!(out.status.success(), "{}", describe(&out));
    let cm = config_map(&client).await.expect("adopted");
    assert_eq!(cm.data["data"]["owner"], "envctl");
    assert_eq!(
        cm.metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("envctl")
    );
    // Now it is envctl's: the next plan needs no --adopt, and destroy deletes it.
    let out = run(&infra, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = run(&infra, &["destroy", "--auto-approve"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        config_map(&client).await.is_none(),
        "destroy deleted the adopted ConfigMap"
    );

    // Another manager's object that the plan's lists hold (labelled as Helm's: the plan lists
    // each type with `app.kubernetes.io/managed-by in (envctl,Helm)`) is refused all the
    // same, read from the list, naming its manager.
    e2e::apply_yaml(
        &client,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adopt-me\n  namespace: default\n  labels:\n    app.kubernetes.io/managed-by: Helm\ndata:\n  owner: helm\n",
        Some("default"),
    )
    .await;
    let out = run(&infra, &["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{ADDRESS}: ConfigMap default/adopt-me already exists and is not envctl's: it is \
             managed by `Helm`"
        )),
        "{}",
        describe(&out)
    );
    e2e::typed_api(&client, "v1", "ConfigMap", "configmaps", Some("default"))
        .delete("adopt-me", &Default::default())
        .await
        .expect("deleting the ConfigMap");
}
