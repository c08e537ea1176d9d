//! `/metrics` through the real binary: CoreDNS's series with CoreDNS's labels,
//! so existing dashboards find them, and a naming lint over every family we
//! export, with a Corefile that enables every plugin clusterdns ships.

mod common;
mod support;
#[path = "common/upstream.rs"]
mod upstream;

use std::time::Duration;

use common::TestServer;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use support::apiserver::ApiServer;
use upstream::Upstream;

const COREFILE: &str = r#"
cluster.local:{PORT} {
    bind 127.0.0.1
    prometheus 127.0.0.1:{HEALTH}
    kubernetes {
        manifests cluster.yaml
    }
}
"#;

const CLUSTER: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.0.0.5}\n";

fn scrape(srv: &TestServer) -> String {
    srv.http_get(srv.health_port, "/metrics").expect("scrape").1
}

/// The value of the series whose line starts with `series` (labels sorted as
/// the Prometheus text encoder writes them).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn requests_and_responses_are_counted_under_coredns_names_and_labels() {
    let srv = TestServer::start(COREFILE, &[("cluster.yaml", CLUSTER)]);
    for _ in 0..3 {
        srv.udp("web.default.svc.cluster.local.", RecordType::A);
    }
    srv.tcp("nope.default.svc.cluster.local.", RecordType::AAAA);
    let text = scrape(&srv);
    let server = format!("dns://:{}", srv.addr.port());
    let req_a = format!(
        "coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"A\",view=\"\",zone=\"cluster.local.\"}}"
    );
    // The start-up probe of the harness adds A queries too: at least our three.
    assert!(
        value(&text, &req_a).is_some_and(|v| v >= 3.0),
        "{req_a}\n{text}"
    );
    let req_tcp = format!(
        "coredns_dns_requests_total{{family=\"1\",proto=\"tcp\",server=\"{server}\",type=\"AAAA\",view=\"\",zone=\"cluster.local.\"}}"
    );
    assert_eq!(value(&text, &req_tcp), Some(1.0), "{text}");
    let noerror = format!(
        "coredns_dns_responses_total{{plugin=\"kubernetes\",rcode=\"NOERROR\",server=\"{server}\",view=\"\",zone=\"cluster.local.\"}}"
    );
    assert!(value(&text, &noerror).is_some_and(|v| v >= 3.0), "{text}");
    let nx = format!(
        "coredns_dns_responses_total{{plugin=\"kubernetes\",rcode=\"NXDOMAIN\",server=\"{server}\",view=\"\",zone=\"cluster.local.\"}}"
    );
    assert!(value(&text, &nx).is_some_and(|v| v >= 1.0), "{text}");
    for family in [
        "coredns_dns_request_duration_seconds_bucket",
        "coredns_dns_request_size_bytes_bucket",
        "coredns_dns_response_size_bytes_bucket",
        "coredns_build_info{",
        "coredns_plugin_enabled{",
        "coredns_panics_total",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let enabled = format!(
        "coredns_plugin_enabled{{name=\"kubernetes\",server=\"{server}\",view=\"\",zone=\"cluster.local.\"}}"
    );
    assert_eq!(value(&text, &enabled), Some(1.0), "{text}");
}

/// Every directive clusterdns ships, so that every plugin registers its metric
/// families; `{UPSTREAM}` is a test upstream for `forward`, `{API}` the test
/// API server (the API source has metrics the manifests source has not).
const ALL_PLUGINS: &str = r#"
.:{PORT} {
    bind 127.0.0.1
    errors
    log
    health 127.0.0.1:{HEALTH}
    ready 127.0.0.1:{READY}
    prometheus 127.0.0.1:{METRICS}
    reload 2s
    any
    loadbalance
    cache 30
    rewrite name exact alias.default.svc.cluster.local web.default.svc.cluster.local
    autopath @kubernetes
    template IN A tmpl.test {
        answer "{{ .Name }} 60 IN A 10.9.9.9"
    }
    hosts hosts.txt example.hosts {
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa {
        manifests cluster.yaml
        pods verified
    }
    loop
    forward . {UPSTREAM}
}
whoami.test:{PORT} {
    bind 127.0.0.1
    whoami
}
api.local:{PORT} {
    bind 127.0.0.1
    kubernetes api.local {
        endpoint {API}
    }
}
"#;

/// `web` and, for autopath, the test client itself as a pod (127.0.0.1).
const ALL_CLUSTER: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.0.0.5}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: default}\nstatus: {phase: Running, podIP: 127.0.0.1, podIPs: [{ip: 127.0.0.1}]}\n";

/// The families each metric-exporting plugin must show once exercised: a
/// plugin that stopped registering (or renamed) its metrics fails here.
const EXPECTED: &[&str] = &[
    "coredns_build_info",
    "coredns_panics_total",
    "coredns_plugin_enabled",
    "coredns_dns_requests_total",
    "coredns_dns_responses_total",
    "coredns_dns_request_duration_seconds",
    "coredns_dns_request_size_bytes",
    "coredns_dns_response_size_bytes",
    "coredns_cache_entries",
    "coredns_cache_requests_total",
    "coredns_cache_hits_total",
    "coredns_cache_misses_total",
    "coredns_proxy_request_duration_seconds",
    "coredns_health_request_duration_seconds",
    "coredns_reload_version_info",
    "coredns_template_matches_total",
    "coredns_autopath_success_total",
    "coredns_hosts_entries",
    "coredns_hosts_reload_timestamp_seconds",
    "coredns_kubernetes_dns_programming_duration_seconds",
    "clusterdns_watch_events_total",
    "clusterdns_watch_relists_total",
];

/// An EndpointSlice carrying the trigger-time annotation the programming
/// latency is measured from.
fn annotated_slice() -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "web-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2020-01-01T00:00:00Z"}
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.2.0.1"], "conditions": {"ready": true}}],
    }))
    .expect("slice")
}

#[test]
fn every_exported_family_follows_the_naming_rules() {
    let upstream = Upstream::start();
    upstream.answer("out.example.", &["192.0.2.1".parse().expect("ip")]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let api = rt.block_on(ApiServer::start());
    let corefile = ALL_PLUGINS
        .replace("{UPSTREAM}", &upstream.to())
        .replace("{API}", &api.url());
    let srv = TestServer::start(
        &corefile,
        &[
            ("cluster.yaml", ALL_CLUSTER),
            ("hosts.txt", "10.1.1.1 h.example.hosts\n"),
        ],
    );
    // One query through each plugin that answers.
    for (name, qtype) in [
        ("web.default.svc.cluster.local.", RecordType::A),
        ("web.default.svc.cluster.local.", RecordType::A),
        ("alias.default.svc.cluster.local.", RecordType::A),
        (
            "web.default.svc.cluster.local.default.svc.cluster.local.",
            RecordType::A,
        ),
        ("x.tmpl.test.", RecordType::A),
        ("h.example.hosts.", RecordType::A),
        ("out.example.", RecordType::A),
        ("out.example.", RecordType::ANY),
        ("me.whoami.test.", RecordType::A),
    ] {
        let m = srv.udp(name, qtype);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name} {qtype}"
        );
    }
    // A watched change after the initial list: the API source's event and
    // programming-latency series.
    api.apply(&annotated_slice());
    let missing = |text: &str| -> Vec<&str> {
        EXPECTED
            .iter()
            .copied()
            .filter(|f| !text.contains(&format!("# TYPE {f} ")))
            .collect()
    };
    // The health self-check runs once a second: poll until every family is there.
    let text = common::eventually(Duration::from_secs(10), || {
        let (_, text) = srv.http_get(srv.metrics_port, "/metrics")?;
        missing(&text).is_empty().then_some(text)
    })
    .unwrap_or_else(|| {
        let text = srv
            .http_get(srv.metrics_port, "/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default();
        panic!("families missing: {:?}\n{text}", missing(&text))
    });
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().expect("name"), parts.next().expect("type"));
        families += 1;
        assert!(
            name.starts_with("coredns_") || name.starts_with("clusterdns_"),
            "{name}: namespace"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name}: counters (and only counters) end in _total"
        );
        if kind == "histogram" {
            assert!(
                name.ends_with("_seconds") || name.ends_with("_bytes"),
                "{name}: histograms are durations in seconds or sizes in bytes"
            );
        }
        if name.contains("duration") || name.contains("latency") {
            assert!(name.ends_with("_seconds"), "{name}: durations in seconds");
        }
    }
    assert!(families >= EXPECTED.len(), "{text}");
}
