//! The kubeadm Corefile, unchanged but for its ports and its data source:
//! health, ready and metrics answer; cluster names come from the kubernetes
//! plugin; an external name is forwarded to the (in-process) upstream once and
//! then served from the cache with a decreasing TTL, the hit counted.

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::time::Duration;

use common::{TestServer, eventually, lines, repo};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const CLUSTER: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.0.5}\n";

/// config/Corefile.kubeadm with free loopback ports, the test upstream and a
/// manifests source; every directive and option is kept.
fn kubeadm(upstream: &str) -> String {
    let text = std::fs::read_to_string(repo().join("config/Corefile.kubeadm")).expect("kubeadm");
    let edits = [
        (".:53 {", ".:{PORT} {\n    bind 127.0.0.1"),
        ("    health {", "    health 127.0.0.1:{HEALTH} {"),
        ("    ready\n", "    ready 127.0.0.1:{READY}\n"),
        ("    prometheus :9153", "    prometheus 127.0.0.1:{METRICS}"),
        (
            "forward . /etc/resolv.conf",
            &format!("forward . {upstream}"),
        ),
        (
            "       pods insecure",
            "       manifests cluster.yaml\n       pods insecure",
        ),
    ];
    edits.iter().fold(text, |t, (from, to)| {
        assert!(
            t.contains(from),
            "config/Corefile.kubeadm changed shape: {from}"
        );
        t.replacen(from, to, 1)
    })
}

#[test]
fn the_kubeadm_corefile_serves_probes_metrics_cluster_and_cached_external_names() {
    let up = upstream::Upstream::start();
    up.answer("example.org.", &["93.184.216.34".parse().expect("ip")]);
    let srv = TestServer::start(&kubeadm(&up.to()), &[("cluster.yaml", CLUSTER)]);

    assert_eq!(
        srv.http_get(srv.health_port, "/health"),
        Some((200, "OK".to_string()))
    );
    assert_eq!(
        srv.http_get(srv.ready_port, "/ready"),
        Some((200, "OK".to_string()))
    );

    let cluster = srv.udp("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&cluster.answers),
        ["web.default.svc.cluster.local. 30 IN A 10.96.0.5"]
    );
    assert!(cluster.metadata.authoritative);

    let first = srv.udp("example.org.", RecordType::A);
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    // The upstream says 60; `cache 30` caps it, on the first answer too (as CoreDNS).
    assert_eq!(
        lines(&first.answers),
        ["example.org. 30 IN A 93.184.216.34"]
    );
    assert_eq!(up.queries_for("example.org."), 1, "forwarded once");

    // Ask until the cached copy's TTL has counted down; every answer comes
    // from the cache (the upstream is asked once).
    let ttl = eventually(Duration::from_secs(10), || {
        let again = srv.udp("example.org.", RecordType::A);
        assert_eq!(
            up.queries_for("example.org."),
            1,
            "later answers from the cache"
        );
        let ttl = again.answers.first().expect("answer").ttl;
        (ttl < 30).then_some(ttl)
    })
    .expect("the cached TTL counts down");
    assert!((25..30).contains(&ttl), "TTL decreases in the cache: {ttl}");

    let metrics = srv
        .http_get(srv.metrics_port, "/metrics")
        .expect("metrics")
        .1;
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("coredns_cache_hits_total{") && l.contains("type=\"success\""))
        .unwrap_or_else(|| panic!("no cache hit series:\n{metrics}"));
    let n: f64 = hits
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(n >= 1.0, "{hits}");
    for family in [
        "coredns_dns_requests_total{",
        "coredns_dns_responses_total{",
        "coredns_proxy_request_duration_seconds_bucket{",
        "coredns_cache_entries{",
        "coredns_build_info{",
        "coredns_reload_version_info{",
        "coredns_health_request_duration_seconds_bucket{",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    // A reverse name the cluster does not own falls through to forward.
    up.rcode_for("4.3.2.1.in-addr.arpa.", ResponseCode::NXDomain);
    let ptr = srv.udp("4.3.2.1.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptr.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        up.queries_for("4.3.2.1.in-addr.arpa."),
        1,
        "fell through to forward"
    );
}
