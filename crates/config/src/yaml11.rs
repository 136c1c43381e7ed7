//! How helm and kubectl read a plain YAML scalar.
//!
//! Both read YAML with go-yaml v2 (through sigs.k8s.io/yaml), which follows YAML 1.1: `yes`,
//! `on`, `y` are booleans, `0644` is octal, `1_000` is 1000. envctl reads `infra/` with the
//! YAML 1.2 core schema. [`resolve`] is go-yaml v2's resolution (its `resolve.go`), so that a
//! plain scalar whose two readings differ can be refused instead of meaning one thing here and
//! another to `helm -f` / `kubectl apply -f` of the same file.

use crate::yaml::NodeValue;

/// A plain scalar as go-yaml v2 resolves it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    /// Integers, kept wide: go-yaml falls back to uint64.
    Int(i128),
    Float(f64),
    Str,
    /// `<<`, the merge key.
    Merge,
}

impl Scalar {
    /// Whether envctl's reading means the same.
    pub fn same_as(&self, ours: &NodeValue) -> bool {
        match (self, ours) {
            (Scalar::Null, NodeValue::Null) | (Scalar::Str, NodeValue::Str(_)) => true,
            (Scalar::Bool(a), NodeValue::Bool(b)) => a == b,
            (Scalar::Int(a), NodeValue::Int(b)) => *a == i128::from(*b),
            (Scalar::Float(a), NodeValue::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            // 1.0 and 1 are the same number once in JSON (and helm reads every number as
            // a float64).
            #[allow(clippy::cast_precision_loss)]
            (Scalar::Int(a), NodeValue::Float(b)) => (*a as f64) == *b,
            #[allow(clippy::cast_precision_loss)]
            (Scalar::Float(a), NodeValue::Int(b)) => *a == (*b as f64),
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".to_string(),
            Scalar::Bool(b) => format!("the boolean {b}"),
            Scalar::Int(i) => format!("the integer {i}"),
            Scalar::Float(f) => format!("the number {f}"),
            Scalar::Str => "a string".to_string(),
            Scalar::Merge => "a merge key (the aliased mapping's keys are merged in)".to_string(),
        }
    }
}

/// go-yaml v2's `resolve` of an untagged plain scalar.
pub(crate) fn resolve(text: &str) -> Scalar {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        "<<" => return Scalar::Merge,
        _ => {}
    }
    match text.as_bytes()[0] {
        b'.' => go_parse_float(text).map_or(Scalar::Str, Scalar::Float),
        b'+' | b'-' | b'0'..=b'9' => {
            // A timestamp stays a string when decoded into interface{} (go-yaml v2).
            let plain: String = text.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Scalar::Int(i);
            }
            if is_yaml_style_float(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return Scalar::Float(f);
            }
            Scalar::Str
        }
        _ => Scalar::Str,
    }
}

/// YAML 1.1's base-60 numbers (`1:30` is 90): go-yaml v2 reads them as strings, YAML 1.1
/// itself (and PyYAML) as numbers; refused so that no reader can take them either way.
pub(crate) fn is_sexagesimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int_part, fraction) = match unsigned.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (unsigned, None),
    };
    let mut parts = int_part.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '_');
    !rest.is_empty()
        && digits(first)
        && first.starts_with(|c: char| c.is_ascii_digit())
        && rest
            .iter()
            .all(|p| p.len() <= 2 && digits(p) && p.parse::<u32>().is_ok_and(|n| n < 60))
        && fraction.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit() || c == '_'))
        && (fraction.is_none() || !first.starts_with('0') || first == "0")
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i128> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    let value = i128::from(magnitude);
    if negative {
        (value <= i128::from(i64::MAX) + 1).then_some(-value)
    } else {
        Some(value)
    }
}

/// go-yaml v2's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", b)) => digits(b),
        Some((a, b)) => digits(a) && (b.is_empty() || digits(b)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms go-yaml reaches it with.
fn go_parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['-', '+']);
    // Rust accepts "inf"/"nan" words; Go too, but go-yaml never gets here with them except
    // after a `.`, where neither parses.
    if body.starts_with(|c: char| c.is_ascii_alphabetic()) || body.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_of_yaml_1_1() {
        for t in ["yes", "Yes", "YES", "on", "ON", "y", "Y"] {
            assert_eq!(resolve(t), Scalar::Bool(true), "{t}");
        }
        for t in ["no", "NO", "off", "Off", "n", "N"] {
            assert_eq!(resolve(t), Scalar::Bool(false), "{t}");
        }
        assert_eq!(resolve("yEs"), Scalar::Str);
    }

    #[test]
    fn integers_as_go_parses_them() {
        assert_eq!(resolve("0644"), Scalar::Int(420));
        assert_eq!(resolve("-010"), Scalar::Int(-8));
        assert_eq!(resolve("0x1F"), Scalar::Int(31));
        assert_eq!(resolve("0X1F"), Scalar::Int(31));
        assert_eq!(resolve("0o17"), Scalar::Int(15));
        assert_eq!(resolve("0b101"), Scalar::Int(5));
        assert_eq!(resolve("1_000"), Scalar::Int(1000));
        assert_eq!(resolve("+12"), Scalar::Int(12));
        assert_eq!(
            resolve("18446744073709551615"),
            Scalar::Int(18_446_744_073_709_551_615)
        );
        assert_eq!(resolve("08"), Scalar::Float(8.0));
        assert_eq!(resolve("1e3"), Scalar::Float(1000.0));
        assert_eq!(resolve(".5"), Scalar::Float(0.5));
        assert_eq!(resolve("1:30"), Scalar::Str);
        assert_eq!(resolve("2001-12-14"), Scalar::Str);
        assert_eq!(resolve("1.2.3"), Scalar::Str);
    }

    #[test]
    fn base_60() {
        for t in ["1:30", "190:20:30", "-1:30", "1:30.5"] {
            assert!(is_sexagesimal(t), "{t}");
        }
        for t in [
            "1:", ":30", "1:60", "12:345", "a:1", "10.0.0.1", "1.30", "http://x",
        ] {
            assert!(!is_sexagesimal(t), "{t}");
        }
    }
}
