//! The proxy's nftables programming against a real kernel, inside network
//! namespaces this test creates and removes (nothing outside them is
//! touched): the in-process sync loop, fed by the test API server, programs
//! namespace A through `ip netns exec A nft`. After every API change, A's
//! table (reached by incremental transactions) must equal a fresh full
//! rendering of the same objects loaded into namespace B; a table of
//! someone else's in A stays byte-identical throughout and after
//! `clusterdns proxy --cleanup`. Every golden script of the renderer loads.
//!
//! Needs root and `nft`/`ip`: in CI a missing one fails the test; elsewhere
//! it says SKIPPED loudly.

mod common;
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use clusterdns::proxy::metrics::Metrics;
use clusterdns::proxy::model::{self, Slice};
use clusterdns::proxy::nft::Tool;
use clusterdns::proxy::render::{Options, render};
use clusterdns::proxy::ruleset::Existing;
use clusterdns::proxy::select::Node;
use clusterdns::proxy::session::Session;
use clusterdns::proxy::shell::{self, Health, NodePortFlag, Settings};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::fixtures::poll_until;
use tokio_util::sync::CancellationToken;

/// A network namespace of this test's own, deleted on drop.
struct Netns(support::netns::Scratch);

impl Netns {
    fn new(tag: &str) -> Netns {
        Netns(support::netns::Scratch::create("cdns-nft", tag))
    }

    fn name(&self) -> &str {
        &self.0.0
    }

    fn nft(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name(), "nft"]).args(args);
        let out = match stdin {
            Some(text) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn nft");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(text.as_bytes())
                    .expect("write script");
                child.wait_with_output().expect("nft")
            }
            None => cmd.output().expect("nft"),
        };
        let text = String::from_utf8_lossy(if out.status.success() {
            &out.stdout
        } else {
            &out.stderr
        })
        .into_owned();
        (out.status.success(), text)
    }

    /// Our table as comparable JSON: handles dropped, chains and sets by
    /// name, rules in order, set elements sorted.
    fn table(&self) -> Option<Value> {
        let (ok, text) = self.nft(&["-j", "list", "table", "inet", "clusterdns"], None);
        if !ok {
            return None;
        }
        let v: Value = serde_json::from_str(&text).ok()?;
        let mut chains = serde_json::Map::new();
        let mut rules: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        let mut sets = serde_json::Map::new();
        for item in v["nftables"].as_array()? {
            if let Some(c) = item.get("chain") {
                let mut c = c.clone();
                c.as_object_mut()?.remove("handle");
                chains.insert(c["name"].as_str()?.to_owned(), c);
            } else if let Some(r) = item.get("rule") {
                rules
                    .entry(r["chain"].as_str()?.to_owned())
                    .or_default()
                    .push(r["expr"].clone());
            } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
                let mut s = s.clone();
                let o = s.as_object_mut()?;
                o.remove("handle");
                if let Some(Value::Array(elems)) = o.get_mut("elem") {
                    elems.sort_by_key(|e| e.to_string());
                }
                sets.insert(o["name"].as_str()?.to_owned(), s);
            }
        }
        Some(json!({"chains": chains, "rules": rules, "sets": sets}))
    }
}

/// Root with `ip` and `nft`, or a loud skip (a failure in CI).
fn privileged() -> bool {
    support::netns::available()
}

fn opts() -> Options {
    Options {
        cluster_cidrs: vec!["10.244.0.0/16".parse().expect("cidr")],
        ..Options::default()
    }
}

fn node() -> Node {
    Node {
        name: "node-a".into(),
        zone: None,
    }
}

/// The full rendering of what the API server holds, loaded into `reference`.
fn reference_table(server: &ApiServer, reference: &Netns) -> Value {
    let services: Vec<model::Service> = server
        .list::<Service>()
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .filter_map(|s: Service| model::Service::from_api(&s).ok().flatten())
        .collect();
    let slices = model::group(
        server
            .list::<EndpointSlice>()
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .filter_map(|s: EndpointSlice| Slice::from_api(&s).ok().flatten()),
    );
    let script = render(&services, &slices, &node(), &opts())
        .ruleset
        .full_script(&Existing::default());
    let _ = reference.nft(&["delete", "table", "inet", "clusterdns"], None);
    let (ok, err) = reference.nft(&["-f", "-"], Some(&script));
    assert!(ok, "reference load failed: {err}\n{script}");
    reference.table().expect("reference table")
}

fn service(name: &str, ip: &str, ports: Value, extra: Value) -> Value {
    let mut spec = json!({"clusterIP": ip, "clusterIPs": [ip], "ports": ports});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn slice(name: &str, service: &str, port: (&str, &str, u16), eps: &[(&str, &str)]) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, state)| {
            let (ready, serving, terminating) = match *state {
                "ready" => (true, true, false),
                "terminating" => (false, true, true),
                _ => (false, false, false),
            };
            json!({"addresses": [ip], "nodeName": "node-a",
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "default",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4",
           "ports": [{"name": port.0, "protocol": port.1, "port": port.2}],
           "endpoints": endpoints})
}

/// The in-process sync loop against `server`, programming `target` (no
/// periodic resync in a test's time), with its metrics.
fn sync_loop(
    server: &ApiServer,
    target: &Netns,
    min_sync_period: Duration,
) -> (Metrics, CancellationToken, tokio::task::JoinHandle<()>) {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry).expect("metrics");
    let settings = Settings {
        node: "node-a".into(),
        opts: opts(),
        nodeports: NodePortFlag::AllLocal,
        sync_period: Duration::from_secs(3600),
        min_sync_period,
        metrics: metrics.clone(),
        nft: Tool::in_netns(target.name(), "nft"),
        conntrack: Tool::in_netns(target.name(), "conntrack"),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(shell::run(
        server.client(),
        settings,
        Arc::new(Health::new(Duration::from_secs(3600))),
        stop.clone(),
    ));
    (metrics, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_syncs_leave_the_kernel_as_a_full_sync_would() {
    if !privileged() {
        return;
    }
    let target = Netns::new("a");
    let reference = Netns::new("b");
    // Someone else's table, which must never change.
    let foreign = "add table inet someone\nadd chain inet someone input { type filter hook input priority 0 ; policy accept ; }\nadd rule inet someone input tcp dport 22 accept\nadd table ip nat\nadd chain ip nat post { type nat hook postrouting priority 100 ; }\n";
    let (ok, err) = target.nft(&["-f", "-"], Some(foreign));
    assert!(ok, "{err}");
    let foreign_before = target.nft(&["list", "ruleset"], None).1;

    let server = ApiServer::start().await;
    let http = json!([{"name": "service-port", "protocol": "TCP", "port": 80}]);
    server.apply_json::<Service>(service(
        "nginx-service",
        "10.96.0.50",
        http.clone(),
        json!({}),
    ));
    let four: Vec<(String, &'static str)> = (2..=5)
        .map(|i| (format!("10.244.1.{i}"), "ready"))
        .collect();
    let apply_slice = |v: &[(String, &str)]| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        server.apply_json::<EndpointSlice>(slice(
            "nginx-1",
            "nginx-service",
            ("service-port", "TCP", 9376),
            &pairs,
        ));
    };
    apply_slice(&four);

    let (metrics, stop, task) = sync_loop(&server, &target, Duration::from_millis(10));

    let converge = |what: &'static str| {
        let want = reference_table(&server, &reference);
        let target = &target;
        async move {
            poll_until(what, || target.table().as_ref() == Some(&want)).await;
        }
    };
    converge("the first (full) sync").await;

    // One endpoint leaves; one turns terminating; none ready; back to four.
    let mut three = four.clone();
    three.pop();
    apply_slice(&three);
    converge("an endpoint removed").await;
    three[0].1 = "terminating";
    apply_slice(&three);
    converge("an endpoint terminating").await;
    apply_slice(&[("10.244.1.2".into(), "unready")]);
    converge("no usable endpoint: reject").await;
    apply_slice(&four);
    converge("four again").await;

    // A UDP service with affinity, then a NodePort, then both deleted.
    server.apply_json::<Service>(service(
        "dns",
        "10.96.0.10",
        json!([{"name": "dns", "protocol": "UDP", "port": 53}]),
        json!({"sessionAffinity": "ClientIP"}),
    ));
    server.apply_json::<EndpointSlice>(slice(
        "dns-1",
        "dns",
        ("dns", "UDP", 5353),
        &[("10.244.1.9", "ready")],
    ));
    converge("a UDP service with affinity").await;
    server.apply_json::<Service>(service(
        "nginx-service",
        "10.96.0.50",
        json!([{"name": "service-port", "protocol": "TCP", "port": 80, "nodePort": 30080}]),
        json!({"type": "NodePort"}),
    ));
    converge("a NodePort").await;
    assert!(server.delete::<Service>("default", "dns"));
    assert!(server.delete::<Service>("default", "nginx-service"));
    converge("services deleted").await;

    let partial = metrics.syncs.with_label_values(&["partial"]).get();
    assert!(partial >= 5, "incremental syncs: {partial}");
    assert_eq!(metrics.errors.get(), 0, "no failed transaction");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("sync loop stops")
        .expect("sync loop task");

    assert_eq!(
        support::netns::ruleset_without(
            &target.nft(&["list", "ruleset"], None).1,
            "inet",
            "clusterdns"
        ),
        foreign_before,
        "someone else's tables changed"
    );
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            target.name(),
            env!("CARGO_BIN_EXE_clusterdns"),
            "proxy",
            "--cleanup",
        ])
        .output()
        .expect("run cleanup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(target.table().is_none(), "our table is gone");
    assert_eq!(target.nft(&["list", "ruleset"], None).1, foreign_before);
}

#[test]
fn every_golden_script_loads_into_the_kernel() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("golden");
    let dir = common::repo().join("src/proxy/render/golden");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        let script = std::fs::read_to_string(&path).expect("read");
        let (ok, err) = ns.nft(&["-f", "-"], Some(&script));
        assert!(ok, "{}: {err}", path.display());
        assert!(ns.table().is_some());
        let (ok, err) = ns.nft(&["delete", "table", "inet", "clusterdns"], None);
        assert!(ok, "{err}");
        n += 1;
    }
    assert!(n >= 14, "only {n} golden scripts");
}

/// `--min-sync-period`: a change arriving right after a sync waits for the
/// period to pass (changes meanwhile are batched into that one sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_are_at_least_min_sync_period_apart() {
    if !privileged() {
        return;
    }
    let target = Netns::new("rate");
    let server = ApiServer::start().await;
    let http = json!([{"name": "p", "protocol": "TCP", "port": 80}]);
    server.apply_json::<Service>(service("web", "10.96.0.50", http, json!({})));
    let apply = |eps: &[(&str, &str)]| {
        server.apply_json::<EndpointSlice>(slice("web-1", "web", ("p", "TCP", 9376), eps));
    };
    apply(&[("10.244.1.2", "ready")]);
    let period = Duration::from_millis(800);
    let (metrics, stop, task) = sync_loop(&server, &target, period);
    let syncs = || {
        ["full", "partial"]
            .iter()
            .map(|k| metrics.syncs.with_label_values(&[k]).get())
            .sum::<u64>()
    };
    poll_until("the first sync", || syncs() >= 1).await;
    // Let any sync the initial lists still cause pass.
    tokio::time::sleep(period * 2).await;
    let before = syncs();
    apply(&[("10.244.1.2", "ready"), ("10.244.1.3", "ready")]);
    poll_until("the first change synced", || syncs() > before).await;
    let first = std::time::Instant::now();
    // Two more changes at once, right after that sync: one sync, a period later.
    apply(&[("10.244.1.3", "ready")]);
    apply(&[("10.244.1.3", "ready"), ("10.244.1.4", "ready")]);
    poll_until("the next changes synced", || syncs() > before + 1).await;
    let gap = first.elapsed();
    assert!(
        gap >= period - Duration::from_millis(100),
        "a sync only {gap:?} after the last, min-sync-period {period:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(syncs(), before + 2, "the two changes made one sync");
    let ruleset = target
        .nft(
            &["list", "map", "inet", "clusterdns", "endpoints-tcp"],
            None,
        )
        .1;
    assert!(
        ruleset.contains("10.244.1.4") && !ruleset.contains("10.244.1.2"),
        "{ruleset}"
    );
    stop.cancel();
    task.await.expect("sync loop");
}

/// The long-lived `nft -i` the partial syncs write to: each script applies
/// whole or not at all, an error is reported and does not end the
/// session, and a one-shot transaction in between is seen by it.
#[tokio::test]
async fn a_running_nft_session_applies_scripts_atomically() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("session");
    let (ok, err) = ns.nft(
        &["-f", "-"],
        Some("add table inet clusterdns\nadd set inet clusterdns s { type ipv4_addr ; }\n"),
    );
    assert!(ok, "{err}");
    let elements = || ns.nft(&["list", "set", "inet", "clusterdns", "s"], None).1;
    let mut session = Session::new(Tool::in_netns(ns.name(), "nft"));
    session
        .apply("add element inet clusterdns s { 10.0.0.1 }\nadd element inet clusterdns s { 10.0.0.2 }\n")
        .await
        .expect("applies");
    assert!(elements().contains("10.0.0.1") && elements().contains("10.0.0.2"));
    // One bad command: nothing of the script applies, the error says why.
    let err = session
        .apply("add element inet clusterdns s { 10.0.0.3 }\nadd element inet clusterdns nosuch { 10.0.0.4 }\n")
        .await
        .expect_err("a missing set fails the script");
    assert!(err.to_string().contains("nosuch"), "{err}");
    assert!(
        !elements().contains("10.0.0.3"),
        "all or nothing: {}",
        elements()
    );
    // The session goes on; a change made by another nft is seen.
    let (ok, err) = ns.nft(
        &["add", "element", "inet", "clusterdns", "s", "{ 10.0.0.5 }"],
        None,
    );
    assert!(ok, "{err}");
    session
        .apply("delete element inet clusterdns s { 10.0.0.5 }\n")
        .await
        .expect("sees the other's element");
    assert!(!elements().contains("10.0.0.5"));
    // Many in a row, each confirmed before the next.
    for i in 10..60 {
        session
            .apply(&format!("add element inet clusterdns s {{ 10.0.1.{i} }}\n"))
            .await
            .expect("applies");
    }
    assert_eq!(elements().matches("10.0.1.").count(), 50);
}

/// stderr and exit code of `clusterdns proxy` run through `prefix`.
fn proxy_refusal(prefix: &[&str], path: Option<&str>) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_clusterdns");
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(bin));
    cmd.args(prefix.iter().skip(1));
    if !prefix.is_empty() {
        cmd.arg(bin);
    }
    cmd.args(["proxy", "--endpoint", "http://127.0.0.1:9"]);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().expect("run clusterdns proxy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_nft_the_proxy_says_so_in_one_line() {
    let (code, stderr) = proxy_refusal(&[], Some("/nonexistent"));
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nft not found"), "{stderr}");
}

#[test]
fn without_cap_net_admin_the_proxy_says_so_in_one_line() {
    if !privileged() || common::require("setpriv").is_none() {
        return;
    }
    // As nobody, without capabilities: nft may not read or change rules.
    let (code, stderr) = proxy_refusal(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
        None,
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
}
