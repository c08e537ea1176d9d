//! The kubernetes plugin through the real binary, over UDP and over TCP, on
//! CoreDNS's own handler_test.go fixture (tests/fixtures/testns.yaml).
//! The same battery runs on both transports.

mod common;

use common::{TestServer, lines};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const COREFILE: &str = r#"
cluster.local:{PORT} in-addr.arpa:{PORT} ip6.arpa:{PORT} {
    bind 127.0.0.1
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests testns.yaml
        pods insecure
    }
}
"#;

fn server() -> TestServer {
    let yaml = std::fs::read_to_string(common::repo().join("tests/fixtures/testns.yaml"))
        .expect("fixture");
    TestServer::start(COREFILE, &[("testns.yaml", &yaml)])
}

struct Case {
    qname: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &'static [&'static str],
    /// Expect the zone SOA in the authority section.
    soa: bool,
}

const fn ok(qname: &'static str, qtype: RecordType, answers: &'static [&'static str]) -> Case {
    Case {
        qname,
        qtype,
        rcode: ResponseCode::NoError,
        answers,
        soa: false,
    }
}

const fn nodata(qname: &'static str, qtype: RecordType) -> Case {
    Case {
        qname,
        qtype,
        rcode: ResponseCode::NoError,
        answers: &[],
        soa: true,
    }
}

const fn nxdomain(qname: &'static str, qtype: RecordType) -> Case {
    Case {
        qname,
        qtype,
        rcode: ResponseCode::NXDomain,
        answers: &[],
        soa: true,
    }
}

use RecordType::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};

const CASES: &[Case] = &[
    ok(
        "svc1.testns.svc.cluster.local.",
        A,
        &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    ok(
        "svcempty.testns.svc.cluster.local.",
        A,
        &["svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.2"],
    ),
    ok(
        "svc1.testns.svc.cluster.local.",
        SRV,
        &["svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."],
    ),
    ok(
        "_http._tcp.svc1.testns.svc.cluster.local.",
        SRV,
        &[
            "_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        ],
    ),
    ok(
        "svc6.testns.svc.cluster.local.",
        AAAA,
        &["svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"],
    ),
    ok(
        "hdls1.testns.svc.cluster.local.",
        A,
        &[
            "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
            "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
            "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
        ],
    ),
    ok(
        "hdls1.testns.svc.cluster.local.",
        AAAA,
        &[
            "hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
            "hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
        ],
    ),
    ok(
        "hdlsprtls.testns.svc.cluster.local.",
        A,
        &["hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"],
    ),
    nodata("svc1.testns.svc.cluster.local.", AAAA),
    nxdomain("svc0.testns.svc.cluster.local.", A),
    nxdomain("svc0.svc-nons.svc.cluster.local.", A),
    ok(
        "dns-version.cluster.local.",
        TXT,
        &["dns-version.cluster.local. 28800 IN TXT 1.1.0"],
    ),
    nodata("svc1.testns.svc.cluster.local.", TXT),
    nxdomain("bogusendpoint.hdls1.testns.svc.cluster.local.", A),
    nodata("svc.cluster.local.", A),
    nodata("pod.cluster.local.", A),
    nodata("testns.svc.cluster.local.", A),
    nodata("emptyns.svc.cluster.local.", A),
    nxdomain("foo.cluster.local.", NS),
    ok(
        "svc-dual-stack.testns.svc.cluster.local.",
        A,
        &["svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3"],
    ),
    ok(
        "svc-dual-stack.testns.svc.cluster.local.",
        AAAA,
        &["svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3"],
    ),
    nodata("svc1.testns.svc.cluster.local.", SOA),
    ok(
        "dup-name.hdls1.testns.svc.cluster.local.",
        A,
        &[
            "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
            "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
        ],
    ),
    nxdomain("not-ready.hdls1.testns.svc.cluster.local.", A),
    ok(
        "5678-abcd--2.hdls1.testns.svc.cluster.local.",
        AAAA,
        &["5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2"],
    ),
    ok(
        "ep1a.svc1.testns.svc.cluster.local.",
        A,
        &["ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.0.0.1"],
    ),
    ok(
        "external.testns.svc.cluster.local.",
        CNAME,
        &["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."],
    ),
    ok(
        "external-to-service.testns.svc.cluster.local.",
        A,
        &[
            "external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
            "svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1",
        ],
    ),
    nodata("external.testns.svc.cluster.local.", SRV),
    ok(
        "10-244-1-5.testns.pod.cluster.local.",
        A,
        &["10-244-1-5.testns.pod.cluster.local. 5 IN A 10.244.1.5"],
    ),
    nxdomain("blah.testns.pod.cluster.local.", A),
    ok(
        "1.0.0.10.in-addr.arpa.",
        PTR,
        &["1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."],
    ),
    ok(
        "1.0.0.172.in-addr.arpa.",
        PTR,
        &["1.0.0.172.in-addr.arpa. 5 IN PTR ep1a.svc1.testns.svc.cluster.local."],
    ),
    nxdomain("99.99.99.10.in-addr.arpa.", PTR),
    nodata("svc1.testns.svc.cluster.local.", PTR),
    nxdomain("*.testns.svc.cluster.local.", A),
];

fn check(case: &Case, reply: &Message, transport: &str) {
    let what = format!("{} {} over {transport}", case.qname, case.qtype);
    assert_eq!(reply.metadata.response_code, case.rcode, "rcode of {what}");
    assert!(reply.metadata.authoritative, "AA of {what}");
    let mut want: Vec<String> = case.answers.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(lines(&reply.answers), want, "answers of {what}");
    let has_soa = reply
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA);
    assert_eq!(has_soa, case.soa, "SOA in authority of {what}");
}

#[test]
fn every_record_form_answers_as_coredns_over_udp_and_tcp() {
    let srv = server();
    for case in CASES {
        check(case, &srv.udp(case.qname, case.qtype), "udp");
        check(case, &srv.tcp(case.qname, case.qtype), "tcp");
    }
}

#[test]
fn apex_soa_and_ns_answer_with_glue_for_ns_dns() {
    let srv = server();
    let soa = srv.udp("cluster.local.", SOA);
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(soa.answers.len(), 1);
    let text = soa.answers[0].to_string();
    assert!(
        text.contains("ns.dns.cluster.local. hostmaster.cluster.local."),
        "{text}"
    );
    assert!(text.contains("7200 1800 86400 5"), "{text}");

    let ns = srv.udp("cluster.local.", NS);
    assert_eq!(
        lines(&ns.answers),
        ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    );
    assert!(
        lines(&ns.additionals).contains(&"ns.dns.cluster.local. 5 IN A 127.0.0.1".to_string()),
        "{:?}",
        lines(&ns.additionals)
    );
    let a = srv.udp("ns.dns.cluster.local.", A);
    assert_eq!(
        lines(&a.answers),
        ["ns.dns.cluster.local. 5 IN A 127.0.0.1"]
    );
}

#[test]
fn srv_for_a_headless_service_names_each_endpoint_with_glue() {
    let srv = server();
    let r = srv.tcp("_http._tcp.hdls1.testns.svc.cluster.local.", SRV);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let got = lines(&r.answers);
    for target in [
        "172-0-0-2.hdls1.testns.svc.cluster.local.",
        "172-0-0-3.hdls1.testns.svc.cluster.local.",
        "dup-name.hdls1.testns.svc.cluster.local.",
        "5678-abcd--1.hdls1.testns.svc.cluster.local.",
    ] {
        assert!(
            got.iter().any(|l| l.ends_with(&format!(" 80 {target}"))),
            "{target} missing in {got:?}"
        );
    }
    assert!(!got.iter().any(|l| l.contains("not-ready")), "{got:?}");
    assert!(
        lines(&r.additionals)
            .iter()
            .any(|l| l == "172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"),
        "{:?}",
        lines(&r.additionals)
    );
}

#[test]
fn fallthrough_hands_name_errors_to_the_next_plugin_in_coredns_order() {
    // whoami is written first but runs after kubernetes (plugin.cfg order);
    // only names kubernetes cannot answer reach it.
    let yaml = std::fs::read_to_string(common::repo().join("tests/fixtures/testns.yaml"))
        .expect("fixture");
    let srv = TestServer::start(
        r#"
cluster.local:{PORT} {
    whoami
    bind 127.0.0.1
    kubernetes {
        manifests testns.yaml
        fallthrough
    }
}
"#,
        &[("testns.yaml", &yaml)],
    );
    let hit = srv.udp("svc1.testns.svc.cluster.local.", A);
    assert_eq!(
        lines(&hit.answers),
        ["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"]
    );
    let miss = srv.udp("svc0.testns.svc.cluster.local.", A);
    assert_eq!(
        miss.metadata.response_code,
        ResponseCode::NoError,
        "whoami answered"
    );
    assert!(miss.answers.is_empty());
    assert!(
        lines(&miss.additionals)
            .iter()
            .any(|l| l.starts_with("svc0.testns.svc.cluster.local. 0 IN A 127.0.0.1")),
        "{:?}",
        lines(&miss.additionals)
    );
}

#[test]
fn labels_and_namespaces_options_limit_what_is_exposed() {
    let yaml = std::fs::read_to_string(common::repo().join("tests/fixtures/testns.yaml"))
        .expect("fixture");
    let extra = r#"
apiVersion: v1
kind: Service
metadata: {name: labelled, namespace: other, labels: {team: a}}
spec: {clusterIP: 10.0.9.1, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: unlabelled, namespace: other}
spec: {clusterIP: 10.0.9.2, ports: [{name: http, port: 80}]}
"#;
    let srv = TestServer::start(
        r#"
cluster.local:{PORT} {
    bind 127.0.0.1
    kubernetes {
        manifests testns.yaml other.yaml
        labels team=a
        namespaces other
    }
}
"#,
        &[("testns.yaml", &yaml), ("other.yaml", extra)],
    );
    let labelled = srv.udp("labelled.other.svc.cluster.local.", A);
    assert_eq!(
        lines(&labelled.answers),
        ["labelled.other.svc.cluster.local. 5 IN A 10.0.9.1"]
    );
    let unlabelled = srv.udp("unlabelled.other.svc.cluster.local.", A);
    assert_eq!(unlabelled.metadata.response_code, ResponseCode::NXDomain);
    // testns is not in `namespaces`: even a labelled service there would be hidden.
    let hidden = srv.udp("svc1.testns.svc.cluster.local.", A);
    assert_eq!(hidden.metadata.response_code, ResponseCode::NXDomain);
}
