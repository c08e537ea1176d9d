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
