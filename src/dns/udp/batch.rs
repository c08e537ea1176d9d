//! Batched UDP I/O: up to [`BATCH`] datagrams received with one
//! `recvmmsg(2)` and their answers sent with one `sendmmsg(2)` (through
//! nix's safe wrappers).
//!
//! Under load the socket queue holds many queries at once; one system call
//! per datagram each way was the largest kernel cost per query. When a
//! single query is waiting, a batch is one datagram and costs what
//! `recvfrom`/`sendto` did.

use std::cell::Cell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per system call.
pub(super) const BATCH: usize = 32;

/// Room per received datagram. A query is far smaller; a larger one is
/// cut by the kernel and flagged, and dropped by [`Inbox::get`].
pub(super) const SLOT: usize = 4096;

thread_local! {
    /// The kernel message headers, per thread: nix's `MultiHeaders` holds
    /// raw pointers, so it cannot live in a task that may move between
    /// threads; a call takes this thread's set and puts it back. Receiving
    /// and sending never share a set: `sendmmsg` points each header's
    /// address at the destination and `recvmmsg` does not point it back,
    /// and the kernel shortens a header's address length to the last
    /// sender's, so receive sets are kept per address family as well.
    static RECV_V4: Cell<Option<MultiHeaders<SockaddrStorage>>> = const { Cell::new(None) };
    static RECV_V6: Cell<Option<MultiHeaders<SockaddrStorage>>> = const { Cell::new(None) };
    static SEND: Cell<Option<MultiHeaders<SockaddrStorage>>> = const { Cell::new(None) };
}

type Headers = &'static std::thread::LocalKey<Cell<Option<MultiHeaders<SockaddrStorage>>>>;

/// This thread's headers from `key`, to be put back with `key.set`.
fn take(key: Headers) -> MultiHeaders<SockaddrStorage> {
    key.take()
        .unwrap_or_else(|| MultiHeaders::preallocate(BATCH, None))
}

/// Received datagrams: one worker's receive buffers, reused for every batch.
pub(super) struct Inbox {
    slots: Box<[[u8; SLOT]; BATCH]>,
    /// What the last receive got: length and sender, `None` for a datagram
    /// that was cut or has no usable address.
    got: Vec<Option<(usize, SocketAddr)>>,
    /// The socket's family (which headers to use).
    v6: bool,
}

impl Inbox {
    /// Buffers for a socket of this family.
    pub(super) fn new(v6: bool) -> Self {
        Self {
            v6,
            slots: vec![[0u8; SLOT]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH slots")),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Receive what is queued (at most [`BATCH`] datagrams) without
    /// blocking; `WouldBlock` when nothing is. Returns how many arrived.
    pub(super) fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        let key = if self.v6 { &RECV_V6 } else { &RECV_V4 };
        let mut iovs = self.slots.each_mut().map(|s| [IoSliceMut::new(s)]);
        let mut headers = take(key);
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map(|results| {
            for msg in results {
                let whole = !msg.flags.contains(MsgFlags::MSG_TRUNC);
                let src = msg.address.as_ref().and_then(socket_addr);
                self.got
                    .push(src.filter(|_| whole).map(|src| (msg.bytes, src)));
            }
            self.got.len()
        });
        key.set(Some(headers));
        received.map_err(io::Error::from)
    }

    /// Datagram `i` of the last receive: its bytes and sender, or `None`
    /// for one to drop (cut short, or from an address we cannot answer).
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (len, src) = (*self.got.get(i)?)?;
        Some((&self.slots[i][..len], src))
    }
}

/// Answers waiting to be sent together.
pub(super) struct Outbox {
    out: Vec<Vec<u8>>,
    to: Vec<Option<SockaddrStorage>>,
    pending: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            out: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            to: vec![None; BATCH],
            pending: 0,
        }
    }
}

impl Outbox {
    /// The buffer for the next answer, to be committed with
    /// [`Outbox::push`] (it may hold an earlier answer's bytes; writers
    /// clear it). `None` when the outbox is full.
    pub(super) fn next(&mut self) -> Option<&mut Vec<u8>> {
        self.out.get_mut(self.pending)
    }

    /// Queue the answer written into [`Outbox::next`] for `to`.
    pub(super) fn push(&mut self, to: SocketAddr) {
        if let Some(slot) = self.to.get_mut(self.pending) {
            *slot = Some(SockaddrStorage::from(to));
            self.pending += 1;
        }
    }

    /// Send the queued answers. An answer the socket cannot take now (its
    /// buffer is full) is dropped, as the kernel drops queries it has no
    /// room for; after another error the rest of the batch is still tried.
    pub(super) fn send(&mut self, socket: &impl AsRawFd) -> io::Result<()> {
        let mut first = 0;
        let mut result = Ok(());
        while first < self.pending {
            // Slices past `pending` are empty and not sent (sendmmsg stops
            // at the shortest of slices and addresses).
            let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(
                    self.out.get(first + i).map_or(&[][..], |o| &o[..]),
                )]
            });
            let to = &self.to[first..self.pending];
            let mut headers = take(&SEND);
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slices.iter(),
                to,
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(Iterator::count);
            SEND.set(Some(headers));
            match sent {
                Ok(0) | Err(nix::errno::Errno::EAGAIN) => break,
                Ok(n) => first += n,
                // The first message failed (e.g. its destination is
                // unreachable): skip it, keep the rest.
                Err(e) => {
                    result = Err(io::Error::from(e));
                    first += 1;
                }
            }
        }
        self.pending = 0;
        result
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    s.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (server, client)
    }

    #[test]
    fn a_batch_receives_every_queued_datagram_and_answers_each_sender() {
        let (server, client) = pair();
        let to = server.local_addr().expect("addr");
        for i in 0..40u8 {
            client.send_to(&[i; 3], to).expect("send");
        }
        let (mut inbox, mut outbox) = (Inbox::new(false), Outbox::default());
        let mut seen = Vec::new();
        for _ in 0..10 {
            let n = match inbox.recv(&server) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => panic!("recv: {e}"),
            };
            assert!(n <= BATCH);
            for i in 0..n {
                let (bytes, src) = inbox.get(i).expect("datagram");
                assert_eq!(src, client.local_addr().expect("addr"));
                seen.push(bytes.to_vec());
                let out = outbox.next().expect("room");
                out.clear();
                out.extend_from_slice(&[bytes[0], 0xaa]);
                outbox.push(src);
            }
            outbox.send(&server).expect("send");
            if seen.len() == 40 {
                break;
            }
        }
        let expected: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 3]).collect();
        assert_eq!(seen, expected, "in order, whole");
        let mut buf = [0u8; 16];
        for i in 0..40u8 {
            let (n, _) = client.recv_from(&mut buf).expect("answer");
            assert_eq!(&buf[..n], &[i, 0xaa]);
        }
    }

    /// Receive one batch, answering each datagram with its first byte.
    fn echo_once(server: &UdpSocket, inbox: &mut Inbox, outbox: &mut Outbox) -> usize {
        for _ in 0..100 {
            match inbox.recv(server) {
                Ok(n) => {
                    for i in 0..n {
                        let (bytes, src) = inbox.get(i).expect("datagram");
                        let out = outbox.next().expect("room");
                        out.clear();
                        out.push(bytes[0]);
                        outbox.push(src);
                    }
                    outbox.send(server).expect("send");
                    return n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        panic!("nothing received");
    }

    #[test]
    fn each_batch_answers_its_own_senders() {
        // Headers once used to send must not be used to receive: the
        // second client's answer went to the first one when they were.
        let (server, a) = pair();
        let (_, b) = pair();
        let to = server.local_addr().expect("addr");
        let (mut inbox, mut outbox) = (Inbox::new(false), Outbox::default());
        let mut buf = [0u8; 4];
        for (client, tag) in [(&a, 1u8), (&b, 2), (&a, 3), (&b, 4)] {
            client.send_to(&[tag], to).expect("send");
            assert_eq!(echo_once(&server, &mut inbox, &mut outbox), 1);
            let (n, from) = client.recv_from(&mut buf).expect("answer");
            assert_eq!((&buf[..n], from), (&[tag][..], to));
        }
    }

    #[test]
    fn a_datagram_larger_than_a_slot_is_dropped_not_cut() {
        let (server, client) = pair();
        let to = server.local_addr().expect("addr");
        client.send_to(&vec![1u8; SLOT + 1], to).expect("send");
        client.send_to(&[2u8; 12], to).expect("send");
        let mut inbox = Inbox::new(false);
        let mut got = Vec::new();
        for _ in 0..50 {
            match inbox.recv(&server) {
                Ok(n) => got.extend((0..n).map(|i| inbox.get(i).map(|(b, _)| b.len()))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("recv: {e}"),
            }
            if got.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(got, vec![None, Some(12)]);
    }
}
