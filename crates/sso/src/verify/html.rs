//! Just enough HTML reading for `verify`: the forms of a page and their inputs.

/// One `<form>` with its inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    /// The `action` attribute, entities decoded (empty: the page itself).
    pub action: String,
    /// `get` or `post`, lower case.
    pub method: String,
    /// `(name, type, value)` of each `<input>`, in order.
    pub inputs: Vec<(String, String, String)>,
    /// Names of `<button>`s with a name.
    pub buttons: Vec<String>,
}

impl Form {
    /// The form has a password input.
    pub fn is_password_form(&self) -> bool {
        self.inputs.iter().any(|(_, kind, _)| kind == "password")
    }

    /// The name of the password input.
    pub fn password_field(&self) -> Option<&str> {
        self.inputs
            .iter()
            .find(|(_, kind, _)| kind == "password")
            .map(|(name, _, _)| name.as_str())
    }

    /// The name of the user name input: the first text or email input.
    pub fn login_field(&self) -> Option<&str> {
        self.inputs
            .iter()
            .find(|(_, kind, _)| kind == "text" || kind == "email")
            .map(|(name, _, _)| name.as_str())
    }

    /// Hidden inputs, to send back as they are.
    pub fn hidden(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inputs
            .iter()
            .filter(|(_, kind, _)| kind == "hidden")
            .map(|(name, _, value)| (name.as_str(), value.as_str()))
    }
}

/// Every form of `page`.
pub fn forms(page: &str) -> Vec<Form> {
    let lower = page.to_ascii_lowercase();
    let mut forms = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<form").map(|i| at + i) {
        let end = lower[start..]
            .find("</form")
            .map_or(page.len(), |i| start + i);
        let tag_end = lower[start..].find('>').map_or(end, |i| start + i);
        let tag = &page[start..tag_end];
        let body = &page[tag_end.min(end)..end];
        let mut inputs = Vec::new();
        let mut buttons = Vec::new();
        for (element, attributes) in tags(body) {
            match element.as_str() {
                "input" => inputs.push((
                    attribute(&attributes, "name").unwrap_or_default(),
                    attribute(&attributes, "type")
                        .unwrap_or_else(|| "text".into())
                        .to_ascii_lowercase(),
                    attribute(&attributes, "value").unwrap_or_default(),
                )),
                "button" => buttons.extend(attribute(&attributes, "name")),
                _ => {}
            }
        }
        forms.push(Form {
            action: attribute(tag, "action").unwrap_or_default(),
            method: attribute(tag, "method")
                .unwrap_or_else(|| "get".into())
                .to_ascii_lowercase(),
            inputs,
            buttons,
        });
        at = end.max(start + 1);
    }
    forms
}

/// The `href`s of the links of `page`, entities decoded.
pub fn links(page: &str) -> Vec<String> {
    tags(page)
        .into_iter()
        .filter(|(element, _)| element == "a")
        .filter_map(|(_, attributes)| attribute(&attributes, "href"))
        .collect()
}

/// The visible text of `page`, shortened to `max` characters: for error messages.
pub fn text_excerpt(page: &str, max: usize) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    let mut skipping = false;
    let lower = page.to_ascii_lowercase();
    let mut i = 0;
    let bytes = page.as_bytes();
    while i < bytes.len() {
        if lower[i..].starts_with("<script") || lower[i..].starts_with("<style") {
            skipping = true;
        }
        if skipping && (lower[i..].starts_with("</script") || lower[i..].starts_with("</style")) {
            skipping = false;
        }
        let c = page[i..].chars().next().unwrap_or(' ');
        if c == '<' {
            in_tag = true;
        } else if c == '>' {
            in_tag = false;
            text.push(' ');
        } else if !in_tag && !skipping {
            text.push(c);
        }
        i += c.len_utf8();
    }
    let text = decode_entities(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text
    }
}

/// `(element, attributes text)` of every start tag.
fn tags(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if !name.is_empty() {
            out.push((name.clone(), tag[name.len()..].to_string()));
        }
        rest = &rest[end.min(rest.len())..];
    }
    out
}

/// The value of attribute `name` in a tag's attribute text, entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| from + i) {
        from = i + name.len();
        let before_ok = i == 0
            || lower.as_bytes()[i - 1].is_ascii_whitespace()
            || lower.as_bytes()[i - 1] == b'"';
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or(""),
        };
        return Some(decode_entities(raw));
    }
    None
}

/// The character references HTML templates escape: `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`,
/// `&#NN;`, `&#xNN;`.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like Dex v2.44's web/templates/password.html.
    const DEX_LOGIN: &str = r#"<div class="theme-panel">
  <h2 class="theme-heading">Log in to Your Account</h2>
  <form method="post" action="/dex/auth/local/login?back=&amp;state=abc">
    <div class="theme-form-row">
      <input tabindex="1" required id="login" name="login" type="text" class="theme-form-input" placeholder="email address" autofocus/>
    </div>
    <div class="theme-form-row">
      <input tabindex="2" required id="password" name="password" type="password" class="theme-form-input" placeholder="password"/>
    </div>
    <button tabindex="3" id="submit-login" type="submit" class="dex-btn theme-btn--primary">Login</button>
  </form>
</div>"#;

    #[test]
    fn the_dex_login_form_is_found() {
        let forms = forms(DEX_LOGIN);
        assert_eq!(forms.len(), 1);
        let form = &forms[0];
        assert_eq!(form.action, "/dex/auth/local/login?back=&state=abc");
        assert_eq!(form.method, "post");
        assert!(form.is_password_form());
        assert_eq!(form.login_field(), Some("login"));
        assert_eq!(form.password_field(), Some("password"));
        assert_eq!(form.hidden().count(), 0);
    }

    #[test]
    fn approval_forms_links_and_text() {
        let page = r#"<form method="post"><input type="hidden" name="req" value="r1"/>
            <input type="hidden" name="approval" value="approve"><button type="submit">Grant Access</button></form>
            <a href="/dex/auth/github?state=1&amp;x=2">Log in with GitHub</a><script>var x = 1;</script>"#;
        let forms = forms(page);
        assert_eq!(forms.len(), 1);
        assert!(!forms[0].is_password_form());
        assert_eq!(
            forms[0].hidden().collect::<Vec<_>>(),
            [("req", "r1"), ("approval", "approve")]
        );
        assert_eq!(links(page), ["/dex/auth/github?state=1&x=2"]);
        assert_eq!(text_excerpt(page, 100), "Grant Access Log in with GitHub");
        assert_eq!(text_excerpt("<p>a &amp; b</p>", 3), "a &…");
    }

    #[test]
    fn entities_decode() {
        assert_eq!(decode_entities("a&amp;b&#39;c&#x2F;d&nope"), "a&b'c/d&nope");
    }
}
