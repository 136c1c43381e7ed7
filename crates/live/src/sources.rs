//! Pinned upstream files (the Gateway API CRDs): fetched from their URL, or read from an
//! offline mirror laid out as `<mirror>/<host>/<path>`, and used only if their sha256 matches
//! the pin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::process::{self, Invocation, ProcessError};

/// Where pinned files come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An offline mirror (`--mirror DIR` or `ENVCTL_MIRROR`); `None` fetches from the network.
    pub mirror: Option<PathBuf>,
}

/// How long fetching one pinned file may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a pinned file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("not an http(s) URL: {url}")]
    NotHttp { url: String },
    #[error("refusing a URL with `..`: {url}")]
    DotDot { url: String },
    #[error("cannot read {} (mirror of {url}): {source}", .path.display())]
    Mirror {
        url: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run curl to fetch {url}: {source} (install curl, or use --mirror DIR)")]
    NoCurl {
        url: String,
        #[source]
        source: ProcessError,
    },
    #[error("cannot fetch {url}: {reason} (offline? use --mirror DIR or ENVCTL_MIRROR)")]
    Fetch { url: String, reason: String },
    #[error(
        "checksum mismatch for {url}: pinned sha256 {pinned}, got {actual}; refusing to use it \
         (if the pin is out of date, update infra/pins/)"
    )]
    Checksum {
        url: String,
        pinned: String,
        actual: String,
    },
    #[error("{url}: {problem}")]
    Parse { url: String, problem: String },
}

impl Sources {
    /// The objects of the file at `url`, after checking that its sha256 is `sha256`. Reads and
    /// fetches never block the async runtime.
    pub async fn load(&self, url: &str, sha256: &str) -> Result<Vec<Value>, SourceError> {
        let bytes = match &self.mirror {
            Some(dir) => {
                let path = mirror_path(dir, url)?;
                tokio::fs::read(&path)
                    .await
                    .map_err(|source| SourceError::Mirror {
                        url: url.to_owned(),
                        path,
                        source,
                    })?
            }
            None => fetch(url).await?,
        };
        let actual = engine::sha256_hex(&bytes);
        if actual != sha256 {
            return Err(SourceError::Checksum {
                url: url.to_owned(),
                pinned: sha256.to_owned(),
                actual,
            });
        }
        parse_documents(&bytes).map_err(|problem| SourceError::Parse {
            url: url.to_owned(),
            problem,
        })
    }
}

/// `<mirror>/<host>/<path>` for `https://<host>/<path>`.
pub fn mirror_path(mirror: &Path, url: &str) -> Result<PathBuf, SourceError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| SourceError::NotHttp {
            url: url.to_owned(),
        })?;
    if rest.split('/').any(|part| part == "..") {
        return Err(SourceError::DotDot {
            url: url.to_owned(),
        });
    }
    Ok(mirror.join(rest))
}

async fn fetch(url: &str) -> Result<Vec<u8>, SourceError> {
    let args = [
        "--fail",
        "--silent",
        "--show-error",
        "--location",
        "--max-time",
        "60",
        url,
    ];
    let curl = Invocation::new(
        "curl",
        args.iter().map(Into::into).collect(),
        // curl stops itself at --max-time; the margin covers its start.
        FETCH_TIMEOUT + Duration::from_secs(10),
    );
    match process::run_async(curl).await {
        Ok(done) => Ok(done.stdout),
        Err(ProcessError::Failed { stderr, .. }) => Err(SourceError::Fetch {
            url: url.to_owned(),
            reason: process::tail(&stderr),
        }),
        Err(ProcessError::Timeout { timeout, .. }) => Err(SourceError::Fetch {
            url: url.to_owned(),
            reason: format!("no answer within {}s", timeout.as_secs()),
        }),
        Err(source) => Err(SourceError::NoCurl {
            url: url.to_owned(),
            source,
        }),
    }
}

/// Every non-empty YAML document of a multi-document file (split by
/// [`engine::split_documents`], so that an error names the line its document starts on).
pub fn parse_documents(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut docs = Vec::new();
    for doc in engine::split_documents(text) {
        let value: Value = serde_saphyr::from_str(&doc.text)
            .map_err(|e| format!("the document at line {}: {e}", doc.line))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_layout_is_host_then_path() {
        let p = mirror_path(
            Path::new("/m"),
            "https://raw.githubusercontent.com/a/b/v1/x.yaml",
        )
        .unwrap();
        assert_eq!(p, Path::new("/m/raw.githubusercontent.com/a/b/v1/x.yaml"));
        assert!(mirror_path(Path::new("/m"), "https://h/../etc/passwd").is_err());
        assert!(mirror_path(Path::new("/m"), "file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn a_checksum_mismatch_refuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("example.org/f.yaml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "kind: ConfigMap\n").unwrap();
        let sources = Sources {
            mirror: Some(dir.path().to_path_buf()),
        };
        let good = engine::sha256_hex(b"kind: ConfigMap\n");
        assert_eq!(
            sources
                .load("https://example.org/f.yaml", &good)
                .await
                .unwrap()
                .len(),
            1
        );
        let err = sources
            .load("https://example.org/f.yaml", &"0".repeat(64))
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Checksum { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("checksum mismatch for https://example.org/f.yaml"),
            "{err}"
        );
        assert!(err.contains(&good), "names the actual digest: {err}");
    }

    /// The largest pinned file (the Gateway API HTTPRoute CRD, ~430 KB) parses within the YAML
    /// parser's default budget. Reads the shared mirror, which CI lays beside the clone.
    #[test]
    fn the_largest_pinned_crd_parses() {
        let mirror = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mirror");
        let url = "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.5.1/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml";
        let bytes = std::fs::read(mirror_path(&mirror, url).unwrap())
            .expect("the shared mirror (../shared/mirror) is missing: CI lays it beside the clone");
        let docs = parse_documents(&bytes).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            docs[0]["metadata"]["name"],
            "httproutes.gateway.networking.k8s.io"
        );
    }

    /// The document splitter reads every pinned upstream file of the shared mirror as the YAML
    /// library's own multi-document reader does.
    #[test]
    fn split_documents_agree_with_the_yaml_library_on_every_pinned_file() {
        fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    yaml_files(&path, out);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    out.push(path);
                }
            }
        }
        let mirror = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/mirror/raw.githubusercontent.com");
        let mut files = Vec::new();
        yaml_files(&mirror, &mut files);
        assert!(
            files.len() >= 10,
            "the shared mirror's pinned files: {files:?}"
        );
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let text = std::str::from_utf8(&bytes).unwrap();
            let library: Vec<Value> = serde_saphyr::from_multiple::<Value>(text)
                .unwrap()
                .into_iter()
                .filter(|d| !d.is_null())
                .collect();
            assert_eq!(
                parse_documents(&bytes).unwrap(),
                library,
                "{}",
                file.display()
            );
        }
    }

    #[test]
    fn multi_document_files_skip_empty_documents() {
        let docs = parse_documents(b"---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(
            docs,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]
        );
        let err = parse_documents(b"a: 1\n---\n# bad\nb: [\n").unwrap_err();
        assert!(err.starts_with("the document at line 3: "), "{err}");
    }
}
