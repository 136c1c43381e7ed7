//! Literal secrets written into `infra/`: refused, since secrets are generated at apply
//! (a `GeneratedSecret`) and never kept in a file. The value found is never repeated in the
//! error, so a mistake does not end up in a terminal or a CI log.

use crate::error::ConfigError;
use crate::placeholder::placeholders;
use crate::yaml::{Node, NodeValue, SourceFile, join_index, join_key};

/// Whether a key names a secret (`password`, `client_secret`, `cookieSecret`, `apiKey`, ...).
pub(crate) fn is_secret_key(key: &str) -> bool {
    let norm: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    const EXACT: [&str; 4] = ["secret", "token", "passwd", "pass"];
    const SUFFIXES: [&str; 10] = [
        "password",
        "clientsecret",
        "cookiesecret",
        "sharedsecret",
        "apikey",
        "apitoken",
        "accesstoken",
        "bearertoken",
        "privatekey",
        "secretkey",
    ];
    EXACT.contains(&norm.as_str()) || SUFFIXES.iter().any(|s| norm.ends_with(s))
}

/// Whether a written value is a secret itself rather than a reference or nothing.
fn is_literal(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    if v.is_empty() {
        return false;
    }
    let found = placeholders(v);
    let only_placeholders = !found.is_empty() && {
        let mut rest = v.to_string();
        for (range, _) in found.iter().flatten().rev() {
            rest.replace_range(range.clone(), "");
        }
        rest.trim().is_empty()
    };
    !only_placeholders
}

/// Every literal secret in a document: under a secret-like key, or as a `key = "value"` /
/// `key: value` line of a multi-line string (e.g. OAuth2 Proxy's `config.configFile`).
pub(crate) fn find(file: &SourceFile, doc: &Node, what: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    walk(file, doc, "", None, what, &mut errors);
    errors
}

fn walk(
    file: &SourceFile,
    node: &Node,
    path: &str,
    key: Option<&str>,
    what: &str,
    errors: &mut Vec<ConfigError>,
) {
    match &node.value {
        NodeValue::Map(entries) => {
            for e in entries {
                walk(
                    file,
                    &e.value,
                    &join_key(path, &e.key),
                    Some(&e.key),
                    what,
                    errors,
                );
            }
        }
        NodeValue::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(file, item, &join_index(path, i), None, what, errors);
            }
        }
        NodeValue::Str(text) => {
            if let Some(key) = key
                && is_secret_key(key)
                && is_literal(text)
            {
                errors.push(error(node.location(), path, key, what));
            } else if text.contains('\n') {
                for line in text.lines() {
                    let Some((k, v)) = line.split_once(['=', ':']) else {
                        continue;
                    };
                    let k = k.trim();
                    if !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                        && is_secret_key(k)
                        && is_literal(v.split(" #").next().unwrap_or(v))
                    {
                        let at = file
                            .find_in(node.pos, line.trim())
                            .unwrap_or_else(|| node.location());
                        errors.push(error(at, path, k, what));
                    }
                }
            }
        }
        _ => {}
    }
}

fn error(at: crate::error::Location, field: &str, key: &str, what: &str) -> ConfigError {
    ConfigError::new(
        at,
        field,
        format!("{what} holds a literal secret under `{key}` (its value is not shown)"),
    )
    .with_help(
        "secrets are never written in infra/: declare the key in a GeneratedSecret (kind \
         GeneratedSecret, apiVersion envctl.dev/v1; see sso/oauth2-proxy.secret.yaml), which \
         generates it at apply, and point the chart at it with ${secret.<module>.<name>} \
         (e.g. OAuth2 Proxy's config.existingSecret)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "adminPassword",
            "client_secret",
            "clientSecret",
            "cookie-secret",
            "cookie_secret",
            "apiKey",
            "secret",
            "token",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "existingSecret",
            "secretEnv",
            "secretName",
            "enablePasswordDB",
            "hash",
            "idTokens",
            "cookie_secure",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn references_are_not_literals() {
        assert!(!is_literal("${secret.sso.oauth2-proxy}"));
        assert!(!is_literal(" \"\" "));
        assert!(is_literal("\"hunter2\""));
        assert!(is_literal("x-${env.domain}"));
    }
}
