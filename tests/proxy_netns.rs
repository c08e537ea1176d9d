//! Self-test of the network-namespace harness (`support::netns`) that the
//! service proxy's end-to-end tests (issue 10) run in.
//!
//! It proves the topology with a hand-written nftables ruleset in kube-proxy's
//! shape (the harness's proof, not the product). Before the ruleset a service
//! IP leads nowhere; with it:
//! - `curl` from the client and from the node reaches all four pods;
//! - a pod reaches the others and itself through the service: hairpin works
//!   with the masquerade mark and fails without it, as in a real cluster;
//! - a NodePort answers on the node's address;
//! - a service without endpoints is refused at once;
//! - a UDP service answers with a pod's name, the same pod for one client
//!   socket (conntrack), which stays pinned to that pod after its server is
//!   gone (what the proxy's conntrack cleanup must fix).
//!
//! The inner test, re-executed inside the node namespace, shows how a proxy
//! test reaches the in-process API server. After drop, none of the namespaces
//! is left, and the test's own namespace never changed.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use support::apiserver::ApiServer;
use support::netns::{self, NODE_IP, Names, PODS, SERVE_HOSTNAME_PORT, Topology, pod_ip, pod_name};

support::netns::netns_roles!();

const OUTER: &str = "harness_topology_routes_services_through_the_node";
const INNER: &str = "harness_inside_node";

/// The hand-written service: TCP 80 over all four pods.
const WEB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// UDP 53 over all four pods' UDP 5353.
const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
/// TCP 80 to pod-1 only, without the masquerade mark (hairpin must fail).
const SOLO_NO_MASQ: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);
/// TCP 80 to pod-1 only, with the masquerade mark (hairpin works).
const SOLO_MASQ: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 13);
/// TCP 80 without endpoints: rejected.
const NO_ENDPOINTS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 14);
const UDP_PORT: u16 = 5353;
/// The web service's NodePort on the node's address.
const NODE_PORT: u16 = 30080;
const REQUESTS: usize = 200;

fn web_url(ip: Ipv4Addr) -> String {
    format!("http://{ip}:80/")
}

/// kube-proxy's shape in miniature: a verdict map keyed by `ipv4_addr .
/// inet_proto . inet_service` from both NAT hooks, `numgen random mod N` over
/// per-endpoint chains that mark hairpin traffic and DNAT, a postrouting
/// masquerade of marked packets, and a reject for a service without endpoints.
fn ruleset() -> String {
    let mut r = String::from(
        "add table ip harness\n\
         add chain ip harness prerouting { type nat hook prerouting priority dstnat; }\n\
         add chain ip harness output { type nat hook output priority -100; }\n\
         add chain ip harness postrouting { type nat hook postrouting priority srcnat; }\n\
         add chain ip harness services\n\
         add rule ip harness prerouting jump services\n\
         add rule ip harness output jump services\n\
         add rule ip harness postrouting meta mark & 0x4000 == 0x4000 masquerade\n",
    );
    let mut web_map = Vec::new();
    let mut dns_map = Vec::new();
    for i in 0..PODS {
        let ip = pod_ip(i);
        for (svc, proto, port) in [
            ("web", "tcp", SERVE_HOSTNAME_PORT),
            ("dns", "udp", UDP_PORT),
        ] {
            let chain = format!("ep-{svc}-{i}");
            r += &format!("add chain ip harness {chain}\n");
            r += &format!(
                "add rule ip harness {chain} ip saddr {ip} meta mark set meta mark | 0x4000\n"
            );
            r += &format!("add rule ip harness {chain} meta l4proto {proto} dnat to {ip}:{port}\n");
        }
        web_map.push(format!("{i} : jump ep-web-{i}"));
        dns_map.push(format!("{i} : jump ep-dns-{i}"));
    }
    r += &format!(
        "add chain ip harness svc-web\n\
         add rule ip harness svc-web numgen random mod {PODS} vmap {{ {} }}\n\
         add chain ip harness svc-dns\n\
         add rule ip harness svc-dns numgen random mod {PODS} vmap {{ {} }}\n",
        web_map.join(", "),
        dns_map.join(", ")
    );
    let pod1 = pod_ip(0);
    r += &format!(
        "add chain ip harness solo-no-masq\n\
         add rule ip harness solo-no-masq meta l4proto tcp dnat to {pod1}:{SERVE_HOSTNAME_PORT}\n\
         add rule ip harness services ip daddr . meta l4proto . th dport vmap {{ \
           {WEB} . tcp . 80 : jump svc-web, \
           {DNS} . udp . 53 : jump svc-dns, \
           {SOLO_NO_MASQ} . tcp . 80 : jump solo-no-masq, \
           {SOLO_MASQ} . tcp . 80 : jump ep-web-0, \
           {NODE_IP} . tcp . {NODE_PORT} : jump svc-web }}\n"
    );
    // No endpoints: rejected in the filter hooks (`reject` is no verdict-map
    // value, hence the goto), so clients are refused at once, not left to time out.
    r += &format!(
        "add chain ip harness filter-forward {{ type filter hook forward priority -10; }}\n\
         add chain ip harness filter-output {{ type filter hook output priority -10; }}\n\
         add chain ip harness reject-chain\n\
         add rule ip harness reject-chain reject\n\
         add chain ip harness no-endpoints\n\
         add rule ip harness no-endpoints ip daddr . meta l4proto . th dport vmap {{ \
           {NO_ENDPOINTS} . tcp . 80 : goto reject-chain }}\n\
         add rule ip harness filter-forward ct state new jump no-endpoints\n\
         add rule ip harness filter-output ct state new jump no-endpoints\n"
    );
    r
}

/// `REQUESTS` answers that all succeeded, from all four pods, each ≥ 10%.
fn assert_spread(from: &str, results: &[Result<String, String>]) {
    let counts = netns::tally(results);
    assert_eq!(results.len(), REQUESTS, "{from}: {counts:?}");
    for i in 0..PODS {
        let n = counts.get(&pod_name(i)).copied().unwrap_or(0);
        assert!(
            n * 10 >= REQUESTS,
            "{from}: {} answered {n} of {REQUESTS}: {counts:?}",
            pod_name(i)
        );
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        counts
            .iter()
            .filter(|(k, _)| k.starts_with("pod-"))
            .map(|(_, v)| v)
            .sum::<usize>(),
        "{from}: failures or strangers: {counts:?}"
    );
}

/// What the test's own namespace looks like: interface names, addresses, IPv4 routes.
fn root_state() -> String {
    let mut all = String::new();
    for args in [
        &["-o", "link", "show"][..],
        &["-o", "addr", "show"],
        &["-4", "route", "show", "table", "all"],
    ] {
        let out = Command::new("ip").args(args).output().expect("ip");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // Keep the identity of each entry, not counters or link state.
            let keep: Vec<&str> = match args[1] {
                "link" => line.split_whitespace().take(2).collect(),
                "addr" => line.split_whitespace().take(4).collect(),
                _ => line.split_whitespace().collect(),
            };
            all += &keep.join(" ");
            all.push('\n');
        }
    }
    all
}

#[test]
fn only_names_of_exactly_our_shape_are_ours() {
    let table: &[(&str, Option<u32>)] = &[
        ("cdnstest-123-0-selftest-node", Some(123)),
        ("cdnstest-123-10-x1-client", Some(123)),
        ("cdnstest-9-2-a-pod4", Some(9)),
        ("cdnstest-9-2-a-pod5", None),
        ("cdnstest-9-2-a-pod0", None),
        ("cdnstest-9-2-A-node", None),
        ("cdnstest-9-2--node", None),
        ("cdnstest-9-x-a-node", None),
        ("cdnstest-9-2-a-node-x", None),
        ("cdnstest-abc-2-a-node", None),
        ("cdnstest9-2-a-node", None),
        ("xcdnstest-9-2-a-node", None),
        ("cni-1234", None),
        ("", None),
    ];
    for (name, want) in table {
        assert_eq!(netns::owner_pid(name), *want, "{name}");
    }
    let (a, b) = (Names::fresh("t"), Names::fresh("t"));
    assert_ne!(a, b, "two topologies of one process share no name");
    assert_eq!(a.all().len(), PODS + 2);
    for n in a.all() {
        assert_eq!(netns::owner_pid(n), Some(std::process::id()), "{n}");
    }
    assert_eq!(
        Names::from_env(),
        None,
        "no names outside a re-executed test"
    );
}

#[test]
fn harness_topology_routes_services_through_the_node() {
    if !netns::available() {
        return;
    }
    let root_before = root_state();
    let stray_pid;
    let names = {
        let mut topo = Topology::build("selftest");
        let listed = netns::list_namespaces();
        for ns in topo.all() {
            assert!(listed.iter().any(|l| l == ns), "{ns} not in {listed:?}");
        }
        assert_eq!(
            root_state(),
            root_before,
            "building the topology changed the test's own namespace"
        );
        topo.serve_hostname(Some(UDP_PORT));

        // Without rules the service IP leads nowhere (the node's uplink goes nowhere).
        let before = netns::curl(&topo.client, &[web_url(WEB)]);
        assert!(before[0].is_err(), "{before:?}");

        netns::nft_apply(&topo.node, &ruleset());

        let from_client = netns::curl_repeat(&topo.client, &web_url(WEB), REQUESTS);
        assert_spread("client", &from_client);
        let from_node = netns::curl_repeat(&topo.node, &web_url(WEB), REQUESTS);
        assert_spread("node", &from_node);

        // A pod reaches every pod through the service, itself included (hairpin, masqueraded).
        let from_pod = netns::curl_repeat(&topo.pods[1], &web_url(WEB), 60);
        let counts = netns::tally(&from_pod);
        for i in 0..PODS {
            assert!(counts.contains_key(&pod_name(i)), "pod-2: {counts:?}");
        }
        assert_eq!(counts.get("(failed)"), None, "pod-2: {counts:?}");

        // Hairpin needs the masquerade: without it the pod drops its own source address.
        let hairpin = netns::curl(&topo.pods[0], &[web_url(SOLO_NO_MASQ), web_url(SOLO_MASQ)]);
        assert!(hairpin[0].is_err(), "unmasqueraded hairpin: {hairpin:?}");
        assert_eq!(hairpin[1], Ok(pod_name(0)), "masqueraded hairpin");
        // ...while another pod reaches pod-1 through the unmarked service.
        let other = netns::curl(&topo.pods[2], &[web_url(SOLO_NO_MASQ)]);
        assert_eq!(
            other[0],
            Ok(pod_name(0)),
            "pod-3 to pod-1 without masquerade"
        );

        // The NodePort on the node's address, from the client and from the node.
        let node_port = format!("http://{NODE_IP}:{NODE_PORT}/");
        for ns in [&topo.client, &topo.node] {
            let counts = netns::tally(&netns::curl_repeat(ns, &node_port, 20));
            assert_eq!(counts.get("(failed)"), None, "{ns}: {counts:?}");
        }

        // No endpoints: refused at once (curl exit 7), from outside and from the node.
        for ns in [&topo.client, &topo.node] {
            let refused = netns::curl(ns, &[web_url(NO_ENDPOINTS)]);
            assert!(
                refused[0]
                    .as_ref()
                    .is_err_and(|e| e.contains("curl exit 7")),
                "{ns}: {refused:?}"
            );
        }

        // UDP: one client socket sticks to one pod (conntrack) and gets its name.
        let target = SocketAddrV4::new(DNS, 53);
        let replies = netns::udp_ask(&topo.client, target, Some(40053), 5);
        assert_eq!(replies.len(), 5, "{replies:?}");
        let first = replies[0].clone().expect("a UDP reply");
        assert!(
            (0..PODS).any(|i| pod_name(i) == first),
            "reply {first:?} is no pod's name"
        );
        assert!(
            replies.iter().all(|r| r.as_ref() == Some(&first)),
            "{replies:?}"
        );
        // The problem the proxy's conntrack cleanup solves, reproduced: with that
        // pod's server gone, the same client socket stays pinned to it and gets
        // nothing, although three pods still serve.
        let pinned = (0..PODS).find(|&i| pod_name(i) == first).expect("a pod");
        topo.stop_serving(pinned);
        let stale = netns::udp_ask(&topo.client, target, Some(40053), 1);
        assert_eq!(stale, vec![None], "still pinned to the dead {first}");
        topo.serve_pod(pinned, Some(UDP_PORT));
        let back = netns::udp_ask(&topo.client, target, Some(40053), 1);
        assert_eq!(back, vec![Some(first.clone())], "{first} serves again");

        topo.run_inside_node(INNER, &[], Duration::from_secs(60))
            .assert_passed(INNER);
        // A process left running in a namespace (as a crashed inner test may leave
        // a proxy) dies with the topology.
        let stray = netns::exec_ok(
            &topo.node,
            "sh",
            &["-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
        );
        stray_pid = stray.trim().parse::<u32>().expect("a pid");
        topo.names().clone()
    };

    let left: Vec<String> = netns::list_namespaces()
        .into_iter()
        .filter(|l| names.all().contains(&l.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind after drop: {left:?}");
    let stray_alive = || {
        std::fs::read_to_string(format!("/proc/{stray_pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    };
    assert!(
        netns::eventually(Duration::from_secs(5), || (!stray_alive()).then_some(())).is_some(),
        "process {stray_pid} left in the node namespace survived its removal"
    );
    assert_eq!(
        root_state(),
        root_before,
        "the test's own namespace changed"
    );
}

#[test]
#[ignore = "run by harness_topology_routes_services_through_the_node inside the node namespace"]
fn harness_inside_node() {
    let Some(names) = Names::inside(OUTER) else {
        return;
    };
    // The in-process API server listens on the node's loopback; a child
    // process (as the proxy will be) inherits the namespace and reaches it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let api = runtime.block_on(ApiServer::start());
    api.apply_json::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": WEB.to_string(), "ports": [{"port": 80, "targetPort": 9376}]}
    }));
    let url = format!("{}/api/v1/namespaces/default/services", api.url());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "2", "--connect-timeout", "1", &url])
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && body.contains("\"web\""),
        "a child process reaches the API server at {url}: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // This process's own sockets go through the node's output hook.
    let addr = SocketAddr::from((WEB, 80));
    let results: Vec<Result<String, String>> =
        (0..REQUESTS).map(|_| netns::http_get_body(addr)).collect();
    assert_spread("node (in-process client)", &results);

    // And the other namespaces are reachable by name from in here.
    let from_client = netns::curl(&names.client, &[web_url(WEB)]);
    assert!(from_client[0].is_ok(), "{from_client:?}");
    drop(api);
}
