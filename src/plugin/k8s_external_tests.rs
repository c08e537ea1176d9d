//! Parse and serve tables for `k8s_external`, over a real kubernetes plugin
//! and index (the answers themselves are tabled in `index/tests/external.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use prometheus::Registry;

use super::*;
use crate::corefile::Dispenser;
use crate::index::model::{Port, Protocol, Service, ServiceKind};
use crate::index::snapshot::SharedIndex;
use crate::index::{ClusterIndex, IndexUpdate, Kind, Object};
use crate::plugin::Chain;
use crate::plugin::build::{Counter, Families, TestCtx};
use crate::plugin::kubernetes;
use crate::plugin::rewrite::tests::{block, lines, query};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn config(src: &str) -> std::result::Result<K8sExternalConfig, CorefileError> {
    parse(&mut Dispenser::new(&block(src)[0]))
}

/// `web.default` with external address 192.168.200.123 and port `http`.
fn web() -> IndexUpdate {
    IndexUpdate::Apply(Object::Service(Service {
        namespace: "default".into(),
        name: "web".into(),
        kind: ServiceKind::ClusterIp(vec!["10.96.0.7".parse().unwrap()]),
        ports: vec![Port {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        }],
        external: vec!["192.168.200.123".parse().unwrap()],
    }))
}

/// The block's kubernetes plugin over an index holding `objects`; `synced`
/// marks Services and EndpointSlices listed.
fn k8s(objects: Vec<IndexUpdate>, synced: bool) -> Arc<Kubernetes> {
    let d = &block("kubernetes cluster.local")[0];
    let cfg = kubernetes::parse(&mut Dispenser::new(d)).unwrap();
    let index = SharedIndex::new(ClusterIndex::default());
    if synced {
        index.apply([
            IndexUpdate::Reset {
                kind: Kind::Service,
                objects: Vec::new(),
            },
            IndexUpdate::Reset {
                kind: Kind::EndpointSlice,
                objects: Vec::new(),
            },
        ]);
    }
    index.apply(objects);
    Arc::new(Kubernetes::new(&cfg, &[], Vec::new(), index))
}

/// `k8s_external` from `src` over `k8s`, followed by a counting plugin.
fn chain(src: &str, k8s: Arc<Kubernetes>) -> (Chain, Arc<AtomicUsize>) {
    let cfg = config(src).expect(src);
    let ext = K8sExternal::over(&cfg, &[Name::root()], k8s);
    let hits = Arc::new(AtomicUsize::new(0));
    let chain = Chain::new(vec![Arc::new(ext), Arc::new(Counter(hits.clone()))]);
    (chain, hits)
}

/// `qtype` for `name` from a client at 10.0.0.1, through `chain`.
async fn ask(chain: &Chain, name: &str, qtype: RecordType) -> crate::dns::Answer {
    chain
        .serve(&query(name, qtype, "10.0.0.1:5353"))
        .await
        .unwrap()
}

#[test]
fn parse_reads_coredns_options_and_defaults() {
    let plain = config("k8s_external example.org").unwrap();
    assert_eq!(
        (
            plain.zones,
            plain.apex.as_str(),
            plain.ttl,
            plain.headless,
            plain.fallthrough
        ),
        (vec![n("example.org.")], "dns", 5, false, None)
    );
    assert_eq!(plain.at, "Corefile:2:1");
    let full = config(
        "k8s_external Example.ORG in-addr.arpa {\n apex Kube\n ttl 30\n headless\n fallthrough example.org\n}",
    )
    .unwrap();
    assert_eq!(full.zones, [n("example.org."), n("in-addr.arpa.")]);
    assert_eq!(
        (full.apex.as_str(), full.ttl, full.headless),
        ("kube", 30, true)
    );
    assert_eq!(full.fallthrough, Some(vec![n("example.org.")]));
    let all = config("k8s_external {\n fallthrough\n}").unwrap();
    assert!(all.zones.is_empty());
    assert_eq!(all.fallthrough, Some(Vec::new()));
}

#[test]
fn bad_options_are_refused_at_their_token() {
    let cases: &[(&str, &str)] = &[
        (
            "k8s_external example.org {\n resync 5\n}",
            "Corefile:3:2: k8s_external: unknown property 'resync'",
        ),
        (
            "k8s_external example.org {\n ttl 3601\n}",
            "Corefile:3:6: k8s_external: ttl: 3601 is out of range",
        ),
        (
            "k8s_external example.org {\n ttl -1\n}",
            "Corefile:3:6: k8s_external: ttl: '-1' is not a number",
        ),
        (
            "k8s_external example.org {\n apex a.b\n}",
            "Corefile:3:7: k8s_external: apex: 'a.b' is not a DNS label",
        ),
        ("k8s_external example.org {\n apex\n}", "Corefile:3:2"),
        (
            "k8s_external example.org {\n headless yes\n}",
            "Corefile:3:11",
        ),
    ];
    for (src, want) in cases {
        let err = config(src).expect_err(src).to_string();
        assert!(err.starts_with(want), "{src}: {err}");
    }
}

#[test]
fn build_without_a_kubernetes_plugin_fails_naming_the_directive() {
    let families = Families::new(Registry::new());
    let tc = TestCtx::new(&families, &["example.org."]);
    let cfg = config("k8s_external example.org").unwrap();
    let err = K8sExternal::new(&cfg, &tc.ctx())
        .err()
        .expect("no kubernetes");
    assert_eq!(
        err.to_string(),
        "Corefile:2:1: k8s_external: needs the kubernetes plugin in the same server block"
    );
}

#[tokio::test]
async fn answers_are_authoritative_and_other_names_go_on_down_the_chain() {
    let (chain, hits) = chain("k8s_external example.org", k8s(vec![web()], true));
    let a = ask(&chain, "web.default.example.org.", RecordType::A).await;
    assert_eq!(
        (a.rcode, a.authoritative, a.writer),
        (ResponseCode::NoError, true, "k8s_external")
    );
    assert_eq!(
        lines(&a.answers),
        ["web.default.example.org. 5 A 192.168.200.123"]
    );
    assert!(a.memo.is_some(), "an index answer may be memoized");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let other = ask(&chain, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(other.writer, "whoami");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let axfr = ask(&chain, "example.org.", RecordType::AXFR).await;
    assert_eq!(axfr.rcode, ResponseCode::Refused);
}

#[tokio::test]
async fn nxdomain_falls_through_only_when_configured_and_never_at_the_apex() {
    let k = k8s(vec![web()], true);
    let (strict, hits) = chain("k8s_external example.org", k.clone());
    let a = ask(&strict, "nope.default.example.org.", RecordType::A).await;
    assert_eq!(
        (a.rcode, a.writer),
        (ResponseCode::NXDomain, "k8s_external")
    );
    assert_eq!(lines(&a.authority).len(), 1, "the SOA");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let (open, hits) = chain("k8s_external example.org {\n fallthrough\n}", k.clone());
    let a = ask(&open, "nope.default.example.org.", RecordType::A).await;
    assert_eq!(a.writer, "whoami");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Names under the apex label are the plugin's own.
    let a = ask(&open, "ns2.dns.example.org.", RecordType::A).await;
    assert_eq!(
        (a.rcode, a.writer),
        (ResponseCode::NXDomain, "k8s_external")
    );
    // NODATA never falls through.
    let a = ask(&open, "web.default.example.org.", RecordType::TXT).await;
    assert_eq!((a.rcode, a.writer), (ResponseCode::NoError, "k8s_external"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (other_zone, hits) = chain(
        "k8s_external example.org example.net {\n fallthrough example.net\n}",
        k,
    );
    let a = ask(&other_zone, "nope.default.example.org.", RecordType::A).await;
    assert_eq!(a.writer, "k8s_external");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn nxdomain_is_servfail_until_the_index_has_synced() {
    let (chain, _) = chain("k8s_external example.org", k8s(vec![web()], false));
    let a = ask(&chain, "nope.default.example.org.", RecordType::A).await;
    assert_eq!(a.rcode, ResponseCode::ServFail);
    let a = ask(&chain, "web.default.example.org.", RecordType::A).await;
    assert_eq!(a.rcode, ResponseCode::NoError);
}

#[tokio::test]
async fn ptr_targets_use_the_first_forward_zone_whatever_the_order_written() {
    let (chain, _) = chain(
        "k8s_external in-addr.arpa example.org",
        k8s(vec![web()], true),
    );
    let a = ask(&chain, "123.200.168.192.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        lines(&a.answers),
        ["123.200.168.192.in-addr.arpa. 5 PTR web.default.example.org."]
    );
}
