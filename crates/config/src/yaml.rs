//! YAML files as trees that remember where every node came from.
//!
//! serde-saphyr's own deserializer reports where an error is, but not the field path, and
//! cannot merge two files; so files are parsed here with its event parser (granit-parser) into
//! [`Node`]s that carry file, line and column, merged as trees, and handed to serde through
//! [`crate::de`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::{FieldPath, PathSegment};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::yaml11;

use crate::error::{ConfigError, Location};

/// Largest file read from `infra/`: a bigger one is refused before it is parsed.
pub(crate) const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Deepest nesting of lists and mappings in one file.
const MAX_DEPTH: usize = 100;
/// Most nodes that aliases may add to one file: YAML alias "bombs" (each level a list of
/// aliases of the previous one) grow exponentially; they are refused at this bound.
const MAX_ALIAS_NODES: usize = 100_000;

/// Where a node starts (1-based line and column) and its char range in the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
    pub start: usize,
    pub end: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
            start: span.start.index(),
            end: span.end.index(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub value: NodeValue,
    pub pos: Pos,
    pub file: Arc<Path>,
}

#[derive(Clone, Debug)]
pub(crate) enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    pub fn location(&self) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line: self.pos.line,
            column: self.pos.column,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }

    /// What the node is, for messages.
    pub fn describe(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "nothing (null)",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    /// Follows a field path (wildcards match nothing); also returns the entry's key position
    /// when the last step is a mapping key.
    pub fn walk(&self, path: &FieldPath) -> Option<(&Node, Option<Pos>)> {
        let mut node = self;
        let mut key_pos = None;
        for step in &path.segments {
            match (step, &node.value) {
                (PathSegment::Key(k), NodeValue::Map(entries)) => {
                    let entry = entries.iter().find(|e| &e.key == k)?;
                    key_pos = Some(entry.key_pos);
                    node = &entry.value;
                }
                (PathSegment::Index(i), NodeValue::Seq(items)) => {
                    node = items.get(*i)?;
                    key_pos = None;
                }
                _ => return None,
            }
        }
        Some((node, key_pos))
    }

    /// Deep merge of `overlay` over `self`: mappings merge key by key, `null` removes a key,
    /// anything else replaces.
    pub fn merge(&mut self, overlay: Node) {
        match (&mut self.value, overlay.value) {
            (NodeValue::Map(base), NodeValue::Map(over)) => {
                for entry in over {
                    let existing = base.iter().position(|e| e.key == entry.key);
                    match (existing, entry.value.is_null()) {
                        (Some(i), true) => {
                            base.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => {
                            let both_maps = matches!(base[i].value.value, NodeValue::Map(_))
                                && matches!(entry.value.value, NodeValue::Map(_));
                            if both_maps {
                                base[i].value.merge(entry.value);
                            } else {
                                base[i] = entry;
                            }
                        }
                        (None, false) => base.push(entry),
                    }
                }
            }
            (_, value) => {
                *self = Node {
                    value,
                    pos: overlay.pos,
                    file: overlay.file,
                }
            }
        }
    }

    /// The node as JSON (numbers that JSON cannot hold, NaN/inf, become null).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// `path` (a printed [`FieldPath`]) followed by the key `key`, in the one path syntax of
/// [`engine::FieldPath`] (e.g. `charts["my.release"]`).
pub(crate) fn join_key(path: &str, key: &str) -> String {
    FieldPath::append_key(path, key)
}

/// `path` (a printed [`FieldPath`]) followed by the index `index`.
pub(crate) fn join_index(path: &str, index: usize) -> String {
    FieldPath::append_index(path, index)
}

/// One parsed file: its text (to find placeholders in) and its documents.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub path: Arc<Path>,
    pub text: Vec<char>,
    /// Char index of the start of each line.
    line_starts: Vec<usize>,
    pub docs: Vec<Node>,
    /// False after a syntax error: `docs` is then only what came before it.
    pub complete: bool,
}

impl SourceFile {
    /// Parses `text` (every document). Duplicate keys are reported and the later one is
    /// dropped; a syntax error ends parsing.
    pub fn parse(path: &Path, text: &str) -> (SourceFile, Vec<ConfigError>) {
        let path: Arc<Path> = Arc::from(path);
        let chars: Vec<char> = text.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in chars.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        let mut builder = Builder {
            file: path.clone(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            docs: Vec::new(),
            errors: Vec::new(),
            fatal: false,
        };
        let mut complete = true;
        for event in Parser::new_from_str(text) {
            match event {
                Ok((event, span)) => {
                    builder.event(event, &span);
                    if builder.fatal {
                        complete = false;
                        break;
                    }
                }
                Err(e) => {
                    let marker = e.marker();
                    let mut field = builder.current_path(true);
                    // The scanner often fails before it hands out the key of the line it is
                    // on: take that key from the text.
                    if builder.awaiting_key()
                        && let Some(key) = text
                            .lines()
                            .nth(marker.line().saturating_sub(1))
                            .and_then(key_of_line)
                    {
                        field = join_key(&field, key);
                    }
                    builder.errors.push(
                        ConfigError::new(
                            Location {
                                file: path.to_path_buf(),
                                line: marker.line(),
                                column: marker.col() + 1,
                            },
                            field,
                            format!("YAML syntax error: {}", e.info()),
                        )
                        .with_help(
                            "fix the YAML here (indentation, a missing `:` or a quote that is \
                             not closed are the usual causes)",
                        ),
                    );
                    complete = false;
                    break;
                }
            }
        }
        let file = SourceFile {
            path,
            text: chars,
            line_starts,
            docs: builder.docs,
            complete,
        };
        (file, builder.errors)
    }

    /// 1-based line and column of a char index.
    pub fn position(&self, index: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&index) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        (line + 1, index - self.line_starts[line] + 1)
    }

    pub fn location_of(&self, index: usize) -> Location {
        let (line, column) = self.position(index);
        Location {
            file: self.path.to_path_buf(),
            line,
            column,
        }
    }

    /// Where `needle` occurs inside a node's source text (e.g. a placeholder in a scalar).
    pub fn find_in(&self, pos: Pos, needle: &str) -> Option<Location> {
        let needle: Vec<char> = needle.chars().collect();
        let end = pos.end.min(self.text.len());
        if needle.is_empty() || pos.start >= end {
            return None;
        }
        (pos.start..end)
            .find(|&i| self.text[i..].starts_with(&needle))
            .map(|i| self.location_of(i))
    }

    /// First occurrence of `needle` in the file, outside comments.
    pub fn find_text(&self, needle: &str) -> Option<Location> {
        let mut found = None;
        for doc in &self.docs {
            visit_scalars(doc, "", &mut |node, _| {
                if found.is_none() && node.as_str().is_some_and(|s| s.contains(needle)) {
                    found = self.find_in(node.pos, needle).or(Some(node.location()));
                }
            });
        }
        found
    }

    /// Field path of the first string holding `needle`.
    pub fn field_of_text(&self, needle: &str) -> Option<String> {
        let mut found = None;
        for doc in &self.docs {
            visit_scalars(doc, "", &mut |node, path| {
                if found.is_none() && node.as_str().is_some_and(|s| s.contains(needle)) {
                    found = Some(path.to_string());
                }
            });
        }
        found
    }

    /// Where a field is in document `index`: its value (for a mapping key: where the value
    /// starts; for a block mapping or list value: its key).
    pub fn locate_field(&self, index: usize, field: &str) -> Option<Location> {
        let doc = self.docs.get(index)?;
        locate_in_tree(doc, field)
    }
}

pub(crate) fn locate_in_tree(root: &Node, field: &str) -> Option<Location> {
    let path: FieldPath = field.parse().ok()?;
    let (node, key_pos) = root.walk(&path)?;
    let at_key = matches!(node.value, NodeValue::Map(_) | NodeValue::Seq(_));
    let pos = match (at_key, key_pos) {
        (true, Some(k)) => k,
        _ => node.pos,
    };
    Some(Location {
        file: node.file.to_path_buf(),
        line: pos.line,
        column: pos.column,
    })
}

/// Calls `f` for every mapping entry (key, value, field path), depth first.
pub(crate) fn visit_entries(node: &Node, path: &str, f: &mut dyn FnMut(&str, &Node, &str)) {
    match &node.value {
        NodeValue::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_entries(item, &join_index(path, i), f);
            }
        }
        NodeValue::Map(entries) => {
            for e in entries {
                let child = join_key(path, &e.key);
                f(&e.key, &e.value, &child);
                visit_entries(&e.value, &child, f);
            }
        }
        _ => {}
    }
}

/// Calls `f` for every scalar with its field path.
pub(crate) fn visit_scalars(node: &Node, path: &str, f: &mut dyn FnMut(&Node, &str)) {
    match &node.value {
        NodeValue::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_scalars(item, &join_index(path, i), f);
            }
        }
        NodeValue::Map(entries) => {
            for e in entries {
                visit_scalars(&e.value, &join_key(path, &e.key), f);
            }
        }
        _ => f(node, path),
    }
}

struct Builder {
    file: Arc<Path>,
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes added by aliases so far (bounded by [`MAX_ALIAS_NODES`]).
    alias_nodes: usize,
    docs: Vec<Node>,
    errors: Vec<ConfigError>,
    /// An error after which the file is not read further (an alias bomb, too deep nesting).
    fatal: bool,
}

/// A mapping key refused by [`Builder::finish`].
enum KeyError {
    /// A list or mapping as a key (where it is).
    NotPlain(Location),
    /// A key written twice: the second is dropped.
    Duplicate {
        first_line: usize,
        name: String,
        key_pos: Pos,
    },
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        pos: Pos,
        anchor: usize,
        key: Option<(String, Pos)>,
    },
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: &Span) {
        let pos = Pos::of(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let as_str = tag.as_ref().is_some_and(|t| is_str_tag(t));
                if let Some(tag) = tag.as_ref().filter(|t| !is_str_tag(t)) {
                    self.refuse_tag(tag, pos);
                }
                let value = if quoted || as_str {
                    NodeValue::Str(text.into_owned())
                } else {
                    let value = resolve_plain(&text);
                    if let Some(error) = self.yaml11_difference(&text, &value, pos) {
                        self.errors.push(error);
                    }
                    value
                };
                let node = Node {
                    value,
                    pos,
                    file: self.file.clone(),
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(_, anchor, tag) => {
                self.open_collection(tag.as_deref(), pos);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                self.open_collection(tag.as_deref(), pos);
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    pos,
                    anchor,
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, pos, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, pos, anchor }) => (NodeValue::Seq(items), pos, anchor),
                    Some(Frame::Map {
                        entries,
                        pos,
                        anchor,
                        ..
                    }) => (NodeValue::Map(entries), pos, anchor),
                    None => return,
                };
                let node = Node {
                    value,
                    pos,
                    file: self.file.clone(),
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some((anchored, size)) => {
                        self.alias_nodes += size;
                        if self.alias_nodes > MAX_ALIAS_NODES {
                            self.fail(
                                pos,
                                format!(
                                    "aliases expand to more than {MAX_ALIAS_NODES} nodes (a YAML \
                                     alias bomb?); reading stopped here"
                                ),
                                "write the values out, or use fewer aliases of large nodes",
                            );
                            return;
                        }
                        Node {
                            pos,
                            ..anchored.clone()
                        }
                    }
                    None => Node {
                        value: NodeValue::Null,
                        pos,
                        file: self.file.clone(),
                    },
                };
                self.finish(node, 0);
            }
            _ => {}
        }
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        // An error found here names the path of the innermost mapping, built only then (not
        // for every node): taking its pending key leaves that path as it was.
        let error = match self.stack.last_mut() {
            None => {
                self.docs.push(node);
                None
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                None
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let (text, error) = match &node.value {
                        NodeValue::Str(s) => (s.clone(), None),
                        NodeValue::Int(i) => (i.to_string(), None),
                        NodeValue::Bool(b) => (b.to_string(), None),
                        NodeValue::Float(f) => (f.to_string(), None),
                        NodeValue::Null => ("null".to_string(), None),
                        NodeValue::Seq(_) | NodeValue::Map(_) => {
                            ("?".to_string(), Some(KeyError::NotPlain(node.location())))
                        }
                    };
                    *key = Some((text, node.pos));
                    error
                }
                Some((name, key_pos)) => {
                    if let Some(first) = entries.iter().find(|e| e.key == name) {
                        Some(KeyError::Duplicate {
                            first_line: first.key_pos.line,
                            name,
                            key_pos,
                        })
                    } else {
                        entries.push(Entry {
                            key: name,
                            key_pos,
                            value: node,
                        });
                        None
                    }
                }
            },
        };
        let Some(error) = error else {
            return;
        };
        let path = self.current_path(false);
        self.errors.push(match error {
            KeyError::NotPlain(at) => ConfigError::new(
                at,
                path,
                "a mapping key must be a plain value, not a list or mapping",
            )
            .with_help("write the key as a string"),
            KeyError::Duplicate {
                first_line,
                name,
                key_pos,
            } => ConfigError::new(
                Location {
                    file: self.file.to_path_buf(),
                    line: key_pos.line,
                    column: key_pos.column,
                },
                join_key(&path, &name),
                format!("duplicate key `{name}` (first written at line {first_line})"),
            )
            .with_help("remove one of the two; a key may appear only once"),
        });
    }

    /// Field path of the node being built (with `last_key`: including the innermost
    /// mapping's pending key; without: the path of that mapping).
    fn current_path(&self, last_key: bool) -> String {
        let mut path = String::new();
        let count = self.stack.len();
        for (i, frame) in self.stack.iter().enumerate() {
            match frame {
                Frame::Seq { items, .. } => path = join_index(&path, items.len()),
                Frame::Map { key, .. } => {
                    if let Some((k, _)) = key
                        && (last_key || i + 1 < count)
                    {
                        path = join_key(&path, k);
                    }
                }
            }
        }
        path
    }

    /// Records an error after which the file is not read further.
    fn fail(&mut self, pos: Pos, message: String, help: &str) {
        let mut field = self.current_path(true);
        if let Some((cut, _)) = field.char_indices().nth(80) {
            field.truncate(cut);
            field.push_str("...");
        }
        self.errors.push(
            ConfigError::new(
                Location {
                    file: self.file.to_path_buf(),
                    line: pos.line,
                    column: pos.column,
                },
                field,
                message,
            )
            .with_help(help),
        );
        self.fatal = true;
    }

    /// The checks of a sequence or mapping that starts at `pos`: no tag, not too deep.
    fn open_collection(&mut self, tag: Option<&Tag>, pos: Pos) {
        if let Some(tag) = tag {
            self.refuse_tag(tag, pos);
        }
        self.check_depth(pos);
    }

    fn check_depth(&mut self, pos: Pos) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(
                pos,
                format!("lists and mappings are nested more than {MAX_DEPTH} levels deep"),
                "flatten the structure; no Kubernetes object or chart value needs this depth",
            );
        }
    }

    /// Tags other than `!!str` mean something to helm and kubectl that envctl does not read.
    fn refuse_tag(&mut self, tag: &Tag, pos: Pos) {
        let field = self.current_path(true);
        self.errors.push(
            ConfigError::new(
                Location {
                    file: self.file.to_path_buf(),
                    line: pos.line,
                    column: pos.column,
                },
                field,
                format!(
                    "the YAML tag `{}{}` is not supported (only `!!str` is)",
                    tag.original_handle(),
                    tag.suffix()
                ),
            )
            .with_help("remove the tag; quote the value if it must be a string"),
        );
    }

    /// An error when a plain scalar means something else to helm and kubectl (YAML 1.1, as
    /// go-yaml v2 reads it) than to envctl (YAML 1.2 core schema).
    fn yaml11_difference(&self, text: &str, ours: &NodeValue, pos: Pos) -> Option<ConfigError> {
        let theirs = yaml11::resolve(text);
        let sexagesimal = yaml11::is_sexagesimal(text);
        if theirs.same_as(ours) && !sexagesimal {
            return None;
        }
        let field = match self.stack.last() {
            Some(Frame::Map { key: None, .. }) => {
                let path = self.current_path(false);
                join_key(&path, text)
            }
            _ => self.current_path(true),
        };
        let their_reading = if sexagesimal {
            "a base-60 number to YAML 1.1".to_string()
        } else {
            format!("{} to helm and kubectl (YAML 1.1)", theirs.describe())
        };
        let help = match theirs {
            yaml11::Scalar::Bool(_) => {
                format!("quote it (\"{text}\") if it is a string, or write true/false")
            }
            _ => format!(
                "quote it (\"{text}\") if it is a string, or write the number so that both \
                 read it alike (e.g. without leading zeros or `_`, 0o for octal)"
            ),
        };
        Some(
            ConfigError::new(
                Location {
                    file: self.file.to_path_buf(),
                    line: pos.line,
                    column: pos.column,
                },
                field,
                format!(
                    "`{text}` is {} to envctl (YAML 1.2) but {their_reading}",
                    describe_value(ours)
                ),
            )
            .with_help(help),
        )
    }

    /// Whether the innermost collection is a mapping waiting for its next key.
    fn awaiting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }) | None)
    }
}

fn is_str_tag(tag: &Tag) -> bool {
    tag.suffix() == "str" && tag.handle() == "tag:yaml.org,2002:"
}

/// Nodes in a tree (the node itself included).
fn node_count(node: &Node) -> usize {
    match &node.value {
        NodeValue::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        NodeValue::Map(entries) => 1 + entries.iter().map(|e| node_count(&e.value)).sum::<usize>(),
        _ => 1,
    }
}

fn describe_value(value: &NodeValue) -> String {
    match value {
        NodeValue::Null => "null".to_string(),
        NodeValue::Bool(b) => format!("the boolean {b}"),
        NodeValue::Int(i) => format!("the integer {i}"),
        NodeValue::Float(f) => format!("the number {f}"),
        NodeValue::Str(_) => "a string".to_string(),
        NodeValue::Seq(_) => "a list".to_string(),
        NodeValue::Map(_) => "a mapping".to_string(),
    }
}

/// `key` of a line `  key: ...` (a plain key only).
fn key_of_line(line: &str) -> Option<&str> {
    let trimmed = line.trim_start().trim_start_matches("- ");
    let (key, _) = trimmed.split_once(':')?;
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    plain.then_some(key)
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> NodeValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeValue::Float(f64::NAN),
        _ => {}
    }
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x")
        && digits(hex, 16)
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return NodeValue::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && digits(oct, 8)
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return NodeValue::Int(i);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits(unsigned, 10) {
        if let Ok(i) = text.parse::<i64>() {
            return NodeValue::Int(i);
        }
        return NodeValue::Str(text.to_string());
    }
    let is_float = {
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
            None => (unsigned, None),
        };
        let mantissa_ok = match mantissa.split_once('.') {
            Some((a, b)) => {
                (digits(a, 10) || a.is_empty())
                    && (digits(b, 10) || b.is_empty())
                    && !(a.is_empty() && b.is_empty())
            }
            None => digits(mantissa, 10),
        };
        let exponent_ok =
            exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
        mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some())
    };
    if is_float && let Ok(f) = text.parse::<f64>() {
        return NodeValue::Float(f);
    }
    NodeValue::Str(text.to_string())
}

/// Every file read while loading, to map positions back later.
#[derive(Clone, Debug, Default)]
pub(crate) struct SourceMap {
    pub files: BTreeMap<PathBuf, Arc<SourceFile>>,
    /// The merged environment file (each node remembers its own file).
    pub settings: Option<Arc<Node>>,
}

impl SourceMap {
    pub fn insert(&mut self, file: Arc<SourceFile>) {
        self.files.insert(file.path.to_path_buf(), file);
    }

    pub fn resolve(&self, infra_dir: &Path, file: &Path) -> Option<&SourceFile> {
        self.files
            .get(file)
            .or_else(|| self.files.get(&infra_dir.join(file)))
            .map(|f| &**f)
    }

    pub fn locate_setting(&self, field: &str) -> Option<Location> {
        locate_in_tree(self.settings.as_ref()?, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<(String, usize, String)> {
        let (_, errors) = SourceFile::parse(Path::new("t.yaml"), text);
        errors
            .into_iter()
            .map(|e| (e.field.clone(), e.line, e.message.clone()))
            .collect()
    }

    #[test]
    fn key_errors_name_the_path_of_their_mapping() {
        let errors = errors_of("a:\n  list:\n    - x: 1\n      x: 2\n  ok: 1\n  ok: 3\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, "a.list[0].x");
        assert_eq!(errors[0].1, 4);
        assert!(errors[0].2.contains("duplicate key `x`"), "{errors:?}");
        assert_eq!(errors[1].0, "a.ok");
        assert_eq!(errors[1].1, 6);

        let errors = errors_of("top:\n  inner:\n    ? [a, b]\n    : 1\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "top.inner");
        assert!(errors[0].2.contains("mapping key must be a plain value"));
    }
}
