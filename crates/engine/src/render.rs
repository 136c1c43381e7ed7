//! Text rendering: plans (Terraform-like), YAML documents and diffs.
//!
//! A plan reads like a review:
//!
//! ```text
//! envctl plan for environment "dev"
//!
//! Resource actions are indicated with the following symbols:
//!   + create
//!   ~ update in-place
//!
//! envctl will perform the following actions:
//!
//!   # app.object.configmap/app/a will be created
//!     + apiVersion: v1
//!     + kind: ConfigMap
//!
//!   # app.object.configmap/app/b will be updated in-place
//!     @@ -1,4 +1,4 @@
//!       apiVersion: v1
//!     - data: 1
//!     + data: 2
//!     ~ data.password: (sensitive value)
//!
//! Plan: 1 to add, 1 to change, 0 to destroy.
//! ```
//!
//! Colour (green `+`, yellow `~`, red `-`, bold headers) only when the caller asks for it; the
//! caller decides from the terminal and `NO_COLOR`.

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::desired::Desired;
use crate::plan::{Action, Plan, ResourceChange};
use crate::redact::{SENSITIVE, redact_with};
use crate::release::{ObjectAction, ObjectChange};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";

/// Indentation of a change's header and of its body.
const HEADER_INDENT: &str = "  ";
const BODY_INDENT: &str = "    ";

/// `value` as block YAML (serde-saphyr), ending in a newline. Map keys keep their order, so
/// the output is as deterministic as the input.
pub fn to_yaml(value: &Value) -> String {
    let mut text = serde_saphyr::to_string(value)
        .unwrap_or_else(|_| serde_json::to_string_pretty(value).unwrap_or_default());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Every desired document as one multi-document YAML stream (for `cargo xtask render`), each
/// document preceded by `---` and a `# <address>` comment. Sensitive values are redacted.
pub fn render_yaml_documents(documents: &[Desired]) -> String {
    let mut out = String::new();
    for desired in documents {
        out.push_str("---\n# ");
        out.push_str(&desired.address.to_string());
        out.push('\n');
        out.push_str(&to_yaml(&redact_with(&desired.doc, &desired.sensitivity)));
    }
    out
}

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

fn header(change: &ResourceChange) -> String {
    let what = match &change.action {
        Action::Create => "will be created".to_owned(),
        Action::Update => "will be updated in-place".to_owned(),
        Action::Delete => "will be destroyed".to_owned(),
        Action::Replace { reason } => format!("must be replaced ({reason})"),
        Action::NoOp => "is up to date".to_owned(),
    };
    let after = if change.waits_for.is_empty() || change.action == Action::Delete {
        String::new()
    } else {
        format!(" (after {})", change.waits_for.join(", "))
    };
    format!("# {} {what}{after}", change.address)
}

fn push_line(out: &mut String, text: &str) {
    out.push_str(BODY_INDENT);
    out.push_str(text);
    out.push('\n');
}

fn push_prefixed(out: &mut String, painter: &Painter, sign: &str, style: &str, yaml: &str) {
    for line in yaml.lines() {
        push_line(out, &painter.paint(style, &format!("{sign} {line}")));
    }
}

/// A unified diff (3 lines of context, `@@` hunk headers) of two YAML texts.
fn push_diff(out: &mut String, painter: &Painter, old: &str, new: &str) {
    let diff = TextDiff::from_lines(old, new);
    let unified = diff.unified_diff();
    let mut unified = unified;
    unified.context_radius(3);
    for hunk in unified.iter_hunks() {
        push_line(out, &hunk.header().to_string());
        for change in hunk.iter_changes() {
            let line = change.value().trim_end_matches('\n');
            let (sign, style) = match change.tag() {
                ChangeTag::Delete => ("-", RED),
                ChangeTag::Insert => ("+", GREEN),
                ChangeTag::Equal => (" ", ""),
            };
            let text = format!("{sign} {line}");
            let text = if style.is_empty() {
                text
            } else {
                painter.paint(style, &text)
            };
            push_line(out, &text);
        }
    }
}

fn render_change(out: &mut String, painter: &Painter, change: &ResourceChange) {
    let redact = |doc: &Option<Value>| {
        doc.as_ref()
            .map(|d| to_yaml(&redact_with(d, &change.sensitivity)))
    };
    let before = redact(&change.before);
    let after = redact(&change.after);
    out.push_str(HEADER_INDENT);
    out.push_str(&painter.paint(BOLD, &header(change)));
    out.push('\n');
    match (&change.action, before, after) {
        (Action::Delete, Some(before), _) => push_prefixed(out, painter, "-", RED, &before),
        (_, Some(before), Some(after)) => push_diff(out, painter, &before, &after),
        (_, None, Some(after)) => push_prefixed(out, painter, "+", GREEN, &after),
        (_, Some(before), None) => push_prefixed(out, painter, "-", RED, &before),
        (_, None, None) => {}
    }
    for path in &change.sensitive_changes {
        let shown = if path.is_empty() { "(document)" } else { path };
        push_line(
            out,
            &painter.paint(YELLOW, &format!("~ {shown}: {SENSITIVE}")),
        );
    }
    if let Some(objects) = &change.objects {
        render_objects(out, painter, change, objects);
    }
    if !change.drift.is_empty() {
        push_line(out, "Changed outside envctl (will be overwritten):");
        for drift in &change.drift {
            push_line(out, &format!("  {drift}"));
        }
    }
    for note in &change.notes {
        push_line(out, &format!("Note: {note}"));
    }
}

/// What an install or upgrade does to the release's objects: one line per object, its changed
/// fields under it; or, when nothing rendered changes, says so.
fn render_objects(
    out: &mut String,
    painter: &Painter,
    change: &ResourceChange,
    objects: &[ObjectChange],
) {
    if objects.is_empty() {
        let part = |key: &str| {
            change.before.as_ref().and_then(|b| b.get(key))
                != change.after.as_ref().and_then(|a| a.get(key))
        };
        let what = match (part("values"), part("chart")) {
            (true, true) => "values and chart changed",
            (true, false) => "values changed",
            (false, true) => "chart changed",
            (false, false) => "nothing changed",
        };
        push_line(out, &format!("Objects: {what}, no object changes"));
        return;
    }
    push_line(
        out,
        if change.before.is_none() {
            "Objects the install creates:"
        } else {
            "Objects the upgrade changes (server-side dry run):"
        },
    );
    for object in objects {
        for (action, line) in object.redacted().text_lines() {
            let style = match action {
                ObjectAction::Create => GREEN,
                ObjectAction::Update => YELLOW,
                ObjectAction::Delete => RED,
            };
            push_line(out, &painter.paint(style, &format!("  {line}")));
        }
    }
}

impl Plan {
    /// The plan as text for a terminal or a CI log; see the [`crate::render`] module docs.
    /// `color` adds ANSI colours; pass `false` when stdout is not a terminal or `NO_COLOR` is
    /// set. No-op changes are not shown.
    pub fn render_text(&self, color: bool) -> String {
        let painter = Painter { color };
        let mut out = format!("envctl plan for environment {:?}\n\n", self.environment);
        if !self.has_changes() {
            out.push_str(&painter.paint(
                BOLD,
                "No changes. Your environment matches the configuration.",
            ));
            out.push('\n');
            return out;
        }

        let used = |pred: fn(&Action) -> bool| self.changes.iter().any(|c| pred(&c.action));
        out.push_str("Resource actions are indicated with the following symbols:\n");
        let legend: [(bool, &str, &str, &str); 4] = [
            (used(|a| *a == Action::Create), "  +", GREEN, "create"),
            (
                used(|a| *a == Action::Update),
                "  ~",
                YELLOW,
                "update in-place",
            ),
            (used(|a| *a == Action::Delete), "  -", RED, "destroy"),
            (
                used(|a| matches!(a, Action::Replace { .. })),
                "-/+",
                YELLOW,
                "destroy and then create replacement",
            ),
        ];
        for (shown, symbol, style, meaning) in legend {
            if shown {
                out.push_str(&format!("{} {meaning}\n", painter.paint(style, symbol)));
            }
        }
        out.push_str("\nenvctl will perform the following actions:\n");
        for change in self.changes.iter().filter(|c| c.action != Action::NoOp) {
            out.push('\n');
            render_change(&mut out, &painter, change);
        }
        out.push('\n');
        out.push_str(&painter.paint(BOLD, &self.summary().to_string()));
        out.push('\n');
        out
    }
}
