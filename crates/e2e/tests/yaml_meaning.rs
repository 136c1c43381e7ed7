//! The same YAML means the same to envctl as to helm (issue 10): helm reads values files as
//! YAML 1.1 (go-yaml v2), envctl reads `infra/` as YAML 1.2 and refuses every plain scalar
//! whose two readings differ. Checked against helm's own reading of the same file: a chart
//! whose only template prints `.Values` as JSON, rendered with `helm template -f`.
//!
//! Both ways: every scalar of the corpus is either refused by envctl (and then helm's reading
//! is the one the error names) or read by envctl exactly as helm reads it; and each refused
//! scalar, quoted or written as true/false or a plain number, is accepted and read alike.

use std::path::Path;
use std::process::Command;

use e2e::InfraCopy;
use serde_json::Value;

/// Plain scalars, as a user might write them after `key: `.
const CORPUS: &[&str] = &[
    // YAML 1.1 booleans and their case variants.
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "y",
    "Y",
    "n",
    "N",
    "yEs",
    // Booleans and nulls both read alike.
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "FALSE",
    "null",
    "Null",
    "~",
    "",
    // Integers: leading zeros (octal in 1.1), underscores, binary, upper-case hex.
    "0644",
    "0755",
    "010",
    "-010",
    "0777",
    "1_000",
    "0b101",
    "0X1F",
    "00",
    "007",
    "08",
    "09",
    "0",
    "7",
    "-7",
    "+7",
    "644",
    "420",
    "0o17",
    "0x1F",
    "0x1f",
    "-0",
    "65535",
    // Floats.
    "1.5",
    ".5",
    "-.5",
    "+.5",
    "1.",
    "1e3",
    "1E3",
    "1.0e+3",
    "0.1e-2",
    "3.14159",
    // Base 60 (YAML 1.1) and times.
    "1:30",
    "190:20:30",
    "12:30:00",
    "4:30",
    // Strings that look like something else.
    "2001-12-14",
    "2001-12-14T21:59:43.10-05:00",
    "1.2.3",
    "v1.2",
    "10.0.0.1",
    "0.0.0.0/0",
    "12h",
    "4h",
    "100m",
    "128Mi",
    "1Gi",
    "1e",
    "e3",
    "0x",
    "0o8",
    "NaN",
    "Infinity",
    "--",
    "a:b",
    "http://x",
    "hello",
    "yes please",
    "on-call",
    "nope",
    "Off-Road",
];

fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: echo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/values.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: echo\ndata:\n  values: {{ toJson .Values | quote }}\n",
    )
    .unwrap();
}

/// `.Values` as helm reads `values_file`.
fn helm_reading(chart: &Path, values_file: &Path) -> serde_json::Map<String, Value> {
    let out = Command::new(e2e::helm_binary())
        .arg("template")
        .arg("echo")
        .arg(chart)
        .arg("-f")
        .arg(values_file)
        .output()
        .expect("running helm template");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("values: "))
        .expect("the rendered values");
    let json: String = serde_json::from_str(line).expect("a quoted JSON string");
    serde_json::from_str(&json).expect("the values as JSON")
}

/// How envctl describes a value in its messages ("the boolean true", "the integer 420").
fn describe(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => format!("the boolean {b}"),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("the integer {}", f as i64),
            _ => format!("the number {n}"),
        },
        Some(Value::String(_)) => "a string".into(),
        Some(other) => format!("{other}"),
    }
}

fn same(envctl: Option<&Value>, helm: Option<&Value>) -> bool {
    match (envctl, helm) {
        // helm drops a key whose value is null (null removes a chart default).
        (Some(Value::Null) | None, Some(Value::Null) | None) => true,
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// envctl's reading of the values file of release `dex` in a copy of infra/ holding `text`:
/// the values, or the errors as (line, message).
fn envctl_reading(text: &str) -> Result<serde_json::Map<String, Value>, Vec<(usize, String)>> {
    let infra = InfraCopy::new();
    infra.write("sso/dex.values.yaml", text);
    let file = infra.path().join("sso/dex.values.yaml");
    match config::load(&infra.path(), Some("kwok"), &xtask::REGISTRY) {
        Ok(env) => Ok(env
            .release("dex")
            .expect("release dex")
            .values
            .value
            .as_object()
            .cloned()
            .unwrap_or_default()),
        Err(errors) => Err(errors
            .iter()
            .map(|e| {
                assert_eq!(e.file, file, "an error elsewhere: {e}");
                (e.line, format!("{e}"))
            })
            .collect()),
    }
}

#[test]
fn values_mean_the_same_to_envctl_and_helm() {
    let dir = tempfile_dir();
    let chart = dir.join("chart");
    write_chart(&chart);

    let file_of = |scalars: &[&str]| -> String {
        scalars
            .iter()
            .enumerate()
            .map(|(i, s)| format!("k{i}: {s}\n"))
            .collect()
    };

    // Pass 1: the whole corpus; envctl refuses some lines.
    let text = file_of(CORPUS);
    let values_file = dir.join("all.yaml");
    std::fs::write(&values_file, &text).unwrap();
    let helm_all = helm_reading(&chart, &values_file);
    let refused = envctl_reading(&text).expect_err("the corpus holds YAML 1.1 scalars");
    let mut refused_lines = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for (line, message) in &refused {
        let i = line - 1;
        refused_lines.insert(i);
        let scalar = CORPUS[i];
        let helm = helm_all.get(&format!("k{i}"));
        // The error says what helm makes of it; that is what helm made of it. (Base-60
        // numbers are refused for YAML 1.1 itself; go-yaml keeps them as strings.)
        let expected = if message.contains("base-60") {
            assert_eq!(helm, Some(&Value::String(scalar.into())), "{scalar}");
            continue;
        } else {
            format!("but {} to helm", describe(helm))
        };
        if !message.contains(&expected) || !message.contains(&format!("k{i}")) {
            problems.push(format!(
                "`{scalar}`: helm reads {helm:?}, envctl says: {message}"
            ));
        }
        if !message.contains("quote it") {
            problems.push(format!("`{scalar}`: no hint: {message}"));
        }
    }

    // Pass 2: what envctl accepts, it reads as helm does.
    let accepted: Vec<&str> = (0..CORPUS.len())
        .filter(|i| !refused_lines.contains(i))
        .map(|i| CORPUS[i])
        .collect();
    let text = file_of(&accepted);
    let values_file = dir.join("accepted.yaml");
    std::fs::write(&values_file, &text).unwrap();
    let helm = helm_reading(&chart, &values_file);
    let envctl = envctl_reading(&text).unwrap_or_else(|e| panic!("{e:?}"));
    for (i, scalar) in accepted.iter().enumerate() {
        let key = format!("k{i}");
        if !same(envctl.get(&key), helm.get(&key)) {
            problems.push(format!(
                "`{scalar}`: envctl reads {:?}, helm {:?}",
                envctl.get(&key),
                helm.get(&key)
            ));
        }
    }

    // The other way round: each refused scalar, quoted or spelled as both read it, is accepted
    // and read alike.
    let mut rewritten = Vec::new();
    for &i in &refused_lines {
        let scalar = CORPUS[i];
        rewritten.push(format!("\"{scalar}\""));
        match helm_all.get(&format!("k{i}")) {
            Some(Value::Bool(b)) => rewritten.push(b.to_string()),
            Some(Value::Number(n)) => rewritten.push(n.to_string()),
            _ => {}
        }
    }
    let rewritten: Vec<&str> = rewritten.iter().map(String::as_str).collect();
    let text = file_of(&rewritten);
    let values_file = dir.join("rewritten.yaml");
    std::fs::write(&values_file, &text).unwrap();
    let helm = helm_reading(&chart, &values_file);
    let envctl = envctl_reading(&text).unwrap_or_else(|e| panic!("{e:?}"));
    for (i, scalar) in rewritten.iter().enumerate() {
        let key = format!("k{i}");
        if !same(envctl.get(&key), helm.get(&key)) {
            problems.push(format!(
                "`{scalar}`: envctl reads {:?}, helm {:?}",
                envctl.get(&key),
                helm.get(&key)
            ));
        }
    }

    eprintln!(
        "YAML corpus: {} scalars, {} refused, {} read alike; {} rewritten forms read alike",
        CORPUS.len(),
        refused_lines.len(),
        accepted.len(),
        rewritten.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(refused_lines.len() >= 20, "{refused_lines:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(e2e::unique_name("envctl-yaml"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
