//! `acl` tables: parsing (good and bad lines, file:line), and decisions for
//! CoreDNS's documented examples, through a real chain.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::build::{Counter, Families};
use crate::plugin::{BuildPlugin, Chain};

fn parse_acl(body: &str) -> std::result::Result<AclConfig, String> {
    let src = format!("example.org {{\n{body}\n}}\n");
    let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let mut joined: Option<AclConfig> = None;
    for d in &c.blocks[0].directives {
        let cfg = parse(&mut Dispenser::new(d)).map_err(|e| e.to_string())?;
        joined = Some(match joined {
            None => cfg,
            Some(mut j) => {
                j.rules.extend(cfg.rules);
                j
            }
        });
    }
    Ok(joined.expect("a directive"))
}

fn acl(body: &str) -> Acl {
    let families = Families::new(prometheus::Registry::new());
    Acl::new(
        &parse_acl(body).unwrap(),
        &[Name::from_ascii("example.org.").unwrap()],
        "dns://:53",
        families.get::<AclMetrics>().unwrap(),
    )
}

fn query(name: &str, qtype: RecordType, src: &str) -> Query {
    Query::new(
        Name::from_ascii(name).unwrap(),
        qtype,
        format!("{src}:5353").parse().unwrap(),
        Transport::Udp,
    )
}

#[test]
fn lines_parse_into_actions_types_and_networks() {
    let c = parse_acl("acl a.Example.org {\n allow type A AAAA net 10.0.0.0/8 192.168.1.7\n block type * net *\n drop\n}").unwrap();
    let set = &c.rules[0];
    assert_eq!(set.zones, [Name::from_ascii("a.example.org.").unwrap()]);
    assert_eq!(
        set.lines,
        [
            Line {
                action: Action::Allow,
                types: Some(vec![RecordType::A, RecordType::AAAA]),
                nets: Some(vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "192.168.1.7/32".parse().unwrap()
                ]),
            },
            Line {
                action: Action::Block,
                types: None,
                nets: None
            },
            Line {
                action: Action::Drop,
                types: None,
                nets: None
            },
        ]
    );
}

#[test]
fn bad_lines_name_file_line_and_why() {
    let cases: &[(&str, &str)] = &[
        ("acl", "Corefile:2:1: acl: at least one line"),
        (
            "acl {\n deny net 10.0.0.0/8\n}",
            "Corefile:3:2: acl: unknown action 'deny' (allow, block, filter, drop)",
        ),
        (
            "acl {\n block type\n}",
            "Corefile:3:8: acl: block: 'type' needs at least one value",
        ),
        (
            "acl {\n block type NOPE\n}",
            "Corefile:3:13: acl: block: 'NOPE' is not a record type",
        ),
        (
            "acl {\n block net 10.0.0.0/33\n}",
            "Corefile:3:12: acl: block: '10.0.0.0/33' is not an IP address or CIDR",
        ),
        (
            "acl {\n block from 10.0.0.1\n}",
            "Corefile:3:8: acl: block: expected 'type' or 'net', found 'from'",
        ),
    ];
    for (body, want) in cases {
        let e = parse_acl(body).unwrap_err();
        assert!(e.starts_with(want), "{body}: {e}");
    }
}

#[test]
fn coredns_documented_examples_decide_as_documented() {
    // (acl body, name, type, client, action)
    let cases: &[(&str, &str, RecordType, &str, Action)] = &[
        // Block all DNS queries with record type A from 192.168.0.0/16.
        (
            "acl {\n block type A net 192.168.0.0/16\n}",
            "x.example.org.",
            RecordType::A,
            "192.168.3.4",
            Action::Block,
        ),
        (
            "acl {\n block type A net 192.168.0.0/16\n}",
            "x.example.org.",
            RecordType::AAAA,
            "192.168.3.4",
            Action::Allow,
        ),
        (
            "acl {\n block type A net 192.168.0.0/16\n}",
            "x.example.org.",
            RecordType::A,
            "10.0.0.1",
            Action::Allow,
        ),
        // Filter all DNS queries with record type A from 192.168.0.0/16.
        (
            "acl {\n filter type A net 192.168.0.0/16\n}",
            "x.example.org.",
            RecordType::A,
            "192.168.0.1",
            Action::Filter,
        ),
        // Block all DNS queries from 192.168.0.0/16 except for 192.168.1.0/24.
        (
            "acl {\n allow net 192.168.1.0/24\n block net 192.168.0.0/16\n}",
            "x.example.org.",
            RecordType::A,
            "192.168.1.9",
            Action::Allow,
        ),
        (
            "acl {\n allow net 192.168.1.0/24\n block net 192.168.0.0/16\n}",
            "x.example.org.",
            RecordType::A,
            "192.168.2.9",
            Action::Block,
        ),
        // Allow only DNS queries from 192.168.0.0/24 and 192.168.1.0/24.
        (
            "acl {\n allow net 192.168.0.0/24 192.168.1.0/24\n block\n}",
            "x.example.org.",
            RecordType::TXT,
            "192.168.1.200",
            Action::Allow,
        ),
        (
            "acl {\n allow net 192.168.0.0/24 192.168.1.0/24\n block\n}",
            "x.example.org.",
            RecordType::TXT,
            "192.168.2.1",
            Action::Block,
        ),
        // Block all DNS queries from 192.168.1.0/24 towards a.example.org.
        (
            "acl a.example.org {\n block net 192.168.1.0/24\n}",
            "a.example.org.",
            RecordType::A,
            "192.168.1.1",
            Action::Block,
        ),
        (
            "acl a.example.org {\n block net 192.168.1.0/24\n}",
            "b.example.org.",
            RecordType::A,
            "192.168.1.1",
            Action::Allow,
        ),
        // Drop all DNS queries from 192.0.2.0/24.
        (
            "acl {\n drop net 192.0.2.0/24\n}",
            "x.example.org.",
            RecordType::A,
            "192.0.2.5",
            Action::Drop,
        ),
        // IPv6 sources; IPv4-mapped clients match IPv4 networks.
        (
            "acl {\n block net 2001:db8::/32\n}",
            "x.example.org.",
            RecordType::A,
            "[2001:db8::1]",
            Action::Block,
        ),
        (
            "acl {\n block net 10.0.0.0/8\n}",
            "x.example.org.",
            RecordType::A,
            "[::ffff:10.1.2.3]",
            Action::Block,
        ),
        // A later directive decides when an earlier one has no matching line.
        (
            "acl {\n block net 10.0.0.0/8\n}\nacl {\n filter type MX\n}",
            "x.example.org.",
            RecordType::MX,
            "192.0.2.1",
            Action::Filter,
        ),
        // ... but an allow in an earlier directive ends the search.
        (
            "acl {\n allow type MX\n}\nacl {\n block\n}",
            "x.example.org.",
            RecordType::MX,
            "192.0.2.1",
            Action::Allow,
        ),
        (
            "acl {\n allow type MX\n}\nacl {\n block\n}",
            "x.example.org.",
            RecordType::A,
            "192.0.2.1",
            Action::Block,
        ),
    ];
    for (body, name, qtype, src, want) in cases {
        let got = acl(body).decide(&query(name, *qtype, src)).0;
        assert_eq!(got, *want, "{body} / {name} {qtype} from {src}");
    }
}

#[tokio::test]
async fn actions_shape_the_response_and_count() {
    let families = Families::new(prometheus::Registry::new());
    let tc = crate::plugin::build::TestCtx::new(&families, &["example.org."]);
    let cfg = parse_acl("acl {\n block net 10.0.0.1\n filter net 10.0.0.2\n drop net 10.0.0.3\n}")
        .unwrap();
    let plugin = cfg.build(&tc.ctx()).unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let chain = Chain::new(vec![plugin, Arc::new(Counter(reached.clone()))]);
    let ask = |src: &str| {
        let q = query("x.example.org.", RecordType::A, src);
        let chain = chain.clone();
        async move { chain.serve(&q).await.unwrap() }
    };
    let a = ask("10.0.0.1").await;
    assert_eq!(a.rcode, ResponseCode::Refused);
    assert_eq!(
        a.extras.as_ref().and_then(|e| e.ede.clone()).map(|e| e.0),
        Some(15)
    );
    let a = ask("10.0.0.2").await;
    assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
    assert_eq!(
        a.extras.as_ref().and_then(|e| e.ede.clone()).map(|e| e.0),
        Some(17)
    );
    assert!(ask("10.0.0.3").await.is_silent());
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    let a = ask("10.0.0.4").await;
    assert_eq!(a.rcode, ResponseCode::NXDomain, "the next plugin answered");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    let text = crate::metrics::encode(families.registry());
    for line in [
        "coredns_acl_blocked_requests_total{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
        "coredns_acl_filtered_requests_total{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
        "coredns_acl_dropped_requests_total{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
        "coredns_acl_allowed_requests_total{server=\"dns://:53\",view=\"\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    tc.token.cancel();
}
