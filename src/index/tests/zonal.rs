//! `zonal`: CoreDNS 1.14.7's `zonalTestCases` and `zonalDisabledTestCases`
//! (zonal_test.go, its fixture), plus the README's dotted-zone example and
//! the rules it states for other names.

use std::sync::Arc;

use super::*;

fn zoned(addr: &str, zone: Option<&str>) -> Endpoint {
    Endpoint {
        zone: zone.map(Arc::from),
        ..ep(addr, None)
    }
}

/// zonal_test.go's `hdls` (three endpoints over two zones) and `clstr`,
/// plus a headless service in a dotted zone and one with zoneless endpoints.
fn zonal_fixture() -> ClusterIndex {
    let http = || vec![port("http", 80)];
    let mut idx = ClusterIndex::default();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("testns"),
        svc("testns", "hdls", ServiceKind::Headless, vec![]),
        slice(
            "testns",
            "hdls-slice",
            "hdls",
            http(),
            vec![
                zoned("172.0.0.1", Some("us-west-2a")),
                zoned("172.0.0.2", Some("us-west-2b")),
                zoned("172.0.0.3", Some("us-west-2b")),
            ],
        ),
        svc("testns", "clstr", cluster_ip(&["10.0.0.10"]), http()),
        svc("testns", "db", ServiceKind::Headless, vec![]),
        slice(
            "testns",
            "db-slice",
            "db",
            vec![],
            vec![
                zoned("172.0.1.1", Some("corp.example.com")),
                zoned("172.0.1.2", Some("Other-Zone")),
                zoned("172.0.1.3", None),
            ],
        ),
    ]));
    idx.set_serial(SERIAL);
    idx
}

fn zonal_opts() -> LookupOptions {
    let mut o = opts();
    o.zonal = true;
    o
}

const COREDNS_ZONAL_CASES: &[Case] = &[
    ok(
        "us-west-2a.pin._zone.hdls.testns.svc.cluster.local.",
        A,
        &["us-west-2a.pin._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1"],
    ),
    ok(
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.",
        A,
        &[
            "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
        ],
    ),
    nodata("us-west-2c.pin._zone.hdls.testns.svc.cluster.local.", A),
    ok(
        "us-west-2a.prefer._zone.hdls.testns.svc.cluster.local.",
        A,
        &["us-west-2a.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1"],
    ),
    ok(
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.",
        A,
        &[
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1",
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
        ],
    ),
    nx("us-west-2a.pin._zone.ghost.testns.svc.cluster.local.", A),
    nx("us-west-2a.florp._zone.hdls.testns.svc.cluster.local.", A),
    nx("us-west-2a.pin._zone.clstr.testns.svc.cluster.local.", A),
    nodata("us-west-2c.pin._zone.hdls.testns.svc.cluster.local.", TXT),
    glue(
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.",
        SRV,
        &[
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 33 80 172-0-0-1.hdls.testns.svc.cluster.local.",
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 33 80 172-0-0-2.hdls.testns.svc.cluster.local.",
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 33 80 172-0-0-3.hdls.testns.svc.cluster.local.",
        ],
        &[
            "172-0-0-1.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1",
            "172-0-0-2.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "172-0-0-3.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
        ],
    ),
    nodata(
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.",
        TXT,
    ),
    glue(
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.",
        SRV,
        &[
            "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 50 80 172-0-0-2.hdls.testns.svc.cluster.local.",
            "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 50 80 172-0-0-3.hdls.testns.svc.cluster.local.",
        ],
        &[
            "172-0-0-2.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "172-0-0-3.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
        ],
    ),
];

/// The README's rules beyond zonal_test.go's table.
const README_ZONAL_CASES: &[Case] = &[
    // A zone label value with dots spans several query labels.
    ok(
        "corp.example.com.pin._zone.db.testns.svc.cluster.local.",
        A,
        &["corp.example.com.pin._zone.db.testns.svc.cluster.local. 5 IN A 172.0.1.1"],
    ),
    // Case-insensitive, both ways.
    ok(
        "other-zone.PIN._Zone.DB.testns.svc.cluster.local.",
        A,
        &["other-zone.PIN._Zone.DB.testns.svc.cluster.local. 5 IN A 172.0.1.2"],
    ),
    // Part of a dotted zone is another zone; a zoneless endpoint matches none.
    nodata("example.com.pin._zone.db.testns.svc.cluster.local.", A),
    nodata("corp.pin._zone.db.testns.svc.cluster.local.", A),
    // An existing zone asked for AAAA: the name exists, no data.
    nodata("us-west-2a.pin._zone.hdls.testns.svc.cluster.local.", AAAA),
    // The anchor must be `_zone`, the last label `svc`.
    nx("us-west-2a.pin.zone.hdls.testns.svc.cluster.local.", A),
    nx("us-west-2a.pin._zone.hdls.testns.pod.cluster.local.", A),
    // An ExternalName service has no zonal names.
    nx("us-west-2a.pin._zone.external.testns.svc.cluster.local.", A),
];

#[test]
fn coredns_zonal_cases_answer_as_coredns_does() {
    let mut idx = zonal_fixture();
    idx.apply(svc(
        "testns",
        "external",
        ServiceKind::ExternalName("ext.interwebs.test.".into()),
        vec![],
    ));
    run(&idx, &zonal_opts(), COREDNS_ZONAL_CASES);
    run(&idx, &zonal_opts(), README_ZONAL_CASES);
}

#[test]
fn without_the_option_or_in_a_multicluster_zone_the_shape_is_too_long() {
    let idx = zonal_fixture();
    // zonalDisabledTestCases.
    run(
        &idx,
        &opts(),
        &[nx("us-west-2a.pin._zone.hdls.testns.svc.cluster.local.", A)],
    );
    let mut o = zonal_opts();
    o.multicluster_zones = vec![name("cluster.local.")];
    run(
        &idx,
        &o,
        &[nx("us-west-2a.pin._zone.hdls.testns.svc.cluster.local.", A)],
    );
}

#[test]
fn a_zone_longer_than_a_label_value_matches_nothing() {
    let idx = zonal_fixture();
    let long = format!(
        "{}.{}.pin._zone.hdls.testns.svc.cluster.local.",
        "a".repeat(40),
        "b".repeat(40)
    );
    let (qname, zone) = (name(&long), name("cluster.local."));
    let got = idx.lookup(
        &zonal_opts(),
        &LookupRequest {
            qname: &qname,
            zone: &zone,
            qtype: A,
        },
    );
    assert_eq!((got.rcode, got.answers.len()), (NoError, 0));
}
