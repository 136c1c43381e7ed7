//! `${env.<path>}`, `${output.<module>.<name>}`, `${secret.<module>.<name>}` in strings.

use std::fmt;
use std::ops::Range;

/// One placeholder found in a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `${env.cluster.kind.nodePort}` -> path `cluster.kind.nodePort`.
    Env(String),
    /// `${output.sso.dex_cluster_ip}`.
    Output { module: String, name: String },
    /// `${secret.sso.oauth2-proxy}`: the name of a generated Secret.
    Secret { module: String, name: String },
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Env(path) => write!(f, "${{env.{path}}}"),
            Placeholder::Output { module, name } => write!(f, "${{output.{module}.{name}}}"),
            Placeholder::Secret { module, name } => write!(f, "${{secret.{module}.{name}}}"),
        }
    }
}

/// A `${` that does not make a valid placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceholderError {
    /// Byte range of the bad text in the string.
    pub range: Range<usize>,
    pub message: String,
    pub help: String,
}

/// Every placeholder in `s`, with its byte range, in order. Text without `${` has none;
/// a lone `$` (as in a bcrypt hash) is plain text.
pub fn placeholders(s: &str) -> Vec<Result<(Range<usize>, Placeholder), PlaceholderError>> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(offset) = s[rest..].find("${") {
        let start = rest + offset;
        let Some(len) = s[start..].find('}') else {
            found.push(Err(PlaceholderError {
                range: start..s.len(),
                message: format!("placeholder `{}` is not closed", &s[start..]),
                help: "end it with `}`, e.g. `${env.domain}`".into(),
            }));
            break;
        };
        let end = start + len + 1;
        found.push(
            parse(&s[start + 2..end - 1])
                .map(|p| (start..end, p))
                .map_err(|(message, help)| PlaceholderError {
                    range: start..end,
                    message,
                    help,
                }),
        );
        rest = end;
    }
    found
}

fn parse(inner: &str) -> Result<Placeholder, (String, String)> {
    let bad = |why: &str| {
        (
            format!("malformed placeholder `${{{inner}}}`: {why}"),
            "write `${env.<path>}`, `${output.<module>.<name>}` or `${secret.<module>.<name>}`"
                .to_string(),
        )
    };
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if inner.contains("${") {
        return Err(bad("placeholders cannot nest"));
    }
    if !inner.chars().all(valid_char) {
        return Err(bad(
            "only letters, digits, `.`, `_` and `-` may appear inside",
        ));
    }
    let parts: Vec<&str> = inner.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty name between dots"));
    }
    match parts.as_slice() {
        ["env", path @ ..] if !path.is_empty() => Ok(Placeholder::Env(path.join("."))),
        ["output", module, name] => Ok(Placeholder::Output {
            module: module.to_string(),
            name: name.to_string(),
        }),
        ["secret", module, name] => Ok(Placeholder::Secret {
            module: module.to_string(),
            name: name.to_string(),
        }),
        ["output" | "secret", ..] => Err(bad("it takes exactly <module>.<name>")),
        ["env"] => Err(bad("it needs a path, e.g. `${env.domain}`")),
        [other, ..] => Err(bad(&format!(
            "unknown kind `{other}` (env, output or secret)"
        ))),
        [] => Err(bad("it is empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholders_and_ignores_dollars() {
        let found =
            placeholders("http://${env.fqdn.dex}/dex and $2a$10$x ${output.sso.dex_cluster_ip}");
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].as_ref().unwrap().1,
            Placeholder::Env("fqdn.dex".into())
        );
        assert_eq!(
            found[1].as_ref().unwrap().1,
            Placeholder::Output {
                module: "sso".into(),
                name: "dex_cluster_ip".into()
            }
        );
    }

    #[test]
    fn malformed() {
        assert!(placeholders("${env.domain").pop().unwrap().is_err());
        assert!(placeholders("${output.sso}").pop().unwrap().is_err());
        assert!(placeholders("${foo.bar}").pop().unwrap().is_err());
        assert!(placeholders("${env..x}").pop().unwrap().is_err());
    }
}
