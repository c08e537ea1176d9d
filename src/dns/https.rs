//! DNS over HTTPS (RFC 8484) for `https://` server blocks: `GET
//! /dns-query?dns=BASE64URL` and `POST /dns-query` with an
//! `application/dns-message` body, over HTTP/2 or HTTP/1.1 (ALPN) inside TLS.
//!
//! The DNS message goes through the same [`wire`] path and
//! plugin chain as over TCP (no size limit but the message's own, FORMERR and
//! NOTIMP as DNS answers with status 200), so a `https://` block answers
//! exactly what a `dns://` block with the same plugins answers. Metrics label
//! it `proto="tcp"` with `server="https://:PORT"`, as CoreDNS does.
//!
//! HTTP errors: a path other than `/dns-query` is 404, another method 405, a
//! POST body of another media type 415, a missing or undecodable `dns`
//! parameter or a body that is no DNS query 400, a body over 65,535 bytes 413.
//! A response carries `Cache-Control: max-age=` the smallest TTL among its
//! answer and authority records (RFC 8484 §5.1).
//!
//! Limits: at most [`TcpLimits::max_connections`] connections per listener,
//! the TLS handshake and an HTTP/1.1 request head within
//! [`TcpLimits::read`], at most 250 concurrent HTTP/2 streams per connection
//! (Go's default, as CoreDNS), and a connection with no request for
//! [`TcpLimits::idle`] is closed. On shutdown each connection finishes its requests, then closes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::server::TlsSwap;
use super::tcp::TcpLimits;
use super::wire::{self, Parsed};
use super::{Answer, Handler, Transport};

/// The path CoreDNS and RFC 8484's examples use.
pub const PATH: &str = "/dns-query";
/// The media type of a DNS message.
const DNS_MESSAGE: &str = "application/dns-message";
/// Concurrent HTTP/2 streams per connection: Go's HTTP/2 default (250),
/// which CoreDNS's DoH server has. A client that opens more before it has
/// read our SETTINGS (dnsperf fires its whole window at once) gets
/// REFUSED_STREAM for the excess; 64 (our TCP bound) refused most of a
/// 500-query window in `benches/load/encrypted.sh`.
const MAX_STREAMS: u32 = 250;
/// The largest DNS message (a POST body over this is refused).
const MAX_MESSAGE: usize = 65_535;

/// Accept connections on `listener` until `token` is cancelled; each is a
/// TLS session presenting `tls`'s current certificate.
pub async fn serve(
    listener: TcpListener,
    tls: TlsSwap,
    handler: Handler,
    limits: TcpLimits,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    super::tcp::accept(
        listener,
        limits.max_connections,
        &token,
        |stream, src, permit| {
            tasks.spawn(connection(
                stream,
                src,
                tls.load_full(),
                handler.clone(),
                limits,
                token.clone(),
                permit,
            ));
        },
    )
    .await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    src: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    handler: Handler,
    limits: TcpLimits,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let Some(session) = super::tcp::handshake(stream, config, limits.read, &token).await else {
        return;
    };
    let activity = Arc::new(Activity::new());
    let seen = activity.clone();
    let service = service_fn(move |req| {
        let handler = handler.clone();
        let busy = seen.begin();
        async move {
            let response = respond(&handler, src, req).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(limits.idle)
        .keep_alive_timeout(limits.write);
    let conn = builder.serve_connection(TokioIo::new(session), service);
    tokio::pin!(conn);
    let result = loop {
        let idle_at = activity.idle_deadline(limits.idle);
        tokio::select! {
            r = conn.as_mut() => break r,
            () = token.cancelled() => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            () = tokio::time::sleep_until(idle_at) => {
                if activity.idle_for(limits.idle) {
                    debug!(%src, "https connection idle; closing");
                    conn.as_mut().graceful_shutdown();
                    break conn.await;
                }
            }
        }
    };
    if let Err(error) = result {
        debug!(%src, %error, "https connection ended");
    }
}

/// When a connection last started or finished a request, and how many it
/// has in flight: a connection with none in flight for `idle` is closed
/// (HTTP/1.1 keep-alive ends, HTTP/2 gets GOAWAY), as CoreDNS's DoH server
/// closes idle connections after its idle timeout.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

/// One request in flight; finishing it (drop) counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            last: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// When the connection becomes idle if nothing happens meanwhile.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.busy() {
            return Instant::now() + idle;
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) + idle
    }

    /// Nothing in flight, and nothing started or finished for `idle`.
    fn idle_for(&self, idle: Duration) -> bool {
        !self.busy() && Instant::now() >= self.idle_deadline(idle)
    }
}

/// The HTTP response to one request.
async fn respond(
    handler: &Handler,
    src: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let message = match message(req).await {
        Ok(m) => m,
        Err(status) => return status_only(status),
    };
    let mut out = Vec::new();
    let ttl = match wire::parse(&message, src, Transport::Tcp) {
        Parsed::Drop => return status_only(StatusCode::BAD_REQUEST),
        Parsed::Reject { header, rcode } => {
            if wire::encode_reject(&header, rcode, &mut out).is_none() {
                return status_only(StatusCode::INTERNAL_SERVER_ERROR);
            }
            None
        }
        Parsed::Query(req) => {
            let answer = handler.answer(&req.query).await;
            if wire::encode(&req, &answer, Transport::Tcp, &mut out).is_none() {
                return status_only(StatusCode::INTERNAL_SERVER_ERROR);
            }
            min_ttl(&answer)
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(out)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Some(ttl) = ttl
        && let Ok(v) = HeaderValue::from_str(&format!("max-age={ttl}"))
    {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}

/// The DNS message a request carries, or the HTTP status refusing it.
async fn message(req: Request<Incoming>) -> Result<Vec<u8>, StatusCode> {
    if req.uri().path() != PATH {
        return Err(StatusCode::NOT_FOUND);
    }
    match *req.method() {
        Method::GET => dns_param(req.uri().query().unwrap_or("")).ok_or(StatusCode::BAD_REQUEST),
        Method::POST => {
            let media = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                });
            if media.as_deref() != Some(DNS_MESSAGE) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let body = Limited::new(req.into_body(), MAX_MESSAGE)
                .collect()
                .await
                .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
            Ok(body.to_bytes().to_vec())
        }
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// The `dns` parameter of a query string, base64url-decoded (RFC 8484 says
/// without padding; padded values are accepted too).
fn dns_param(query: &str) -> Option<Vec<u8>> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("dns="))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .or_else(|_| URL_SAFE.decode(value))
        .ok()
        .filter(|m| !m.is_empty() && m.len() <= MAX_MESSAGE)
}

/// The smallest TTL of the answer and authority records (none: no caching hint).
fn min_ttl(answer: &Answer) -> Option<u32> {
    answer
        .answers
        .iter()
        .chain(&answer.authority)
        .map(|r| r.ttl)
        .min()
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record};

    use super::*;

    #[test]
    fn the_dns_parameter_is_base64url_with_or_without_padding() {
        // RFC 8484 §4.1.1's example query (www.example.com A, ID 0).
        let rfc = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let want = URL_SAFE_NO_PAD.decode(rfc).unwrap();
        assert_eq!(dns_param(&format!("dns={rfc}")), Some(want.clone()));
        assert_eq!(dns_param(&format!("ct=x&dns={rfc}")), Some(want.clone()));
        let padded = URL_SAFE.encode(&want[..want.len() - 1]);
        assert!(padded.ends_with('='));
        assert_eq!(
            dns_param(&format!("dns={padded}")),
            Some(want[..want.len() - 1].to_vec())
        );
        assert_eq!(dns_param(""), None);
        assert_eq!(dns_param("dns="), None);
        assert_eq!(dns_param("dns=!!!"), None);
        assert_eq!(dns_param("name=www.example.com"), None);
    }

    #[test]
    fn max_age_is_the_smallest_answer_or_authority_ttl() {
        let rec = |ttl| {
            let mut r = Record::from_rdata(Name::root(), ttl, RData::A(A::new(192, 0, 2, 1)));
            r.ttl = ttl;
            r
        };
        let mut a = Answer::rcode(ResponseCode::NoError);
        assert_eq!(min_ttl(&a), None);
        a.answers = vec![rec(30), rec(5)];
        a.authority = vec![rec(60)];
        a.additionals = vec![rec(1)];
        assert_eq!(min_ttl(&a), Some(5), "additionals do not count");
    }
}
