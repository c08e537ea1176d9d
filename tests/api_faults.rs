//! API faults: the real binary watches the in-process test API server while it
//! misbehaves (5xx, watch streams cut mid-event, bodies that are not JSON) or
//! serves objects no real cluster would hold (missing required fields, 10,000
//! ports, invalid IPs, 300-character names, duplicate endpoints, conflicting
//! slices). A query loop over real UDP runs through every fault and checks
//! that the answers for unaffected services never change; after each fault
//! clears, the names it touched converge (bounded polling). Nothing panics:
//! the process is alive at the end and every bad object is named in its log.

mod common;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{TestServer, eventually, lines};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::faults::Fault;

/// Services that no fault touches: `s0..s5`, ClusterIP `10.0.1.N`, and the
/// headless `pool` with endpoints `10.3.0.1..3`.
const STABLE: usize = 6;

fn svc_json(name: &str, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })
}

fn svc(name: &str, ip: &str) -> Service {
    serde_json::from_value(svc_json(name, ip)).expect("service")
}

fn slice_json(name: &str, service: &str, ips: &[&str]) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    json!({
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

fn slice(name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
    serde_json::from_value(slice_json(name, service, ips)).expect("slice")
}

fn a(name: &str) -> String {
    format!("{name}.default.svc.cluster.local.")
}

/// What the stable names must answer, always: (name, sorted answer lines).
fn stable_answers() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = (0..STABLE)
        .map(|i| {
            let name = a(&format!("s{i}"));
            let line = format!("{name} 5 IN A 10.0.1.{}", i + 1);
            (name, vec![line])
        })
        .collect();
    let pool = a("pool");
    let mut pool_lines: Vec<String> = (1..=3)
        .map(|i| format!("{pool} 5 IN A 10.3.0.{i}"))
        .collect();
    pool_lines.sort();
    out.push((pool, pool_lines));
    out
}

fn seed(api: &ApiServer) {
    api.apply(
        &serde_json::from_value::<Namespace>(json!({"metadata": {"name": "default"}})).expect("ns"),
    );
    for i in 0..STABLE {
        api.apply(&svc(&format!("s{i}"), &format!("10.0.1.{}", i + 1)));
    }
    api.apply_json::<Service>(json!({
        "metadata": {"name": "pool", "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}
    }));
    api.apply(&slice(
        "pool-1",
        "pool",
        &["10.3.0.1", "10.3.0.2", "10.3.0.3"],
    ));
}

/// A thread querying every stable name over UDP until stopped; it records
/// every answer that differs from the expected one.
struct QueryLoop {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    handle: JoinHandle<Vec<String>>,
}

impl QueryLoop {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let want = stable_answers();
        let handle = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                let mut wrong = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for (name, expected) in &want {
                        let m = common::udp(addr, &common::query(name, RecordType::A));
                        let mut got = lines(&m.answers);
                        got.sort();
                        let right =
                            m.metadata.response_code == ResponseCode::NoError && &got == expected;
                        if !right && wrong.len() < 20 {
                            wrong.push(format!("{name}: {:?} {got:?}", m.metadata.response_code));
                        }
                    }
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
                wrong
            })
        };
        QueryLoop {
            stop,
            rounds,
            handle,
        }
    }

    /// Wait until the loop has completed `n` more rounds (so it ran through
    /// what just happened), at most 20 s.
    fn advance(&self, n: usize) {
        let target = self.rounds.load(Ordering::Relaxed) + n;
        let done = eventually(Duration::from_secs(20), || {
            (self.rounds.load(Ordering::Relaxed) >= target).then_some(())
        });
        assert!(done.is_some(), "the query loop stalled");
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let wrong = self.handle.join().expect("query loop");
        (self.rounds.load(Ordering::Relaxed), wrong)
    }
}

/// Poll (at most 20 s) until `name` answers exactly `want` for `qtype`.
fn converges(srv: &TestServer, name: &str, qtype: RecordType, want: &[String]) {
    let mut want = want.to_vec();
    want.sort();
    let reached = eventually(Duration::from_secs(20), || {
        let mut got = lines(&srv.udp(name, qtype).answers);
        got.sort();
        (got == want).then_some(())
    });
    assert!(
        reached.is_some(),
        "{name} {qtype} never converged to {want:?}; now {:?}",
        srv.udp(name, qtype)
    );
}

fn converges_a(srv: &TestServer, name: &str, ip: &str) {
    let q = a(name);
    converges(srv, &q, RecordType::A, &[format!("{q} 5 IN A {ip}")]);
}

fn count(api: &ApiServer, prefix: &str) -> usize {
    api.request_log()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

fn logged(api: &ApiServer, prefix: &str) -> bool {
    api.request_log().iter().any(|l| l.starts_with(prefix))
}

/// Poll (at most 20 s) until the API server logged a request starting with `prefix`.
fn wait_logged(api: &ApiServer, prefix: &str) {
    let seen = eventually(Duration::from_secs(20), || {
        logged(api, prefix).then_some(())
    });
    assert!(
        seen.is_some(),
        "never logged {prefix}: {:?}",
        api.request_log()
    );
}

struct Setup {
    _rt: tokio::runtime::Runtime,
    api: ApiServer,
    srv: TestServer,
    queries: QueryLoop,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(ApiServer::start());
    seed(&api);
    let srv = TestServer::start(
        &format!(
            r#"
cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        endpoint {}
    }}
}}
"#,
            api.url()
        ),
        &[],
    );
    for (name, want) in stable_answers() {
        converges(&srv, &name, RecordType::A, &want);
    }
    let queries = QueryLoop::start(srv.addr);
    Setup {
        _rt: rt,
        api,
        srv,
        queries,
    }
}

/// The loop saw only the expected answers, and the process is alive.
fn teardown(mut s: Setup) {
    s.queries.advance(2);
    let (rounds, wrong) = s.queries.finish();
    assert!(rounds > 0);
    assert!(
        wrong.is_empty(),
        "unaffected services changed their answers: {wrong:?}"
    );
    assert!(
        s.srv.child.try_wait().expect("process status").is_none(),
        "clusterdns exited:\n{}",
        s.srv.log()
    );
}

#[test]
fn protocol_faults_leave_other_answers_alone_and_changes_converge_after() {
    let s = setup();
    let (api, srv) = (&s.api, &s.srv);

    // 500s on the next requests of both kinds; a service changes meanwhile.
    // (Each change is made once the watches have failed to resume, so it can
    // only arrive through the recovery, not through the old stream.)
    api.inject::<Service>(Fault::Status(500), Some(2));
    api.inject::<EndpointSlice>(Fault::Status(500), Some(2));
    api.close_watches();
    wait_logged(api, "FAULT 500 WATCH services");
    wait_logged(api, "FAULT 500 WATCH endpointslices");
    api.apply(&svc("v-500", "10.9.0.1"));
    s.queries.advance(3);
    converges_a(srv, "v-500", "10.9.0.1");

    // A watch stream cut in the middle of an event's line.
    api.inject::<Service>(Fault::CutWatch, Some(1));
    api.apply(&svc("v-cut", "10.9.0.2"));
    converges_a(srv, "v-cut", "10.9.0.2");
    assert!(logged(api, "FAULT CutWatch services"));

    // A watch line that is not JSON, before a real event.
    api.inject::<Service>(Fault::MalformedEvent, Some(1));
    api.apply(&svc("v-junk", "10.9.0.3"));
    converges_a(srv, "v-junk", "10.9.0.3");
    assert!(logged(api, "FAULT MalformedEvent services"));

    // A list body that is not JSON, on the relist forced by a 410.
    api.inject::<Service>(Fault::MalformedList, Some(1));
    api.compact();
    api.close_watches();
    wait_logged(api, "FAULT MalformedList services");
    api.apply(&svc("v-list", "10.9.0.4"));
    converges_a(srv, "v-list", "10.9.0.4");

    // An outage of 503s until cleared.
    api.inject::<Service>(Fault::Status(503), None);
    api.close_watches();
    wait_logged(api, "FAULT 503 WATCH services");
    api.apply(&svc("v-503", "10.9.0.5"));
    s.queries.advance(5);
    api.clear_faults();
    converges_a(srv, "v-503", "10.9.0.5");

    teardown(s);
}

#[test]
fn bad_objects_are_skipped_by_name_and_the_rest_keeps_answering() {
    let s = setup();
    let (api, srv) = (&s.api, &s.srv);
    let long_name = "x".repeat(300);

    // Objects the typed structs reject: a port that is text, endpoints that
    // are not a list.
    api.apply_json::<Service>(json!({
        "metadata": {"name": "bad-port", "namespace": "default"},
        "spec": {"clusterIP": "10.8.0.1", "ports": [{"port": "eighty"}]}
    }));
    api.apply_json::<EndpointSlice>(json!({
        "metadata": {"name": "junk-slice", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "pool"}},
        "addressType": "IPv4", "endpoints": "none"
    }));
    // Objects missing required fields: a slice without addressType and
    // endpoints, a Service without spec.
    api.apply_json::<EndpointSlice>(json!({
        "metadata": {"name": "bad-slice", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "pool"}},
    }));
    api.apply_json::<Service>(json!({"metadata": {"name": "no-spec", "namespace": "default"}}));
    // Objects that decode but hold absurd values.
    api.apply_json::<Service>(svc_json(&long_name, "10.8.0.2"));
    api.apply_json::<Service>(svc_json("bad-ip", "999.1.2.3"));
    let ports: Vec<Value> = (1..=10_000)
        .map(|p| json!({"name": format!("p{p}"), "port": p, "protocol": "TCP"}))
        .collect();
    api.apply_json::<Service>(json!({
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {"clusterIP": "10.8.0.3", "clusterIPs": ["10.8.0.3"], "ports": ports}
    }));
    api.apply_json::<Service>(json!({
        "metadata": {"name": "dup", "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}
    }));
    api.apply_json::<EndpointSlice>(slice_json(
        "dup-1",
        "dup",
        &["10.4.0.1", "10.4.0.1", "not-an-ip", "10.4.0.2"],
    ));
    // Two slices for `dup` that disagree about ports, sharing an address.
    let mut other = slice_json("dup-2", "dup", &["10.4.0.2", "10.4.0.3"]);
    other["ports"] = json!([{"name": "http", "port": 9090, "protocol": "TCP"}]);
    api.apply_json::<EndpointSlice>(other);
    // A good service next to them must still arrive, live and through a relist.
    api.apply(&svc("after-bad", "10.8.0.9"));
    converges_a(srv, "after-bad", "10.8.0.9");
    // A relist (410 Gone) with the bad objects in the list must complete:
    // the watcher watches again only after a list succeeded.
    for plural in ["services", "endpointslices"] {
        let lists = count(api, &format!("LIST {plural}"));
        api.compact();
        api.close_watches();
        let resumed = eventually(Duration::from_secs(20), || {
            let log = api.request_log();
            let list = format!("LIST {plural}");
            let relisted = log.iter().filter(|l| l.starts_with(&list)).count() > lists;
            let watching = log
                .iter()
                .rev()
                .take_while(|l| !l.starts_with(&list))
                .any(|l| l.starts_with(&format!("WATCH {plural}")));
            (relisted && watching).then_some(())
        });
        assert!(
            resumed.is_some(),
            "the {plural} relist never completed: {:?}",
            api.request_log()
        );
    }
    api.apply(&svc("after-relist", "10.8.0.10"));
    converges_a(srv, "after-relist", "10.8.0.10");

    // What the absurd objects answer: kept where DNS can use them.
    converges_a(srv, "big", "10.8.0.3");
    let srv_name = format!("_p9999._tcp.{}", a("big"));
    let m = srv.udp(&srv_name, RecordType::SRV);
    assert_eq!(
        lines(&m.answers),
        [format!(
            "{srv_name} 5 IN SRV 0 100 9999 big.default.svc.cluster.local."
        )]
    );
    let dup = a("dup");
    converges(
        srv,
        &dup,
        RecordType::A,
        &[
            format!("{dup} 5 IN A 10.4.0.1"),
            format!("{dup} 5 IN A 10.4.0.2"),
            format!("{dup} 5 IN A 10.4.0.3"),
        ],
    );
    for name in ["bad-port", "bad-ip", "no-spec"] {
        let m = srv.udp(&a(name), RecordType::A);
        assert!(m.answers.is_empty(), "{name}: {m:?}");
    }
    s.queries.advance(3);

    // Each skipped object is named in the log.
    let log = srv.log();
    for name in [
        "default/bad-port",
        "default/junk-slice",
        "default/bad-slice",
        &long_name[..40],
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("object skipped") && l.contains(name)),
            "no log line names {name}:\n{log}"
        );
    }

    // Fixed, they converge.
    api.apply(&svc("bad-port", "10.8.0.1"));
    api.apply(&svc("bad-ip", "10.8.0.4"));
    converges_a(srv, "bad-port", "10.8.0.1");
    converges_a(srv, "bad-ip", "10.8.0.4");

    teardown(s);
}
