//! `cargo xtask doctor`: are the prerequisites of a provider present?
//!
//! | provider | needs |
//! |---|---|
//! | `kind` | Docker (and its daemon answering), kind, helm |
//! | `kwok`, `existing` | helm, and a kubeconfig context that answers |
//!
//! kubectl is optional everywhere (envctl talks to the API itself); doctor uses it to check a
//! context when it is there. Docker and kind are probed only for the provider that uses them.
//! [`preflight`] is what `apply` runs first, to fail early with the same advice: the required
//! tools only (the context is checked by the run itself, with the kubeconfig it uses, before it
//! shows a plan).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use xshell::Shell;

/// How long one probe may take (a stuck Docker daemon must not hang doctor).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
    /// Could not be checked (e.g. no kubectl to ask the context with).
    NotChecked,
}

/// One prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `docker`, `docker daemon`, `kind`, `helm`, `kubectl`, `context`.
    pub name: &'static str,
    pub status: Status,
    /// Needed by this provider (a missing required check blocks apply).
    pub required: bool,
    /// The version found, or what was seen.
    pub detail: String,
    /// How to get it, when it is missing.
    pub fix: Option<String>,
}

impl Check {
    /// Missing and required: apply cannot go on.
    pub fn blocks(&self) -> bool {
        self.required && self.status == Status::Missing
    }
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The cluster provider to check for: kind, kwok or existing.
    #[arg(long, default_value = "kind")]
    pub provider: String,
    /// The kubeconfig context to check (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

pub fn main(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = match args.context.as_deref() {
        None => check(&args.provider),
        Some(context) => check_with(&args.provider, Some(context)),
    };
    print!("{}", render(&args.provider, &checks));
    Ok(if checks.iter().any(Check::blocks) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The checks for `provider` (`kind`, `kwok` or `existing`) against the current context.
pub fn check(provider: &str) -> Vec<Check> {
    check_with(provider, None)
}

/// The checks for `provider`, with the context to check (default: the current one).
pub fn check_with(provider: &str, context: Option<&str>) -> Vec<Check> {
    run_checks(provider, context, Scope::Doctor)
}

/// What `apply` checks before it starts: only the tools `provider` requires (Docker, its
/// daemon and kind for `kind`; helm everywhere). Not the context: apply connects with the
/// kubeconfig it is given and refuses at once, before showing a plan, when a cluster it cannot
/// create does not answer (two kubectl processes here would only repeat that, slower, and
/// with `$KUBECONFIG` rather than `--kubeconfig`); not the optional kubectl.
pub fn preflight(provider: &str) -> Vec<Check> {
    run_checks(provider, None, Scope::Preflight)
}

/// Which probes run: `doctor` reports everything its provider uses (optional ones too);
/// `apply`'s preflight only what blocks it and it would not find out itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Doctor,
    Preflight,
}

fn run_checks(provider: &str, context: Option<&str>, scope: Scope) -> Vec<Check> {
    let Some(needs) = Needs::of(provider) else {
        return vec![Check {
            name: "provider",
            status: Status::Missing,
            required: true,
            detail: format!("unknown provider `{provider}`"),
            fix: Some("use one of: kind, kwok, existing".into()),
        }];
    };
    if let Err(e) = Shell::new() {
        return vec![Check {
            name: "shell",
            status: Status::Missing,
            required: true,
            detail: format!("cannot run commands: {e}"),
            fix: None,
        }];
    }
    // Each probe starts a program (a fraction of a second each, and `apply` waits for them
    // before it plans): only those of tools the provider uses run, at once, each on its own
    // thread, and are listed in order.
    let shell = || Shell::new().expect("a shell was created above");
    let docker = needs.docker.then(|| locate(None, "docker")).flatten();
    let kubectl = locate(Some("ENVCTL_KUBECTL"), "kubectl");
    let cluster_tools = needs.docker;
    let kubectl_probes = scope == Scope::Doctor;
    std::thread::scope(|scope| {
        let docker_version = cluster_tools.then(|| {
            scope.spawn(|| {
                tool_check(
                    &shell(),
                    "docker",
                    docker.as_deref(),
                    &["--version"],
                    needs.docker,
                    "install Docker: https://docs.docker.com/engine/install/",
                )
            })
        });
        let docker_daemon = cluster_tools
            .then(|| scope.spawn(|| docker_daemon(&shell(), docker.as_deref(), needs.docker)));
        let kind = needs.kind.then(|| scope.spawn(|| {
            tool_check(
                &shell(),
                "kind",
                locate(Some("ENVCTL_KIND"), "kind").as_deref(),
                &["version"],
                needs.kind,
                "go install sigs.k8s.io/kind@v0.32.0 (or https://kind.sigs.k8s.io/docs/user/quick-start/#installation); \
                 or set ENVCTL_KIND",
            )
        }));
        let helm = Some(scope.spawn(|| {
            let mut helm = tool_check(
                &shell(),
                "helm",
                locate(Some("ENVCTL_HELM"), "helm").as_deref(),
                &["version", "--short"],
                true,
                "go install helm.sh/helm/v3/cmd/helm@v3.22.0 (or https://helm.sh/docs/intro/install/); \
                 or set ENVCTL_HELM",
            );
            if helm.status == Status::Ok && !helm.detail.starts_with("v3.") {
                helm.detail
                    .push_str(" (envctl is tested with helm v3; v4 changed flags it uses)");
            }
            helm
        }));
        let kubectl_version = kubectl_probes.then(|| {
            scope.spawn(|| {
                tool_check(
                    &shell(),
                    "kubectl",
                    kubectl.as_deref(),
                    &["version", "--client"],
                    false,
                    "optional: https://kubernetes.io/docs/tasks/tools/ (or set ENVCTL_KUBECTL)",
                )
            })
        });
        let context = kubectl_probes.then(|| {
            scope.spawn(|| {
                context_check(
                    &shell(),
                    kubectl.as_deref(),
                    context,
                    needs.context,
                    provider,
                )
            })
        });
        [
            docker_version,
            docker_daemon,
            kind,
            helm,
            kubectl_version,
            context,
        ]
        .into_iter()
        .flatten()
        .map(|probe| probe.join().expect("a probe thread panicked"))
        .collect()
    })
}

struct Needs {
    docker: bool,
    kind: bool,
    context: bool,
}

impl Needs {
    fn of(provider: &str) -> Option<Needs> {
        match provider {
            "kind" => Some(Needs {
                docker: true,
                kind: true,
                // apply creates the cluster and its context.
                context: false,
            }),
            "kwok" | "existing" => Some(Needs {
                docker: false,
                kind: false,
                context: true,
            }),
            _ => None,
        }
    }
}

/// `$env_var` when set, else `name` on PATH.
fn locate(env_var: Option<&str>, name: &str) -> Option<PathBuf> {
    if let Some(path) = env_var.and_then(std::env::var_os).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a probe; its first non-empty stdout line, or the first line of stderr as the error.
fn probe(sh: &Shell, bin: &Path, args: &[&str]) -> Result<String, String> {
    let output = sh
        .cmd(bin)
        .args(args)
        .ignore_status()
        .timeout(PROBE_TIMEOUT)
        .output()
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())?;
    let first = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_owned()
    };
    if output.status.success() {
        Ok(first(&output.stdout))
    } else {
        Err(first(&output.stderr))
    }
}

fn tool_check(
    sh: &Shell,
    name: &'static str,
    bin: Option<&Path>,
    version_args: &[&str],
    required: bool,
    fix: &str,
) -> Check {
    let missing = |detail: String| Check {
        name,
        status: Status::Missing,
        required,
        detail,
        fix: Some(fix.to_owned()),
    };
    let Some(bin) = bin else {
        return missing("not found".into());
    };
    match probe(sh, bin, version_args) {
        Ok(version) => Check {
            name,
            status: Status::Ok,
            required,
            detail: version,
            fix: None,
        },
        Err(error) => missing(format!("{} does not run: {error}", bin.display())),
    }
}

fn docker_daemon(sh: &Shell, docker: Option<&Path>, required: bool) -> Check {
    let fix = "start the Docker daemon (e.g. `sudo systemctl start docker`), or install Docker: \
               https://docs.docker.com/engine/install/";
    let Some(docker) = docker else {
        return Check {
            name: "docker daemon",
            status: Status::NotChecked,
            required,
            detail: "no docker client to ask".into(),
            fix: Some(fix.into()),
        };
    };
    match probe(sh, docker, &["info", "--format", "{{.ServerVersion}}"]) {
        Ok(version) if !version.is_empty() => Check {
            name: "docker daemon",
            status: Status::Ok,
            required,
            detail: format!("server {version}"),
            fix: None,
        },
        Ok(_) | Err(_) => Check {
            name: "docker daemon",
            status: Status::Missing,
            required,
            detail: "`docker info` gets no answer from the daemon".into(),
            fix: Some(fix.into()),
        },
    }
}

fn context_check(
    sh: &Shell,
    kubectl: Option<&Path>,
    context: Option<&str>,
    required: bool,
    provider: &str,
) -> Check {
    let fix = match provider {
        "kwok" => {
            "start the testenv: `cargo xtask testenv up`, then `eval \"$(cargo xtask testenv env)\"`"
        }
        "existing" => "point KUBECONFIG at a kubeconfig whose context reaches the cluster",
        _ => "apply creates the kind cluster and its context",
    };
    let Some(kubectl) = kubectl else {
        return Check {
            name: "context",
            status: Status::NotChecked,
            required,
            detail: "no kubectl to check it with (apply checks it itself)".into(),
            fix: None,
        };
    };
    let context = match context {
        Some(c) => c.to_owned(),
        None => match probe(sh, kubectl, &["config", "current-context"]) {
            Ok(c) if !c.is_empty() => c,
            _ => {
                return Check {
                    name: "context",
                    status: Status::Missing,
                    required,
                    detail: "the kubeconfig has no current context".into(),
                    fix: Some(fix.into()),
                };
            }
        },
    };
    match probe(
        sh,
        kubectl,
        &[
            "--context",
            &context,
            "--request-timeout",
            "5s",
            "get",
            "--raw",
            "/readyz",
        ],
    ) {
        Ok(answer) => Check {
            name: "context",
            status: Status::Ok,
            required,
            detail: format!("`{context}` answers (/readyz: {answer})"),
            fix: None,
        },
        Err(error) => Check {
            name: "context",
            status: Status::Missing,
            required,
            detail: format!("`{context}` does not answer: {error}"),
            fix: Some(fix.into()),
        },
    }
}

/// The report, one line per check and a summary.
pub fn render(provider: &str, checks: &[Check]) -> String {
    let mut out = format!("Prerequisites for provider `{provider}`:\n");
    for c in checks {
        let mark = match (c.status, c.required) {
            (Status::Ok, _) => "ok",
            (Status::Missing, true) => "MISSING",
            (Status::Missing, false) => "missing",
            (Status::NotChecked, _) => "-",
        };
        let need = if c.required { "" } else { " (optional)" };
        out.push_str(&format!("  {mark:<8} {:<14} {}{need}\n", c.name, c.detail));
        if c.status != Status::Ok
            && let Some(fix) = &c.fix
        {
            out.push_str(&format!("           {:<14} -> {fix}\n", ""));
        }
    }
    let blocking: Vec<&str> = checks
        .iter()
        .filter(|c| c.blocks())
        .map(|c| c.name)
        .collect();
    if blocking.is_empty() {
        out.push_str("Everything this provider needs is present.\n");
    } else {
        out.push_str(&format!("Missing: {}.\n", blocking.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_provider_is_one_blocking_check() {
        let checks = check("minikube");
        assert_eq!(checks.len(), 1);
        assert!(checks[0].blocks());
        assert!(
            checks[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("kind, kwok, existing")
        );
    }

    #[test]
    fn kind_needs_docker_and_kind_and_kwok_does_not() {
        let required = |provider: &str| -> Vec<&'static str> {
            check(provider)
                .into_iter()
                .filter(|c| c.required)
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(
            required("kind"),
            ["docker", "docker daemon", "kind", "helm"]
        );
        assert_eq!(required("kwok"), ["helm", "context"]);
        assert_eq!(required("existing"), ["helm", "context"]);
    }

    #[test]
    fn docker_and_kind_are_probed_only_for_the_provider_that_uses_them() {
        let names = |checks: Vec<Check>| -> Vec<&'static str> {
            checks.into_iter().map(|c| c.name).collect()
        };
        assert_eq!(names(check("kwok")), ["helm", "kubectl", "context"]);
        assert_eq!(names(check("existing")), ["helm", "kubectl", "context"]);
        assert_eq!(
            names(check("kind")),
            [
                "docker",
                "docker daemon",
                "kind",
                "helm",
                "kubectl",
                "context"
            ]
        );
    }

    #[test]
    fn apply_preflight_probes_only_the_required_tools() {
        let names = |provider: &str| -> Vec<(&'static str, bool)> {
            preflight(provider)
                .into_iter()
                .map(|c| (c.name, c.required))
                .collect()
        };
        // The context is the run's own first check (with its own kubeconfig).
        assert_eq!(names("kwok"), [("helm", true)]);
        assert_eq!(names("existing"), [("helm", true)]);
        assert_eq!(
            names("kind"),
            [
                ("docker", true),
                ("docker daemon", true),
                ("kind", true),
                ("helm", true)
            ]
        );
        assert!(preflight("minikube")[0].blocks());
    }

    #[test]
    fn the_report_says_what_is_missing_and_how_to_get_it() {
        let checks = vec![
            Check {
                name: "helm",
                status: Status::Ok,
                required: true,
                detail: "v3.22.0".into(),
                fix: None,
            },
            Check {
                name: "kind",
                status: Status::Missing,
                required: true,
                detail: "not found".into(),
                fix: Some("go install sigs.k8s.io/kind@v0.32.0".into()),
            },
        ];
        let text = render("kind", &checks);
        assert!(text.contains("ok       helm           v3.22.0"), "{text}");
        assert!(text.contains("MISSING  kind"), "{text}");
        assert!(
            text.contains("-> go install sigs.k8s.io/kind@v0.32.0"),
            "{text}"
        );
        assert!(text.ends_with("Missing: kind.\n"), "{text}");
    }
}
