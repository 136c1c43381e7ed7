//! `verify`: the check a person does with a browser, against the live environment, through
//! the gateway.
//!
//! Every request goes to one address (the gateway's host port) with the Host header a browser
//! would send for the URL (`nginx.example.com`, or `nginx.example.com:8080` when the host port
//! is not 80), so no `/etc/hosts` entry is needed. Redirects are followed here, one by one, and
//! only to the application's and Dex's hosts; cookies are kept as a browser keeps them.
//!
//! The steps (each ends as a [`Step`], handed to the caller's reporter as soon as it is known):
//! 1. `redirect-to-login`: GET `/` without a session is redirected straight to Dex (no OAuth2
//!    Proxy sign-in page), with OAuth2 Proxy's CSRF cookie;
//! 2. `login-form`: Dex answers with its password form, through redirects only (no connector
//!    to choose);
//! 3. `login`: POSTing the static user's credentials comes back to the application's
//!    `/oauth2/callback` (no approval screen), which sets the session cookie;
//! 4. `app-page`: with that cookie, the application's page (200);
//! 5. `no-session-index` and 6. `no-session-deep-path`: without a cookie, `/index.html` and a
//!    deep path are refused (a redirect to Dex, 401 or 403), not served;
//! 7. `tampered-cookie`: a session cookie with a changed value is refused;
//! 8. `wrong-password`: Dex refuses a wrong password and does not send the browser back.
//!
//! A failed step names the configuration key that most likely causes it. Nothing secret is
//! ever put into a step: no password, cookie value, `state` or `code` (URLs lose their query).

pub mod html;
pub mod http;

use std::{net::SocketAddr, time::Duration};

use serde::Serialize;
use tokio::time::Instant;

use self::http::{Jar, Response, Url};

/// What to check, and where.
pub struct Target {
    /// Where every request is sent (the gateway: `listenAddress:hostPort`).
    pub gateway: SocketAddr,
    /// The application's URL, e.g. `http://nginx.example.com/` (the port when not 80).
    pub app: Url,
    /// Dex's host and port, as the issuer URL names them.
    pub login_host: String,
    pub login_port: u16,
    /// The static user's login (email).
    pub username: String,
    pub password: Password,
    /// Time allowed to each request.
    pub request_timeout: Duration,
}

/// A password: no `Debug`, no `Display`, so it cannot reach an output by accident.
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Password {
        Password(text)
    }
}

/// The outcome of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not run: a step it needs failed.
    Skipped,
}

/// One step, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Stable id, e.g. `redirect-to-login`.
    pub id: &'static str,
    /// What the step checks, in words.
    pub title: &'static str,
    pub outcome: Outcome,
    /// The HTTP status of the answer the step judged (none when no answer came).
    pub status: Option<u16>,
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    /// What was seen (URLs without their query).
    pub detail: String,
    /// On failure: the configuration key that most likely causes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_cause: Option<String>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Every step, in order: `(id, title)`.
pub const STEPS: [(&str, &str); 8] = [
    (
        "redirect-to-login",
        "GET / without a session is redirected to Dex",
    ),
    (
        "login-form",
        "Dex shows its password form, nothing to click before it",
    ),
    (
        "login",
        "the static user's credentials lead back to the app with a session cookie",
    ),
    (
        "app-page",
        "with the session cookie, GET / is the app's page",
    ),
    (
        "no-session-index",
        "without a session, /index.html is refused",
    ),
    (
        "no-session-deep-path",
        "without a session, a deep path is refused",
    ),
    ("tampered-cookie", "a tampered session cookie is refused"),
    ("wrong-password", "a wrong password is refused"),
];

const POLICY_PATHS: &str = "infra/policy/authorization-policy.yaml: spec.rules[].to[].operation.paths (\"/*\" covers every path)";
const CHECK_HEADERS: &str = "infra/mesh/istiod.values.yaml: meshConfig.extensionProviders[].envoyExtAuthzHttp.includeRequestHeadersInCheck (must list `cookie`)";
const DENY_HEADERS: &str = "infra/mesh/istiod.values.yaml: meshConfig.extensionProviders[].envoyExtAuthzHttp.headersToDownstreamOnDeny (must list `set-cookie`)";
const PROVIDER: &str = "infra/mesh/istiod.values.yaml: meshConfig.extensionProviders[] (name, service, port) and infra/policy/authorization-policy.yaml: spec.provider.name";
const REDIRECT_URIS: &str = "infra/sso/dex.values.yaml: config.staticClients[].redirectURIs";
const ISSUER: &str = "infra/sso/oauth2-proxy.values.yaml: config.configFile oidc_issuer_url, and infra/sso/dex.values.yaml: config.issuer";
const PROVIDER_BUTTON: &str =
    "infra/sso/oauth2-proxy.values.yaml: config.configFile skip_provider_button = true";
const APPROVAL: &str = "infra/sso/dex.values.yaml: config.oauth2.skipApprovalScreen";
const CONNECTORS: &str =
    "infra/sso/dex.values.yaml: config.enablePasswordDB (and no other connectors)";
const STATIC_USER: &str =
    "infra/environment.yaml: sso.staticUser (email, hash), or the password given to verify";
const GATEWAY: &str = "infra/environment.yaml: cluster.kind.hostPort and cluster.kind.listenAddress (or --gateway), and the gateway module";
const COOKIE: &str = "infra/sso/oauth2-proxy.values.yaml: config.configFile cookie_domains, cookie_secure and cookie_samesite, and the Secret sso/oauth2-proxy (cookie-secret)";
const REDEEM: &str = "infra/sso/oauth2-proxy.values.yaml: config.configFile oidc_issuer_url (reachable from OAuth2 Proxy), and the client secret in the Secret sso/oauth2-proxy that Dex's staticClients[].secretEnv reads";

/// A step's verdict before timing is added.
struct Verdict {
    outcome: Outcome,
    status: Option<u16>,
    detail: String,
    likely_cause: Option<String>,
}

impl Verdict {
    fn pass(status: Option<u16>, detail: impl Into<String>) -> Verdict {
        Verdict {
            outcome: Outcome::Pass,
            status,
            detail: detail.into(),
            likely_cause: None,
        }
    }

    fn fail(status: Option<u16>, detail: impl Into<String>, cause: &str) -> Verdict {
        Verdict {
            outcome: Outcome::Fail,
            status,
            detail: detail.into(),
            likely_cause: Some(cause.to_string()),
        }
    }
}

/// A browser: a jar and the target.
struct Browser<'a> {
    target: &'a Target,
    jar: Jar,
}

/// What a redirect chain ended on.
struct Landing {
    url: Url,
    response: Response,
    /// Every URL visited, redacted, for messages.
    trail: Vec<String>,
    /// Names of the cookies set along the way, by URL path.
    set: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    fn new(target: &'a Target) -> Browser<'a> {
        Browser {
            target,
            jar: Jar::default(),
        }
    }

    fn known_host(&self, url: &Url) -> bool {
        (url.host == self.target.app.host && url.port == self.target.app.port)
            || (url.host == self.target.login_host && url.port == self.target.login_port)
    }

    fn on_login_host(&self, url: &Url) -> bool {
        url.host == self.target.login_host && url.port == self.target.login_port
    }

    async fn request(
        &mut self,
        method: &str,
        url: &Url,
        body: Option<String>,
    ) -> Result<Response, String> {
        let mut headers = http::browser_headers(&self.jar, url);
        if body.is_some() {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        let response = http::send(
            self.target.gateway,
            method,
            url,
            &headers,
            body,
            self.target.request_timeout,
        )
        .await?;
        self.jar.store(url, &response);
        Ok(response)
    }

    /// Sends a request, then follows redirects while `follow` says so (at most 10).
    async fn visit(
        &mut self,
        method: &str,
        url: Url,
        body: Option<String>,
        follow: impl Fn(&Url) -> bool,
    ) -> Result<Landing, String> {
        let mut trail = vec![url.redacted()];
        let mut set = Vec::new();
        let mut response = self.request(method, &url, body).await?;
        let mut url = url;
        record_set(&mut set, &url, &response);
        for _ in 0..10 {
            if !response.is_redirect() {
                break;
            }
            let Some(next) = response.header("location").and_then(|l| url.join(l)) else {
                break;
            };
            if !self.known_host(&next) || !follow(&next) {
                break;
            }
            trail.push(next.redacted());
            response = self.request("GET", &next, None).await?;
            url = next;
            record_set(&mut set, &url, &response);
        }
        Ok(Landing {
            url,
            response,
            trail,
            set,
        })
    }
}

fn record_set(set: &mut Vec<(String, String)>, url: &Url, response: &Response) {
    for line in response.headers_named("set-cookie") {
        if let Some((name, _)) = line.split(';').next().and_then(|c| c.split_once('=')) {
            set.push((url.path().to_string(), name.trim().to_string()));
        }
    }
}

/// Runs every step, handing each to `report` when it ends. Returns them all.
pub async fn run(target: &Target, mut report: impl FnMut(&Step)) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut push = |index: usize, started: Instant, verdict: Verdict| {
        let (id, title) = STEPS[index];
        let step = Step {
            id,
            title,
            outcome: verdict.outcome,
            status: verdict.status,
            elapsed: started.elapsed(),
            detail: verdict.detail,
            likely_cause: verdict.likely_cause,
        };
        report(&step);
        steps.push(step);
    };
    let skipped = |why: &str| Verdict {
        outcome: Outcome::Skipped,
        status: None,
        detail: format!("not run: {why} failed"),
        likely_cause: None,
    };

    let mut browser = Browser::new(target);
    let started = Instant::now();
    let to_dex = redirect_to_login(&mut browser).await;
    let dex_url = to_dex.as_ref().ok().map(|(url, _)| url.clone());
    push(0, started, to_dex.map_or_else(|v| v, |(_, v)| v));

    let started = Instant::now();
    let form = match &dex_url {
        Some(url) => {
            let (form, verdict) = login_form(&mut browser, url.clone()).await;
            push(1, started, verdict);
            form
        }
        None => {
            push(1, started, skipped("redirect-to-login"));
            None
        }
    };

    let started = Instant::now();
    let back = match &form {
        Some((page, form)) => {
            let (back, verdict) = login(&mut browser, page, form).await;
            push(2, started, verdict);
            back
        }
        None => {
            push(2, started, skipped("login-form"));
            None
        }
    };

    let started = Instant::now();
    let session = match &back {
        Some((url, session_cookies)) => {
            let verdict = app_page(&mut browser, url.clone()).await;
            let ok = verdict.outcome == Outcome::Pass;
            push(3, started, verdict);
            ok.then(|| (browser.jar.clone(), session_cookies.clone()))
        }
        None => {
            push(3, started, skipped("login"));
            None
        }
    };

    for (index, path) in [(4, "/index.html"), (5, "/verify/a/deep/path/index.html")] {
        let started = Instant::now();
        let verdict = refused_without_session(target, path).await;
        push(index, started, verdict);
    }

    let started = Instant::now();
    match session {
        Some((jar, names)) => push(6, started, tampered_cookie(target, jar, &names).await),
        None => push(6, started, skipped("app-page")),
    }

    let started = Instant::now();
    if dex_url.is_some() && form.is_some() {
        push(7, started, wrong_password(target).await);
    } else {
        push(7, started, skipped("login-form"));
    }
    steps
}

/// True when every step passed.
pub fn all_passed(steps: &[Step]) -> bool {
    steps.iter().all(|s| s.outcome == Outcome::Pass)
}

/// Step 1. On success: Dex's URL the app redirected to.
async fn redirect_to_login(browser: &mut Browser<'_>) -> Result<(Url, Verdict), Verdict> {
    let app = browser.target.app.clone();
    let response = match browser.request("GET", &app, None).await {
        Ok(r) => r,
        Err(e) => return Err(Verdict::fail(None, e, GATEWAY)),
    };
    let status = Some(response.status);
    if !response.is_redirect() {
        let text = html::text_excerpt(&response.body, 120);
        return Err(match response.status {
            // OAuth2 Proxy answers its sign-in page with 403 (200 when asked for it).
            200 | 403
                if html::forms(&response.body)
                    .iter()
                    .any(|f| f.action.contains("/oauth2/start")) =>
            {
                Verdict::fail(
                    status,
                    format!("OAuth2 Proxy's sign-in page (a button to click): {text}"),
                    PROVIDER_BUTTON,
                )
            }
            200 => Verdict::fail(
                status,
                format!("the app answered without a login: {text}"),
                POLICY_PATHS,
            ),
            403 => Verdict::fail(
                status,
                format!("refused, not redirected (is the ext_authz provider reachable?): {text}"),
                PROVIDER,
            ),
            404 => Verdict::fail(
                status,
                format!("no route for {}: {text}", app.authority()),
                "infra/gateway/nginx.yaml: the HTTPRoute's spec.hostnames, and infra/gateway/gateway.yaml: the Gateway's listeners",
            ),
            _ => Verdict::fail(status, format!("not a redirect: {text}"), PROVIDER),
        });
    }
    let location = response.header("location").unwrap_or("");
    let Some(next) = app.join(location) else {
        return Err(Verdict::fail(
            status,
            format!("redirected to an unusable location `{location}`"),
            ISSUER,
        ));
    };
    if next.host == app.host && next.port == app.port {
        return Err(Verdict::fail(
            status,
            format!(
                "redirected to {} on the app's host, not to Dex",
                next.redacted()
            ),
            PROVIDER_BUTTON,
        ));
    }
    if !browser.on_login_host(&next) {
        return Err(Verdict::fail(
            status,
            format!(
                "redirected to {}, not to Dex at {}",
                next.redacted(),
                Url {
                    host: browser.target.login_host.clone(),
                    port: browser.target.login_port,
                    path_and_query: "/".into()
                }
                .authority()
            ),
            ISSUER,
        ));
    }
    let expected_callback = format!("http://{}/oauth2/callback", app.authority());
    match next.query_param("redirect_uri") {
        Some(uri) if uri == expected_callback => {}
        Some(uri) => {
            return Err(Verdict::fail(
                status,
                format!("the redirect URI sent to Dex is {uri}, not {expected_callback}"),
                "infra/sso/oauth2-proxy.values.yaml: config.configFile redirect_url (and the Host header the check carries)",
            ));
        }
        None => {
            return Err(Verdict::fail(
                status,
                format!("redirected to {} without a redirect_uri", next.redacted()),
                ISSUER,
            ));
        }
    }
    if response.header("set-cookie").is_none() {
        return Err(Verdict::fail(
            status,
            "redirected to Dex, but without OAuth2 Proxy's CSRF cookie: the callback will be refused",
            DENY_HEADERS,
        ));
    }
    Ok((
        next.clone(),
        Verdict::pass(status, format!("redirected to {}", next.redacted())),
    ))
}

/// Step 2. On success: the page's URL and its password form.
async fn login_form(browser: &mut Browser<'_>, dex: Url) -> (Option<(Url, html::Form)>, Verdict) {
    let login = (browser.target.login_host.clone(), browser.target.login_port);
    let landing = match browser
        .visit("GET", dex, None, |u| u.host == login.0 && u.port == login.1)
        .await
    {
        Ok(l) => l,
        Err(e) => return (None, Verdict::fail(None, e, GATEWAY)),
    };
    let status = Some(landing.response.status);
    let page = &landing.response.body;
    let text = html::text_excerpt(page, 160);
    if landing.response.status == 200 {
        if let Some(form) = html::forms(page)
            .into_iter()
            .find(html::Form::is_password_form)
        {
            let detail = format!("password form at {}", landing.url.redacted());
            return (Some((landing.url, form)), Verdict::pass(status, detail));
        }
        let connectors = html::links(page)
            .iter()
            .filter(|l| l.contains("/auth/"))
            .count();
        let verdict = if connectors > 0 {
            Verdict::fail(
                status,
                format!("Dex shows {connectors} connector(s) to choose from: {text}"),
                CONNECTORS,
            )
        } else {
            Verdict::fail(
                status,
                format!("a page without a password form: {text}"),
                CONNECTORS,
            )
        };
        return (None, verdict);
    }
    let verdict = if page.contains("redirect_uri") || text.contains("redirect") {
        Verdict::fail(
            status,
            format!("Dex refused the request: {text}"),
            REDIRECT_URIS,
        )
    } else if landing.response.is_redirect() {
        Verdict::fail(
            status,
            format!(
                "redirected away from Dex before its login form (after {})",
                landing.trail.join(" -> ")
            ),
            ISSUER,
        )
    } else {
        Verdict::fail(status, format!("Dex answered: {text}"), ISSUER)
    };
    (None, verdict)
}

/// The form's fields, filled in.
fn form_body(form: &html::Form, username: &str, password: &str) -> String {
    let mut pairs: Vec<(String, String)> = form
        .hidden()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    pairs.push((
        form.login_field().unwrap_or("login").to_string(),
        username.to_string(),
    ));
    pairs.push((
        form.password_field().unwrap_or("password").to_string(),
        password.to_string(),
    ));
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", http::form_encode(n), http::form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Step 3. On success: where the callback sent the browser, and the session cookies' names.
async fn login(
    browser: &mut Browser<'_>,
    page: &Url,
    form: &html::Form,
) -> (Option<(Url, Vec<String>)>, Verdict) {
    let Some(action) = page.join(&form.action) else {
        return (
            None,
            Verdict::fail(
                None,
                format!("unusable form action `{}`", form.action),
                ISSUER,
            ),
        );
    };
    let body = form_body(form, &browser.target.username, &browser.target.password.0);
    let app = browser.target.app.clone();
    let login = (browser.target.login_host.clone(), browser.target.login_port);
    // Follow Dex's redirects and the one to the app's callback; stop after the callback.
    let landing = match browser
        .visit("POST", action, Some(body), |u| {
            (u.host == login.0 && u.port == login.1) || u.path() == "/oauth2/callback"
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return (None, Verdict::fail(None, e, GATEWAY)),
    };
    let status = Some(landing.response.status);
    let text = html::text_excerpt(&landing.response.body, 160);
    let at_callback = landing.url.host == app.host
        && landing.url.port == app.port
        && landing.url.path() == "/oauth2/callback";
    if !at_callback {
        let forms = html::forms(&landing.response.body);
        let verdict = if forms.iter().any(html::Form::is_password_form) {
            Verdict::fail(
                status,
                format!("Dex showed its login form again: {text}"),
                STATIC_USER,
            )
        } else if forms
            .iter()
            .any(|f| f.hidden().any(|(n, _)| n == "approval"))
        {
            Verdict::fail(status, format!("Dex's approval screen: {text}"), APPROVAL)
        } else if landing.response.is_redirect() {
            let to = landing
                .response
                .header("location")
                .and_then(|l| landing.url.join(l))
                .map_or_else(|| "an unusable location".to_string(), |u| u.redacted());
            Verdict::fail(
                status,
                format!("Dex redirected to {to}, not to the app's /oauth2/callback"),
                REDIRECT_URIS,
            )
        } else {
            Verdict::fail(status, format!("Dex answered: {text}"), STATIC_USER)
        };
        return (None, verdict);
    }
    let session: Vec<String> = landing
        .set
        .iter()
        .filter(|(path, _)| path == "/oauth2/callback")
        .map(|(_, name)| name.clone())
        .filter(|name| browser.jar.cookies.iter().any(|c| &c.name == name))
        .collect();
    let response = &landing.response;
    if !response.is_redirect() {
        let cause = match response.status {
            403 => COOKIE,
            _ => REDEEM,
        };
        return (
            None,
            Verdict::fail(
                status,
                format!("OAuth2 Proxy's callback answered: {text}"),
                cause,
            ),
        );
    }
    if session.is_empty() {
        return (
            None,
            Verdict::fail(status, "the callback set no session cookie", COOKIE),
        );
    }
    let Some(next) = response
        .header("location")
        .and_then(|l| landing.url.join(l))
    else {
        return (
            None,
            Verdict::fail(status, "the callback redirected nowhere usable", REDEEM),
        );
    };
    if next.host != app.host || next.port != app.port {
        return (
            None,
            Verdict::fail(
                status,
                format!(
                    "the callback redirected to {}, not to the app",
                    next.redacted()
                ),
                COOKIE,
            ),
        );
    }
    let detail = format!(
        "{} -> session cookie {} set, back to {}",
        landing.trail.join(" -> "),
        session.join(", "),
        next.redacted()
    );
    (Some((next, session)), Verdict::pass(status, detail))
}

/// Step 4.
async fn app_page(browser: &mut Browser<'_>, url: Url) -> Verdict {
    let sent = browser.jar.names_for(&url);
    let response = match browser.request("GET", &url, None).await {
        Ok(r) => r,
        Err(e) => return Verdict::fail(None, e, GATEWAY),
    };
    let status = Some(response.status);
    match response.status {
        200 if !response.body.trim().is_empty() => Verdict::pass(
            status,
            format!(
                "{} with cookie(s) {}: {}",
                url.redacted(),
                sent.join(", "),
                html::text_excerpt(&response.body, 60)
            ),
        ),
        200 => Verdict::fail(status, "an empty page", POLICY_PATHS),
        s if response.is_redirect() => {
            let to = response
                .header("location")
                .and_then(|l| url.join(l))
                .map_or_else(String::new, |u| u.redacted());
            let cause = if sent.is_empty() {
                COOKIE
            } else {
                CHECK_HEADERS
            };
            Verdict::fail(
                Some(s),
                format!(
                    "sent back to {to} although the session cookie was sent: the check did not see it"
                ),
                cause,
            )
        }
        _ => Verdict::fail(
            status,
            format!(
                "{}: {}",
                url.redacted(),
                html::text_excerpt(&response.body, 120)
            ),
            CHECK_HEADERS,
        ),
    }
}

/// Is this answer a refusal by the login (not content of the app)? 401, 403, or a redirect to
/// Dex's host (whatever port: a wrong port is `redirect-to-login`'s finding, not this one's)
/// or to OAuth2 Proxy's own pages.
fn refusal(target: &Target, url: &Url, response: &Response) -> bool {
    match response.status {
        401 | 403 => true,
        _ if response.is_redirect() => response
            .header("location")
            .and_then(|l| url.join(l))
            .is_some_and(|to| {
                to.host == target.login_host
                    || (to.host == target.app.host && to.path().starts_with("/oauth2/"))
            }),
        _ => false,
    }
}

/// Steps 5 and 6.
async fn refused_without_session(target: &Target, path: &str) -> Verdict {
    let mut browser = Browser::new(target);
    let url = Url {
        path_and_query: path.to_string(),
        ..target.app.clone()
    };
    match browser.request("GET", &url, None).await {
        Err(e) => Verdict::fail(None, e, GATEWAY),
        Ok(r) if refusal(target, &url, &r) => {
            Verdict::pass(Some(r.status), format!("{} refused", url.redacted()))
        }
        Ok(r) => Verdict::fail(
            Some(r.status),
            format!(
                "{} reached the app without a session: {}",
                url.redacted(),
                html::text_excerpt(&r.body, 80)
            ),
            POLICY_PATHS,
        ),
    }
}

/// Step 7: the session cookies with one character of the first one's value changed.
async fn tampered_cookie(target: &Target, mut jar: Jar, session: &[String]) -> Verdict {
    jar.cookies.retain(|c| session.contains(&c.name));
    let Some(cookie) = jar.cookies.first_mut() else {
        return Verdict::fail(None, "no session cookie to tamper with", COOKIE);
    };
    cookie.value = tamper(&cookie.value);
    let mut browser = Browser { target, jar };
    let url = target.app.clone();
    match browser.request("GET", &url, None).await {
        Err(e) => Verdict::fail(None, e, GATEWAY),
        Ok(r) if refusal(target, &url, &r) => Verdict::pass(
            Some(r.status),
            format!("{} with a changed session cookie refused", url.redacted()),
        ),
        Ok(r) => Verdict::fail(
            Some(r.status),
            format!("{} accepted a changed session cookie", url.redacted()),
            COOKIE,
        ),
    }
}

/// The value with its first alphanumeric character changed (OAuth2 Proxy's cookie is
/// `value|timestamp|signature`: a changed value no longer matches the signature).
fn tamper(value: &str) -> String {
    let mut out: Vec<char> = value.chars().collect();
    if let Some(c) = out.iter_mut().find(|c| c.is_ascii_alphanumeric()) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    } else {
        out.insert(0, 'A');
    }
    out.into_iter().collect()
}

/// Step 8: a fresh browser, the same way to the form, a wrong password.
async fn wrong_password(target: &Target) -> Verdict {
    let mut browser = Browser::new(target);
    let dex = match redirect_to_login(&mut browser).await {
        Ok((url, _)) => url,
        Err(v) => return v,
    };
    let (form, verdict) = login_form(&mut browser, dex).await;
    let Some((page, form)) = form else {
        return verdict;
    };
    let Some(action) = page.join(&form.action) else {
        return Verdict::fail(
            None,
            format!("unusable form action `{}`", form.action),
            ISSUER,
        );
    };
    let body = form_body(
        &form,
        &target.username,
        "envctl-verify: certainly not the password",
    );
    let response = match browser.request("POST", &action, Some(body)).await {
        Ok(r) => r,
        Err(e) => return Verdict::fail(None, e, GATEWAY),
    };
    let status = Some(response.status);
    let sent_back = response.is_redirect()
        && response
            .header("location")
            .and_then(|l| action.join(l))
            .is_some_and(|to| !browser.on_login_host(&to) || to.path().contains("approval"));
    let form_again = html::forms(&response.body)
        .iter()
        .any(html::Form::is_password_form);
    if !sent_back && (form_again || (400..500).contains(&response.status)) {
        Verdict::pass(
            status,
            format!("Dex refused it: {}", html::text_excerpt(&response.body, 80)),
        )
    } else {
        Verdict::fail(status, "Dex accepted a wrong password", STATIC_USER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_changes_the_value() {
        assert_eq!(tamper("abc|1|sig"), "Abc|1|sig");
        assert_eq!(tamper("Abc"), "Bbc");
        assert_eq!(tamper("||"), "A||");
    }

    #[test]
    fn the_form_body_carries_hidden_fields_and_encodes() {
        let form = html::Form {
            action: String::new(),
            method: "post".into(),
            inputs: vec![
                ("req".into(), "hidden".into(), "r 1".into()),
                ("login".into(), "text".into(), String::new()),
                ("password".into(), "password".into(), String::new()),
            ],
            buttons: vec![],
        };
        assert_eq!(
            form_body(&form, "admin@example.com", "p&ss"),
            "req=r+1&login=admin%40example.com&password=p%26ss"
        );
    }

    #[test]
    fn steps_serialize_without_secrets_and_with_milliseconds() {
        let step = Step {
            id: "login",
            title: "t",
            outcome: Outcome::Fail,
            status: Some(302),
            elapsed: Duration::from_millis(1500),
            detail: "d".into(),
            likely_cause: Some("k".into()),
        };
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(json["elapsed_ms"], 1500);
        assert_eq!(json["outcome"], "fail");
        assert_eq!(json["likely_cause"], "k");
    }

    #[test]
    fn a_refusal_is_a_redirect_to_dex_or_401_403() {
        let target = Target {
            gateway: "127.0.0.1:1".parse().unwrap(),
            app: Url::parse("http://nginx.example.com:8080/").unwrap(),
            login_host: "dex.example.com".into(),
            login_port: 8080,
            username: "u".into(),
            password: Password::new("p".into()),
            request_timeout: Duration::from_secs(1),
        };
        let answer = |status, location: Option<&str>| Response {
            status,
            headers: location
                .map(|l| vec![("Location".to_string(), l.to_string())])
                .unwrap_or_default(),
            body: String::new(),
        };
        let url = target.app.clone();
        assert!(refusal(&target, &url, &answer(403, None)));
        assert!(refusal(
            &target,
            &url,
            &answer(302, Some("http://dex.example.com:8080/dex/auth?x"))
        ));
        assert!(refusal(
            &target,
            &url,
            &answer(302, Some("/oauth2/sign_in?rd=%2F"))
        ));
        assert!(!refusal(&target, &url, &answer(302, Some("/elsewhere"))));
        assert!(!refusal(
            &target,
            &url,
            &answer(302, Some("http://other.example.com/"))
        ));
        assert!(!refusal(&target, &url, &answer(404, None)));
        assert!(!refusal(&target, &url, &answer(200, None)));
    }
}
