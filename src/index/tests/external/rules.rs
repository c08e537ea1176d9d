//! `k8s_external` beyond CoreDNS's own tests: the README example, the
//! `headless`, `apex` and `ttl` options, the name server's addresses, strict
//! NXDOMAIN/NODATA choices and PTR through updates, deletes and relists.

use super::*;
use hickory_proto::rr::RecordType::ANY;

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
