//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): our own accept loop and
//! per-connection loop on top of [`wire`], so TCP applies exactly the
//! protocol rules UDP does (one path for parse, FORMERR/NOTIMP, EDNS and
//! encoding; only the size limit differs).
//!
//! We serve TCP ourselves because hickory-server 0.26's TCP listener has one
//! timeout and no cap on concurrent connections: every accepted connection
//! gets a task, so held-open connections grow without bound. Here:
//! - at most [`TcpLimits::max_connections`] connections are open per
//!   listener; a connection over the cap is accepted and closed at once, so
//!   the client fails fast instead of waiting in the kernel's backlog;
//! - a connection with no query started within [`TcpLimits::idle`] is closed;
//! - a query whose bytes do not all arrive within [`TcpLimits::read`] of its
//!   first byte is abandoned with its connection (slow-loris);
//! - a response that cannot be written within [`TcpLimits::write`] closes the connection;
//! - queries pipelined on one connection are answered one after the other,
//!   in the order they arrived.
//!
//! On shutdown (the token) the accept loop stops, and each connection
//! finishes the query it is answering, then closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::wire::{self, Parsed};
use super::{Handler, Transport};

/// Limits on DNS-over-TCP connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections per listener.
    pub max_connections: usize,
    /// How long a connection may wait for the first byte of its next query.
    pub idle: Duration,
    /// How long a query may take to arrive once its first byte has.
    pub read: Duration,
    /// How long writing one response may take.
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
/// tasks are spawned on `tasks` so that shutdown can wait for them.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: TcpLimits,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, src) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(error) => {
                    debug!(%error, "tcp accept");
                    // EMFILE and friends: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%src, max = limits.max_connections, "tcp connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            src,
            handler.clone(),
            limits,
            token.clone(),
            permit,
        ));
    }
}

/// Why a connection ended (for the debug log).
#[derive(Debug)]
enum End {
    Closed,
    Idle,
    SlowRead,
    SlowWrite,
    Shutdown,
    #[allow(dead_code, reason = "read through Debug, in the log line")]
    Io(std::io::Error),
}

async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    handler: Handler,
    limits: TcpLimits,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let end = answer_queries(&mut stream, src, &handler, limits, &token).await;
    debug!(%src, ?end, "tcp connection closed");
}

async fn answer_queries(
    stream: &mut TcpStream,
    src: SocketAddr,
    handler: &Handler,
    limits: TcpLimits,
    token: &CancellationToken,
) -> End {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        // Idle: wait for the first octet of the next query.
        let mut first = [0u8; 1];
        let n = tokio::select! {
            _ = token.cancelled() => return End::Shutdown,
            r = tokio::time::timeout(limits.idle, stream.read(&mut first)) => match r {
                Err(_) => return End::Idle,
                Ok(Err(e)) => return End::Io(e),
                Ok(Ok(n)) => n,
            },
        };
        if n == 0 {
            return End::Closed;
        }
        // Read: the rest of the length prefix and the message, bounded as a whole.
        let rest = async {
            let second = stream.read_u8().await?;
            let len = usize::from(u16::from_be_bytes([first[0], second]));
            buf.resize(len, 0);
            stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(len)
        };
        let len = match tokio::time::timeout(limits.read, rest).await {
            Err(_) => return End::SlowRead,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::Closed,
            Ok(Err(e)) => return End::Io(e),
            Ok(Ok(len)) => len,
        };
        let encoded = match wire::parse(&buf[..len], src, Transport::Tcp) {
            Parsed::Drop => continue,
            Parsed::Reject { header, rcode } => {
                wire::encode_reject(&header, rcode, &mut out).is_some()
            }
            Parsed::Query(req) => {
                let answer = handler.answer(&req.query).await;
                wire::encode(&req, &answer, Transport::Tcp, &mut out).is_some()
            }
        };
        if !encoded {
            continue;
        }
        match tokio::time::timeout(limits.write, write_framed(stream, &out)).await {
            Err(_) => return End::SlowWrite,
            Ok(Err(e)) => return End::Io(e),
            Ok(Ok(())) => {}
        }
    }
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(std::io::Error::other)?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}
