//! `live::helm` against the testenv: install the real dex chart, read the release back, see
//! out-of-band changes and deletions as drift, refuse a chart whose digest differs from its pin,
//! and keep values out of error messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::{DEFAULT_TIMEOUT, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use live::Cluster;
use live::charts::ChartStore;
use live::helm::{ChartRef, Helm, HelmError, Render, release_drift};
use serde_json::{Value, json};

const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

fn helm() -> Helm {
    Helm {
        bin: e2e::helm_binary(),
        kubeconfig: Some(e2e::kubeconfig()),
        context: None,
        charts: ChartStore::default(),
    }
}

async fn cluster() -> Cluster {
    Cluster::connect(Some(&e2e::kubeconfig()), None)
        .await
        .expect("connecting to the testenv")
}

fn dex_values() -> Value {
    json!({
        "service": {"ports": {"http": {"port": 80}}},
        "config": {"issuer": "http://dex.example.com/dex",
                   "staticClients": [{"id": "oauth2-proxy", "secret": "e2e-client-secret-value"}]},
    })
}

#[tokio::test]
async fn an_installed_release_shows_out_of_band_changes_and_deletions_as_drift() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "helm").await;
    let (helm, cluster) = (helm(), cluster().await);
    let chart = ChartRef::Local(e2e::chart("dex"));
    let values = dex_values();

    assert_eq!(helm.status("dex", ns.name()).await.unwrap(), None);
    assert_eq!(helm.deployed_values("dex", ns.name()).await.unwrap(), None);

    helm.upgrade_install("dex", ns.name(), &chart, &values, false, INSTALL_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("installing the dex chart: {e}"));
    let status = helm
        .status("dex", ns.name())
        .await
        .unwrap()
        .expect("installed");
    assert_eq!(status.revision, 1);
    assert_eq!(
        (status.chart_name.as_str(), status.chart_version.as_str()),
        ("dex", "0.24.0")
    );
    assert!(status.is_deployed(), "{status:?}");
    assert_eq!(status.app_version, "2.44.0");

    // Nothing to upgrade: the deployed values are ours, and no object drifted.
    let deployed = helm
        .deployed_values("dex", ns.name())
        .await
        .unwrap()
        .unwrap();
    assert!(
        deployed == values,
        "deployed values differ from the installed ones"
    );
    let manifest = helm
        .deployed_manifest("dex", ns.name())
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = manifest.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"Deployment") && kinds.contains(&"Service"),
        "{kinds:?}"
    );
    let drift = release_drift(&cluster, &helm, "dex", ns.name(), &chart, &deployed)
        .await
        .unwrap();
    assert!(drift.is_empty(), "a fresh release has no drift: {drift:#?}");

    // `kubectl edit`-like change of a chart-owned field.
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns.name());
    deployments
        .patch(
            "dex",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let drift = release_drift(&cluster, &helm, "dex", ns.name(), &chart, &deployed)
        .await
        .unwrap();
    assert!(drift.missing.is_empty(), "{drift:#?}");
    assert_eq!(drift.changed.len(), 1, "{drift:#?}");
    let changed = &drift.changed[0];
    assert_eq!(changed.object, format!("deployment/{}/dex", ns.name()));
    let replicas = changed
        .fields
        .iter()
        .find(|f| f.path == "spec.replicas")
        .unwrap_or_else(|| panic!("spec.replicas drifted: {changed:#?}"));
    assert_eq!(replicas.manager.as_deref(), Some("kubectl-edit"));
    assert_eq!(changed.before["spec"]["replicas"], 3);
    assert_eq!(changed.after["spec"]["replicas"], 1);

    // A deleted chart object is missing.
    Api::<Service>::namespaced(client.clone(), ns.name())
        .delete("dex", &DeleteParams::default())
        .await
        .unwrap();
    let drift = release_drift(&cluster, &helm, "dex", ns.name(), &chart, &deployed)
        .await
        .unwrap();
    assert_eq!(drift.missing, [format!("service/{}/dex", ns.name())]);

    // An upgrade with the same values converges: revision 2, no drift left.
    helm.upgrade_install("dex", ns.name(), &chart, &values, false, INSTALL_TIMEOUT)
        .await
        .unwrap();
    let status = helm
        .status("dex", ns.name())
        .await
        .unwrap()
        .expect("upgraded");
    assert_eq!(status.revision, 2);
    let drift = release_drift(&cluster, &helm, "dex", ns.name(), &chart, &deployed)
        .await
        .unwrap();
    assert!(drift.missing.is_empty(), "{drift:#?}");

    assert!(
        helm.uninstall("dex", ns.name(), Some(INSTALL_TIMEOUT))
            .await
            .unwrap()
    );
    assert_eq!(helm.status("dex", ns.name()).await.unwrap(), None);
    assert!(
        !helm.uninstall("dex", ns.name(), None).await.unwrap(),
        "uninstalling a release that is gone is a no-op"
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_failed_install_does_not_show_the_values() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "helm-leak").await;
    let helm = helm();
    // The API server rejects the Service type and echoes it in its message.
    let values = json!({"service": {"type": "Sekret-e2e-type-value"}});
    let err = helm
        .upgrade_install(
            "dex",
            ns.name(),
            &ChartRef::Local(e2e::chart("dex")),
            &values,
            false,
            INSTALL_TIMEOUT,
        )
        .await
        .expect_err("an invalid Service type is refused");
    let text = err.to_string();
    assert!(matches!(err, HelmError::Command { .. }), "{text}");
    assert!(
        !text.contains("Sekret-e2e-type-value"),
        "the value leaked: {text}"
    );
    assert!(text.contains("(sensitive value)"), "{text}");
    helm.uninstall("dex", ns.name(), None).await.unwrap();
    ns.delete().await;
}

/// A chart whose templates leave `metadata.namespace` empty, plus a cluster-scoped object.
fn write_plain_chart(dir: &Path, name: &str) -> PathBuf {
    let chart = dir.join(name);
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n"),
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/objects.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  upgrade: {{ .Release.IsUpgrade | quote }}\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{ .Release.Name }}-reader\nrules: []\n",
    )
    .unwrap();
    chart
}

#[tokio::test]
async fn rendered_namespaced_objects_get_the_release_namespace_and_the_clusters_capabilities() {
    let dir = tempfile_dir();
    let chart = ChartRef::Local(write_plain_chart(dir.path(), "plain"));
    let cluster = cluster().await;
    let caps = live::helm::capabilities(&cluster).await.unwrap();
    assert!(caps.kube_version.starts_with("v1.36."), "{caps:?}");
    for api in [
        "v1",
        "apps/v1",
        "apps/v1/Deployment",
        "rbac.authorization.k8s.io/v1/ClusterRole",
    ] {
        assert!(
            caps.api_versions.iter().any(|a| a == api),
            "{api} in {caps:?}"
        );
    }
    let values = json!({"greeting": "hi"});
    for (render, with_cluster, upgrade) in [
        (Render::Offline, false, "false"),
        (Render::Offline, true, "false"),
        (Render::Install, true, "false"),
        (Render::Upgrade, true, "true"),
    ] {
        let objects = helm()
            .template(
                with_cluster.then_some(&cluster),
                "r",
                "team-a",
                &chart,
                &values,
                render,
            )
            .await
            .unwrap_or_else(|e| panic!("{render:?}: {e}"));
        let ids: Vec<String> = objects.iter().map(live::helm::object_id).collect();
        assert_eq!(
            ids,
            ["configmap/team-a/r", "clusterrole/r-reader"],
            "{render:?}"
        );
        let data = &objects[0]["data"];
        assert_eq!(data["greeting"], "hi");
        assert_eq!(data["upgrade"], upgrade, "{render:?}");
        let kube = data["kube"].as_str().unwrap();
        assert_eq!(
            kube == caps.kube_version,
            render != Render::Offline,
            "{render:?} renders for {kube}"
        );
    }
    let err = helm()
        .template(None, "r", "team-a", &chart, &values, Render::Upgrade)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs the cluster"), "{err}");
}

#[tokio::test]
async fn a_repository_chart_whose_digest_differs_from_the_pin_is_refused() {
    let dir = tempfile_dir();
    let source = write_plain_chart(dir.path(), "pinned");
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir(&repo_dir).unwrap();
    let (source_s, repo_s) = (source.display().to_string(), repo_dir.display().to_string());
    e2e::helm_ok(&["package", &source_s, "-d", &repo_s], DEFAULT_TIMEOUT).await;
    let url = serve_directory(repo_dir.clone()).await;
    e2e::helm_ok(&["repo", "index", &repo_s, "--url", &url], DEFAULT_TIMEOUT).await;
    let archive = std::fs::read(repo_dir.join("pinned-0.1.0.tgz")).unwrap();
    let digest = engine::sha256_hex(&archive);

    let chart = |sha256: Option<String>| ChartRef::Repo {
        repo: url.clone(),
        chart: "pinned".into(),
        version: "0.1.0".into(),
        sha256,
    };
    let helm = helm();
    assert_eq!(
        helm.pull_digest(&chart(None)).await.unwrap(),
        Some(digest.clone())
    );
    let values = json!({"greeting": "hi"});
    let objects = helm
        .template(
            None,
            "r",
            "ns",
            &chart(Some(format!("sha256:{digest}"))),
            &values,
            Render::Offline,
        )
        .await
        .expect("the pinned digest matches");
    assert_eq!(objects.len(), 2);

    let wrong = "0".repeat(64);
    let err = helm
        .template(
            None,
            "r",
            "ns",
            &chart(Some(wrong.clone())),
            &values,
            Render::Offline,
        )
        .await
        .expect_err("a wrong pin is refused");
    match &err {
        HelmError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &digest);
        }
        other => panic!("expected a digest mismatch, got: {other}"),
    }
    assert!(err.to_string().contains(&digest));
}

fn tempfile_dir() -> TempDir {
    let path = std::env::temp_dir().join(e2e::unique_name("envctl-e2e-helm"));
    std::fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

/// A temporary directory removed on drop (the e2e crate has no tempfile dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves the files of `dir` over HTTP on 127.0.0.1 (a chart repository for `helm pull`);
/// returns its URL. A std thread (the workspace's tokio has no `net` feature); it ends with
/// the test process.
async fn serve_directory(dir: PathBuf) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
            let file = (!name.contains("..")).then(|| dir.join(name));
            let response = match file.and_then(|f| std::fs::read(f).ok()) {
                Some(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    url
}

#[tokio::test]
async fn unserved_kinds_and_hooks_are_skipped_with_a_note() {
    let cluster = cluster().await;
    let objects = [
        json!({"apiVersion": "example.envctl.dev/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default"}}),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "t", "namespace": "default",
                "annotations": {"helm.sh/hook": "test"}}}),
    ];
    let drift = live::helm::objects_drift(&cluster, &objects).await.unwrap();
    assert!(drift.is_empty(), "{drift:#?}");
    assert_eq!(
        drift.skipped,
        [
            "pod/default/t: a Helm hook, not kept as part of the release",
            "widget/default/w: the cluster does not serve example.envctl.dev/v1 Widget; not compared",
        ]
    );
}

#[tokio::test]
async fn a_repository_chart_is_pulled_once_into_the_cache_and_a_mirror_serves_it_offline() {
    let dir = tempfile_dir();
    let source = write_plain_chart(dir.path(), "cached");
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir(&repo_dir).unwrap();
    let (source_s, repo_s) = (source.display().to_string(), repo_dir.display().to_string());
    e2e::helm_ok(&["package", &source_s, "-d", &repo_s], DEFAULT_TIMEOUT).await;
    let url = serve_directory(repo_dir.clone()).await;
    e2e::helm_ok(&["repo", "index", &repo_s, "--url", &url], DEFAULT_TIMEOUT).await;
    let archive = repo_dir.join("cached-0.1.0.tgz");
    let digest = engine::sha256_hex(&std::fs::read(&archive).unwrap());
    let chart = |sha256: Option<String>| ChartRef::Repo {
        repo: url.clone(),
        chart: "cached".into(),
        version: "0.1.0".into(),
        sha256,
    };
    let values = json!({"greeting": "hi"});
    let cache = dir.path().join("cache");
    let cached_helm = Helm {
        charts: ChartStore::new(None, Some(cache.clone())),
        ..helm()
    };
    let helm = cached_helm.clone();

    // A wrong pin: refused, and nothing is cached under it.
    let wrong = "0".repeat(64);
    let err = helm
        .template(
            None,
            "r",
            "ns",
            &chart(Some(wrong.clone())),
            &values,
            Render::Offline,
        )
        .await
        .expect_err("a wrong pin is refused");
    assert!(matches!(err, HelmError::DigestMismatch { .. }), "{err}");
    let wrong_dir = helm
        .charts
        .cache_dir(&url, "cached", "0.1.0", Some(&wrong))
        .unwrap();
    assert!(
        !wrong_dir.exists(),
        "nothing kept for a refused archive: {}",
        wrong_dir.display()
    );

    // The right pin: pulled into the cache once...
    let pinned = chart(Some(digest.clone()));
    helm.template(None, "r", "ns", &pinned, &values, Render::Offline)
        .await
        .expect("the pinned chart renders");
    let cached = helm
        .charts
        .cache_dir(&url, "cached", "0.1.0", Some(&digest))
        .unwrap()
        .join("cached-0.1.0.tgz");
    assert_eq!(
        engine::sha256_hex(&std::fs::read(&cached).unwrap()),
        digest,
        "the published archive is in the cache"
    );
    // ...and never pulled again: the repository no longer has it, the cache serves it.
    std::fs::remove_file(&archive).unwrap();
    let objects = helm
        .template(None, "r", "ns", &pinned, &values, Render::Offline)
        .await
        .expect("rendered from the cache without the repository");
    assert_eq!(objects[0]["data"]["greeting"], "hi");
    // A cached archive that no longer matches its pin is refused on use.
    std::fs::write(&cached, b"tampered").unwrap();
    let err = helm
        .template(None, "r", "ns", &pinned, &values, Render::Offline)
        .await
        .expect_err("a tampered cache entry is refused");
    assert!(matches!(err, HelmError::DigestMismatch { .. }), "{err}");

    // A mirror: the source tree at charts/<repo without scheme>/<chart>-<version>/, every file
    // listed in SHA256SUMS. No repository and no cache are needed.
    let mirror = dir.path().join("mirror");
    let store = ChartStore::new(Some(mirror.clone()), None);
    let tree = store.mirror_dir(&url, "cached", "0.1.0").unwrap();
    let tree_rel = tree.strip_prefix(&mirror).unwrap().to_owned();
    std::fs::create_dir_all(tree.join("templates")).unwrap();
    let mut sums = String::new();
    for file in ["Chart.yaml", "templates/objects.yaml"] {
        let bytes = std::fs::read(source.join(file)).unwrap();
        std::fs::write(tree.join(file), &bytes).unwrap();
        sums.push_str(&format!(
            "{}  ./{}/{file}\n",
            engine::sha256_hex(&bytes),
            tree_rel.display()
        ));
    }
    std::fs::write(mirror.join("SHA256SUMS"), sums).unwrap();
    let offline = Helm {
        charts: store,
        ..cached_helm.clone()
    };
    let objects = offline
        .template(None, "r", "ns", &chart(None), &values, Render::Offline)
        .await
        .expect("the mirror serves the chart");
    assert_eq!(objects[0]["data"]["greeting"], "hi");
    // A changed file of the tree is refused.
    let tampered = Helm {
        charts: ChartStore::new(Some(mirror.clone()), None),
        ..cached_helm.clone()
    };
    std::fs::write(tree.join("templates/objects.yaml"), "kind: Secret\n").unwrap();
    let err = tampered
        .template(None, "r", "ns", &chart(None), &values, Render::Offline)
        .await
        .expect_err("a changed tree is refused");
    assert!(
        matches!(err, HelmError::Mirror(_)) && err.to_string().contains("templates/objects.yaml"),
        "{err}"
    );
    // A chart the mirror does not hold says where it looked.
    let other = ChartRef::Repo {
        repo: url.clone(),
        chart: "absent".into(),
        version: "1.0.0".into(),
        sha256: None,
    };
    let err = tampered
        .template(None, "r", "ns", &other, &values, Render::Offline)
        .await
        .expect_err("not in the mirror");
    assert!(
        matches!(err, HelmError::NotInMirror { .. }) && err.to_string().contains("absent-1.0.0"),
        "{err}"
    );
}

#[tokio::test]
async fn the_real_charts_in_the_shared_mirror_pass_its_checksums() {
    let mirror = e2e::mirror_dir();
    let helm = Helm {
        charts: ChartStore::new(Some(mirror), None),
        ..helm()
    };
    let env = config::load(&e2e::workspace_root().join("infra"), None, &xtask::REGISTRY).unwrap();
    for release in &env.releases {
        let config::ChartSource::Repo {
            repo,
            chart,
            version,
            sha256,
        } = &release.chart
        else {
            panic!("{}: not a repository chart", release.name)
        };
        let objects = helm
            .template(
                None,
                &release.name,
                &release.namespace,
                &ChartRef::Repo {
                    repo: repo.clone(),
                    chart: chart.clone(),
                    version: version.clone(),
                    sha256: sha256.clone(),
                },
                &json!({}),
                Render::Offline,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", release.name));
        assert!(!objects.is_empty(), "{}", release.name);
    }
}
