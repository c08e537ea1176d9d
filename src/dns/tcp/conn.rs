//! One DNS-over-TCP connection's loop: every query pipelined on the
//! connection is answered concurrently by this one loop, with no task per
//! query, and answers are written as they complete (RFC 7766 §6.2.1.1 allows
//! out of order).
//!
//! Each turn reads whatever bytes have arrived, takes every complete query
//! out of them ([`Frames`]) and polls each answer once inline, as the UDP loop
//! does: an answer ready at once (everything the index answers) is framed
//! into one output buffer; one that must wait (an upstream) joins the
//! connection's set of pending answers, which the same loop polls. The output
//! buffer goes out in one write per batch. At [`MAX_PENDING`] pending answers
//! the loop stops taking queries (and reading) until one completes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use hickory_proto::op::{Metadata, ResponseCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::TcpLimits;
use super::frames::{Frames, push_framed};
use super::wait::{Wait, wait};
use crate::dns::wire::{self, Parsed, Request};
use crate::dns::{Answer, Handler, Transport};

/// Pending answers per connection: past this, no more queries are read
/// until one completes (a client cannot make us hold unbounded work).
pub const MAX_PENDING: usize = 64;
/// Responses buffered beyond this are written before more are added.
const FLUSH_AT: usize = 16 * 1024;
/// An emptied output buffer larger than this gives its memory back (so does
/// the encoding buffer past [`FLUSH_AT`]): one large answer must not cost an
/// idle connection its size for as long as it stays open.
const KEEP_OUT: usize = 4 * FLUSH_AT;

/// Why a connection ended (for the debug log).
#[derive(Debug)]
pub(super) enum End {
    Closed,
    Idle,
    SlowRead,
    SlowWrite,
    Shutdown,
    #[allow(dead_code, reason = "read through Debug, in the log line")]
    Io(std::io::Error),
}

/// A query's answer on its way; it borrows the connection's handler (the
/// futures live no longer than the connection's loop), so a query costs no
/// reference count on the handler shared by every connection and socket.
type Answering<'h> = Pin<Box<dyn Future<Output = (Box<Request>, Answer)> + Send + 'h>>;

fn answer(handler: &Handler, req: Box<Request>) -> Answering<'_> {
    Box::pin(async move {
        let answer = handler.answer(&req.query).await;
        (req, answer)
    })
}

/// Framed responses waiting to be written, and the buffer each is encoded in.
#[derive(Default)]
struct Output {
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Output {
    fn answer(&mut self, req: &Request, answer: &Answer) {
        if wire::encode(req, answer, Transport::Tcp, &mut self.scratch).is_some() {
            push_framed(&mut self.out, &self.scratch);
        }
    }

    fn reject(&mut self, header: &Metadata, rcode: ResponseCode) {
        if wire::encode_reject(header, rcode, &mut self.scratch).is_some() {
            push_framed(&mut self.out, &self.scratch);
        }
    }

    /// Write what is buffered (one write), within `limit`.
    async fn flush<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        limit: Duration,
    ) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Flushing matters for TLS: records may wait in the session's buffer.
        let write = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Err(_) => return Err(End::SlowWrite),
            Ok(Err(e)) => return Err(End::Io(e)),
            Ok(Ok(())) => {}
        }
        self.out.clear();
        if self.out.capacity() > KEEP_OUT {
            self.out = Vec::new();
        }
        if self.scratch.capacity() > FLUSH_AT {
            self.scratch = Vec::new();
        }
        Ok(())
    }
}

/// Answer the queries arriving on `stream` until a limit ends the
/// connection, or the client closes its side or `token` is cancelled; in
/// the last two cases the queries already received are answered first.
pub(super) async fn answer_queries<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    src: SocketAddr,
    handler: &Handler,
    limits: TcpLimits,
    token: &CancellationToken,
) -> End {
    let mut frames = Frames::default();
    let mut output = Output::default();
    let mut pending = FuturesUnordered::<Answering<'_>>::new();
    // Why reading stopped (the client's EOF, shutdown): finish, then end so.
    let mut stopped: Option<End> = None;
    // When the query now arriving must be complete.
    let mut read_by: Option<Instant> = None;
    // One timer for the connection, moved only when a wait must end sooner;
    // when it fires early it is re-armed to the real deadline.
    let timer = tokio::time::sleep(limits.idle);
    tokio::pin!(timer);
    // Registered with the token once, not once per turn.
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);
    loop {
        // Every complete query buffered, up to the bound of pending answers.
        let mut took = false;
        while pending.len() < MAX_PENDING
            && let Some(msg) = frames.next()
        {
            took = true;
            match wire::parse(msg, src, Transport::Tcp) {
                Parsed::Drop => {}
                Parsed::Reject { header, rcode } => output.reject(&header, rcode),
                Parsed::Query(req) => {
                    let mut fut = answer(handler, req);
                    let waker = futures::task::noop_waker_ref();
                    match fut.as_mut().poll(&mut Context::from_waker(waker)) {
                        Poll::Ready((req, a)) => output.answer(&req, &a),
                        Poll::Pending => pending.push(fut),
                    }
                }
            }
            if output.out.len() >= FLUSH_AT
                && let Err(end) = output.flush(stream, limits.write).await
            {
                return end;
            }
        }
        if took {
            // The query still arriving (if any) began in the last read.
            read_by = None;
        }
        // Answers that completed meanwhile join the same write.
        while let Some(Some((req, a))) = pending.next().now_or_never() {
            output.answer(&req, &a);
        }
        if pending.len() < MAX_PENDING && frames.has_complete() {
            continue;
        }
        if let Err(end) = output.flush(stream, limits.write).await {
            return end;
        }
        if pending.is_empty()
            && let Some(end) = stopped.take()
        {
            return end;
        }

        let reading = stopped.is_none() && pending.len() < MAX_PENDING;
        let partial = frames.has_partial();
        let deadline = match wait(reading, partial, pending.len()) {
            Wait::Read => Some(*read_by.get_or_insert_with(|| Instant::now() + limits.read)),
            Wait::Idle => Some(Instant::now() + limits.idle),
            // Time at the bound does not count against the query arriving.
            Wait::None => {
                read_by = None;
                None
            }
        };
        if let Some(d) = deadline
            && (d < timer.deadline() || timer.is_elapsed())
        {
            timer.as_mut().reset(d);
        }
        tokio::select! {
            biased;
            () = &mut cancelled, if stopped.is_none() => stopped = Some(End::Shutdown),
            r = stream.read_buf(frames.spare()), if reading => match r {
                Ok(0) => stopped = Some(End::Closed),
                Ok(_) => {}
                Err(e) => return End::Io(e),
            },
            Some((req, a)) = pending.next(), if !pending.is_empty() => output.answer(&req, &a),
            () = &mut timer, if deadline.is_some() => {
                let Some(d) = deadline else { continue };
                if Instant::now() >= d {
                    return if partial { End::SlowRead } else { End::Idle };
                }
                timer.as_mut().reset(d);
            }
        }
    }
}
