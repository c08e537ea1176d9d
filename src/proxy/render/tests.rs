//! Golden tests of [`super::render`]: each case's full `nft` script is
//! compared with `src/proxy/render/golden/<case>.nft`. Run with
//! `UPDATE_GOLDEN=1` to rewrite the files after an intended change, then
//! read the diff. The same files are loaded into a real kernel by
//! `tests/proxy_nft.rs`, so what is checked here is also valid nft.

use std::path::PathBuf;

use super::*;
use crate::proxy::fixtures::{ep, slice, svc};
use crate::proxy::model::{Protocol::Sctp, Protocol::Tcp, Protocol::Udp, Service, Slice, group};
use crate::proxy::ruleset::Existing;

fn node() -> Node {
    Node {
        name: "node-a".into(),
        zone: Some("zone-a".into()),
    }
}

fn opts() -> Options {
    Options {
        cluster_cidrs: vec!["10.244.0.0/16".parse().expect("cidr")],
        ..Options::default()
    }
}

fn seed_eps() -> Vec<crate::proxy::model::Endpoint> {
    (2..=5).map(|i| ep(&format!("10.244.1.{i}"))).collect()
}

fn seed() -> Service {
    svc("nginx-service", "10.96.0.50").port("service-port", Tcp, 80)
}

/// (case name, services, slices, options)
fn cases() -> Vec<(&'static str, Vec<Service>, Vec<Slice>, Options)> {
    let http = [("service-port", Tcp, 9376)];
    let mut affinity = seed();
    affinity.affinity = Some(600);
    let mut local = seed().node_port(30080);
    local.internal_local = true;
    local.external_local = true;
    let mut dual = seed();
    dual.cluster_ips.push("fd00:96::50".parse().expect("ip"));
    let mut external = seed();
    external.external_ips = vec!["192.0.2.10".parse().expect("ip")];
    external.lb_ips = vec!["198.51.100.7".parse().expect("ip")];
    let mut all_masq = opts();
    all_masq.masquerade_all = true;
    let mut np_ips = opts();
    np_ips.nodeport_addresses = NodePortAddresses::Ips(vec!["192.168.77.1".parse().expect("ip")]);
    vec![
        ("empty", vec![], vec![], opts()),
        (
            "clusterip_four_endpoints",
            vec![seed()],
            vec![slice("nginx-service", &seed_eps(), &http)],
            opts(),
        ),
        (
            "several_ports",
            vec![seed().port("metrics", Tcp, 9153).port("dns", Udp, 53)],
            vec![slice(
                "nginx-service",
                &seed_eps()[..2],
                &[
                    ("service-port", Tcp, 9376),
                    ("metrics", Tcp, 9153),
                    ("dns", Udp, 5353),
                ],
            )],
            opts(),
        ),
        (
            "no_ready_endpoints",
            vec![seed()],
            vec![slice("nginx-service", &[ep("10.244.1.2").unready()], &http)],
            opts(),
        ),
        (
            "only_terminating",
            vec![seed()],
            vec![slice(
                "nginx-service",
                &[ep("10.244.1.2").terminating(), ep("10.244.1.3").unready()],
                &http,
            )],
            opts(),
        ),
        (
            "nodeport",
            vec![seed().node_port(30080)],
            vec![slice("nginx-service", &seed_eps()[..2], &http)],
            opts(),
        ),
        (
            "nodeport_addresses",
            vec![seed().node_port(30080)],
            vec![slice("nginx-service", &seed_eps()[..1], &http)],
            np_ips,
        ),
        (
            "external_and_lb_ips",
            vec![external],
            vec![slice("nginx-service", &seed_eps()[..2], &http)],
            opts(),
        ),
        (
            "client_ip_affinity",
            vec![affinity],
            vec![slice("nginx-service", &seed_eps()[..2], &http)],
            opts(),
        ),
        (
            "local_policies",
            vec![local],
            vec![slice(
                "nginx-service",
                &[ep("10.244.1.2"), ep("10.244.2.2").on("node-b")],
                &http,
            )],
            opts(),
        ),
        (
            "zone_hints",
            vec![seed()],
            vec![slice(
                "nginx-service",
                &[
                    ep("10.244.1.2").hint("zone-a"),
                    ep("10.244.2.2").hint("zone-b").on("node-b"),
                ],
                &http,
            )],
            opts(),
        ),
        (
            "udp_and_sctp",
            vec![
                svc("kube-dns", "10.96.0.10")
                    .port("dns", Udp, 53)
                    .port("sig", Sctp, 3868),
            ],
            vec![slice(
                "kube-dns",
                &[ep("10.244.1.2")],
                &[("dns", Udp, 53), ("sig", Sctp, 3868)],
            )],
            opts(),
        ),
        (
            "dual_stack",
            vec![dual],
            vec![
                slice("nginx-service", &seed_eps()[..1], &http),
                slice("nginx-service", &[ep("fd00:244::2")], &http),
            ],
            opts(),
        ),
        (
            "masquerade_all",
            vec![seed()],
            vec![slice("nginx-service", &seed_eps()[..1], &http)],
            all_masq,
        ),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/proxy/render/golden")
}

#[test]
fn golden_scripts() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for (case, services, slices, opts) in cases() {
        let got = render(&services, &group(slices), &node(), &opts)
            .ruleset
            .full_script(&Existing::default());
        let path = golden_dir().join(format!("{case}.nft"));
        if update {
            std::fs::create_dir_all(golden_dir()).expect("mkdir");
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            mismatched.push(format!("--- {case}: got\n{got}"));
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden mismatch (UPDATE_GOLDEN=1 to accept):\n{}",
        mismatched.join("\n")
    );
}

#[test]
fn headless_and_external_name_services_render_nothing() {
    let skeleton = render(&[], &group(Vec::<Slice>::new()), &node(), &opts());
    for (what, api) in [
        (
            "headless",
            serde_json::json!({"metadata": {"name": "h", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        ),
        (
            "ExternalName",
            serde_json::json!({"metadata": {"name": "x", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.org", "ports": [{"port": 80}]}}),
        ),
    ] {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(api).expect("svc");
        let model = Service::from_api(&svc).expect("converts");
        assert_eq!(model, None, "{what} is not programmed");
        let services: Vec<Service> = model.into_iter().collect();
        let slices = group(vec![slice("h", &[ep("10.244.1.2")], &[("", Tcp, 80)])]);
        assert_eq!(
            render(&services, &slices, &node(), &opts()),
            skeleton,
            "{what}"
        );
    }
}

/// The number of endpoint chains and the numgen modulus agree with the
/// endpoints chosen, and every `goto`/`jump` names a chain that exists.
#[test]
fn every_reference_resolves() {
    for (case, services, slices, opts) in cases() {
        let rs = render(&services, &group(slices), &node(), &opts).ruleset;
        let targets = rs
            .chains
            .values()
            .flat_map(|c| c.rules.iter())
            .chain(rs.maps.values().flat_map(|m| m.elements.values().flatten()));
        for text in targets {
            let words: Vec<&str> = text.split_whitespace().collect();
            for w in words.windows(2) {
                if w[0] == "goto" || w[0] == "jump" {
                    let chain = w[1].trim_end_matches([',', '}']);
                    assert!(
                        rs.chains.contains_key(chain),
                        "{case}: {text} names no chain"
                    );
                }
            }
            if let Some(at) = text.find('@') {
                let set: String = text[at + 1..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                assert!(
                    rs.maps.contains_key(&set) || rs.dynamic_sets.contains_key(&set),
                    "{case}: {text} names no set"
                );
            }
        }
    }
}

#[test]
fn the_seed_service_balances_over_its_four_endpoints() {
    let slices = group(vec![slice(
        "nginx-service",
        &seed_eps(),
        &[("service-port", Tcp, 9376)],
    )]);
    let r = render(&[seed()], &slices, &node(), &opts());
    let vmap = &r.ruleset.maps["service-ips"].elements;
    let goto = vmap["10.96.0.50 . tcp . 80"].clone().expect("verdict");
    let slots = mapped_slots(&r.ruleset, "10.96.0.50 . tcp . 80", &goto);
    let mut want: Vec<String> = (2..=5).map(|i| format!("10.244.1.{i} . 9376")).collect();
    let mut got = slots.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "one slot per endpoint, each with chance 1/4");
    // No chain of its own: one shared chain per endpoint count.
    assert_eq!(goto, "goto lb4-tcp-4-9376");
    assert!(
        !r.ruleset
            .chains
            .keys()
            .any(|c| c.starts_with("svc") || c.starts_with("ep"))
    );
    assert!(r.ruleset.chains["lb4-tcp-4-9376"].shared);
    // Hairpin is found by (VIP, pod, pod) in postrouting (all four pods
    // are on this node).
    let hairpin = &r.ruleset.maps["hairpin"].elements;
    for i in 2..=5 {
        let key = format!("10.96.0.50 . 10.244.1.{i} . 10.244.1.{i}");
        assert!(hairpin.contains_key(&key), "{key}: {hairpin:?}");
    }
    assert!(r.udp.is_empty(), "TCP only");
}

/// A named target port with different numbers on different pods (two
/// slices, two port numbers): no shared chain can DNAT to one port, so the
/// port gets its own balancing chain over all four.
#[test]
fn endpoints_on_different_ports_get_a_chain_of_their_own() {
    let eps = seed_eps();
    let slices = group(vec![
        slice("nginx-service", &eps[..2], &[("service-port", Tcp, 9376)]),
        slice("nginx-service", &eps[2..], &[("service-port", Tcp, 9377)]),
    ]);
    let r = render(&[seed()], &slices, &node(), &opts());
    let goto = r.ruleset.maps["service-ips"].elements["10.96.0.50 . tcp . 80"]
        .clone()
        .expect("verdict");
    let chain = &r.ruleset.chains[goto.trim_start_matches("goto ")];
    assert!(!chain.shared, "{goto}");
    let odds = odds(&chain.rules);
    let targets: Vec<&str> = odds.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        targets,
        [
            "10.244.1.2:9376",
            "10.244.1.3:9376",
            "10.244.1.4:9377",
            "10.244.1.5:9377"
        ]
    );
    assert!(r.ruleset.maps["endpoints-tcp"].elements.is_empty());
}

/// Endpoints on other nodes cannot hairpin here: only this node's (and
/// those with no node) are in the hairpin set.
#[test]
fn only_endpoints_here_can_hairpin() {
    let mut eps = seed_eps();
    eps[0].node = Some("node-b".into());
    eps[1].node = None;
    let slices = group(vec![slice(
        "nginx-service",
        &eps,
        &[("service-port", Tcp, 9376)],
    )]);
    let r = render(&[seed()], &slices, &node(), &opts());
    let hairpin: Vec<&String> = r.ruleset.maps["hairpin"].elements.keys().collect();
    let ip = |e: &crate::proxy::model::Endpoint| e.ip.to_string();
    assert_eq!(hairpin.len(), 3, "{hairpin:?}");
    assert!(!hairpin.iter().any(|k| k.ends_with(&ip(&eps[0]))));
    assert!(hairpin.iter().any(|k| k.ends_with(&ip(&eps[1]))));
}

/// The endpoints (`IP . port`) a mapped entry `key` (`VIP . proto . port`,
/// whose verdict is `goto`, a shared `lbF-PROTO-N-PORT` chain) balances
/// over: the chain's modulus N must equal its slot count, slots 0..N each
/// hold one endpoint address, and the chain DNATs through the family's and
/// protocol's endpoints map to its port.
fn mapped_slots(rs: &crate::proxy::ruleset::Ruleset, key: &str, goto: &str) -> Vec<String> {
    let lb = goto.trim_start_matches("goto ");
    let parts: Vec<&str> = lb.splitn(4, '-').collect();
    let [fam, proto, n, target_port] = parts.as_slice() else {
        panic!("{key}: {goto} is not a shared chain")
    };
    let n: usize = n.parse().expect("endpoint count");
    let map = match *fam {
        "lb4" => format!("endpoints-{proto}"),
        _ => format!("endpoints6-{proto}"),
    };
    let rule = rs.chains[lb].rules.last().expect("a DNAT rule");
    assert!(
        rule.ends_with(&format!(
            "{proto} dport . numgen random mod {n} map @{map} : {target_port}"
        )),
        "{lb}: {rule}"
    );
    let [vip, key_proto, port] = key.split(" . ").collect::<Vec<_>>()[..] else {
        panic!("{key}: not VIP . proto . port")
    };
    assert_eq!(key_proto, *proto, "{key} → {lb}");
    let elements = &rs.maps[&map].elements;
    let slots: Vec<String> = (0..n)
        .map(|i| {
            elements
                .get(&format!("{vip} . {port} . {i}"))
                .cloned()
                .flatten()
                .map(|ip| format!("{ip} . {target_port}"))
                .unwrap_or_else(|| panic!("{key}: slot {i} of {n} empty"))
        })
        .collect();
    assert!(
        !elements.contains_key(&format!("{vip} . {port} . {n}")),
        "{key}: more slots than {n}"
    );
    let distinct: std::collections::BTreeSet<&String> = slots.iter().collect();
    assert_eq!(distinct.len(), n, "{key}: an endpoint in two slots");
    slots
}

/// The chance of each endpoint chain a balancing chain goes to: a
/// `numgen random mod K 0 goto X` rule takes 1/K of what reaches it, a
/// final `goto X` all the rest.
fn odds(rules: &[String]) -> Vec<(String, f64)> {
    let mut left = 1.0;
    let mut out = Vec::new();
    for rule in rules {
        // An arm names its endpoint last: `goto EP_CHAIN` or `dnat ip to IP:PORT`.
        let words: Vec<&str> = rule.split_whitespace().collect();
        let target = words.last().copied().unwrap_or_default().to_owned();
        let picks = rule.contains("goto ") || rule.contains(" dnat ");
        match words.as_slice() {
            ["numgen", "random", "mod", k, "0", ..] if picks => {
                let k: f64 = k.parse().expect("modulus");
                out.push((target, left / k));
                left -= left / k;
            }
            [first, ..] if picks && !matches!(*first, "ip" | "ip6" | "fib") => {
                out.push((target, left));
                left = 0.0;
            }
            _ => {}
        }
    }
    assert!(
        left.abs() < 1e-12,
        "every packet picks an endpoint: {rules:?}"
    );
    out
}

/// Every balancing chain and every mapped entry of every case picks each
/// of its endpoints with the same chance (no anonymous vmap: see
/// `PortRender::balance` and `lb_chain`).
#[test]
fn balancing_is_uniform_without_anonymous_maps() {
    for (case, services, slices, opts) in cases() {
        let rs = render(&services, &group(slices), &node(), &opts).ruleset;
        for (name, chain) in &rs.chains {
            assert!(
                !chain.rules.iter().any(|r| r.contains("vmap {")),
                "{case}: {name} has an anonymous vmap"
            );
            if !(name.starts_with("svc") || name.starts_with("local")) {
                continue;
            }
            let odds = odds(&chain.rules);
            assert!(!odds.is_empty(), "{case}: {name} balances over nothing");
            let distinct: std::collections::BTreeSet<&String> =
                odds.iter().map(|(ep, _)| ep).collect();
            assert_eq!(distinct.len(), odds.len(), "{case}: {name}");
            for (ep, p) in &odds {
                let want = 1.0 / odds.len() as f64;
                assert!((p - want).abs() < 1e-12, "{case}: {name} → {ep}: {p}");
            }
        }
        // Entries through a shared chain: one slot per endpoint.
        for map in ["service-ips", "service-ips6"] {
            for (key, verdict) in &rs.maps[map].elements {
                let verdict = verdict.as_deref().unwrap_or_default();
                if verdict.starts_with("goto lb") {
                    mapped_slots(&rs, key, verdict);
                }
            }
        }
        // Every slot belongs to an entry that goes through a shared chain.
        for (map, m) in rs.maps.iter().filter(|(n, _)| n.starts_with("endpoints")) {
            let (fam, proto) = map.split_once('-').expect("endpoints{,6}-PROTO");
            let vips = if fam == "endpoints" {
                "service-ips"
            } else {
                "service-ips6"
            };
            for key in m.elements.keys() {
                let [vip, port, _slot] = key.split(" . ").collect::<Vec<_>>()[..] else {
                    panic!("{case}: {map}: {key}")
                };
                let entry = format!("{vip} . {proto} . {port}");
                let verdict = rs.maps[vips].elements.get(&entry).cloned().flatten();
                assert!(
                    verdict.as_deref().is_some_and(|v| v.starts_with("goto lb")),
                    "{case}: {map}: {key} has no entry through a shared chain"
                );
            }
        }
    }
}
