//! Helm releases through the helm CLI: facts (status, deployed values, deployed manifest),
//! rendering, install/upgrade, uninstall, and the live drift of a release's objects.
//!
//! This module gathers facts and executes actions; it does not decide what to do. The
//! orchestration compares [`Helm::status`] and [`Helm::deployed_values`] with the desired
//! release (e.g. with `engine::helm_release_document` on both sides) and asks
//! [`release_drift`] whether the objects of an unchanged release were changed out of band.
//!
//! # How helm is run
//! - The binary is `$ENVCTL_HELM`, else `helm` on `PATH` ([`Helm::locate`]).
//! - Through [`crate::process`], every argument separate (never a shell string);
//!   `--kubeconfig` and `--kube-context` are passed when set.
//! - Values go to helm in a file (`values.json`, mode 0600) inside a private temporary
//!   directory (mode 0700) that is removed when the command returns. Values are never an
//!   argument, and never part of an error: helm's stdout (which can hold rendered Secrets) is
//!   never shown, and its stderr is cut to its end and every string value of the values
//!   document (4 characters or longer) is replaced by `(sensitive value)` before it is shown
//!   (the API server may echo a rejected value in a validation error that helm passes on).
//! - Every command is bounded by a timeout.
//! - The functions are `async`; helm runs on tokio's blocking pool.
//!
//! # Charts
//! [`ChartRef::Repo`] charts are found through the [`ChartStore`] of [`Helm::charts`]: the
//! source tree of an offline mirror (checked against the mirror's SHA256SUMS), else an archive
//! pulled once into the cache (`~/.cache/envctl/charts`), else pulled into the temporary
//! directory; see [`crate::charts`]. A pulled archive's sha256 is checked against the pin
//! *before* helm reads it or it is cached; a mismatch is [`HelmError::DigestMismatch`]. An
//! unpinned repository chart is used as first pulled (its digest is reported by
//! [`Helm::pull_digest`], to pin it).
//! [`ChartRef::Local`] charts (directories) are trusted as they are: a directory has no stable
//! digest (`helm package` writes file times into the archive), so a pin is not checked for them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use crate::charts::{ChartStore, MirrorTree};
use crate::fields;
use crate::objects::Drift;
use crate::process::{Invocation, ProcessError};
use crate::{Cluster, LiveError};

/// Environment variable naming the helm binary.
pub const HELM_ENV: &str = "ENVCTL_HELM";
/// How to get helm, for error messages.
pub const HELM_INSTALL_HINT: &str = "install helm (https://helm.sh/docs/intro/install/, or \
     `go install helm.sh/helm/v3/cmd/helm@v3.22.0`) and put it on PATH, or set ENVCTL_HELM to \
     the helm binary";

/// Timeout of helm commands that do not wait for the cluster (status, get, template, pull).
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(120);
/// How many objects [`release_drift`] checks at once.
pub const DRIFT_CONCURRENCY: usize = 8;
/// Shorter strings of the values are not scrubbed from stderr (they would mangle the message
/// and cannot be meaningful secrets).
const SCRUB_MIN_LEN: usize = 4;

/// A failure of a helm operation. Never contains values or rendered objects.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("helm binary not found ({tried}): {HELM_INSTALL_HINT}")]
    NotFound { tried: String },
    #[error(
        "chart {chart} {version} from {repo}: the archive's sha256 is {actual}, but the \
         configuration pins {expected}; refusing to use it (if the new chart is trusted, \
         update the pin)"
    )]
    DigestMismatch {
        repo: String,
        chart: String,
        version: String,
        expected: String,
        actual: String,
    },
    #[error(
        "chart {chart} {version} from {repo} is not in the mirror: {dir} does not exist (the \
         mirror serves charts as charts/<repository URL without scheme>/<chart>-<version>/; \
         add it there, or run without --mirror/ENVCTL_MIRROR to pull it)"
    )]
    NotInMirror {
        repo: String,
        chart: String,
        version: String,
        dir: PathBuf,
    },
    #[error("{0}; refusing to use it")]
    Mirror(#[from] MirrorTree),
    /// helm ran and failed; `stderr` is scrubbed of values and cut to its end.
    #[error("`{command}` failed: {stderr}")]
    Command {
        command: String,
        /// helm's exit code (`None`: a signal, or helm reported success wrongly).
        exit: Option<i32>,
        stderr: String,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("cannot read the output of `{command}`: {message}")]
    Output { command: String, message: String },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Live(#[from] LiveError),
}

impl HelmError {
    /// helm could not reach the API server (its own client has no retries): a later run can
    /// get past it. helm exits 1 for every failure, so this reads its (scrubbed) stderr.
    pub fn is_transient(&self) -> bool {
        match self {
            HelmError::Command { stderr, .. } => crate::retry::text_is_transient(stderr),
            HelmError::Live(e) => crate::retry::is_transient(e),
            _ => false,
        }
    }
}

/// Where a chart comes from, resolved for helm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartRef {
    /// A chart directory (or archive) on disk; trusted as it is (see the module docs).
    Local(PathBuf),
    /// A chart of a repository (`https://…`, or `oci://…` where the chart name is appended).
    Repo {
        repo: String,
        chart: String,
        version: String,
        /// The pinned sha256 of the chart archive (hex, optionally prefixed `sha256:`).
        sha256: Option<String>,
    },
}

impl ChartRef {
    /// From the engine's chart source: a `path` wins (relative paths are taken from
    /// `base_dir`, normally the `infra/` directory); otherwise the repository. `None` when
    /// the source has neither.
    pub fn from_source(source: &engine::ChartSource, base_dir: &Path) -> Option<ChartRef> {
        if let Some(path) = &source.path {
            return Some(ChartRef::Local(base_dir.join(path)));
        }
        Some(ChartRef::Repo {
            repo: source.repo.clone()?,
            chart: source.chart.clone(),
            version: source.version.clone(),
            sha256: source.sha256.clone(),
        })
    }

    /// The arguments of `helm pull` that fetch this chart into `destination` (repository
    /// charts only).
    pub fn pull_args(&self, destination: &Path) -> Option<Vec<OsString>> {
        let ChartRef::Repo {
            repo,
            chart,
            version,
            ..
        } = self
        else {
            return None;
        };
        let mut args: Vec<OsString> = vec!["pull".into()];
        if repo.starts_with("oci://") {
            args.push(format!("{}/{chart}", repo.trim_end_matches('/')).into());
        } else {
            args.extend(["--repo".into(), repo.into()]);
        }
        args.extend([
            "--version".into(),
            version.into(),
            "--destination".into(),
            destination.as_os_str().to_owned(),
        ]);
        if !repo.starts_with("oci://") {
            // After `--`, a chart name is never read as a flag.
            args.extend(["--".into(), chart.into()]);
        }
        Some(args)
    }
}

/// How a chart is rendered by [`Helm::template`]. helm itself never contacts the cluster
/// for `template`; the live modes hand it the cluster's capabilities ([`capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// `.Capabilities` are helm's defaults (optional API groups such as the Gateway API look
    /// absent). For plans when the cluster does not exist yet.
    Offline,
    /// As a first install into the given cluster: its Kubernetes version and API versions.
    Install,
    /// As an upgrade of the installed release (`.Release.IsUpgrade`), with the cluster's
    /// capabilities: what `helm upgrade` would send now.
    Upgrade,
}

/// What `.Capabilities` a chart sees: the server's version and every served
/// `group/version` and `group/version/Kind` (as helm lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub kube_version: String,
    pub api_versions: Vec<String>,
}

impl Capabilities {
    /// `--kube-version V --api-versions A ...` for `helm template`.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            vec!["--kube-version".into(), self.kube_version.clone().into()];
        for api in &self.api_versions {
            args.push("--api-versions".into());
            args.push(api.into());
        }
        args
    }
}

/// The capabilities of a connected cluster (one version request and one discovery run).
pub async fn capabilities(cluster: &Cluster) -> Result<Capabilities, LiveError> {
    let client = cluster.client().clone();
    let version = client.apiserver_version().await?;
    let discovery = kube::Discovery::new(client).run_aggregated().await?;
    Ok(capabilities_of(version.git_version, &discovery))
}

/// The capabilities given by a discovery already run (e.g. the run's own,
/// [`Cluster::discovery`]) and the server's version: no request at all.
pub fn capabilities_of(kube_version: String, discovery: &kube::Discovery) -> Capabilities {
    let mut api_versions = Vec::new();
    for group in discovery.groups() {
        for version in group.versions() {
            let group_version = if group.name().is_empty() {
                version.to_owned()
            } else {
                format!("{}/{version}", group.name())
            };
            for (resource, _) in group.versioned_resources(version) {
                api_versions.push(format!("{group_version}/{}", resource.kind));
            }
            api_versions.push(group_version);
        }
    }
    api_versions.sort();
    api_versions.dedup();
    Capabilities {
        kube_version,
        api_versions,
    }
}

/// The latest revision of a release (`helm get metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatus {
    pub revision: u64,
    pub chart_name: String,
    pub chart_version: String,
    /// `deployed`, `failed`, `pending-upgrade`, `pending-install`, `superseded`, ….
    pub status: String,
    pub app_version: String,
}

impl ReleaseStatus {
    /// `deployed`: the last operation finished. Anything else (failed, pending-*) needs an
    /// upgrade to converge.
    pub fn is_deployed(&self) -> bool {
        self.status == "deployed"
    }
}

#[derive(Deserialize)]
struct MetadataJson {
    #[serde(default)]
    chart: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "appVersion")]
    app_version: String,
    #[serde(default)]
    revision: u64,
    #[serde(default)]
    status: String,
}

/// The helm CLI, pointed at one cluster.
#[derive(Debug, Clone)]
pub struct Helm {
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Where repository charts come from (mirror, cache).
    pub charts: ChartStore,
}

impl Helm {
    /// The helm of `$ENVCTL_HELM`, else `helm` on `PATH`; an error says how to install it.
    /// Repository charts are cached in [`ChartStore::default_cache`], without a mirror.
    pub fn locate(kubeconfig: Option<PathBuf>, context: Option<String>) -> Result<Helm, HelmError> {
        let bin = locate_binary(HELM_ENV, "helm")?;
        Ok(Helm {
            bin,
            kubeconfig,
            context,
            charts: ChartStore::new(None, ChartStore::default_cache()),
        })
    }

    /// The same helm with another chart store.
    pub fn with_charts(mut self, charts: ChartStore) -> Helm {
        self.charts = charts;
        self
    }

    /// The arguments common to every command talking to the cluster.
    pub fn connection_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        if let Some(path) = &self.kubeconfig {
            args.push("--kubeconfig".into());
            args.push(path.as_os_str().to_owned());
        }
        if let Some(context) = &self.context {
            args.push("--kube-context".into());
            args.push(context.into());
        }
        args
    }

    /// `helm version --short`, e.g. `v3.22.0+g…`.
    pub async fn version(&self) -> Result<String, HelmError> {
        let out = self
            .blocking(|h| h.run(&["version".into(), "--short".into()], QUICK_TIMEOUT, &[]))
            .await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// The latest revision of `release` in `namespace`; `None` when there is no release.
    pub async fn status(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<ReleaseStatus>, HelmError> {
        let args = self.release_args(&["get", "metadata"], release, namespace, &["-o", "json"]);
        let Some(out) = self
            .blocking(move |h| h.run_release(&args, QUICK_TIMEOUT))
            .await?
        else {
            return Ok(None);
        };
        let meta: MetadataJson = serde_json::from_slice(&out).map_err(|e| HelmError::Output {
            command: format!("helm get metadata {release}"),
            message: e.to_string(),
        })?;
        Ok(Some(ReleaseStatus {
            revision: meta.revision,
            chart_name: meta.chart,
            chart_version: meta.version,
            status: meta.status,
            app_version: meta.app_version,
        }))
    }

    /// The values the user supplied to the latest revision (`helm get values -o json`,
    /// without the chart's defaults; `{}` when none); `None` when there is no release.
    /// The result may hold secrets: redact before showing it.
    pub async fn deployed_values(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<Value>, HelmError> {
        let args = self.release_args(&["get", "values"], release, namespace, &["-o", "json"]);
        let Some(out) = self
            .blocking(move |h| h.run_release(&args, QUICK_TIMEOUT))
            .await?
        else {
            return Ok(None);
        };
        let values: Value = serde_json::from_slice(&out).map_err(|e| HelmError::Output {
            command: format!("helm get values {release}"),
            message: e.to_string(),
        })?;
        Ok(Some(if values.is_null() {
            Value::Object(Default::default())
        } else {
            values
        }))
    }

    /// The objects of the latest revision (`helm get manifest`, hooks excluded), as helm
    /// rendered them (namespaced objects may lack `metadata.namespace`: use
    /// [`fill_namespaces`]); `None` when there is no release.
    pub async fn deployed_manifest(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<Vec<Value>>, HelmError> {
        let args = self.release_args(&["get", "manifest"], release, namespace, &[]);
        let Some(out) = self
            .blocking(move |h| h.run_release(&args, QUICK_TIMEOUT))
            .await?
        else {
            return Ok(None);
        };
        parse_manifest(&String::from_utf8_lossy(&out))
            .map(Some)
            .map_err(|message| HelmError::Output {
                command: format!("helm get manifest {release}"),
                message,
            })
    }

    /// The objects `chart` renders for `release` with `values` (hooks included, `crds/` not),
    /// with the release namespace filled into namespaced objects that lack one (scope from
    /// `cluster`'s discovery when given, see [`fill_namespaces`]). [`Render::Install`] and
    /// [`Render::Upgrade`] need `cluster` (for its capabilities).
    pub async fn template(
        &self,
        cluster: Option<&Cluster>,
        release: &str,
        namespace: &str,
        chart: &ChartRef,
        values: &Value,
        render: Render,
    ) -> Result<Vec<Value>, HelmError> {
        let caps = match (render, cluster) {
            (Render::Offline, _) => None,
            (_, Some(cluster)) => Some(capabilities(cluster).await?),
            (_, None) => {
                return Err(HelmError::Io(format!(
                    "rendering {release} as {render:?} needs the cluster's capabilities: \
                     pass the cluster, or render offline"
                )));
            }
        };
        self.template_with(
            caps.as_ref(),
            cluster,
            release,
            namespace,
            chart,
            values,
            render,
        )
        .await
    }

    /// [`Helm::template`] with capabilities the caller already has (one discovery per run,
    /// shared by every render): `caps` is `None` only for [`Render::Offline`].
    #[allow(clippy::too_many_arguments)]
    pub async fn template_with(
        &self,
        caps: Option<&Capabilities>,
        cluster: Option<&Cluster>,
        release: &str,
        namespace: &str,
        chart: &ChartRef,
        values: &Value,
        render: Render,
    ) -> Result<Vec<Value>, HelmError> {
        let caps = caps.cloned();
        let (release_o, namespace_o, chart_o, values_o) = (
            release.to_owned(),
            namespace.to_owned(),
            chart.clone(),
            values.clone(),
        );
        let out = self
            .blocking(move |h| {
                h.with_chart_and_values(&chart_o, &values_o, |chart_path, values_path| {
                    let mut args: Vec<OsString> = vec![
                        "template".into(),
                        "--namespace".into(),
                        namespace_o.clone().into(),
                        "--values".into(),
                        values_path.as_os_str().to_owned(),
                    ];
                    if let Some(caps) = &caps {
                        args.extend(caps.args());
                    }
                    if render == Render::Upgrade {
                        args.push("--is-upgrade".into());
                    }
                    args.extend([
                        "--".into(),
                        release_o.clone().into(),
                        chart_path.as_os_str().to_owned(),
                    ]);
                    h.run(&args, QUICK_TIMEOUT, &scrub_list(&values_o))
                })
            })
            .await?;
        let mut objects = parse_manifest(&String::from_utf8_lossy(&out)).map_err(|message| {
            HelmError::Output {
                command: format!("helm template {release}"),
                message,
            }
        })?;
        fill_namespaces(&mut objects, namespace, cluster);
        Ok(objects)
    }

    /// The sha256 of a repository chart's archive as `helm pull` fetches it (to pin it);
    /// `None` for a local chart. A configured pin is checked too.
    pub async fn pull_digest(&self, chart: &ChartRef) -> Result<Option<String>, HelmError> {
        if matches!(chart, ChartRef::Local(_)) {
            return Ok(None);
        }
        let chart = chart.clone();
        self.blocking(move |h| {
            let dir = private_dir()?;
            let (_, digest) = h.pull(&chart, dir.path())?;
            Ok(Some(digest))
        })
        .await
    }

    /// `helm upgrade --install` with exactly `values` (`--reset-values`), waiting up to
    /// `timeout` for the objects to be ready (`--wait`). helm's success is the answer: no
    /// further helm process asks for the new revision's status (it would add a process start
    /// to every release of an apply).
    pub async fn upgrade_install(
        &self,
        release: &str,
        namespace: &str,
        chart: &ChartRef,
        values: &Value,
        create_namespace: bool,
        timeout: Duration,
    ) -> Result<(), HelmError> {
        let (release_o, namespace_o, chart_o, values_o) = (
            release.to_owned(),
            namespace.to_owned(),
            chart.clone(),
            values.clone(),
        );
        self.blocking(move |h| {
            h.with_chart_and_values(&chart_o, &values_o, |chart_path, values_path| {
                let args = upgrade_args(
                    &release_o,
                    &namespace_o,
                    chart_path,
                    values_path,
                    create_namespace,
                    timeout,
                    &h.connection_args(),
                );
                // helm stops at --timeout; the margin covers pulling and its own start.
                h.run(&args, timeout + QUICK_TIMEOUT, &scrub_list(&values_o))
            })
        })
        .await?;
        Ok(())
    }

    /// `helm uninstall`; with `wait`, waits up to that long for the objects to be deleted.
    /// Returns false when there was no release (nothing to do).
    pub async fn uninstall(
        &self,
        release: &str,
        namespace: &str,
        wait: Option<Duration>,
    ) -> Result<bool, HelmError> {
        let mut extra: Vec<String> = Vec::new();
        if let Some(timeout) = wait {
            extra.push("--wait".into());
            extra.push("--timeout".into());
            extra.push(format!("{}s", timeout.as_secs().max(1)));
        }
        let extra_refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let args = self.release_args(&["uninstall"], release, namespace, &extra_refs);
        let bound = wait.unwrap_or_default() + QUICK_TIMEOUT;
        let out = self.blocking(move |h| h.run_release(&args, bound)).await?;
        Ok(out.is_some())
    }

    // ----- running helm -----

    fn release_args(
        &self,
        command: &[&str],
        release: &str,
        namespace: &str,
        extra: &[&str],
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = command.iter().map(OsString::from).collect();
        args.push("--namespace".into());
        args.push(namespace.into());
        args.extend(extra.iter().map(OsString::from));
        args.extend(self.connection_args());
        // Positional arguments after `--`: a release name is never read as a flag.
        args.push("--".into());
        args.push(release.into());
        args
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Helm) -> Result<T, HelmError> + Send + 'static,
    ) -> Result<T, HelmError> {
        let helm = self.clone();
        tokio::task::spawn_blocking(move || f(&helm))
            .await
            .map_err(|e| HelmError::Io(format!("helm task failed: {e}")))?
    }

    /// Runs a command about one release; `Ok(None)` when helm says the release is not found.
    fn run_release(
        &self,
        args: &[OsString],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, HelmError> {
        match self.run(args, timeout, &[]) {
            Ok(out) => Ok(Some(out)),
            Err(HelmError::Command { stderr, .. }) if is_not_found(&stderr) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs helm (see [`crate::process`]); returns stdout. Errors carry the scrubbed end of
    /// stderr, never stdout.
    fn run(
        &self,
        args: &[OsString],
        timeout: Duration,
        scrub: &[String],
    ) -> Result<Vec<u8>, HelmError> {
        let mut invocation = Invocation::new(&self.bin, args.to_vec(), timeout);
        invocation.shown = Some(display_command(args));
        match crate::process::run(&invocation) {
            Ok(done) => Ok(done.stdout),
            Err(ProcessError::Failed {
                command,
                exit,
                stderr,
            }) => Err(HelmError::Command {
                command,
                exit,
                stderr: clean_stderr(&stderr, scrub),
            }),
            Err(ProcessError::Timeout { command, timeout }) => {
                Err(HelmError::Timeout { command, timeout })
            }
            Err(ProcessError::NotFound { .. }) => Err(HelmError::NotFound {
                tried: self.bin.display().to_string(),
            }),
            Err(e @ ProcessError::Io { .. }) => Err(HelmError::Io(e.to_string())),
        }
    }

    /// Pulls a repository chart into `dir`, checks its pin; returns the archive and its sha256.
    fn pull(&self, chart: &ChartRef, dir: &Path) -> Result<(PathBuf, String), HelmError> {
        let ChartRef::Repo {
            repo,
            chart: name,
            version,
            sha256,
        } = chart
        else {
            return Err(HelmError::Io("only repository charts are pulled".into()));
        };
        let destination = dir.join("chart");
        std::fs::create_dir(&destination).map_err(|e| HelmError::Io(e.to_string()))?;
        let args = chart.pull_args(&destination).unwrap_or_default();
        self.run(&args, QUICK_TIMEOUT, &[])?;
        let archive = single_archive(&destination).map_err(|message| HelmError::Output {
            command: display_command(&args),
            message,
        })?;
        let bytes = std::fs::read(&archive).map_err(|e| HelmError::Io(e.to_string()))?;
        let actual = engine::sha256_hex(&bytes);
        if let Some(expected) = sha256 {
            check_digest(repo, name, version, expected, &actual)?;
        }
        Ok((archive, actual))
    }

    /// The chart helm reads: a local chart as it is; a repository chart from the mirror (its
    /// tree checked), else the cache, else pulled (into the cache when there is one, else into
    /// `tmp`). See [`crate::charts`].
    pub fn chart_path(&self, chart: &ChartRef, tmp: &Path) -> Result<PathBuf, HelmError> {
        let (repo, name, version, sha256) = match chart {
            ChartRef::Local(path) => return Ok(path.clone()),
            ChartRef::Repo {
                repo,
                chart,
                version,
                sha256,
            } => (repo, chart, version, sha256),
        };
        if let Some(dir) = self.charts.mirror_dir(repo, name, version) {
            if !dir.is_dir() {
                return Err(HelmError::NotInMirror {
                    repo: repo.clone(),
                    chart: name.clone(),
                    version: version.clone(),
                    dir,
                });
            }
            self.charts.verify_mirror_tree(&dir, name, version)?;
            return Ok(dir);
        }
        let Some(cache) = self
            .charts
            .cache_dir(repo, name, version, sha256.as_deref())
        else {
            return Ok(self.pull(chart, tmp)?.0);
        };
        if let Ok(archive) = single_archive(&cache) {
            let bytes = std::fs::read(&archive).map_err(|e| HelmError::Io(e.to_string()))?;
            if let Some(expected) = sha256 {
                check_digest(repo, name, version, expected, &engine::sha256_hex(&bytes))?;
            }
            return Ok(archive);
        }
        // Pull next to the cache entry (same file system), then move it in with one rename.
        let parent = cache.parent().unwrap_or(&cache);
        std::fs::create_dir_all(parent).map_err(|e| {
            HelmError::Io(format!(
                "cannot create the chart cache {}: {e}",
                parent.display()
            ))
        })?;
        let staging = tempfile::Builder::new()
            .prefix(".pull-")
            .tempdir_in(parent)
            .map_err(|e| HelmError::Io(format!("cannot pull into {}: {e}", parent.display())))?;
        let (archive, _) = self.pull(chart, staging.path())?;
        let pulled = archive.parent().unwrap_or(staging.path()).to_owned();
        if std::fs::rename(&pulled, &cache).is_err() && single_archive(&cache).is_err() {
            return Err(HelmError::Io(format!(
                "cannot move the pulled chart into the cache {}",
                cache.display()
            )));
        }
        // Another process may have cached it first: use what is there.
        single_archive(&cache).map_err(HelmError::Io)
    }

    /// Runs `f` with the chart's path and a private values file, both inside a temporary
    /// directory that is removed afterwards.
    fn with_chart_and_values<T>(
        &self,
        chart: &ChartRef,
        values: &Value,
        f: impl FnOnce(&Path, &Path) -> Result<T, HelmError>,
    ) -> Result<T, HelmError> {
        let dir = private_dir()?;
        let chart_path = self.chart_path(chart, dir.path())?;
        let values_path = write_values_file(dir.path(), values)?;
        let result = f(&chart_path, &values_path);
        drop(dir);
        result
    }
}

// ----- recovering a release left pending by a run that died -----

/// What brings a release left `pending-*` (its run was killed mid-operation) back to a state
/// helm accepts an upgrade from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Recovery {
    /// Roll back to the last revision that was deployed.
    Rollback { to: u64 },
    /// Uninstall: no revision of it ever deployed.
    Uninstall,
}

/// A release found pending, and how it is recovered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Pending {
    /// `pending-install`, `pending-upgrade` or `pending-rollback`.
    pub status: String,
    pub revision: u64,
    /// When the pending revision was written (helm's `updated`).
    pub since: String,
    pub recovery: Recovery,
}

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recovery: revision {} is `{}` since {} (a run was interrupted); apply first ",
            self.revision, self.status, self.since
        )?;
        match self.recovery {
            Recovery::Rollback { to } => {
                write!(f, "rolls back to revision {to}, the last deployed")
            }
            Recovery::Uninstall => write!(f, "uninstalls it (it never deployed)"),
        }
    }
}

#[derive(Deserialize)]
struct HistoryJson {
    #[serde(default)]
    revision: u64,
    #[serde(default)]
    updated: String,
    #[serde(default)]
    status: String,
}

/// The recovery of a release from its history (`helm history -o json`), if it is pending.
pub fn pending_from_history(history: &[(u64, String, String)]) -> Option<Pending> {
    let (revision, status, since) = history.iter().max_by_key(|(r, _, _)| *r)?.clone();
    if !status.starts_with("pending-") {
        return None;
    }
    let deployed = history
        .iter()
        .filter(|(r, s, _)| *r < revision && matches!(s.as_str(), "deployed" | "superseded"))
        .map(|(r, _, _)| *r)
        .max();
    Some(Pending {
        status,
        revision,
        since,
        recovery: match deployed {
            Some(to) => Recovery::Rollback { to },
            None => Recovery::Uninstall,
        },
    })
}

impl Helm {
    /// The release's recovery when its latest revision is `pending-*`; `None` otherwise.
    pub async fn pending(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<Pending>, HelmError> {
        let args = self.release_args(
            &["history"],
            release,
            namespace,
            &["-o", "json", "--max", "20"],
        );
        let Some(out) = self
            .blocking(move |h| h.run_release(&args, QUICK_TIMEOUT))
            .await?
        else {
            return Ok(None);
        };
        let history: Vec<HistoryJson> =
            serde_json::from_slice(&out).map_err(|e| HelmError::Output {
                command: format!("helm history {release}"),
                message: e.to_string(),
            })?;
        let history: Vec<(u64, String, String)> = history
            .into_iter()
            .map(|h| (h.revision, h.status, h.updated))
            .collect();
        Ok(pending_from_history(&history))
    }

    /// Performs a recovery (`helm rollback --wait` or `helm uninstall --wait`).
    pub async fn recover(
        &self,
        release: &str,
        namespace: &str,
        pending: &Pending,
        timeout: Duration,
    ) -> Result<(), HelmError> {
        match pending.recovery {
            Recovery::Uninstall => {
                self.uninstall(release, namespace, Some(timeout)).await?;
            }
            Recovery::Rollback { to } => {
                let wait = format!("{}s", timeout.as_secs().max(1));
                let mut args: Vec<OsString> =
                    vec!["rollback".into(), "--namespace".into(), namespace.into()];
                args.extend(["--wait".into(), "--timeout".into(), wait.into()]);
                args.extend(self.connection_args());
                args.extend(["--".into(), release.into(), to.to_string().into()]);
                self.blocking(move |h| h.run(&args, timeout + QUICK_TIMEOUT, &[]))
                    .await?;
            }
        }
        Ok(())
    }
}

/// A binary from `$<env_var>`, else `<name>` on `PATH`.
pub fn locate_binary(env_var: &str, name: &str) -> Result<PathBuf, HelmError> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HelmError::NotFound {
                tried: format!("{env_var}={} is not a file", path.display()),
            })
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HelmError::NotFound {
            tried: format!("{env_var} is not set and `{name}` is not on PATH"),
        })
}

/// The arguments of `helm upgrade --install`.
pub fn upgrade_args(
    release: &str,
    namespace: &str,
    chart: &Path,
    values_file: &Path,
    create_namespace: bool,
    timeout: Duration,
    connection: &[OsString],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "upgrade".into(),
        "--install".into(),
        "--namespace".into(),
        namespace.into(),
        "--values".into(),
        values_file.as_os_str().to_owned(),
        "--reset-values".into(),
        "--wait".into(),
        "--timeout".into(),
        format!("{}s", timeout.as_secs().max(1)).into(),
    ];
    if create_namespace {
        args.push("--create-namespace".into());
    }
    args.extend(connection.iter().cloned());
    // Positional arguments after `--`: a release or chart name is never read as a flag.
    args.extend(["--".into(), release.into(), chart.as_os_str().to_owned()]);
    args
}

/// The one `.tgz` in `dir`.
fn single_archive(dir: &Path) -> Result<PathBuf, String> {
    let archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .collect();
    match archives.as_slice() {
        [archive] => Ok(archive.clone()),
        _ => Err(format!(
            "expected one chart archive in {}, found {}",
            dir.display(),
            archives.len()
        )),
    }
}

fn check_digest(
    repo: &str,
    chart: &str,
    version: &str,
    expected: &str,
    actual: &str,
) -> Result<(), HelmError> {
    let want = expected
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    if want == actual {
        Ok(())
    } else {
        Err(HelmError::DigestMismatch {
            repo: repo.to_owned(),
            chart: chart.to_owned(),
            version: version.to_owned(),
            expected: want,
            actual: actual.to_owned(),
        })
    }
}

/// A temporary directory only the owner can enter (mode 0700), removed when dropped.
pub(crate) fn private_dir_with_prefix(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder.tempdir()
}

fn private_dir() -> Result<tempfile::TempDir, HelmError> {
    private_dir_with_prefix("envctl-helm-")
        .map_err(|e| HelmError::Io(format!("cannot create a temporary directory: {e}")))
}

fn write_values_file(dir: &Path, values: &Value) -> Result<PathBuf, HelmError> {
    let path = dir.join("values.json");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| HelmError::Io(format!("cannot create the values file: {e}")))?;
    // JSON is YAML: helm reads it as a values file.
    let body = serde_json::to_vec(values).map_err(|e| HelmError::Io(e.to_string()))?;
    file.write_all(&body)
        .map_err(|e| HelmError::Io(format!("cannot write the values file: {e}")))?;
    Ok(path)
}

fn display_command(args: &[OsString]) -> String {
    let mut out = String::from("helm");
    for arg in args {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// helm's own "no such release" (`driver.ErrReleaseNotFound`): helm exits 1 for it as for every
/// failure, so its stderr is the only signal.
fn is_not_found(stderr: &str) -> bool {
    stderr.contains("release: not found")
}

/// Every string of `values` long enough to be scrubbed, longest first.
fn scrub_list(values: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if s.chars().count() >= SCRUB_MIN_LEN => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(values, &mut out);
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

/// helm's stderr for an error: every string of `scrub` replaced, cut to its last
/// [`crate::process::STDERR_LIMIT`] bytes (helm prints the reason last).
fn clean_stderr(stderr: &str, scrub: &[String]) -> String {
    let mut text = stderr.trim().to_owned();
    for secret in scrub {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), engine::SENSITIVE);
        }
    }
    // Scrubbed first, then cut: a value cut in two would no longer be found.
    let text = crate::process::tail(&text);
    if text.is_empty() {
        "(helm printed nothing on stderr)".into()
    } else {
        text
    }
}

/// The objects of a multi-document YAML stream as helm prints it: empty and comment-only
/// documents dropped, `*List` objects flattened into their items.
pub fn parse_manifest(yaml: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    // Split on document markers ourselves: one bad document then names its source template.
    for doc in engine::split_documents(yaml) {
        let doc = doc.text;
        let value: Value = serde_saphyr::from_str(&doc).map_err(|e| {
            let source = doc
                .lines()
                .find_map(|l| l.trim().strip_prefix("# Source: "))
                .unwrap_or("a document");
            format!("{source}: {e}")
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref map)
                if map
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && map.get("items").is_some_and(Value::is_array) =>
            {
                if let Some(Value::Array(items)) = map.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Kinds the Kubernetes API serves cluster-scoped, for when discovery cannot tell.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterTrustBundle",
    "ComponentStatus",
    "CustomResourceDefinition",
    "FlowSchema",
    "GatewayClass",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// Whether objects of `api_version`/`kind` are namespaced: the cluster's discovery when it
/// serves the type, else a CustomResourceDefinition among `objects` that defines it, else
/// the list of cluster-scoped built-in kinds (anything else counts as namespaced).
pub fn is_namespaced(
    api_version: &str,
    kind: &str,
    cluster: Option<&Cluster>,
    objects: &[Value],
) -> bool {
    if let Some(ty) = cluster.and_then(|c| c.resolve(api_version, kind)) {
        return ty.namespaced;
    }
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let crd_scope = objects.iter().find_map(|o| {
        (o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && o.pointer("/spec/group").and_then(Value::as_str) == Some(group)
            && o.pointer("/spec/names/kind").and_then(Value::as_str) == Some(kind))
        .then(|| o.pointer("/spec/scope").and_then(Value::as_str))
        .flatten()
    });
    match crd_scope {
        Some(scope) => scope == "Namespaced",
        None => !CLUSTER_SCOPED_KINDS.contains(&kind),
    }
}

/// Sets `metadata.namespace = namespace` on every namespaced object that has none (helm
/// leaves it empty when a chart's template does not set it; helm itself then installs into
/// the release namespace). Scope is decided by [`is_namespaced`].
pub fn fill_namespaces(objects: &mut [Value], namespace: &str, cluster: Option<&Cluster>) {
    let scopes: Vec<bool> = objects
        .iter()
        .map(|o| {
            is_namespaced(
                o.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                o.get("kind").and_then(Value::as_str).unwrap_or_default(),
                cluster,
                objects,
            )
        })
        .collect();
    for (object, namespaced) in objects.iter_mut().zip(scopes) {
        let has_namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if namespaced && !has_namespace {
            if let Some(Value::Object(meta)) = object.get_mut("metadata") {
                meta.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
        } else if !namespaced && let Some(Value::Object(meta)) = object.get_mut("metadata") {
            meta.remove("namespace");
        }
    }
}

/// `<lowercase kind>/<namespace>/<name>` (or `<lowercase kind>/<name>` when cluster-scoped),
/// like the name part of an object address.
pub fn object_id(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_lowercase();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Whether a rendered object is a Helm hook (run around install/upgrade, not kept as part
/// of the release).
pub fn is_hook(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("helm.sh/hook"))
        .is_some()
}

/// One object of a release that differs live from what the chart renders.
#[derive(Debug, Clone)]
pub struct ObjectDrift {
    /// `<lowercase kind>/<namespace>/<name>`.
    pub object: String,
    /// Live, stripped of noise (Secrets' data redacted).
    pub before: Value,
    /// What the chart's object would make of it, stripped likewise.
    pub after: Value,
    /// The differing fields, with the manager that last wrote each (e.g. `kubectl-edit`).
    pub fields: Vec<Drift>,
}

/// What differs live from a release's rendered objects.
#[derive(Debug, Clone, Default)]
pub struct ReleaseDrift {
    /// Objects the chart renders that do not exist (`<kind>/<ns>/<name>`).
    pub missing: Vec<String>,
    /// Objects whose live state differs.
    pub changed: Vec<ObjectDrift>,
    /// Objects not compared, each with the reason (hooks, kinds the cluster does not serve,
    /// objects the server refused in the dry run).
    pub skipped: Vec<String>,
    /// [`engine::content_hash`] of each object found in sync, as read live, by
    /// [`ObjectIdentity`].
    pub in_sync: BTreeMap<ObjectIdentity, String>,
}

/// `(apiVersion, kind, namespace where namespaced, name)` of an object of a release.
pub type ObjectIdentity = (String, String, Option<String>, String);

impl ReleaseDrift {
    /// No object missing or changed (skipped objects do not count).
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty()
    }
}

/// The live drift of a release: renders `chart` with `values` as an upgrade against the
/// cluster ([`Render::Upgrade`]) and compares every rendered object with the live one.
///
/// Pass the DEPLOYED values (from [`Helm::deployed_values`]) and the deployed chart to see
/// out-of-band changes (what `kubectl edit` changed or someone deleted); pass the desired
/// ones to see what an upgrade would change in the cluster. See [`objects_drift`].
pub async fn release_drift(
    cluster: &Cluster,
    helm: &Helm,
    release: &str,
    namespace: &str,
    chart: &ChartRef,
    values: &Value,
) -> Result<ReleaseDrift, HelmError> {
    let objects = helm
        .template(
            Some(cluster),
            release,
            namespace,
            chart,
            values,
            Render::Upgrade,
        )
        .await?;
    Ok(objects_drift(cluster, &objects).await?)
}

/// Compares each object (with its namespace filled in) with the live one: the server is asked
/// with a server-side-apply dry run (forced, field manager `envctl`; nothing is persisted)
/// what the object would become, and that answer is compared with the live object, both
/// stripped of noise. Each differing field names the manager that last wrote it live.
///
/// Fields someone ADDED out of band (that the objects do not set) are not drift: an apply
/// keeps them, as helm's upgrade does. Hooks and kinds the cluster does not serve are skipped
/// with a note. Runs [`DRIFT_CONCURRENCY`] objects at once.
pub async fn objects_drift(
    cluster: &Cluster,
    objects: &[Value],
) -> Result<ReleaseDrift, LiveError> {
    let results = stream::iter(objects.iter())
        .map(|object| object_drift(cluster, object))
        .buffer_unordered(DRIFT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut drift = ReleaseDrift::default();
    for result in results {
        match result? {
            OneDrift::InSync(identity, content) => {
                drift.in_sync.insert(identity, content);
            }
            OneDrift::Missing(id) => drift.missing.push(id),
            OneDrift::Changed(changed) => drift.changed.push(changed),
            OneDrift::Skipped(note) => drift.skipped.push(note),
        }
    }
    drift.missing.sort();
    drift.changed.sort_by(|a, b| a.object.cmp(&b.object));
    drift.skipped.sort();
    Ok(drift)
}

enum OneDrift {
    InSync(ObjectIdentity, String),
    Missing(String),
    Changed(ObjectDrift),
    Skipped(String),
}

async fn object_drift(cluster: &Cluster, object: &Value) -> Result<OneDrift, LiveError> {
    let id = object_id(object);
    if is_hook(object) {
        return Ok(OneDrift::Skipped(format!(
            "{id}: a Helm hook, not kept as part of the release"
        )));
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(ty) = cluster.resolve(api_version, kind) else {
        return Ok(OneDrift::Skipped(format!(
            "{id}: the cluster does not serve {api_version} {kind}; not compared"
        )));
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|_| ty.namespaced);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(live) = cluster.get(&ty, namespace, name).await? else {
        return Ok(OneDrift::Missing(id));
    };
    let after = match cluster.apply(&ty, object, true, true).await {
        Ok(after) => after,
        Err(LiveError::Api { status, .. }) if status.is_invalid() => {
            let reason = if kind == "Secret" {
                "(the message may hold secret data and is not shown)".to_owned()
            } else {
                status.message.clone()
            };
            return Ok(OneDrift::Skipped(format!(
                "{id}: the server refused the chart's object in a dry run: {reason}"
            )));
        }
        Err(e) => return Err(e),
    };
    let before = fields::strip_noise(&live);
    let after = fields::strip_noise(&after);
    if before == after {
        let identity = (
            api_version.to_owned(),
            kind.to_owned(),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        return Ok(OneDrift::InSync(identity, engine::content_hash(&live)));
    }
    let drift = crate::objects::attribute(&before, &after, &live);
    Ok(OneDrift::Changed(ObjectDrift {
        object: id,
        before: engine::redact(&before, &[]),
        after: engine::redact(&after, &[]),
        fields: drift,
    }))
}

/// API groups Kubernetes itself serves: helm upgrades their objects with a three-way
/// strategic merge patch; objects of custom resources get a two-way JSON merge patch.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Whether helm upgrades objects of `api_version` with a three-way merge (deployed, new,
/// live: fields changed live are set back) rather than a two-way one (deployed, new).
pub fn is_three_way(api_version: &str) -> bool {
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    BUILT_IN_GROUPS.contains(&group)
}

/// The JSON merge patch (RFC 7386) that takes `current` where helm's upgrade takes it, from
/// `deployed` (the object as the deployed revision rendered it; `None` when it is new to the
/// release) to `new` (as the new chart and values render it); `None` when nothing is sent.
///
/// Like helm's three-way merge: a field `new` sets is set when `current` differs; a field
/// `deployed` set and `new` does not is removed; a field only `current` has (a default, or
/// someone else's) is kept. A list `new` sets is sent whole when it changed or `current` does
/// not hold it, so an element dropped from the chart goes (the server defaults the fields of
/// the elements again, as for helm's strategic merge by key).
pub fn upgrade_patch(deployed: Option<&Value>, new: &Value, current: &Value) -> Option<Value> {
    match (new, current) {
        (Value::Object(n), Value::Object(c)) => {
            let d = deployed.and_then(Value::as_object);
            let mut patch = serde_json::Map::new();
            for (key, nv) in n {
                match c.get(key) {
                    Some(cv) => {
                        if let Some(p) = upgrade_patch(d.and_then(|d| d.get(key)), nv, cv) {
                            patch.insert(key.clone(), p);
                        }
                    }
                    None if nv.is_null() => {}
                    None => {
                        patch.insert(key.clone(), nv.clone());
                    }
                }
            }
            for key in d.into_iter().flat_map(|d| d.keys()) {
                if !n.contains_key(key) && c.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (Value::Array(_), Value::Array(_)) => {
            let unchanged = deployed.is_none_or(|d| d == new);
            (!(unchanged && fields::is_contained(new, current))).then(|| new.clone())
        }
        _ if new == current => None,
        _ => Some(new.clone()),
    }
}

/// What installing or upgrading a release does to its objects.
#[derive(Debug, Clone, Default)]
pub struct ReleaseChanges {
    /// The objects that change, by object id.
    pub objects: Vec<engine::ObjectChange>,
    /// Objects not compared, each with the reason (hooks, objects the server refused in the
    /// dry run, objects helm keeps).
    pub skipped: Vec<String>,
}

/// The objects an install of the release creates: every rendered object but hooks.
/// `secrets` are the release's sensitive values (scrubbed from what is shown).
pub fn install_changes(rendered: &[Value], secrets: &[String]) -> ReleaseChanges {
    let mut changes = ReleaseChanges::default();
    for object in rendered {
        if is_hook(object) {
            changes.skipped.push(format!(
                "{}: a Helm hook, run by helm, not kept as part of the release",
                object_id(object)
            ));
        } else {
            changes.objects.push(engine::ObjectChange::create(
                &fields::strip_noise(object),
                secrets,
            ));
        }
    }
    changes.objects.sort_by(|a, b| a.object.cmp(&b.object));
    changes
}

/// What an upgrade from the deployed revision (`deployed`, from [`Helm::deployed_manifest`]
/// with namespaces filled in) to `rendered` (the new chart and values, [`Render::Upgrade`])
/// does to the cluster, object by object: objects created; objects deleted (deployed, no
/// longer rendered, unless annotated `helm.sh/resource-policy: keep`); and for the others the
/// patch helm would send ([`upgrade_patch`]), sent as a dry run (nothing is persisted), whose
/// answer is compared with the live object, both stripped of server noise. Server-defaulted
/// fields are on both sides, so they never show as changes.
pub async fn upgrade_changes(
    cluster: &Cluster,
    deployed: &[Value],
    rendered: &[Value],
    secrets: &[String],
) -> Result<ReleaseChanges, LiveError> {
    let deployed_by_id: std::collections::BTreeMap<String, &Value> = deployed
        .iter()
        .filter(|o| !is_hook(o))
        .map(|o| (object_id(o), o))
        .collect();
    let results = stream::iter(rendered.iter())
        .map(|object| {
            let old = deployed_by_id.get(&object_id(object)).copied();
            object_upgrade(cluster, old, object, secrets)
        })
        .buffer_unordered(DRIFT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut changes = ReleaseChanges::default();
    for result in results {
        match result? {
            Ok(Some(change)) => changes.objects.push(change),
            Ok(None) => {}
            Err(note) => changes.skipped.push(note),
        }
    }
    let rendered_ids: std::collections::BTreeSet<String> = rendered.iter().map(object_id).collect();
    for (id, old) in &deployed_by_id {
        if rendered_ids.contains(id) {
            continue;
        }
        let keep = old
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("helm.sh/resource-policy"))
            .and_then(Value::as_str)
            == Some("keep");
        if keep {
            changes.skipped.push(format!(
                "{id}: no longer rendered, but annotated helm.sh/resource-policy: keep, so \
                 helm leaves it"
            ));
            continue;
        }
        if let Some(live) = live_object(cluster, old).await? {
            changes.objects.push(engine::ObjectChange::delete(
                &fields::strip_noise(&live),
                secrets,
            ));
        }
    }
    changes.objects.sort_by(|a, b| a.object.cmp(&b.object));
    changes.skipped.sort();
    Ok(changes)
}

/// The live version of `object`; `None` when it does not exist or its kind is not served.
async fn live_object(cluster: &Cluster, object: &Value) -> Result<Option<Value>, LiveError> {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let Some(ty) = cluster.resolve(text("/apiVersion"), text("/kind")) else {
        return Ok(None);
    };
    let namespace = Some(text("/metadata/namespace")).filter(|n| ty.namespaced && !n.is_empty());
    cluster.get(&ty, namespace, text("/metadata/name")).await
}

/// One rendered object of an upgrade: `Ok(Ok(None))` unchanged, `Ok(Err(note))` not compared.
async fn object_upgrade(
    cluster: &Cluster,
    deployed: Option<&Value>,
    object: &Value,
    secrets: &[String],
) -> Result<Result<Option<engine::ObjectChange>, String>, LiveError> {
    let id = object_id(object);
    if is_hook(object) {
        return Ok(Err(format!(
            "{id}: a Helm hook, run by helm, not kept as part of the release"
        )));
    }
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (api_version, kind) = (text("/apiVersion"), text("/kind"));
    let Some(ty) = cluster.resolve(api_version, kind) else {
        // Not served yet (a CRD of the same chart, say): it can only be created.
        return Ok(Ok(Some(engine::ObjectChange::create(
            &fields::strip_noise(object),
            secrets,
        ))));
    };
    let namespace = Some(text("/metadata/namespace")).filter(|n| ty.namespaced && !n.is_empty());
    let name = text("/metadata/name");
    let Some(live) = cluster.get(&ty, namespace, name).await? else {
        return Ok(Ok(Some(engine::ObjectChange::create(
            &fields::strip_noise(object),
            secrets,
        ))));
    };
    let current = if is_three_way(api_version) {
        &live
    } else {
        deployed.unwrap_or(&live)
    };
    let Some(patch) = upgrade_patch(deployed, object, current) else {
        return Ok(Ok(None));
    };
    let api: kube::Api<kube::api::DynamicObject> = match namespace {
        Some(ns) => kube::Api::namespaced_with(cluster.client().clone(), ns, &ty.resource),
        None => kube::Api::all_with(cluster.client().clone(), &ty.resource),
    };
    let params = kube::api::PatchParams {
        dry_run: true,
        field_manager: Some("helm".into()),
        ..Default::default()
    };
    let after = match api
        .patch(name, &params, &kube::api::Patch::Merge(&patch))
        .await
    {
        Ok(after) => serde_json::to_value(after)?,
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
            let reason = if kind == "Secret" {
                "(the message may hold secret data and is not shown)".to_owned()
            } else {
                status.message.clone()
            };
            return Ok(Err(format!(
                "{id}: the server refused the upgraded object in a dry run: {reason}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let before = fields::strip_noise(&live);
    let after = fields::align_order(&fields::strip_noise(&after), &before);
    Ok(Ok(engine::ObjectChange::update(&before, &after, secrets)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_pending_release_rolls_back_to_its_last_deployed_revision_or_is_uninstalled() {
        let h = |r: u64, s: &str| (r, s.to_owned(), format!("t{r}"));
        let upgrade = pending_from_history(&[
            h(1, "superseded"),
            h(2, "deployed"),
            h(3, "pending-upgrade"),
        ])
        .unwrap();
        assert_eq!(upgrade.recovery, Recovery::Rollback { to: 2 });
        assert_eq!(upgrade.since, "t3");
        assert!(upgrade.to_string().contains("rolls back to revision 2"));
        let install = pending_from_history(&[h(1, "pending-install")]).unwrap();
        assert_eq!(install.recovery, Recovery::Uninstall);
        assert_eq!(pending_from_history(&[h(1, "deployed")]), None);
        assert_eq!(
            pending_from_history(&[h(1, "deployed"), h(2, "failed")]),
            None
        );
    }
    #[test]
    fn repository_charts_are_pulled_by_repo_and_oci_charts_by_reference() {
        let https = ChartRef::Repo {
            repo: "https://charts.dexidp.io".into(),
            chart: "dex".into(),
            version: "0.24.0".into(),
            sha256: None,
        };
        assert_eq!(
            strings(&https.pull_args(Path::new("/tmp/x")).unwrap()),
            [
                "pull",
                "--repo",
                "https://charts.dexidp.io",
                "--version",
                "0.24.0",
                "--destination",
                "/tmp/x",
                "--",
                "dex"
            ]
        );
        let oci = ChartRef::Repo {
            repo: "oci://ghcr.io/org/charts/".into(),
            chart: "app".into(),
            version: "1.0.0".into(),
            sha256: None,
        };
        assert_eq!(
            strings(&oci.pull_args(Path::new("/d")).unwrap())[..2],
            ["pull", "oci://ghcr.io/org/charts/app"]
        );
        assert!(
            ChartRef::Local("/c".into())
                .pull_args(Path::new("/d"))
                .is_none()
        );
    }

    #[test]
    fn chart_source_path_wins_over_repository() {
        let mut source = engine::ChartSource {
            repo: Some("https://charts.dexidp.io".into()),
            chart: "dex".into(),
            version: "0.24.0".into(),
            path: Some("charts/dex".into()),
            sha256: Some("ab".into()),
        };
        assert_eq!(
            ChartRef::from_source(&source, Path::new("/infra")),
            Some(ChartRef::Local("/infra/charts/dex".into()))
        );
        source.path = None;
        assert!(matches!(
            ChartRef::from_source(&source, Path::new("/infra")),
            Some(ChartRef::Repo {
                sha256: Some(_),
                ..
            })
        ));
        source.repo = None;
        assert_eq!(ChartRef::from_source(&source, Path::new("/infra")), None);
    }

    #[test]
    fn a_digest_mismatch_names_both_digests() {
        let actual = engine::sha256_hex(b"archive");
        assert!(
            check_digest(
                "r",
                "c",
                "1",
                &format!("sha256:{}", actual.to_uppercase()),
                &actual
            )
            .is_ok()
        );
        let err = check_digest("https://r", "dex", "0.24.0", "00ff", &actual).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("00ff") && text.contains(&actual), "{text}");
        assert!(matches!(err, HelmError::DigestMismatch { .. }));
    }

    #[test]
    fn upgrade_passes_values_as_a_file_and_the_connection_through() {
        let helm = Helm {
            bin: "helm".into(),
            kubeconfig: Some("/k/config".into()),
            context: Some("kind-dev".into()),
            charts: ChartStore::default(),
        };
        let args = upgrade_args(
            "dex",
            "sso",
            Path::new("/tmp/c/dex-0.24.0.tgz"),
            Path::new("/tmp/c/values.json"),
            true,
            Duration::from_secs(300),
            &helm.connection_args(),
        );
        assert_eq!(
            strings(&args),
            [
                "upgrade",
                "--install",
                "--namespace",
                "sso",
                "--values",
                "/tmp/c/values.json",
                "--reset-values",
                "--wait",
                "--timeout",
                "300s",
                "--create-namespace",
                "--kubeconfig",
                "/k/config",
                "--kube-context",
                "kind-dev",
                "--",
                "dex",
                "/tmp/c/dex-0.24.0.tgz"
            ]
        );
    }

    #[test]
    fn values_never_reach_an_error_message() {
        let values = json!({"config": {"clientSecret": "s3cr3t-value", "port": 80, "x": "ab"},
            "list": ["another-secret"]});
        let scrub = scrub_list(&values);
        assert_eq!(scrub, ["another-secret", "s3cr3t-value"]);
        let stderr = "Error: UPGRADE FAILED: Secret \"x\" is invalid: data: Invalid value: \
                      \"s3cr3t-value\" and another-secret\n";
        let cleaned = clean_stderr(stderr, &scrub);
        assert!(!cleaned.contains("s3cr3t") && !cleaned.contains("another-secret"));
        assert!(cleaned.contains("(sensitive value)") && cleaned.contains("UPGRADE FAILED"));
        let long = format!("{}the reason", "x".repeat(5000));
        let cut = clean_stderr(&long, &[]);
        assert!(cut.ends_with("the reason") && cut.len() <= crate::process::STDERR_LIMIT + 4);
    }

    #[test]
    fn the_values_file_is_private() {
        let dir = private_dir().unwrap();
        let path = write_values_file(dir.path(), &json!({"a": "b"})).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"a":"b"}"#);
        let kept = dir.path().to_owned();
        drop(dir);
        assert!(!kept.exists(), "the temporary directory is removed");
    }

    #[test]
    fn manifests_parse_like_helm_prints_them() {
        let yaml = "---\n# Source: dex/templates/service.yaml\napiVersion: v1\nkind: Service\n\
                    metadata:\n  name: dex\nspec:\n  ports:\n  - port: 80\n---\n# Source: empty.yaml\n\
                    ---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  \
                    metadata: {name: a}\n";
        let objects = parse_manifest(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["spec"]["ports"][0]["port"], 80);
        assert_eq!(objects[1]["kind"], "ConfigMap");
        let err = parse_manifest("# Source: bad.yaml\na: [\n").unwrap_err();
        assert!(err.starts_with("bad.yaml: "), "{err}");
    }

    #[test]
    fn namespaces_are_filled_for_namespaced_kinds_only() {
        let mut objects = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Global", "metadata": {"name": "g"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Local", "metadata": {"name": "l"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "globals.example.com"},
                "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Global"}}}),
        ];
        fill_namespaces(&mut objects, "sso", None);
        let ids: Vec<String> = objects.iter().map(object_id).collect();
        assert_eq!(
            ids,
            [
                "deployment/sso/d",
                "configmap/other/c",
                "clusterrole/r",
                "global/g",
                "local/sso/l",
                "customresourcedefinition/globals.example.com"
            ]
        );
    }

    #[test]
    fn capabilities_become_template_flags() {
        let caps = Capabilities {
            kube_version: "v1.36.3".into(),
            api_versions: vec!["apps/v1".into(), "apps/v1/Deployment".into()],
        };
        assert_eq!(
            strings(&caps.args()),
            [
                "--kube-version",
                "v1.36.3",
                "--api-versions",
                "apps/v1",
                "--api-versions",
                "apps/v1/Deployment"
            ]
        );
    }

    #[test]
    fn the_upgrade_patch_is_helms_three_way_merge() {
        let deployed = json!({"metadata": {"name": "dex", "labels": {"a": "1", "gone": "x"}},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                     "selector": {"app": "dex"}}});
        // Live: server defaults (protocol, clusterIP) and a label someone else added.
        let live = json!({"metadata": {"name": "dex", "labels": {"a": "1", "gone": "x", "team": "t"}},
            "spec": {"clusterIP": "10.96.0.12",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                     "selector": {"app": "dex"}}});
        // Nothing changes: nothing is sent, defaults and foreign fields notwithstanding.
        assert_eq!(upgrade_patch(Some(&deployed), &deployed, &live), None);

        // The port changes: the whole list goes (the server defaults its elements again); a
        // label dropped from the chart is removed; the foreign label and defaults stay.
        let mut new = deployed.clone();
        new["spec"]["ports"][0]["port"] = json!(8080);
        new["metadata"]["labels"] = json!({"a": "1"});
        assert_eq!(
            upgrade_patch(Some(&deployed), &new, &live),
            Some(json!({"metadata": {"labels": {"gone": null}},
                "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}}))
        );

        // A field changed live behind helm's back is set back (three-way), a new field added.
        let mut drifted = live.clone();
        drifted["spec"]["selector"]["app"] = json!("other");
        let mut new = deployed.clone();
        new["spec"]["type"] = json!("ClusterIP");
        assert_eq!(
            upgrade_patch(Some(&deployed), &new, &drifted),
            Some(json!({"spec": {"selector": {"app": "dex"}, "type": "ClusterIP"}}))
        );
        // A list the chart did not change but someone did is sent whole.
        let mut edited = live.clone();
        edited["spec"]["ports"][0]["port"] = json!(81);
        assert_eq!(
            upgrade_patch(Some(&deployed), &deployed, &edited),
            Some(json!({"spec": {"ports": deployed["spec"]["ports"]}}))
        );
        // An object new to the release is compared with the live one only.
        assert_eq!(upgrade_patch(None, &deployed, &live), None);
    }

    #[test]
    fn built_in_kinds_get_three_way_merges_and_custom_resources_two_way() {
        assert!(is_three_way("v1") && is_three_way("apps/v1"));
        assert!(is_three_way("rbac.authorization.k8s.io/v1"));
        assert!(!is_three_way("gateway.networking.k8s.io/v1"));
        assert!(!is_three_way("networking.istio.io/v1"));
    }

    #[test]
    fn an_install_lists_every_object_but_hooks() {
        let rendered = vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dex", "namespace": "sso"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dex", "namespace": "sso"},
                "data": {"config.yaml": "c2VjcmV0"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "namespace": "sso",
                "annotations": {"helm.sh/hook": "test"}}}),
        ];
        let changes = install_changes(&rendered, &[]);
        let ids: Vec<&str> = changes.objects.iter().map(|o| o.object.as_str()).collect();
        assert_eq!(ids, ["secret/sso/dex", "service/sso/dex"]);
        assert_eq!(changes.skipped.len(), 1);
        assert!(!format!("{:?}", changes.objects).contains("c2VjcmV0"));
    }

    #[test]
    fn hooks_are_recognised() {
        assert!(is_hook(
            &json!({"metadata": {"annotations": {"helm.sh/hook": "test"}}})
        ));
        assert!(!is_hook(&json!({"metadata": {"name": "x"}})));
    }

    #[test]
    fn locating_a_missing_binary_says_how_to_install_it() {
        let err =
            locate_binary("ENVCTL_TEST_NO_SUCH_VAR_FOR_HELM", "envctl-no-such-binary").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not on PATH") && text.contains("helm.sh/docs"),
            "{text}"
        );
    }
}
