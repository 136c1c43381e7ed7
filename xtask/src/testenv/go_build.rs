//! Builds the testenv's binaries from Go modules, through generated wrapper modules.
//!
//! `go install module@version` refuses a module whose go.mod has `replace` lines (as
//! k8s.io/kubernetes has for its staging modules). A wrapper module requires the module instead,
//! turns each local-path replace of the upstream go.mod into the published version, and builds
//! the wanted packages from there. Results are cached by name and version; a `.spec` file beside
//! the binaries records what they were built from, so that a changed pin rebuilds.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::Shell;

use super::{Layout, pins::GoBuild};

/// Makes sure every binary of `build` is in the cache; builds them when missing or stale.
/// Returns the directory that holds them.
pub fn ensure(sh: &Shell, layout: &Layout, build: &GoBuild) -> Result<PathBuf> {
    let bin_dir = layout.bin_dir(build);
    let spec = spec_of(sh, build)?;
    let spec_file = bin_dir.join(".spec");
    let cached = std::fs::read_to_string(&spec_file).is_ok_and(|s| s == spec)
        && build.binaries.keys().all(|b| bin_dir.join(b).is_file());
    if cached {
        return Ok(bin_dir);
    }

    let started = Instant::now();
    eprintln!(
        "testenv: building {} {} (cached in {})",
        build.module,
        build.version,
        bin_dir.display()
    );
    let module = download(sh, &build.module, &build.version)?;
    let upstream_go_mod = std::fs::read_to_string(&module.go_mod)
        .with_context(|| format!("reading {}", module.go_mod))?;

    let src = layout.src_dir(build);
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    std::fs::write(src.join("go.mod"), wrapper_go_mod(build, &upstream_go_mod)?)?;
    std::fs::write(src.join("tools.go"), wrapper_tools_go(build))?;

    let go = go_shell(sh, &src);
    go.cmd("go")
        .args(["mod", "tidy"])
        .run_echo()
        .with_context(|| {
            format!(
                "resolving the dependencies of the wrapper module in {}",
                src.display()
            )
        })?;

    let out = src.join("out");
    std::fs::create_dir_all(&out)?;
    let ldflags = build.ldflags(&module.time)?;
    go.cmd("go")
        .arg("build")
        .arg(format!("-ldflags={ldflags}"))
        .arg("-o")
        .arg(format!("{}/", out.display()))
        .args(build.binaries.values())
        .run_echo()
        .with_context(|| format!("building {} {}", build.module, build.version))?;

    let _ = std::fs::remove_dir_all(&bin_dir);
    std::fs::create_dir_all(&bin_dir)?;
    for (binary, package) in &build.binaries {
        let built = out.join(go_binary_name(package));
        std::fs::rename(&built, bin_dir.join(binary))
            .with_context(|| format!("moving {} into {}", built.display(), bin_dir.display()))?;
    }
    std::fs::write(&spec_file, spec)?;
    let _ = std::fs::remove_dir_all(&out);
    eprintln!(
        "testenv: built {} {} in {:.0?}",
        build.module,
        build.version,
        started.elapsed()
    );
    Ok(bin_dir)
}

/// A shell for the go tool: no cgo, reproducible paths, no toolchain download, no go.work.
fn go_shell(sh: &Shell, dir: &Path) -> Shell {
    sh.with_current_dir(dir)
        .with_var("CGO_ENABLED", "0")
        .with_var("GOFLAGS", "-trimpath")
        .with_var("GOTOOLCHAIN", "local")
        .with_var("GOWORK", "off")
}

/// What the cached binaries were built from: the pin and the Go toolchain.
fn spec_of(sh: &Shell, build: &GoBuild) -> Result<String> {
    let go_version = sh.cmd("go").arg("version").read().context(
        "the testenv builds Kubernetes, etcd, kwok, helm and kind from source: \
         install Go (the version infra/testenv/versions.yaml's modules require) and put `go` on PATH",
    )?;
    Ok(format!("{}\n{go_version}\n", serde_json::to_string(build)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Downloaded {
    #[serde(default)]
    go_mod: String,
    #[serde(default)]
    info: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(skip)]
    time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    time: String,
}

/// `go mod download -json module@version`: the module's go.mod and publication time.
fn download(sh: &Shell, module: &str, version: &str) -> Result<Downloaded> {
    let dir = sh.create_temp_dir()?;
    let json = go_shell(sh, dir.path())
        .cmd("go")
        .args(["mod", "download", "-json"])
        .arg(format!("{module}@{version}"))
        .ignore_status()
        .read()?;
    let mut downloaded: Downloaded = serde_json::from_str(&json)
        .with_context(|| format!("go mod download -json {module}@{version}: {json}"))?;
    if let Some(error) = downloaded.error.take() {
        bail!("go mod download {module}@{version}: {error}");
    }
    let info: Info = serde_json::from_str(&std::fs::read_to_string(&downloaded.info)?)
        .with_context(|| format!("reading {}", downloaded.info))?;
    downloaded.time = info.time;
    Ok(downloaded)
}

/// The wrapper's go.mod: requires the module, keeps the upstream `go`, `godebug` and `exclude`
/// directives (they only take effect in the main module), and turns every replace that points at
/// a local directory into the published version. A local replace of a module the upstream does
/// not require (e.g. etcd's `=> ./FORBIDDEN_DEPENDENCY` guards) is dropped.
pub fn wrapper_go_mod(build: &GoBuild, upstream: &str) -> Result<String> {
    let mut go_line = None;
    let mut kept = Vec::new();
    let mut required = Vec::new();
    let mut replace_specs = Vec::new();
    let mut block: Option<&str> = None;
    for line in upstream
        .lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
    {
        if line.is_empty() {
            continue;
        }
        if let Some(kind) = block {
            match kind {
                _ if line == ")" => block = None,
                "replace" => replace_specs.push(line.to_string()),
                "require" => required.extend(line.split_whitespace().next().map(String::from)),
                "godebug" | "exclude" => kept.push(format!("{kind} {line}")),
                _ => {}
            }
            continue;
        }
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match keyword {
            "go" => go_line = Some(rest.to_string()),
            "godebug" | "exclude" | "replace" | "require" | "retract" if rest == "(" => {
                block = Some(keyword)
            }
            "godebug" | "exclude" => kept.push(line.to_string()),
            "replace" => replace_specs.push(rest.to_string()),
            "require" => required.extend(rest.split_whitespace().next().map(String::from)),
            _ => {}
        }
    }
    let Some(go_line) = go_line else {
        bail!(
            "the go.mod of {}@{} has no `go` line",
            build.module,
            build.version
        );
    };
    let mut replaces = Vec::new();
    for spec in &replace_specs {
        if let Some(replace) = replace_line(build, spec, &required)? {
            replaces.push(replace);
        }
    }
    let mut out = format!(
        "// Generated by `cargo xtask testenv` from infra/testenv/versions.yaml. Do not edit.\n\
         module envctl.local/testenv/{name}\n\ngo {go_line}\n\nrequire {module} {version}\n",
        name = build.name,
        module = build.module,
        version = build.version
    );
    for line in kept {
        out.push_str(&format!("\n{line}\n"));
    }
    if !replaces.is_empty() {
        out.push_str("\nreplace (\n");
        for replace in replaces {
            out.push_str(&format!("\t{replace}\n"));
        }
        out.push_str(")\n");
    }
    Ok(out)
}

fn replace_line(build: &GoBuild, spec: &str, required: &[String]) -> Result<Option<String>> {
    let Some((from, to)) = spec.split_once("=>") else {
        bail!(
            "{}@{}: cannot read replace `{spec}`",
            build.module,
            build.version
        );
    };
    let (from, to) = (from.trim(), to.trim());
    let local = to.starts_with("./") || to.starts_with("../") || to.starts_with('/');
    if !local {
        return Ok(Some(format!("{from} => {to}")));
    }
    let module = from.split_whitespace().next().unwrap_or(from);
    if !required.iter().any(|r| r == module) {
        return Ok(None);
    }
    let Some(version) = &build.local_replace_version else {
        bail!(
            "{}@{} replaces `{from}` with the local path `{to}`: set `local_replace_version` \
             for `{}` in infra/testenv/versions.yaml to the published version of those modules",
            build.module,
            build.version,
            build.name
        );
    };
    Ok(Some(format!("{module} => {module} {version}")))
}

/// A file that imports the packages to build, so that `go mod tidy` keeps what they need.
fn wrapper_tools_go(build: &GoBuild) -> String {
    let mut out = String::from(
        "// Generated by `cargo xtask testenv`. Do not edit.\n\n//go:build tools\n\npackage tools\n\nimport (\n",
    );
    for package in build.binaries.values() {
        out.push_str(&format!("\t_ \"{package}\"\n"));
    }
    out.push_str(")\n");
    out
}

/// The file name `go build -o DIR/` gives a main package: its last path element, or the one
/// before a major-version suffix (`go.etcd.io/etcd/server/v3` -> `server`).
fn go_binary_name(package: &str) -> &str {
    let mut elements = package.rsplit('/');
    let last = elements.next().unwrap_or(package);
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].chars().all(|c| c.is_ascii_digit());
    match elements.next() {
        Some(before) if is_major => before,
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn build(local: Option<&str>) -> GoBuild {
        GoBuild {
            name: "kubernetes".into(),
            module: "k8s.io/kubernetes".into(),
            version: "v1.36.3".into(),
            local_replace_version: local.map(String::from),
            binaries: BTreeMap::from([(
                "kubectl".to_string(),
                "k8s.io/kubernetes/cmd/kubectl".to_string(),
            )]),
            ldflags: vec![],
        }
    }

    const UPSTREAM: &str = "module k8s.io/kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n\
        require (\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\
        \tk8s.io/kubectl => ./staging/src/k8s.io/kubectl // a comment\n)\n\
        replace example.com/x v1.0.0 => example.com/y v1.2.0\n\
        require k8s.io/kubectl v0.0.0\n\
        replace k8s.io/forbidden => ./FORBIDDEN_DEPENDENCY\n";

    #[test]
    fn local_replaces_become_the_published_version() {
        let go_mod = wrapper_go_mod(&build(Some("v0.36.3")), UPSTREAM).unwrap();
        assert!(go_mod.contains("go 1.26.0\n"), "{go_mod}");
        assert!(
            go_mod.contains("require k8s.io/kubernetes v1.36.3\n"),
            "{go_mod}"
        );
        assert!(go_mod.contains("godebug default=go1.26\n"), "{go_mod}");
        assert!(
            go_mod.contains("\tk8s.io/api => k8s.io/api v0.36.3\n"),
            "{go_mod}"
        );
        assert!(
            go_mod.contains("\tk8s.io/kubectl => k8s.io/kubectl v0.36.3\n"),
            "{go_mod}"
        );
        assert!(
            go_mod.contains("\texample.com/x v1.0.0 => example.com/y v1.2.0\n"),
            "{go_mod}"
        );
        assert!(!go_mod.contains("staging"), "{go_mod}");
        assert!(
            !go_mod.contains("forbidden"),
            "unrequired local replaces are dropped: {go_mod}"
        );
    }

    #[test]
    fn a_local_replace_without_a_version_names_the_pin_to_set() {
        let err = wrapper_go_mod(&build(None), UPSTREAM)
            .unwrap_err()
            .to_string();
        assert!(err.contains("local_replace_version"), "{err}");
    }

    #[test]
    fn binary_names_follow_go_build() {
        assert_eq!(go_binary_name("k8s.io/kubernetes/cmd/kubectl"), "kubectl");
        assert_eq!(go_binary_name("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(go_binary_name("sigs.k8s.io/kind"), "kind");
    }
}
