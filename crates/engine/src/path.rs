//! Field paths inside a JSON document: `spec.template.spec.containers[0].image`.
//!
//! This is the one path syntax of the project: config errors name their field in it, drift
//! reports (`field spec.replicas: last written by kubectl-patch`) and release diffs print it,
//! and sensitive paths are parsed from it. The syntax:
//! - keys separated by `.`: `config.staticClients`;
//! - array indices in brackets: `hostAliases[0].ip`;
//! - a key that is empty or contains `.`, `[`, `]`, `"`, `*`, `\`, whitespace or a control
//!   character is written in brackets as a JSON string (with JSON escapes: `\"`, `\\`, `\n`):
//!   `metadata.annotations["envctl.dev/module"]`, `metadata.labels["app.kubernetes.io/name"]`,
//!   `data["config.yaml"]`, `["a \"quoted\" key"]`; a `/` alone does not need it
//!   (`annotations.checksum/config`), and a bracketed key that needs no brackets is read too;
//! - wildcards (only in patterns such as sensitive paths): `*` matches any key, `[*]` any index.
//!
//! The empty path `""` is the whole document. Printing then parsing gives back the same path
//! ([`FieldPath`]'s `Display` and `FromStr`); code that keeps paths as text builds them with
//! [`FieldPath::append_key`] and [`FieldPath::append_index`], which print the same way.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSegment {
    /// A map key.
    Key(String),
    /// An array index.
    Index(usize),
    /// `*`: any map key (patterns only).
    AnyKey,
    /// `[*]`: any array index (patterns only).
    AnyIndex,
}

/// A path to a field in a JSON document. See the [module docs](self) for the syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath {
    /// The steps from the root.
    pub segments: Vec<PathSegment>,
}

impl FieldPath {
    /// The path of the whole document.
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// This path followed by a map key.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut next = self.clone();
        next.segments.push(PathSegment::Key(key.to_owned()));
        next
    }

    /// This path followed by an array index.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut next = self.clone();
        next.segments.push(PathSegment::Index(index));
        next
    }

    /// `prefix` followed by this path.
    pub fn prefixed(&self, prefix: &FieldPath) -> FieldPath {
        let mut segments = prefix.segments.clone();
        segments.extend(self.segments.iter().cloned());
        FieldPath { segments }
    }

    /// True if the path has wildcards.
    pub fn is_pattern(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, PathSegment::AnyKey | PathSegment::AnyIndex))
    }

    /// The value at this path, if the path has no wildcards and the field exists.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut current = value;
        for segment in &self.segments {
            current = match (segment, current) {
                (PathSegment::Key(k), Value::Object(map)) => map.get(k)?,
                (PathSegment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Every concrete path in `value` that this pattern matches (the path itself when it has no
    /// wildcards and exists), in document order.
    pub fn matches(&self, value: &Value) -> Vec<FieldPath> {
        let mut found = Vec::new();
        collect_matches(&self.segments, value, FieldPath::root(), &mut found);
        found
    }
}

fn collect_matches(
    pattern: &[PathSegment],
    value: &Value,
    here: FieldPath,
    found: &mut Vec<FieldPath>,
) {
    let Some((first, rest)) = pattern.split_first() else {
        found.push(here);
        return;
    };
    match (first, value) {
        (PathSegment::Key(k), Value::Object(map)) => {
            if let Some(child) = map.get(k) {
                collect_matches(rest, child, here.key(k), found);
            }
        }
        (PathSegment::AnyKey, Value::Object(map)) => {
            for (k, child) in map {
                collect_matches(rest, child, here.key(k), found);
            }
        }
        (PathSegment::Index(i), Value::Array(items)) => {
            if let Some(child) = items.get(*i) {
                collect_matches(rest, child, here.index(*i), found);
            }
        }
        (PathSegment::AnyIndex, Value::Array(items)) => {
            for (i, child) in items.iter().enumerate() {
                collect_matches(rest, child, here.index(i), found);
            }
        }
        _ => {}
    }
}

/// The paths at which `before` and `after` differ, in document order (`before`'s keys, then
/// keys only `after` has). Maps are compared key by key, lists index by index; an element or
/// key present on one side only is one path. The one field diff of the project: a Helm
/// release's object changes, drift attribution and a cluster's replacement reasons use it.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk_changes(&FieldPath::root(), before, after, &mut out);
    out
}

fn walk_changes(at: &FieldPath, before: &Value, after: &Value, out: &mut Vec<FieldPath>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, bv) in b {
                match a.get(key) {
                    Some(av) => walk_changes(&at.key(key), bv, av, out),
                    None => out.push(at.key(key)),
                }
            }
            for key in a.keys().filter(|k| !b.contains_key(*k)) {
                out.push(at.key(key));
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for i in 0..b.len().max(a.len()) {
                match (b.get(i), a.get(i)) {
                    (Some(bv), Some(av)) => walk_changes(&at.index(i), bv, av, out),
                    _ => out.push(at.index(i)),
                }
            }
        }
        _ if before == after => {}
        _ => out.push(at.clone()),
    }
}

/// Whether a key is printed in brackets as a JSON string. A `/` alone does not need it
/// (`annotations.checksum/config`): only `.` and brackets separate keys.
fn needs_quotes(key: &str) -> bool {
    key.is_empty()
        || key.chars().any(|c| {
            matches!(c, '.' | '[' | ']' | '"' | '*' | '\\') || c.is_whitespace() || c.is_control()
        })
}

/// Writes one segment; `first` is true for the first segment of a path (no `.` before a key).
fn write_segment(out: &mut impl fmt::Write, segment: &PathSegment, first: bool) -> fmt::Result {
    match segment {
        PathSegment::Key(k) if needs_quotes(k) => {
            let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
            write!(out, "[{quoted}]")
        }
        PathSegment::Key(k) => {
            if !first {
                out.write_str(".")?;
            }
            out.write_str(k)
        }
        PathSegment::AnyKey => {
            if !first {
                out.write_str(".")?;
            }
            out.write_str("*")
        }
        PathSegment::Index(n) => write!(out, "[{n}]"),
        PathSegment::AnyIndex => out.write_str("[*]"),
    }
}

impl FieldPath {
    /// The printed path `printed` followed by the key `key`, printed: for every path `p`,
    /// `FieldPath::append_key(&p.to_string(), k) == p.key(k).to_string()`. For code that keeps
    /// paths as text while it walks a document (config's error fields).
    pub fn append_key(printed: &str, key: &str) -> String {
        let mut out = printed.to_owned();
        // Writing to a String cannot fail.
        let _ = write_segment(
            &mut out,
            &PathSegment::Key(key.to_owned()),
            printed.is_empty(),
        );
        out
    }

    /// The printed path `printed` followed by the index `index` (see [`FieldPath::append_key`]).
    pub fn append_index(printed: &str, index: usize) -> String {
        format!("{printed}[{index}]")
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            write_segment(f, segment, i == 0)?;
        }
        Ok(())
    }
}

/// A field path that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{path}` is not a field path ({problem}); write e.g. `config.staticClients[0].secret` or `metadata.annotations[\"envctl.dev/module\"]`"
)]
pub struct PathError {
    /// The text that was parsed.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |problem: &str| PathError {
            path: s.to_owned(),
            problem: problem.to_owned(),
        };
        let mut segments = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        // True when the next thing must be a key (at the start or right after a `.`).
        let mut expect_key = true;
        while i < bytes.len() {
            match bytes[i] {
                b'[' => {
                    let rest = &s[i + 1..];
                    if let Some(after_quote) = rest.strip_prefix('"') {
                        // A quoted key: find the closing quote, honouring backslash escapes.
                        let mut end = None;
                        let mut escaped = false;
                        for (j, c) in after_quote.char_indices() {
                            match c {
                                _ if escaped => escaped = false,
                                '\\' => escaped = true,
                                '"' => {
                                    end = Some(j);
                                    break;
                                }
                                _ => {}
                            }
                        }
                        let end = end.ok_or_else(|| fail("unterminated quoted key"))?;
                        let literal = &rest[..end + 2];
                        let key: String = serde_json::from_str(literal)
                            .map_err(|_| fail("bad escape in quoted key"))?;
                        if !rest[end + 2..].starts_with(']') {
                            return Err(fail("expected `]` after a quoted key"));
                        }
                        segments.push(PathSegment::Key(key));
                        i += 1 + end + 3;
                    } else {
                        let close = rest.find(']').ok_or_else(|| fail("missing `]`"))?;
                        let inner = &rest[..close];
                        let segment = if inner == "*" {
                            PathSegment::AnyIndex
                        } else {
                            PathSegment::Index(
                                inner
                                    .parse()
                                    .map_err(|_| fail("an index must be a number or `*`"))?,
                            )
                        };
                        segments.push(segment);
                        i += 1 + close + 1;
                    }
                    expect_key = false;
                }
                b'.' => {
                    if expect_key {
                        return Err(fail("empty key"));
                    }
                    expect_key = true;
                    i += 1;
                    if i == bytes.len() {
                        return Err(fail("ends with `.`"));
                    }
                }
                _ => {
                    if !expect_key {
                        return Err(fail("expected `.` or `[` between fields"));
                    }
                    let rest = &s[i..];
                    let end = rest.find(['.', '[']).unwrap_or(rest.len());
                    let key = &rest[..end];
                    if key.contains([']', '"']) {
                        return Err(fail("unexpected `]` or `\"`; quote such keys"));
                    }
                    segments.push(if key == "*" {
                        PathSegment::AnyKey
                    } else {
                        PathSegment::Key(key.to_owned())
                    });
                    expect_key = false;
                    i += end;
                }
            }
        }
        Ok(FieldPath { segments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        for text in [
            "",
            "spec",
            "spec.replicas",
            "hostAliases[0].ip",
            "config.staticClients[*].secret",
            "data.*",
            "metadata.annotations[\"envctl.dev/module\"]",
            "[\"a.b\"].c",
            "[3]",
        ] {
            let path: FieldPath = text.parse().unwrap();
            assert_eq!(path.to_string(), text, "round trip of {text:?}");
        }
    }

    #[test]
    fn built_paths_render_like_parsed_ones() {
        let path = FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/managed-by");
        assert_eq!(
            path.to_string(),
            "metadata.labels[\"app.kubernetes.io/managed-by\"]"
        );
        assert_eq!(path.to_string().parse::<FieldPath>().unwrap(), path);
    }

    /// Keys that need care: dots, slashes, brackets, quotes, backslashes, whitespace, control
    /// characters, wildcard look-alikes, digits, non-ASCII and Kubernetes label keys.
    const AWKWARD_KEYS: &[&str] = &[
        "plain",
        "a.b",
        "app.kubernetes.io/name",
        "envctl.dev/module",
        "a/b",
        "/",
        "x[0]",
        "[",
        "]",
        "a]b",
        "\"",
        "say \"hi\"",
        "back\\slash",
        "\\\"",
        "",
        " ",
        "tab\there",
        "new\nline",
        "*",
        "[*]",
        "0",
        "12",
        "ключ",
        "café.au-lait",
        "config.yaml",
    ];

    #[test]
    fn every_key_round_trips_through_its_printed_form() {
        for key in AWKWARD_KEYS {
            for path in [
                FieldPath::root().key(key),
                FieldPath::root()
                    .key("metadata")
                    .key("annotations")
                    .key(key),
                FieldPath::root().key("items").index(3).key(key).index(0),
                FieldPath::root().index(0).key(key).key(key),
            ] {
                let printed = path.to_string();
                let parsed: FieldPath = printed
                    .parse()
                    .unwrap_or_else(|e| panic!("{printed:?} of key {key:?} does not parse: {e}"));
                assert_eq!(parsed, path, "parse(print(p)) == p for {printed:?}");
            }
        }
    }

    #[test]
    fn wildcards_and_indices_round_trip() {
        let pattern = FieldPath {
            segments: vec![
                PathSegment::Key("config".into()),
                PathSegment::AnyKey,
                PathSegment::AnyIndex,
                PathSegment::Index(12),
                PathSegment::Key("*".into()),
            ],
        };
        assert_eq!(pattern.to_string(), "config.*[*][12][\"*\"]");
        assert_eq!(pattern.to_string().parse::<FieldPath>().unwrap(), pattern);
        assert!(pattern.is_pattern());
        let literal_star = FieldPath::root().key("*");
        assert!(!literal_star.is_pattern(), "a quoted `*` is a key");
    }

    #[test]
    fn kubernetes_keys_print_in_brackets() {
        for (path, printed) in [
            (
                FieldPath::root()
                    .key("metadata")
                    .key("labels")
                    .key("app.kubernetes.io/name"),
                "metadata.labels[\"app.kubernetes.io/name\"]",
            ),
            (
                FieldPath::root().key("data").key("config.yaml"),
                "data[\"config.yaml\"]",
            ),
            (
                FieldPath::root().key("annotations").key("checksum/config"),
                "annotations.checksum/config",
            ),
            (FieldPath::root().key("say \"hi\""), "[\"say \\\"hi\\\"\"]"),
        ] {
            assert_eq!(path.to_string(), printed);
        }
        // Quoted input of a key that needs no quotes is accepted and means the same key.
        assert_eq!(
            "metadata.labels[\"a/b\"]".parse::<FieldPath>().unwrap(),
            FieldPath::root().key("metadata").key("labels").key("a/b")
        );
    }

    #[test]
    fn appending_to_printed_text_prints_like_the_path() {
        for key in AWKWARD_KEYS {
            for base in [
                FieldPath::root(),
                FieldPath::root().key("spec"),
                FieldPath::root().index(2),
                FieldPath::root().key("a.b").index(1),
            ] {
                assert_eq!(
                    FieldPath::append_key(&base.to_string(), key),
                    base.key(key).to_string()
                );
                assert_eq!(
                    FieldPath::append_index(&base.to_string(), 7),
                    base.index(7).to_string()
                );
            }
        }
    }

    /// Moved from live::fields, whose own copy (sorted keys, lists of another length as one
    /// change) is gone: drift, release diffs and cluster replacement share this one.
    #[test]
    fn changed_paths_descend_into_maps_and_lists_in_document_order() {
        let before = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}, "metadata": {"labels": {"a": "1"}}});
        let after = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.28"}]}}}, "metadata": {"labels": {"a": "1", "b": "2"}}});
        let paths: Vec<String> = changed_paths(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            paths,
            [
                "spec.replicas",
                "spec.template.spec.containers[0].image",
                "metadata.labels.b"
            ]
        );
        assert!(changed_paths(&before, &before).is_empty());
    }

    #[test]
    fn changed_paths_name_each_added_or_removed_element_and_key() {
        let paths = changed_paths(
            &json!({"l": [1, 2], "gone": 1}),
            &json!({"l": [1, 3, 4], "new": {"x": 1}}),
        );
        assert_eq!(
            paths.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["l[1]", "l[2]", "gone", "new"]
        );
        let retyped = changed_paths(&json!({"a": [1]}), &json!({"a": {"0": 1}}));
        assert_eq!(retyped, [FieldPath::root().key("a")]);
        let root = changed_paths(&json!(1), &json!("1"));
        assert_eq!(root, [FieldPath::root()]);
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["a..b", ".a", "a.", "a[x]", "a[1", "a[\"b]", "a]b", "a[0]b"] {
            let err = bad.parse::<FieldPath>().unwrap_err();
            assert_eq!(err.path, bad);
        }
    }

    #[test]
    fn get_and_match() {
        let doc = json!({"config": {"staticClients": [{"secret": "s1"}, {"secret": "s2"}]},
                         "data": {"a": 1, "b": 2}});
        let path: FieldPath = "config.staticClients[1].secret".parse().unwrap();
        assert_eq!(path.get(&doc), Some(&json!("s2")));
        let pattern: FieldPath = "config.staticClients[*].secret".parse().unwrap();
        let found: Vec<String> = pattern
            .matches(&doc)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            found,
            [
                "config.staticClients[0].secret",
                "config.staticClients[1].secret"
            ]
        );
        let keys: FieldPath = "data.*".parse().unwrap();
        assert_eq!(keys.matches(&doc).len(), 2);
        let missing: FieldPath = "config.nope".parse().unwrap();
        assert!(missing.matches(&doc).is_empty());
    }
}
