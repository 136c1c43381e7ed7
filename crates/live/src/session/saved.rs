//! Saved plans (`plan --out FILE`, `apply FILE`): what was reviewed is what gets applied.
//!
//! The file is the plan's JSON (redacted like every plan output) wrapped with, per resource,
//! the digest of what apply will send (its `after` document as the plan shows it: the rendered
//! object with its pinned sources' sha256, the release's chart and values, the generated
//! secret's spec) and the fingerprint of the live state it was planned from; the environment,
//! the envctl version, and the sha256 of the whole file. Apply plans again, computes the same
//! digests, and goes on only if every one is equal; otherwise it names the first resource
//! whose configuration or live state changed.
//!
//! Nothing secret is in the file: documents are redacted before they are digested, so a
//! digest never covers an unredacted secret value (a digest of a low-entropy secret would let
//! it be guessed).

use std::path::Path;

use engine::redact::redact_with;
use engine::{Plan, ResourceChange};
use serde_json::{Value, json};

/// The `saved_plan_format` this version writes and reads.
pub const SAVED_FORMAT: &str = "1";

/// Why a saved plan is not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StalePlan {
    #[error(
        "{0} is not a plan saved by `plan --out` of this envctl ({1}); run `cargo xtask plan --out` again"
    )]
    Unreadable(String, String),
    #[error(
        "{0} was modified after `plan --out` wrote it (its sha256 does not match); a plan file is not edited by hand: run `cargo xtask plan --out` again"
    )]
    Edited(String),
    #[error(
        "{file} was saved by envctl {saved}, this is {current}; run `cargo xtask plan --out` again"
    )]
    Version {
        file: String,
        saved: String,
        current: String,
    },
    #[error("{file} is a plan for environment `{saved}`, not `{current}`")]
    Environment {
        file: String,
        saved: String,
        current: String,
    },
    #[error(
        "the saved plan {file} is stale: the {which} of {address} changed since the plan was made; run `cargo xtask plan --out` again and review it"
    )]
    Changed {
        file: String,
        address: String,
        /// `configuration` or `live state`.
        which: &'static str,
    },
}

/// The digest of what apply will send for one change (redacted: see the module docs). A
/// release from a local chart also covers the chart's files (a repository chart is covered by
/// its pinned sha256, which is part of the document).
pub fn configuration_digest(change: &ResourceChange) -> String {
    let after = change
        .after
        .as_ref()
        .map(|d| redact_with(d, &change.sensitivity));
    let local_chart = change
        .after
        .as_ref()
        .and_then(|d| d.pointer("/chart/path"))
        .and_then(Value::as_str)
        .map(|p| local_chart_digest(Path::new(p)));
    engine::canonical_hash(&json!({
        "address": change.address.to_string(),
        "action": change.action.as_str(),
        "after": after,
        "unknown": change.unknown.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "local_chart": local_chart,
    }))
}

/// The sha256 of a local chart: every file's path (relative to the chart) and content, in
/// path order; a chart archive's own sha256. Unreadable parts count as "unreadable", so that
/// a chart that becomes unreadable is a change.
pub fn local_chart_digest(path: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            out.push((dir.display().to_string(), b"unreadable".to_vec()));
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                let content = std::fs::read(&path).unwrap_or_else(|_| b"unreadable".to_vec());
                out.push((relative, content));
            }
        }
    }
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, path, &mut files);
    } else {
        files.push((
            String::new(),
            std::fs::read(path).unwrap_or_else(|_| b"unreadable".to_vec()),
        ));
    }
    files.sort();
    let mut bytes = Vec::new();
    for (name, content) in files {
        bytes.extend(engine::sha256_hex(name.as_bytes()).into_bytes());
        bytes.extend(engine::sha256_hex(&content).into_bytes());
    }
    engine::sha256_hex(&bytes)
}

fn resources(plan: &Plan) -> Vec<Value> {
    // A set, not a scan of every change per fingerprint (thousands of objects).
    let changed: std::collections::BTreeSet<&engine::Address> =
        plan.changes.iter().map(|c| &c.address).collect();
    plan.changes
        .iter()
        .map(|c| {
            json!({
                "address": c.address.to_string(),
                "action": c.action.as_str(),
                "configuration": configuration_digest(c),
                "live": plan.fingerprints.get(&c.address),
            })
        })
        .chain(
            // Live documents that are not changes of their own (e.g. read for outputs).
            plan.fingerprints
                .iter()
                .filter(|(a, _)| !changed.contains(a))
                .map(|(a, f)| json!({"address": a.to_string(), "live": f})),
        )
        .collect()
}

fn file_digest(body: &Value) -> String {
    engine::canonical_hash(body)
}

/// The text of a saved plan.
pub fn save(plan: &Plan, envctl_version: &str) -> String {
    let mut body = json!({
        "saved_plan_format": SAVED_FORMAT,
        "envctl_version": envctl_version,
        "environment": plan.environment,
        "resources": resources(plan),
        "plan": plan.to_json(),
    });
    let digest = file_digest(&body);
    body["sha256"] = Value::String(digest);
    serde_json::to_string_pretty(&body).unwrap_or_default()
}

/// Checks a saved plan (`text`, read from `file`) against the plan made now: the same
/// environment and version, an unedited file, and for every resource the same digest of what
/// will be sent and the same live fingerprint.
pub fn check(file: &str, text: &str, fresh: &Plan, envctl_version: &str) -> Result<(), StalePlan> {
    let unreadable = |why: &str| StalePlan::Unreadable(file.to_owned(), why.to_owned());
    let mut body: Value = serde_json::from_str(text).map_err(|e| unreadable(&e.to_string()))?;
    let Some(Value::String(recorded)) = body.as_object_mut().and_then(|o| o.remove("sha256"))
    else {
        return Err(unreadable("it has no sha256"));
    };
    if body.get("saved_plan_format").and_then(Value::as_str) != Some(SAVED_FORMAT) {
        return Err(unreadable("unknown saved_plan_format"));
    }
    if file_digest(&body) != recorded {
        return Err(StalePlan::Edited(file.to_owned()));
    }
    let saved_version = body["envctl_version"].as_str().unwrap_or_default();
    if saved_version != envctl_version {
        return Err(StalePlan::Version {
            file: file.to_owned(),
            saved: saved_version.to_owned(),
            current: envctl_version.to_owned(),
        });
    }
    let saved_env = body["environment"].as_str().unwrap_or_default();
    if saved_env != fresh.environment {
        return Err(StalePlan::Environment {
            file: file.to_owned(),
            saved: saved_env.to_owned(),
            current: fresh.environment.clone(),
        });
    }
    let changed = |address: &str, which| StalePlan::Changed {
        file: file.to_owned(),
        address: address.to_owned(),
        which,
    };
    let saved: Vec<Value> = body["resources"].as_array().cloned().unwrap_or_default();
    let now = resources(fresh);
    let find = |list: &[Value], address: &str| {
        list.iter()
            .find(|r| r["address"].as_str() == Some(address))
            .cloned()
    };
    for old in &saved {
        let address = old["address"].as_str().unwrap_or_default();
        let Some(new) = find(&now, address) else {
            // Gone from the plan: the configuration no longer declares it, or (a delete) its
            // live object went away.
            let which = if old.get("configuration").is_some() && old["action"] != "delete" {
                "configuration"
            } else {
                "live state"
            };
            return Err(changed(address, which));
        };
        if old.get("configuration") != new.get("configuration") {
            // A change of action with the same document comes from the live side.
            let same_document = old["action"] != new["action"];
            let which = if same_document && old["live"] != new["live"] {
                "live state"
            } else {
                "configuration"
            };
            return Err(changed(address, which));
        }
        if old["live"] != new["live"] {
            return Err(changed(address, "live state"));
        }
    }
    if let Some(new) = now
        .iter()
        .find(|r| find(&saved, r["address"].as_str().unwrap_or_default()).is_none())
    {
        let which = if new.get("configuration").is_some() && new["action"] != "delete" {
            "configuration"
        } else {
            "live state"
        };
        return Err(changed(new["address"].as_str().unwrap_or_default(), which));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Action, Address, ResourceKind};

    fn plan(value: &str, live: &str) -> Plan {
        let a = Address::new("sso", ResourceKind::Object, "configmap.sso.settings").unwrap();
        let b = Address::new("sso", ResourceKind::Object, "configmap.sso.other").unwrap();
        let doc = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": v}});
        let mut plan = Plan::new("dev");
        plan.changes.push(ResourceChange::new(
            a.clone(),
            Action::Update,
            Some(doc("old")),
            Some(doc(value)),
            Default::default(),
        ));
        plan.changes.push(ResourceChange::new(
            b.clone(),
            Action::NoOp,
            Some(doc("x")),
            Some(doc("x")),
            Default::default(),
        ));
        plan.fingerprints.insert(a, live.to_owned());
        plan.fingerprints.insert(b, "fb".to_owned());
        plan
    }

    #[test]
    fn the_same_plan_passes() {
        let text = save(&plan("new", "fa"), "0.1.0");
        check("p.json", &text, &plan("new", "fa"), "0.1.0").unwrap();
    }

    #[test]
    fn an_edited_value_with_the_same_actions_is_a_configuration_change() {
        let text = save(&plan("new", "fa"), "0.1.0");
        let err = check("p.json", &text, &plan("edited", "fa"), "0.1.0").unwrap_err();
        assert_eq!(
            err,
            StalePlan::Changed {
                file: "p.json".into(),
                address: "sso.object.configmap.sso.settings".into(),
                which: "configuration"
            }
        );
    }

    #[test]
    fn a_changed_live_object_is_a_live_state_change() {
        let text = save(&plan("new", "fa"), "0.1.0");
        let err = check("p.json", &text, &plan("new", "changed"), "0.1.0").unwrap_err();
        assert!(
            matches!(
                err,
                StalePlan::Changed {
                    which: "live state",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_local_chart_is_covered_by_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("Chart.yaml"), "name: c\n").unwrap();
        std::fs::write(dir.path().join("templates/a.yaml"), "kind: A\n").unwrap();
        let a = Address::new("sso", ResourceKind::HelmRelease, "dex").unwrap();
        let doc = json!({"release": "dex", "chart": {"chart": "c", "version": "1", "path": dir.path()}, "values": {}});
        let mut plan = Plan::new("dev");
        plan.changes.push(ResourceChange::new(
            a,
            Action::Create,
            None,
            Some(doc),
            Default::default(),
        ));
        let text = save(&plan, "0.1.0");
        check("p.json", &text, &plan, "0.1.0").unwrap();
        std::fs::write(dir.path().join("templates/a.yaml"), "kind: B\n").unwrap();
        let err = check("p.json", &text, &plan, "0.1.0").unwrap_err();
        assert!(
            matches!(
                err,
                StalePlan::Changed {
                    which: "configuration",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_hand_edited_file_is_refused() {
        let text = save(&plan("new", "fa"), "0.1.0");
        let edited = text.replacen("\"update\"", "\"no-op\"", 1);
        assert_ne!(text, edited);
        let err = check("p.json", &edited, &plan("new", "fa"), "0.1.0").unwrap_err();
        assert_eq!(err, StalePlan::Edited("p.json".into()));
    }

    #[test]
    fn another_version_or_environment_is_refused() {
        let text = save(&plan("new", "fa"), "0.1.0");
        assert!(matches!(
            check("p.json", &text, &plan("new", "fa"), "0.2.0"),
            Err(StalePlan::Version { .. })
        ));
        let mut other = plan("new", "fa");
        other.environment = "prod".into();
        assert!(matches!(
            check("p.json", &text, &other, "0.1.0"),
            Err(StalePlan::Environment { .. })
        ));
    }

    #[test]
    fn no_secret_value_reaches_the_file() {
        let a = Address::new("sso", ResourceKind::Object, "secret.sso.creds").unwrap();
        let doc = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "hunter2-very-secret"}});
        let mut plan = Plan::new("dev");
        plan.changes.push(ResourceChange::new(
            a,
            Action::Create,
            None,
            Some(doc),
            engine::redact::Sensitivity::paths(["stringData.password"]),
        ));
        let text = save(&plan, "0.1.0");
        assert!(!text.contains("hunter2"), "{text}");
        let unredacted = engine::canonical_hash(&plan.changes[0].after.clone().unwrap());
        assert!(!text.contains(&unredacted));
    }
}
