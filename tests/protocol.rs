//! Wire-protocol behaviour of the real binary over real sockets: UDP size
//! limits and truncation, EDNS, malformed packets, 0x20 case, TCP.

mod common;

use common::{TestServer, lines, query, udp, udp_raw, with_edns};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// A headless service `big` in `default` with `n` ready endpoints, as manifests.
fn big_headless(n: usize) -> String {
    let mut eps = String::new();
    for i in 0..n {
        eps.push_str(&format!(
            "  - addresses: [\"10.1.{}.{}\"]\n    conditions: {{ready: true}}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: big, namespace: default}}
spec:
  clusterIP: None
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: big-1
  namespace: default
  labels: {{kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
{eps}"
    )
}

const COREFILE: &str = r#"
cluster.local:{PORT} {
    bind 127.0.0.1
    kubernetes cluster.local {
        manifests cluster.yaml
    }
}
"#;

fn big_server() -> TestServer {
    TestServer::start(COREFILE, &[("cluster.yaml", &big_headless(100))])
}

#[test]
fn udp_answer_without_edns_is_truncated_to_512_bytes_with_tc_set() {
    let srv = big_server();
    let m = query("big.default.svc.cluster.local.", RecordType::A);
    let bytes = m.to_vec().expect("encode");
    let reply = udp_raw(srv.addr, &bytes, 2000).expect("reply");
    assert!(reply.len() <= 512, "reply is {} bytes", reply.len());
    let reply = Message::from_vec(&reply).expect("decode");
    assert!(reply.metadata.truncation, "TC must be set");
    assert!(reply.answers.len() < 100);
    assert!(
        reply.edns.is_none(),
        "no OPT in the answer to a query without OPT"
    );
}

#[test]
fn tcp_answer_carries_all_hundred_endpoints() {
    let srv = big_server();
    let reply = srv.tcp("big.default.svc.cluster.local.", RecordType::A);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 100);
}

#[test]
fn edns_payload_size_is_honoured_and_opt_is_answered() {
    let srv = big_server();
    let m = with_edns(query("big.default.svc.cluster.local.", RecordType::A), 4096);
    let reply = udp(srv.addr, &m);
    assert!(
        !reply.metadata.truncation,
        "100 A records fit in 4096 bytes"
    );
    assert_eq!(reply.answers.len(), 100);
    let opt = reply.edns.expect("OPT answered");
    assert!(opt.max_payload() >= 512);

    let small = with_edns(query("big.default.svc.cluster.local.", RecordType::A), 1232);
    let bytes = small.to_vec().expect("encode");
    let raw = udp_raw(srv.addr, &bytes, 2000).expect("reply");
    assert!(raw.len() <= 1232);
    let reply = Message::from_vec(&raw).expect("decode");
    assert!(reply.metadata.truncation);
}

#[test]
fn garbage_after_a_valid_header_gets_formerr_and_the_server_keeps_answering() {
    let srv = big_server();
    // A header claiming one question, followed by bytes that are not a name.
    let mut pkt = vec![
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    pkt.extend_from_slice(&[0xff, 0xff, 0xff, 0x07, 0x41]);
    let reply = udp_raw(srv.addr, &pkt, 2000).expect("FORMERR reply");
    let reply = Message::from_vec(&reply).expect("decode");
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // Shorter than a header: dropped, no reply.
    assert!(udp_raw(srv.addr, &[0x01, 0x02, 0x03], 300).is_none());

    let ok = srv.udp("big.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn two_questions_in_one_query_get_formerr() {
    let srv = big_server();
    let mut m = query("big.default.svc.cluster.local.", RecordType::A);
    m.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("big.default.svc.cluster.local.").expect("name"),
        RecordType::AAAA,
    ));
    let reply = udp(srv.addr, &m);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn answer_names_keep_the_query_case() {
    let srv = big_server();
    let reply = srv.tcp("BiG.DeFaUlT.SvC.ClUsTeR.LoCaL.", RecordType::A);
    assert_eq!(reply.answers.len(), 100);
    assert!(
        reply
            .answers
            .iter()
            .all(|r| r.name.to_string() == "BiG.DeFaUlT.SvC.ClUsTeR.LoCaL."),
        "{:?}",
        lines(&reply.answers[..2])
    );
    assert_eq!(
        reply.queries[0].name().to_string(),
        "BiG.DeFaUlT.SvC.ClUsTeR.LoCaL."
    );
}

#[test]
fn a_zone_no_server_block_serves_is_refused() {
    let srv = big_server();
    let reply = srv.udp("example.org.", RecordType::A);
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn queries_go_to_the_block_with_the_longest_matching_zone() {
    // Two server blocks on one port: cluster.local has kubernetes, the root
    // block only whoami. A cluster name must never reach whoami, anything else must.
    let srv = TestServer::start(
        r#"
cluster.local:{PORT} {
    bind lo
    kubernetes {
        manifests cluster.yaml
    }
}
.:{PORT} {
    bind 127.0.0.1
    whoami
}
"#,
        &[("cluster.yaml", &big_headless(3))],
    );
    let cluster = srv.udp("nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(cluster.metadata.response_code, ResponseCode::NXDomain);
    assert!(cluster.metadata.authoritative);
    let other = srv.udp("example.org.", RecordType::A);
    assert_eq!(other.metadata.response_code, ResponseCode::NoError);
    assert!(
        lines(&other.additionals).contains(&"example.org. 0 IN A 127.0.0.1".to_string()),
        "whoami answered the non-cluster name: {:?}",
        lines(&other.additionals)
    );
}

/// One query over TCP, the reply's raw bytes (2-byte length framing).
fn tcp_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
        .expect("tcp connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let len = u16::try_from(bytes.len()).expect("len");
    s.write_all(&[&len.to_be_bytes()[..], bytes].concat())
        .expect("write");
    let mut lenbuf = [0u8; 2];
    s.read_exact(&mut lenbuf).expect("read len");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenbuf))];
    s.read_exact(&mut buf).expect("read msg");
    buf
}

/// Issue 8 item 1: with 40 endpoints and no EDNS, the truncated UDP answer
/// carried the bytes of one more record than its header counted.
#[test]
fn truncated_udp_answer_for_forty_endpoints_is_well_formed() {
    let srv = TestServer::start(COREFILE, &[("cluster.yaml", &big_headless(40))]);
    let m = query("big.default.svc.cluster.local.", RecordType::A);
    let raw = udp_raw(srv.addr, &m.to_vec().expect("encode"), 2000).expect("reply");
    let summary = clusterdns::dns::strict::check(&raw)
        .unwrap_or_else(|e| panic!("malformed answer ({} octets): {e}", raw.len()));
    assert!(raw.len() <= 512, "reply is {} octets", raw.len());
    assert!(summary.truncated, "40 A records do not fit in 512 octets");
    assert!(summary.answers > 0 && summary.answers < 40);
    assert_eq!(summary.edns_payload, None);
}

/// Every endpoint count, A and SRV (with additional A records), EDNS size and transport gives a strictly
/// well-formed answer within the limit, truncated exactly when records are missing.
#[test]
fn answers_are_well_formed_for_every_size_and_transport() {
    let counts = [0usize, 1, 27, 28, 29, 40, 100, 200];
    let mut files = String::new();
    for (i, n) in counts.iter().enumerate() {
        if i > 0 {
            files.push_str("---\n");
        }
        files.push_str(
            // Renames the Service, its slice and the slice's service-name label.
            &big_headless(*n).replace("name: big", &format!("name: big{n}")),
        );
    }
    let srv = TestServer::start(COREFILE, &[("cluster.yaml", &files)]);
    // (query type, records a complete answer has in the answer and additional sections):
    // A gives one record per endpoint; SRV one per endpoint plus its target's A record.
    let shapes = [(RecordType::A, 1, 0), (RecordType::SRV, 1, 1)];
    for n in counts {
        let name = format!("BiG{n}.default.svc.cluster.local.");
        for (qtype, per_answer, per_additional) in shapes {
            for edns in [None, Some(512u16), Some(1232), Some(4096)] {
                let mut m = query(&name, qtype);
                if let Some(size) = edns {
                    m = with_edns(m, size);
                }
                let bytes = m.to_vec().expect("encode");
                let udp_reply = udp_raw(srv.addr, &bytes, 2000).expect("udp reply");
                let tcp_reply = tcp_raw(srv.addr, &bytes);
                for (transport, raw, limit) in [
                    ("udp", &udp_reply, usize::from(edns.unwrap_or(512))),
                    ("tcp", &tcp_reply, usize::from(u16::MAX)),
                ] {
                    let what = format!("{n} endpoints, {qtype}, edns {edns:?}, {transport}");
                    let s = clusterdns::dns::strict::check(raw)
                        .unwrap_or_else(|e| panic!("{what}: malformed: {e}"));
                    assert!(raw.len() <= limit, "{what}: {} octets", raw.len());
                    let opt = u16::from(s.edns_payload.is_some());
                    let complete = usize::from(s.answers) == n * per_answer
                        && usize::from(s.additional - opt) == n * per_additional;
                    assert_eq!(
                        s.truncated, !complete,
                        "{what}: TC vs {} answers, {} additional",
                        s.answers, s.additional
                    );
                    assert_eq!(s.edns_payload.is_some(), edns.is_some(), "{what}: OPT");
                    if transport == "tcp" {
                        assert!(complete, "{what}: TCP answer incomplete");
                    }
                }
            }
        }
    }
}
