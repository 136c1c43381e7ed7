//! `live::secrets` against the testenv: generated once, kept on the next apply, regenerated on
//! rotation or when a key goes missing, and never shown.
//!
//! Secret values are compared with `assert!(a == b)`, never `assert_eq!`, so that a failure
//! does not print them.

use std::collections::BTreeMap;

use e2e::TestNamespace;
use engine::{Address, Encoding, GeneratedSecretSpec, Generator};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use live::Cluster;
use live::secrets::{self, SecretState};
use serde_json::json;

fn spec(namespace: &str) -> GeneratedSecretSpec {
    GeneratedSecretSpec {
        name: "oauth2-proxy".into(),
        namespace: namespace.into(),
        plain: BTreeMap::from([("client-id".into(), "oauth2-proxy".into())]),
        generated: BTreeMap::from([
            (
                "client-secret".into(),
                Generator {
                    bytes: 24,
                    encoding: Encoding::Hex,
                },
            ),
            (
                "cookie-secret".into(),
                Generator {
                    bytes: 32,
                    encoding: Encoding::Base64Url,
                },
            ),
        ]),
    }
}

fn address() -> Address {
    "sso.generated_secret.oauth2-proxy".parse().unwrap()
}

async fn read(api: &Api<Secret>) -> (BTreeMap<String, ByteString>, Secret) {
    let secret = api.get("oauth2-proxy").await.unwrap();
    (secret.data.clone().unwrap_or_default(), secret)
}

/// Every secret value, raw and as the API shows it (base64), to search printed text for.
fn needles(data: &BTreeMap<String, ByteString>) -> Vec<String> {
    use base64::Engine as _;
    data.iter()
        .filter(|(k, _)| k.as_str() != "client-id")
        .flat_map(|(_, v)| {
            [
                String::from_utf8_lossy(&v.0).into_owned(),
                base64::engine::general_purpose::STANDARD.encode(&v.0),
            ]
        })
        .collect()
}

#[tokio::test]
async fn generated_once_kept_on_the_next_ensure_and_changed_by_rotation() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "secrets").await;
    let cluster = Cluster::connect(Some(&e2e::kubeconfig()), None)
        .await
        .unwrap();
    let spec = spec(ns.name());
    let api = Api::<Secret>::namespaced(client.clone(), ns.name());

    assert_eq!(
        secrets::secret_state(&cluster, &spec).await.unwrap(),
        SecretState::Absent
    );
    assert_eq!(secrets::content_hash(&cluster, &spec).await.unwrap(), None);

    let first = secrets::ensure(&cluster, &spec, "e2e", &address())
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.generated_keys, ["client-secret", "cookie-secret"]);
    let (data1, secret) = read(&api).await;
    assert_eq!(data1["client-id"].0, b"oauth2-proxy");
    assert_eq!(data1["client-secret"].0.len(), 48, "24 bytes as hex");
    assert_eq!(
        data1["cookie-secret"].0.len(),
        44,
        "32 bytes as padded base64"
    );
    let labels = secret.metadata.labels.unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "envctl");
    assert_eq!(labels["envctl.dev/environment"], "e2e");
    let annotations = secret.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations["envctl.dev/address"],
        "sso.generated_secret.oauth2-proxy"
    );
    assert_eq!(annotations["envctl.dev/module"], "sso");
    assert_eq!(annotations["envctl.dev/environment"], "e2e");
    assert_eq!(
        secrets::secret_state(&cluster, &spec).await.unwrap(),
        SecretState::Complete {
            plain_differs: vec![]
        }
    );
    let hash1 = secrets::content_hash(&cluster, &spec)
        .await
        .unwrap()
        .unwrap();

    // The second ensure keeps every value.
    let second = secrets::ensure(&cluster, &spec, "e2e", &address())
        .await
        .unwrap();
    assert!(!second.created);
    assert!(second.generated_keys.is_empty(), "{second:?}");
    let (data2, _) = read(&api).await;
    assert!(data1 == data2, "ensure changed the values");
    assert_eq!(
        secrets::content_hash(&cluster, &spec).await.unwrap(),
        Some(hash1.clone())
    );

    // Nothing secret in anything printable.
    let values = secrets::read_values(&cluster, &spec)
        .await
        .unwrap()
        .unwrap();
    let printed = format!(
        "{first:?} {second:?} {:?} {values:?} {}",
        secrets::secret_state(&cluster, &spec).await.unwrap(),
        values["cookie-secret"]
    );
    for needle in needles(&data1) {
        assert!(
            !printed.contains(&needle),
            "a secret value is in Debug/Display output"
        );
    }
    assert!(printed.contains("(sensitive value)"));

    // Rotation changes exactly the named key.
    let rotated = secrets::rotate(
        &cluster,
        &spec,
        &["cookie-secret".into()],
        "e2e",
        &address(),
    )
    .await
    .unwrap();
    assert_eq!(rotated.generated_keys, ["cookie-secret"]);
    let (data3, _) = read(&api).await;
    assert!(data3["cookie-secret"] != data1["cookie-secret"], "rotated");
    assert!(data3["client-secret"] == data1["client-secret"], "kept");
    assert_ne!(
        secrets::content_hash(&cluster, &spec).await.unwrap(),
        Some(hash1)
    );

    // Only generated keys rotate; the error names keys, not values.
    let err = secrets::rotate(&cluster, &spec, &["client-id".into()], "e2e", &address())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`client-id` is not a generated key"), "{err}");
    for needle in needles(&data3) {
        assert!(!err.contains(&needle));
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_key_removed_out_of_band_is_regenerated_alone() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "secrets-gap").await;
    let cluster = Cluster::connect(Some(&e2e::kubeconfig()), None)
        .await
        .unwrap();
    let spec = spec(ns.name());
    let api = Api::<Secret>::namespaced(client.clone(), ns.name());
    secrets::ensure(&cluster, &spec, "e2e", &address())
        .await
        .unwrap();
    let (before, _) = read(&api).await;

    // `kubectl edit` removes one key and changes the plain one.
    api.patch(
        "oauth2-proxy",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({"data": {"cookie-secret": null, "client-id": "b3RoZXI="}})),
    )
    .await
    .unwrap();
    assert_eq!(
        secrets::secret_state(&cluster, &spec).await.unwrap(),
        SecretState::MissingKeys {
            missing: vec!["cookie-secret".into()],
            plain_differs: vec!["client-id".into()],
        }
    );

    let outcome = secrets::ensure(&cluster, &spec, "e2e", &address())
        .await
        .unwrap();
    assert!(!outcome.created);
    assert_eq!(outcome.generated_keys, ["cookie-secret"]);
    let (after, _) = read(&api).await;
    assert!(after["client-secret"] == before["client-secret"], "kept");
    assert!(after.contains_key("cookie-secret"));
    assert_eq!(after["client-id"].0, b"oauth2-proxy");
    assert!(
        secrets::secret_state(&cluster, &spec)
            .await
            .unwrap()
            .is_in_sync()
    );
    ns.delete().await;
}
