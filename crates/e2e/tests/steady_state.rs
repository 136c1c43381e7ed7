//! A steady-state plan of the whole environment runs no helm process: each release's state is
//! read from Helm's storage Secret, and a release whose objects still have the
//! resourceVersions recorded when apply verified them is neither rendered nor dry-run. An edit
//! out of band still shows as drift (it changes a resourceVersion), a controller writing the
//! status of an object without a generation (an HPA) does not make the plan check again
//! (its content is as recorded), and once repaired the plan is free again.
//!
//! The plan's requests to the API server are counted by a proxy in front of it
//! ([`e2e::CountedApi`]): discovery and one cluster-wide list per type it reads (Secrets twice:
//! the managed ones, and Helm's storage), no get, no dry run, no write. A label removed from a
//! release's object takes that object out of the lists: it is read on its own, and the removed
//! label is drift.
//!
//! helm is counted with a wrapper given as `ENVCTL_HELM` that logs each invocation and runs
//! the real helm. This file is its own test binary (the whole environment in the testenv).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e::{InfraCopy, describe};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

/// A helm that logs its arguments to `log` (one line per run) and runs the real one.
fn counting_helm(dir: &Path, log: &Path) -> PathBuf {
    let real = e2e::helm_binary();
    let script = dir.join("helm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script
}

struct Run<'a> {
    infra: &'a InfraCopy,
    helm: PathBuf,
    log: PathBuf,
}

impl Run<'_> {
    /// Runs `cargo xtask <args> --env kwok` with the counting helm; returns the output and
    /// the helm commands it ran.
    fn xtask(&self, args: &[&str]) -> (Output, Vec<String>) {
        self.xtask_with(args, None)
    }

    /// [`Run::xtask`], with another kubeconfig when given (the counted one).
    fn xtask_with(&self, args: &[&str], kubeconfig: Option<&Path>) -> (Output, Vec<String>) {
        let _ = std::fs::remove_file(&self.log);
        let infra = self.infra.path();
        let mut command = Command::new(std::env::var("ENVCTL_XTASK").expect("ENVCTL_XTASK is set"));
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let output = command
            .args(args)
            .args(["--env", "kwok", "--infra"])
            .arg(&infra)
            .env("ENVCTL_HELM", &self.helm)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("running xtask");
        let helm_runs = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        (output, helm_runs)
    }
}

/// Parallel apply: no change started before every change it depends on was done (and ready),
/// and independent changes did run at the same time (a change started while another was in
/// flight). Read from the progress lines and `cargo xtask graph`.
fn applied_along_the_graph(run: &Run, progress: &str) {
    let (graph, _) = run.xtask(&["graph"]);
    assert!(graph.status.success(), "{}", describe(&graph));
    let mut dependencies: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = String::new();
    for line in String::from_utf8_lossy(&graph.stdout).lines() {
        if let Some(dep) = line.trim_start().strip_prefix("<- ") {
            let dep = dep.split_whitespace().next().unwrap_or_default().to_owned();
            dependencies.entry(current.clone()).or_default().push(dep);
        } else if !line.trim().is_empty() {
            current = line.trim().to_owned();
            dependencies.entry(current.clone()).or_default();
        }
    }
    let mut started = std::collections::BTreeMap::new();
    let mut finished = std::collections::BTreeMap::new();
    let mut in_flight = 0usize;
    let mut overlapped = false;
    for (i, line) in progress.lines().enumerate() {
        let Some((address, rest)) = line.split_once(": ") else {
            continue;
        };
        if !dependencies.contains_key(address) {
            continue;
        }
        if rest.ends_with("...") && !started.contains_key(address) {
            started.insert(address.to_owned(), i);
            in_flight += 1;
            overlapped |= in_flight > 1;
        } else if rest.contains("complete after") {
            finished.insert(address.to_owned(), i);
            in_flight -= 1;
        }
    }
    assert!(
        started.len() > 20,
        "progress lines of the changes:\n{progress}"
    );
    assert_eq!(
        started.len(),
        finished.len(),
        "every start is done:\n{progress}"
    );
    for (address, start) in &started {
        for dep in &dependencies[address] {
            if let Some(done) = finished.get(dep) {
                assert!(
                    done < start,
                    "{address} started before {dep} was done:\n{progress}"
                );
            }
        }
    }
    assert!(
        overlapped,
        "independent changes ran one at a time:\n{progress}"
    );
}

/// Asserts the shape of a steady-state plan's reads: one list per type, cluster-wide (each
/// resource path listed once), but Secrets twice (the ones envctl and Helm manage, and Helm's
/// storage: a label selector cannot ask for either label), Namespaces unselected, no get at
/// all. Returns the number of types listed.
fn one_list_per_type(
    requests: &std::collections::BTreeMap<e2e::counting_proxy::Request, usize>,
    log: &[String],
) -> usize {
    let count = |verb: &str| -> usize {
        requests
            .iter()
            .filter(|(r, _)| r.verb == verb)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(count("get"), 0, "gets of a steady-state plan: {log:#?}");
    let mut by_path: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for target in log.iter().filter_map(|l| l.strip_prefix("GET ")) {
        if e2e::counting_proxy::classify("GET", target).verb != "list" {
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        by_path.entry(path).or_default().push(query);
    }
    let selected = "labelSelector=app.kubernetes.io%2Fmanaged-by+in+%28envctl%2CHelm%29";
    for (path, queries) in &by_path {
        assert!(
            !path.contains("/namespaces/"),
            "a list in one namespace: {path} {queries:?}"
        );
        match *path {
            "/api/v1/namespaces" => assert_eq!(queries.len(), 1, "{path} {queries:?}"),
            "/api/v1/secrets" => {
                assert_eq!(queries.len(), 2, "{path} {queries:?}");
                assert!(
                    queries.iter().any(|q| q.contains(selected))
                        && queries.iter().any(|q| q.contains("owner%3Dhelm")),
                    "{path} {queries:?}"
                );
            }
            _ => assert!(
                queries.len() == 1 && queries[0].contains(selected),
                "{path} listed {queries:?}"
            ),
        }
    }
    let types = by_path.len();
    assert_eq!(
        count("list"),
        types + 1,
        "lists: one per type, and Helm's storage: {log:#?}"
    );
    types
}

/// The dry runs among counted requests.
fn dry_runs(requests: &std::collections::BTreeMap<e2e::counting_proxy::Request, usize>) -> usize {
    requests
        .iter()
        .filter(|(request, _)| request.dry_run)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_steady_state_plan_runs_no_helm_and_still_sees_an_edit() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();
    let dir = infra
        .path()
        .parent()
        .expect("the copy")
        .join("helm-counter");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("helm.log");
    let run = Run {
        infra: &infra,
        helm: counting_helm(&dir, &log),
        log,
    };

    let (applied, _) = run.xtask(&["apply", "--parallelism", "10", "--auto-approve"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    applied_along_the_graph(&run, &String::from_utf8_lossy(&applied.stderr));

    // Steady state: no changes, not one helm process, and (counted by a proxy in front of
    // the API server) reads only: no dry run, no write. `--lock=false`: a plan's lock is a
    // write of its own (the Lease), which is not what is measured here.
    let counted = e2e::CountedApi::start();
    // A plan without the lock through the counting proxy: its output, the helm processes it
    // ran, and the requests it sent.
    let counted_plan = || {
        counted.take();
        let (plan, helm_runs) = run.xtask_with(
            &["plan", "--detailed-exitcode", "--lock=false"],
            Some(&counted.kubeconfig()),
        );
        let (requests, log) = counted.take_logged();
        (plan, helm_runs, requests, log)
    };
    let (plan, helm_runs, requests, log) = counted_plan();
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    assert_eq!(
        helm_runs,
        Vec::<String>::new(),
        "a steady-state plan runs helm"
    );
    eprintln!("requests of a steady-state plan, by verb: {requests:?}");
    assert_eq!(
        dry_runs(&requests),
        0,
        "dry runs of a steady-state plan: {requests:?}"
    );
    let writes: Vec<_> = requests
        .iter()
        .filter(|(request, _)| request.is_write())
        .collect();
    assert!(
        writes.is_empty(),
        "writes of a steady-state plan: {requests:?}"
    );
    let types = one_list_per_type(&requests, &log);
    eprintln!("types listed: {types}");
    assert!(
        types > 10,
        "the plan's requests went through the counter: {log:#?}"
    );

    // The record is on the storage Secret of the deployed revision.
    let secrets = e2e::typed_api(&client, "v1", "Secret", "secrets", Some("sso"));
    let stored = secrets
        .list(&ListParams::default().labels("owner=helm,name=dex"))
        .await
        .unwrap();
    assert!(
        stored.items.iter().any(|s| s
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("envctl.dev/verified-objects"))),
        "dex's storage Secret carries the verified record"
    );

    // A controller writes the status of an object that has no generation: istiod's
    // HorizontalPodAutoscaler (written here through its status subresource, as the HPA
    // controller does some seconds after apply). Its resourceVersion moves, its content does
    // not: still no dry run, no helm.
    let hpas = e2e::typed_api(
        &client,
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        Some("istio-system"),
    );
    hpas.patch_status(
        "istiod",
        &PatchParams {
            field_manager: Some("horizontal-pod-autoscaler".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"status": {"currentReplicas": 1, "desiredReplicas": 1}})),
    )
    .await
    .unwrap();
    let (plan, helm_runs, requests, log) = counted_plan();
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    assert_eq!(helm_runs, Vec::<String>::new(), "after a status write");
    assert_eq!(
        dry_runs(&requests),
        0,
        "dry runs of a plan after a status write: {requests:?}"
    );
    // Its content is compared from the list: not read again.
    assert_eq!(one_list_per_type(&requests, &log), types);

    // Its spec edited out of band is drift all the same.
    hpas.patch(
        "istiod",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"spec": {"maxReplicas": 7}})),
    )
    .await
    .unwrap();
    let (plan, _) = run.xtask(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", describe(&plan));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(
            "field horizontalpodautoscaler/istio-system/istiod spec.maxReplicas: last written by kubectl-edit"
        ),
        "{text}"
    );
    let (applied, _) = run.xtask(&["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", describe(&applied));

    // An edit out of band (as `kubectl edit` writes it) is drift, found by a full check.
    let deployments = e2e::typed_api(&client, "apps/v1", "Deployment", "deployments", Some("sso"));
    e2e::patch_as(
        &deployments,
        "dex",
        "kubectl-edit",
        json!({"spec": {"replicas": 3}}),
    )
    .await;
    let (plan, helm_runs) = run.xtask(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", describe(&plan));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("field deployment/sso/dex spec.replicas: last written by kubectl-edit"),
        "{text}"
    );
    assert!(
        helm_runs
            .iter()
            .any(|r| r.starts_with("template") && r.contains("dex")),
        "the edited release is rendered again: {helm_runs:?}"
    );
    assert!(
        !helm_runs.iter().any(|r| r.contains("istiod")),
        "an untouched release is not: {helm_runs:?}"
    );

    // Repaired, verified and recorded again: the next plan is free again.
    let (applied, _) = run.xtask(&["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    let (plan, helm_runs) = run.xtask(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    assert_eq!(helm_runs, Vec::<String>::new());

    // The label Helm puts on its objects removed (as `kubectl label ...-` does): the object
    // leaves the plan's lists, is read on its own, and the missing label is drift.
    e2e::patch_as(
        &deployments,
        "dex",
        "kubectl-label",
        json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}}),
    )
    .await;
    let (plan, _, _, log) = counted_plan();
    assert_eq!(plan.status.code(), Some(2), "{}", describe(&plan));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("field deployment/sso/dex metadata.labels[\"app.kubernetes.io/managed-by\"]"),
        "{text}"
    );
    assert!(
        log.iter()
            .any(|l| l == "GET /apis/apps/v1/namespaces/sso/deployments/dex"),
        "the unlabelled object is read on its own: {log:#?}"
    );
    let (applied, _) = run.xtask(&["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    let (plan, helm_runs, requests, log) = counted_plan();
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    assert_eq!(helm_runs, Vec::<String>::new());
    assert_eq!(one_list_per_type(&requests, &log), types);

    let (destroyed, _) = run.xtask(&["destroy", "--auto-approve"]);
    assert!(destroyed.status.success(), "{}", describe(&destroyed));
}
