//! The loop guard's bookkeeping, and the plugin's parse rules.

use std::net::SocketAddr;

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;

fn addrs() -> Vec<SocketAddr> {
    vec![
        "127.0.0.53:53".parse().unwrap(),
        "10.0.0.10:53".parse().unwrap(),
    ]
}

fn q(name: &Name, qtype: RecordType) -> Query {
    Query::new(
        name.clone(),
        qtype,
        "127.0.0.1:1".parse().unwrap(),
        Transport::Udp,
    )
}

#[test]
fn probe_names_are_two_random_labels_under_the_zone_one_per_upstream() {
    let g = LoopGuard::default();
    let zone = Name::from_ascii("Cluster.Local.").unwrap();
    g.set_upstreams(&zone, &addrs());
    let t = g.targets();
    assert_eq!(t.len(), 2);
    assert_ne!(t[0].probe, t[1].probe);
    for target in t {
        assert_eq!(target.probe.num_labels(), 4);
        assert!(zone.zone_of(&target.probe));
        assert!(
            target
                .probe
                .iter()
                .take(2)
                .all(|l| l.iter().all(u8::is_ascii_digit))
        );
    }
    assert_eq!(t[1].addr, addrs()[1]);
    g.set_upstreams(&zone, &addrs()[..1]);
    assert_eq!(g.targets().len(), 2, "only the first registration counts");
    let root = LoopGuard::default();
    root.set_upstreams(&Name::root(), &addrs());
    assert_eq!(root.targets()[0].probe.num_labels(), 2);
}

#[test]
fn probes_are_recognised_only_as_hinfo_and_only_with_a_loop_plugin() {
    let g = LoopGuard::default();
    g.set_upstreams(&Name::root(), &addrs());
    let probe = g.targets()[1].probe.clone();
    assert_eq!(
        g.probe_index(&q(&probe, RecordType::HINFO)),
        None,
        "no loop plugin"
    );
    g.enabled.store(true, Ordering::Relaxed);
    assert_eq!(g.probe_index(&q(&probe, RecordType::HINFO)), Some(1));
    assert_eq!(g.probe_index(&q(&probe, RecordType::A)), None);
    let upper = Name::from_ascii(probe.to_ascii().to_uppercase()).unwrap();
    let mut uq = q(&upper, RecordType::HINFO);
    uq.lower = upper.to_lowercase();
    assert_eq!(g.probe_index(&uq), Some(1), "case-insensitive");
    let other = Name::from_ascii("1.2.").unwrap();
    assert_eq!(g.probe_index(&q(&other, RecordType::HINFO)), None);
}

#[test]
fn the_third_sighting_marks_a_loop_exactly_once() {
    let g = LoopGuard::default();
    g.set_upstreams(&Name::root(), &addrs());
    assert!(!g.saw(0) && !g.saw(0));
    assert!(!g.any_looping() && !g.is_looping(0));
    assert!(g.saw(0), "more than twice");
    assert!(!g.saw(0), "reported once");
    assert!(g.any_looping() && g.is_looping(0) && !g.is_looping(1));
    assert!(!g.is_looping(7));
    assert!(!g.saw(7), "unknown index is ignored");
}

#[test]
fn loop_takes_no_arguments_and_no_block() {
    let parse_one = |src: &str| {
        let cf = parse_str(
            src,
            std::path::Path::new("Corefile"),
            &|_| None,
            &MemFs::new(),
        )
        .unwrap();
        parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).map_err(|e| e.to_string())
    };
    assert_eq!(parse_one(". {\n    loop\n}\n"), Ok(()));
    assert_eq!(
        parse_one(". {\n    loop 5\n}\n").unwrap_err(),
        "Corefile:2:10: loop: unexpected argument '5'"
    );
    assert_eq!(
        parse_one(". {\n    loop {\n        x\n    }\n}\n").unwrap_err(),
        "Corefile:2:5: loop: takes no block"
    );
}

#[test]
fn wildcard_listeners_are_probed_on_loopback() {
    assert_eq!(
        loopback_for("0.0.0.0".parse().unwrap()),
        Ipv4Addr::LOCALHOST
    );
    assert_eq!(loopback_for("::".parse().unwrap()), Ipv6Addr::LOCALHOST);
    assert_eq!(
        loopback_for("10.1.2.3".parse().unwrap()),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );
}
