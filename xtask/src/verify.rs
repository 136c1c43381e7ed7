//! `cargo xtask verify`: can a person log in? The browser's walk through the gateway, step by
//! step (the HTTP logic is `sso::verify`; this file reads the arguments and prints).

use std::{
    io::BufRead as _,
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};
use sso::verify::{self, Outcome, Password, Step, Target, http::Url};

use crate::cli::OutputFormat;
use crate::environment::{self, EnvArgs};

/// The environment variable `verify` reads the password from when `--password-stdin` is not
/// given.
pub const PASSWORD_VAR: &str = "ENVCTL_VERIFY_PASSWORD";

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Send every request to this address instead of the environment's
    /// `cluster.kind.listenAddress:hostPort` (the Host headers stay those of the environment).
    #[arg(long, value_name = "ADDR:PORT")]
    pub gateway: Option<SocketAddr>,
    /// The user to log in as (default: `sso.staticUser.email`).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Read the user's password from the first line of standard input (else from the
    /// environment variable ENVCTL_VERIFY_PASSWORD). Never give it as an argument.
    #[arg(long)]
    pub password_stdin: bool,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// `text` (for people) or `json`.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

pub fn main(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let loaded = environment::load(&args.env)?;
    let settings = &loaded.env.settings;
    let password = read_password(args.password_stdin)?;
    let cluster = cluster::settings(&loaded.env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let kind = &cluster.kind;
    let gateway = match args.gateway {
        Some(address) => address,
        None => {
            let ip: IpAddr = kind.listen_address.parse().with_context(|| {
                format!(
                    "cluster.kind.listenAddress `{}` is not an IP address",
                    kind.listen_address
                )
            })?;
            // A port bound to every address is reachable on loopback.
            let ip = if ip.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                ip
            };
            SocketAddr::new(ip, kind.host_port)
        }
    };
    let app = Url {
        host: gateway::app_fqdn(settings)
            .with_context(|| format!("hosts.{} is not set", gateway::HOST_KEY))?,
        port: kind.host_port,
        path_and_query: "/".into(),
    };
    let target = Target {
        gateway,
        app: app.clone(),
        login_host: sso::dex_fqdn(settings)
            .with_context(|| format!("hosts.{} is not set", sso::DEX_HOST_KEY))?,
        login_port: kind.host_port,
        username: args
            .user
            .clone()
            .unwrap_or(sso::settings(&loaded.env)?.static_user.email),
        password,
        request_timeout: Duration::from_secs(args.timeout.max(1)),
    };

    let text = args.output == OutputFormat::Text;
    let color = text && crate::use_color();
    if text {
        println!(
            "Verifying the login to {} through {gateway} (environment {}):",
            app.redacted(),
            loaded.name()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let steps = runtime.block_on(verify::run(&target, |step| {
        if text {
            print!("{}", render_step(step, color));
        }
    }));
    let passed = verify::all_passed(&steps);
    if text {
        println!("{}", summary(&steps));
    } else {
        let json = serde_json::json!({
            "format_version": 1,
            "environment": loaded.name(),
            "app": app.redacted(),
            "gateway": gateway.to_string(),
            "passed": passed,
            "steps": steps,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The password from stdin (`--password-stdin`) or ENVCTL_VERIFY_PASSWORD; never from argv.
fn read_password(from_stdin: bool) -> anyhow::Result<Password> {
    let text = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        match std::env::var(PASSWORD_VAR) {
            Ok(value) => value,
            Err(_) => bail!(
                "verify logs in as the static user: give its password on standard input with \
                 --password-stdin (e.g. `printf %s \"$PASSWORD\" | cargo xtask verify --password-stdin`) \
                 or in the environment variable {PASSWORD_VAR}"
            ),
        }
    };
    if text.is_empty() {
        bail!("the password is empty");
    }
    Ok(Password::new(text))
}

fn render_step(step: &Step, color: bool) -> String {
    let (word, code) = match step.outcome {
        Outcome::Pass => ("PASS", "32"),
        Outcome::Fail => ("FAIL", "31"),
        Outcome::Skipped => ("SKIP", "33"),
    };
    let word = if color {
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.to_string()
    };
    let status = step
        .status
        .map_or_else(|| "---".to_string(), |s| s.to_string());
    let mut out = format!(
        "  {word} {:<21} {status} {:>6} ms  {}\n       {}\n",
        step.id,
        step.elapsed.as_millis(),
        step.title,
        step.detail
    );
    if let Some(cause) = &step.likely_cause {
        out.push_str(&format!("       likely cause: {cause}\n"));
    }
    out
}

fn summary(steps: &[Step]) -> String {
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s.outcome == Outcome::Fail)
        .map(|s| s.id)
        .collect();
    let skipped = steps
        .iter()
        .filter(|s| s.outcome == Outcome::Skipped)
        .count();
    if failed.is_empty() && skipped == 0 {
        format!("\nVerified: all {} steps passed.", steps.len())
    } else {
        format!(
            "\nNot verified: {} of {} steps failed ({}){}.",
            failed.len(),
            steps.len(),
            failed.join(", "),
            if skipped > 0 {
                format!(", {skipped} not run")
            } else {
                String::new()
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_names_its_cause_and_the_summary_names_the_step() {
        let steps = vec![
            Step {
                id: "redirect-to-login",
                title: "t1",
                outcome: Outcome::Pass,
                status: Some(302),
                elapsed: Duration::from_millis(12),
                detail: "ok".into(),
                likely_cause: None,
            },
            Step {
                id: "app-page",
                title: "t2",
                outcome: Outcome::Fail,
                status: Some(302),
                elapsed: Duration::from_millis(3),
                detail: "sent back".into(),
                likely_cause: Some("includeRequestHeadersInCheck".into()),
            },
        ];
        let text = render_step(&steps[1], false);
        assert!(text.contains("FAIL app-page"), "{text}");
        assert!(
            text.contains("likely cause: includeRequestHeadersInCheck"),
            "{text}"
        );
        assert!(summary(&steps).contains("1 of 2 steps failed (app-page)"));
        assert!(summary(&steps[..1]).contains("all 1 steps passed"));
    }
}
