//! `clusterdns proxy` end to end, in network namespaces the test builds and
//! removes (support::netns): a node namespace runs the real proxy binary
//! against the in-process test API server; four pod namespaces serve their
//! names on TCP 9376 (and UDP 5353); a client namespace is routed through
//! the node. Checked, with real `curl` and UDP sockets:
//!
//! - the seed Service (ClusterIP 10.96.0.50:80 → 9376) reaches all four pods
//!   from the client and from the node, 200 requests each, none failing,
//!   every pod ≥ 10%; a pod reaches the Service too (hairpin);
//! - the NodePort answers on the node's address;
//! - an endpoint removed from the slice leaves the rotation (time printed);
//! - a Service without endpoints is refused at once (curl exit 7, not a
//!   timeout); ClientIP affinity pins a client to one pod;
//! - a UDP client with a fixed source port reaches the new pod after its
//!   endpoint is replaced, although the old pod still answers (stale
//!   conntrack entries deleted);
//! - someone else's nftables table is byte-identical before, during and
//!   after, including after `clusterdns proxy --cleanup`.

mod common;
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::netns::{
    self, CLUSTER_CIDR, NODE_IP, Names, PODS, SERVE_HOSTNAME_PORT, Spawned, Topology, pod_ip,
    pod_name,
};

support::netns::netns_roles!();

const OUTER: &str = "proxy_balances_services_through_real_nftables";
const INNER: &str = "proxy_inside_node";
const UDP_PORT: u16 = 5353;
const REQUESTS: usize = 200;

const WEB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 50);
const EMPTY: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 60);
const STICKY: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 70);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const NODE_PORT: u16 = 30080;

#[test]
fn proxy_balances_services_through_real_nftables() {
    if !netns::available() {
        return;
    }
    let mut topo = Topology::build("proxy");
    topo.serve_hostname(Some(UDP_PORT));
    topo.run_inside_node(INNER, &[], Duration::from_secs(120))
        .assert_passed(INNER);
}

fn service(name: &str, ip: Ipv4Addr, port: Value, extra: Value) -> Value {
    let mut spec = json!({"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                          "ports": [port]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn slice(service: &str, port: (&str, &str, u16), pods: &[usize]) -> Value {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|&i| {
            json!({"addresses": [pod_ip(i).to_string()], "nodeName": "node-a",
                   "conditions": {"ready": true, "serving": true, "terminating": false},
                   "targetRef": {"kind": "Pod", "namespace": "default", "name": pod_name(i)}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{service}-1"), "namespace": "default",
                        "labels": {"kubernetes.io/service-name": service},
                        "annotations": {"endpoints.kubernetes.io/last-change-trigger-time":
                                        k8s_openapi::jiff::Timestamp::now().to_string()}},
           "addressType": "IPv4",
           "ports": [{"name": port.0, "protocol": port.1, "port": port.2}],
           "endpoints": endpoints})
}

fn url(ip: Ipv4Addr, port: u16) -> String {
    format!("http://{ip}:{port}/")
}

/// All `results` succeeded, from every pod, each ≥ 10%.
fn assert_spread(from: &str, results: &[Result<String, String>]) {
    let counts = netns::tally(results);
    assert_eq!(counts.get("(failed)"), None, "{from}: {counts:?}");
    for i in 0..PODS {
        let n = counts.get(&pod_name(i)).copied().unwrap_or(0);
        assert!(
            n * 10 >= results.len(),
            "{from}: {} got {n}: {counts:?}",
            pod_name(i)
        );
    }
}

/// Every table but ours, as `nft list ruleset` prints it.
fn foreign_tables(ns: &str) -> String {
    netns::ruleset_without(
        &netns::exec_ok(ns, "nft", &["list", "ruleset"]),
        "inet",
        "clusterdns",
    )
}

#[test]
#[ignore = "run by proxy_balances_services_through_real_nftables inside the node namespace"]
fn proxy_inside_node() {
    let Some(names) = Names::inside(OUTER) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(ApiServer::start());
    let _guard = rt.enter();
    inside(&names, &server);
}

fn inside(names: &Names, server: &ApiServer) {
    // Someone else's table in the node, before the proxy starts.
    netns::nft_apply(
        &names.node,
        "add table inet someone\n\
         add chain inet someone input { type filter hook input priority 0 ; policy accept ; }\n\
         add rule inet someone input tcp dport 22 accept\n",
    );
    let foreign = foreign_tables(&names.node);

    let all: Vec<usize> = (0..PODS).collect();
    let http =
        json!({"name": "service-port", "protocol": "TCP", "port": 80, "nodePort": NODE_PORT});
    server.apply_json::<Service>(service(
        "nginx-service",
        WEB,
        http,
        json!({"type": "NodePort"}),
    ));
    server.apply_json::<EndpointSlice>(slice(
        "nginx-service",
        ("service-port", "TCP", SERVE_HOSTNAME_PORT),
        &all,
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, None);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterdns"));
    cmd.arg("proxy")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--hostname-override", "node-a"])
        .args(["--cluster-cidr", CLUSTER_CIDR])
        .args(["--nodeport-addresses", &format!("{NODE_IP}/32")]);
    // The defaults :10249 (metrics) and :10256 (healthz) are free in this fresh namespace.
    let mut proxy = Spawned::start(cmd, "clusterdns proxy");

    // Up: the seed Service from the client, the node and a pod.
    let web = url(WEB, 80);
    netns::eventually(Duration::from_secs(20), || {
        netns::curl(&names.client, std::slice::from_ref(&web))[0]
            .clone()
            .ok()
    })
    .unwrap_or_else(|| panic!("the Service never answered\n{}", proxy.log()));
    assert_spread("client", &netns::curl_repeat(&names.client, &web, REQUESTS));
    assert_spread("node", &netns::curl_repeat(&names.node, &web, REQUESTS));
    let from_pod = netns::tally(&netns::curl_repeat(&names.pods[1], &web, 60));
    assert_eq!(
        from_pod.get("(failed)"),
        None,
        "pod-2 → Service: {from_pod:?}"
    );
    assert!(
        from_pod.contains_key(&pod_name(1)),
        "hairpin to itself: {from_pod:?}"
    );

    // The NodePort on the node's address.
    let np = netns::tally(&netns::curl_repeat(
        &names.client,
        &url(NODE_IP, NODE_PORT),
        40,
    ));
    assert_eq!(np.get("(failed)"), None, "NodePort: {np:?}");
    assert!(np.len() >= 2, "NodePort balances: {np:?}");

    // An endpoint leaves the slice: it leaves the rotation.
    let removed_at = Instant::now();
    server.apply_json::<EndpointSlice>(slice(
        "nginx-service",
        ("service-port", "TCP", SERVE_HOSTNAME_PORT),
        &all[..3],
    ));
    netns::eventually(Duration::from_secs(10), || {
        let counts = netns::tally(&netns::curl_repeat(&names.client, &web, 40));
        (!counts.contains_key(&pod_name(3)) && !counts.contains_key("(failed)")).then_some(())
    })
    .expect("pod-4 still answers after leaving the slice");
    eprintln!(
        "MEASURED: endpoint removed → out of rotation (40 requests clean) after {:?}",
        removed_at.elapsed()
    );

    // No endpoints: refused at once, from the client and the node.
    server.apply_json::<Service>(service(
        "empty",
        EMPTY,
        json!({"name": "http", "protocol": "TCP", "port": 80}),
        json!({}),
    ));
    netns::eventually(Duration::from_secs(10), || {
        let r = netns::curl(&names.client, &[url(EMPTY, 80)]);
        r[0].as_ref()
            .is_err_and(|e| e.contains("curl exit 7"))
            .then_some(())
    })
    .expect("a Service without endpoints is refused (curl exit 7)");
    let r = netns::curl(&names.node, &[url(EMPTY, 80)]);
    assert!(
        r[0].as_ref().is_err_and(|e| e.contains("curl exit 7")),
        "node: {r:?}"
    );

    // ClientIP affinity: one client, one pod.
    server.apply_json::<Service>(service(
        "sticky",
        STICKY,
        json!({"name": "service-port", "protocol": "TCP", "port": 80}),
        json!({"sessionAffinity": "ClientIP"}),
    ));
    server.apply_json::<EndpointSlice>(slice(
        "sticky",
        ("service-port", "TCP", SERVE_HOSTNAME_PORT),
        &all,
    ));
    let sticky = url(STICKY, 80);
    netns::eventually(Duration::from_secs(10), || {
        netns::curl(&names.client, std::slice::from_ref(&sticky))[0]
            .clone()
            .ok()
    })
    .expect("the sticky Service answers");
    let pinned = netns::tally(&netns::curl_repeat(&names.client, &sticky, 50));
    assert_eq!(
        pinned.len(),
        1,
        "affinity pins the client to one pod: {pinned:?}"
    );
    assert!(pinned.keys().all(|k| k.starts_with("pod-")), "{pinned:?}");

    // UDP: the endpoint is replaced while the old pod still answers; the
    // same client socket reaches the new one (stale conntrack entries deleted).
    server.apply_json::<Service>(service(
        "dns",
        DNS,
        json!({"name": "dns", "protocol": "UDP", "port": 53}),
        json!({}),
    ));
    server.apply_json::<EndpointSlice>(slice("dns", ("dns", "UDP", UDP_PORT), &[0]));
    let target = SocketAddrV4::new(DNS, 53);
    netns::eventually(Duration::from_secs(10), || {
        let r = netns::udp_ask(&names.client, target, Some(40053), 1);
        (r == vec![Some(pod_name(0))]).then_some(())
    })
    .expect("the UDP Service answers from pod-1");
    server.apply_json::<EndpointSlice>(slice("dns", ("dns", "UDP", UDP_PORT), &[1]));
    let replaced_at = Instant::now();
    netns::eventually(Duration::from_secs(10), || {
        let r = netns::udp_ask(&names.client, target, Some(40053), 1);
        (r == vec![Some(pod_name(1))]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the client stayed on pod-1 (stale conntrack)\n{}",
            proxy.log()
        )
    });
    eprintln!(
        "MEASURED: UDP endpoint replaced → same client socket on the new pod after {:?}",
        replaced_at.elapsed()
    );

    // externalTrafficPolicy: Local — the health-check node port says whether
    // this node has endpoints, and the NodePort serves from local ones.
    server.apply_json::<Service>(service(
        "local",
        Ipv4Addr::new(10, 96, 0, 80),
        json!({"name": "service-port", "protocol": "TCP", "port": 80, "nodePort": 30090}),
        json!({"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000}),
    ));
    server.apply_json::<EndpointSlice>(slice(
        "local",
        ("service-port", "TCP", SERVE_HOSTNAME_PORT),
        &all,
    ));
    let hc = std::net::SocketAddr::from((NODE_IP, 32000));
    let healthy = netns::eventually(Duration::from_secs(10), || {
        common::http_get(hc, "/").filter(|(code, _)| *code == 200)
    })
    .expect("health-check node port answers 200");
    let v: Value = serde_json::from_str(&healthy.1).expect("json");
    assert_eq!(v["localEndpoints"], 4, "{v}");
    assert_eq!(v["service"]["name"], "local");
    let local = netns::tally(&netns::curl_repeat(&names.client, &url(NODE_IP, 30090), 20));
    assert_eq!(local.get("(failed)"), None, "Local NodePort: {local:?}");
    let mut elsewhere = slice("local", ("service-port", "TCP", SERVE_HOSTNAME_PORT), &all);
    for e in elsewhere["endpoints"].as_array_mut().expect("endpoints") {
        e["nodeName"] = json!("node-b");
    }
    server.apply_json::<EndpointSlice>(elsewhere);
    netns::eventually(Duration::from_secs(10), || {
        common::http_get(hc, "/").filter(|(code, _)| *code == 503)
    })
    .expect("no local endpoint: 503");

    // The proxy's own metrics and health.
    let metrics = common::http_get(([127, 0, 0, 1], 10249).into(), "/metrics")
        .expect("metrics answer")
        .1;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(value("clusterdns_proxy_syncs_total{type=\"partial\"}") >= 5.0);
    assert!(value("clusterdns_proxy_network_programming_duration_seconds_count") >= 5.0);
    assert!(value("clusterdns_proxy_nftables_objects{kind=\"chains\"}") > 10.0);
    assert_eq!(value("clusterdns_proxy_sync_errors_total"), 0.0);
    let health = common::http_get(([127, 0, 0, 1], 10256).into(), "/healthz").expect("healthz");
    assert_eq!(health.0, 200, "{health:?}");

    // Nobody else's table changed; the proxy stops and --cleanup removes ours only.
    assert_eq!(
        foreign_tables(&names.node),
        foreign,
        "foreign tables while running"
    );
    proxy.kill();
    let out = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(["proxy", "--cleanup"])
        .output()
        .expect("cleanup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = netns::exec_ok(&names.node, "nft", &["list", "ruleset"]);
    assert!(!after.contains("table inet clusterdns"), "{after}");
    assert_eq!(
        foreign_tables(&names.node),
        foreign,
        "foreign tables after --cleanup"
    );
}
