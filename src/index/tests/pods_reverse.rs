//! CoreDNS's pod, `ignore empty_service` and reverse cases (facts §1.4,
//! 36–46) with their own options and fixture.

use super::*;

#[test]
fn pod_records_follow_the_pods_mode() {
    let mut idx = fixture();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("podns"),
        IndexUpdate::Apply(Object::Pod(Pod {
            namespace: "podns".into(),
            name: "p1".into(),
            ips: vec![ip("10.240.0.1")],
        })),
    ]));
    let mut o = opts();
    o.namespaces = None;
    // 36: disabled.
    run(
        &idx,
        &o,
        &[
            nx("10-240-0-1.podns.pod.cluster.local.", A),
            nx("podns.pod.cluster.local.", A),
        ],
    );
    // 37, 38, 39: insecure.
    o.pods = PodMode::Insecure;
    run(
        &idx,
        &o,
        &[
            ok(
                "10-240-0-1.podns.pod.cluster.local.",
                A,
                &["10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"],
            ),
            ok(
                "172-0-0-2.podns.pod.cluster.local.",
                A,
                &["172-0-0-2.podns.pod.cluster.local. 5 IN A 172.0.0.2"],
            ),
            nx("blah.podns.pod.cluster.local.", A),
            nx("blah.podns.pod.cluster.local.", AAAA),
            nx("blah.podns.pod.cluster.local.", HINFO),
            nodata("podns.pod.cluster.local.", A),
            nx("10-240-0-1.nons.pod.cluster.local.", A),
            ok(
                "fd00--1.podns.pod.cluster.local.",
                AAAA,
                &["fd00--1.podns.pod.cluster.local. 5 IN AAAA fd00::1"],
            ),
            nodata("10-240-0-1.podns.pod.cluster.local.", AAAA),
        ],
    );
    // 39, 40: verified.
    o.pods = PodMode::Verified;
    run(
        &idx,
        &o,
        &[
            nodata("podns.pod.cluster.local.", A),
            nx("172-0-0-2.podns.pod.cluster.local.", A),
            ok(
                "10-240-0-1.podns.pod.cluster.local.",
                A,
                &["10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"],
            ),
            nx("10-240-0-1.testns.pod.cluster.local.", A),
        ],
    );
}

#[test]
fn ignore_empty_service_hides_clusterip_services_without_endpoints() {
    // 41, and headless/ExternalName services are not affected.
    let mut o = opts();
    o.ignore_empty_service = true;
    run(
        &fixture(),
        &o,
        &[
            nx("svcempty.testns.svc.cluster.local.", A),
            nx("svc6.testns.svc.cluster.local.", AAAA),
            nx("_http._tcp.svcempty.testns.svc.cluster.local.", SRV),
            ok(
                "svc1.testns.svc.cluster.local.",
                A,
                &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
            ),
            ok(
                "external.testns.svc.cluster.local.",
                CNAME,
                &["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."],
            ),
        ],
    );
}

#[test]
fn ptr_answers_clusterips_first_then_one_name_per_owning_service() {
    let idx = reverse_fixture();
    let o = opts();
    let soa10 = "0.10.in-addr.arpa. 5 IN SOA ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 1499347823 7200 1800 86400 5";
    run_in(
        &idx,
        &o,
        "0.10.in-addr.arpa.",
        &[
            /* 43 */
            ok(
                "100.0.0.10.in-addr.arpa.",
                PTR,
                &["100.0.0.10.in-addr.arpa. 5 IN PTR ep1a.svc1.testns.svc.cluster.local."],
            ),
            /* 45 */
            ok(
                "99.0.0.10.in-addr.arpa.",
                PTR,
                &[
                    "99.0.0.10.in-addr.arpa. 5 IN PTR double-ep.svc1.testns.svc.cluster.local.",
                    "99.0.0.10.in-addr.arpa. 5 IN PTR double-ep.svc2.testns.svc.cluster.local.",
                ],
            ),
        ],
    );
    // 46: NXDOMAIN with the reverse zone's SOA.
    let got = ask(
        &idx,
        &o,
        "0.10.in-addr.arpa.",
        "101.0.0.10.in-addr.arpa.",
        PTR,
    );
    assert_eq!(got.rcode, NXDomain);
    assert_eq!(lines(&got.authority), want(&[soa10]));
    /* 44 */
    run_in(
        &idx,
        &o,
        "168.192.in-addr.arpa.",
        &[ok(
            "100.1.168.192.in-addr.arpa.",
            PTR,
            &["100.1.168.192.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."],
        )],
    );
}

#[test]
fn ipv6_ptr_names_resolve_clusterips_and_endpoints() {
    let idx = reverse_fixture();
    let v6 = "0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    let ep6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.";
    let got = ask(&idx, &opts(), "ip6.arpa.", v6, PTR);
    assert_eq!(
        lines(&got.answers),
        want(&[&format!("{v6} 5 IN PTR svc6.testns.svc.cluster.local.")])
    );
    let got = ask(&idx, &opts(), "ip6.arpa.", ep6, PTR);
    assert_eq!(
        lines(&got.answers),
        want(&[&format!(
            "{ep6} 5 IN PTR 1234-abcd--1.svc1.testns.svc.cluster.local."
        )])
    );
    // An existing PTR name has no A: NODATA; a partial name is NXDOMAIN.
    assert_eq!(ask(&idx, &opts(), "ip6.arpa.", ep6, A).rcode, NoError);
    assert_eq!(
        ask(&idx, &opts(), "ip6.arpa.", "d.f.ip6.arpa.", PTR).rcode,
        NXDomain
    );
}
