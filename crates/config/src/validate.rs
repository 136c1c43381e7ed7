//! Checks of single values: DNS names, bcrypt hashes, e-mail addresses, digests.

/// RFC 1123 label: 1-63 of `a-z0-9-`, starting and ending alphanumeric.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("it is {} characters long (at most 63)", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{c}` is not allowed (only lowercase letters, digits and `-`)"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A Helm release name: a DNS label of at most 53 characters (Helm's own limit).
pub(crate) fn release_name(s: &str) -> Result<(), String> {
    dns_label(s)?;
    if s.len() > 53 {
        return Err(format!("it is {} characters long (at most 53)", s.len()));
    }
    Ok(())
}

/// A chart name in a repository: letters, digits, `-`, `_`, `.`, starting alphanumeric
/// (never a `-`, which helm would read as a flag).
pub(crate) fn chart_name(s: &str) -> Result<(), String> {
    word(s, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    })
}

/// A chart version (SemVer or a range): no spaces, never starting with `-`.
pub(crate) fn chart_version(s: &str) -> Result<(), String> {
    word(s, |c| {
        c.is_ascii_alphanumeric() || "-_.+~^<>=*,|".contains(c)
    })
}

fn word(s: &str, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if !s.starts_with(|c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '^' | '~' | '<' | '>' | '=')
    }) {
        return Err("it must start with a letter or digit".into());
    }
    if let Some(c) = s.chars().find(|&c| !allowed(c)) {
        return Err(format!("`{c}` is not allowed"));
    }
    Ok(())
}

/// RFC 1123 subdomain: labels joined by `.`, at most 253 characters.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("it is {} characters long (at most 253)", s.len()));
    }
    if s.is_empty() {
        return Err("it is empty".into());
    }
    for label in s.split('.') {
        dns_label(label).map_err(|why| format!("label `{label}`: {why}"))?;
    }
    Ok(())
}

/// A bcrypt hash in modular crypt format: `$2a$10$` + 53 characters of bcrypt's base64.
pub fn bcrypt_hash(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('$').collect();
    let [empty, version, cost, rest] = parts.as_slice() else {
        return Err("it is not of the form $2a$<cost>$<53 characters>".into());
    };
    if !empty.is_empty() || !matches!(*version, "2a" | "2b" | "2y") {
        return Err("it must start with $2a$, $2b$ or $2y$".into());
    }
    let cost_ok = cost.len() == 2 && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c));
    if !cost_ok {
        return Err(format!(
            "the cost `{cost}` must be two digits from 04 to 31"
        ));
    }
    if rest.chars().count() != 53 {
        return Err(format!(
            "salt and hash must be 53 characters, not {}",
            rest.chars().count()
        ));
    }
    if let Some(c) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '/'))
    {
        return Err(format!("`{c}` is not a bcrypt base64 character"));
    }
    Ok(())
}

/// A plain e-mail address: `local@domain.tld`, no spaces.
pub fn email(s: &str) -> Result<(), String> {
    let Some((local, domain)) = s.split_once('@') else {
        return Err("it has no `@`".into());
    };
    if local.is_empty() || s.chars().any(char::is_whitespace) || domain.contains('@') {
        return Err("it is not of the form name@domain".into());
    }
    dns_subdomain(&domain.to_ascii_lowercase()).map_err(|why| format!("domain: {why}"))?;
    if !domain.contains('.') {
        return Err(format!("the domain `{domain}` has no `.`"));
    }
    Ok(())
}

pub(crate) fn sha256_hex(s: &str) -> Result<(), String> {
    if s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(())
    } else {
        Err("a sha256 is 64 lowercase hex digits".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(dns_label("nginx").is_ok());
        assert!(dns_label("Nginx").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_subdomain("staging.example.com").is_ok());
        assert!(dns_subdomain("example..com").is_err());
        assert!(
            bcrypt_hash("$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W").is_ok()
        );
        assert!(bcrypt_hash("password").is_err());
        assert!(bcrypt_hash("$2a$10$short").is_err());
        assert!(email("admin@example.com").is_ok());
        assert!(email("admin").is_err());
        assert!(email("admin@localhost").is_err());
    }
}
