//! DNS over TCP against the real binary (issue 8, items 8 and 12; issue 12
//! item 4): the connection cap, idle and read (slow-loris) timeouts,
//! pipelined queries answered concurrently (a slow one does not hold up the
//! others; each gets exactly one answer), queries split across writes, and
//! the same protocol rules as UDP, byte for byte.

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{TestServer, query, udp_raw, with_edns};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use upstream::Upstream;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
";

fn server(timeouts: &str) -> TestServer {
    let corefile = format!(
        "cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        manifests cluster.yaml
    }}
    {timeouts}
}}
"
    );
    TestServer::start(&corefile, &[("cluster.yaml", SERVICE)])
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

fn framed(m: &Message) -> Vec<u8> {
    let bytes = m.to_vec().expect("encode");
    let len = u16::try_from(bytes.len()).expect("len");
    [&len.to_be_bytes()[..], &bytes].concat()
}

/// Read one framed response; None when the server closed the connection.
fn read_response(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading from the server: {e}"),
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Whether the server closed `s` (EOF or reset) before 20 s.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Ok(_) => false,
        Err(e) => panic!("waiting for the server to close: {e}"),
    }
}

/// One query over a fresh or given connection; the answer's rcode.
fn ask(s: &mut TcpStream, name: &str) -> Option<ResponseCode> {
    s.write_all(&framed(&query(name, RecordType::A))).ok()?;
    let raw = read_response(s)?;
    Some(
        Message::from_vec(&raw)
            .expect("decode")
            .metadata
            .response_code,
    )
}

#[test]
fn connections_over_the_cap_are_closed_and_room_frees_up() {
    let srv = server("timeouts {\n        max_connections 3\n    }");
    let name = "web.default.svc.cluster.local.";
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(srv.addr)).collect();
    for s in &mut held {
        assert_eq!(ask(s, name), Some(ResponseCode::NoError));
    }
    let mut fourth = connect(srv.addr);
    let _ = fourth.write_all(&framed(&query(name, RecordType::A)));
    assert!(
        read_response(&mut fourth).is_none(),
        "a fourth connection was served with max_connections 3"
    );
    // The held connections still work, and closing one makes room.
    assert_eq!(ask(&mut held[0], name), Some(ResponseCode::NoError));
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served = false;
    while !served && Instant::now() < deadline {
        served = ask(&mut connect(srv.addr), name) == Some(ResponseCode::NoError);
        if !served {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(served, "no room after a held connection was closed");
}

#[test]
fn an_idle_connection_is_closed() {
    let srv = server("timeouts {\n        idle 1s\n    }");
    let mut s = connect(srv.addr);
    assert_eq!(
        ask(&mut s, "web.default.svc.cluster.local."),
        Some(ResponseCode::NoError)
    );
    assert!(closed_by_server(&mut s), "idle connection left open");
}

#[test]
fn a_query_trickling_in_is_abandoned_slow_loris() {
    // Idle is long; only the read timeout can close this connection.
    let srv = server("timeouts {\n        idle 1h\n        read 1s\n    }");
    let mut s = connect(srv.addr);
    let whole = framed(&query("web.default.svc.cluster.local.", RecordType::A));
    s.write_all(&whole[..5]).expect("first bytes");
    assert!(
        closed_by_server(&mut s),
        "a stalled query kept its connection"
    );
    // The server is fine for everyone else.
    let mut other = connect(srv.addr);
    assert_eq!(
        ask(&mut other, "web.default.svc.cluster.local."),
        Some(ResponseCode::NoError)
    );
}

/// A server with `cluster.local` from the manifests and `example.org`
/// forwarded to `up`; `timeouts` goes in the first block.
fn server_with_upstream(up: &Upstream, timeouts: &str) -> TestServer {
    let corefile = format!(
        "cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        manifests cluster.yaml
    }}
    {timeouts}
}}
example.org:{{PORT}} {{
    bind 127.0.0.1
    forward . {}
}}
",
        up.to()
    );
    TestServer::start(&corefile, &[("cluster.yaml", SERVICE)])
}

/// The query for `name` with this ID.
fn query_id(name: &str, id: u16) -> Message {
    let mut m = query(name, RecordType::A);
    m.metadata.id = id;
    m
}

/// Read one response and decode it; panics when the server closed first.
fn next_message(s: &mut TcpStream, what: &str) -> Message {
    let raw = read_response(s).unwrap_or_else(|| panic!("{what}: connection closed"));
    Message::from_vec(&raw).expect("decode")
}

/// Issue 12 item 4 (RFC 7766 §6.2.1.1): a query waiting on a slow upstream
/// does not hold up the cluster query pipelined behind it on the same
/// connection; both are answered, the cluster one first.
#[test]
fn a_slow_query_does_not_hold_up_the_query_behind_it() {
    let up = Upstream::start();
    up.answer("slow.example.org.", &["192.0.2.1".parse().expect("ip")]);
    // Far below forward's 2 s read timeout, far above answering from the index.
    up.set_delay(Duration::from_millis(800));
    let srv = server_with_upstream(&up, "");
    let mut s = connect(srv.addr);
    let slow = query_id("slow.example.org.", 1);
    let fast = query_id("web.default.svc.cluster.local.", 2);
    s.write_all(&[framed(&slow), framed(&fast)].concat())
        .expect("write both queries at once");
    let first = next_message(&mut s, "first answer");
    assert_eq!(
        first.metadata.id, 2,
        "the cluster answer waited for the forwarded one"
    );
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first.answers.len(), 1, "cluster answer: {first:?}");
    let second = next_message(&mut s, "second answer");
    assert_eq!(second.metadata.id, 1);
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
    assert_eq!(second.queries[0].name().to_string(), "slow.example.org.");
    assert_eq!(second.answers.len(), 1, "forwarded answer: {second:?}");
    assert_eq!(up.queries_for("slow.example.org."), 1);
}

/// Many queries written at once, more of them waiting on the upstream than a
/// connection may have pending (MAX_PENDING): every one gets exactly one
/// answer, with its ID, question and rcode.
#[test]
fn many_pipelined_queries_get_one_answer_each() {
    let up = Upstream::start();
    up.answer("slow.example.org.", &["192.0.2.1".parse().expect("ip")]);
    up.set_delay(Duration::from_millis(100));
    let srv = server_with_upstream(&up, "");
    let mut s = connect(srv.addr);
    let slow = 2 * clusterdns::dns::tcp::MAX_PENDING;
    let total = 3 * slow;
    let names: Vec<&str> = (0..total)
        .map(|i| match i % 3 {
            0 => "slow.example.org.",
            1 => "web.default.svc.cluster.local.",
            _ => "nope.default.svc.cluster.local.",
        })
        .collect();
    let all: Vec<u8> = names
        .iter()
        .enumerate()
        .flat_map(|(i, n)| framed(&query_id(n, u16::try_from(i).expect("id"))))
        .collect();
    s.write_all(&all).expect("write all queries at once");
    let mut answered = vec![0usize; total];
    for i in 0..total {
        let m = next_message(&mut s, &format!("answer {i} of {total}"));
        let id = usize::from(m.metadata.id);
        assert!(id < total, "answer with an ID never asked: {id}");
        answered[id] += 1;
        assert_eq!(m.queries[0].name().to_string(), names[id], "answer to {id}");
        let want = if names[id].starts_with("nope") {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(m.metadata.response_code, want, "answer to {id}");
    }
    let twice: Vec<usize> = (0..total).filter(|&i| answered[i] != 1).collect();
    assert!(twice.is_empty(), "not answered exactly once: {twice:?}");
    // Nothing else was queued: the next answer is the next query's.
    let last = u16::try_from(total).expect("id");
    s.write_all(&framed(&query_id("web.default.svc.cluster.local.", last)))
        .expect("write");
    assert_eq!(next_message(&mut s, "last").metadata.id, last);
}

/// Idle means no query started and no answer pending: a connection whose
/// answer waits on the upstream longer than `idle` gets it, then closes.
#[test]
fn a_connection_waiting_for_an_answer_is_not_idle() {
    let up = Upstream::start();
    up.answer("slow.example.org.", &["192.0.2.1".parse().expect("ip")]);
    // Longer than idle, shorter than forward's 2 s read timeout.
    up.set_delay(Duration::from_millis(1400));
    let srv = server_with_upstream(&up, "timeouts {\n        idle 1s\n    }");
    let mut s = connect(srv.addr);
    s.write_all(&framed(&query_id("slow.example.org.", 21)))
        .expect("write");
    let m = next_message(&mut s, "the slow answer");
    assert_eq!(m.metadata.id, 21);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(closed_by_server(&mut s), "idle connection left open");
}

/// On SIGTERM a connection answers the query it has received (still waiting
/// on the upstream), then closes.
#[test]
fn sigterm_answers_the_pending_query_then_closes() {
    let up = Upstream::start();
    up.answer("slow.example.org.", &["192.0.2.1".parse().expect("ip")]);
    up.set_delay(Duration::from_millis(1000));
    let srv = server_with_upstream(&up, "");
    let mut s = connect(srv.addr);
    s.write_all(&framed(&query_id("slow.example.org.", 31)))
        .expect("write");
    common::eventually(Duration::from_secs(10), || {
        (up.queries_for("slow.example.org.") > 0).then_some(())
    })
    .expect("the upstream never saw the query");
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(srv.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    let m = next_message(&mut s, "the pending answer after SIGTERM");
    assert_eq!(m.metadata.id, 31);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        closed_by_server(&mut s),
        "connection left open after shutdown"
    );
}

/// Queries split anywhere across writes (inside the length prefix, inside
/// the message, with the next query starting in the same write) are each
/// answered once complete.
#[test]
fn queries_split_across_writes_are_answered() {
    let srv = server("");
    let mut s = connect(srv.addr);
    s.set_nodelay(true).expect("nodelay");
    let one = framed(&query_id("web.default.svc.cluster.local.", 11));
    let two = framed(&query_id("nope.default.svc.cluster.local.", 12));
    let both = [&one[..], &two[..]].concat();
    let cuts = [1, 2, 9, one.len() + 1, one.len() + 5, both.len()];
    let mut from = 0;
    for to in cuts {
        s.write_all(&both[from..to]).expect("write a piece");
        s.flush().expect("flush");
        // Separate segments, so the server sees the pieces in separate reads.
        std::thread::sleep(Duration::from_millis(20));
        from = to;
    }
    let first = next_message(&mut s, "first");
    assert_eq!(first.metadata.id, 11);
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    let second = next_message(&mut s, "second");
    assert_eq!(second.metadata.id, 12);
    assert_eq!(second.metadata.response_code, ResponseCode::NXDomain);
}

/// Issue 8 item 12: one request path. Every request gets the same bytes
/// over TCP as over UDP when the answer fits in 512 octets.
#[test]
fn udp_and_tcp_answer_every_request_identically() {
    let srv = server("");
    let name = "web.default.svc.cluster.local.";
    let mut two = query(name, RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(name).expect("name"),
        RecordType::AAAA,
    ));
    let mut notify = query(name, RecordType::SOA).to_vec().expect("encode");
    notify[2] = (notify[2] & 0x87) | (4 << 3); // opcode NOTIFY
    let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff, 0xff, 0x07]);
    let mut trailing = query(name, RecordType::A).to_vec().expect("encode");
    trailing.extend_from_slice(&[0xde, 0xad]);
    let mut no_question = query(name, RecordType::A).to_vec().expect("encode");
    no_question.truncate(12);
    no_question[5] = 0;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("A", query(name, RecordType::A).to_vec().expect("encode")),
        (
            "A with EDNS 1232",
            with_edns(query(name, RecordType::A), 1232)
                .to_vec()
                .expect("encode"),
        ),
        (
            "NXDOMAIN",
            query("nope.default.svc.cluster.local.", RecordType::A)
                .to_vec()
                .expect("encode"),
        ),
        ("two questions", two.to_vec().expect("encode")),
        ("NOTIFY opcode", notify),
        ("garbage after the header", garbage),
        ("bytes after the question", trailing),
        ("no question", no_question),
    ];
    for (what, bytes) in cases {
        let over_udp = udp_raw(srv.addr, &bytes, 2000);
        let mut s = connect(srv.addr);
        let len = u16::try_from(bytes.len()).expect("len");
        s.write_all(&[&len.to_be_bytes()[..], &bytes].concat())
            .expect("write");
        let over_tcp = read_response(&mut s);
        assert_eq!(over_udp, over_tcp, "{what}: UDP and TCP differ");
        assert!(over_udp.is_some(), "{what}: no answer");
    }
}
