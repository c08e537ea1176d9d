//! Live cluster state through the Kubernetes API: the real binary watches the
//! in-process test API server (real HTTP list/watch) and its DNS answers
//! follow every change, outage and relist.

mod common;
mod support;

use std::time::Duration;

use common::{TestServer, eventually, lines};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use support::apiserver::ApiServer;

/// The API server runs on its own runtime so the test thread can block on DNS.
struct Api {
    rt: tokio::runtime::Runtime,
    server: ApiServer,
}

impl Api {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(ApiServer::start());
        Self { rt, server }
    }
}

fn ns(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace")
}

fn svc(ns: &str, name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))
    .expect("service")
}

fn slice(ns: &str, name: &str, service: &str, ips: &[String], ready: bool) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": ready}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

fn ips(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.2.{}.{}", i / 200, i % 200 + 1))
        .collect()
}

/// A Corefile reaching the API through `access` (an `endpoint` or `kubeconfig` line).
fn corefile(access: &str, extra: &str) -> String {
    format!(
        r#"
cluster.local:{{PORT}} in-addr.arpa:{{PORT}} {{
    bind 127.0.0.1
    ready 127.0.0.1:{{READY}}
    prometheus 127.0.0.1:{{HEALTH}}
    kubernetes cluster.local in-addr.arpa {{
        {access}
        {extra}
    }}
}}
"#
    )
}

fn start_dns(api: &Api, extra: &str) -> TestServer {
    TestServer::start(
        &corefile(&format!("endpoint {}", api.server.url()), extra),
        &[],
    )
}

/// Poll until `check` holds for the answer to (name, qtype), at most 10 s.
fn until(
    srv: &TestServer,
    name: &str,
    qtype: RecordType,
    check: impl Fn(&Message) -> bool,
) -> Message {
    eventually(Duration::from_secs(10), || {
        let m = srv.udp(name, qtype);
        check(&m).then_some(m)
    })
    .unwrap_or_else(|| panic!("{name} {qtype} never reached the expected answer"))
}

fn seed(api: &Api) {
    api.server.apply(&ns("default"));
    api.server.apply(&svc("default", "web", "10.0.0.10"));
    api.server
        .apply(&slice("default", "web-1", "web", &ips(1), true));
}

#[test]
fn creates_updates_and_deletes_reach_dns() {
    let api = Api::start();
    seed(&api);
    let srv = start_dns(&api, "");
    let r = srv.udp("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["web.default.svc.cluster.local. 5 IN A 10.0.0.10"]
    );

    // ClusterIP change (the PTR follows).
    api.server.apply(&svc("default", "web", "10.0.0.11"));
    until(&srv, "web.default.svc.cluster.local.", RecordType::A, |m| {
        lines(&m.answers) == ["web.default.svc.cluster.local. 5 IN A 10.0.0.11"]
    });
    until(&srv, "11.0.0.10.in-addr.arpa.", RecordType::PTR, |m| {
        m.answers.len() == 1
    });

    // A headless service scaled 1 → 50 → 0.
    api.server.apply(
        &serde_json::from_value::<Service>(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}
        }))
        .expect("svc"),
    );
    for n in [1usize, 50] {
        api.server
            .apply(&slice("default", "db-1", "db", &ips(n), true));
        eventually(Duration::from_secs(10), || {
            (srv.tcp("db.default.svc.cluster.local.", RecordType::A)
                .answers
                .len()
                == n)
                .then_some(())
        })
        .unwrap_or_else(|| panic!("never saw {n} endpoints over TCP"));
    }
    api.server.apply(&slice("default", "db-1", "db", &[], true));
    until(&srv, "db.default.svc.cluster.local.", RecordType::A, |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    });

    // Readiness flips: a not-ready endpoint leaves the answer, and comes back.
    api.server
        .apply(&slice("default", "db-1", "db", &ips(2), false));
    until(&srv, "db.default.svc.cluster.local.", RecordType::A, |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    });
    api.server
        .apply(&slice("default", "db-1", "db", &ips(2), true));
    until(&srv, "db.default.svc.cluster.local.", RecordType::A, |m| {
        m.answers.len() == 2
    });

    // Delete.
    assert!(api.server.delete::<Service>("default", "web"));
    until(&srv, "web.default.svc.cluster.local.", RecordType::A, |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    });
}

/// Assert the answer is exactly the last known state: no SERVFAIL, no NXDOMAIN.
fn assert_known(srv: &TestServer, want_ip: &str) {
    let r = srv.udp("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        lines(&r.answers),
        [format!("web.default.svc.cluster.local. 5 IN A {want_ip}")]
    );
}

#[test]
fn an_api_outage_keeps_the_last_known_answers_and_converges_after() {
    let api = Api::start();
    seed(&api);
    let srv = start_dns(&api, "");
    assert_known(&srv, "10.0.0.10");

    api.rt.block_on(api.server.stop());
    // Change state while the API is unreachable: DNS must keep the old truth
    // through at least two failed retries of the Service watch.
    api.server.apply(&svc("default", "web", "10.0.0.12"));
    let retried = eventually(Duration::from_secs(20), || {
        assert_known(&srv, "10.0.0.10");
        (service_restarts(&srv) >= 2).then_some(())
    });
    assert!(retried.is_some(), "the Service watch never retried");
    api.rt.block_on(api.server.restart());
    until(&srv, "web.default.svc.cluster.local.", RecordType::A, |m| {
        lines(&m.answers) == ["web.default.svc.cluster.local. 5 IN A 10.0.0.12"]
    });
}

/// `clusterdns_watch_restarts_total{kind="Service"}` from /metrics (0 if absent).
fn service_restarts(srv: &TestServer) -> u64 {
    let metrics = srv
        .http_get(srv.health_port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("clusterdns_watch_restarts_total{kind=\"Service\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_410_gone_relist_shows_no_wrong_answer_to_a_tight_query_loop() {
    let api = Api::start();
    seed(&api);
    for i in 0..200 {
        api.server.apply(&svc(
            "default",
            &format!("s{i}"),
            &format!("10.1.{}.{}", i / 200, i % 200 + 1),
        ));
    }
    let srv = start_dns(&api, "");
    assert_known(&srv, "10.0.0.10");
    let lists_before = api
        .server
        .request_log()
        .iter()
        .filter(|l| l.starts_with("LIST services"))
        .count();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let looper = {
        let (stop, count) = (stop.clone(), count.clone());
        let addr = srv.addr;
        std::thread::spawn(move || {
            let mut queries = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for name in [
                    "web.default.svc.cluster.local.",
                    "s150.default.svc.cluster.local.",
                ] {
                    let m = common::udp(addr, &common::query(name, RecordType::A));
                    assert_eq!(
                        m.metadata.response_code,
                        ResponseCode::NoError,
                        "{name} during relist"
                    );
                    assert_eq!(m.answers.len(), 1, "{name} during relist");
                    queries += 1;
                    count.store(queries, std::sync::atomic::Ordering::Relaxed);
                }
            }
            queries
        })
    };
    // Let the loop run `n` more queries (bounded).
    let advance = |n: u32| {
        let target = count.load(std::sync::atomic::Ordering::Relaxed) + n;
        let ran = eventually(Duration::from_secs(20), || {
            (count.load(std::sync::atomic::Ordering::Relaxed) >= target).then_some(())
        });
        assert!(ran.is_some(), "the query loop stalled");
    };
    advance(20);
    api.server.compact();
    api.server.close_watches();
    let relisted = eventually(Duration::from_secs(15), || {
        let n = api
            .server
            .request_log()
            .iter()
            .filter(|l| l.starts_with("LIST services"))
            .count();
        (n > lists_before).then_some(n)
    });
    // The relist is logged when it starts: let the loop run through its swap.
    let relisted_services = eventually(Duration::from_secs(15), || {
        let log = api.server.request_log();
        let lists = log
            .iter()
            .filter(|l| l.starts_with("LIST services"))
            .count();
        let watching = log
            .iter()
            .rev()
            .take_while(|l| !l.starts_with("LIST services"))
            .any(|l| l.starts_with("WATCH services"));
        (lists > lists_before && watching).then_some(())
    });
    assert!(
        relisted_services.is_some(),
        "the Service watch resumed after its relist"
    );
    advance(20);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let queries = looper.join().expect("no wrong answer during the relist");
    assert!(
        relisted.is_some(),
        "the watcher relisted after 410: {:?}",
        api.server.request_log()
    );
    assert!(queries > 20, "the loop ran ({queries} queries)");
}

#[test]
fn tls_with_a_bearer_token_works_and_a_wrong_token_is_not_ready_not_a_crash() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(ApiServer::start_tls("s3cret"));
    server.apply(&ns("default"));
    server.apply(&svc("default", "web", "10.0.0.10"));
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.kubeconfig");
    let bad = dir.path().join("bad.kubeconfig");
    server.write_kubeconfig(&good, Some("s3cret"));
    server.write_kubeconfig(&bad, Some("wrong"));

    let ok = TestServer::start(
        &corefile(&format!("kubeconfig {}", good.display()), ""),
        &[],
    );
    let r = ok.udp("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["web.default.svc.cluster.local. 5 IN A 10.0.0.10"]
    );

    let mut denied = TestServer::spawn(
        &corefile(
            &format!("kubeconfig {}", bad.display()),
            "startup_timeout 1s",
        ),
        &[],
    );
    let ready = eventually(Duration::from_secs(10), || {
        denied.http_get(denied.ready_port, "/ready")
    });
    assert_eq!(ready, Some((503, "kubernetes".to_string())));
    let r = eventually(Duration::from_secs(10), || {
        let m = common::udp(
            denied.addr,
            &common::query("web.default.svc.cluster.local.", RecordType::A),
        );
        Some(m)
    })
    .expect("answer");
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::ServFail,
        "never NXDOMAIN without data"
    );
    assert!(
        denied.child.try_wait().expect("status").is_none(),
        "still running"
    );
}

#[test]
fn pods_verified_answers_only_pods_that_exist() {
    let api = Api::start();
    seed(&api);
    api.server.apply(
        &serde_json::from_value::<Pod>(json!({
            "metadata": {"name": "p1", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}]}
        }))
        .expect("pod"),
    );
    let srv = start_dns(&api, "pods verified");
    let yes = srv.udp("10-244-0-7.default.pod.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&yes.answers),
        ["10-244-0-7.default.pod.cluster.local. 5 IN A 10.244.0.7"]
    );
    let no = srv.udp("10-244-0-8.default.pod.cluster.local.", RecordType::A);
    assert_eq!(no.metadata.response_code, ResponseCode::NXDomain);
    assert!(api.server.delete::<Pod>("default", "p1"));
    until(
        &srv,
        "10-244-0-7.default.pod.cluster.local.",
        RecordType::A,
        |m| m.metadata.response_code == ResponseCode::NXDomain,
    );
}

#[test]
fn programming_latency_is_measured_from_the_trigger_time_annotation() {
    let api = Api::start();
    seed(&api);
    let srv = start_dns(&api, "");
    let mut s = slice("default", "web-1", "web", &ips(3), true);
    let trigger = k8s_openapi::jiff::Timestamp::now().to_string();
    s.metadata.annotations = Some(
        [(
            "endpoints.kubernetes.io/last-change-trigger-time".to_string(),
            trigger,
        )]
        .into_iter()
        .collect(),
    );
    api.server.apply(&s);
    until(
        &srv,
        "10-2-0-3.web.default.svc.cluster.local.",
        RecordType::A,
        |m| m.answers.len() == 1,
    );
    let metrics = srv
        .http_get(srv.health_port, "/metrics")
        .expect("metrics")
        .1;
    assert!(
        metrics.contains("coredns_kubernetes_dns_programming_duration_seconds_count{service_kind=\"cluster_ip\"} 1"),
        "{metrics}"
    );
}
