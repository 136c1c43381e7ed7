//! Transient faults of the API server: timeouts on every request and retries of what is safe
//! to repeat.
//!
//! Every request the kube client makes goes through [`RetryPolicy`], a `tower::retry` policy
//! layered onto kube's own client stack (kube's connect and read timeouts below it). Which
//! failures are retried, and for which requests, is pure logic ([`decide`]), unit-tested here:
//!
//! - a connection that could not be made (refused, connect timeout): the request never reached
//!   the server, so it is repeated whatever its verb;
//! - 429 Too Many Requests: the server refused it before doing anything (API Priority and
//!   Fairness); repeated whatever its verb, after the server's `Retry-After` when it gives one;
//! - a reset or a read timeout, and 500, 502, 503, 504: the server may have acted, so only
//!   requests that are safe to repeat are: reads, server-side apply (also as a dry run),
//!   merge patches and deletes; never a create (POST), a replace (PUT, whose resourceVersion
//!   would then conflict with its own first attempt) or a JSON patch;
//! - nothing else (4xx answers, TLS certificate errors) is retried.
//!
//! Delays grow exponentially with jitter, and retries stop once the next attempt would start
//! after [`ApiTimeouts::retry_for`]; the error then says how many attempts were made for how
//! long ([`Unavailable`]).
//!
//! A response's headers can arrive before its body breaks (an API server restarting mid-answer:
//! "error reading a body from connection"). kube reads the body after the stack has answered,
//! too late for a retry, so [`CollectBody`], the layer right below the retry layer, reads the
//! whole body of every request that is safe to repeat and is not a stream ([`collects_body`]):
//! a body that breaks is then a failed attempt like a reset, retried within the same budget;
//! each read of it is bounded by the read timeout. Watches (`watch=true`) and followed logs
//! (`follow=true`) stream as they come, and a request that is not safe to repeat is passed on
//! as it is (kube reads its body as before, and a break there ends the request).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use kube::client::{Body, DynBody};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use crate::LiveError;

/// Timeouts of the kube client, and how long a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTimeouts {
    /// To open a connection (TCP and TLS).
    pub connect: Duration,
    /// Without a byte from the server on an open connection (a stalled server).
    pub read: Duration,
    /// How long one request is retried, from its first attempt.
    pub retry_for: Duration,
}

impl Default for ApiTimeouts {
    fn default() -> Self {
        ApiTimeouts {
            connect: Duration::from_secs(10),
            // Long enough for the slowest answer (a server-side apply of a large CRD takes a
            // few seconds), short enough that a stalled server is noticed well within a wait.
            read: Duration::from_secs(30),
            // An API server restart (process start, etcd reconnect) takes seconds.
            retry_for: Duration::from_secs(45),
        }
    }
}

/// The environment variables that override [`ApiTimeouts`] (whole seconds).
pub const TIMEOUT_VARIABLES: [&str; 3] = [
    "ENVCTL_API_CONNECT_TIMEOUT",
    "ENVCTL_API_READ_TIMEOUT",
    "ENVCTL_API_RETRY_FOR",
];

impl ApiTimeouts {
    /// The defaults, with the overrides of [`TIMEOUT_VARIABLES`] that are set.
    pub fn from_env() -> Result<ApiTimeouts, LiveError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ApiTimeouts, LiveError> {
        let mut timeouts = ApiTimeouts::default();
        let fields = [
            &mut timeouts.connect,
            &mut timeouts.read,
            &mut timeouts.retry_for,
        ];
        for (name, field) in TIMEOUT_VARIABLES.iter().zip(fields) {
            let Some(text) = lookup(name).filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            let seconds: u64 = text
                .trim()
                .trim_end_matches('s')
                .parse()
                .ok()
                .filter(|s| *s > 0 || *name == "ENVCTL_API_RETRY_FOR")
                .ok_or_else(|| {
                    LiveError::Connect(format!(
                        "{name}={text:?} is not a number of seconds (e.g. {name}=30)"
                    ))
                })?;
            *field = Duration::from_secs(seconds);
        }
        Ok(timeouts)
    }
}

/// What a request does to the server, as far as repeating it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET, HEAD, OPTIONS (also lists and watches).
    Read,
    /// PATCH with `application/apply-patch+yaml`: the same object again is the same result.
    ServerSideApply,
    /// PATCH with `application/merge-patch+json` (RFC 7386 is idempotent).
    MergePatch,
    /// DELETE: a second one finds nothing (404), which callers take as done.
    Delete,
    /// A POST with `dryRun`: nothing is persisted.
    DryRunCreate,
    /// POST (create), PUT (replace), JSON and strategic merge patches: not repeated once the
    /// server may have acted.
    Unsafe,
}

impl Verb {
    /// Classifies a request by method, `Content-Type` and query.
    pub fn of(method: &Method, content_type: Option<&str>, query: Option<&str>) -> Verb {
        let dry_run = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("dryRun=")));
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => Verb::Read,
            Method::DELETE => Verb::Delete,
            Method::PATCH => match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
                Some("application/apply-patch+yaml") => Verb::ServerSideApply,
                Some("application/merge-patch+json") => Verb::MergePatch,
                _ => Verb::Unsafe,
            },
            Method::POST if dry_run => Verb::DryRunCreate,
            _ => Verb::Unsafe,
        }
    }

    /// The verb of a request as the client stack sends it.
    pub fn of_request<B>(request: &Request<B>) -> Verb {
        Verb::of(
            request.method(),
            request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            request.uri().query(),
        )
    }

    fn repeatable(self) -> bool {
        self != Verb::Unsafe
    }
}

/// Whether a request's answer is a stream that must reach the caller as it comes: a watch
/// (`watch=true`) or a followed log (`follow=true`).
pub fn is_stream(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|p| matches!(p, "watch=true" | "watch=1" | "follow=true" | "follow=1"))
    })
}

/// Whether [`CollectBody`] reads the whole answer of a request before the retry layer sees it:
/// requests that are safe to repeat (a broken body is then retried) and are not streams.
pub fn collects_body(verb: Verb, query: Option<&str>) -> bool {
    verb.repeatable() && !is_stream(query)
}

/// The layer of [`CollectBody`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CollectBodyLayer;

impl<S> Layer<S> for CollectBodyLayer {
    type Service = CollectBody<S>;

    fn layer(&self, inner: S) -> CollectBody<S> {
        CollectBody { inner }
    }
}

/// Reads the whole response body of the requests [`collects_body`] picks, inside the service
/// call, so that a body that breaks is an error the retry policy sees (see the module docs).
#[derive(Debug, Clone)]
pub struct CollectBody<S> {
    inner: S,
}

type BoxedResponse = Response<Box<DynBody>>;

impl<S> Service<Request<Body>> for CollectBody<S>
where
    S: Service<Request<Body>, Response = BoxedResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = BoxedResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<BoxedResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let collect = collects_body(Verb::of_request(&request), request.uri().query());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if !collect {
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let body: Box<DynBody> = Box::new(Full::new(bytes).map_err(|never| match never {}));
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// How an attempt ended, as far as retrying goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer, with its `Retry-After` (seconds) if any.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No connection could be made: the request was never sent.
    NotConnected(String),
    /// The connection broke or went silent after the request may have been sent.
    Broken(String),
    /// A failure that repeating cannot fix (TLS certificate, invalid request).
    Permanent(String),
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Done,
    /// Retry after at least this long (the server's `Retry-After`), else after the backoff.
    Retry {
        at_least: Option<Duration>,
    },
}

/// Whether an attempt is retried (pure; the time budget is checked by the caller).
pub fn decide(verb: Verb, outcome: &Outcome) -> Decision {
    let retry = Decision::Retry { at_least: None };
    match outcome {
        Outcome::Status {
            code: 429,
            retry_after,
        } => Decision::Retry {
            at_least: *retry_after,
        },
        Outcome::Status {
            code: 500 | 502 | 503 | 504,
            retry_after,
        } if verb.repeatable() => Decision::Retry {
            at_least: *retry_after,
        },
        Outcome::Status { .. } | Outcome::Permanent(_) => Decision::Done,
        Outcome::NotConnected(_) => retry,
        Outcome::Broken(_) if verb.repeatable() => retry,
        Outcome::Broken(_) => Decision::Done,
    }
}

/// The exponential backoff before retry number `attempt` (1-based): 200 ms doubling up to 5 s,
/// scaled by `jitter` in `[0.5, 1.0]` so that many clients do not retry in step.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    base.min(Duration::from_secs(5))
        .mul_f64(jitter.clamp(0.5, 1.0))
}

/// Classifies what the client stack returned for an attempt.
pub fn outcome<B>(result: &Result<Response<B>, BoxError>) -> Outcome {
    match result {
        Ok(response) => Outcome::Status {
            code: response.status().as_u16(),
            retry_after: response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        Err(error) => transport_outcome(error.as_ref()),
    }
}

fn transport_outcome(error: &(dyn std::error::Error + 'static)) -> Outcome {
    let text = chain_text(error);
    let mut connect = false;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= client.is_connect();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            // rustls reports certificate and protocol errors this way: no retry fixes them.
            return Outcome::Permanent(text);
        }
        current = e.source();
    }
    if connect {
        Outcome::NotConnected(text)
    } else {
        Outcome::Broken(text)
    }
}

/// An error and its causes, on one line (`a: b: c`), without repeats.
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The API server did not answer a request within the retry budget.
#[derive(Debug)]
pub struct Unavailable {
    pub method: Method,
    pub path: String,
    pub attempts: u32,
    pub elapsed: Duration,
    pub cause: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the API server did not answer {} {} ({} attempt{} in {}s): {}",
            self.method,
            self.path,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.elapsed.as_secs(),
            self.cause
        )
    }
}

impl std::error::Error for Unavailable {}

/// The `tower::retry` policy of every request (see the module docs). One value per request:
/// `tower` clones the layer's policy for each call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    retry_for: Duration,
    attempt: u32,
    started: Option<Instant>,
}

impl RetryPolicy {
    pub fn new(retry_for: Duration) -> RetryPolicy {
        RetryPolicy {
            retry_for,
            attempt: 0,
            started: None,
        }
    }
}

impl<B> tower::retry::Policy<Request<Body>, Response<B>, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        let verb = Verb::of_request(request);
        let outcome = outcome(result);
        let Decision::Retry { at_least } = decide(verb, &outcome) else {
            return None;
        };
        self.attempt += 1;
        let started = *self.started.get_or_insert_with(Instant::now);
        let elapsed = started.elapsed();
        let delay = backoff(self.attempt, rand::random::<f64>() * 0.5 + 0.5)
            .max(at_least.unwrap_or_default());
        if elapsed + delay > self.retry_for {
            // Out of time: say so, for transport errors (an HTTP status speaks for itself).
            if let Err(error) = result {
                let cause = match &outcome {
                    Outcome::NotConnected(text) | Outcome::Broken(text) => text.clone(),
                    _ => chain_text(error.as_ref()),
                };
                *result = Err(Box::new(Unavailable {
                    method: request.method().clone(),
                    path: request.uri().path().to_owned(),
                    attempts: self.attempt,
                    elapsed,
                    cause,
                }));
            }
            return None;
        }
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
        if self.attempt == 0 {
            // Called on the layer's own policy just before the first attempt of each request
            // (retries call it on the request's clone, whose attempt is then at least 1): the
            // clone made right after starts its clock from here.
            self.started = Some(Instant::now());
        }
        let body = request.body().try_clone()?;
        let mut copy = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

/// Whether an error is the kind a later run can get past (the API server unreachable, stalled,
/// overloaded or failing, also as helm saw it): the caller adds "run apply again".
pub fn is_transient(error: &LiveError) -> bool {
    match error {
        LiveError::Api { status, .. } => status.is_transient(),
        LiveError::Transport { source, .. } => {
            matches!(
                source.as_ref(),
                kube::Error::Service(_) | kube::Error::HyperError(_)
            )
        }
        LiveError::Helm { source, .. } => source.is_transient(),
        LiveError::RunAgain { .. } => true,
        _ => false,
    }
}

/// What a run says when a resource failed for a transient reason.
pub const RUN_AGAIN: &str =
    "the API server did not answer in time; what was done so far is kept: run apply again";

/// A failure of the resource at `address`, naming it; a transient one also says to run apply
/// again ([`LiveError::RunAgain`]).
pub fn again(address: &impl fmt::Display, error: LiveError) -> LiveError {
    wrap(address, error, false)
}

/// What a plan (also apply's own) says when reading a resource failed for a transient reason.
pub const PLAN_AGAIN: &str =
    "the API server did not answer in time; nothing was changed: run apply (or plan) again";

/// [`again`] for the facts a plan gathers: nothing was changed yet.
pub fn again_in_plan(address: &impl fmt::Display, error: LiveError) -> LiveError {
    wrap(address, error, true)
}

fn wrap(address: &impl fmt::Display, error: LiveError, nothing_changed: bool) -> LiveError {
    let error = error.at(address);
    if is_transient(&error) && !matches!(error, LiveError::RunAgain { .. }) {
        LiveError::RunAgain {
            source: Box::new(error),
            nothing_changed,
        }
    } else {
        error
    }
}

/// A helm failure of the release at `address`, with "run apply again" when helm could not talk
/// to the API server (its own client has no retries).
pub fn helm_again(address: &impl fmt::Display, error: crate::helm::HelmError) -> LiveError {
    again(address, error.into())
}

/// Whether a message (helm's, a Go client's) says the API server could not be reached. helm
/// exits 1 for every failure, so its stderr is the only signal: it is read here, once, when
/// a helm failure is classified ([`crate::helm::HelmError::is_transient`]).
pub fn text_is_transient(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "connection refused",
        "connection reset",
        "broken pipe",
        "i/o timeout",
        "tls handshake timeout",
        "client.timeout exceeded",
        "http2: client connection lost",
        "the server is currently unable to handle the request",
        "unexpected eof",
        ": eof",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    const RETRY: Decision = Decision::Retry { at_least: None };

    #[test]
    fn verbs_are_read_from_method_content_type_and_query() {
        let verb = |m: Method, ct: Option<&str>, q: Option<&str>| Verb::of(&m, ct, q);
        assert_eq!(verb(Method::GET, None, Some("watch=true")), Verb::Read);
        assert_eq!(
            verb(
                Method::PATCH,
                Some("application/apply-patch+yaml"),
                Some("fieldManager=envctl&force=true&dryRun=All")
            ),
            Verb::ServerSideApply
        );
        assert_eq!(
            verb(
                Method::PATCH,
                Some("application/merge-patch+json; charset=utf-8"),
                None
            ),
            Verb::MergePatch
        );
        assert_eq!(
            verb(Method::PATCH, Some("application/json-patch+json"), None),
            Verb::Unsafe
        );
        assert_eq!(
            verb(
                Method::PATCH,
                Some("application/strategic-merge-patch+json"),
                None
            ),
            Verb::Unsafe
        );
        assert_eq!(verb(Method::DELETE, None, None), Verb::Delete);
        assert_eq!(verb(Method::POST, None, None), Verb::Unsafe);
        assert_eq!(
            verb(Method::POST, None, Some("dryRun=All")),
            Verb::DryRunCreate
        );
        assert_eq!(verb(Method::PUT, None, None), Verb::Unsafe);
    }

    #[test]
    fn a_request_that_was_never_sent_is_retried_whatever_its_verb() {
        let refused = Outcome::NotConnected("tcp connect error: Connection refused".into());
        for verb in [
            Verb::Read,
            Verb::ServerSideApply,
            Verb::Delete,
            Verb::Unsafe,
        ] {
            assert_eq!(decide(verb, &refused), RETRY, "{verb:?}");
        }
    }

    #[test]
    fn too_many_requests_is_retried_for_every_verb_after_the_servers_delay() {
        let busy = Outcome::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(3)),
        };
        for verb in [Verb::Read, Verb::Unsafe] {
            assert_eq!(
                decide(verb, &busy),
                Decision::Retry {
                    at_least: Some(Duration::from_secs(3))
                }
            );
        }
    }

    #[test]
    fn resets_timeouts_and_server_errors_are_retried_only_where_repeating_is_safe() {
        let reset = Outcome::Broken("connection reset by peer".into());
        for verb in [
            Verb::Read,
            Verb::ServerSideApply,
            Verb::MergePatch,
            Verb::Delete,
            Verb::DryRunCreate,
        ] {
            assert_eq!(decide(verb, &reset), RETRY, "{verb:?}");
            for code in [500, 502, 503, 504] {
                assert_eq!(decide(verb, &status(code)), RETRY, "{verb:?} {code}");
            }
        }
        assert_eq!(decide(Verb::Unsafe, &reset), Decision::Done);
        for code in [500, 502, 503, 504] {
            assert_eq!(
                decide(Verb::Unsafe, &status(code)),
                Decision::Done,
                "{code}"
            );
        }
    }

    #[test]
    fn answers_and_certificate_errors_are_final() {
        for code in [200, 201, 400, 401, 403, 404, 409, 422, 501] {
            assert_eq!(decide(Verb::Read, &status(code)), Decision::Done, "{code}");
        }
        assert_eq!(
            decide(
                Verb::Read,
                &Outcome::Permanent("invalid peer certificate".into())
            ),
            Decision::Done
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_and_jitter_only_shortens_it() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(5, 1.0), Duration::from_millis(3200));
        assert_eq!(backoff(6, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(60, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(1, 0.5), Duration::from_millis(100));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(100), "clamped");
    }

    #[test]
    fn transport_errors_are_told_apart() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            transport_outcome(&refused),
            Outcome::Broken(_) // not wrapped by hyper-util's connect error: not known unsent
        ));
        let certificate = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad certificate");
        assert!(matches!(
            transport_outcome(&certificate),
            Outcome::Permanent(_)
        ));
    }

    #[test]
    fn the_retry_budget_is_read_from_the_environment() {
        let timeouts = ApiTimeouts::from_lookup(|name| match name {
            "ENVCTL_API_READ_TIMEOUT" => Some("5".into()),
            "ENVCTL_API_RETRY_FOR" => Some("0s".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(timeouts.read, Duration::from_secs(5));
        assert_eq!(timeouts.retry_for, Duration::ZERO);
        assert_eq!(timeouts.connect, ApiTimeouts::default().connect);
        let error = ApiTimeouts::from_lookup(|name| {
            (name == "ENVCTL_API_CONNECT_TIMEOUT").then(|| "soon".into())
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("ENVCTL_API_CONNECT_TIMEOUT"),
            "{error}"
        );
    }

    #[test]
    fn helm_and_go_client_messages_of_an_unreachable_server_are_transient() {
        assert!(text_is_transient(
            "Error: UPGRADE FAILED: Get \"https://127.0.0.1:32771/api\": dial tcp 127.0.0.1:32771: connect: connection refused"
        ));
        assert!(text_is_transient(
            "Kubernetes cluster unreachable: Get \"https://x/version\": net/http: TLS handshake timeout"
        ));
        assert!(!text_is_transient(
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress"
        ));
    }

    #[test]
    fn only_transient_failures_say_run_apply_again() {
        let status = |code| {
            LiveError::from(kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "m".into(),
                ..Default::default()
            })))
        };
        let address = "gateway.object.deployment/web/nginx";
        let e = again(&address, status(503)).to_string();
        assert!(
            e.starts_with(address) && e.ends_with("run apply again"),
            "{e}"
        );
        assert!(matches!(
            again(&address, status(503)),
            LiveError::RunAgain { source, nothing_changed: false }
                if source.status().is_some_and(|s| s.code == 503)
        ));
        let e = again(&address, status(422));
        assert!(
            matches!(&e, LiveError::Api { address: Some(a), .. } if a == address),
            "a permanent failure names its resource too: {e}"
        );
        assert!(!e.to_string().contains("run apply again"), "{e}");
        let e = again_in_plan(&address, status(429)).to_string();
        assert!(e.starts_with(address) && e.ends_with(PLAN_AGAIN), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_policy_gives_up_after_its_budget_and_says_why() {
        use tower::retry::Policy;
        let mut layer_policy = RetryPolicy::new(Duration::from_secs(2));
        let mut request = Request::get("/api/v1/namespaces")
            .body(Body::empty())
            .unwrap();
        let _ = Policy::<_, Response<()>, BoxError>::clone_request(&mut layer_policy, &request);
        let mut policy = layer_policy.clone();
        let refused = || -> Result<Response<()>, BoxError> {
            Err(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
        };
        let mut attempts = 1;
        loop {
            let mut result = refused();
            match policy.retry(&mut request, &mut result) {
                Some(sleep) => {
                    sleep.await;
                    attempts += 1;
                }
                None => {
                    let error = result.unwrap_err();
                    let unavailable = error.downcast_ref::<Unavailable>().expect("Unavailable");
                    assert_eq!(unavailable.attempts as usize, attempts);
                    assert!(
                        unavailable.to_string().contains("GET /api/v1/namespaces"),
                        "{unavailable}"
                    );
                    break;
                }
            }
        }
        assert!((3..=8).contains(&attempts), "{attempts} attempts in 2s");
    }

    #[test]
    fn only_repeatable_requests_that_are_not_streams_have_their_body_collected() {
        let collects =
            |m: Method, ct: Option<&str>, q: Option<&str>| collects_body(Verb::of(&m, ct, q), q);
        let apply = Some("application/apply-patch+yaml");
        assert!(collects(Method::GET, None, None));
        assert!(collects(Method::GET, None, Some("labelSelector=app%3Dweb")));
        assert!(collects(Method::GET, None, Some("watch=false")), "a list");
        assert!(collects(Method::PATCH, apply, Some("fieldManager=envctl")));
        assert!(collects(
            Method::PATCH,
            apply,
            Some("dryRun=All&force=true")
        ));
        assert!(collects(
            Method::PATCH,
            Some("application/merge-patch+json"),
            None
        ));
        assert!(collects(Method::DELETE, None, None));
        assert!(collects(Method::POST, None, Some("dryRun=All")));
        assert!(collects(
            Method::GET,
            None,
            Some("container=c&tailLines=10")
        ));
        for query in [
            "watch=true&resourceVersion=5&timeoutSeconds=25",
            "fieldSelector=x&watch=1",
            "follow=true&container=c",
        ] {
            assert!(!collects(Method::GET, None, Some(query)), "{query}");
        }
        assert!(!collects(Method::POST, None, None), "a create");
        assert!(!collects(Method::PUT, None, None), "a replace");
        assert!(!collects(
            Method::PATCH,
            Some("application/json-patch+json"),
            None
        ));
    }

    mod collect_body {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};

        use bytes::Bytes;
        use futures::{StreamExt, stream};
        use http_body::Frame;
        use http_body_util::StreamBody;
        use tower::retry::RetryLayer;
        use tower::{ServiceBuilder, ServiceExt, service_fn};

        use super::super::*;

        const WHOLE: &str = r#"{"kind":"ConfigMap"}"#;

        /// A body that sends its first bytes and then breaks, as a connection reset mid-answer.
        fn breaking_body() -> Box<DynBody> {
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                Ok(Frame::data(Bytes::from_static(b"{\"kind\":"))),
                Err(Box::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                ))),
            ];
            Box::new(StreamBody::new(stream::iter(frames)))
        }

        fn whole_body() -> Box<DynBody> {
            Box::new(
                Full::new(Bytes::from_static(WHOLE.as_bytes())).map_err(|never| match never {}),
            )
        }

        /// The retry layer and [`CollectBody`] over a server whose first `breaks` answers break
        /// in their body (headers sent, 200) and whose later ones are whole; with its call count.
        fn stack(
            breaks: u32,
            retry_for: Duration,
        ) -> (
            impl Service<Request<Body>, Response = BoxedResponse, Error = BoxError>,
            Arc<AtomicU32>,
        ) {
            let calls = Arc::new(AtomicU32::new(0));
            let counted = calls.clone();
            let server = service_fn(move |_request: Request<Body>| {
                let call = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    let body = if call < breaks {
                        breaking_body()
                    } else {
                        whole_body()
                    };
                    Ok::<_, BoxError>(Response::new(body))
                }
            });
            let stack = ServiceBuilder::new()
                .layer(RetryLayer::new(RetryPolicy::new(retry_for)))
                .layer(CollectBodyLayer)
                .service(server);
            (stack, calls)
        }

        fn apply_request() -> Request<Body> {
            Request::patch("/api/v1/namespaces/web/configmaps/c?fieldManager=envctl&force=true")
                .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
                .body(Body::from(WHOLE.as_bytes().to_vec()))
                .unwrap()
        }

        async fn text(response: BoxedResponse) -> Result<String, BoxError> {
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok(String::from_utf8(bytes.to_vec()).unwrap())
        }

        #[tokio::test(start_paused = true)]
        async fn a_body_that_breaks_is_retried_for_a_server_side_apply() {
            let (stack, calls) = stack(1, Duration::from_secs(45));
            let response = stack.oneshot(apply_request()).await.expect("retried");
            assert_eq!(text(response).await.unwrap(), WHOLE);
            assert_eq!(calls.load(Ordering::SeqCst), 2);
        }

        #[tokio::test(start_paused = true)]
        async fn a_body_that_keeps_breaking_ends_within_the_budget_and_says_why() {
            let (stack, calls) = stack(u32::MAX, Duration::from_secs(2));
            let Err(error) = stack.oneshot(apply_request()).await else {
                panic!("a body that always breaks cannot succeed");
            };
            let unavailable = error.downcast_ref::<Unavailable>().expect("Unavailable");
            assert_eq!(unavailable.attempts, calls.load(Ordering::SeqCst));
            assert!(unavailable.attempts >= 3, "{unavailable}");
            assert!(unavailable.cause.contains("reset"), "{unavailable}");
        }

        #[tokio::test(start_paused = true)]
        async fn a_create_is_not_repeated_and_its_body_is_read_by_the_caller() {
            let (stack, calls) = stack(1, Duration::from_secs(45));
            let request = Request::post("/api/v1/namespaces/web/configmaps")
                .body(Body::from(WHOLE.as_bytes().to_vec()))
                .unwrap();
            let response = stack.oneshot(request).await.expect("headers");
            assert!(
                text(response).await.is_err(),
                "the break reaches the caller"
            );
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn a_watch_streams_its_events_as_they_come() {
            let server = service_fn(|_request: Request<Body>| async {
                let event = Bytes::from_static(b"{\"type\":\"ADDED\"}\n");
                let frames =
                    stream::iter([Ok::<_, BoxError>(Frame::data(event))]).chain(stream::pending());
                let body: Box<DynBody> = Box::new(StreamBody::new(frames));
                Ok::<_, BoxError>(Response::new(body))
            });
            let stack = ServiceBuilder::new()
                .layer(RetryLayer::new(RetryPolicy::new(Duration::from_secs(45))))
                .layer(CollectBodyLayer)
                .service(server);
            let request = Request::get("/api/v1/namespaces/web/pods?watch=true&timeoutSeconds=25")
                .body(Body::empty())
                .unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(1), stack.oneshot(request));
            let response = answer.await.expect("not held back").unwrap();
            let mut body = response.into_body();
            let first = tokio::time::timeout(Duration::from_secs(1), body.frame())
                .await
                .expect("the first event")
                .unwrap()
                .unwrap();
            assert!(
                first
                    .data_ref()
                    .is_some_and(|d| d.starts_with(b"{\"type\""))
            );
        }
    }
}
