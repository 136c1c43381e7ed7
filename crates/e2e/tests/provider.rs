//! `live::provider` against the testenv (read-only: the testenv's cluster record belongs to
//! whoever applies to it, so these tests never write it).

use engine::{ClusterProvider, ClusterSpec};
use live::provider::{self, ClusterState, DestroyDecision};

fn kwok(context: &str) -> ClusterSpec {
    ClusterSpec {
        name: "envctl-testenv".into(),
        context: context.into(),
        provider: ClusterProvider::Kwok,
    }
}

#[tokio::test]
async fn the_testenv_is_present_and_never_destroyed() {
    let kubeconfig = e2e::kubeconfig();
    let spec = kwok("kwok-envctl-testenv");
    let (state, cluster) = provider::cluster_state(&spec, Some(&kubeconfig), None)
        .await
        .unwrap();
    assert!(
        matches!(
            state,
            ClusterState::Present {
                reachable: true,
                ..
            }
        ),
        "{state:?}"
    );
    assert!(cluster.is_some());
    assert!(matches!(
        provider::destroy_decision(&spec, &state),
        DestroyDecision::Keep(_)
    ));
}

#[tokio::test]
async fn an_unknown_context_is_absent_with_the_reason() {
    let kubeconfig = e2e::kubeconfig();
    let (state, cluster) =
        provider::cluster_state(&kwok("no-such-context"), Some(&kubeconfig), None)
            .await
            .unwrap();
    assert!(cluster.is_none());
    match state {
        ClusterState::Absent { reason } => {
            assert!(reason.contains("no-such-context"), "{reason}")
        }
        other => panic!("expected absent, got {other:?}"),
    }
}

/// `apply` against a kwok cluster that does not answer (the testenv's kubeconfig with its
/// server moved to a closed port): refused at once, before any plan is shown or anything is
/// asked, naming the context and how to start the testenv. Apply itself checks the context
/// (one `GET /readyz`), with the kubeconfig it is given, rather than leaving it to the
/// connection's retries.
#[test]
fn apply_to_a_kwok_cluster_that_does_not_answer_is_refused_before_any_plan() {
    let text = std::fs::read_to_string(e2e::kubeconfig()).expect("the testenv's kubeconfig");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let moved: String = text
        .lines()
        .map(|line| match line.split_once("server: ") {
            Some((indent, _)) => format!("{indent}server: https://127.0.0.1:{closed}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    assert_ne!(moved, text, "the kubeconfig names a server");
    let infra = e2e::InfraCopy::new();
    let kubeconfig = infra.path().join("closed-port.kubeconfig.yaml");
    std::fs::write(&kubeconfig, moved).expect("writing the kubeconfig");
    let out = e2e::xtask(&[
        "apply",
        "--auto-approve",
        "--env",
        "kwok",
        "--infra",
        &infra.path().display().to_string(),
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ]);
    let said = e2e::describe(&out);
    assert!(!out.status.success(), "{said}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not reachable through context `kwok-envctl-testenv`")
            && stderr.contains("Connection refused")
            && stderr.contains("cargo xtask testenv up"),
        "{said}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("Plan:") && !stdout.contains("will be created"),
        "{said}"
    );
}
