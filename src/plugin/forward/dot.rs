//! DNS over TLS to one `tls://` upstream (RFC 7858) on a persistent,
//! pipelined connection.
//!
//! A TLS handshake costs round trips and CPU that a per-query connection
//! would pay every time, so each upstream keeps one connection open and
//! every query to it goes over that connection, concurrently: queries are
//! written as they come, answers matched to them by message ID as they
//! arrive (in any order). The connection closes after `expire` (CoreDNS's
//! option, default 10 s) with nothing in flight, or when the upstream closes
//! it or an I/O error ends it; the next query dials a new one.
//!
//! Invariants:
//! - at most one connection per upstream is dialled at a time (the dial holds
//!   the upstream's lock), so a burst of queries shares one handshake;
//! - IDs are unique among the queries in flight on a connection: each query
//!   gets a free ID on the wire and its own ID back in the answer;
//! - at most [`MAX_IN_FLIGHT`] queries wait per connection; past that, queries
//!   wait to be written (bounded by the caller's timeout); a query whose caller
//!   gave up no longer counts;
//! - a query that fails on a reused connection (the upstream closed it while
//!   idle) is retried once on a fresh one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::exchange::ExchangeError;
use super::policy::random_u64;
use crate::dns::tcp::frames::{Frames, push_framed};

/// Queries waiting for answers on one connection.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// How long writing one query may take before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a query found a connection open or had to dial one (CoreDNS's
/// connection cache hit and miss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// An open connection carried the query.
    Hit,
    /// A new connection was dialled for it.
    Miss,
}

/// One upstream's TLS settings and its connection, if open.
pub(crate) struct DotUpstream {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    expire: Duration,
    token: CancellationToken,
    live: Mutex<Option<mpsc::Sender<Job>>>,
}

/// One query for the connection task.
struct Job {
    bytes: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

impl std::fmt::Debug for DotUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotUpstream")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .field("expire", &self.expire)
            .finish_non_exhaustive()
    }
}

impl DotUpstream {
    /// Settings for `addr`, verified as `name`; connection tasks end with `token`.
    pub(crate) fn new(
        addr: SocketAddr,
        name: ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
        expire: Duration,
        token: CancellationToken,
    ) -> Self {
        Self {
            addr,
            name,
            connector: TlsConnector::from(config),
            expire,
            token,
            live: Mutex::new(None),
        }
    }

    /// Send one query (`bytes`, a whole DNS message) and wait for the answer
    /// with its ID; the caller bounds the wait.
    pub(crate) async fn exchange(&self, bytes: &[u8]) -> Result<(Vec<u8>, Reuse), ExchangeError> {
        let (conn, reuse) = self.connection().await?;
        match send(&conn, bytes).await {
            Some(reply) => Ok((reply, reuse)),
            None if reuse == Reuse::Hit => {
                debug!(upstream = %self.addr, "tls connection closed under a query; dialling again");
                let conn = self.redial(&conn).await?;
                send(&conn, bytes)
                    .await
                    .map(|reply| (reply, Reuse::Miss))
                    .ok_or_else(closed)
            }
            None => Err(closed()),
        }
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<(mpsc::Sender<Job>, Reuse), ExchangeError> {
        let mut live = self.live.lock().await;
        if let Some(conn) = live.as_ref().filter(|c| !c.is_closed()) {
            return Ok((conn.clone(), Reuse::Hit));
        }
        let conn = self.dial().await?;
        *live = Some(conn.clone());
        Ok((conn, Reuse::Miss))
    }

    /// A new connection in place of `failed` (unless another query already
    /// replaced it).
    async fn redial(&self, failed: &mpsc::Sender<Job>) -> Result<mpsc::Sender<Job>, ExchangeError> {
        let mut live = self.live.lock().await;
        if let Some(conn) = live
            .as_ref()
            .filter(|c| !c.is_closed() && !c.same_channel(failed))
        {
            return Ok(conn.clone());
        }
        let conn = self.dial().await?;
        *live = Some(conn.clone());
        Ok(conn)
    }

    async fn dial(&self) -> Result<mpsc::Sender<Job>, ExchangeError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        tokio::spawn(run(tls, rx, self.expire, self.token.clone(), self.addr));
        Ok(tx)
    }
}

fn closed() -> ExchangeError {
    ExchangeError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "tls connection closed before the answer",
    ))
}

/// Hand `bytes` to the connection and wait for its answer; `None` when the
/// connection ended first.
async fn send(conn: &mpsc::Sender<Job>, bytes: &[u8]) -> Option<Vec<u8>> {
    let (reply, answer) = oneshot::channel();
    conn.send(Job {
        bytes: bytes.to_vec(),
        reply,
    })
    .await
    .ok()?;
    answer.await.ok()
}

/// Queries in flight by wire ID: the caller's own ID and where the answer goes.
type Waiting = HashMap<u16, (u16, oneshot::Sender<Vec<u8>>)>;

/// The connection's loop: write jobs, match answers, close when idle for
/// `expire`, on error, on EOF or when `token` is cancelled. Dropping the
/// waiting senders tells their callers the connection ended.
async fn run(
    stream: TlsStream<TcpStream>,
    mut jobs: mpsc::Receiver<Job>,
    expire: Duration,
    token: CancellationToken,
    addr: SocketAddr,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut frames = Frames::default();
    let mut waiting: Waiting = HashMap::new();
    let mut out = Vec::new();
    let idle = tokio::time::sleep(expire);
    tokio::pin!(idle);
    let end = loop {
        if waiting.len() >= MAX_IN_FLIGHT {
            waiting.retain(|_, (_, tx)| !tx.is_closed());
        }
        tokio::select! {
            () = token.cancelled() => break "shutdown",
            job = jobs.recv(), if waiting.len() < MAX_IN_FLIGHT => {
                let Some(job) = job else { break "unused" };
                let Some(framed) = frame(job, &mut waiting, &mut out) else { continue };
                let write = async {
                    wr.write_all(framed).await?;
                    wr.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break "write failed",
                }
                idle.as_mut().reset(tokio::time::Instant::now() + expire);
            }
            r = rd.read_buf(frames.spare()) => {
                match r {
                    Ok(0) => break "closed by the upstream",
                    Err(_) => break "read failed",
                    Ok(_) => {}
                }
                while let Some(msg) = frames.next() {
                    deliver(msg, &mut waiting);
                }
            }
            () = &mut idle => {
                waiting.retain(|_, (_, tx)| !tx.is_closed());
                if waiting.is_empty() {
                    break "expired";
                }
                idle.as_mut().reset(tokio::time::Instant::now() + expire);
            }
        }
    };
    debug!(upstream = %addr, end, "tls connection closed");
}

/// The job framed with a free wire ID into `out`, registered in `waiting`;
/// `None` for a message too short or too long to send.
fn frame<'o>(mut job: Job, waiting: &mut Waiting, out: &'o mut Vec<u8>) -> Option<&'o [u8]> {
    let own = u16::from_be_bytes([*job.bytes.first()?, *job.bytes.get(1)?]);
    let mut id = own;
    // Random IDs until a free one: at most MAX_IN_FLIGHT of 65,536 are taken.
    while waiting.contains_key(&id) {
        // Truncation to 16 bits is the point: a random ID.
        id = random_u64() as u16;
    }
    job.bytes[..2].copy_from_slice(&id.to_be_bytes());
    out.clear();
    if !push_framed(out, &job.bytes) {
        return None;
    }
    waiting.insert(id, (own, job.reply));
    Some(out)
}

/// Give an answer to the query waiting for its ID (with that query's own ID
/// put back); answers nobody waits for are dropped.
fn deliver(msg: &[u8], waiting: &mut Waiting) {
    let [a, b, ..] = *msg else { return };
    let Some((own, tx)) = waiting.remove(&u16::from_be_bytes([a, b])) else {
        return;
    };
    let mut reply = msg.to_vec();
    reply[..2].copy_from_slice(&own.to_be_bytes());
    let _ = tx.send(reply);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u16) -> (Job, oneshot::Receiver<Vec<u8>>) {
        let (reply, rx) = oneshot::channel();
        let mut bytes = id.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"rest");
        (Job { bytes, reply }, rx)
    }

    #[test]
    fn colliding_ids_get_distinct_wire_ids_and_their_own_back() {
        let mut waiting = Waiting::new();
        let mut out = Vec::new();
        let (j1, mut r1) = job(7);
        let (j2, mut r2) = job(7);
        let w1 = frame(j1, &mut waiting, &mut out).unwrap().to_vec();
        let w2 = frame(j2, &mut waiting, &mut out).unwrap().to_vec();
        // Length prefix, then the message with its wire ID.
        assert_eq!(&w1[..2], &6u16.to_be_bytes());
        let id1 = u16::from_be_bytes([w1[2], w1[3]]);
        let id2 = u16::from_be_bytes([w2[2], w2[3]]);
        assert_eq!(id1, 7, "a free ID is kept");
        assert_ne!(id1, id2);
        assert_eq!(waiting.len(), 2);
        // Answers in the other order reach the right callers, with ID 7.
        deliver(&w2[2..], &mut waiting);
        deliver(&w1[2..], &mut waiting);
        assert_eq!(r1.try_recv().unwrap(), b"\x00\x07rest");
        assert_eq!(r2.try_recv().unwrap(), b"\x00\x07rest");
        assert!(waiting.is_empty());
    }

    #[test]
    fn answers_nobody_waits_for_and_runts_are_dropped() {
        let mut waiting = Waiting::new();
        let mut out = Vec::new();
        let (j, mut r) = job(1);
        frame(j, &mut waiting, &mut out).unwrap();
        deliver(b"\x00\x02xx", &mut waiting);
        deliver(b"\x00", &mut waiting);
        assert_eq!(waiting.len(), 1);
        assert!(r.try_recv().is_err());
        let (short, _) = (
            Job {
                bytes: vec![1],
                reply: oneshot::channel().0,
            },
            (),
        );
        assert!(frame(short, &mut waiting, &mut out).is_none());
    }
}
