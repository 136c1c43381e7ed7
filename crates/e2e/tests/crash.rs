//! Crash and interrupt safety of `apply --auto-approve` of the whole environment, against the
//! testenv:
//!
//! - SIGKILL of the run and its helm children (a crash, a closed terminal, a cancelled CI job)
//!   at 10 distinct points, one of them in the middle of a Helm install: the next apply
//!   converges (recovering a release left pending), the plan after it says No changes, no
//!   release is left pending, and destroy leaves 0 owned objects and no release;
//! - SIGINT of the run at 5 points: it exits 130 saying "interrupted after N of M changes; run
//!   apply again", leaves no lock and no temporary helm directory, and the same holds after.
//!
//! One scenario, in order; this file is its own test binary.

mod support;

use std::time::Duration;

use e2e::{InfraCopy, describe};
use support::{Background, RUN_TIMEOUT, ok, pending_releases, releases, run, unlock_after_kill};

/// A progress line of apply: `ADDRESS: Creating...`, `ADDRESS: Creation complete after Ns`, ...
fn is_progress(line: &str) -> bool {
    line.contains(": ") && (line.ends_with("...") || line.contains(" complete after "))
}

async fn owned_objects(client: &kube::Client) -> Vec<String> {
    e2e::objects_matching(client, "app.kubernetes.io/managed-by=envctl")
        .await
        .into_keys()
        .collect()
}

/// Where a run is stopped.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// After the n-th progress line (1-based).
    Line(usize),
    /// In the middle of the install of a release: after its `Creating...`, once helm has
    /// marked it `pending-install`, plus a delay.
    During(&'static str, Duration),
}

/// Starts an apply of the whole environment and stops it at `point` with `signal`. Returns
/// the exit code, the output and what it left in its TMPDIR.
fn stop_apply(infra: &InfraCopy, point: Point, signal: &str) -> (Option<i32>, String, Vec<String>) {
    let mut apply = Background::start(infra, &["apply", "--auto-approve"]);
    let reached = match point {
        Point::Line(n) => {
            let mut count = 0;
            apply
                .wait_line(RUN_TIMEOUT, |l| {
                    count += usize::from(is_progress(l));
                    count == n
                })
                .is_some()
        }
        Point::During(address, delay) => {
            let found = apply
                .wait_line(RUN_TIMEOUT, |l| l == format!("{address}: Creating..."))
                .is_some();
            // A fast install may end between two looks: then the kill comes after it.
            support::wait_pending(Duration::from_secs(20));
            std::thread::sleep(delay);
            found
        }
    };
    assert!(
        reached,
        "the run reached {point:?}: {}",
        apply.seen.join("\n")
    );
    if signal == "-KILL" {
        apply.signal_group(signal);
    } else {
        apply.signal(signal);
    }
    apply.finish(RUN_TIMEOUT)
}

/// After a stopped run: apply converges, plan says No changes, nothing is pending, destroy
/// leaves nothing owned and no release.
async fn converges_and_destroys_cleanly(client: &kube::Client, infra: &InfraCopy, what: &str) {
    let applied = run(infra, &["apply", "--auto-approve"]);
    assert!(
        applied.status.success(),
        "{what}: apply again: {}",
        describe(&applied)
    );
    let plan = run(infra, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{what}: {}", describe(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("No changes."));
    assert_eq!(pending_releases(), Vec::<String>::new(), "{what}");
    ok(infra, &["destroy", "--auto-approve"]);
    assert_eq!(owned_objects(client).await, Vec::<String>::new(), "{what}");
    assert_eq!(releases(), Vec::<String>::new(), "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_or_interrupted_apply_is_repaired_by_the_next() {
    let client = e2e::client().await;
    let infra = InfraCopy::new();
    // From a clean state.
    ok(&infra, &["destroy", "--auto-approve"]);

    let kill_points = [
        Point::Line(1),
        Point::Line(2),
        Point::Line(4),
        Point::Line(7),
        Point::Line(10),
        Point::Line(14),
        Point::Line(19),
        Point::Line(25),
        Point::Line(32),
        Point::During("sso.helm_release.dex", Duration::from_millis(0)),
        Point::During("mesh.helm_release.istiod", Duration::from_millis(100)),
    ];
    let mut recovered = 0;
    for point in kill_points {
        let what = format!("SIGKILL at {point:?}");
        let (code, output, _) = stop_apply(&infra, point, "-KILL");
        assert_eq!(code, None, "{what}: killed: {output}");
        unlock_after_kill(&infra);
        if !pending_releases().is_empty() {
            let plan = ok(&infra, &["plan"]);
            assert!(plan.contains("recovery: revision"), "{what}: {plan}");
            recovered += 1;
        }
        converges_and_destroys_cleanly(&client, &infra, &what).await;
    }
    eprintln!(
        "{} kill points converged; {recovered} left a release pending that apply recovered",
        kill_points.len()
    );

    let interrupt_points = [
        Point::Line(1),
        Point::Line(5),
        Point::Line(12),
        Point::Line(24),
        Point::During("sso.helm_release.dex", Duration::from_millis(0)),
    ];
    for point in interrupt_points {
        let what = format!("SIGINT at {point:?}");
        let (code, output, left) = stop_apply(&infra, point, "-INT");
        assert_eq!(code, Some(130), "{what}: {output}");
        assert!(
            output.contains("interrupted after ") && output.contains(" changes; run apply again"),
            "{what}: {output}"
        );
        // The lock was released: the next run is not refused.
        let plan = run(&infra, &["plan"]);
        assert!(plan.status.success(), "{what}: {}", describe(&plan));
        assert_eq!(pending_releases(), Vec::<String>::new(), "{what}");
        assert_eq!(left, Vec::<String>::new(), "{what}: temporary files left");
        converges_and_destroys_cleanly(&client, &infra, &what).await;
    }
}
