//! A reusable in-process upstream DNS server for integration tests, on
//! 127.0.0.1 over UDP and TCP (same port), on its own runtime thread so that
//! blocking test code cannot starve it.
//!
//! Behaviour is changed while it runs: answers per name, an rcode per name or
//! for everything (SERVFAIL, REFUSED...), an artificial delay, TC over UDP
//! (the full answer only over TCP), or no answer at all. It counts queries
//! per transport and per name, and records the EDNS0 options of each query
//! per name. Names without answers get NXDOMAIN. Replies
//! set RA, copy RD and the question, and carry an OPT record when the query
//! did.
//!
//! [`Upstream::start_tls`] serves DNS over TLS instead (TCP framing inside
//! TLS, no UDP) and counts the connections it accepted.
//!
//! Use it with `#[path = "common/upstream.rs"] mod upstream;` (or as
//! `common::upstream` once `common/mod.rs` declares it).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// What the upstream does; change it with the `Upstream` setters.
#[derive(Clone, Debug, Default)]
struct Behaviour {
    /// Records per lower-case name (with trailing dot).
    answers: HashMap<String, Vec<Record>>,
    /// Rcode per lower-case name.
    rcodes: HashMap<String, ResponseCode>,
    /// Rcode for every query (wins over the per-name ones).
    rcode_all: Option<ResponseCode>,
    /// Wait this long before answering.
    delay: Duration,
    /// Over UDP answer TC with no records.
    truncate_udp: bool,
    /// Do not answer at all (UDP dropped; TCP accepted but silent).
    drop: bool,
}

#[derive(Default)]
struct State {
    behaviour: Mutex<Behaviour>,
    udp: AtomicUsize,
    tcp: AtomicUsize,
    /// TCP connections accepted (TLS: handshakes attempted).
    connections: AtomicUsize,
    /// TLS connections that ended (closed by either side).
    closed: AtomicUsize,
    per_name: Mutex<HashMap<String, usize>>,
    /// Per name, each query's EDNS0 options (None: no OPT record), in order.
    edns_per_name: Mutex<HashMap<String, Vec<Option<EdnsOptions>>>>,
}

/// EDNS0 options as `(code, data)`, in the order sent.
pub type EdnsOptions = Vec<(u16, Vec<u8>)>;

/// A running upstream; stops when dropped.
pub struct Upstream {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    state: Arc<State>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Upstream {
    /// Start on a free 127.0.0.1 port.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("upstream runtime");
        let (udp, tcp) = rt.block_on(bind_pair());
        let addr = udp.local_addr().expect("addr");
        let state = Arc::new(State::default());
        rt.spawn(serve_udp(Arc::new(udp), state.clone()));
        rt.spawn(serve_tcp(tcp, state.clone()));
        Self {
            addr,
            state,
            rt: Some(rt),
        }
    }

    /// Start a DNS-over-TLS upstream on a free 127.0.0.1 port presenting `acceptor`'s certificate.
    pub fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("upstream runtime");
        let tcp = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind tls");
        let addr = tcp.local_addr().expect("addr");
        let state = Arc::new(State::default());
        rt.spawn(serve_tls(tcp, acceptor, state.clone()));
        Self {
            addr,
            state,
            rt: Some(rt),
        }
    }

    /// Connections accepted so far (TCP or TLS).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TLS connections that have ended.
    pub fn closed_connections(&self) -> usize {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// `host:port`, as a Corefile `forward` argument.
    pub fn to(&self) -> String {
        self.addr.to_string()
    }

    fn with(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// Answer `name` with these addresses (A or AAAA), owner name as written.
    pub fn answer(&self, name: &str, ips: &[IpAddr]) {
        let owner = Name::from_ascii(name).expect("name");
        let records = ips
            .iter()
            .map(|ip| {
                let data = match ip {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                Record::from_rdata(owner.clone(), 60, data)
            })
            .collect();
        self.answer_records(name, records);
    }

    /// Answer `name` with these records.
    pub fn answer_records(&self, name: &str, records: Vec<Record>) {
        let key = key(name);
        self.with(|b| {
            b.answers.insert(key, records);
        });
    }

    /// Answer `name` with `rcode` (and no records).
    pub fn rcode_for(&self, name: &str, rcode: ResponseCode) {
        let key = key(name);
        self.with(|b| {
            b.rcodes.insert(key, rcode);
        });
    }

    /// Answer everything with `rcode` (`None`: back to per-name behaviour).
    pub fn rcode_all(&self, rcode: Option<ResponseCode>) {
        self.with(|b| b.rcode_all = rcode);
    }

    /// Wait this long before each answer.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|b| b.delay = delay);
    }

    /// Over UDP, answer with TC set and no records.
    pub fn set_truncate_udp(&self, on: bool) {
        self.with(|b| b.truncate_udp = on);
    }

    /// Stop answering (a dead upstream) or start again.
    pub fn set_drop(&self, on: bool) {
        self.with(|b| b.drop = on);
    }

    /// Queries received over UDP.
    pub fn udp_queries(&self) -> usize {
        self.state.udp.load(Ordering::SeqCst)
    }

    /// Queries received over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.state.tcp.load(Ordering::SeqCst)
    }

    /// Queries received for `name` (any case, any transport; `.` counts
    /// health checks).
    pub fn queries_for(&self, name: &str) -> usize {
        let per_name = self.state.per_name.lock().unwrap();
        per_name.get(&key(name)).copied().unwrap_or(0)
    }

    /// The EDNS0 options of every query for `name` so far, oldest first
    /// (`None` for a query without an OPT record).
    pub fn edns_options_for(&self, name: &str) -> Vec<Option<EdnsOptions>> {
        let seen = self.state.edns_per_name.lock().unwrap();
        seen.get(&key(name)).cloned().unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Lower-case with a trailing dot.
fn key(name: &str) -> String {
    let mut k = name.to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let addr = udp.local_addr().expect("addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for the test upstream");
}

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Udp,
    Tcp,
}

/// The reply to `bytes`, or None to stay silent.
async fn handle(state: &State, bytes: &[u8], via: Via) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    let question = query.queries.first()?.clone();
    let name = key(&question.name().to_ascii());
    match via {
        Via::Udp => state.udp.fetch_add(1, Ordering::SeqCst),
        Via::Tcp => state.tcp.fetch_add(1, Ordering::SeqCst),
    };
    *state
        .per_name
        .lock()
        .unwrap()
        .entry(name.clone())
        .or_default() += 1;
    let options = query.edns.as_ref().map(|e| {
        e.options()
            .as_ref()
            .iter()
            .map(|(code, o)| (u16::from(*code), Vec::<u8>::try_from(o).unwrap_or_default()))
            .collect()
    });
    state
        .edns_per_name
        .lock()
        .unwrap()
        .entry(name.clone())
        .or_default()
        .push(options);
    let b = state.behaviour.lock().unwrap().clone();
    if b.drop {
        return None;
    }
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let mut r = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_query(question);
    if let Some(e) = &query.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(e.max_payload().max(512));
        r.set_edns(edns);
    }
    let records = b.answers.get(&name);
    r.metadata.response_code = match (b.rcode_all, b.rcodes.get(&name), records) {
        (Some(rc), _, _) => rc,
        (None, Some(rc), _) => *rc,
        (None, None, Some(_)) => ResponseCode::NoError,
        (None, None, None) => ResponseCode::NXDomain,
    };
    if via == Via::Udp && b.truncate_udp {
        r.metadata.truncation = true;
    } else if r.metadata.response_code == ResponseCode::NoError
        && let Some(records) = records
    {
        r.add_answers(records.iter().cloned());
    }
    r.to_vec().ok()
}

async fn serve_udp(sock: Arc<UdpSocket>, state: Arc<State>) {
    let mut buf = vec![0u8; 65535];
    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
        let bytes = buf[..n].to_vec();
        let (sock, state) = (sock.clone(), state.clone());
        tokio::spawn(async move {
            if let Some(reply) = handle(&state, &bytes, Via::Udp).await {
                let _ = sock.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        state.connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(serve_conn(stream, state.clone()));
    }
}

async fn serve_tls(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        state.connections.fetch_add(1, Ordering::SeqCst);
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve_conn(tls, state.clone()).await;
            }
            state.closed.fetch_add(1, Ordering::SeqCst);
        });
    }
}

async fn serve_conn<S>(mut stream: S, state: Arc<State>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut bytes).await.is_err() {
            return;
        }
        let Some(reply) = handle(&state, &bytes, Via::Tcp).await else {
            continue;
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = n.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
