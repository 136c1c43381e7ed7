//! The environment's lock and exact saved plans, through the CLI against the testenv:
//!
//! - a run killed while it holds the lock (in the middle of a Helm upgrade): the next run is
//!   refused within 2 seconds, naming the holder and the lock's age; the lock expires after its
//!   lease duration and is taken over; the Helm release it left pending is shown by plan as a
//!   recovery and recovered by apply;
//! - `force-unlock ID` removes a lock (and refuses another ID);
//! - a saved plan is applied only as it was reviewed: a value edited in `infra/` after
//!   `plan --out` is refused, naming the resource and "configuration"; a hand-edited plan file
//!   is refused; an unchanged one is applied;
//! - a lock removed while its run applies (`force-unlock` from another terminal) is noticed by
//!   the run at its next renewal: it stops after the steps in flight and fails saying the lock
//!   was lost; the next apply completes the environment.
//!
//! One scenario, in order; this file is its own test binary.

mod support;

use std::time::{Duration, Instant};

use e2e::{InfraCopy, describe};
use support::{Background, RUN_TIMEOUT, lock_id, ok, pending_releases, run};

fn helm_revision(release: &str, namespace: &str) -> Option<u64> {
    let out = std::process::Command::new(e2e::helm_binary())
        .args([
            "history", release, "-n", namespace, "-o", "json", "--max", "1",
        ])
        .output()
        .expect("running helm");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    list.as_array()?.last()?.get("revision")?.as_u64()
}

/// Kills (the whole process group, helm included) an apply of the current configuration once
/// it starts on `address`, after `delay`.
fn kill_apply_at(infra: &InfraCopy, address: &str, delay: Duration) -> u32 {
    let mut apply = Background::start(infra, &["apply", "--auto-approve"]);
    let pid = apply.pid();
    let line = apply.wait_line(RUN_TIMEOUT, |l| {
        l.starts_with(&format!("{address}: ")) && l.ends_with("...")
    });
    assert!(
        line.is_some(),
        "apply reached {address}: {}",
        apply.seen.join("\n")
    );
    // The run is frozen as soon as its helm runs, so that it cannot end on its own between
    // two looks (an upgrade on kwok is fast), while helm goes on; killed in the middle of the
    // Helm operation when helm is seen marking it pending, else (helm was faster than the
    // look) after it, still holding the lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !apply.has_children() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    apply.freeze();
    let deadline = Instant::now() + Duration::from_secs(20);
    while apply.has_children() && Instant::now() < deadline {
        if !support::pending_releases().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(delay);
    apply.signal_group("-KILL");
    let (code, _, _) = apply.finish(Duration::from_secs(30));
    assert_eq!(code, None, "killed");
    pid
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_refuses_a_second_run_and_a_saved_plan_is_applied_only_as_reviewed() {
    let _client = e2e::client().await;
    let infra = InfraCopy::new();
    ok(&infra, &["apply", "--auto-approve"]);

    // A run killed in the middle of a Helm upgrade, holding the lock.
    let dex_values = infra.read("sso/dex.values.yaml");
    assert!(dex_values.contains("idTokens: 1h"));
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 2h"),
    );
    let dead = kill_apply_at(&infra, "sso.helm_release.dex", Duration::from_millis(0));
    let killed_at = Instant::now();

    // The next run is refused at once, naming the holder and the lock's age.
    let start = Instant::now();
    let refused = run(&infra, &["apply", "--auto-approve"]);
    let took = start.elapsed();
    let text = describe(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    assert!(text.contains("is locked"), "{text}");
    assert!(text.contains("`apply`"), "{text}");
    assert!(text.contains(&format!("(pid {dead})")), "{text}");
    assert!(text.contains("s ago"), "{text}");
    let id = lock_id(&text).expect("the refusal names the lock's ID");
    // Plan takes it too, unless told not to.
    let plan = run(&infra, &["plan"]);
    assert_eq!(plan.status.code(), Some(1), "{}", describe(&plan));
    let unlocked_plan = ok(&infra, &["plan", "--lock=false"]);

    // The killed upgrade left the release pending: plan shows the recovery, its reason and
    // time.
    let pending = pending_releases();
    eprintln!("releases left pending by the kill: {pending:?}");
    if !pending.is_empty() {
        assert!(pending[0].contains("pending-upgrade"), "{pending:?}");
        assert!(
            unlocked_plan.contains("recovery: revision")
                && unlocked_plan.contains("is `pending-upgrade` since")
                && unlocked_plan.contains("rolls back to revision"),
            "{pending:?}: {unlocked_plan}"
        );
    }

    // The holder died: its lock expires after the lease duration (30 s) and is taken over.
    let deadline = Instant::now() + Duration::from_secs(60);
    let applied = loop {
        let attempt = run(&infra, &["apply", "--auto-approve"]);
        if attempt.status.success() {
            break describe(&attempt);
        }
        assert!(
            describe(&attempt).contains(&id),
            "refused by the same lock until it expires: {}",
            describe(&attempt)
        );
        assert!(Instant::now() < deadline, "the lock never expired");
        std::thread::sleep(Duration::from_secs(3));
    };
    assert!(
        killed_at.elapsed() >= Duration::from_secs(20),
        "taken over after {:?}, before the lease could expire",
        killed_at.elapsed()
    );
    if !pending.is_empty() {
        assert!(applied.contains("Recovery complete"), "{applied}");
    }
    assert_eq!(pending_releases(), Vec::<String>::new());
    let plan = run(&infra, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));

    // force-unlock: only the lock's own ID removes it.
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 3h"),
    );
    kill_apply_at(&infra, "sso.helm_release.dex", Duration::from_millis(0));
    let refused = run(&infra, &["plan"]);
    let id = lock_id(&describe(&refused)).expect("a lock ID");
    let wrong = run(&infra, &["force-unlock", "not-the-id"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", describe(&wrong));
    assert!(describe(&wrong).contains(&id), "{}", describe(&wrong));
    let removed = ok(&infra, &["force-unlock", &id]);
    assert!(removed.contains("Removed the lock"), "{removed}");
    ok(&infra, &["apply", "--auto-approve"]);
    assert_eq!(pending_releases(), Vec::<String>::new());

    // A saved plan, then a value edited with the same actions: refused, nothing applied.
    let dir = tempfile_dir();
    let plan_file = dir.join("plan.json");
    let plan_path = plan_file.display().to_string();
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 4h"),
    );
    let shown = ok(&infra, &["plan", "--out", &plan_path]);
    assert!(
        shown.contains("sso.helm_release.dex will be updated in-place"),
        "{shown}"
    );
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    let revision = helm_revision("dex", "sso");
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 5h"),
    );
    let stale = run(&infra, &["apply", &plan_path]);
    let text = describe(&stale);
    assert_eq!(stale.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the configuration of sso.helm_release.dex changed"),
        "{text}"
    );
    assert_eq!(helm_revision("dex", "sso"), revision, "nothing applied");

    // A hand-edited plan file is refused.
    infra.write(
        "sso/dex.values.yaml",
        &dex_values.replace("idTokens: 1h", "idTokens: 4h"),
    );
    let edited = saved.replacen("4h", "6h", 1);
    assert_ne!(edited, saved);
    std::fs::write(&plan_file, &edited).unwrap();
    let refused = run(&infra, &["apply", &plan_path]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        describe(&refused).contains("was modified after `plan --out` wrote it"),
        "{}",
        describe(&refused)
    );
    assert_eq!(helm_revision("dex", "sso"), revision, "nothing applied");

    // The plan as reviewed, with the configuration it was made from: applied.
    std::fs::write(&plan_file, &saved).unwrap();
    ok(&infra, &["apply", &plan_path]);
    assert_eq!(helm_revision("dex", "sso"), revision.map(|r| r + 1));
    let plan = run(&infra, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));

    // A lock removed while its run applies the whole environment from empty.
    ok(&infra, &["destroy", "--auto-approve"]);
    let mut apply = Background::start(&infra, &["apply", "--auto-approve"]);
    let started = apply.wait_line(RUN_TIMEOUT, |l| l.ends_with(": Creating..."));
    assert!(
        started.is_some(),
        "apply started: {}",
        apply.seen.join("\n")
    );
    let refused = run(&infra, &["plan"]);
    let id = lock_id(&describe(&refused)).expect("the running apply holds the lock");
    ok(&infra, &["force-unlock", &id]);
    let unlocked_at = Instant::now();
    let (code, text, _) = apply.finish(RUN_TIMEOUT);
    eprintln!(
        "the apply ended {:?} after its lock was removed",
        unlocked_at.elapsed()
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the lock of environment `kwok` was lost during the run")
            && text.contains("its Lease was removed")
            && text.contains("changes done, recorded")
            && text.contains("run `cargo xtask plan`"),
        "{text}"
    );
    assert!(!text.contains("Apply complete!"), "{text}");
    assert_eq!(pending_releases(), Vec::<String>::new());
    ok(&infra, &["apply", "--auto-approve"]);
    let plan = run(&infra, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));

    ok(&infra, &["destroy", "--auto-approve"]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(e2e::unique_name("envctl-saved-plan"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
