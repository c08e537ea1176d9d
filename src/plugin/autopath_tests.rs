//! Parse and serve tables for `autopath`, with a fake kubernetes behind it.

use crate::plugin::build::TestCtx;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::Registry;

use super::*;
use crate::corefile::Dispenser;
use crate::index::model::{Endpoint, EndpointSlice, Pod};
use crate::index::snapshot::SharedIndex;
use crate::index::{ClusterIndex, IndexUpdate, Kind, Object};
use crate::plugin::Chain;
use crate::plugin::build::Families;
use crate::plugin::kubernetes;
use crate::plugin::rewrite::tests::{Fake, block, lines, query};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn config(src: &str) -> std::result::Result<AutopathConfig, CorefileError> {
    parse(&mut Dispenser::new(&block(src)[0]))
}

fn pod(ns: &str, name: &str, ip: &str) -> IndexUpdate {
    IndexUpdate::Apply(Object::Pod(Pod {
        namespace: ns.into(),
        name: name.into(),
        ips: vec![ip.parse().unwrap()],
    }))
}

/// The block's kubernetes plugin, with `pods` from the directive text and one pod
/// `client` in `default` at 10.0.0.5.
fn k8s(pods: &str) -> Arc<Kubernetes> {
    k8s_with(pods, [pod("default", "client", "10.0.0.5")])
}

/// The block's kubernetes plugin with `pods` from the directive text, over
/// an index holding `objects`.
fn k8s_with(pods: &str, objects: impl IntoIterator<Item = IndexUpdate>) -> Arc<Kubernetes> {
    let d = &block(&format!("kubernetes cluster.local {{\n pods {pods}\n}}"))[0];
    let cfg = kubernetes::parse(&mut Dispenser::new(d)).unwrap();
    let index = SharedIndex::new(ClusterIndex::default());
    index.apply(objects);
    Arc::new(Kubernetes::new(&cfg, &[], Vec::new(), index))
}

/// Autopath's answer when `qname` led to `nginx`: the CNAME, then the address.
fn via_cname(qname: &str) -> [String; 2] {
    [
        format!("{qname} 5 CNAME nginx.default.svc.cluster.local."),
        "nginx.default.svc.cluster.local. 5 A 10.96.0.100".to_string(),
    ]
}

/// Knows `nginx.default.svc.cluster.local.` and `example.com.`; NXDOMAIN otherwise.
fn cluster(q: &Query) -> Result<Answer> {
    let known = ["nginx.default.svc.cluster.local.", "example.com."];
    if !known.contains(&q.lower.to_ascii().as_str()) {
        return Ok(Answer::rcode(ResponseCode::NXDomain));
    }
    let mut a = Answer::rcode(ResponseCode::NoError);
    a.answers.push(Record::from_rdata(
        q.name.clone(),
        5,
        RData::A(A::new(10, 96, 0, 100)),
    ));
    Ok(a)
}

struct Setup {
    chain: Chain,
    fake: Arc<Fake>,
    families: Families,
}

fn setup(src: &str, k: Option<Arc<Kubernetes>>) -> anyhow::Result<Setup> {
    let families = Families::new(Registry::new());
    let tc = TestCtx::new(&families, &["cluster.local.", "com."]);
    let mut ctx = tc.ctx();
    ctx.kubernetes = k.as_ref();
    let ap = Arc::new(Autopath::new(&config(src)?, &ctx)?);
    let fake = Fake::new(cluster);
    Ok(Setup {
        chain: Chain::new(vec![fake.clone(), ap]),
        fake,
        families,
    })
}

#[test]
fn the_pod_ip_map_gives_the_namespaces_of_the_pods_holding_an_ip() {
    let mut idx = ClusterIndex::default();
    let ip: IpAddr = "10.0.0.5".parse().unwrap();
    assert!(idx.pod_namespaces(ip).is_empty());
    idx.apply(pod("default", "a", "10.0.0.5"));
    idx.apply(pod("kube-system", "b", "10.0.0.5"));
    let mut got = idx.pod_namespaces(ip);
    got.sort_unstable();
    assert_eq!(got, ["default", "kube-system"]);
    idx.apply(IndexUpdate::Delete {
        kind: Kind::Pod,
        namespace: "default".into(),
        name: "a".into(),
    });
    assert_eq!(idx.pod_namespaces(ip), ["kube-system"]);
}

#[test]
fn good_and_bad_lines() {
    let c = config("autopath @kubernetes").unwrap();
    assert_eq!(c.resolv, Resolv::Plugin("kubernetes".into()));
    assert!(c.zones.is_empty());
    assert_eq!(c.at, "Corefile:2:1");
    let c = config("autopath Cluster.Local /etc/resolv.conf").unwrap();
    assert_eq!(c.zones, [n("cluster.local.")]);
    assert_eq!(c.resolv, Resolv::File("/etc/resolv.conf".into()));
    let cases = [
        (
            "autopath",
            "Corefile:2:1: autopath: missing argument: RESOLV-CONF (e.g. @kubernetes)",
        ),
        (
            "autopath @",
            "Corefile:2:10: autopath: missing plugin name after '@'",
        ),
        (
            "autopath @kubernetes {\n x\n}",
            "Corefile:2:1: autopath: takes no block",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(config(src).unwrap_err().to_string(), want, "{src}");
    }
}

#[test]
fn at_kubernetes_is_refused_without_the_plugin_or_with_another_plugin() {
    let e = setup("autopath @kubernetes", None).err().unwrap();
    assert_eq!(
        e.to_string(),
        "Corefile:2:1: autopath: @kubernetes needs a kubernetes plugin in the same server block"
    );
    // Without `pods verified` it starts (CoreDNS refuses): see the endpoint tests below.
    assert!(setup("autopath @kubernetes", Some(k8s("insecure"))).is_ok());
    let e = setup("autopath @etcd", Some(k8s("verified")))
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "Corefile:2:1: autopath: plugin 'etcd' cannot give a search path (only @kubernetes)"
    );
    let e = setup("autopath /nonexistent/resolv.conf", None)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("Corefile:2:1: autopath: failed to read /nonexistent/resolv.conf")
    );
}

#[tokio::test]
async fn a_pod_gets_the_first_search_path_hit_as_a_cname_in_one_round_trip() {
    let s = setup("autopath @kubernetes", Some(k8s("verified"))).unwrap();
    let qname = "nginx.default.svc.cluster.local.default.svc.cluster.local.";
    let a = s
        .chain
        .serve(&query(qname, RecordType::A, "10.0.0.5:40000"))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(lines(&a.answers), via_cname(qname));
    assert_eq!(
        s.fake.names(),
        [
            qname,
            "nginx.default.svc.cluster.local.svc.cluster.local.",
            "nginx.default.svc.cluster.local.cluster.local.",
            "nginx.default.svc.cluster.local.",
        ]
    );
    let m = s.families.get::<AutopathMetrics>().unwrap();
    assert_eq!(m.success.with_label_values(&["dns://:53"]).get(), 1);
}

#[tokio::test]
async fn a_direct_hit_needs_no_cname_and_an_external_name_is_found_bare() {
    let s = setup("autopath @kubernetes", Some(k8s("verified"))).unwrap();
    let a = s
        .chain
        .serve(&query(
            "nginx.default.svc.cluster.local.",
            RecordType::A,
            "10.0.0.5:1",
        ))
        .await
        .unwrap();
    assert_eq!(
        lines(&a.answers),
        ["nginx.default.svc.cluster.local. 5 A 10.96.0.100"]
    );
    let a = s
        .chain
        .serve(&query(
            "Example.COM.default.svc.cluster.local.",
            RecordType::A,
            "10.0.0.5:1",
        ))
        .await
        .unwrap();
    assert_eq!(
        lines(&a.answers),
        [
            "Example.COM.default.svc.cluster.local. 5 CNAME Example.COM.",
            "Example.COM. 5 A 10.96.0.100",
        ]
    );
}

#[tokio::test]
async fn a_client_that_is_not_a_pod_is_passed_through_unchanged() {
    let s = setup("autopath @kubernetes", Some(k8s("verified"))).unwrap();
    let qname = "nginx.default.svc.cluster.local.default.svc.cluster.local.";
    let a = s
        .chain
        .serve(&query(qname, RecordType::A, "10.0.0.6:1"))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert!(a.answers.is_empty());
    assert_eq!(s.fake.names(), [qname]);
    let m = s.families.get::<AutopathMetrics>().unwrap();
    assert_eq!(m.success.with_label_values(&["dns://:53"]).get(), 0);
}

#[tokio::test]
async fn when_every_try_fails_the_first_reply_is_returned() {
    let s = setup("autopath @kubernetes", Some(k8s("verified"))).unwrap();
    let qname = "nothing.default.svc.cluster.local.";
    let a = s
        .chain
        .serve(&query(qname, RecordType::A, "10.0.0.5:1"))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_eq!(s.fake.names().len(), 4);
    assert_eq!(s.fake.names()[0], qname);
    // A name outside the first search element is not autopathed.
    let s = setup("autopath @kubernetes", Some(k8s("verified"))).unwrap();
    s.chain
        .serve(&query(
            "x.kube-system.svc.cluster.local.",
            RecordType::A,
            "10.0.0.5:1",
        ))
        .await
        .unwrap();
    assert_eq!(s.fake.names(), ["x.kube-system.svc.cluster.local."]);
}

#[tokio::test]
async fn a_resolv_conf_file_gives_a_static_search_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(
        &path,
        "nameserver 10.0.0.10\nsearch default.svc.cluster.local svc.cluster.local\n",
    )
    .unwrap();
    let s = setup(&format!("autopath cluster.local {}", path.display()), None).unwrap();
    let a = s
        .chain
        .serve(&query(
            "nginx.default.svc.cluster.local.default.svc.cluster.local.",
            RecordType::A,
            "192.0.2.1:1",
        ))
        .await
        .unwrap();
    assert_eq!(a.answers.len(), 2);
    assert_eq!(s.fake.names().len(), 3);
}

/// `pods insecure` (no Pod watch) over a cluster where 10.0.0.7 backs `web` in
/// `shop`, 10.0.0.8 backs Services in two namespaces (a host-network address),
/// and the pod 10.0.0.5 of [`k8s`] backs nothing.
fn k8s_endpoints_only() -> Arc<Kubernetes> {
    let slice = |ns: &str, svc: &str, ip: &str| {
        IndexUpdate::Apply(Object::EndpointSlice(EndpointSlice {
            namespace: ns.into(),
            name: format!("{svc}-x").into(),
            service: svc.into(),
            ports: Vec::new(),
            endpoints: vec![Endpoint {
                addresses: vec![ip.parse().unwrap()],
                hostname: None,
                pod_name: None,
                ready: true,
                zone: None,
            }],
        }))
    };
    k8s_with(
        "insecure",
        [
            pod("default", "client", "10.0.0.5"),
            slice("shop", "web", "10.0.0.7"),
            slice("default", "agent", "10.0.0.8"),
            slice("monitoring", "agent", "10.0.0.8"),
        ],
    )
}

#[test]
fn without_pods_verified_a_client_is_known_by_the_services_its_address_backs() {
    let k = k8s_endpoints_only();
    let ns = |ip: &str| k.client_namespaces(ip.parse().unwrap());
    assert_eq!(ns("10.0.0.7"), ["shop"]);
    let mut two = ns("10.0.0.8");
    two.sort_unstable();
    assert_eq!(two, ["default", "monitoring"]);
    assert!(ns("10.0.0.5").is_empty(), "a pod that backs no Service");
    assert!(ns("10.9.9.9").is_empty());
}

#[tokio::test]
async fn without_pods_verified_an_endpoint_client_gets_its_search_path_and_others_plain_answers() {
    let s = setup("autopath @kubernetes", Some(k8s_endpoints_only())).unwrap();
    // `nginx` lives in `default`: from the client of `shop` the expansion
    // `nginx.default.svc.cluster.local.shop.svc.cluster.local.` walks to it.
    let qname = "nginx.default.svc.cluster.local.shop.svc.cluster.local.";
    let a = s
        .chain
        .serve(&query(qname, RecordType::A, "10.0.0.7:40000"))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(lines(&a.answers), via_cname(qname));
    // The pod at 10.0.0.5 backs no Service: the plain NXDOMAIN, one query downstream.
    let before = s.fake.names().len();
    let a = s
        .chain
        .serve(&query(qname, RecordType::A, "10.0.0.5:40000"))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_eq!(s.fake.names().len() - before, 1);
}
