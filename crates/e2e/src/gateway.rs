//! THE ONE STAND-IN of the login test: a small gateway in place of Istio's Envoy (which cannot
//! be built here), and the cluster's network in place of kube-proxy and cluster DNS for the
//! programs that run as local processes ([`crate::workload`]).
//!
//! Everything it does is read from what `apply` put into the cluster ([`Snapshot`]):
//!
//! - **Routing** as the Gateway API says for the HTTPRoutes attached to the Gateway: the Host
//!   header's name (port ignored, as Istio's virtual hosts `host` and `host:*` do) against
//!   `spec.hostnames`, then `PathPrefix` (whole path segments) and `Exact` matches, the longest
//!   match winning; the first `backendRefs` entry is the destination Service and port.
//! - **ext_authz** as Istio's sidecar does it for a destination workload selected by a CUSTOM
//!   AuthorizationPolicy (its namespace or the root namespace `istio-system`; `selector`
//!   against the pod labels; a rule matches on `to[].operation` `paths`, `notPaths`, `methods`,
//!   `hosts`, with Istio's path forms exact, `prefix*`, `*suffix` and `*`), with the mesh
//!   config's `extensionProviders[].envoyExtAuthzHttp` of the policy's provider, following
//!   Istio's ProviderExtAuthzHttp documentation and Envoy's HTTP ext_authz filter:
//!   - the check request has the original method, the original path and query behind
//!     `pathPrefix`, the original Host, `Content-Length: 0`, no body, `Authorization`, and only
//!     the headers `includeRequestHeadersInCheck` lists (the deprecated `includeHeadersInCheck`
//!     only when the former is empty, as istiod's `generateHTTPConfig` does), plus
//!     `includeAdditionalHeadersInCheck`; names match without case, `x-*` and `*-y` as
//!     patterns;
//!   - only a 200 answer allows; then the headers `headersToUpstreamOnAllow` lists are copied
//!     from the answer onto the upstream request (replacing the client's);
//!   - any other answer denies: the client gets its status and body, and, when
//!     `headersToDownstreamOnDeny` is set, only those headers plus `Location`,
//!     `WWW-Authenticate` and `Content-Length`; when it is empty, every header of the answer
//!     but Host (Envoy's `allowed_client_headers`);
//!   - no answer (the authorizer unreachable) denies with 403 (`statusOnError`), unless
//!     `failOpen`.
//! - **The cluster network** for a local process: an HTTP forward proxy (the process gets it as
//!   `HTTP_PROXY`) that resolves a host name the way the pod would, through the Deployment's
//!   `hostAliases` to a ClusterIP, or `<service>.<namespace>[.svc.cluster.local]`, then the
//!   Service's port and `targetPort` to the container port the local process listens on.
//!
//! What it does not do: TLS, retries, timeouts of routes, header or query matches, weights,
//! filters of HTTPRoutes, ALLOW/DENY policies, mTLS, `from` and `when` of rules (a rule with
//! them panics: the stand-in would not judge it as Istio does).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// The objects the stand-in follows, read from the API server after apply.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub services: Vec<Value>,
    pub deployments: Vec<Value>,
    pub http_routes: Vec<Value>,
    pub authorization_policies: Vec<Value>,
    /// The `istio` ConfigMap's `mesh` (istiod's mesh config), parsed.
    pub mesh: Value,
    /// `(namespace, name)` of the Gateway the routes must be attached to.
    pub gateway: (String, String),
}

impl Snapshot {
    /// Reads everything from the cluster.
    pub async fn read(client: &kube::Client, gateway: (&str, &str)) -> Snapshot {
        let list = |api_version: &'static str, kind: &'static str, plural: &'static str| {
            let api = crate::typed_api(client, api_version, kind, plural, None);
            async move {
                api.list(&Default::default())
                    .await
                    .unwrap_or_else(|e| panic!("listing {kind}: {e}"))
                    .items
                    .into_iter()
                    .map(|o| serde_json::to_value(o).expect("an object as JSON"))
                    .collect::<Vec<Value>>()
            }
        };
        let mesh_cm = crate::typed_api(
            client,
            "v1",
            "ConfigMap",
            "configmaps",
            Some("istio-system"),
        )
        .get("istio")
        .await
        .expect("the ConfigMap istio-system/istio (istiod's mesh config)");
        let mesh_text = mesh_cm.data["data"]["mesh"]
            .as_str()
            .expect("data.mesh in istio-system/istio")
            .to_string();
        let mesh: Value = serde_saphyr::from_str(&mesh_text).expect("the mesh config is YAML");
        Snapshot {
            services: list("v1", "Service", "services").await,
            deployments: list("apps/v1", "Deployment", "deployments").await,
            http_routes: list("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes").await,
            authorization_policies: list(
                "security.istio.io/v1",
                "AuthorizationPolicy",
                "authorizationpolicies",
            )
            .await,
            mesh,
            gateway: (gateway.0.to_string(), gateway.1.to_string()),
        }
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> &Value {
        self.deployments
            .iter()
            .find(|d| ns_of(d) == namespace && name_of(d) == name)
            .unwrap_or_else(|| panic!("no Deployment {namespace}/{name} in the cluster"))
    }
}

fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

use crate::json_strings as strings;

/// A workload that runs as a local process: its pod labels and where each container port
/// listens on loopback.
#[derive(Clone, Debug)]
pub struct LocalWorkload {
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `(port name, container port, local address)`.
    pub ports: Vec<(Option<String>, u16, SocketAddr)>,
    /// `(ip, hostnames)` of the pod template's `hostAliases`.
    pub host_aliases: Vec<(String, Vec<String>)>,
}

impl LocalWorkload {
    /// The pod template of `deployment`, with the container ports bound to local addresses by
    /// `local(container port)`.
    pub fn from_deployment(deployment: &Value, local: impl Fn(u16) -> Option<SocketAddr>) -> Self {
        let template = &deployment["spec"]["template"];
        let labels = template["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut ports = Vec::new();
        for container in template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for port in container["ports"].as_array().into_iter().flatten() {
                let number = port["containerPort"].as_u64().expect("containerPort") as u16;
                if let Some(addr) = local(number) {
                    ports.push((port["name"].as_str().map(String::from), number, addr));
                }
            }
        }
        let host_aliases = template["spec"]["hostAliases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["ip"].as_str().unwrap_or("").to_string(),
                    strings(&a["hostnames"]),
                )
            })
            .collect();
        LocalWorkload {
            namespace: ns_of(deployment).to_string(),
            name: name_of(deployment).to_string(),
            labels,
            ports,
            host_aliases,
        }
    }
}

/// The routing state: the snapshot and the workloads that run locally.
#[derive(Clone)]
pub struct Network {
    pub snapshot: Arc<Snapshot>,
    pub workloads: Arc<Mutex<Vec<LocalWorkload>>>,
    /// What each request did, for test failure messages: one line each.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Network {
    pub fn new(snapshot: Snapshot) -> Network {
        Network {
            snapshot: Arc::new(snapshot),
            workloads: Arc::default(),
            log: Arc::default(),
        }
    }

    pub fn add(&self, workload: LocalWorkload) {
        self.workloads.lock().unwrap().push(workload);
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    /// The Service `namespace/name`.
    fn service(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.snapshot
            .services
            .iter()
            .find(|s| ns_of(s) == namespace && name_of(s) == name)
    }

    /// The local workload behind a Service (its selector against the pod labels).
    fn workload_of(&self, service: &Value) -> Option<LocalWorkload> {
        let selector = service["spec"]["selector"].as_object()?;
        self.workloads
            .lock()
            .unwrap()
            .iter()
            .find(|w| {
                w.namespace == ns_of(service)
                    && selector
                        .iter()
                        .all(|(k, v)| w.labels.get(k).map(String::as_str) == v.as_str())
            })
            .cloned()
    }

    /// Service `namespace/name` port `port` -> the local address of the container port its
    /// `targetPort` names, and the workload.
    pub fn resolve_service(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> Result<(SocketAddr, LocalWorkload), String> {
        let service = self
            .service(namespace, name)
            .ok_or_else(|| format!("no Service {namespace}/{name}"))?;
        let service_port = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_u64() == Some(port as u64))
            .ok_or_else(|| format!("Service {namespace}/{name} has no port {port}"))?;
        let workload = self
            .workload_of(service)
            .ok_or_else(|| format!("no local workload behind Service {namespace}/{name}"))?;
        let target = &service_port["targetPort"];
        let found = workload
            .ports
            .iter()
            .find(|(port_name, number, _)| match target {
                Value::Number(n) => n.as_u64() == Some(*number as u64),
                Value::String(s) => port_name.as_deref() == Some(s.as_str()),
                _ => *number == port,
            });
        match found {
            Some((_, _, addr)) => Ok((*addr, workload.clone())),
            None => Err(format!(
                "Service {namespace}/{name} port {port} targets {target}, which {}/{} does not listen on",
                workload.namespace, workload.name
            )),
        }
    }

    /// A host name as a pod of `from` resolves it: its hostAliases (to a ClusterIP), or a
    /// Service's cluster DNS name.
    fn resolve_host(
        &self,
        from: &LocalWorkload,
        host: &str,
        port: u16,
    ) -> Result<SocketAddr, String> {
        if let Some((ip, _)) = from
            .host_aliases
            .iter()
            .find(|(_, names)| names.iter().any(|n| n == host))
        {
            let service = self
                .snapshot
                .services
                .iter()
                .find(|s| s["spec"]["clusterIP"].as_str() == Some(ip.as_str()))
                .ok_or_else(|| format!("hostAliases sends {host} to {ip}, which no Service has"))?;
            return self
                .resolve_service(ns_of(service), name_of(service), port)
                .map(|(a, _)| a);
        }
        let trimmed = host
            .trim_end_matches(".svc.cluster.local")
            .trim_end_matches(".svc");
        let (name, namespace) = trimmed
            .split_once('.')
            .unwrap_or((trimmed, from.namespace.as_str()));
        self.resolve_service(namespace, name, port).map(|(a, _)| a)
    }

    /// The HTTPRoute backend for a request: `(namespace, service, port)`.
    fn route(&self, host: &str, path: &str) -> Option<(String, String, u16)> {
        let host = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let (gw_ns, gw_name) = &self.snapshot.gateway;
        let mut best: Option<(usize, (String, String, u16))> = None;
        for route in &self.snapshot.http_routes {
            let attached = route["spec"]["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["name"].as_str() == Some(gw_name)
                        && p["namespace"].as_str().unwrap_or(ns_of(route)) == gw_ns
                });
            let hostnames = strings(&route["spec"]["hostnames"]);
            let host_ok = hostnames.is_empty()
                || hostnames.iter().any(|h| match h.strip_prefix("*.") {
                    Some(suffix) => host.ends_with(&format!(".{suffix}")),
                    None => *h == host,
                });
            if !attached || !host_ok {
                continue;
            }
            for rule in route["spec"]["rules"].as_array().into_iter().flatten() {
                let default_match =
                    vec![serde_json::json!({"path": {"type": "PathPrefix", "value": "/"}})];
                let matches = rule["matches"].as_array().unwrap_or(&default_match);
                for m in matches {
                    if m.get("headers").is_some()
                        || m.get("queryParams").is_some()
                        || m.get("method").is_some()
                    {
                        panic!(
                            "the stand-in gateway does not match headers, query or method (HTTPRoute {})",
                            name_of(route)
                        );
                    }
                    let kind = m["path"]["type"].as_str().unwrap_or("PathPrefix");
                    let value = m["path"]["value"].as_str().unwrap_or("/");
                    let score = match kind {
                        "Exact" if path == value => Some(10_000 + value.len()),
                        "PathPrefix" if prefix_matches(path, value) => Some(value.len()),
                        "Exact" | "PathPrefix" => None,
                        other => panic!("the stand-in gateway does not do path match type {other}"),
                    };
                    let Some(score) = score else { continue };
                    let backend = &rule["backendRefs"][0];
                    let target = (
                        backend["namespace"]
                            .as_str()
                            .unwrap_or(ns_of(route))
                            .to_string(),
                        backend["name"]
                            .as_str()
                            .expect("backendRefs[].name")
                            .to_string(),
                        backend["port"].as_u64().expect("backendRefs[].port") as u16,
                    );
                    if best.as_ref().is_none_or(|(s, _)| score > *s) {
                        best = Some((score, target));
                    }
                }
            }
        }
        best.map(|(_, t)| t)
    }

    /// The CUSTOM policy's provider that applies to a request to `workload`, if any.
    fn custom_provider(
        &self,
        workload: &LocalWorkload,
        host: &str,
        method: &str,
        path: &str,
    ) -> Option<String> {
        for policy in &self.snapshot.authorization_policies {
            let namespace = ns_of(policy);
            if namespace != workload.namespace && namespace != "istio-system" {
                continue;
            }
            let spec = &policy["spec"];
            if spec["action"].as_str() != Some("CUSTOM") {
                continue;
            }
            if let Some(labels) = spec["selector"]["matchLabels"].as_object()
                && !labels
                    .iter()
                    .all(|(k, v)| workload.labels.get(k).map(String::as_str) == v.as_str())
            {
                continue;
            }
            let matched = spec["rules"].as_array().into_iter().flatten().any(|rule| {
                if rule.get("from").is_some() || rule.get("when").is_some() {
                    panic!("the stand-in gateway does not judge `from` or `when` (AuthorizationPolicy {})", name_of(policy));
                }
                let Some(to) = rule["to"].as_array() else {
                    return true;
                };
                to.iter().any(|t| operation_matches(&t["operation"], host, method, path))
            });
            if matched {
                return spec["provider"]["name"].as_str().map(String::from);
            }
        }
        None
    }

    fn provider(&self, name: &str) -> Option<Value> {
        self.snapshot.mesh["extensionProviders"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str() == Some(name))
            .map(|p| p["envoyExtAuthzHttp"].clone())
    }
}

/// Gateway API `PathPrefix`: whole segments.
fn prefix_matches(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path[prefix.len()..].starts_with('/'))
}

/// Istio's header lists: names without case, `prefix*` and `*suffix` patterns.
fn header_listed(list: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    list.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        if let Some(prefix) = p.strip_suffix('*') {
            name.starts_with(prefix)
        } else if let Some(suffix) = p.strip_prefix('*') {
            name.ends_with(suffix)
        } else {
            p == name
        }
    })
}

/// Istio's string match of paths and hosts: exact, `prefix*`, `*suffix`, `*`.
fn istio_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else {
        pattern == value
    }
}

fn operation_matches(op: &Value, host: &str, method: &str, path: &str) -> bool {
    let any = |key: &str, value: &str, default: bool| {
        let patterns = strings(&op[key]);
        if patterns.is_empty() {
            default
        } else {
            patterns.iter().any(|p| istio_match(p, value))
        }
    };
    for unsupported in ["ports", "notPorts", "notHosts", "notMethods"] {
        if op.get(unsupported).is_some() {
            panic!("the stand-in gateway does not judge operation.{unsupported}");
        }
    }
    any("paths", path, true)
        && !any("notPaths", path, false)
        && any("methods", method, true)
        && any("hosts", host, true)
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, body: &str) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One HTTP/1.1 exchange with `addr`: method, path, headers (Host included) and body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(u16, Vec<(String, String)>, Bytes), String> {
    let work = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let mut request = Request::builder().method(method).uri(path_and_query);
        for (n, v) in headers {
            request = request.header(n.as_str(), v.as_str());
        }
        let request = request
            .header("connection", "close")
            .header("content-length", body.len().to_string())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = header_pairs(response.headers(), &[]);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        driver.abort();
        Ok((status, headers, body))
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .unwrap_or_else(|_| Err(format!("{addr}: no answer within 20s")))
}

/// A request's whole body; empty if it could not be read.
async fn body_bytes(request: Request<Incoming>) -> Bytes {
    request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// A message's headers as `(name, value)` pairs, without those named in `skip`.
fn header_pairs(headers: &hyper::HeaderMap, skip: &[&str]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| !skip.contains(&n.as_str()))
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn build(status: u16, headers: &[(String, String)], body: Bytes) -> Answer {
    let mut response = Response::builder().status(status);
    for (n, v) in headers {
        if !HOP_BY_HOP.contains(&n.as_str()) && n != "content-length" {
            response = response.header(n.as_str(), v.as_str());
        }
    }
    response.body(Full::new(body)).expect("a response")
}

/// The gateway: routes, checks with ext_authz, forwards.
async fn ingress(network: Network, request: Request<Incoming>) -> Answer {
    let method = request.method().as_str().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let path = request.uri().path().to_string();
    let host = request
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut headers: Vec<(String, String)> = header_pairs(request.headers(), &HOP_BY_HOP);
    let body = body_bytes(request).await;
    // As Envoy at the edge: the scheme the client used and its address.
    headers.retain(|(n, _)| n != "x-forwarded-proto" && n != "x-forwarded-for");
    headers.push(("x-forwarded-proto".into(), "http".into()));
    headers.push(("x-forwarded-for".into(), "127.0.0.1".into()));

    let Some((ns, service, port)) = network.route(&host, &path) else {
        network.note(format!("{method} {host}{path}: no route -> 404"));
        return answer(404, "no route");
    };
    let (upstream, workload) = match network.resolve_service(&ns, &service, port) {
        Ok(found) => found,
        Err(e) => {
            network.note(format!("{method} {host}{path}: {e} -> 503"));
            return answer(503, &e);
        }
    };

    if let Some(provider_name) = network.custom_provider(&workload, &host, &method, &path) {
        let Some(provider) = network.provider(&provider_name) else {
            network.note(format!(
                "{method} {host}{path}: provider {provider_name} not in the mesh config -> 403"
            ));
            return answer(403, "RBAC: access denied");
        };
        match check(
            &network,
            &provider,
            &method,
            &path_and_query,
            &host,
            &headers,
        )
        .await
        {
            Ok((200, auth_headers, _)) => {
                let upstream = strings(&provider["headersToUpstreamOnAllow"]);
                let values: Vec<(String, String)> = auth_headers
                    .iter()
                    .filter(|(n, _)| header_listed(&upstream, n))
                    .cloned()
                    .collect();
                headers.retain(|(n, _)| !values.iter().any(|(v, _)| v.eq_ignore_ascii_case(n)));
                headers.extend(values);
                network.note(format!(
                    "{method} {host}{path}: ext_authz {provider_name} allowed"
                ));
            }
            Ok((status, auth_headers, auth_body)) => {
                let listed = strings(&provider["headersToDownstreamOnDeny"]);
                let back: Vec<(String, String)> = if listed.is_empty() {
                    auth_headers
                        .into_iter()
                        .filter(|(n, _)| n != "host")
                        .collect()
                } else {
                    auth_headers
                        .into_iter()
                        .filter(|(n, _)| {
                            ["location", "www-authenticate"].contains(&n.as_str())
                                || header_listed(&listed, n)
                        })
                        .collect()
                };
                network.note(format!(
                    "{method} {host}{path}: ext_authz {provider_name} denied with {status}; back to the client: {:?}",
                    back.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
                ));
                return build(status, &back, auth_body);
            }
            Err(e) => {
                let fail_open = provider["failOpen"].as_bool().unwrap_or(false);
                network.note(format!("{method} {host}{path}: ext_authz {provider_name} unreachable ({e}), fail open: {fail_open}"));
                if !fail_open {
                    let status = provider["statusOnError"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(403);
                    return answer(status, "RBAC: access denied");
                }
            }
        }
    }

    match exchange(upstream, &method, &path_and_query, &headers, body).await {
        Ok((status, h, b)) => {
            network.note(format!(
                "{method} {host}{path}: {ns}/{service}:{port} answered {status}"
            ));
            build(status, &h, b)
        }
        Err(e) => {
            network.note(format!(
                "{method} {host}{path}: {ns}/{service}:{port} failed: {e}"
            ));
            answer(503, &format!("upstream connect error: {e}"))
        }
    }
}

/// The ext_authz check request, as Envoy's HTTP ext_authz filter configured by Istio sends it.
async fn check(
    network: &Network,
    provider: &Value,
    method: &str,
    path_and_query: &str,
    host: &str,
    headers: &[(String, String)],
) -> Result<(u16, Vec<(String, String)>, Bytes), String> {
    let service = provider["service"]
        .as_str()
        .ok_or("the provider has no service")?;
    let port = provider["port"]
        .as_u64()
        .ok_or("the provider has no port")? as u16;
    let (addr, _) = {
        let host = service
            .trim_end_matches(".svc.cluster.local")
            .trim_end_matches(".svc");
        let (name, namespace) = host
            .split_once('.')
            .ok_or_else(|| format!("service {service} names no namespace"))?;
        network.resolve_service(namespace, name, port)?
    };
    // Istio: the deprecated includeHeadersInCheck only when includeRequestHeadersInCheck is
    // empty. Envoy: Host, Method, Path, Content-Length and Authorization always go.
    let mut include = strings(&provider["includeRequestHeadersInCheck"]);
    if include.is_empty() {
        include = strings(&provider["includeHeadersInCheck"]);
    }
    include.push("authorization".into());
    let mut sent: Vec<(String, String)> = vec![("host".into(), host.to_string())];
    sent.extend(
        headers
            .iter()
            .filter(|(n, _)| header_listed(&include, n))
            .cloned(),
    );
    if let Some(extra) = provider["includeAdditionalHeadersInCheck"].as_object() {
        for (n, v) in extra {
            sent.push((n.clone(), v.as_str().unwrap_or("").to_string()));
        }
    }
    let prefix = provider["pathPrefix"].as_str().unwrap_or("");
    exchange(
        addr,
        method,
        &format!("{prefix}{path_and_query}"),
        &sent,
        Bytes::new(),
    )
    .await
}

/// The cluster network for one local workload: an HTTP forward proxy.
async fn egress(network: Network, from: String, request: Request<Incoming>) -> Answer {
    let workload = network
        .workloads
        .lock()
        .unwrap()
        .iter()
        .find(|w| w.name == from)
        .cloned();
    let Some(workload) = workload else {
        return answer(502, "unknown workload");
    };
    let uri = request.uri().clone();
    let (Some(host), Some(path_and_query)) = (uri.host(), uri.path_and_query()) else {
        return answer(400, "a proxy request needs an absolute URI");
    };
    let port = uri.port_u16().unwrap_or(80);
    let addr = match network.resolve_host(&workload, host, port) {
        Ok(a) => a,
        Err(e) => {
            network.note(format!("{from} -> {uri}: {e}"));
            return answer(502, &e);
        }
    };
    let method = request.method().as_str().to_string();
    let headers: Vec<(String, String)> = header_pairs(request.headers(), &HOP_BY_HOP);
    let path_and_query = path_and_query.as_str().to_string();
    let body = body_bytes(request).await;
    match exchange(addr, &method, &path_and_query, &headers, body).await {
        Ok((status, h, b)) => {
            network.note(format!(
                "{from} -> {method} http://{host}:{port}{}: {status}",
                uri.path()
            ));
            build(status, &h, b)
        }
        Err(e) => answer(502, &e),
    }
}

/// Serves `handler` on a fresh loopback port until the runtime ends. Returns the address.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("a local address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Starts the gateway on a loopback port (in place of kind's host port -> nodePort -> Envoy).
pub async fn start_gateway(network: Network) -> SocketAddr {
    serve(move |req| ingress(network.clone(), req)).await
}

/// Starts the cluster network for the workload (Deployment) `name`: give the process
/// `HTTP_PROXY=http://<address>`.
pub async fn start_egress(network: Network, name: &str) -> SocketAddr {
    let name = name.to_string();
    serve(move |req| egress(network.clone(), name.clone(), req)).await
}

/// Serves `page` on `/` and `/index.html` and 404 elsewhere, as nginx's default site does:
/// stands in for the nginx container (kwok runs no containers).
pub async fn start_app(page: &'static str) -> SocketAddr {
    serve(move |req: Request<Incoming>| async move {
        match req.uri().path() {
            "/" | "/index.html" => Response::builder()
                .status(200)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from(page)))
                .expect("a response"),
            _ => answer(404, "404 Not Found"),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_path_forms_and_gateway_prefixes() {
        assert!(istio_match("/*", "/index.html"));
        assert!(istio_match("/", "/"));
        assert!(!istio_match("/", "/index.html"));
        assert!(istio_match("*.html", "/a/index.html"));
        assert!(istio_match("*", "/x"));
        assert!(prefix_matches("/oauth2/callback", "/oauth2"));
        assert!(!prefix_matches("/oauth2x", "/oauth2"));
        assert!(prefix_matches("/anything", "/"));
        let list = ["Cookie".to_string(), "x-auth-*".to_string()];
        assert!(header_listed(&list, "cookie"));
        assert!(header_listed(&list, "X-Auth-Request-Email"));
        assert!(!header_listed(&list, "set-cookie"));
    }
}
