//! Where a repository chart comes from before helm reads it: an offline mirror tree, the local
//! cache of pulled archives, or the repository itself (`helm pull`, once).
//!
//! # Lookup, for a [`ChartRef::Repo`](crate::helm::ChartRef) `repo`/`chart`/`version`
//! 1. With a mirror (`--mirror DIR`, `ENVCTL_MIRROR`): the chart is the source tree
//!    `DIR/charts/<repo URL without scheme>/<chart>-<version>/`, and only there (a mirror means
//!    offline). A tree is not the published archive, so a pinned archive digest cannot be
//!    checked against it; instead every file of the tree must be listed, with its sha256, in
//!    `DIR/SHA256SUMS` (as `./charts/...`), and every file listed there for the tree must exist:
//!    a file added, changed or removed is refused ([`MirrorTree`]). Its `Chart.yaml` must name
//!    the chart and version asked for.
//! 2. Else the cache (`<cache>/charts/<repo URL without scheme>/<chart>-<version>/<pin>/`, where
//!    `<pin>` is `sha256-<hex>` or `unpinned`): an archive pulled before is used again, its
//!    sha256 checked against the pin each time.
//! 3. Else `helm pull` into a private directory next to the cache entry; the archive's sha256
//!    is checked against the pin *before* it is kept (a mismatch keeps nothing), then it is
//!    moved into the cache in one rename. So a plan pulls a chart at most once per
//!    repository/name/version/pin, and never again after that.
//!
//! An unpinned chart is trusted on first use: the archive pulled the first time is the one
//! used afterwards (its digest is in the cached file's name, to pin it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Environment variable moving every envctl cache (`<dir>/charts`, `<dir>/testenv`).
pub const CACHE_ENV: &str = "ENVCTL_CACHE_DIR";
/// The checksum file at the root of a mirror.
pub const MIRROR_SUMS: &str = "SHA256SUMS";

/// A problem with a chart tree of a mirror.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chart tree {dir}: {problem}")]
pub struct MirrorTree {
    pub dir: PathBuf,
    pub problem: String,
}

/// Where repository charts are found and kept.
#[derive(Debug, Clone, Default)]
pub struct ChartStore {
    /// An offline mirror: repository charts are read from its `charts/` tree only.
    pub mirror: Option<PathBuf>,
    /// The cache of pulled archives (`~/.cache/envctl/charts`); `None` pulls for each use.
    pub cache: Option<PathBuf>,
    /// Mirror trees already verified by this process (a tree is hashed once per run).
    verified: Arc<Mutex<HashSet<PathBuf>>>,
}

impl ChartStore {
    pub fn new(mirror: Option<PathBuf>, cache: Option<PathBuf>) -> ChartStore {
        ChartStore {
            mirror,
            cache,
            verified: Arc::default(),
        }
    }

    /// The default cache directory of charts: `$ENVCTL_CACHE_DIR/charts`, else
    /// `$XDG_CACHE_HOME/envctl/charts`, else `~/.cache/envctl/charts` (as the testenv's cache).
    /// `None` when none of these variables is set.
    pub fn default_cache() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let root = var(CACHE_ENV)
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("envctl")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/envctl")))?;
        Some(root.join("charts"))
    }

    /// The mirror tree of a repository chart (whether it exists or not); `None` without a
    /// mirror.
    pub fn mirror_dir(&self, repo: &str, chart: &str, version: &str) -> Option<PathBuf> {
        let mirror = self.mirror.as_ref()?;
        Some(
            mirror
                .join("charts")
                .join(repo_dir(repo))
                .join(format!("{chart}-{version}")),
        )
    }

    /// The cache directory of a repository chart and pin; `None` without a cache.
    pub fn cache_dir(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
        sha256: Option<&str>,
    ) -> Option<PathBuf> {
        let pin = match sha256 {
            Some(digest) => format!("sha256-{}", normalize_digest(digest)),
            None => "unpinned".to_owned(),
        };
        Some(
            self.cache
                .as_ref()?
                .join(repo_dir(repo))
                .join(format!("{chart}-{version}"))
                .join(pin),
        )
    }

    /// Checks a mirror tree once per process (see the module docs).
    pub fn verify_mirror_tree(
        &self,
        dir: &Path,
        chart: &str,
        version: &str,
    ) -> Result<(), MirrorTree> {
        if self
            .verified
            .lock()
            .map(|set| set.contains(dir))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let mirror = self.mirror.as_ref().ok_or_else(|| MirrorTree {
            dir: dir.to_owned(),
            problem: "no mirror".into(),
        })?;
        verify_tree(mirror, dir, chart, version)?;
        if let Ok(mut set) = self.verified.lock() {
            set.insert(dir.to_owned());
        }
        Ok(())
    }
}

/// `https://charts.dexidp.io/` -> `charts.dexidp.io`; `oci://ghcr.io/org/charts` ->
/// `ghcr.io/org/charts`. `..` and empty parts are dropped, so the result stays below its root.
pub fn repo_dir(repo: &str) -> PathBuf {
    let rest = ["https://", "http://", "oci://"]
        .iter()
        .find_map(|scheme| repo.strip_prefix(scheme))
        .unwrap_or(repo);
    rest.split('/')
        .filter(|part| !part.is_empty() && *part != "." && *part != "..")
        .collect()
}

/// Lowercase hex without a `sha256:` prefix.
pub fn normalize_digest(digest: &str) -> String {
    digest
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase()
}

/// Every file of `dir` (inside `mirror`) against the mirror's SHA256SUMS, and its Chart.yaml.
fn verify_tree(mirror: &Path, dir: &Path, chart: &str, version: &str) -> Result<(), MirrorTree> {
    let problem = |problem: String| MirrorTree {
        dir: dir.to_owned(),
        problem,
    };
    let rel = dir
        .strip_prefix(mirror)
        .map_err(|_| problem(format!("is not inside the mirror {}", mirror.display())))?;
    let sums_path = mirror.join(MIRROR_SUMS);
    let sums_text = std::fs::read_to_string(&sums_path).map_err(|e| {
        problem(format!(
            "cannot read {} to check it: {e} (a mirror lists the sha256 of every file there)",
            sums_path.display()
        ))
    })?;
    let listed = sums_for(&sums_text, rel);
    if listed.is_empty() {
        return Err(problem(format!(
            "{} lists no file of it; refusing an unlisted tree",
            sums_path.display()
        )));
    }
    let mut found = BTreeSet::new();
    walk(dir, Path::new(""), &mut found).map_err(&problem)?;
    for file in &found {
        let Some(expected) = listed.get(file) else {
            return Err(problem(format!(
                "{file} is not listed in {}; refusing a tree the mirror does not vouch for",
                sums_path.display()
            )));
        };
        let bytes = std::fs::read(dir.join(file)).map_err(|e| problem(format!("{file}: {e}")))?;
        let actual = engine::sha256_hex(&bytes);
        if &actual != expected {
            return Err(problem(format!(
                "{file} has sha256 {actual}, but {} lists {expected}; refusing a changed chart",
                sums_path.display()
            )));
        }
    }
    if let Some(missing) = listed.keys().find(|f| !found.contains(*f)) {
        return Err(problem(format!(
            "{missing} is listed in {} but missing",
            sums_path.display()
        )));
    }
    let chart_yaml = std::fs::read_to_string(dir.join("Chart.yaml"))
        .map_err(|e| problem(format!("Chart.yaml: {e}")))?;
    let (name, ver) = chart_name_version(&chart_yaml);
    if name.as_deref() != Some(chart) || ver.as_deref() != Some(version) {
        return Err(problem(format!(
            "its Chart.yaml says {} {}, not {chart} {version}",
            name.unwrap_or_default(),
            ver.unwrap_or_default()
        )));
    }
    Ok(())
}

/// The sums of SHA256SUMS (`<hex>  ./<path>`) for files below `rel`, keyed by the path inside
/// `rel`.
fn sums_for(text: &str, rel: &Path) -> BTreeMap<String, String> {
    let prefix = format!("{}/", rel.to_string_lossy().trim_end_matches('/'));
    text.lines()
        .filter_map(|line| {
            let (sum, path) = line.split_once(char::is_whitespace)?;
            let path = path.trim_start().trim_start_matches('*');
            let path = path.strip_prefix("./").unwrap_or(path);
            let inside = path.strip_prefix(&prefix)?;
            Some((inside.to_owned(), sum.to_ascii_lowercase()))
        })
        .collect()
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeSet<String>) -> Result<(), String> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = rel.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.insert(path.to_string_lossy().into_owned());
        } else {
            return Err(format!(
                "{} is neither a file nor a directory (a symlink?)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// `name:` and `version:` of a Chart.yaml (top-level keys only).
fn chart_name_version(text: &str) -> (Option<String>, Option<String>) {
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            let v = rest.split(" #").next()?.trim().trim_matches(['"', '\'']);
            (!v.is_empty()).then(|| v.to_owned())
        })
    };
    (value("name"), value("version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_map_to_folders_below_the_root() {
        assert_eq!(
            repo_dir("https://charts.dexidp.io"),
            PathBuf::from("charts.dexidp.io")
        );
        assert_eq!(
            repo_dir("https://istio-release.storage.googleapis.com/charts/"),
            PathBuf::from("istio-release.storage.googleapis.com/charts")
        );
        assert_eq!(
            repo_dir("oci://ghcr.io/org/../charts"),
            PathBuf::from("ghcr.io/org/charts")
        );
        let store = ChartStore::new(Some("/m".into()), Some("/c".into()));
        assert_eq!(
            store.mirror_dir(
                "https://oauth2-proxy.github.io/manifests",
                "oauth2-proxy",
                "10.7.0"
            ),
            Some(PathBuf::from(
                "/m/charts/oauth2-proxy.github.io/manifests/oauth2-proxy-10.7.0"
            ))
        );
        assert_eq!(
            store.cache_dir(
                "https://charts.dexidp.io",
                "dex",
                "0.24.0",
                Some("sha256:AB")
            ),
            Some(PathBuf::from("/c/charts.dexidp.io/dex-0.24.0/sha256-ab"))
        );
        assert_eq!(
            store.cache_dir("https://charts.dexidp.io", "dex", "0.24.0", None),
            Some(PathBuf::from("/c/charts.dexidp.io/dex-0.24.0/unpinned"))
        );
    }

    fn mirror_with_chart() -> (tempfile::TempDir, PathBuf) {
        let mirror = tempfile::tempdir().unwrap();
        let tree = mirror.path().join("charts/example.com/demo-1.0.0");
        std::fs::create_dir_all(tree.join("templates")).unwrap();
        let files = [
            ("Chart.yaml", "apiVersion: v2\nname: demo\nversion: 1.0.0\n"),
            ("templates/cm.yaml", "kind: ConfigMap\n"),
        ];
        let mut sums = String::from(
            "0000000000000000000000000000000000000000000000000000000000000000  ./README.md\n",
        );
        for (path, text) in files {
            std::fs::write(tree.join(path), text).unwrap();
            sums.push_str(&format!(
                "{}  ./charts/example.com/demo-1.0.0/{path}\n",
                engine::sha256_hex(text.as_bytes())
            ));
        }
        std::fs::write(mirror.path().join(MIRROR_SUMS), sums).unwrap();
        (mirror, tree)
    }

    #[test]
    fn a_mirror_tree_is_used_only_as_its_checksums_list_it() {
        let (mirror, tree) = mirror_with_chart();
        let store = ChartStore::new(Some(mirror.path().to_owned()), None);
        let dir = store
            .mirror_dir("https://example.com", "demo", "1.0.0")
            .unwrap();
        assert_eq!(dir, tree);
        store.verify_mirror_tree(&dir, "demo", "1.0.0").unwrap();

        // Another chart name than the folder says.
        let err = ChartStore::new(Some(mirror.path().to_owned()), None)
            .verify_mirror_tree(&dir, "other", "1.0.0")
            .unwrap_err();
        assert!(err.problem.contains("says demo 1.0.0"), "{err}");

        // A changed file.
        std::fs::write(tree.join("templates/cm.yaml"), "kind: Secret\n").unwrap();
        let fresh = || ChartStore::new(Some(mirror.path().to_owned()), None);
        let err = fresh()
            .verify_mirror_tree(&dir, "demo", "1.0.0")
            .unwrap_err();
        assert!(
            err.problem.contains("templates/cm.yaml has sha256"),
            "{err}"
        );
        std::fs::write(tree.join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();

        // An added file.
        std::fs::write(tree.join("templates/extra.yaml"), "kind: Pod\n").unwrap();
        let err = fresh()
            .verify_mirror_tree(&dir, "demo", "1.0.0")
            .unwrap_err();
        assert!(
            err.problem.contains("templates/extra.yaml is not listed"),
            "{err}"
        );
        std::fs::remove_file(tree.join("templates/extra.yaml")).unwrap();

        // A removed file.
        std::fs::remove_file(tree.join("templates/cm.yaml")).unwrap();
        let err = fresh()
            .verify_mirror_tree(&dir, "demo", "1.0.0")
            .unwrap_err();
        assert!(
            err.problem.contains("listed in") && err.problem.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn chart_yaml_name_and_version_are_read() {
        assert_eq!(
            chart_name_version("apiVersion: v2\nname: \"dex\" # the chart\nversion: 0.24.0\n"),
            (Some("dex".into()), Some("0.24.0".into()))
        );
        assert_eq!(chart_name_version("a: b\n"), (None, None));
    }
}
