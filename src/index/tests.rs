//! The record rules as tables, in the style of CoreDNS `handler_test.go`:
//! each row is a query, a type, the rcode and the expected sections written
//! as zone-file lines. Sections compare order-insensitively (CoreDNS's order
//! is not defined) unless a test checks order itself.
//!
//! Cases 1–47 of the facts file §1.4 are ported below (numbered in comments);
//! case 48 (multicluster) is in `tests/multicluster.rs`. Case 28's upstream part and case
//! 30's SERVFAIL belong to the plugin: here they are `chase` and `is_synced`.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode::{self, NXDomain, NoError};
use hickory_proto::rr::RecordType::{self, A, AAAA, CNAME, HINFO, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, Record};

mod external;
mod multicluster;
mod namespace_labels;
mod pods_reverse;
mod rules;
mod zonal;

use super::model::{Endpoint, EndpointSlice, Namespace, Pod, Port, Protocol, Service, ServiceKind};
use super::*;

const SERIAL: u32 = 1_499_347_823;
const SOA_LINE: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5";

// === fixture builders ===

fn port(name: &str, port: u16) -> Port {
    Port {
        name: name.into(),
        protocol: Protocol::Tcp,
        port,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(ns: &str, name: &str, kind: ServiceKind, ports: Vec<Port>) -> IndexUpdate {
    IndexUpdate::Apply(Object::Service(Service {
        namespace: ns.into(),
        name: name.into(),
        kind,
        ports,
        external: Vec::new(),
    }))
}

fn cluster_ip(ips: &[&str]) -> ServiceKind {
    ServiceKind::ClusterIp(ips.iter().map(|s| ip(s)).collect())
}

fn ep(addr: &str, hostname: Option<&str>) -> Endpoint {
    Endpoint {
        addresses: vec![ip(addr)],
        hostname: hostname.map(Into::into),
        pod_name: None,
        ready: true,
        zone: None,
    }
}

fn slice(
    ns: &str,
    name: &str,
    service: &str,
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
) -> IndexUpdate {
    IndexUpdate::Apply(Object::EndpointSlice(EndpointSlice {
        namespace: ns.into(),
        name: name.into(),
        service: service.into(),
        ports,
        endpoints,
    }))
}

fn namespace(name: &str) -> IndexUpdate {
    IndexUpdate::Apply(Object::Namespace(Namespace { name: name.into() }))
}

fn name(s: &str) -> Name {
    // from_ascii keeps the case, as names decoded from the wire do.
    Name::from_ascii(s).unwrap()
}

/// CoreDNS's handler_test.go fixture.
fn fixture() -> ClusterIndex {
    let http = || vec![port("http", 80)];
    let mut idx = ClusterIndex::default();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("testns"),
        svc("testns", "svc1", cluster_ip(&["10.0.0.1"]), http()),
        slice(
            "testns",
            "svc1-a",
            "svc1",
            http(),
            vec![ep("172.0.0.1", Some("ep1a"))],
        ),
        svc("testns", "svcempty", cluster_ip(&["10.0.0.1"]), http()),
        slice("testns", "svcempty-a", "svcempty", http(), vec![]),
        svc("testns", "svc6", cluster_ip(&["1234:abcd::1"]), http()),
        svc("testns", "hdls1", ServiceKind::Headless, http()),
        slice(
            "testns",
            "hdls1-v4",
            "hdls1",
            http(),
            vec![
                ep("172.0.0.2", None),
                ep("172.0.0.3", None),
                ep("172.0.0.4", Some("dup-name")),
                ep("172.0.0.5", Some("dup-name")),
            ],
        ),
        slice(
            "testns",
            "hdls1-v6",
            "hdls1",
            http(),
            vec![ep("5678:abcd::1", None), ep("5678:abcd::2", None)],
        ),
        svc("testns", "hdlsprtls", ServiceKind::Headless, vec![]),
        slice(
            "testns",
            "hdlsprtls-a",
            "hdlsprtls",
            vec![],
            vec![ep("172.0.0.20", None)],
        ),
        svc(
            "testns",
            "external",
            ServiceKind::ExternalName("ext.interwebs.test.".into()),
            http(),
        ),
        svc(
            "testns",
            "external-to-service",
            ServiceKind::ExternalName("svc1.testns.svc.cluster.local.".into()),
            http(),
        ),
        svc(
            "testns",
            "svc-dual-stack",
            cluster_ip(&["10.0.0.3", "10::3"]),
            http(),
        ),
    ]));
    idx.set_serial(SERIAL);
    idx
}

fn opts() -> LookupOptions {
    LookupOptions {
        namespaces: Some(HashSet::from(["testns".into()])),
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        ttl: 5,
        noendpoints: false,
        ignore_empty_service: false,
        primary_zone: name("cluster.local."),
        local_ips: vec![ip("10.0.0.53"), ip("fd00::53")],
        multicluster_zones: Vec::new(),
        zonal: false,
    }
}

// === the table runner ===

/// One row: query, type, rcode, answer, authority, additional.
struct Case {
    q: &'static str,
    t: RecordType,
    rcode: ResponseCode,
    answer: &'static [&'static str],
    ns: &'static [&'static str],
    extra: &'static [&'static str],
}

const fn ok(q: &'static str, t: RecordType, answer: &'static [&'static str]) -> Case {
    Case {
        q,
        t,
        rcode: NoError,
        answer,
        ns: &[],
        extra: &[],
    }
}

const fn glue(
    q: &'static str,
    t: RecordType,
    answer: &'static [&'static str],
    extra: &'static [&'static str],
) -> Case {
    Case {
        q,
        t,
        rcode: NoError,
        answer,
        ns: &[],
        extra,
    }
}

const fn nodata(q: &'static str, t: RecordType) -> Case {
    Case {
        q,
        t,
        rcode: NoError,
        answer: &[],
        ns: &[SOA_LINE],
        extra: &[],
    }
}

const fn nx(q: &'static str, t: RecordType) -> Case {
    Case {
        q,
        t,
        rcode: NXDomain,
        answer: &[],
        ns: &[SOA_LINE],
        extra: &[],
    }
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn lines(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| norm(&r.to_string())).collect();
    v.sort();
    v
}

fn want(expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = expected.iter().map(|s| norm(s)).collect();
    v.sort();
    v
}

fn ask(
    idx: &ClusterIndex,
    opts: &LookupOptions,
    zone: &str,
    q: &str,
    t: RecordType,
) -> LookupResult {
    let (qname, zone) = (name(q), name(zone));
    idx.lookup(
        opts,
        &LookupRequest {
            qname: &qname,
            zone: &zone,
            qtype: t,
        },
    )
}

fn run_in(idx: &ClusterIndex, opts: &LookupOptions, zone: &str, cases: &[Case]) {
    for c in cases {
        let got = ask(idx, opts, zone, c.q, c.t);
        let what = format!("{} {:?}", c.q, c.t);
        assert_eq!(got.rcode, c.rcode, "rcode of {what}");
        assert_eq!(lines(&got.answers), want(c.answer), "answer of {what}");
        assert_eq!(lines(&got.authority), want(c.ns), "authority of {what}");
        assert_eq!(
            lines(&got.additionals),
            want(c.extra),
            "additional of {what}"
        );
    }
}

fn run(idx: &ClusterIndex, opts: &LookupOptions, cases: &[Case]) {
    run_in(idx, opts, "cluster.local.", cases);
}

// === CoreDNS's cases ===

const COREDNS_CASES: &[Case] = &[
    /* 1 */
    ok(
        "svc1.testns.svc.cluster.local.",
        A,
        &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    /* 2 */
    ok(
        "svcempty.testns.svc.cluster.local.",
        A,
        &["svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    /* 3 */
    glue(
        "svc1.testns.svc.cluster.local.",
        SRV,
        &["svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."],
        &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    /* 4 */
    glue(
        "_http._tcp.svc1.testns.svc.cluster.local.",
        SRV,
        &[
            "_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        ],
        &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    /* 5 */
    glue(
        "_http._tcp.svc6.testns.svc.cluster.local.",
        SRV,
        &[
            "_http._tcp.svc6.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc6.testns.svc.cluster.local.",
        ],
        &["svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"],
    ),
    /* 6 */
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
    /* 7 */
    ok(
        "hdls1.testns.svc.cluster.local.",
        AAAA,
        &[
            "hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
            "hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
        ],
    ),
    /* 8 */
    ok(
        "hdlsprtls.testns.svc.cluster.local.",
        A,
        &["hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"],
    ),
    /* 9 */ nodata("svc1.testns.svc.cluster.local.", AAAA),
    /* 10 */ nx("svc0.testns.svc.cluster.local.", A),
    nx("svc0.testns.svc.cluster.local.", AAAA),
    /* 11 */ nx("svc0.svc-nons.svc.cluster.local.", A),
    /* 12 */
    ok(
        "dns-version.cluster.local.",
        TXT,
        &["dns-version.cluster.local. 28800 IN TXT 1.1.0"],
    ),
    /* 13 */ nodata("svc1.testns.svc.cluster.local.", TXT),
    /* 14 */ nx("svc0.svc-nons.svc.cluster.local.", TXT),
    /* 15 */ nx("bogusendpoint.hdls1.testns.svc.cluster.local.", A),
    nx("bogusendpoint.svc0.testns.svc.cluster.local.", A),
    /* 16 */ nodata("svc.cluster.local.", A),
    nodata("pod.cluster.local.", A),
    nodata("testns.svc.cluster.local.", A),
    /* 17 */ nodata("svc.cluster.local.", NS),
    nodata("testns.svc.cluster.local.", NS),
    /* 18 */ nx("foo.cluster.local.", NS),
    nx("foo.svc.cluster.local.", NS),
    /* 19 */
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
    /* 20 */
    glue(
        "svc-dual-stack.testns.svc.cluster.local.",
        SRV,
        &[
            "svc-dual-stack.testns.svc.cluster.local. 5 IN SRV 0 50 80 svc-dual-stack.testns.svc.cluster.local.",
        ],
        &[
            "svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3",
            "svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3",
        ],
    ),
    /* 21 */ nodata("svc1.testns.svc.cluster.local.", SOA),
    /* 22 */ nx("endpoint.external.testns.svc.cluster.local.", CNAME),
    nx("sub.sub.external.testns.svc.cluster.local.", CNAME),
    /* 23 */
    glue(
        "_http._tcp.hdls1.testns.svc.cluster.local.",
        SRV,
        &[
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 dup-name.hdls1.testns.svc.cluster.local.",
        ],
        &[
            "172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "172-0-0-3.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
            "5678-abcd--1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
            "5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
            "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
            "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
        ],
    ),
    /* 24 */
    ok(
        "5678-abcd--2.hdls1.testns.svc.cluster.local.",
        AAAA,
        &["5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2"],
    ),
    /* 25 */
    ok(
        "172-0-0-20.hdlsprtls.testns.svc.cluster.local.",
        A,
        &["172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"],
    ),
    /* 26 */
    ok(
        "dup-name.hdls1.testns.svc.cluster.local.",
        A,
        &[
            "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
            "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
        ],
    ),
    /* 27 */
    ok(
        "external.testns.svc.cluster.local.",
        CNAME,
        &["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."],
    ),
    /* 29 */
    ok(
        "external-to-service.testns.svc.cluster.local.",
        A,
        &[
            "external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
            "svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1",
        ],
    ),
    /* 31 */ ok("cluster.local.", SOA, &[SOA_LINE]),
    /* 32 */
    glue(
        "cluster.local.",
        NS,
        &["cluster.local. 5 IN NS ns.dns.cluster.local."],
        &[
            "ns.dns.cluster.local. 5 IN A 10.0.0.53",
            "ns.dns.cluster.local. 5 IN AAAA fd00::53",
        ],
    ),
    /* 33 */ nodata("cluster.local.", A),
    nodata("cluster.local.", AAAA),
    nodata("cluster.local.", SRV),
    nodata("cluster.local.", HINFO),
    /* 34 */
    ok(
        "ep1a.svc1.testns.svc.cluster.local.",
        A,
        &["ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.0.0.1"],
    ),
    /* 35 */
    ok(
        "ns.dns.cluster.local.",
        A,
        &["ns.dns.cluster.local. 5 IN A 10.0.0.53"],
    ),
    ok(
        "ns.dns.cluster.local.",
        AAAA,
        &["ns.dns.cluster.local. 5 IN AAAA fd00::53"],
    ),
    /* 36 */ nx("10-240-0-1.testns.pod.cluster.local.", A),
    /* 42 */
    ok(
        "SvC1.TeStNs.SvC.cLuStEr.LoCaL.",
        A,
        &["SvC1.TeStNs.SvC.cLuStEr.LoCaL. 5 IN A 10.0.0.1"],
    ),
    /* 47 */ nodata("svc1.testns.svc.cluster.local.", PTR),
];

#[test]
fn coredns_handler_cases_answer_as_coredns_does() {
    run(&fixture(), &opts(), COREDNS_CASES);
}

#[test]
fn a_cname_comes_before_the_records_of_its_internal_target() {
    // Case 29, order-sensitive.
    let got = ask(
        &fixture(),
        &opts(),
        "cluster.local.",
        "external-to-service.testns.svc.cluster.local.",
        A,
    );
    assert_eq!(got.answers[0].record_type(), CNAME);
    assert_eq!(got.answers[1].record_type(), A);
    assert_eq!(got.chase, None);
}

#[test]
fn an_external_target_outside_the_cluster_is_left_to_chase() {
    // Case 28: the plugin resolves `chase` upstream and appends it (and TC).
    let got = ask(
        &fixture(),
        &opts(),
        "cluster.local.",
        "external.testns.svc.cluster.local.",
        A,
    );
    assert_eq!(got.rcode, NoError);
    assert_eq!(
        lines(&got.answers),
        want(&["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."])
    );
    assert_eq!(got.chase, Some(name("ext.interwebs.test.")));
    let srv = ask(
        &fixture(),
        &opts(),
        "cluster.local.",
        "external.testns.svc.cluster.local.",
        SRV,
    );
    assert_eq!(
        (srv.rcode, srv.answers.len(), srv.chase),
        (NoError, 0, None)
    );
}

#[test]
fn kinds_are_synced_only_after_their_first_reset() {
    // Case 30: until synced the plugin turns NXDOMAIN into SERVFAIL.
    let mut idx = fixture();
    assert!(!idx.is_synced(Kind::Service));
    idx.apply(IndexUpdate::Reset {
        kind: Kind::Service,
        objects: vec![],
    });
    assert!(idx.is_synced(Kind::Service));
    assert!(!idx.is_synced(Kind::EndpointSlice));
}

/// reverse_test.go's fixture: ClusterIPs in 192.168.1.0/24, endpoints in 10.0.0.0/24.
fn reverse_fixture() -> ClusterIndex {
    let http = || vec![port("http", 80)];
    let mut idx = ClusterIndex::default();
    idx.apply(IndexUpdate::Batch(vec![
        svc("testns", "svc1", cluster_ip(&["192.168.1.100"]), http()),
        slice(
            "testns",
            "svc1-a",
            "svc1",
            http(),
            vec![
                ep("10.0.0.100", Some("ep1a")),
                ep("10.0.0.99", Some("double-ep")),
                ep("1234:abcd::1", None),
            ],
        ),
        svc("testns", "svc2", cluster_ip(&["192.168.1.200"]), http()),
        slice(
            "testns",
            "svc2-a",
            "svc2",
            http(),
            vec![ep("10.0.0.99", Some("double-ep"))],
        ),
        svc("testns", "svc6", cluster_ip(&["fd00::100"]), http()),
    ]));
    idx.set_serial(SERIAL);
    idx
}
