//! The HTTP side of the test API server: accepting (optionally TLS)
//! connections, bearer-token auth, latency injection, discovery and routing of
//! resource paths to the handlers in `handlers`.
//!
//! Invariants: every error body is a `Status` object; every connection and
//! watch stream belongs to the current `conn_cancel` token, so cancelling it
//! drops them all (an API outage); a request counts as in flight from its
//! arrival until its response headers are ready (a watch's stream does not count).
//! Every log line records the client that caused it: the bearer token its
//! request presented (so tests can give each process its own in its kubeconfig).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::faults::Faults;
use super::handlers;
use super::resources::{self, ResourceType};
use super::store::{ApiError, Store};
use super::tls::Tls;

/// Response body: a whole JSON document or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// State shared by the server's tasks and the test-facing handle.
pub struct Shared {
    /// Objects, history, subscribers.
    pub store: Mutex<Store>,
    /// One line per request, with the client that sent it.
    pub log: Mutex<Vec<Logged>>,
    /// Period of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Mutex<Duration>,
    /// Delay before every response.
    pub latency: Mutex<Duration>,
    /// Cancelled by `close_watches`, then replaced.
    pub watch_cancel: Mutex<CancellationToken>,
    /// Cancelled by `stop`, then replaced.
    pub conn_cancel: Mutex<CancellationToken>,
    /// Requests being handled now (until their response headers are ready).
    pub in_flight: AtomicUsize,
    /// The most requests handled at once since the last reset.
    pub max_in_flight: AtomicUsize,
    /// Injected faults, per resource plural.
    pub faults: Mutex<Faults>,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// TLS material in https mode.
    pub tls: Option<Tls>,
    /// Where the server listens.
    pub addr: SocketAddr,
}

/// Lock a mutex, taking the data even if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One request-log entry.
#[derive(Clone, Debug)]
pub struct Logged {
    /// The bearer token of the request that caused the line; empty if it
    /// presented none (or the line was written outside a request).
    pub client: String,
    /// `LIST services`, `CREATE endpointslices default/web-abc`, ...
    pub line: String,
    /// When the line was logged (on the request's arrival, before it is served).
    pub at: std::time::Instant,
}

tokio::task_local! {
    /// The client of the request being handled (see [`Logged::client`]).
    static CLIENT: String;
}

impl Shared {
    /// Append a line to the request log, naming the current request's client.
    pub fn log(&self, line: String) {
        let client = CLIENT.try_with(Clone::clone).unwrap_or_default();
        lock(&self.log).push(Logged {
            client,
            line,
            at: std::time::Instant::now(),
        });
    }
}

/// A JSON response.
pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A 200 response with `bytes` as the body, whatever they are.
pub fn raw_response(bytes: &'static [u8]) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(bytes)).boxed_unsync());
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `Status` error response.
pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.status())
}

/// Accept connections until the task is aborted.
pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Watch events are small writes: without TCP_NODELAY, Nagle's algorithm
        // holds some of them ~40 ms (measured in the programming-latency bench).
        let _ = tcp.set_nodelay(true);
        let cancel = lock(&shared.conn_cancel).clone();
        tokio::spawn(serve_connection(shared.clone(), tcp, cancel));
    }
}

async fn serve_connection(shared: Arc<Shared>, tcp: TcpStream, cancel: CancellationToken) {
    let svc = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(shared, req).await) }
        })
    };
    let http = hyper::server::conn::http1::Builder::new();
    match &shared.tls {
        Some(tls) => {
            let handshake = tokio::time::timeout(Duration::from_secs(5), tls.acceptor.accept(tcp));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    _ => return,
                },
                () = cancel.cancelled() => return,
            };
            tokio::select! {
                _ = http.serve_connection(TokioIo::new(stream), svc) => {}
                () = cancel.cancelled() => {}
            }
        }
        None => {
            tokio::select! {
                _ = http.serve_connection(TokioIo::new(tcp), svc) => {}
                () = cancel.cancelled() => {}
            }
        }
    }
}

/// The bearer token a request presented, trimmed.
fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(token) = &shared.token else {
        return true;
    };
    bearer(req).is_some_and(|given| given == token)
}

/// Decode `%XX` and `+` of a query component.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make at most 0xff, so the cast cannot truncate.
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters, decoded.
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a boolean parameter is `true` or `1`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// A request for a resource path, after routing.
pub struct Target {
    /// The resource type.
    pub rt: &'static ResourceType,
    /// Namespace from the URL.
    pub namespace: Option<String>,
    /// Object name, for item paths.
    pub name: Option<String>,
}

fn route_resource(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..] if ResourceType::find(group, version, plural).is_some() => {
            (Some((*ns).to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, tail) = rest.split_first()?;
    let rt = ResourceType::find(group, version, plural)?;
    let name = match tail {
        [] => None,
        [name] | [name, "status"] => Some((*name).to_string()),
        _ => return None,
    };
    if (namespace.is_some() && !rt.namespaced)
        || (namespace.is_none() && name.is_some() && rt.namespaced)
    {
        return None;
    }
    Some(Target {
        rt,
        namespace,
        name,
    })
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let client = bearer(&req).unwrap_or_default().to_string();
    let resp = CLIENT.scope(client, respond(&shared, req)).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

async fn respond(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let latency = *lock(&shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = req.uri().path().to_string();
    if !authorized(shared, &req) {
        shared.log(format!("UNAUTHORIZED {} {path}", req.method()));
        return error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"));
    }
    let query = Query::parse(req.uri().query());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let discovery = match segments.as_slice() {
        ["version"] => Some(resources::version_info()),
        ["api"] => Some(resources::core_versions(&shared.addr.to_string())),
        ["apis"] => Some(resources::group_list()),
        ["api", v] => resources::resource_list("", v),
        ["apis", g] => resources::group(g),
        ["apis", g, v] => resources::resource_list(g, v),
        _ => None,
    };
    if let Some(doc) = discovery {
        shared.log(format!("DISCOVERY {path}"));
        return json_response(200, &doc);
    }
    let target = match segments.as_slice() {
        ["api", v, rest @ ..] => route_resource("", v, rest),
        ["apis", g, v, rest @ ..] => route_resource(g, v, rest),
        _ => None,
    };
    let Some(target) = target else {
        shared.log(format!("NOTFOUND {} {path}", req.method()));
        return error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    handlers::dispatch(shared, &method, &target, &query, &content_type, &body)
}
