//! `multicluster ZONES`: CoreDNS's `multiclusterDnsTestCases` (handler_test.go,
//! its ServiceImport and multicluster-slice fixture, with `cluster.local` as
//! the multicluster zone as CoreDNS's test has it; facts §1.4 case 48), and
//! the examples of KEP-1645's DNS specification in `clusterset.local`.

use super::*;
use crate::index::model::{ImportKind, MultiClusterSlice, ServiceImport};

fn import(ns: &str, name: &str, kind: ImportKind, ports: Vec<Port>) -> IndexUpdate {
    IndexUpdate::Apply(Object::ServiceImport(ServiceImport {
        namespace: ns.into(),
        name: name.into(),
        kind,
        ports,
    }))
}

fn set_ip(ips: &[&str]) -> ImportKind {
    ImportKind::ClusterSetIp(ips.iter().map(|s| ip(s)).collect())
}

fn mc_slice(
    cluster: &str,
    (ns, name, service): (&str, &str, &str),
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
) -> IndexUpdate {
    IndexUpdate::Apply(Object::MultiClusterSlice(MultiClusterSlice {
        cluster: cluster.into(),
        slice: EndpointSlice {
            namespace: ns.into(),
            name: name.into(),
            service: service.into(),
            ports,
            endpoints,
        },
    }))
}

/// CoreDNS's `svcImportIndex` and `mcEpsIndex`, beside the plain fixture's
/// Services (which a multicluster zone must not answer from).
fn coredns_fixture() -> ClusterIndex {
    let http = || vec![port("http", 80)];
    let mut idx = fixture();
    idx.apply(IndexUpdate::Batch(vec![
        import("testns", "svc1", set_ip(&["10.0.0.1"]), http()),
        import("testns", "svcempty", set_ip(&["10.0.0.1"]), http()),
        import("testns", "svc6", set_ip(&["1234:abcd::1"]), http()),
        import("testns", "hdls1", ImportKind::Headless, vec![]),
        import("testns", "hdlsprtls", ImportKind::Headless, vec![]),
        import(
            "testns",
            "svc-dual-stack",
            set_ip(&["10.0.0.3", "10::3"]),
            http(),
        ),
        mc_slice(
            "cluster1",
            ("testns", "svc1-slice1", "svc1"),
            http(),
            vec![ep("172.0.0.1", Some("ep1a"))],
        ),
        mc_slice(
            "cluster1",
            ("testns", "svcempty-slice1", "svcempty"),
            http(),
            vec![],
        ),
        mc_slice(
            "cluster1",
            ("testns", "hdls1-slice1", "hdls1"),
            http(),
            vec![
                ep("172.0.0.2", None),
                ep("172.0.0.3", None),
                ep("172.0.0.4", Some("dup-name")),
                ep("172.0.0.5", Some("dup-name")),
                ep("5678:abcd::1", None),
                ep("5678:abcd::2", None),
            ],
        ),
        mc_slice(
            "cluster1",
            ("testns", "hdlsprtls-slice1", "hdlsprtls"),
            vec![],
            vec![ep("172.0.0.20", None)],
        ),
    ]));
    idx.set_serial(SERIAL);
    idx
}

fn mc_opts(zone: &str) -> LookupOptions {
    let mut o = opts();
    o.multicluster_zones = vec![name(zone)];
    o
}

/// handler_test.go `multiclusterDnsTestCases`, and the common cases it runs
/// in the multicluster zone too.
const COREDNS_MC_CASES: &[Case] = &[
    glue(
        "_http._tcp.hdls1.testns.svc.cluster.local.",
        SRV,
        &[
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-2.cluster1.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-3.cluster1.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local.",
            "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 dup-name.cluster1.hdls1.testns.svc.cluster.local.",
        ],
        &[
            "172-0-0-2.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "172-0-0-3.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
            "5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
            "5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
            "dup-name.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
            "dup-name.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
        ],
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
        "5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local.",
        AAAA,
        &["5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2"],
    ),
    ok(
        "5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local.",
        AAAA,
        &["5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1"],
    ),
    ok(
        "172-0-0-20.cluster1.hdlsprtls.testns.svc.cluster.local.",
        A,
        &["172-0-0-20.cluster1.hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"],
    ),
    // 48: an endpoint without its cluster id.
    nx("5678-abcd--1.hdls1.testns.svc.cluster.local.", AAAA),
    ok(
        "172-0-0-2.cluster1.hdls1.testns.svc.cluster.local.",
        A,
        &["172-0-0-2.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"],
    ),
    ok(
        "172-0-0-3.cluster1.hdls1.testns.svc.cluster.local.",
        A,
        &["172-0-0-3.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3"],
    ),
    ok(
        "dup-name.cluster1.hdls1.testns.svc.cluster.local.",
        A,
        &[
            "dup-name.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
            "dup-name.cluster1.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
        ],
    ),
    // The common cases, answered from the ServiceImports.
    ok(
        "svc1.testns.svc.cluster.local.",
        A,
        &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    ok(
        "svcempty.testns.svc.cluster.local.",
        A,
        &["svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    glue(
        "_http._tcp.svc1.testns.svc.cluster.local.",
        SRV,
        &[
            "_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        ],
        &["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    ok(
        "svc6.testns.svc.cluster.local.",
        AAAA,
        &["svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"],
    ),
    ok(
        "svc-dual-stack.testns.svc.cluster.local.",
        AAAA,
        &["svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3"],
    ),
    nodata("svc1.testns.svc.cluster.local.", AAAA),
    nx("svc0.testns.svc.cluster.local.", A),
    // Beyond CoreDNS's table: the wrong cluster id, a Service that has no
    // ServiceImport (the plain fixture's ExternalName), SRV of a portless import.
    nx("172-0-0-2.cluster2.hdls1.testns.svc.cluster.local.", A),
    nx("external.testns.svc.cluster.local.", CNAME),
    nx("_http._tcp.hdlsprtls.testns.svc.cluster.local.", SRV),
];

#[test]
fn coredns_multicluster_cases_answer_as_coredns_does() {
    run(
        &coredns_fixture(),
        &mc_opts("cluster.local."),
        COREDNS_MC_CASES,
    );
}

#[test]
fn imports_stay_out_of_zones_that_are_not_multicluster() {
    let mut idx = fixture();
    idx.apply(import(
        "testns",
        "only-imported",
        set_ip(&["10.9.9.9"]),
        vec![],
    ));
    idx.set_serial(SERIAL);
    run(
        &idx,
        &opts(),
        &[
            nx("only-imported.testns.svc.cluster.local.", A),
            // A five-label name keeps its plain meaning: SRV with a bare port.
            nx("a.b.svc1.testns.svc.cluster.local.", A),
        ],
    );
}

const CLUSTERSET_SOA: &str = "clusterset.local. 5 IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. 1499347823 7200 1800 86400 5";

/// KEP-1645 `specification.md` §2.3 and §2.4, with clusters `clustera` and
/// `clusterb` (the spec's `clusterA`/`clusterB`; names compare case-insensitively).
fn spec_fixture() -> ClusterIndex {
    let https = || vec![port("https", 443)];
    let mut idx = ClusterIndex::default();
    idx.apply(IndexUpdate::Batch(vec![
        import("test", "myservice", set_ip(&["10.42.42.42"]), https()),
        import("test", "myservice6", set_ip(&["2001:db8::1"]), https()),
        import("test", "headless", ImportKind::Headless, vec![]),
        import("test", "drained", ImportKind::Headless, vec![]),
        mc_slice(
            "clustera",
            ("test", "headless-a", "headless"),
            https(),
            vec![
                ep("10.3.0.100", Some("my-pet-1")),
                ep("10.3.0.101", Some("my-pet-2")),
            ],
        ),
        mc_slice(
            "clusterb",
            ("test", "headless-b", "headless"),
            https(),
            vec![ep("10.10.10.10", Some("my-pet-1"))],
        ),
    ]));
    idx.set_serial(SERIAL);
    idx
}

const fn nx_set(q: &'static str, t: RecordType) -> Case {
    Case {
        q,
        t,
        rcode: NXDomain,
        answer: &[],
        ns: &[CLUSTERSET_SOA],
        extra: &[],
    }
}

const SPEC_CASES: &[Case] = &[
    // §2.3.1
    ok(
        "myservice.test.svc.clusterset.local.",
        A,
        &["myservice.test.svc.clusterset.local. 5 IN A 10.42.42.42"],
    ),
    ok(
        "myservice6.test.svc.clusterset.local.",
        AAAA,
        &["myservice6.test.svc.clusterset.local. 5 IN AAAA 2001:db8::1"],
    ),
    // §2.3.2
    glue(
        "_https._tcp.myservice.test.svc.clusterset.local.",
        SRV,
        &[
            "_https._tcp.myservice.test.svc.clusterset.local. 5 IN SRV 0 100 443 myservice.test.svc.clusterset.local.",
        ],
        &["myservice.test.svc.clusterset.local. 5 IN A 10.42.42.42"],
    ),
    // §2.3.4: no name for one cluster's backends of a ClusterSetIP service.
    nx_set("clustera.myservice.test.svc.clusterset.local.", A),
    // §2.4.1: every ready endpoint of every cluster, and one per hostname.cluster.
    ok(
        "headless.test.svc.clusterset.local.",
        A,
        &[
            "headless.test.svc.clusterset.local. 5 IN A 10.3.0.100",
            "headless.test.svc.clusterset.local. 5 IN A 10.3.0.101",
            "headless.test.svc.clusterset.local. 5 IN A 10.10.10.10",
        ],
    ),
    ok(
        "my-pet-1.clusterA.headless.test.svc.clusterset.local.",
        A,
        &["my-pet-1.clusterA.headless.test.svc.clusterset.local. 5 IN A 10.3.0.100"],
    ),
    ok(
        "my-pet-1.clusterb.headless.test.svc.clusterset.local.",
        A,
        &["my-pet-1.clusterb.headless.test.svc.clusterset.local. 5 IN A 10.10.10.10"],
    ),
    // No ready endpoints: NXDOMAIN.
    nx_set("drained.test.svc.clusterset.local.", A),
    // §2.4.2: the union over the clusters.
    glue(
        "_https._tcp.headless.test.svc.clusterset.local.",
        SRV,
        &[
            "_https._tcp.headless.test.svc.clusterset.local. 5 IN SRV 0 33 443 my-pet-1.clustera.headless.test.svc.clusterset.local.",
            "_https._tcp.headless.test.svc.clusterset.local. 5 IN SRV 0 33 443 my-pet-2.clustera.headless.test.svc.clusterset.local.",
            "_https._tcp.headless.test.svc.clusterset.local. 5 IN SRV 0 33 443 my-pet-1.clusterb.headless.test.svc.clusterset.local.",
        ],
        &[
            "my-pet-1.clustera.headless.test.svc.clusterset.local. 5 IN A 10.3.0.100",
            "my-pet-2.clustera.headless.test.svc.clusterset.local. 5 IN A 10.3.0.101",
            "my-pet-1.clusterb.headless.test.svc.clusterset.local. 5 IN A 10.10.10.10",
        ],
    ),
    // A namespace that only imports exist in is a name (NODATA); others are not.
    Case {
        q: "test.svc.clusterset.local.",
        t: A,
        rcode: NoError,
        answer: &[],
        ns: &[CLUSTERSET_SOA],
        extra: &[],
    },
    nx_set("other.svc.clusterset.local.", A),
];

#[test]
fn kep_1645_examples_answer_in_the_clusterset_zone() {
    let mut o = mc_opts("clusterset.local.");
    o.namespaces = None;
    run_in(&spec_fixture(), &o, "clusterset.local.", SPEC_CASES);
}

#[test]
fn imports_and_their_slices_follow_deletes_and_relists() {
    let mut o = mc_opts("clusterset.local.");
    o.namespaces = None;
    let mut idx = spec_fixture();
    idx.apply(IndexUpdate::Delete {
        kind: Kind::MultiClusterSlice,
        namespace: "test".into(),
        name: "headless-a".into(),
    });
    run_in(
        &idx,
        &o,
        "clusterset.local.",
        &[
            ok(
                "headless.test.svc.clusterset.local.",
                A,
                &["headless.test.svc.clusterset.local. 5 IN A 10.10.10.10"],
            ),
            nx_set("my-pet-1.clustera.headless.test.svc.clusterset.local.", A),
        ],
    );
    // A relist of the imports without `myservice`: gone, and the namespace
    // stays while other imports live in it.
    let mut relist = Relist::new(Kind::ServiceImport);
    relist.put(Object::ServiceImport(ServiceImport {
        namespace: "test".into(),
        name: "headless".into(),
        kind: ImportKind::Headless,
        ports: Vec::new(),
    }));
    idx.apply(IndexUpdate::Replace(Box::new(relist)));
    assert!(idx.is_synced(Kind::ServiceImport));
    run_in(
        &idx,
        &o,
        "clusterset.local.",
        &[
            nx_set("myservice.test.svc.clusterset.local.", A),
            ok(
                "headless.test.svc.clusterset.local.",
                A,
                &["headless.test.svc.clusterset.local. 5 IN A 10.10.10.10"],
            ),
        ],
    );
    idx.apply(IndexUpdate::Delete {
        kind: Kind::ServiceImport,
        namespace: "test".into(),
        name: "headless".into(),
    });
    run_in(
        &idx,
        &o,
        "clusterset.local.",
        &[nx_set("test.svc.clusterset.local.", A)],
    );
}
