//! Parallel apply's failure path, through the CLI against the testenv: several independent
//! changes, two of which the API server refuses at the same moment (a Service cluster IP
//! outside the service range, in a namespace the same run creates, so that plan could not dry-run them), among
//! others that succeed:
//!
//! - no change starts after the first failure; the ones in flight (a Deployment waiting for
//!   readiness) finish;
//! - every failure is reported, naming its address, and what never started is named too;
//! - the exit code is non-zero and the environment's lock is released;
//! - once the input is fixed, the next apply converges and the plan after it is empty.
//!
//! One scenario, in order (fixed names: this file is its own test binary).

use e2e::{InfraCopy, describe};

const NAMESPACE: &str = "apply-failure";

/// A cluster IP outside the testenv's service range (TEST-NET-1): only the API server's IP
/// allocator refuses it, when the Service is created.
const REFUSED_IP: &str = "\n  clusterIP: 192.0.2.10";

/// The extra objects: in apply order (ties between independent changes are broken by
/// address), a Deployment, two Services the server refuses when `cluster_ip` is outside its range, a
/// valid Service, then two ServiceAccounts that must not start once a failure is seen.
fn extra_objects(cluster_ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: slow
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: slow}}
  template:
    metadata:
      labels: {{app: slow}}
    spec:
      containers:
        - name: app
          image: nginx:1.29.3
{}{}{}---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: later-1
  namespace: {NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: later-2
  namespace: {NAMESPACE}
"#,
        service("bad-a", cluster_ip),
        service("bad-b", cluster_ip),
        service("good", ""),
    )
}

/// A Service of the Deployment `slow`, with `extra` lines under its spec.
fn service(name: &str, extra: &str) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  selector: {{app: slow}}
  ports: [{{port: 80}}]{extra}
"#
    )
}

fn address(kind: &str, name: &str) -> String {
    format!("gateway.object.{kind}/{NAMESPACE}/{name}")
}

/// Index of the first progress line of `address` for which `matches` holds.
fn line_of(lines: &[&str], address: &str, matches: impl Fn(&str) -> bool) -> Option<usize> {
    lines.iter().position(|l| {
        l.strip_prefix(address)
            .and_then(|rest| rest.strip_prefix(": "))
            .is_some_and(&matches)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_stops_new_starts_lets_in_flight_changes_finish_and_reports_every_failure() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();

    // The gateway module converged first: the failing run then holds only the extra objects.
    let converged = infra.xtask_gateway(&["apply", "--auto-approve"]);
    assert!(converged.status.success(), "{}", describe(&converged));

    infra.add_to_gateway("extra.yaml", &extra_objects(REFUSED_IP));

    // Plan cannot dry-run objects whose namespace this run creates: it shows 7 creations.
    let plan = infra.xtask_gateway(&["plan"]);
    assert!(plan.status.success(), "{}", describe(&plan));
    let planned = String::from_utf8_lossy(&plan.stdout);
    assert!(
        planned.contains("Plan: 7 to add, 0 to change, 0 to destroy."),
        "{}",
        describe(&plan)
    );

    let failed = infra.xtask_gateway(&["apply", "--auto-approve", "--parallelism", "4"]);
    let text = describe(&failed);
    eprintln!("the failing apply:\n{text}");
    assert_eq!(failed.status.code(), Some(1), "{text}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let started = |a: &str| line_of(&lines, a, |rest| rest.ends_with("..."));
    let failed_at = |a: &str| line_of(&lines, a, |rest| rest.starts_with("failed after"));
    let completed = |a: &str| line_of(&lines, a, |rest| rest.contains("complete after"));

    let slow = address("deployment", "slow");
    let bad = [address("service", "bad-a"), address("service", "bad-b")];
    let good = address("service", "good");
    let later = [
        address("serviceaccount", "later-1"),
        address("serviceaccount", "later-2"),
    ];

    // The four independent changes started together, the two refused ones failed.
    for a in [&slow, &bad[0], &bad[1], &good] {
        assert!(started(a).is_some(), "{a} started:\n{text}");
    }
    let first_failure = bad
        .iter()
        .map(|a| failed_at(a).unwrap_or_else(|| panic!("{a} failed:\n{text}")))
        .min()
        .expect("two failures");
    // Nothing started after the first failure; what was in flight finished after it.
    for a in &later {
        assert_eq!(started(a), None, "{a} started after a failure:\n{text}");
    }
    let slow_done =
        completed(&slow).unwrap_or_else(|| panic!("the Deployment in flight finished:\n{text}"));
    assert!(
        slow_done > first_failure,
        "the Deployment was still in flight when the first failure came:\n{text}"
    );
    assert!(completed(&good).is_some(), "{good} finished:\n{text}");

    // Every failure is reported in the error, by address, with the server's reason, and
    // what never started is named.
    let error_start = lines
        .iter()
        .rposition(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error at the end:\n{text}"));
    let error = lines[error_start..].join("\n");
    for a in &bad {
        assert!(
            error.contains(&format!("{a}:")),
            "{a} named in the error:\n{text}"
        );
    }
    assert!(error.contains("192.0.2.10"), "the refused value:\n{text}");
    for a in &later {
        assert!(
            error.contains(a.as_str()),
            "{a} named as not started:\n{text}"
        );
    }

    // The lock was released (a failed run does not leave it to expire).
    let leases = e2e::typed_api(
        &client,
        "coordination.k8s.io/v1",
        "Lease",
        "leases",
        Some("kube-public"),
    );
    assert!(
        leases.get_opt("envctl-lock-kwok").await.unwrap().is_none(),
        "the lock is released after a failed apply"
    );

    // Fixed: the next apply converges, and the plan after it is empty.
    infra.write("gateway/extra.yaml", &extra_objects(""));
    let fixed = infra.xtask_gateway(&["apply", "--auto-approve", "--parallelism", "4"]);
    assert!(fixed.status.success(), "{}", describe(&fixed));
    let fixed_out = String::from_utf8_lossy(&fixed.stdout);
    assert!(
        fixed_out.contains("Resources: 4 added, 0 changed, 0 destroyed."),
        "the two refused Services and the two not started:\n{}",
        describe(&fixed)
    );
    let plan = infra.xtask_gateway(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));

    let destroyed = infra.xtask_gateway(&["destroy", "--auto-approve"]);
    assert!(destroyed.status.success(), "{}", describe(&destroyed));
}
