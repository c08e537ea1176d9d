//! Table tests of [`super::select`].

use super::*;
use crate::proxy::fixtures::{ep, slice, svc};
use crate::proxy::model::Protocol::{Tcp, Udp};

fn node(zone: Option<&str>) -> Node {
    Node {
        name: "node-a".into(),
        zone: zone.map(str::to_owned),
    }
}

fn ips(ts: &[Target]) -> Vec<String> {
    ts.iter().map(|t| format!("{}:{}", t.ip, t.port)).collect()
}

#[test]
fn selection_table() {
    let http = svc("web", "10.96.0.10")
        .port("http", Tcp, 80)
        .ports
        .remove(0);
    let p = |eps: &[crate::proxy::model::Endpoint]| vec![slice("web", eps, &[("http", Tcp, 9376)])];
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        Vec<crate::proxy::model::Slice>,
        Option<&str>,
        Vec<&str>,
        Vec<&str>,
        bool,
    )> = vec![
        (
            "ready only",
            p(&[ep("10.0.0.1"), ep("10.0.0.2").unready()]),
            None,
            vec!["10.0.0.1:9376"],
            vec!["10.0.0.1:9376"],
            true,
        ),
        (
            "terminating fallback when nothing is ready",
            p(&[ep("10.0.0.1").terminating(), ep("10.0.0.2").unready()]),
            None,
            vec!["10.0.0.1:9376"],
            vec!["10.0.0.1:9376"],
            true,
        ),
        (
            "terminating ignored while one is ready",
            p(&[ep("10.0.0.1").terminating(), ep("10.0.0.2")]),
            None,
            vec!["10.0.0.2:9376"],
            vec!["10.0.0.2:9376"],
            true,
        ),
        (
            "no usable endpoint",
            p(&[ep("10.0.0.2").unready()]),
            None,
            vec![],
            vec![],
            false,
        ),
        (
            "local is this node's only",
            p(&[ep("10.0.0.1").on("node-b"), ep("10.0.0.2")]),
            None,
            vec!["10.0.0.1:9376", "10.0.0.2:9376"],
            vec!["10.0.0.2:9376"],
            true,
        ),
        (
            "hints for my zone narrow the cluster set",
            p(&[
                ep("10.0.0.1").hint("z1"),
                ep("10.0.0.2").hint("z2").on("node-b"),
            ]),
            Some("z2"),
            vec!["10.0.0.2:9376"],
            vec!["10.0.0.1:9376"],
            true,
        ),
        (
            "one ready endpoint without hints: hints ignored",
            p(&[ep("10.0.0.1").hint("z1"), ep("10.0.0.2")]),
            Some("z1"),
            vec!["10.0.0.1:9376", "10.0.0.2:9376"],
            vec!["10.0.0.1:9376", "10.0.0.2:9376"],
            true,
        ),
        (
            "no endpoint hinted for my zone: hints ignored",
            p(&[ep("10.0.0.1").hint("z1"), ep("10.0.0.2").hint("z1")]),
            Some("z9"),
            vec!["10.0.0.1:9376", "10.0.0.2:9376"],
            vec!["10.0.0.1:9376", "10.0.0.2:9376"],
            true,
        ),
        (
            "named port with different numbers per slice",
            vec![
                slice("web", &[ep("10.0.0.1")], &[("http", Tcp, 8080)]),
                slice("web", &[ep("10.0.0.2")], &[("http", Tcp, 9090)]),
            ],
            None,
            vec!["10.0.0.1:8080", "10.0.0.2:9090"],
            vec!["10.0.0.1:8080", "10.0.0.2:9090"],
            true,
        ),
        (
            "same name, other protocol: not this port",
            vec![slice("web", &[ep("10.0.0.1")], &[("http", Udp, 9376)])],
            None,
            vec![],
            vec![],
            false,
        ),
        (
            "IPv6 slice is not the IPv4 family",
            vec![slice("web", &[ep("fd00::1")], &[("http", Tcp, 9376)])],
            None,
            vec![],
            vec![],
            false,
        ),
    ];
    for (what, slices, zone, cluster, local, any) in cases {
        let slices: Vec<Arc<Slice>> = slices.into_iter().map(Arc::new).collect();
        let got = select(&http, &slices, false, &node(zone));
        assert_eq!(ips(&got.cluster), cluster, "{what}: cluster");
        assert_eq!(ips(&got.local), local, "{what}: local");
        assert_eq!(got.any, any, "{what}: any");
    }
}
