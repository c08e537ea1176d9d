//! The UDP fast path: one SO_REUSEPORT socket per worker thread, each served
//! by its own receive loop, in batches, answers encoded into reused buffers.
//!
//! A general server spawns a task and builds several intermediate messages
//! per UDP query; here each wake-up receives every queued datagram (up to
//! 32) with one `recvmmsg`, answers them inline and sends the answers with
//! one `sendmmsg` (`batch`). A query is answered from the worker's
//! [answer memo](super::memo) when it holds the same request's response at
//! the current data, else through the chain; an answer ready at the first
//! poll (everything the index answers) needs no task, no channel and no
//! buffer allocation. Only a query that must wait (an upstream, a cache
//! refresh) is moved to a task of its own, so a slow upstream never stalls
//! the socket. The kernel spreads clients over the sockets (SO_REUSEPORT),
//! so the loops do not contend.
//!
//! Those tasks are spawned on a [`TaskTracker`]: when the loop stops
//! (shutdown, or the address leaves the configuration) they keep the socket
//! alive and still send their answers, and shutdown waits for them.
//!
//! A request larger than 4,096 bytes (no DNS client sends one over UDP) is
//! dropped whole rather than read cut short.

mod batch;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use socket2::{Domain, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::memo::Ticket;
use super::wire::{self, Parsed, Request};
use super::{AnswerMemo, Handler, Transport};
use batch::{Inbox, Outbox};

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

/// Serve one socket until `token` is cancelled, with an answer memo of at
/// most `memo_budget` bytes; queries that must wait are answered by tasks on
/// `tasks`, which outlive the loop.
pub async fn serve(
    socket: UdpSocket,
    memo_budget: usize,
    handler: Handler,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    let socket = Arc::new(socket);
    let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    let (mut inbox, mut outbox) = (Inbox::new(v6), Outbox::default());
    let mut memo = AnswerMemo::with_budget(memo_budget);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            r = socket.readable() => if let Err(error) = r {
                tracing::debug!(%error, "udp readiness");
                continue;
            },
        }
        // try_io clears the readiness when the closure says WouldBlock. A
        // batch that came back short emptied the queue, so it says so too:
        // that spares the receive call that would only find the queue empty
        // (one system call per wake-up at low rates). A datagram that
        // arrives after the receive raises a new readiness event, which the
        // clearing does not erase (tokio clears only the event it saw).
        let mut n = 0;
        let received = socket.try_io(Interest::READABLE, || {
            n = inbox.recv(&*socket)?;
            if n < batch::BATCH {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        if let Err(error) = received
            && error.kind() != std::io::ErrorKind::WouldBlock
        {
            tracing::debug!(%error, "udp receive");
            continue;
        }
        for i in 0..n {
            if let Some((bytes, src)) = inbox.get(i) {
                answer_one(
                    &socket,
                    &handler,
                    &tasks,
                    &mut memo,
                    &mut outbox,
                    bytes,
                    src,
                );
            }
        }
        // A full send buffer drops answers, as the kernel would drop queries.
        if let Err(error) = outbox.send(&*socket) {
            tracing::debug!(%error, "udp send");
        }
    }
}

/// Answer datagram `i` of the batch: from the memo, or through the chain
/// inline when the answer is ready at the first poll (queued in the batch
/// either way), or in a task of its own when it must wait.
fn answer_one(
    socket: &Arc<UdpSocket>,
    handler: &Handler,
    tasks: &TaskTracker,
    memo: &mut AnswerMemo,
    outbox: &mut Outbox,
    bytes: &[u8],
    src: SocketAddr,
) {
    let Some(out) = outbox.next() else {
        return;
    };
    let queued = if handler.answer_from_memo(memo, bytes, src, out) {
        true
    } else {
        match wire::parse(bytes, src, Transport::Udp) {
            Parsed::Drop => false,
            Parsed::Reject { header, rcode } => wire::encode_reject(&header, rcode, out).is_some(),
            Parsed::Query(req) => {
                let mut fut = answer(handler.clone(), req);
                let waker = futures::task::noop_waker_ref();
                match fut.as_mut().poll(&mut Context::from_waker(waker)) {
                    Poll::Ready((req, answer, ticket)) => {
                        let encoded = wire::encode(&req, &answer, Transport::Udp, out).is_some();
                        if encoded && let Some(ticket) = ticket {
                            memo.insert(bytes, ticket, out);
                        }
                        encoded
                    }
                    Poll::Pending => {
                        // Answers that had to wait are not memoized.
                        let socket = socket.clone();
                        tasks.spawn(async move {
                            let (req, answer, _) = fut.await;
                            send(&socket, &req, &answer, &mut Vec::new());
                        });
                        false
                    }
                }
            }
        }
    };
    if queued {
        outbox.push(src);
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

/// Encode and send one answer that had to wait.
fn send(socket: &UdpSocket, req: &Request, answer: &super::Answer, out: &mut Vec<u8>) {
    if wire::encode(req, answer, Transport::Udp, out).is_some() {
        // A full socket buffer drops the answer, as the kernel would drop the query.
        let _ = socket.try_send_to(out, req.query.src);
    }
}
