//! How the API watches retry, in process against the test API server with an
//! injected backoff of one hour: a 410 Gone relists at once (so a change made
//! meanwhile converges), while a 5xx waits for its backoff (so it makes no
//! second request). No timing threshold: the 410 path must converge within a
//! bounded poll that is far shorter than the backoff, and the 5xx path is
//! judged by the request log once the 410 path has converged.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clusterdns::index::snapshot::{self, SharedIndex};
use clusterdns::index::{ClusterIndex, LookupOptions, LookupRequest, PodMode};
use clusterdns::k8s::retry::Backoff;
use clusterdns::plugin::build::Family;
use clusterdns::watch::api::{self, WatchConfig};
use clusterdns::watch::metrics::WatchMetrics;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use support::apiserver::ApiServer;
use support::faults::Fault;
use support::fixtures::poll_until;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const HOUR: Duration = Duration::from_secs(3600);

fn svc(ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]}
    }))
    .expect("service")
}

fn slice(ip: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
    }))
    .expect("slice")
}

/// The A records of `name` in the current index snapshot (`None`: NXDOMAIN).
fn resolve(index: &SharedIndex, name: &str) -> Option<Vec<IpAddr>> {
    let opts = LookupOptions {
        namespaces: None,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        ttl: 5,
        noendpoints: false,
        ignore_empty_service: false,
        primary_zone: Name::from_ascii("cluster.local.").expect("zone"),
        local_ips: Vec::new(),
        multicluster_zones: Vec::new(),
        zonal: false,
    };
    let qname = Name::from_ascii(name).expect("name");
    let zone = Name::from_ascii("cluster.local.").expect("zone");
    let res = index.load().lookup(
        &opts,
        &LookupRequest {
            qname: &qname,
            zone: &zone,
            qtype: RecordType::A,
        },
    );
    (res.rcode != ResponseCode::NXDomain).then(|| {
        res.answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect()
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_relists_at_once_while_a_5xx_waits_for_its_backoff() {
    let server = ApiServer::start().await;
    server.apply(
        &serde_json::from_value::<Namespace>(json!({"metadata": {"name": "default"}})).expect("ns"),
    );
    server.apply(&svc("10.0.0.10"));
    server.apply(&slice("10.2.0.1"));

    let index: Arc<SharedIndex> = SharedIndex::new(ClusterIndex::default());
    let (tx, rx) = snapshot::channel();
    let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
    let cfg = WatchConfig {
        endpoints: true,
        backoff: Backoff {
            initial: HOUR,
            max: HOUR,
        },
        ..WatchConfig::default()
    };
    let metrics = WatchMetrics::register(&prometheus::Registry::new()).expect("metrics");
    api::spawn(&server.client(), &cfg, &tx, &metrics, &tracker, &token);
    tracker.spawn(snapshot::run_writer(index.clone(), rx, token.clone()));

    const WEB: &str = "web.default.svc.cluster.local.";
    poll_until("initial lists", || {
        resolve(&index, WEB) == Some(vec![ip("10.0.0.10")])
            && resolve(&index, "10-2-0-1.web.default.svc.cluster.local.").is_some()
    })
    .await;

    // Services now fail with 500 on every request; the EndpointSlice history
    // is compacted, so resuming its watch gets 410 Gone. Once both watches
    // have tried to resume (so the old streams are gone), both kinds change.
    server.inject::<Service>(Fault::Status(500), None);
    server.compact();
    server.clear_request_log();
    server.close_watches();
    poll_until("both watches tried to resume", || {
        let log = server.request_log();
        log.iter().any(|l| l.starts_with("WATCH endpointslices"))
            && log
                .iter()
                .any(|l| l.starts_with("FAULT 500 WATCH services"))
    })
    .await;
    server.apply(&svc("10.0.0.11"));
    server.apply(&slice("10.2.0.2"));

    poll_until("the slice change after 410 Gone", || {
        resolve(&index, "10-2-0-2.web.default.svc.cluster.local.").is_some()
    })
    .await;
    let log = server.request_log();
    let slices: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("endpointslices"))
        .collect();
    assert!(
        slices.iter().any(|l| l.starts_with("LIST endpointslices")),
        "relisted after 410: {log:?}"
    );
    // The 5xx backs off: one failed request, no retry, the old answer keeps serving.
    let services: Vec<String> = server
        .request_log()
        .into_iter()
        .filter(|l| l.contains("services"))
        .collect();
    assert_eq!(services.len(), 1, "one request, then backoff: {services:?}");
    assert_eq!(resolve(&index, WEB), Some(vec![ip("10.0.0.10")]));

    token.cancel();
    tracker.close();
    tracker.wait().await;
}
