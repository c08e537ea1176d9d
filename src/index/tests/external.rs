//! `k8s_external`'s zone as tables: CoreDNS's `external_test.go` and
//! `apex_test.go` cases (same fixture, same expected sections; its `svc12`, a
//! LoadBalancer hostname answered as a CNAME, is not ported: only ingress
//! IPs are kept), then the README example, the options and the strict
//! NXDOMAIN/NODATA choices (in `external/rules.rs`).

use super::*;

mod rules;

const EXT_SOA: &str = "example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. 1499347823 7200 1800 86400 5";

/// The SOA of a reverse zone the plugin serves: named after that zone, as CoreDNS.
const REV4_SOA: &str = "in-addr.arpa. 5 IN SOA ns1.dns.in-addr.arpa. hostmaster.dns.in-addr.arpa. 1499347823 7200 1800 86400 5";
const REV6_SOA: &str =
    "ip6.arpa. 5 IN SOA ns1.dns.ip6.arpa. hostmaster.dns.ip6.arpa. 1499347823 7200 1800 86400 5";

/// Zones of the table runs, as in CoreDNS's test (`example.com.`,
/// `in-addr.arpa.`) plus `ip6.arpa.`.
const ZONES: [&str; 3] = ["example.com.", "in-addr.arpa.", "ip6.arpa."];

fn ext_svc(
    ns: &str,
    name: &str,
    kind: ServiceKind,
    ports: Vec<Port>,
    external: &[&str],
) -> IndexUpdate {
    IndexUpdate::Apply(Object::Service(Service {
        namespace: ns.into(),
        name: name.into(),
        kind,
        ports,
        external: external.iter().map(|s| ip(s)).collect(),
    }))
}

/// CoreDNS's `external_test.go` fixture (its `svcIndexExternal` and `epIndexExternal`).
fn ext_fixture() -> ClusterIndex {
    let http = || vec![port("http", 80)];
    let mut idx = ClusterIndex::default();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("testns"),
        ext_svc(
            "testns",
            "svc1",
            cluster_ip(&["10.0.0.1"]),
            http(),
            &["1.2.3.4"],
        ),
        ext_svc(
            "testns",
            "svc6",
            cluster_ip(&["10.0.0.3"]),
            http(),
            &["1:2::5"],
        ),
        ext_svc(
            "testns",
            "svc11",
            cluster_ip(&["10.0.0.3"]),
            http(),
            &["2.3.4.5"],
        ),
        ext_svc("testns", "svc-headless", ServiceKind::Headless, http(), &[]),
        slice(
            "testns",
            "svc-headless-a",
            "svc-headless",
            http(),
            vec![
                ep("1.2.3.4", Some("endpoint-svc-0")),
                ep("1.2.3.5", Some("endpoint-svc-1")),
            ],
        ),
    ]));
    idx.set_serial(SERIAL);
    idx
}

/// CoreDNS's test plugin: `namespaces testns`, `headless`, TTL 5, the
/// server's own address 127.0.0.1 (its `externalAddress`).
fn ext_opts(headless: bool) -> ExternalOptions {
    let mut k8s = opts();
    k8s.local_ips = vec![ip("127.0.0.1")];
    ExternalOptions::new(&k8s, 5, "dns", headless, name("example.com."))
}

fn ask_ext(idx: &ClusterIndex, opts: &ExternalOptions, q: &str, t: RecordType) -> LookupResult {
    let qname = name(q);
    let lower = qname.to_lowercase();
    let zone = ZONES
        .iter()
        .map(|z| name(z))
        .find(|z| z.zone_of(&lower))
        .unwrap_or_else(|| panic!("{q} is in no test zone"));
    idx.external(
        opts,
        &LookupRequest {
            qname: &qname,
            zone: &zone,
            qtype: t,
        },
    )
}

fn run_ext(idx: &ClusterIndex, opts: &ExternalOptions, cases: &[Case]) {
    for c in cases {
        let got = ask_ext(idx, opts, c.q, c.t);
        let what = format!("{} {:?}", c.q, c.t);
        assert_eq!(got.rcode, c.rcode, "rcode of {what}");
        assert_eq!(lines(&got.answers), want(c.answer), "answer of {what}");
        assert_eq!(lines(&got.authority), want(c.ns), "authority of {what}");
        assert_eq!(
            lines(&got.additionals),
            want(c.extra),
            "additional of {what}"
        );
        assert!(got.chase.is_none(), "chase of {what}");
    }
}

const fn ext_nodata(q: &'static str, t: RecordType) -> Case {
    Case {
        q,
        t,
        rcode: NoError,
        answer: &[],
        ns: &[EXT_SOA],
        extra: &[],
    }
}

/// A negative answer with `rcode` and this SOA.
const fn negative(
    q: &'static str,
    t: RecordType,
    rcode: ResponseCode,
    soa: &'static [&'static str],
) -> Case {
    Case {
        q,
        t,
        rcode,
        answer: &[],
        ns: soa,
        extra: &[],
    }
}

const fn ext_nx(q: &'static str, t: RecordType) -> Case {
    Case {
        q,
        t,
        rcode: NXDomain,
        answer: &[],
        ns: &[EXT_SOA],
        extra: &[],
    }
}

/// CoreDNS `external_test.go`, in its order (`svc12` left out, see the module docs).
const COREDNS_EXTERNAL: &[Case] = &[
    ok(
        "4.3.2.1.in-addr.arpa.",
        PTR,
        &["4.3.2.1.in-addr.arpa. 5 IN PTR svc1.testns.example.com."],
    ),
    ext_nodata("svc1.testns.example.com.", PTR),
    ext_nx("not-existing.testns.example.com.", PTR),
    ok(
        "svc1.testns.example.com.",
        A,
        &["svc1.testns.example.com. 5 IN A 1.2.3.4"],
    ),
    glue(
        "svc1.testns.example.com.",
        SRV,
        &["svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com."],
        &["svc1.testns.example.com. 5 IN A 1.2.3.4"],
    ),
    ext_nx("*._not-udp-or-tcp.svc1.testns.example.com.", SRV),
    glue(
        "_http._tcp.svc1.testns.example.com.",
        SRV,
        &["_http._tcp.svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com."],
        &["svc1.testns.example.com. 5 IN A 1.2.3.4"],
    ),
    ext_nodata("svc1.testns.example.com.", AAAA),
    ext_nx("svc0.testns.example.com.", AAAA),
    ext_nx("svc0.testns.example.com.", A),
    ext_nx("svc0.svc-nons.example.com.", A),
    ok(
        "svc6.testns.example.com.",
        AAAA,
        &["svc6.testns.example.com. 5 IN AAAA 1:2::5"],
    ),
    glue(
        "_http._tcp.svc6.testns.example.com.",
        SRV,
        &["_http._tcp.svc6.testns.example.com. 5 IN SRV 0 100 80 svc6.testns.example.com."],
        &["svc6.testns.example.com. 5 IN AAAA 1:2::5"],
    ),
    glue(
        "svc6.testns.example.com.",
        SRV,
        &["svc6.testns.example.com. 5 IN SRV 0 100 80 svc6.testns.example.com."],
        &["svc6.testns.example.com. 5 IN AAAA 1:2::5"],
    ),
    ext_nodata("testns.example.com.", A),
    ext_nodata("testns.example.com.", SOA),
    ok(
        "svc11.testns.example.com.",
        A,
        &["svc11.testns.example.com. 5 IN A 2.3.4.5"],
    ),
    glue(
        "_http._tcp.svc11.testns.example.com.",
        SRV,
        &["_http._tcp.svc11.testns.example.com. 5 IN SRV 0 100 80 svc11.testns.example.com."],
        &["svc11.testns.example.com. 5 IN A 2.3.4.5"],
    ),
    glue(
        "svc11.testns.example.com.",
        SRV,
        &["svc11.testns.example.com. 5 IN SRV 0 100 80 svc11.testns.example.com."],
        &["svc11.testns.example.com. 5 IN A 2.3.4.5"],
    ),
    ok(
        "svc-headless.testns.example.com.",
        A,
        &[
            "svc-headless.testns.example.com. 5 IN A 1.2.3.4",
            "svc-headless.testns.example.com. 5 IN A 1.2.3.5",
        ],
    ),
    glue(
        "svc-headless.testns.example.com.",
        SRV,
        &[
            "svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-0.svc-headless.testns.example.com.",
            "svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-1.svc-headless.testns.example.com.",
        ],
        &[
            "endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4",
            "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5",
        ],
    ),
    glue(
        "_http._tcp.svc-headless.testns.example.com.",
        SRV,
        &[
            "_http._tcp.svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-0.svc-headless.testns.example.com.",
            "_http._tcp.svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-1.svc-headless.testns.example.com.",
        ],
        &[
            "endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4",
            "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5",
        ],
    ),
    glue(
        "endpoint-svc-0.svc-headless.testns.example.com.",
        SRV,
        &[
            "endpoint-svc-0.svc-headless.testns.example.com. 5 IN SRV 0 100 80 endpoint-svc-0.svc-headless.testns.example.com.",
        ],
        &["endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4"],
    ),
    glue(
        "endpoint-svc-1.svc-headless.testns.example.com.",
        SRV,
        &[
            "endpoint-svc-1.svc-headless.testns.example.com. 5 IN SRV 0 100 80 endpoint-svc-1.svc-headless.testns.example.com.",
        ],
        &["endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"],
    ),
    ok(
        "endpoint-svc-0.svc-headless.testns.example.com.",
        A,
        &["endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4"],
    ),
    ok(
        "endpoint-svc-1.svc-headless.testns.example.com.",
        A,
        &["endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"],
    ),
];

/// CoreDNS `apex_test.go`.
const COREDNS_APEX: &[Case] = &[
    ok("example.com.", SOA, &[EXT_SOA]),
    glue(
        "example.com.",
        NS,
        &["example.com. 5 IN NS ns1.dns.example.com."],
        &["ns1.dns.example.com. 5 IN A 127.0.0.1"],
    ),
    ext_nodata("example.com.", SRV),
    ext_nodata("dns.example.com.", SRV),
    ext_nodata("dns.example.com.", NS),
    ext_nodata("ns1.dns.example.com.", SRV),
    ext_nodata("ns1.dns.example.com.", NS),
    ext_nodata("ns1.dns.example.com.", AAAA),
    ok(
        "ns1.dns.example.com.",
        A,
        &["ns1.dns.example.com. 5 IN A 127.0.0.1"],
    ),
];

#[test]
fn coredns_external_cases() {
    run_ext(&ext_fixture(), &ext_opts(true), COREDNS_EXTERNAL);
}

#[test]
fn coredns_apex_cases() {
    run_ext(&ext_fixture(), &ext_opts(true), COREDNS_APEX);
}
