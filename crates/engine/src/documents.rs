//! Multi-document YAML streams: where one document ends and the next begins.
//!
//! The one splitter of the project, for streams read as text and parsed document by document
//! (helm's rendered manifests, fetched upstream files), so that a document that does not parse
//! is named by where it starts. (`config` reads `infra/` with a YAML event parser, which sees
//! document boundaries itself and keeps every node's position.)
//!
//! The rules are YAML 1.2's markers, which are recognised only at the start of a line:
//! - `---` alone or followed by a space or tab starts a document. Anything after it on the
//!   line (`--- |`, `--- {a: 1}`, `--- !!map`) belongs to that document, so the document's
//!   text then starts with the marker line itself, which a YAML parser reads as the explicit
//!   start it is (a marker followed only by a comment is left out);
//! - `...` alone or followed by a space or tab ends a document; text after it, up to the next
//!   `---`, is a new (bare) document;
//! - `%` directives (`%YAML 1.2`) between documents belong to the document they precede;
//! - `----` or `---x` are content, not markers; a marker inside an indented block scalar is
//!   indented and so is content too;
//! - `\r\n` and `\n` both end lines; a leading byte order mark is dropped.
//!
//! Documents holding only blank lines and comments (helm prints one per template that renders
//! nothing) are left out.

/// One document of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlDocument {
    /// The document's text, lines ended by `\n`. It starts with the `---` line when that line
    /// carries content, and with the directives that preceded it, if any.
    pub text: String,
    /// The 1-based line of the stream on which `text` starts.
    pub line: usize,
}

/// True if `line` (without its line break) is the marker `marker` (`---` or `...`), alone or
/// followed by a space or tab; the second value is what follows the marker.
fn marker<'l>(line: &'l str, marker: &str) -> Option<&'l str> {
    let rest = line.strip_prefix(marker)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// True if `text` holds nothing but blank lines and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// True for a line with something besides spaces and a comment.
fn has_content(rest: &str) -> bool {
    let rest = rest.trim();
    !rest.is_empty() && !rest.starts_with('#')
}

struct Splitter {
    docs: Vec<YamlDocument>,
    current: String,
    start: usize,
    /// `%` directives waiting for the `---` of their document.
    directives: String,
    directives_start: usize,
}

impl Splitter {
    fn close(&mut self, next_start: usize) {
        let text = std::mem::take(&mut self.current);
        if !is_blank(&text) {
            self.docs.push(YamlDocument {
                text,
                line: self.start,
            });
        }
        self.start = next_start;
    }
}

/// The non-blank documents of a YAML stream, in order. See the [module docs](self) for the
/// rules.
pub fn split_documents(stream: &str) -> Vec<YamlDocument> {
    let stream = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let mut s = Splitter {
        docs: Vec::new(),
        current: String::new(),
        start: 1,
        directives: String::new(),
        directives_start: 0,
    };
    for (index, raw) in stream.lines().enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = marker(line, "---") {
            s.close(number);
            if !s.directives.is_empty() {
                s.current = std::mem::take(&mut s.directives);
                s.start = s.directives_start;
            }
            if has_content(rest) || !s.current.is_empty() {
                s.current.push_str(line);
                s.current.push('\n');
            } else {
                s.start = number + 1;
            }
        } else if marker(line, "...").is_some() {
            s.close(number + 1);
        } else if line.starts_with('%') && is_blank(&s.current) {
            if s.directives.is_empty() {
                s.directives_start = number;
            }
            s.directives.push_str(line);
            s.directives.push('\n');
        } else {
            if s.current.is_empty() && line.trim().is_empty() {
                // Leading blank lines do not move where the document starts.
                s.start = number + 1;
                continue;
            }
            s.current.push_str(line);
            s.current.push('\n');
        }
    }
    // Directives with no document after them stay visible to the parser, which then says so.
    let directives = std::mem::take(&mut s.directives);
    if !directives.is_empty() {
        s.current.insert_str(0, &directives);
        s.start = s.directives_start;
    }
    s.close(0);
    s.docs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(stream: &str) -> Vec<(usize, String)> {
        split_documents(stream)
            .into_iter()
            .map(|d| (d.line, d.text))
            .collect()
    }

    #[test]
    fn plain_markers_separate_documents() {
        assert_eq!(
            texts("a: 1\n---\nb: 2\n---\nc: 3\n"),
            [
                (1, "a: 1\n".into()),
                (3, "b: 2\n".into()),
                (5, "c: 3\n".into())
            ]
        );
    }

    #[test]
    fn blank_and_comment_only_documents_are_dropped() {
        let stream = "---\n# Source: empty.yaml\n---\n\n---\n# Source: cm.yaml\nkind: ConfigMap\n";
        assert_eq!(
            texts(stream),
            [(6, "# Source: cm.yaml\nkind: ConfigMap\n".into())]
        );
        assert!(split_documents("").is_empty());
        assert!(split_documents("---\n---\n# nothing\n...\n").is_empty());
    }

    #[test]
    fn a_document_may_start_with_comments() {
        let stream = "# leading comment\n# another\na: 1\n---\n# Source: x.yaml\n\nb: 2\n";
        assert_eq!(
            texts(stream),
            [
                (1, "# leading comment\n# another\na: 1\n".into()),
                (5, "# Source: x.yaml\n\nb: 2\n".into())
            ]
        );
    }

    #[test]
    fn content_after_the_start_marker_stays_with_its_document() {
        let stream = "--- {a: 1}\n--- |\n  text\n--- # only a comment\nb: 2\n--- !!map\nc: 3\n";
        assert_eq!(
            texts(stream),
            [
                (1, "--- {a: 1}\n".into()),
                (2, "--- |\n  text\n".into()),
                (5, "b: 2\n".into()),
                (6, "--- !!map\nc: 3\n".into())
            ]
        );
        let parsed: Vec<serde_json::Value> = split_documents(stream)
            .iter()
            .map(|d| serde_saphyr::from_str(&d.text).unwrap())
            .collect();
        assert_eq!(
            parsed,
            [
                serde_json::json!({"a": 1}),
                serde_json::json!("text\n"),
                serde_json::json!({"b": 2}),
                serde_json::json!({"c": 3})
            ]
        );
    }

    #[test]
    fn the_end_marker_closes_a_document() {
        let stream = "a: 1\n...\n---\nb: 2\n... # done\nc: 3\n...\n";
        assert_eq!(
            texts(stream),
            [
                (1, "a: 1\n".into()),
                (4, "b: 2\n".into()),
                (6, "c: 3\n".into())
            ]
        );
    }

    #[test]
    fn crlf_line_ends_are_read_like_lf() {
        let stream = "a: 1\r\n---\r\nb: 2\r\n--- \r\nc: 3\r\n...\r\n";
        assert_eq!(
            texts(stream),
            [
                (1, "a: 1\n".into()),
                (3, "b: 2\n".into()),
                (5, "c: 3\n".into())
            ]
        );
        assert_eq!(
            texts("\u{feff}---\r\nkind: X\r\n"),
            [(2, "kind: X\n".into())]
        );
    }

    #[test]
    fn look_alikes_are_content() {
        let stream = "a: |\n  ---\n  ...\nb: ----\n---x: 1\n";
        assert_eq!(texts(stream), [(1, stream.to_owned())]);
    }

    #[test]
    fn directives_belong_to_the_next_document() {
        let stream = "a: 1\n...\n%YAML 1.2\n---\nb: 2\n";
        let docs = split_documents(stream);
        assert_eq!(
            texts(stream),
            [(1, "a: 1\n".into()), (3, "%YAML 1.2\n---\nb: 2\n".into())]
        );
        let b: serde_json::Value = serde_saphyr::from_str(&docs[1].text).unwrap();
        assert_eq!(b, serde_json::json!({"b": 2}));
    }
}
