//! The UDP fast path: one SO_REUSEPORT socket per worker thread, each served
//! by its own receive loop, answers encoded into a reused buffer.
//!
//! A general server spawns a task and builds several intermediate messages
//! per UDP query; here a query whose answer is ready at the first poll (everything
//! the index answers) is answered inline by the loop that received it, with no
//! task, no channel and no buffer allocation. Only a query that must wait (an
//! upstream, a cache refresh) is moved to a task of its own, so a slow
//! upstream never stalls the socket. The kernel spreads clients over the
//! sockets (SO_REUSEPORT), so the loops do not contend.
//!
//! Those tasks are spawned on a [`TaskTracker`]: when the loop stops
//! (shutdown, or the address leaves the configuration) they keep the socket
//! alive and still send their answers, and shutdown waits for them.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::memo::Ticket;
use super::wire::{self, Parsed, Request};
use super::{AnswerMemo, Handler, Transport};

/// Socket buffer size asked for per UDP socket.
const RECV_BUFFER: usize = 4 << 20;

/// Bind `n` sockets on `addr` with SO_REUSEPORT (all on the same port, the
/// first one's when `addr` has port 0).
pub fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        // Room for bursts (a client flushing hundreds of queries at once); the
        // kernel caps this at net.core.rmem_max/wmem_max, so it is best effort.
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
        let _ = s.set_send_buffer_size(RECV_BUFFER);
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let sock = UdpSocket::from_std(s.into())?;
        addr = sock.local_addr()?;
        out.push(sock);
    }
    Ok(out)
}

/// Serve one socket until `token` is cancelled; queries that must wait are
/// answered by tasks on `tasks`, which outlive the loop.
pub async fn serve(
    socket: UdpSocket,
    handler: Handler,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    let mut out = Vec::with_capacity(usize::from(wire::MAX_UDP_PAYLOAD));
    let mut memo = AnswerMemo::default();
    loop {
        let (n, src) = tokio::select! {
            _ = token.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(error) => {
                    tracing::debug!(%error, "udp receive");
                    continue;
                }
            },
        };
        if handler.answer_from_memo(&mut memo, &buf[..n], src, &mut out) {
            let _ = socket.try_send_to(&out, src);
            continue;
        }
        match wire::parse(&buf[..n], src, Transport::Udp) {
            Parsed::Drop => {}
            Parsed::Reject { header, rcode } => {
                if wire::encode_reject(&header, rcode, &mut out).is_some() {
                    let _ = socket.try_send_to(&out, src);
                }
            }
            Parsed::Query(req) => {
                let mut fut = answer(handler.clone(), req);
                let waker = futures::task::noop_waker_ref();
                match fut.as_mut().poll(&mut Context::from_waker(waker)) {
                    Poll::Ready((req, answer, ticket)) => {
                        if send(&socket, &req, &answer, &mut out)
                            && let Some(ticket) = ticket
                        {
                            memo.insert(&buf[..n], ticket, &out);
                        }
                    }
                    Poll::Pending => {
                        // Answers that had to wait are not memoized.
                        let socket = socket.clone();
                        tasks.spawn(async move {
                            let (req, answer, _) = fut.await;
                            send(&socket, &req, &answer, &mut Vec::new());
                        });
                    }
                }
            }
        }
    }
}

type Answering =
    Pin<Box<dyn Future<Output = (Box<Request>, super::Answer, Option<Ticket>)> + Send>>;

fn answer(handler: Handler, req: Box<Request>) -> Answering {
    Box::pin(async move {
        let (answer, ticket) = handler.answer_memoizable(&req.query).await;
        (req, answer, ticket)
    })
}

/// Encode and send; whether the response was encoded (it is in `out`).
fn send(socket: &UdpSocket, req: &Request, answer: &super::Answer, out: &mut Vec<u8>) -> bool {
    let encoded = wire::encode(req, answer, Transport::Udp, out).is_some();
    if encoded {
        // A full socket buffer drops the answer, as the kernel would drop the query.
        let _ = socket.try_send_to(out, req.query.src);
    }
    encoded
}
