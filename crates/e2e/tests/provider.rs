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
