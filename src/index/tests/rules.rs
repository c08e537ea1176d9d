//! Rules beyond CoreDNS's own tests: updates (apply, delete, reset, merged
//! slices), options (namespaces, noendpoints, endpoint_pod_names), the apex,
//! strict NODATA choices and clone isolation.

use super::*;
use hickory_proto::rr::RecordType::ANY;

const SOA_SERIAL_42: &str =
    "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5";

#[test]
fn strict_nodata_where_a_name_exists_without_the_type() {
    run(
        &fixture(),
        &opts(),
        &[
            // dns-version exists (TXT): other types are NODATA, not CoreDNS's NXDOMAIN.
            nodata("dns-version.cluster.local.", A),
            // An SRV name has only SRV.
            nodata("_http._tcp.svc1.testns.svc.cluster.local.", A),
            // ns.dns has only addresses; dns.<zone> is its empty parent.
            nodata("ns.dns.cluster.local.", SRV),
            nodata("dns.cluster.local.", A),
            // A namespace with services exists for TXT as for A.
            nodata("testns.svc.cluster.local.", TXT),
            // SRV on an ExternalName is NODATA; below it nothing exists.
            nodata("external.testns.svc.cluster.local.", SRV),
            nx("_http._tcp.external.testns.svc.cluster.local.", SRV),
            nx("x.dns-version.cluster.local.", TXT),
        ],
    );
}

#[test]
fn srv_port_matching_is_case_insensitive_and_empty_parts_match_anything() {
    let mut idx = fixture();
    idx.apply(svc(
        "testns",
        "multi",
        cluster_ip(&["10.0.0.9"]),
        vec![port("http", 80), port("", 9376)],
    ));
    let target = "multi.testns.svc.cluster.local.";
    run(
        &idx,
        &opts(),
        &[
            glue(
                "_HTTP._TCP.multi.testns.svc.cluster.local.",
                SRV,
                &[
                    "_HTTP._TCP.multi.testns.svc.cluster.local. 5 IN SRV 0 100 80 multi.testns.svc.cluster.local.",
                ],
                &["multi.testns.svc.cluster.local. 5 IN A 10.0.0.9"],
            ),
            // `_._tcp`: any port name; two ports → weight 50 each.
            glue(
                "_._tcp.multi.testns.svc.cluster.local.",
                SRV,
                &[
                    "_._tcp.multi.testns.svc.cluster.local. 5 IN SRV 0 50 80 multi.testns.svc.cluster.local.",
                    "_._tcp.multi.testns.svc.cluster.local. 5 IN SRV 0 50 9376 multi.testns.svc.cluster.local.",
                ],
                &["multi.testns.svc.cluster.local. 5 IN A 10.0.0.9"],
            ),
            nx("_https._tcp.multi.testns.svc.cluster.local.", SRV),
            nx("_http._udp.multi.testns.svc.cluster.local.", SRV),
        ],
    );
    // A bare SRV query includes the unnamed port, as CoreDNS does.
    let got = ask(&idx, &opts(), "cluster.local.", target, SRV);
    assert_eq!(got.answers.len(), 2);
}

#[test]
fn srv_targets_and_soa_use_the_zone_as_the_query_spelled_it() {
    let got = ask(
        &fixture(),
        &opts(),
        "cluster.local.",
        "_http._tcp.SVC1.testns.svc.Cluster.Local.",
        SRV,
    );
    assert_eq!(
        lines(&got.answers),
        want(&[
            "_http._tcp.SVC1.testns.svc.Cluster.Local. 5 IN SRV 0 100 80 svc1.testns.svc.Cluster.Local."
        ])
    );
    let got = ask(
        &fixture(),
        &opts(),
        "cluster.local.",
        "nope.testns.svc.Cluster.Local.",
        A,
    );
    assert_eq!(got.authority[0].name.to_string(), "Cluster.Local.");
}

#[test]
fn too_many_labels_are_nxdomain() {
    run(
        &fixture(),
        &opts(),
        &[
            nx("a.b.c.svc1.testns.svc.cluster.local.", A),
            nx("a.b.c.d.svc1.testns.svc.cluster.local.", SRV),
            nx("a.b.testns.pod.cluster.local.", A),
        ],
    );
}

#[test]
fn the_namespaces_option_hides_other_namespaces_everywhere() {
    let mut idx = fixture();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("other"),
        svc(
            "other",
            "web",
            cluster_ip(&["10.9.0.1"]),
            vec![port("http", 80)],
        ),
    ]));
    run(
        &idx,
        &opts(),
        &[
            nx("web.other.svc.cluster.local.", A),
            nx("other.svc.cluster.local.", A),
        ],
    );
    let got = ask(
        &idx,
        &opts(),
        "in-addr.arpa.",
        "1.0.9.10.in-addr.arpa.",
        PTR,
    );
    assert_eq!(got.rcode, NXDomain);
    let mut all = opts();
    all.namespaces = None;
    run(
        &idx,
        &all,
        &[ok(
            "web.other.svc.cluster.local.",
            A,
            &["web.other.svc.cluster.local. 5 IN A 10.9.0.1"],
        )],
    );
}

#[test]
fn a_namespace_exists_through_its_object_or_any_service() {
    let mut idx = fixture();
    let mut all = opts();
    all.namespaces = None;
    idx.apply(namespace("empty"));
    idx.apply(svc("implied", "s", cluster_ip(&["10.9.0.2"]), vec![]));
    run(
        &idx,
        &all,
        &[
            nodata("empty.svc.cluster.local.", A),
            nodata("implied.svc.cluster.local.", A),
            nx("absent.svc.cluster.local.", A),
        ],
    );
    idx.apply(IndexUpdate::Delete {
        kind: Kind::Service,
        namespace: "implied".into(),
        name: "s".into(),
    });
    idx.apply(IndexUpdate::Delete {
        kind: Kind::Namespace,
        namespace: "".into(),
        name: "empty".into(),
    });
    run(
        &idx,
        &all,
        &[
            nx("empty.svc.cluster.local.", A),
            nx("implied.svc.cluster.local.", A),
        ],
    );
}

#[test]
fn noendpoints_makes_endpoint_and_headless_names_nxdomain() {
    let mut o = opts();
    o.noendpoints = true;
    run(
        &fixture(),
        &o,
        &[
            nx("hdls1.testns.svc.cluster.local.", A),
            nx("ep1a.svc1.testns.svc.cluster.local.", A),
            nx("_http._tcp.hdls1.testns.svc.cluster.local.", SRV),
            ok(
                "svc1.testns.svc.cluster.local.",
                A,
                &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
            ),
        ],
    );
    let got = ask(
        &reverse_fixture(),
        &o,
        "in-addr.arpa.",
        "100.0.0.10.in-addr.arpa.",
        PTR,
    );
    assert_eq!(got.rcode, NXDomain);
}

#[test]
fn endpoint_pod_names_name_endpoints_without_a_hostname_by_their_pod() {
    let mut idx = ClusterIndex::default();
    let mut with_pod = ep("10.1.0.7", None);
    with_pod.pod_name = Some("web-7d9f".into());
    idx.apply(IndexUpdate::Batch(vec![
        svc(
            "testns",
            "web",
            ServiceKind::Headless,
            vec![port("http", 80)],
        ),
        slice(
            "testns",
            "web-a",
            "web",
            vec![port("http", 80)],
            vec![with_pod, ep("10.1.0.8", Some("named"))],
        ),
    ]));
    idx.set_serial(SERIAL);
    let mut o = opts();
    o.endpoint_pod_names = true;
    run(
        &idx,
        &o,
        &[
            ok(
                "web-7d9f.web.testns.svc.cluster.local.",
                A,
                &["web-7d9f.web.testns.svc.cluster.local. 5 IN A 10.1.0.7"],
            ),
            nx("10-1-0-7.web.testns.svc.cluster.local.", A),
            ok(
                "named.web.testns.svc.cluster.local.",
                A,
                &["named.web.testns.svc.cluster.local. 5 IN A 10.1.0.8"],
            ),
        ],
    );
    let got = ask(
        &idx,
        &o,
        "cluster.local.",
        "web.testns.svc.cluster.local.",
        SRV,
    );
    assert!(
        lines(&got.answers)
            .iter()
            .any(|l| l.ends_with("web-7d9f.web.testns.svc.cluster.local."))
    );
    let got = ask(&idx, &o, "in-addr.arpa.", "7.0.1.10.in-addr.arpa.", PTR);
    assert_eq!(
        lines(&got.answers),
        want(&["7.0.1.10.in-addr.arpa. 5 IN PTR web-7d9f.web.testns.svc.cluster.local."])
    );
    // Without the option the dashed IP names it.
    run(
        &idx,
        &opts(),
        &[nx("web-7d9f.web.testns.svc.cluster.local.", A)],
    );
}

#[test]
fn slices_of_one_service_merge_and_deleting_the_last_makes_it_nxdomain() {
    let mut idx = fixture();
    let hdls = "hdls1.testns.svc.cluster.local.";
    assert_eq!(
        ask(&idx, &opts(), "cluster.local.", hdls, A).answers.len(),
        4
    );
    idx.apply(IndexUpdate::Delete {
        kind: Kind::EndpointSlice,
        namespace: "testns".into(),
        name: "hdls1-v4".into(),
    });
    run(
        &idx,
        &opts(),
        &[
            nodata(hdls, A),
            nx("dup-name.hdls1.testns.svc.cluster.local.", A),
        ],
    );
    idx.apply(IndexUpdate::Delete {
        kind: Kind::EndpointSlice,
        namespace: "testns".into(),
        name: "hdls1-v6".into(),
    });
    run(
        &idx,
        &opts(),
        &[
            nx(hdls, A),
            nx(hdls, AAAA),
            nx("_http._tcp.hdls1.testns.svc.cluster.local.", SRV),
        ],
    );
    assert_eq!(idx.endpoint_count(), 1 + 1);
}

#[test]
fn not_ready_endpoints_and_duplicate_ips_are_not_answered_twice() {
    let mut idx = fixture();
    let mut not_ready = ep("172.0.0.9", None);
    not_ready.ready = false;
    idx.apply(slice(
        "testns",
        "hdls1-extra",
        "hdls1",
        vec![port("http", 80)],
        vec![not_ready, ep("172.0.0.2", None)],
    ));
    let got = ask(
        &idx,
        &opts(),
        "cluster.local.",
        "hdls1.testns.svc.cluster.local.",
        A,
    );
    assert_eq!(got.answers.len(), 4);
    run(
        &idx,
        &opts(),
        &[nx("172-0-0-9.hdls1.testns.svc.cluster.local.", A)],
    );
}

#[test]
fn reset_replaces_one_kind_and_keeps_the_others() {
    let mut idx = fixture();
    idx.apply(IndexUpdate::Reset {
        kind: Kind::Service,
        objects: vec![Object::Service(Service {
            namespace: "testns".into(),
            name: "fresh".into(),
            kind: cluster_ip(&["10.0.0.77"]),
            ports: vec![],
            external: vec![],
        })],
    });
    assert_eq!(idx.service_count(), 1);
    run(
        &idx,
        &opts(),
        &[
            nx("svc1.testns.svc.cluster.local.", A),
            ok(
                "fresh.testns.svc.cluster.local.",
                A,
                &["fresh.testns.svc.cluster.local. 5 IN A 10.0.0.77"],
            ),
        ],
    );
    // Slices survived the service reset; the PTR of the old ClusterIP is gone.
    assert_eq!(idx.endpoint_count(), 1 + 6 + 1);
    let got = ask(
        &idx,
        &opts(),
        "in-addr.arpa.",
        "1.0.0.10.in-addr.arpa.",
        PTR,
    );
    assert_eq!(got.rcode, NXDomain);
    idx.apply(IndexUpdate::Reset {
        kind: Kind::EndpointSlice,
        objects: vec![],
    });
    assert_eq!(idx.endpoint_count(), 0);
}

#[test]
fn a_changed_clusterip_moves_its_ptr() {
    let mut idx = fixture();
    idx.apply(svc(
        "testns",
        "svc1",
        cluster_ip(&["10.0.0.111"]),
        vec![port("http", 80)],
    ));
    let old = ask(
        &idx,
        &opts(),
        "in-addr.arpa.",
        "1.0.0.10.in-addr.arpa.",
        PTR,
    );
    // svcempty still owns 10.0.0.1.
    assert_eq!(
        lines(&old.answers),
        want(&["1.0.0.10.in-addr.arpa. 5 IN PTR svcempty.testns.svc.cluster.local."])
    );
    let new = ask(
        &idx,
        &opts(),
        "in-addr.arpa.",
        "111.0.0.10.in-addr.arpa.",
        PTR,
    );
    assert_eq!(
        lines(&new.answers),
        want(&["111.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."])
    );
}

#[test]
fn the_apex_answers_soa_ns_and_any_with_the_serial() {
    let mut idx = fixture();
    idx.set_serial(42);
    let got = ask(&idx, &opts(), "cluster.local.", "cluster.local.", SOA);
    assert_eq!(lines(&got.answers), want(&[SOA_SERIAL_42]));
    let got = ask(&idx, &opts(), "cluster.local.", "cluster.local.", ANY);
    assert_eq!(got.answers.len(), 2);
    assert_eq!(got.additionals.len(), 2);
    let got = ask(&idx, &opts(), "cluster.local.", "nope.cluster.local.", A);
    assert_eq!(lines(&got.authority), want(&[SOA_SERIAL_42]));
    let mut long = opts();
    long.ttl = 3600;
    let got = ask(&idx, &long, "cluster.local.", "nope.cluster.local.", A);
    assert_eq!(got.authority[0].ttl, 300);
}

#[test]
fn ns_dns_answers_only_the_local_ips_of_the_asked_family() {
    let mut o = opts();
    o.local_ips = vec![ip("10.0.0.53")];
    run(
        &fixture(),
        &o,
        &[
            ok(
                "ns.dns.cluster.local.",
                A,
                &["ns.dns.cluster.local. 5 IN A 10.0.0.53"],
            ),
            nodata("ns.dns.cluster.local.", AAAA),
        ],
    );
}

#[test]
fn a_clone_is_a_snapshot_that_later_updates_do_not_touch() {
    let before = fixture();
    let mut after = before.clone();
    after.apply(IndexUpdate::Delete {
        kind: Kind::Service,
        namespace: "testns".into(),
        name: "svc1".into(),
    });
    after.apply(IndexUpdate::Delete {
        kind: Kind::EndpointSlice,
        namespace: "testns".into(),
        name: "hdls1-v4".into(),
    });
    assert_eq!(
        ask(
            &before,
            &opts(),
            "cluster.local.",
            "svc1.testns.svc.cluster.local.",
            A
        )
        .answers
        .len(),
        1
    );
    assert_eq!(
        ask(
            &before,
            &opts(),
            "cluster.local.",
            "hdls1.testns.svc.cluster.local.",
            A
        )
        .answers
        .len(),
        4
    );
    assert_eq!(
        ask(
            &after,
            &opts(),
            "cluster.local.",
            "svc1.testns.svc.cluster.local.",
            A
        )
        .rcode,
        NXDomain
    );
    assert_eq!(before.service_count(), after.service_count() + 1);
}

#[test]
fn an_externalname_chain_inside_the_zone_ends_with_the_target_rcode() {
    let mut idx = fixture();
    idx.apply(svc(
        "testns",
        "dangling",
        ServiceKind::ExternalName("gone.testns.svc.cluster.local.".into()),
        vec![],
    ));
    idx.apply(svc(
        "testns",
        "self",
        ServiceKind::ExternalName("self.testns.svc.cluster.local.".into()),
        vec![],
    ));
    let got = ask(
        &idx,
        &opts(),
        "cluster.local.",
        "dangling.testns.svc.cluster.local.",
        A,
    );
    assert_eq!(got.rcode, NXDomain);
    assert_eq!(
        lines(&got.answers),
        want(&["dangling.testns.svc.cluster.local. 5 IN CNAME gone.testns.svc.cluster.local."])
    );
    run(
        &idx,
        &opts(),
        &[nodata("self.testns.svc.cluster.local.", A)],
    );
}
