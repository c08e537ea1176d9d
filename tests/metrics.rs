//! `/metrics` through the real binary: CoreDNS's series with CoreDNS's labels,
//! so existing dashboards find them, and a lint over every family we export.

mod common;

use common::TestServer;
use hickory_proto::rr::RecordType;

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

#[test]
fn every_exported_family_follows_the_naming_rules() {
    let srv = TestServer::start(COREFILE, &[("cluster.yaml", CLUSTER)]);
    srv.udp("web.default.svc.cluster.local.", RecordType::A);
    let text = scrape(&srv);
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
            "{name}: counters end in _total"
        );
        if kind == "histogram" {
            assert!(
                name.ends_with("_seconds") || name.ends_with("_bytes"),
                "{name}: histograms are durations in seconds or sizes in bytes"
            );
        }
    }
    assert!(families >= 8, "{text}");
}
