//! cache and loadbalance through the real binary: cluster answers stay
//! coherent with the manifests behind `cache 30`, other answers are cached
//! (and counted), and headless answers are shuffled.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestServer, eventually, lines};
use hickory_proto::rr::RecordType::A;

const COREFILE: &str = r#"
.:{PORT} {
    bind 127.0.0.1
    prometheus 127.0.0.1:{HEALTH}
    cache 30
    loadbalance
    kubernetes cluster.local {
        manifests cluster.yaml
        ttl 30
    }
    whoami
}
"#;

fn cluster(web_ip: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {{name: demo}}
- apiVersion: v1
  kind: Service
  metadata: {{name: web, namespace: demo}}
  spec:
    clusterIP: {web_ip}
    ports: [{{name: http, protocol: TCP, port: 80}}]
- apiVersion: v1
  kind: Service
  metadata: {{name: pool, namespace: demo}}
  spec:
    clusterIP: None
    ports: [{{name: http, protocol: TCP, port: 80}}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {{name: pool-1, namespace: demo, labels: {{kubernetes.io/service-name: pool}}}}
  addressType: IPv4
  ports: [{{name: http, protocol: TCP, port: 80}}]
  endpoints:
  - {{addresses: [10.1.0.1]}}
  - {{addresses: [10.1.0.2]}}
  - {{addresses: [10.1.0.3]}}
  - {{addresses: [10.1.0.4]}}
  - {{addresses: [10.1.0.5]}}
"#
    )
}

fn server() -> TestServer {
    TestServer::start(COREFILE, &[("cluster.yaml", &cluster("10.96.0.10"))])
}

#[test]
fn a_manifest_edit_is_answered_at_once_even_behind_cache_30() {
    let srv = server();
    let web = "web.demo.svc.cluster.local.";
    let before = srv.udp(web, A);
    assert_eq!(
        lines(&before.answers),
        [format!("{web} 30 IN A 10.96.0.10")]
    );
    // Asked again and again for over a second: every time the index's answer
    // with its own TTL, never a cached copy counting down.
    let first = std::time::Instant::now();
    let asked = eventually(Duration::from_secs(5), || {
        assert_eq!(
            lines(&srv.udp(web, A).answers),
            [format!("{web} 30 IN A 10.96.0.10")]
        );
        (first.elapsed() > Duration::from_millis(1100)).then_some(())
    });
    assert!(asked.is_some());

    let path = srv.path("cluster.yaml");
    let tmp = srv.path("cluster.yaml.new");
    std::fs::write(&tmp, cluster("10.96.0.99")).expect("write manifest");
    std::fs::rename(&tmp, &path).expect("replace manifest");
    // The manifests source polls every 250 ms; well within the 30 s a cached
    // answer would have lived.
    let after = eventually(Duration::from_secs(10), || {
        let m = srv.udp(web, A);
        (lines(&m.answers) == [format!("{web} 30 IN A 10.96.0.99")]).then_some(m)
    });
    assert!(
        after.is_some(),
        "the new address never showed: the cache hid the index"
    );
}

#[test]
fn other_answers_are_cached_and_counted_and_headless_answers_are_shuffled() {
    let srv = server();
    // whoami answers names outside cluster.local: cached, so the second
    // answer still carries the first query's client port.
    let first = srv.udp("who.example.", A);
    let second = srv.udp("who.example.", A);
    assert_eq!(lines(&first.additionals), lines(&second.additionals));
    assert!(second.additionals.iter().all(|r| r.ttl <= 5), "{second:?}");

    let (status, body) = srv.http_get(srv.health_port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    let hits = body
        .lines()
        .find(|l| l.starts_with("coredns_cache_hits_total{") && l.contains("type=\"success\""));
    assert_eq!(
        hits.map(|l| l.rsplit(' ').next().unwrap_or_default()),
        Some("1"),
        "{body}"
    );

    let pool = "pool.demo.svc.cluster.local.";
    let want: Vec<String> = (1..=5)
        .map(|i| format!("{pool} 30 IN A 10.1.0.{i}"))
        .collect();
    let mut orders = BTreeSet::new();
    for _ in 0..20 {
        let m = srv.udp(pool, A);
        assert_eq!(lines(&m.answers), want, "same set every time");
        orders.insert(
            m.answers
                .iter()
                .map(|r| r.data.to_string())
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        orders.len() > 1,
        "20 answers of 5 records came in one order"
    );
}
