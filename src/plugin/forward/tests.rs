//! Unit tests of `forward`: parse tables, and serving against in-process fake
//! upstreams on 127.0.0.1 (shared with the `loop` tests).

mod parse;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::Registry;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::corefile::{Dispenser, MemFs, parse_str};
use crate::dns::{Query, Transport};
use crate::plugin::build::Family;
use crate::plugin::loop_detect::LoopGuard;

/// Parse `forward ...` written as the only directive of a block in
/// `/etc/coredns/Corefile`.
pub(crate) fn parse_forward(directive: &str) -> std::result::Result<ForwardConfig, String> {
    let src = format!(". {{\n    {directive}\n}}\n");
    let cf = parse_str(
        &src,
        std::path::Path::new("/etc/coredns/Corefile"),
        &|_| None,
        &MemFs::new(),
    )
    .map_err(|e| format!("syntax: {e}"))?;
    let d = &cf.blocks[0].directives[0];
    parse(&mut Dispenser::new(d)).map_err(|e| e.to_string())
}

/// A fake upstream over UDP: answers with `respond(query)`, or not at all
/// for `None`; counts the queries it saw.
pub(crate) struct Fake {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<AtomicUsize>,
}

impl Fake {
    pub(crate) async fn start(
        respond: impl Fn(&Message) -> Option<Message> + Send + Sync + 'static,
    ) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let s2 = seen.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                s2.fetch_add(1, Ordering::SeqCst);
                if let Some(r) = respond(&q) {
                    let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
                }
            }
        });
        Self { addr, seen }
    }

    /// Answers every query with `rcode` and, for NOERROR, `<qname> A ip`
    /// with the owner name lower-cased.
    pub(crate) async fn answering(rcode: ResponseCode, ip: [u8; 4]) -> Self {
        Self::start(move |q| Some(reply(q, rcode, ip))).await
    }

    pub(crate) fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

/// A reply to `q` with `rcode` (RA set) and an A record for NOERROR.
pub(crate) fn reply(q: &Message, rcode: ResponseCode, ip: [u8; 4]) -> Message {
    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    r.metadata.response_code = rcode;
    r.metadata.recursion_available = true;
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    let question = q.queries[0].clone();
    let name = question.name().to_lowercase();
    r.add_query(question);
    if rcode == ResponseCode::NoError {
        r.add_answer(Record::from_rdata(
            name,
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        ));
    }
    r
}

/// An address nothing listens on (UDP: the kernel answers port unreachable).
pub(crate) async fn dead_addr() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.local_addr().unwrap()
}

pub(crate) fn metrics() -> ForwardMetrics {
    ForwardMetrics::register(&Registry::new()).unwrap()
}

/// A Forward over `upstreams` configured by `block` (the lines of `{ }`).
pub(crate) fn forward_with(
    from: &str,
    upstreams: &[SocketAddr],
    block: &str,
    guard: Arc<LoopGuard>,
) -> (Forward, ForwardMetrics) {
    let to: Vec<String> = upstreams.iter().map(|a| a.to_string()).collect();
    let cfg = parse_forward(&format!("forward {from} {} {{\n{block}\n}}", to.join(" "))).unwrap();
    let m = metrics();
    let addrs = upstream_addrs(&cfg).unwrap();
    guard.set_upstreams(&Name::root(), &addrs);
    let addrs = addrs.into_iter().map(|a| (a, false)).collect();
    let f = Forward::new(
        &cfg,
        addrs,
        None,
        m.clone(),
        guard,
        CancellationToken::new(),
    )
    .unwrap();
    (f, m)
}

pub(crate) fn query(name: &str, qtype: RecordType) -> Query {
    Query::new(
        Name::from_ascii(name).unwrap(),
        qtype,
        "127.0.0.1:5353".parse().unwrap(),
        Transport::Udp,
    )
}
