//! A small HTTP/1.1 client for `verify`: every request goes to one address (the gateway) with
//! the Host header of its URL, as a browser would send it; redirects are never followed here;
//! cookies are kept by a jar that follows the browser's domain and path rules.

use std::{net::SocketAddr, time::Duration};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request,
    body::Bytes,
    header::{self, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An `http://` URL, split the way the client needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses an absolute `http://host[:port]/path?query` URL.
    pub fn parse(text: &str) -> Option<Url> {
        let rest = text.strip_prefix("http://")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return None;
        }
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(Url {
            host: host.to_ascii_lowercase(),
            port,
            path_and_query,
        })
    }

    /// `location` (absolute or relative, as in a Location header or a form action) resolved
    /// against this URL.
    pub fn join(&self, location: &str) -> Option<Url> {
        if location.starts_with("http://") {
            return Url::parse(location);
        }
        if location.contains("://") || location.starts_with("//") {
            return None;
        }
        let path_and_query = if location.starts_with('/') {
            location.to_string()
        } else if location.starts_with('?') {
            format!("{}{location}", self.path())
        } else {
            let dir = match self.path().rfind('/') {
                Some(i) => &self.path()[..=i],
                None => "/",
            };
            format!("{dir}{location}")
        };
        Some(Url {
            host: self.host.clone(),
            port: self.port,
            path_and_query,
        })
    }

    /// The Host header a browser sends: the port only when it is not 80.
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(&self.path_and_query, |(p, _)| p)
    }

    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let (_, query) = self.path_and_query.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// For output: scheme, authority and path, never the query (it carries `state` and `code`).
    pub fn redacted(&self) -> String {
        let query = if self.path_and_query.contains('?') {
            "?…"
        } else {
            ""
        };
        format!("http://{}{}{query}", self.authority(), self.path())
    }
}

/// `application/x-www-form-urlencoded` decoding of one component.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` encoding of one component.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An answer, body read completely.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }
}

/// Sends one request to `connect` (one connection per request, closed after it).
pub async fn send(
    connect: SocketAddr,
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: Option<String>,
    timeout: Duration,
) -> Result<Response, String> {
    let exchange = async {
        let stream = TcpStream::connect(connect)
            .await
            .map_err(|e| format!("connecting to {connect}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {connect}: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(url.path_and_query.as_str())
            .header(header::HOST, url.authority())
            .header(header::CONNECTION, "close");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let body = body.unwrap_or_default();
        if method == "POST" {
            request = request.header(header::CONTENT_LENGTH, body.len().to_string());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {}: {e}", url.redacted()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the answer to {method} {}: {e}", url.redacted()))?
            .to_bytes();
        driver.abort();
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{method} {}: no answer within {timeout:?}",
            url.redacted()
        )),
    }
}

/// One cookie as a browser keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// The host it was set by (host-only cookie) or its Domain attribute without a leading dot.
    pub domain: String,
    pub host_only: bool,
    pub path: String,
}

/// A browser's cookie jar, for one run: domain matching (RFC 6265 5.1.3), path matching, and
/// removal by `Max-Age<=0` or an `Expires` in the past. Ports do not separate cookies.
#[derive(Clone, Debug, Default)]
pub struct Jar {
    pub cookies: Vec<Cookie>,
}

impl Jar {
    /// Stores the `Set-Cookie` headers of an answer to a request for `url`. Returns the names
    /// set (not removed).
    pub fn store(&mut self, url: &Url, response: &Response) -> Vec<String> {
        let mut set = Vec::new();
        for line in response.headers_named("set-cookie") {
            if let Some(name) = self.store_one(url, line) {
                set.push(name);
            }
        }
        set
    }

    fn store_one(&mut self, url: &Url, line: &str) -> Option<String> {
        let mut parts = line.split(';');
        let (name, value) = parts.next()?.trim().split_once('=')?;
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        let mut domain = None;
        let mut path = None;
        let mut expired = false;
        for attribute in parts {
            let (key, val) = attribute.trim().split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "domain" => {
                    let d = val.trim().trim_start_matches('.').to_ascii_lowercase();
                    if !d.is_empty() {
                        domain = Some(d);
                    }
                }
                "path" if val.starts_with('/') => path = Some(val.trim().to_string()),
                "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                "expires" => expired |= http_date_is_past(val.trim()),
                _ => {}
            }
        }
        if let Some(d) = &domain
            && !domain_matches(&url.host, d)
        {
            // A browser rejects a cookie for a domain the host is not in.
            return None;
        }
        let cookie = Cookie {
            name: name.clone(),
            value,
            host_only: domain.is_none(),
            domain: domain.unwrap_or_else(|| url.host.clone()),
            path: path.unwrap_or_else(|| default_path(url.path())),
        };
        self.cookies.retain(|c| {
            !(c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path)
        });
        if expired {
            return None;
        }
        self.cookies.push(cookie);
        Some(name)
    }

    /// The `Cookie` header for a request to `url`, if any cookie applies.
    pub fn header_for(&self, url: &Url) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| {
                let host_ok = if c.host_only {
                    url.host == c.domain
                } else {
                    domain_matches(&url.host, &c.domain)
                };
                host_ok && path_matches(url.path(), &c.path)
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Names of the cookies a request to `url` would carry.
    pub fn names_for(&self, url: &Url) -> Vec<String> {
        self.header_for(url)
            .map(|h| {
                h.split("; ")
                    .filter_map(|p| p.split_once('=').map(|(n, _)| n.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain
        || (host.ends_with(domain)
            && host[..host.len() - domain.len()].ends_with('.')
            && host.parse::<std::net::IpAddr>().is_err())
}

fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

fn default_path(request: &str) -> String {
    match request.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => request[..i].to_string(),
    }
}

/// True for an IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`) before now; false when unreadable.
fn http_date_is_past(text: &str) -> bool {
    let Some(seconds) = parse_http_date(text) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    seconds < now
}

fn parse_http_date(text: &str) -> Option<i64> {
    let fields: Vec<&str> = text
        .split([' ', '-', ':', ','])
        .filter(|f| !f.is_empty())
        .collect();
    // [weekday, day, month, year, hour, minute, second, GMT]
    if fields.len() < 7 {
        return None;
    }
    let day: i64 = fields[1].parse().ok()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| fields[2].to_ascii_lowercase().starts_with(m))? as i64
        + 1;
    let mut year: i64 = fields[3].parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let (h, m, s): (i64, i64, i64) = (
        fields[4].parse().ok()?,
        fields[5].parse().ok()?,
        fields[6].parse().ok()?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Headers every request of `verify` carries: a browser's Accept (OAuth2 Proxy answers API
/// clients with 401 instead of a redirect) and the cookies of the jar.
pub fn browser_headers(jar: &Jar, url: &Url) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "accept".to_string(),
            "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8".to_string(),
        ),
        ("user-agent".to_string(), "envctl-verify".to_string()),
    ];
    if let Some(cookies) = jar.header_for(url) {
        headers.push(("cookie".to_string(), cookies));
    }
    headers
}

/// True when `value` may go into a header (no control characters).
pub fn header_safe(value: &str) -> bool {
    HeaderValue::from_str(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn urls_parse_join_and_keep_the_port_in_the_host_header() {
        let u = url(
            "http://Dex.example.com:8080/dex/auth?client_id=a&redirect_uri=http%3A%2F%2Fx%2Fcb",
        );
        assert_eq!(u.host, "dex.example.com");
        assert_eq!(u.port, 8080);
        assert_eq!(u.authority(), "dex.example.com:8080");
        assert_eq!(u.path(), "/dex/auth");
        assert_eq!(
            u.query_param("redirect_uri").as_deref(),
            Some("http://x/cb")
        );
        assert_eq!(u.redacted(), "http://dex.example.com:8080/dex/auth?…");
        assert_eq!(url("http://a.b").authority(), "a.b");
        assert_eq!(url("http://a.b").path_and_query, "/");
        let j = u.join("/dex/auth/local?x=1").unwrap();
        assert_eq!(
            (j.authority(), j.path_and_query.as_str()),
            ("dex.example.com:8080".into(), "/dex/auth/local?x=1")
        );
        assert_eq!(u.join("login").unwrap().path(), "/dex/login");
        assert_eq!(
            u.join("http://n.example.com/").unwrap().host,
            "n.example.com"
        );
        assert!(u.join("https://elsewhere/").is_none());
        assert!(Url::parse("https://a/").is_none());
    }

    #[test]
    fn form_encoding_round_trips() {
        let text = "p@ss w+rd/é&=";
        assert_eq!(percent_decode(&form_encode(text)), text);
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    fn response(set_cookies: &[&str]) -> Response {
        Response {
            status: 302,
            headers: set_cookies
                .iter()
                .map(|c| ("Set-Cookie".to_string(), c.to_string()))
                .collect(),
            body: String::new(),
        }
    }

    #[test]
    fn the_jar_follows_domain_path_and_expiry() {
        let app = url("http://nginx.example.com:8080/oauth2/callback?code=x");
        let mut jar = Jar::default();
        let set = jar.store(
            &app,
            &response(&[
                "_oauth2_proxy=abc|1|sig; Path=/; HttpOnly; SameSite=Lax",
                "wide=1; Domain=.example.com; Path=/",
                "foreign=1; Domain=other.com",
                "scoped=1",
            ]),
        );
        assert_eq!(set, ["_oauth2_proxy", "wide", "scoped"]);
        assert_eq!(
            jar.names_for(&url("http://nginx.example.com/")),
            ["_oauth2_proxy", "wide"]
        );
        assert_eq!(
            jar.names_for(&url("http://nginx.example.com/oauth2/x")),
            ["_oauth2_proxy", "wide", "scoped"]
        );
        // Host-only cookies stay on their host; a Domain cookie reaches siblings.
        assert_eq!(jar.names_for(&url("http://dex.example.com/dex")), ["wide"]);
        assert!(jar.names_for(&url("http://example.org/")).is_empty());
        // Expired cookies are removed.
        jar.store(
            &app,
            &response(&[
                "_oauth2_proxy=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "wide=; Domain=example.com; Path=/; Max-Age=0",
            ]),
        );
        assert!(jar.names_for(&url("http://nginx.example.com/")).is_empty());
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert!(http_date_is_past("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!http_date_is_past("Fri, 01 Jan 2100 00:00:00 GMT"));
        assert!(!http_date_is_past("soon"));
    }
}
