//! Parse and answer tables for `local`, and its metric through a chain.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::Chain;
use crate::plugin::build::Counter;
use crate::plugin::build::{Families, TestCtx};

fn parse_line(line: &str) -> std::result::Result<LocalConfig, CorefileError> {
    let src = format!(". {{\n    {line}\n}}\n");
    let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let dir = c.blocks[0].directives[0].clone();
    parse(&mut Dispenser::new(&dir))
}

fn block(line: &str) -> String {
    format!("local {{\n        {line}\n    }}")
}

#[test]
fn parse_accepts_localhost_prefix_on_or_off() {
    let on = LocalConfig {
        localhost_prefix: true,
    };
    let off = LocalConfig {
        localhost_prefix: false,
    };
    for (line, want) in [
        ("local".to_string(), on),
        (block("localhost_prefix on"), on),
        (block("localhost_prefix off"), off),
        (
            "local {\n        localhost_prefix off\n        localhost_prefix on\n    }".into(),
            on,
        ),
    ] {
        assert_eq!(parse_line(&line), Ok(want), "{line}");
    }
}

#[test]
fn bad_lines_are_errors_at_their_position() {
    let cases = [
        (
            "local foo".to_string(),
            "Corefile:2:11: local: unexpected argument 'foo'",
        ),
        (
            block("localhost_prefix maybe"),
            "Corefile:3:26: local: localhost_prefix: expects 'on' or 'off', got 'maybe'",
        ),
        (
            block("localhost_prefix"),
            "Corefile:3:9: local: localhost_prefix: missing argument: on or off",
        ),
        (
            block("localhost_prefix on off"),
            "Corefile:3:29: local: localhost_prefix: unexpected argument 'off'",
        ),
        (
            block("fallthrough"),
            "Corefile:3:9: local: unknown property 'fallthrough'",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse_line(&line).unwrap_err().to_string(), want, "{line}");
    }
}

fn query(name: &str, qtype: RecordType) -> Query {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    Query::new(Name::from_ascii(name).unwrap(), qtype, src, Transport::Udp)
}

/// A record as `owner TYPE data`, the SOA as `owner SOA` (its data is checked once below).
fn show(rr: &Record) -> String {
    assert_eq!(rr.ttl, TTL, "{rr:?}");
    match rr.record_type() {
        RecordType::SOA => format!("{} SOA", rr.name),
        t => format!("{} {t} {}", rr.name, rr.data),
    }
}

/// (name, type, rcode, answer, authority, counted).
type Case = (
    &'static str,
    RecordType,
    ResponseCode,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

#[test]
fn answers_follow_coredns_table() {
    use ResponseCode::{NXDomain, NoError};
    // (name, type, rcode, answer, authority, counted); localhost_prefix on.
    let cases: &[Case] = &[
        (
            "localhost.",
            RecordType::A,
            NoError,
            &["localhost. A 127.0.0.1"],
            &[],
            false,
        ),
        (
            "LocalHost.",
            RecordType::AAAA,
            NoError,
            &["LocalHost. AAAA ::1"],
            &[],
            false,
        ),
        (
            "localhost.",
            RecordType::SOA,
            NoError,
            &["localhost. SOA"],
            &[],
            false,
        ),
        (
            "localhost.",
            RecordType::NS,
            NoError,
            &["localhost. NS localhost."],
            &[],
            false,
        ),
        (
            "localhost.",
            RecordType::MX,
            NoError,
            &[],
            &["localhost. SOA"],
            false,
        ),
        (
            "127.in-addr.arpa.",
            RecordType::A,
            NoError,
            &[],
            &["127.in-addr.arpa. SOA"],
            false,
        ),
        (
            "0.in-addr.arpa.",
            RecordType::NS,
            NoError,
            &["0.in-addr.arpa. NS localhost."],
            &[],
            false,
        ),
        (
            "255.in-addr.arpa.",
            RecordType::SOA,
            NoError,
            &["255.in-addr.arpa. SOA"],
            &[],
            false,
        ),
        (
            "1.0.0.127.in-addr.arpa.",
            RecordType::PTR,
            NoError,
            &["1.0.0.127.in-addr.arpa. PTR localhost."],
            &[],
            false,
        ),
        (
            "1.0.0.127.IN-ADDR.arpa.",
            RecordType::A,
            NoError,
            &[],
            &["127.IN-ADDR.arpa. SOA"],
            false,
        ),
        (
            "2.0.0.127.in-addr.arpa.",
            RecordType::PTR,
            NXDomain,
            &[],
            &["127.in-addr.arpa. SOA"],
            false,
        ),
        (
            "x.0.in-addr.arpa.",
            RecordType::PTR,
            NXDomain,
            &[],
            &["0.in-addr.arpa. SOA"],
            false,
        ),
        (
            "web.localhost.",
            RecordType::A,
            NoError,
            &["web.localhost. A 127.0.0.1"],
            &[],
            true,
        ),
        (
            "a.b.localhost.",
            RecordType::AAAA,
            NoError,
            &["a.b.localhost. AAAA ::1"],
            &[],
            true,
        ),
        (
            "web.localhost.",
            RecordType::TXT,
            NoError,
            &[],
            &["web.localhost. SOA"],
            true,
        ),
        (
            "localhost.localdomain.",
            RecordType::A,
            NoError,
            &["localhost.localdomain. A 127.0.0.1"],
            &[],
            true,
        ),
        (
            "localhost.example.org.",
            RecordType::MX,
            NoError,
            &[],
            &["localhost.example.org. SOA"],
            true,
        ),
    ];
    let cfg = LocalConfig::default();
    for (name, qtype, rcode, answers, authority, counted) in cases {
        let Local::Answer { answer, counted: c } = respond(&query(name, *qtype), &cfg) else {
            panic!("{name} {qtype}: passed on");
        };
        assert_eq!(answer.rcode, *rcode, "{name} {qtype}");
        assert_eq!(
            answer.answers.iter().map(show).collect::<Vec<_>>(),
            *answers,
            "{name} {qtype}"
        );
        assert_eq!(
            answer.authority.iter().map(show).collect::<Vec<_>>(),
            *authority,
            "{name} {qtype}"
        );
        assert!(answer.additionals.is_empty() && !answer.authoritative);
        assert_eq!(c, *counted, "{name} {qtype}");
    }
}

#[test]
fn other_names_pass_and_prefix_off_keeps_only_rfc_names() {
    let on = LocalConfig::default();
    let off = LocalConfig {
        localhost_prefix: false,
    };
    for name in [
        "example.org.",
        "localhostx.",
        "notlocalhost.",
        "xlocalhost.example.",
        "1.0.0.10.in-addr.arpa.",
        "in-addr.arpa.",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
        ".",
    ] {
        assert_eq!(
            respond(&query(name, RecordType::A), &on),
            Local::Pass,
            "{name}"
        );
    }
    let legacy = query("localhost.localdomain.", RecordType::A);
    assert_eq!(respond(&legacy, &off), Local::Pass);
    assert!(matches!(respond(&legacy, &on), Local::Answer { .. }));
    assert!(matches!(
        respond(&query("web.localhost.", RecordType::A), &off),
        Local::Answer { counted: true, .. }
    ));
    assert!(matches!(
        respond(&query("localhost.", RecordType::A), &off),
        Local::Answer { counted: false, .. }
    ));
}

#[test]
fn the_soa_is_coredns_s() {
    let Local::Answer { answer, .. } = respond(
        &query("localhost.", RecordType::SOA),
        &LocalConfig::default(),
    ) else {
        panic!("passed on");
    };
    let RData::SOA(soa) = &answer.answers[0].data else {
        panic!("not SOA: {answer:?}");
    };
    assert_eq!(soa.mname.to_string(), "localhost.");
    assert_eq!(soa.rname.to_string(), "root.localhost.");
    assert_eq!(
        (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum),
        (1, 0, 0, 0, TTL)
    );
}

#[tokio::test]
async fn through_a_chain_local_names_stop_and_non_apex_localhost_is_counted() {
    let families = Families::new(Registry::new());
    let tc = TestCtx::new(&families, &["."]);
    let cfg = parse_line("local").unwrap();
    let local = crate::plugin::BuildPlugin::build(&cfg, &tc.ctx()).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let chain = Chain::new(vec![Arc::new(Counter(hits.clone())), local]);
    let metrics = families.get::<LocalMetrics>().unwrap();
    let cases = [
        ("localhost.", RecordType::A, "local", 0),
        ("web.localhost.", RecordType::A, "local", 1),
        ("localhost.localdomain.", RecordType::AAAA, "local", 2),
        ("5.0.0.127.in-addr.arpa.", RecordType::PTR, "local", 2),
        ("example.org.", RecordType::A, "whoami", 2),
    ];
    for (name, qtype, writer, count) in cases {
        let a = chain.serve(&query(name, qtype)).await.unwrap();
        assert_eq!(a.writer, writer, "{name}");
        assert_eq!(metrics.localhost.get(), count, "{name}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    tc.token.cancel();
}
