//! The memo against the full request path, over real plugin chains and the
//! fuzz cluster: a hit must be byte for byte what the full path writes for
//! the same request (with its own ID), must stop at the first index publish,
//! must never happen for chains whose answers vary, and must replay what the
//! pass-through plugins count.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as Question};
use hickory_proto::rr::{Name, RecordType};

use crate::dns::memo::Ticket;
use crate::dns::wire::{self, Parsed};
use crate::dns::{AnswerMemo, Handler, Transport};
use crate::fuzzing::cluster::{objects, reset_all, shared_index};
use crate::fuzzing::request::build_handler;
use crate::index::snapshot::SharedIndex;
use crate::plugin::build::Families;

const SRC: &str = "10.244.1.10:40000";

fn src() -> SocketAddr {
    SRC.parse().expect("addr")
}

fn request(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Question::query(
        Name::from_ascii(name).expect("name"),
        qtype,
    ));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

/// The memo's response to `bytes`, if it has a current one.
fn hit(s: &Setup, memo: &mut AnswerMemo, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    s.handler
        .answer_from_memo(memo, bytes, src(), &mut out)
        .then_some(out)
}

/// The A question for the demo's ClusterIP Service `nginx-service`.
fn nginx(id: u16) -> Vec<u8> {
    request(
        id,
        "nginx-service.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
}

/// The full path, as the UDP loop runs it: parse, chain, encode.
fn full(handler: &Handler, bytes: &[u8]) -> (Vec<u8>, Option<Ticket>) {
    let Parsed::Query(req) = wire::parse(bytes, src(), Transport::Udp) else {
        panic!("not a query");
    };
    let (answer, ticket) = crate::fuzzing::block_on(handler.answer_memoizable(&req.query));
    let mut out = Vec::new();
    wire::encode(&req, &answer, Transport::Udp, &mut out).expect("encoded");
    (out, ticket)
}

struct Setup {
    handler: Handler,
    index: Arc<SharedIndex>,
    families: Families,
}

fn setup(plugins: &str) -> Setup {
    let corefile = format!(
        ".:53 {{\n{plugins}\n    kubernetes cluster.local in-addr.arpa {{\n        \
         manifests cluster.yaml\n        pods verified\n        fallthrough in-addr.arpa\n    }}\n}}\n"
    );
    let index = shared_index();
    let families = Families::new(prometheus::Registry::new());
    let handler =
        crate::fuzzing::block_on(async { build_handler(&corefile, index.clone(), &families) });
    Setup {
        handler,
        index,
        families,
    }
}

/// Full path once (filling the memo), then the memo for the same request
/// under another ID: `Some(response)` on a hit.
fn twice(s: &Setup, memo: &mut AnswerMemo, bytes: &[u8]) -> Option<Vec<u8>> {
    assert!(hit(s, memo, bytes).is_none(), "nothing memoized yet");
    let (first, ticket) = full(&s.handler, bytes);
    if let Some(t) = ticket {
        memo.insert(bytes, t, &first);
    }
    let mut again = bytes.to_vec();
    again[..2].copy_from_slice(&0x7777u16.to_be_bytes());
    let out = hit(s, memo, &again)?;
    let (expected, _) = full(&s.handler, &again);
    assert_eq!(out, expected, "a hit is exactly the full path's response");
    Some(out)
}

#[test]
fn hits_are_the_full_paths_bytes_for_every_kind_of_answer() {
    let s = setup("    errors\n    cache 30\n    prometheus :0");
    let mut memo = AnswerMemo::default();
    let cases: &[(&str, RecordType, Option<u16>)] = &[
        (
            "nginx-service.default.svc.cluster.local.",
            RecordType::A,
            None,
        ),
        (
            "NgInX-Service.Default.svc.CLUSTER.local.",
            RecordType::A,
            Some(1232),
        ),
        (
            "nginx-service.default.svc.cluster.local.",
            RecordType::AAAA,
            None,
        ),
        (
            "_http._tcp.kube-dns.kube-system.svc.cluster.local.",
            RecordType::SRV,
            None,
        ),
        (
            "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
            RecordType::SRV,
            Some(4096),
        ),
        ("nothing.default.svc.cluster.local.", RecordType::A, None),
        ("cluster.local.", RecordType::SOA, None),
        ("dns-version.cluster.local.", RecordType::TXT, None),
        ("100.0.96.10.in-addr.arpa.", RecordType::PTR, None),
        // 40 SRV records: truncated without EDNS, whole with 4096.
        (
            "_http._tcp.big.default.svc.cluster.local.",
            RecordType::SRV,
            None,
        ),
        (
            "_http._tcp.big.default.svc.cluster.local.",
            RecordType::SRV,
            Some(4096),
        ),
    ];
    for (i, &(name, qtype, edns)) in cases.iter().enumerate() {
        let bytes = request(u16::try_from(i).expect("id"), name, qtype, edns);
        let hit = twice(&s, &mut memo, &bytes);
        assert!(hit.is_some(), "{name} {qtype} {edns:?}: not memoized");
    }
    let m = Message::from_vec(&twice_answer(&s, &mut memo)).expect("decode");
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "NgInX-Service.Default.svc.CLUSTER.local."
    );
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "NgInX-Service.Default.svc.CLUSTER.local."
    );
}

#[test]
fn loadbalance_lets_through_only_what_it_would_not_shuffle() {
    let s = setup("    loadbalance");
    let mut memo = AnswerMemo::default();
    let one = nginx(1);
    assert!(twice(&s, &mut memo, &one).is_some());
    // 40 addresses of a headless service, or 40 SRV targets' addresses in
    // the additional section, come out in a new order each time.
    for (name, qtype) in [
        ("big.default.svc.cluster.local.", RecordType::A),
        ("_http._tcp.big.default.svc.cluster.local.", RecordType::SRV),
    ] {
        let bytes = request(2, name, qtype, Some(4096));
        assert_eq!(twice(&s, &mut memo, &bytes), None, "{name} {qtype}");
    }
}

/// The mixed-case query of the table above, from the memo.
fn twice_answer(s: &Setup, memo: &mut AnswerMemo) -> Vec<u8> {
    let bytes = request(
        9,
        "NgInX-Service.Default.svc.CLUSTER.local.",
        RecordType::A,
        Some(1232),
    );
    hit(s, memo, &bytes).expect("a memo hit")
}

#[test]
fn an_index_publish_ends_every_entry() {
    let s = setup("");
    let mut memo = AnswerMemo::default();
    let bytes = nginx(1);
    assert!(twice(&s, &mut memo, &bytes).is_some());
    // The same data published again still ends the entry (a new generation).
    s.index.apply([reset_all(objects())]);
    assert!(hit(&s, &mut memo, &bytes).is_none());
    // A publish without the Service: the full path answers NXDOMAIN and the memo agrees.
    let (first, ticket) = full(&s.handler, &bytes);
    memo.insert(&bytes, ticket.expect("memoizable"), &first);
    assert!(hit(&s, &mut memo, &bytes).is_some());
    let others: Vec<_> = objects()
        .into_iter()
        .filter(|o| !format!("{o:?}").contains("nginx-service"))
        .collect();
    s.index.apply([reset_all(others)]);
    assert!(hit(&s, &mut memo, &bytes).is_none());
    let (gone, _) = full(&s.handler, &bytes);
    let m = Message::from_vec(&gone).expect("decode");
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
}

#[test]
fn deterministic_plugins_before_the_writer_keep_the_memo() {
    let s =
        setup("    local\n    chaos\n    minimal\n    header {\n        response set ra\n    }");
    let mut memo = AnswerMemo::default();
    for (name, qtype) in [
        ("nginx-service.default.svc.cluster.local.", RecordType::A),
        (
            "_http._tcp.kube-dns.kube-system.svc.cluster.local.",
            RecordType::SRV,
        ),
    ] {
        let bytes = request(1, name, qtype, Some(1232));
        let hit = twice(&s, &mut memo, &bytes).expect("memoized");
        let m = Message::from_vec(&hit).expect("decode");
        assert!(
            m.metadata.recursion_available,
            "header's rule is in the hit"
        );
        assert!(
            m.additionals.is_empty(),
            "minimal's stripping is in the hit"
        );
    }
}

#[test]
fn chains_whose_answers_vary_are_never_memoized() {
    for plugins in [
        "    log",
        "    rewrite name exact db.example.com nginx-service.default.svc.cluster.local",
        "    autopath @kubernetes",
        "    loadbalance {\n        limit_answers 1\n    }",
    ] {
        let s = setup(plugins);
        let mut memo = AnswerMemo::default();
        let bytes = nginx(1);
        assert_eq!(twice(&s, &mut memo, &bytes), None, "{plugins}");
        assert!(memo.is_empty(), "{plugins}");
    }
}

#[test]
fn hits_count_as_requests_and_replay_the_caches_misses() {
    let s = setup("    cache 30\n    prometheus :0");
    let mut memo = AnswerMemo::default();
    let bytes = nginx(1);
    assert!(twice(&s, &mut memo, &bytes).is_some());
    assert!(hit(&s, &mut memo, &bytes).is_some());
    // Full path twice (one in `twice` to compare) plus two hits.
    let text = crate::metrics::encode(s.families.registry());
    let value = |metric: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(value("coredns_dns_requests_total{"), 4.0, "{text}");
    assert_eq!(value("coredns_cache_requests_total{"), 4.0, "{text}");
    assert_eq!(value("coredns_cache_misses_total{"), 4.0, "{text}");
}
