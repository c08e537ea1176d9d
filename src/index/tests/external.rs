//! `k8s_external`'s zone as tables: CoreDNS's `external_test.go` and
//! `apex_test.go` cases (same fixture, same expected sections; its `svc12`, a
//! LoadBalancer hostname answered as a CNAME, is not ported: only ingress
//! IPs are kept), then the README example, the options and the strict
//! NXDOMAIN/NODATA choices.

use super::*;
use hickory_proto::rr::RecordType::ANY;

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

#[test]
fn the_readme_example_headless_service_with_an_external_ip_answers_with_or_without_headless() {
    let mut idx = ClusterIndex::default();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("default"),
        ext_svc(
            "default",
            "test",
            ServiceKind::Headless,
            vec![],
            &["192.168.200.123"],
        ),
    ]));
    idx.set_serial(SERIAL);
    let mut k8s = opts();
    k8s.namespaces = None;
    for headless in [false, true] {
        let o = ExternalOptions::new(&k8s, 5, "dns", headless, name("example.com."));
        run_ext(
            &idx,
            &o,
            &[
                ok(
                    "test.default.example.com.",
                    A,
                    &["test.default.example.com. 5 IN A 192.168.200.123"],
                ),
                // No ports: CoreDNS's sentinel exists, but gives no SRV.
                ext_nodata("test.default.example.com.", SRV),
                ext_nx("_http._tcp.test.default.example.com.", SRV),
            ],
        );
    }
}

#[test]
fn without_headless_a_service_without_external_addresses_does_not_exist() {
    run_ext(
        &ext_fixture(),
        &ext_opts(false),
        &[
            ext_nx("svc-headless.testns.example.com.", A),
            ext_nx("svc-headless.testns.example.com.", SRV),
            ext_nx("_http._tcp.svc-headless.testns.example.com.", SRV),
            ext_nx("endpoint-svc-0.svc-headless.testns.example.com.", A),
            // Stricter than CoreDNS, which answers the external IPs here.
            ext_nx("anything.svc1.testns.example.com.", A),
            ok(
                "svc1.testns.example.com.",
                A,
                &["svc1.testns.example.com. 5 IN A 1.2.3.4"],
            ),
        ],
    );
}

#[test]
fn with_headless_a_cluster_ip_service_without_external_addresses_has_only_endpoint_names() {
    let mut idx = ext_fixture();
    idx.apply(IndexUpdate::Batch(vec![
        ext_svc(
            "testns",
            "internal",
            cluster_ip(&["10.0.0.9"]),
            vec![port("http", 80)],
            &[],
        ),
        slice(
            "testns",
            "internal-a",
            "internal",
            vec![port("http", 80)],
            vec![ep("172.0.0.9", Some("web-0"))],
        ),
    ]));
    run_ext(
        &idx,
        &ext_opts(true),
        &[
            ext_nodata("internal.testns.example.com.", A),
            ok(
                "web-0.internal.testns.example.com.",
                A,
                &["web-0.internal.testns.example.com. 5 IN A 172.0.0.9"],
            ),
            ext_nx("web-1.internal.testns.example.com.", A),
            ext_nx("_http._tcp.internal.testns.example.com.", SRV),
        ],
    );
}

#[test]
fn strict_nodata_for_types_the_zone_does_not_answer() {
    run_ext(
        &ext_fixture(),
        &ext_opts(true),
        &[
            // An SRV name has only SRV (CoreDNS answers the IPs).
            ext_nodata("_http._tcp.svc1.testns.example.com.", A),
            // CoreDNS answers A, AAAA, SRV and PTR only.
            ext_nodata("svc1.testns.example.com.", ANY),
            ext_nodata("svc1.testns.example.com.", TXT),
            negative("4.3.2.1.in-addr.arpa.", A, NoError, &[REV4_SOA]),
            ext_nodata("example.com.", A),
            // Under the apex label only ns1 exists.
            ext_nx("ns2.dns.example.com.", A),
            ext_nx("x.ns1.dns.example.com.", A),
            // A partial reverse name, an address without external owner.
            negative("2.1.in-addr.arpa.", PTR, NXDomain, &[REV4_SOA]),
            negative("5.3.2.1.in-addr.arpa.", PTR, NXDomain, &[REV4_SOA]),
            ext_nx("a.b.c.d.svc1.testns.example.com.", A),
        ],
    );
}

#[test]
fn names_are_case_insensitive_and_answers_keep_the_query_spelling() {
    run_ext(
        &ext_fixture(),
        &ext_opts(true),
        &[ok(
            "SVC1.TestNS.Example.COM.",
            A,
            &["SVC1.TestNS.Example.COM. 5 IN A 1.2.3.4"],
        )],
    );
}

#[test]
fn ipv6_external_addresses_get_ptr_in_ip6_arpa() {
    run_ext(
        &ext_fixture(),
        &ext_opts(true),
        &[ok(
            "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.ip6.arpa.",
            PTR,
            &[
                "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.ip6.arpa. 5 IN PTR svc6.testns.example.com.",
            ],
        )],
    );
}

#[test]
fn apex_and_ttl_options_rename_the_name_server_and_set_every_ttl() {
    let mut k8s = opts();
    k8s.local_ips = vec![ip("127.0.0.1")];
    let o = ExternalOptions::new(&k8s, 30, "Kube", true, name("example.com."));
    const SOA_30: &str = "example.com. 30 IN SOA ns1.kube.example.com. hostmaster.kube.example.com. 1499347823 7200 1800 86400 30";
    let idx = ext_fixture();
    run_ext(
        &idx,
        &o,
        &[
            ok("example.com.", SOA, &[SOA_30]),
            glue(
                "example.com.",
                NS,
                &["example.com. 30 IN NS ns1.kube.example.com."],
                &["ns1.kube.example.com. 30 IN A 127.0.0.1"],
            ),
            ok(
                "ns1.kube.example.com.",
                A,
                &["ns1.kube.example.com. 30 IN A 127.0.0.1"],
            ),
            ok(
                "svc1.testns.example.com.",
                A,
                &["svc1.testns.example.com. 30 IN A 1.2.3.4"],
            ),
            // `dns` is no longer special: an unknown namespace.
            Case {
                q: "ns1.dns.example.com.",
                t: A,
                rcode: NXDomain,
                answer: &[],
                ns: &[SOA_30],
                extra: &[],
            },
        ],
    );
}

#[test]
fn the_name_server_is_the_external_address_of_the_service_this_server_backs() {
    let mut idx = ext_fixture();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("kube-system"),
        ext_svc(
            "kube-system",
            "kube-dns-ext",
            cluster_ip(&["10.96.0.10"]),
            vec![port("dns", 53)],
            &["203.0.113.53"],
        ),
        slice(
            "kube-system",
            "kube-dns-ext-a",
            "kube-dns-ext",
            vec![port("dns", 53)],
            vec![ep("10.244.0.5", None)],
        ),
    ]));
    let mut k8s = opts();
    k8s.local_ips = vec![ip("10.244.0.5")];
    let o = ExternalOptions::new(&k8s, 5, "dns", false, name("example.com."));
    run_ext(
        &idx,
        &o,
        &[ok(
            "ns1.dns.example.com.",
            A,
            &["ns1.dns.example.com. 5 IN A 203.0.113.53"],
        )],
    );
}

#[test]
fn ptr_follows_updates_deletes_relists_and_the_namespaces_option() {
    let http = || vec![port("http", 80)];
    let mut idx = ext_fixture();
    let o = ext_opts(true);
    // A new external address replaces the old one.
    idx.apply(ext_svc(
        "testns",
        "svc1",
        cluster_ip(&["10.0.0.1"]),
        http(),
        &["1.2.3.9"],
    ));
    run_ext(
        &idx,
        &o,
        &[
            negative("4.3.2.1.in-addr.arpa.", PTR, NXDomain, &[REV4_SOA]),
            ok(
                "9.3.2.1.in-addr.arpa.",
                PTR,
                &["9.3.2.1.in-addr.arpa. 5 IN PTR svc1.testns.example.com."],
            ),
        ],
    );
    // A service outside `namespaces testns` is never a target.
    idx.apply(ext_svc(
        "other",
        "web",
        cluster_ip(&["10.0.0.2"]),
        http(),
        &["1.2.3.9"],
    ));
    run_ext(
        &idx,
        &o,
        &[ok(
            "9.3.2.1.in-addr.arpa.",
            PTR,
            &["9.3.2.1.in-addr.arpa. 5 IN PTR svc1.testns.example.com."],
        )],
    );
    idx.apply(IndexUpdate::Delete {
        kind: Kind::Service,
        namespace: "testns".into(),
        name: "svc1".into(),
    });
    run_ext(
        &idx,
        &o,
        &[negative(
            "9.3.2.1.in-addr.arpa.",
            PTR,
            NXDomain,
            &[REV4_SOA],
        )],
    );
    // A relist of Services builds the reverse map anew.
    idx.apply(IndexUpdate::Reset {
        kind: Kind::Service,
        objects: vec![Object::Service(Service {
            namespace: "testns".into(),
            name: "fresh".into(),
            kind: ServiceKind::ClusterIp(vec![ip("10.0.0.77")]),
            ports: http(),
            external: vec![ip("198.51.100.7")],
        })],
    });
    run_ext(
        &idx,
        &o,
        &[
            ok(
                "7.100.51.198.in-addr.arpa.",
                PTR,
                &["7.100.51.198.in-addr.arpa. 5 IN PTR fresh.testns.example.com."],
            ),
            negative("5.3.2.1.in-addr.arpa.", PTR, NXDomain, &[REV4_SOA]),
            negative(
                "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.ip6.arpa.",
                PTR,
                NXDomain,
                &[REV6_SOA],
            ),
        ],
    );
}
