//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): our own accept loop and
//! per-connection loop on top of [`wire`](super::wire), so TCP applies exactly
//! the protocol rules UDP does (one path for parse, FORMERR/NOTIMP, EDNS and
//! encoding; only the size limit differs).
//!
//! We serve TCP ourselves because hickory-server 0.26's TCP listener has one
//! timeout and no cap on concurrent connections: every accepted connection
//! gets a task, so held-open connections grow without bound. Here:
//! - at most [`TcpLimits::max_connections`] connections are open per
//!   listener; a connection over the cap is accepted and closed at once, so
//!   the client fails fast instead of waiting in the kernel's backlog;
//! - a connection with no query started and no answer pending for
//!   [`TcpLimits::idle`] is closed;
//! - a query whose bytes do not all arrive within [`TcpLimits::read`] of its
//!   first byte is abandoned with its connection (slow-loris); time the
//!   connection spends at its bound of pending answers (below) does not count;
//! - a batch of responses that cannot be written within [`TcpLimits::write`]
//!   closes the connection;
//! - queries pipelined on one connection are answered concurrently by the
//!   connection's own loop, with no task per query (`conn`): an answer
//!   ready at once is written with the others of its batch, one that waits
//!   on an upstream is written when it completes, so answers may come out of
//!   order (RFC 7766 §6.2.1.1) and a slow query never holds up the ones
//!   behind it. At most [`MAX_PENDING`] answers wait per connection; at the
//!   bound the connection reads no more queries until one completes.
//!
//! On shutdown (the token) the accept loop stops, and each connection
//! answers the queries it has already received, then closes.
//!
//! DNS over TLS (RFC 7858) is the same loop inside a TLS session: the
//! handshake must complete within [`TcpLimits::read`], and the certificate
//! presented is the listener's current one (a reload swaps it).
//!
//! `frames` is the length framing (pure), `wait` which timeout applies.

mod conn;
pub(crate) mod frames;
mod wait;

pub use conn::MAX_PENDING;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::Handler;
use super::server::TlsSwap;
use conn::answer_queries;

/// Limits on DNS-over-TCP connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections per listener.
    pub max_connections: usize,
    /// How long a connection with no answer pending may wait for the first
    /// byte of its next query.
    pub idle: Duration,
    /// How long a query may take to arrive once its first byte has.
    pub read: Duration,
    /// How long writing one batch of responses may take.
    pub write: Duration,
}

impl Default for TcpLimits {
    /// CoreDNS's TCP timeouts (read 3 s, write 5 s, idle 10 s); CoreDNS has
    /// no cap on plain TCP connections, so the cap is ours: 1,000, the order
    /// of BIND's and PowerDNS's TCP client limits scaled to a cluster DNS.
    fn default() -> Self {
        Self {
            max_connections: 1000,
            idle: Duration::from_secs(10),
            read: Duration::from_secs(3),
            write: Duration::from_secs(5),
        }
    }
}

/// Accept connections on `listener` until `token` is cancelled; connection
/// tasks are spawned on `tasks` so that shutdown can wait for them. With
/// `tls`, each connection is a TLS session with that certificate.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsSwap>,
    handler: Handler,
    limits: TcpLimits,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    accept(
        listener,
        limits.max_connections,
        &token,
        |stream, src, permit| {
            tasks.spawn(connection(
                stream,
                src,
                tls.as_ref().map(|t| t.load_full()),
                handler.clone(),
                limits,
                token.clone(),
                permit,
            ));
        },
    )
    .await;
}

/// The accept loop every stream listener (TCP, TLS, HTTPS) shares: until
/// `token` is cancelled, hand each connection to `start` with its permit, one
/// of `max_connections`; a connection over the cap is closed at once (the
/// client fails fast instead of waiting in the kernel's backlog).
pub(super) async fn accept(
    listener: TcpListener,
    max_connections: usize,
    token: &CancellationToken,
    mut start: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, src) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(error) => {
                    debug!(%error, "accept");
                    // EMFILE and friends: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%src, max = max_connections, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        start(stream, src, permit);
    }
}

async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    limits: TcpLimits,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let Some(config) = tls else {
        let end = answer_queries(&mut stream, src, &handler, limits, &token).await;
        debug!(%src, ?end, "tcp connection closed");
        return;
    };
    let Some(mut session) = handshake(stream, config, limits.read, &token).await else {
        return;
    };
    let end = answer_queries(&mut session, src, &handler, limits, &token).await;
    debug!(%src, ?end, "tls connection closed");
}

/// The server side of a TLS handshake on `stream`, within `limit`; `None`
/// (logged) when it fails, times out or shutdown comes first.
pub(super) async fn handshake(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    limit: Duration,
    token: &CancellationToken,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let src = stream.peer_addr().ok();
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    tokio::select! {
        () = token.cancelled() => None,
        r = tokio::time::timeout(limit, accept) => match r {
            Ok(Ok(session)) => Some(session),
            Ok(Err(error)) => {
                debug!(?src, %error, "tls handshake failed");
                None
            }
            Err(_) => {
                debug!(?src, "tls handshake timed out");
                None
            }
        },
    }
}
