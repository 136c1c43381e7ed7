//! Values and the placeholders in them.
//!
//! Data (Helm values, manifests) is [`serde_json::Value`]. String scalars (not map keys) may
//! contain placeholders:
//! - `${output.<module>.<name>}`: an output of a module ([`OutputRef`]);
//! - `${secret.<module>.<name>}`: the *name* of the Kubernetes Secret of a generated secret
//!   ([`SecretRef`]); values never contain secret material.
//!
//! `${env.<path>}` is substituted by the config crate when the environment is loaded; one left
//! over here is an error. `$${` is an escape for a literal `${`. A `${NAME}` without a dot (shell
//! style, common in Helm values) is left alone.
//!
//! A string that is exactly one placeholder resolves to the output's value, whatever its JSON
//! type; placeholders embedded in a longer string are substituted as text. An output not known
//! yet resolves to `(known after apply <- <module>.<name>)`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::path::FieldPath;

/// A reference to a module output: `<module>.<name>`, written `${output.<module>.<name>}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputRef {
    /// The module that produces the output.
    pub module: String,
    /// The output's name within the module.
    pub name: String,
}

/// A reference to a generated secret: `<module>.<name>`, written `${secret.<module>.<name>}`.
///
/// It names the resource `<module>.generated_secret.<name>` and resolves to the name of its
/// Kubernetes Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// The module that declares the generated secret.
    pub module: String,
    /// The generated secret's resource name.
    pub name: String,
}

impl OutputRef {
    /// `module.name`.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> OutputRef {
        OutputRef {
            module: module.into(),
            name: name.into(),
        }
    }
}

impl SecretRef {
    /// `module.name`.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> SecretRef {
        SecretRef {
            module: module.into(),
            name: name.into(),
        }
    }
}

macro_rules! dotted_ref_impls {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}.{}", self.module, self.name)
            }
        }

        impl FromStr for $ty {
            type Err = ValueError;

            /// Parses `<module>.<name>` (without `${...}`).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.split_once('.') {
                    Some((module, name)) if is_ident(module) && is_ident(name) => {
                        Ok($ty::new(module, name))
                    }
                    _ => Err(ValueError::MalformedPlaceholder {
                        path: String::new(),
                        text: s.to_owned(),
                        problem: concat!("expected `<module>.<name>` for ", $what).to_owned(),
                    }),
                }
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

dotted_ref_impls!(OutputRef, "an output");
dotted_ref_impls!(SecretRef, "a secret");

/// A placeholder found in a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    /// `${output.<module>.<name>}`.
    Output(OutputRef),
    /// `${secret.<module>.<name>}`.
    Secret(SecretRef),
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Output(r) => write!(f, "${{output.{r}}}"),
            Placeholder::Secret(r) => write!(f, "${{secret.{r}}}"),
        }
    }
}

impl FromStr for Placeholder {
    type Err = ValueError;

    /// Parses a string that is exactly one placeholder, e.g. `${output.sso.dex_cluster_ip}`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_template(s).map_err(|problem| ValueError::MalformedPlaceholder {
            path: String::new(),
            text: s.to_owned(),
            problem,
        })? {
            pieces if pieces.len() == 1 => match pieces.into_iter().next() {
                Some(Piece::Placeholder(p)) => Ok(p),
                _ => Err(not_one_placeholder(s)),
            },
            _ => Err(not_one_placeholder(s)),
        }
    }
}

fn not_one_placeholder(s: &str) -> ValueError {
    ValueError::MalformedPlaceholder {
        path: String::new(),
        text: s.to_owned(),
        problem: "expected exactly one placeholder".to_owned(),
    }
}

/// The text shown for a value that is only known after apply.
pub fn known_after_apply(output: &OutputRef) -> String {
    format!("(known after apply <- {output})")
}

/// One occurrence of a placeholder in a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlaceholderUse {
    /// Where it occurs, e.g. `values.hostAliases[0].ip` (see [`FieldPath`]).
    pub path: String,
    /// What it refers to.
    pub placeholder: Placeholder,
}

/// What placeholders resolve against: outputs known so far and the Secret names of generated
/// secrets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings {
    /// Outputs whose value is known. An output missing here is "known after apply".
    pub outputs: BTreeMap<OutputRef, Value>,
    /// The Kubernetes Secret name of each generated secret.
    pub secrets: BTreeMap<SecretRef, String>,
}

/// A value with its placeholders resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The value; unknown outputs appear as `(known after apply <- module.name)`.
    pub value: Value,
    /// Outputs that were not known yet, sorted, without duplicates.
    pub unknown: Vec<OutputRef>,
}

/// A problem with the placeholders of a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Placeholder syntax is wrong.
    #[error(
        "field `{path}`: {problem} in `{text}`; placeholders look like `${{output.<module>.<name>}}` or `${{secret.<module>.<name>}}` (write `$${{` for a literal `${{`)"
    )]
    MalformedPlaceholder {
        /// Where (see [`FieldPath`]); empty for a top-level string.
        path: String,
        /// The whole string scalar.
        text: String,
        /// What is wrong.
        problem: String,
    },
    /// A `${env.…}` placeholder reached the engine.
    #[error(
        "field `{path}`: `{placeholder}` was not substituted when the environment was loaded; check that the path exists in the environment file (infra/envs/<name>.yaml or its defaults)"
    )]
    UnsubstitutedEnv {
        /// Where.
        path: String,
        /// The placeholder text.
        placeholder: String,
    },
    /// A `${secret.…}` placeholder names no generated secret.
    #[error(
        "field `{path}`: `${{secret.{secret}}}` names no generated secret; declare a `generated_secret` resource `{name}` in module `{module}`",
        module = secret.module, name = secret.name
    )]
    UnknownSecret {
        /// Where.
        path: String,
        /// The reference.
        secret: SecretRef,
    },
}

impl ValueError {
    /// The same error with its field path under `prefix` (e.g. `values`).
    pub fn under(self, prefix: &str) -> ValueError {
        let join = |path: String| match (prefix.is_empty(), path.is_empty()) {
            (true, _) => path,
            (false, true) => prefix.to_owned(),
            (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
            (false, false) => format!("{prefix}.{path}"),
        };
        match self {
            ValueError::MalformedPlaceholder {
                path,
                text,
                problem,
            } => ValueError::MalformedPlaceholder {
                path: join(path),
                text,
                problem,
            },
            ValueError::UnsubstitutedEnv { path, placeholder } => ValueError::UnsubstitutedEnv {
                path: join(path),
                placeholder,
            },
            ValueError::UnknownSecret { path, secret } => ValueError::UnknownSecret {
                path: join(path),
                secret,
            },
        }
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A piece of a string scalar.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Placeholder(Placeholder),
    /// A `${env.…}` left over: always an error, kept to report it.
    Env(String),
}

/// Splits a string scalar into literal text and placeholders. The error is the problem only;
/// callers add path and text.
fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = s;
    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            literal.push_str("${");
            rest = after;
            continue;
        }
        let Some(after_open) = tail.strip_prefix("${") else {
            literal.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(close) = after_open.find('}') else {
            if after_open.starts_with("output.")
                || after_open.starts_with("secret.")
                || after_open.starts_with("env.")
            {
                return Err("unterminated placeholder (no closing `}`)".to_owned());
            }
            // Not ours (e.g. a shell snippet): keep as text.
            literal.push_str("${");
            rest = after_open;
            continue;
        };
        let body = &after_open[..close];
        let after_close = &after_open[close + 1..];
        let Some((namespace, path)) = body.split_once('.') else {
            // `${NAME}`: shell style, not a placeholder.
            literal.push_str(&tail[..2 + close + 1]);
            rest = after_close;
            continue;
        };
        let piece = match namespace {
            "env" => Piece::Env(format!("${{{body}}}")),
            "output" | "secret" => {
                let (module, name) = path.split_once('.').ok_or_else(|| {
                    format!("`${{{body}}}` needs both a module and a name: `${{{namespace}.<module>.<name>}}`")
                })?;
                if !is_ident(module) || !is_ident(name) {
                    return Err(format!(
                        "`${{{body}}}`: module and name must be ASCII letters, digits, `_` or `-`"
                    ));
                }
                if namespace == "output" {
                    Piece::Placeholder(Placeholder::Output(OutputRef::new(module, name)))
                } else {
                    Piece::Placeholder(Placeholder::Secret(SecretRef::new(module, name)))
                }
            }
            other => {
                return Err(format!(
                    "unknown placeholder kind `{other}` (expected `output` or `secret`)"
                ));
            }
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(piece);
        rest = after_close;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Visits every string scalar of `value` with its field path.
fn visit_strings<E>(
    value: &Value,
    path: &FieldPath,
    visit: &mut impl FnMut(&FieldPath, &str) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        Value::String(s) => visit(path, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| visit_strings(item, &path.index(i), visit)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| visit_strings(v, &path.key(k), visit)),
        _ => Ok(()),
    }
}

fn pieces_at(path: &FieldPath, text: &str) -> Result<Vec<Piece>, ValueError> {
    let pieces = parse_template(text).map_err(|problem| ValueError::MalformedPlaceholder {
        path: path.to_string(),
        text: text.to_owned(),
        problem,
    })?;
    if let Some(Piece::Env(placeholder)) = pieces.iter().find(|p| matches!(p, Piece::Env(_))) {
        return Err(ValueError::UnsubstitutedEnv {
            path: path.to_string(),
            placeholder: placeholder.clone(),
        });
    }
    Ok(pieces)
}

/// Every placeholder in `value`, in document order, with the field path of each occurrence.
///
/// Fails on the first malformed placeholder or leftover `${env.…}`.
pub fn find_placeholders(value: &Value) -> Result<Vec<PlaceholderUse>, ValueError> {
    // Without a `$` there is no placeholder (nor a malformed one): no field path to build for
    // each field.
    if !any_dollar(value) {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    visit_strings(value, &FieldPath::root(), &mut |path, text| {
        for piece in pieces_at(path, text)? {
            if let Piece::Placeholder(placeholder) = piece {
                found.push(PlaceholderUse {
                    path: path.to_string(),
                    placeholder,
                });
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// Resolves every placeholder in `value` against `bindings`.
///
/// Outputs missing from `bindings.outputs` become `(known after apply <- module.name)` and are
/// listed in [`Resolved::unknown`]; a secret missing from `bindings.secrets` is an error.
pub fn resolve(value: &Value, bindings: &Bindings) -> Result<Resolved, ValueError> {
    // Most documents hold no placeholder at all (no `$` anywhere): nothing to resolve, and no
    // field path to build for each of their fields.
    if !any_dollar(value) {
        return Ok(Resolved {
            value: value.clone(),
            unknown: Vec::new(),
        });
    }
    let mut unknown = Vec::new();
    let value = resolve_at(value, &FieldPath::root(), bindings, &mut unknown)?;
    unknown.sort();
    unknown.dedup();
    Ok(Resolved { value, unknown })
}

/// [`resolve`] of a value the caller gives up: one without placeholders is returned as it is
/// (no copy).
pub fn resolve_owned(value: Value, bindings: &Bindings) -> Result<Resolved, ValueError> {
    if !any_dollar(&value) {
        return Ok(Resolved {
            value,
            unknown: Vec::new(),
        });
    }
    resolve(&value, bindings)
}

/// Whether any string value in `value` contains a `$` (every placeholder starts with one).
pub(crate) fn any_dollar(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('$'),
        Value::Array(items) => items.iter().any(any_dollar),
        Value::Object(map) => map.values().any(any_dollar),
        _ => false,
    }
}

fn resolve_at(
    value: &Value,
    path: &FieldPath,
    bindings: &Bindings,
    unknown: &mut Vec<OutputRef>,
) -> Result<Value, ValueError> {
    Ok(match value {
        Value::String(text) => resolve_string(text, path, bindings, unknown)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| resolve_at(item, &path.index(i), bindings, unknown))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve_at(v, &path.key(k), bindings, unknown)?)))
                .collect::<Result<_, ValueError>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_string(
    text: &str,
    path: &FieldPath,
    bindings: &Bindings,
    unknown: &mut Vec<OutputRef>,
) -> Result<Value, ValueError> {
    let pieces = pieces_at(path, text)?;
    let mut resolved = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        resolved.push(match piece {
            Piece::Literal(s) => Value::String(s.clone()),
            Piece::Placeholder(Placeholder::Output(r)) => match bindings.outputs.get(r) {
                Some(v) => v.clone(),
                None => {
                    unknown.push(r.clone());
                    Value::String(known_after_apply(r))
                }
            },
            Piece::Placeholder(Placeholder::Secret(r)) => match bindings.secrets.get(r) {
                Some(name) => Value::String(name.clone()),
                None => {
                    return Err(ValueError::UnknownSecret {
                        path: path.to_string(),
                        secret: r.clone(),
                    });
                }
            },
            Piece::Env(_) => unreachable!("pieces_at rejects env placeholders"),
        });
    }
    if resolved.len() == 1
        && let Some(only) = resolved.pop()
    {
        return Ok(only);
    }
    let mut out = String::new();
    for piece in resolved {
        match piece {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn out(m: &str, n: &str) -> OutputRef {
        OutputRef::new(m, n)
    }

    #[test]
    fn finds_placeholders_with_paths() {
        let doc = json!({
            "hostAliases": [{"ip": "${output.sso.dex_cluster_ip}", "hostnames": ["dex.example.com"]}],
            "config": {"existingSecret": "${secret.sso.oauth2-proxy}",
                       "url": "http://${output.gateway.gateway_name}.${output.gateway.gateway_namespace}:80"},
            "plain": "no placeholders here, not even $HOME or ${HOME}"
        });
        let found = find_placeholders(&doc).unwrap();
        let rendered: Vec<(String, String)> = found
            .iter()
            .map(|u| (u.path.clone(), u.placeholder.to_string()))
            .collect();
        assert_eq!(
            rendered,
            [
                (
                    "hostAliases[0].ip".into(),
                    "${output.sso.dex_cluster_ip}".into()
                ),
                (
                    "config.existingSecret".into(),
                    "${secret.sso.oauth2-proxy}".into()
                ),
                ("config.url".into(), "${output.gateway.gateway_name}".into()),
                (
                    "config.url".into(),
                    "${output.gateway.gateway_namespace}".into()
                ),
            ]
        );
    }

    #[test]
    fn malformed_placeholders_name_the_field() {
        let cases = [
            ("${output.sso}", "needs both a module and a name"),
            ("${output.sso.dex", "unterminated"),
            ("${ouput.sso.dex}", "unknown placeholder kind `ouput`"),
            ("${output.s so.dex}", "must be ASCII"),
            ("${secret..x}", "must be ASCII"),
        ];
        for (text, problem) in cases {
            let doc = json!({"spec": {"items": [text]}});
            let err = find_placeholders(&doc).unwrap_err();
            match &err {
                ValueError::MalformedPlaceholder {
                    path,
                    text: t,
                    problem: p,
                } => {
                    assert_eq!(path, "spec.items[0]", "{text}");
                    assert_eq!(t, text);
                    assert!(p.contains(problem), "{text}: {p}");
                }
                other => panic!("{text}: unexpected {other:?}"),
            }
            assert!(err.to_string().starts_with("field `spec.items[0]`: "));
        }
    }

    #[test]
    fn leftover_env_placeholder_is_an_error() {
        let err = find_placeholders(&json!({"host": "${env.hosts.nginx}"})).unwrap_err();
        assert_eq!(
            err,
            ValueError::UnsubstitutedEnv {
                path: "host".into(),
                placeholder: "${env.hosts.nginx}".into()
            }
        );
        assert!(err.to_string().contains("environment file"));
    }

    #[test]
    fn escapes_and_shell_syntax_are_literal() {
        let bindings = Bindings::default();
        let doc = json!(["$${output.a.b}", "${HOME}/x", "cost: $5", "${unclosed"]);
        let resolved = resolve(&doc, &bindings).unwrap();
        assert_eq!(
            resolved.value,
            json!(["${output.a.b}", "${HOME}/x", "cost: $5", "${unclosed"])
        );
        assert!(find_placeholders(&doc).unwrap().is_empty());
    }

    #[test]
    fn a_document_without_placeholders_resolves_to_itself() {
        let doc = json!({"kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "b"}},
            "data": {"n": 1, "list": ["p", {"q": null}], "empty": ""}});
        let resolved = resolve(&doc, &Bindings::default()).unwrap();
        assert_eq!(resolved.value, doc);
        assert!(resolved.unknown.is_empty());
        // A `$` deep inside still takes the full walk (the escape is unescaped there).
        let nested = json!({"data": {"list": [{"q": "$${x}"}]}});
        assert_eq!(
            resolve(&nested, &Bindings::default()).unwrap().value,
            json!({"data": {"list": [{"q": "${x}"}]}})
        );
    }

    #[test]
    fn whole_string_placeholder_takes_the_output_type() {
        let mut bindings = Bindings::default();
        bindings.outputs.insert(out("a", "port"), json!(8080));
        bindings
            .outputs
            .insert(out("a", "hosts"), json!(["x", "y"]));
        let resolved = resolve(
            &json!({"port": "${output.a.port}", "hosts": "${output.a.hosts}"}),
            &bindings,
        )
        .unwrap();
        assert_eq!(resolved.value, json!({"port": 8080, "hosts": ["x", "y"]}));
        assert!(resolved.unknown.is_empty());
    }

    #[test]
    fn embedded_placeholders_are_substituted_as_text() {
        let mut bindings = Bindings::default();
        bindings.outputs.insert(out("a", "port"), json!(8080));
        bindings.outputs.insert(out("a", "host"), json!("dex"));
        let resolved = resolve(
            &json!("http://${output.a.host}:${output.a.port}/"),
            &bindings,
        )
        .unwrap();
        assert_eq!(resolved.value, json!("http://dex:8080/"));
    }

    #[test]
    fn unknown_outputs_are_marked_and_listed() {
        let mut bindings = Bindings::default();
        bindings
            .secrets
            .insert(SecretRef::new("sso", "oauth2-proxy"), "oauth2-proxy".into());
        let doc = json!({
            "hostAliases": [{"ip": "${output.sso.dex_cluster_ip}"}],
            "url": "http://${output.sso.dex_cluster_ip}:5556",
            "existingSecret": "${secret.sso.oauth2-proxy}"
        });
        let resolved = resolve(&doc, &bindings).unwrap();
        assert_eq!(
            resolved.value,
            json!({
                "hostAliases": [{"ip": "(known after apply <- sso.dex_cluster_ip)"}],
                "url": "http://(known after apply <- sso.dex_cluster_ip):5556",
                "existingSecret": "oauth2-proxy"
            })
        );
        assert_eq!(resolved.unknown, [out("sso", "dex_cluster_ip")]);
    }

    #[test]
    fn unknown_secret_is_an_error() {
        let err = resolve(&json!({"s": "${secret.sso.nope}"}), &Bindings::default()).unwrap_err();
        assert_eq!(
            err,
            ValueError::UnknownSecret {
                path: "s".into(),
                secret: SecretRef::new("sso", "nope")
            }
        );
        assert!(err.to_string().contains("declare a `generated_secret`"));
    }

    #[test]
    fn placeholder_and_refs_round_trip() {
        for text in ["${output.sso.dex_cluster_ip}", "${secret.sso.oauth2-proxy}"] {
            let p: Placeholder = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        assert!("x ${output.a.b}".parse::<Placeholder>().is_err());
        let r: OutputRef = "mesh.gateway_class".parse().unwrap();
        assert_eq!(r, out("mesh", "gateway_class"));
        assert!("mesh".parse::<OutputRef>().is_err());
    }

    #[test]
    fn errors_can_be_moved_under_a_prefix() {
        let err = find_placeholders(&json!({"a": ["${output.x}"]}))
            .unwrap_err()
            .under("values");
        assert!(
            matches!(err, ValueError::MalformedPlaceholder { ref path, .. } if path == "values.a[0]")
        );
    }
}
