//! One DNS exchange with one upstream over UDP, TCP or TLS.
//!
//! Connection reuse: none for plain upstreams. Every UDP exchange uses a
//! fresh connected socket (a new random source port per query, which is also
//! the classic defence against answer spoofing) and every TCP exchange a
//! fresh connection. On loopback and in-cluster networks the cost is a few
//! microseconds, and it keeps the code free of pool state. `tls://`
//! upstreams are different: a handshake costs round trips, so they keep a
//! persistent connection (`dot.rs`), which `expire` and the conn-cache
//! metrics are about.
//!
//! Invariant: a reply is accepted only if its id and question match the
//! request; over UDP anything else is ignored (spoofed or late datagrams), over
//! TCP it is an error. Every wait is bounded by the timeout given.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::dot::{DotUpstream, Reuse};
use super::policy::random_u64;

/// The largest UDP reply we read; replies filling it are treated as truncated.
const UDP_BUFFER: usize = 4096 + 1;

/// The transport of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    /// UDP.
    Udp,
    /// TCP with 2-byte length framing.
    Tcp,
}

/// Why an exchange failed (a network error in CoreDNS's terms).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// No acceptable reply in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// Socket error (refused, unreachable, reset).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A reply that is not an answer to our question.
    #[error("bad reply: {0}")]
    Bad(String),
}

/// What to ask an upstream.
#[derive(Clone, Debug)]
pub(crate) struct Ask<'a> {
    /// The name, in the client's case.
    pub(crate) name: &'a Name,
    /// Type.
    pub(crate) qtype: RecordType,
    /// Class.
    pub(crate) qclass: DNSClass,
    /// RD bit.
    pub(crate) recursion_desired: bool,
    /// `Some((payload, dnssec_ok))` to send an OPT record.
    pub(crate) edns: Option<(u16, bool)>,
    /// EDNS0 options `(code, data)` for the OPT record: the client's, as
    /// `rewrite edns0` left them ([`crate::dns::Query::edns_options`]).
    pub(crate) options: &'a [(u16, Box<[u8]>)],
}

/// The payload size of an OPT record created only to carry options (the
/// client sent none): CoreDNS's `rewrite edns0` creates it with 4096, DO clear.
const OPTIONS_ONLY_PAYLOAD: u16 = 4096;

/// The query message for `ask`, with a random id.
pub(crate) fn query_message(ask: &Ask<'_>) -> Message {
    // Truncation to 16 bits is the point: a random message id.
    let mut m = Message::new(random_u64() as u16, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = ask.recursion_desired;
    let mut q = Query::query(ask.name.clone(), ask.qtype);
    q.set_query_class(ask.qclass);
    m.add_query(q);
    let edns = ask
        .edns
        .or_else(|| (!ask.options.is_empty()).then_some((OPTIONS_ONLY_PAYLOAD, false)));
    if let Some((payload, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload.max(512));
        e.set_version(0);
        e.set_dnssec_ok(dnssec_ok);
        // As `Unknown` options hickory writes any code with its data as given.
        e.options_mut()
            .as_mut()
            .extend(ask.options.iter().map(|(code, data)| {
                (
                    EdnsCode::from(*code),
                    EdnsOption::Unknown(*code, data.to_vec()),
                )
            }));
        m.set_edns(e);
    }
    m
}

/// Send `ask` to `addr` and wait at most `timeout` for the matching reply.
pub(crate) async fn exchange(
    addr: SocketAddr,
    ask: &Ask<'_>,
    proto: Proto,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    let request = query_message(ask);
    let bytes = request
        .to_vec()
        .map_err(|e| ExchangeError::Bad(format!("cannot encode the query: {e}")))?;
    let work = async {
        match proto {
            Proto::Udp => udp(addr, &request, &bytes).await,
            Proto::Tcp => tcp(addr, &request, &bytes).await,
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(ExchangeError::Timeout(timeout)))
}

/// Send `ask` over `dot`'s connection and wait at most `timeout` for the
/// matching reply; also says whether the connection was reused.
pub(crate) async fn exchange_tls(
    dot: &DotUpstream,
    ask: &Ask<'_>,
    timeout: Duration,
) -> Result<(Message, Reuse), ExchangeError> {
    let request = query_message(ask);
    let bytes = request
        .to_vec()
        .map_err(|e| ExchangeError::Bad(format!("cannot encode the query: {e}")))?;
    let (reply, reuse) = tokio::time::timeout(timeout, dot.exchange(&bytes))
        .await
        .unwrap_or(Err(ExchangeError::Timeout(timeout)))?;
    let reply =
        Message::from_vec(&reply).map_err(|e| ExchangeError::Bad(format!("undecodable: {e}")))?;
    if !answers(&request, &reply) {
        return Err(ExchangeError::Bad("id or question mismatch".into()));
    }
    Ok((reply, reuse))
}

/// Whether `reply` answers `request`: same id, a response, same question
/// (names compared case-insensitively) or no question at all.
fn answers(request: &Message, reply: &Message) -> bool {
    if reply.metadata.id != request.metadata.id
        || reply.metadata.message_type != MessageType::Response
    {
        return false;
    }
    match (reply.queries.first(), request.queries.first()) {
        (None, _) => true,
        (Some(got), Some(want)) => {
            got.name() == want.name()
                && got.query_type() == want.query_type()
                && got.query_class() == want.query_class()
        }
        (Some(_), None) => false,
    }
}

async fn udp(addr: SocketAddr, request: &Message, bytes: &[u8]) -> Result<Message, ExchangeError> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    sock.send(bytes).await?;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let n = sock.recv(&mut buf).await?;
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        let Ok(mut reply) = Message::from_vec(datagram) else {
            if n == UDP_BUFFER {
                // Larger than we can read: as good as truncated.
                let mut tc = request.clone();
                tc.metadata.message_type = MessageType::Response;
                tc.metadata.truncation = true;
                return Ok(tc);
            }
            continue;
        };
        if answers(request, &reply) {
            if n == UDP_BUFFER {
                reply.metadata.truncation = true;
            }
            return Ok(reply);
        }
    }
}

async fn tcp(addr: SocketAddr, request: &Message, bytes: &[u8]) -> Result<Message, ExchangeError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let len = u16::try_from(bytes.len())
        .map_err(|_| ExchangeError::Bad("query longer than 65535 bytes".into()))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    let reply =
        Message::from_vec(&buf).map_err(|e| ExchangeError::Bad(format!("undecodable: {e}")))?;
    if !answers(request, &reply) {
        return Err(ExchangeError::Bad("id or question mismatch".into()));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(payload, DO, options)` of an OPT record.
    type Opt = (u16, bool, Vec<(u16, Vec<u8>)>);

    /// The OPT record `query_message` writes.
    fn opt_of(edns: Option<(u16, bool)>, options: &[(u16, Box<[u8]>)]) -> Option<Opt> {
        let name = Name::from_ascii("a.example.org.").expect("name");
        let ask = Ask {
            name: &name,
            qtype: RecordType::A,
            qclass: DNSClass::IN,
            recursion_desired: true,
            edns,
            options,
        };
        // Through the wire, as the upstream sees it.
        let bytes = query_message(&ask).to_vec().expect("encode");
        let m = Message::from_vec(&bytes).expect("decode");
        m.edns.map(|e| {
            let opts = e
                .options()
                .as_ref()
                .iter()
                .map(|(c, o)| (u16::from(*c), Vec::<u8>::try_from(o).expect("data")))
                .collect();
            (e.max_payload(), e.flags().dnssec_ok, opts)
        })
    }

    #[test]
    fn options_join_the_clients_opt_or_get_one_of_their_own() {
        let local: Box<[u8]> = Box::from(&b"abcd"[..]);
        let ecs: Box<[u8]> = Box::from(&[0u8, 1, 24, 0, 10, 1, 2][..]);
        let two = [(0xffee, local.clone()), (8, ecs.clone())];
        let want_two = vec![(0xffee, b"abcd".to_vec()), (8, ecs.to_vec())];
        let cases = [
            (None, &[][..], None),
            (Some((1232, true)), &[][..], Some((1232, true, vec![]))),
            (
                Some((1232, true)),
                &two[..],
                Some((1232, true, want_two.clone())),
            ),
            (None, &two[..], Some((4096, false, want_two))),
        ];
        for (edns, options, want) in cases {
            assert_eq!(
                opt_of(edns, options),
                want,
                "edns {edns:?} options {options:?}"
            );
        }
    }
}
