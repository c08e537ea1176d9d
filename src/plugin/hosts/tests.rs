use crate::plugin::build::TestCtx;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::Registry;

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::Chain;
use crate::plugin::build::Families;
use crate::plugin::log::capture::capture;

fn parse_block(body: &str) -> std::result::Result<HostsConfig, CorefileError> {
    let src = format!(". {{\n    {body}\n}}\n");
    let path = Path::new("/etc/coredns/Corefile");
    let c = parse_str(&src, path, &|_| None, &MemFs::new()).unwrap();
    let dir = c.blocks[0].directives[0].clone();
    parse(&mut Dispenser::new(&dir))
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn names(v: &[Name]) -> Vec<String> {
    v.iter().map(Name::to_ascii).collect()
}

#[test]
fn defaults_are_coredns_ones() {
    let cfg = parse_block("hosts").unwrap();
    assert_eq!(cfg.path, PathBuf::from("/etc/hosts"));
    assert!(cfg.zones.is_empty() && cfg.inline.is_empty());
    assert_eq!(
        (cfg.ttl, cfg.reverse, cfg.reload),
        (3600, true, Duration::from_secs(5))
    );
    assert_eq!(cfg.fallthrough, None);
    assert!(!cfg.fallthrough_unsupported);
}

#[test]
fn file_zones_inline_entries_and_options_parse() {
    let cfg = parse_block(
        "hosts example.hosts Example.ORG example.net. {\n        \
         10.0.0.1 db.example.org DB2.example.org\n        \
         fe80::1%eth0 v6.example.org\n        ttl 60\n        no_reverse\n        \
         reload 0\n        fallthrough in-addr.arpa\n        fallthrough_unsupported\n    }",
    )
    .unwrap();
    assert_eq!(cfg.path, PathBuf::from("/etc/coredns/example.hosts"));
    assert_eq!(names(&cfg.zones), ["example.org.", "example.net."]);
    assert_eq!(
        cfg.inline,
        [
            HostLine {
                ip: "10.0.0.1".parse().unwrap(),
                names: vec![name("db.example.org."), name("db2.example.org.")],
            },
            HostLine {
                ip: "fe80::1".parse().unwrap(),
                names: vec![name("v6.example.org.")],
            },
        ]
    );
    assert_eq!(
        (cfg.ttl, cfg.reverse, cfg.reload),
        (60, false, Duration::ZERO)
    );
    assert_eq!(
        cfg.fallthrough.as_deref().map(names),
        Some(vec!["in-addr.arpa.".to_string()])
    );
    assert!(cfg.fallthrough_unsupported);
    let cfg = parse_block("hosts /abs/hosts {\n        fallthrough\n    }").unwrap();
    assert_eq!(cfg.path, PathBuf::from("/abs/hosts"));
    assert_eq!(cfg.fallthrough, Some(vec![]));
}

#[test]
fn bad_hosts_lines_are_reported_at_the_offending_token() {
    let c = |l: &str| format!("hosts {{\n        {l}\n    }}");
    let cases = [
        (
            c("ttl"),
            "Corefile:3:9: hosts: ttl: missing argument: SECONDS",
        ),
        (
            c("ttl 0"),
            "Corefile:3:13: hosts: ttl: SECONDS: 0 is out of range 1..65535",
        ),
        (
            c("ttl 65536"),
            "Corefile:3:13: hosts: ttl: SECONDS: 65536 is out of range 1..65535",
        ),
        (
            c("ttl 5 6"),
            "Corefile:3:15: hosts: ttl: unexpected argument '6'",
        ),
        (
            c("reload soon"),
            "Corefile:3:16: hosts: reload: DURATION: invalid duration 'soon' (use e.g. 30s, 1m30s, 500ms)",
        ),
        (
            c("no_reverse yes"),
            "Corefile:3:20: hosts: no_reverse: unexpected argument 'yes'",
        ),
        (c("tll 30"), "Corefile:3:9: hosts: unknown property 'tll'"),
        (
            c("10.0.0.1"),
            "Corefile:3:9: hosts: inline entry without a name",
        ),
        (c("10.0.0.1 a..b"), "Corefile:3:18: hosts: bad name 'a..b'"),
        (
            c("fallthrough a..b"),
            "Corefile:3:21: hosts: fallthrough: bad name 'a..b'",
        ),
        (
            c("fallthrough_unsupported"),
            "Corefile:3:9: hosts: fallthrough_unsupported requires fallthrough",
        ),
        (
            "hosts f a..b".to_string(),
            "Corefile:2:13: hosts: bad name 'a..b'",
        ),
    ];
    for (body, want) in cases {
        let got = parse_block(&body).unwrap_err().to_string();
        assert_eq!(got, format!("/etc/coredns/{want}"), "{body}");
    }
}

#[test]
fn hosts_file_text_skips_comments_and_bad_lines() {
    let text = "# comment\n127.0.0.1 localhost # trailing\n\n  192.168.1.10\tExample.COM example\n\
                not-an-ip host\n10.0.0.9\n::1 localhost ip6-localhost\nfe80::2%eth0 link\n";
    let got: Vec<(String, Vec<String>)> = parse_text(text)
        .iter()
        .map(|l| (l.ip.to_string(), names(&l.names)))
        .collect();
    let want = [
        ("127.0.0.1", vec!["localhost."]),
        ("192.168.1.10", vec!["example.com.", "example."]),
        ("::1", vec!["localhost.", "ip6-localhost."]),
        ("fe80::2", vec!["link."]),
    ];
    let want: Vec<(String, Vec<String>)> = want
        .iter()
        .map(|(ip, n)| (ip.to_string(), n.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_table_keeps_names_in_zones_dedupes_and_matches_one_label_wildcards() {
    let lines = parse_text(
        "10.0.0.1 a.example.org\n10.0.0.1 a.example.org\n10.0.0.2 a.example.org\n\
         10.0.0.9 *.example.org\n10.0.0.5 other.net\n::1 a.example.org\n",
    );
    let t = Table::build(&lines, &[name("example.org.")], true);
    let v4 = |n: &str| {
        t.a(&name(n))
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(v4("a.example.org."), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(v4("apps.example.org."), ["10.0.0.9"]);
    assert!(v4("deep.apps.example.org.").is_empty());
    assert!(
        v4("example.org.").is_empty(),
        "the apex is not a wildcard match"
    );
    assert!(v4("other.net.").is_empty(), "outside the zones");
    assert_eq!(
        t.aaaa(&name("a.example.org.")),
        ["::1".parse::<Ipv6Addr>().unwrap()]
    );
    assert_eq!(
        names(t.ptr("10.0.0.1".parse().unwrap())),
        ["a.example.org."]
    );
    assert!(
        t.ptr("10.0.0.9".parse().unwrap()).is_empty(),
        "no PTR for wildcards"
    );
    // 3 IPv4 + 1 IPv6 forward, 3 reverse.
    assert_eq!(t.len(), 7);
    assert_eq!(
        Table::build(&lines, &[name("example.org.")], false).len(),
        4
    );
}

/// Counts the queries that reach it; answers REFUSED so passing through is visible.
#[derive(Default)]
struct Hits(AtomicUsize);

struct Counter(Arc<Hits>);

#[async_trait::async_trait]
impl Plugin for Counter {
    fn name(&self) -> &'static str {
        "whoami"
    }
    async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        Ok(Answer::rcode(ResponseCode::Refused))
    }
}

const INLINE: &str = "10.0.0.1 example.org www.example.org\n        \
                      10.0.0.9 *.apps.example.org\n        2001:db8::1 v6.example.org";

fn hosts(block: &str) -> Hosts {
    let cfg = parse_block(&format!(
        "hosts /nonexistent/hosts example.org {{\n        {INLINE}\n        {block}\n    }}"
    ))
    .unwrap();
    Hosts::new(&cfg, &[Name::root()], None, &CancellationToken::new())
}

async fn ask(h: Hosts, qname: &str, qtype: RecordType) -> (Answer, usize) {
    let next = Arc::new(Hits::default());
    let chain = Chain::new(vec![Arc::new(h), Arc::new(Counter(next.clone()))]);
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let q = Query::new(name(qname), qtype, src, Transport::Udp);
    let a = chain.serve(&q).await.unwrap();
    (a, next.0.load(Ordering::SeqCst))
}

fn rdata(a: &Answer) -> Vec<String> {
    a.answers.iter().map(|r| r.data.to_string()).collect()
}

#[tokio::test]
async fn names_resolve_to_their_addresses_with_the_configured_ttl() {
    let (a, next) = ask(hosts("ttl 60"), "WWW.Example.org.", RecordType::A).await;
    assert_eq!(
        (a.rcode, a.authoritative, next),
        (ResponseCode::NoError, true, 0)
    );
    assert_eq!(rdata(&a), ["10.0.0.1"]);
    assert_eq!(a.answers[0].name.to_ascii(), "WWW.Example.org.");
    assert_eq!(a.answers[0].ttl, 60);
    let (a, _) = ask(hosts(""), "v6.example.org.", RecordType::AAAA).await;
    assert_eq!(rdata(&a), ["2001:db8::1"]);
    assert_eq!(a.answers[0].ttl, 3600);
    let (a, _) = ask(hosts(""), "x.apps.example.org.", RecordType::A).await;
    assert_eq!(rdata(&a), ["10.0.0.9"]);
}

#[tokio::test]
async fn other_types_of_existing_names_are_nodata_and_missing_names_nxdomain() {
    let cases = [
        ("example.org.", RecordType::AAAA, ResponseCode::NoError),
        ("example.org.", RecordType::MX, ResponseCode::NoError),
        ("v6.example.org.", RecordType::A, ResponseCode::NoError),
        (
            "missing.example.org.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "a.b.apps.example.org.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
    ];
    for (qname, qtype, want) in cases {
        let (a, next) = ask(hosts(""), qname, qtype).await;
        assert_eq!(
            (a.rcode, a.authoritative, next),
            (want, true, 0),
            "{qname} {qtype}"
        );
        assert!(a.answers.is_empty());
    }
}

#[tokio::test]
async fn fallthrough_passes_missing_names_of_its_zones_to_the_next_plugin() {
    let (a, next) = ask(hosts("fallthrough"), "missing.example.org.", RecordType::A).await;
    assert_eq!((a.rcode, next), (ResponseCode::Refused, 1));
    let (a, next) = ask(hosts("fallthrough"), "example.org.", RecordType::MX).await;
    assert_eq!(
        (a.rcode, next),
        (ResponseCode::NoError, 0),
        "existing names stay NODATA"
    );
    let (a, next) = ask(
        hosts("fallthrough other.org"),
        "missing.example.org.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        (a.rcode, next),
        (ResponseCode::NXDomain, 0),
        "not a fallthrough zone"
    );
    let block = "fallthrough\n        fallthrough_unsupported";
    let (a, next) = ask(hosts(block), "example.org.", RecordType::MX).await;
    assert_eq!((a.rcode, next), (ResponseCode::Refused, 1));
    let (a, next) = ask(hosts(block), "example.org.", RecordType::AAAA).await;
    assert_eq!(
        (a.rcode, next),
        (ResponseCode::NoError, 0),
        "AAAA is supported: NODATA"
    );
}

#[tokio::test]
async fn names_outside_the_zones_always_go_to_the_next_plugin() {
    let (a, next) = ask(hosts(""), "example.net.", RecordType::A).await;
    assert_eq!((a.rcode, next), (ResponseCode::Refused, 1));
}

#[tokio::test]
async fn addresses_answer_ptr_unless_no_reverse() {
    let (a, next) = ask(hosts(""), "1.0.0.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        (a.rcode, a.authoritative, next),
        (ResponseCode::NoError, true, 0)
    );
    assert_eq!(rdata(&a), ["example.org.", "www.example.org."]);
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
    let (a, _) = ask(hosts(""), v6, RecordType::PTR).await;
    assert_eq!(rdata(&a), ["v6.example.org."]);
    for (block, qname) in [
        ("", "2.0.0.10.in-addr.arpa."),
        ("", "0.10.in-addr.arpa."),
        ("", "www.example.org."),
        ("no_reverse", "1.0.0.10.in-addr.arpa."),
    ] {
        let (a, next) = ask(hosts(block), qname, RecordType::PTR).await;
        assert_eq!(
            (a.rcode, next),
            (ResponseCode::Refused, 1),
            "{block} {qname}"
        );
    }
}

fn a_of(h: &Hosts, n: &str) -> Vec<String> {
    let t = h.source.table.load();
    t.a(&name(n)).iter().map(ToString::to_string).collect()
}

#[tokio::test(start_paused = true)]
async fn the_file_is_reread_when_it_changes_and_kept_when_it_becomes_unreadable() {
    let (out, _g) = capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(&path, "10.0.0.1 a.example.org\n").unwrap();
    let mut cfg =
        parse_block("hosts f example.org {\n        10.0.0.7 inline.example.org\n    }").unwrap();
    cfg.path = path.clone();
    let token = CancellationToken::new();
    let h = Hosts::new(&cfg, &[], None, &token);
    assert_eq!(a_of(&h, "a.example.org."), ["10.0.0.1"]);
    assert_eq!(a_of(&h, "inline.example.org."), ["10.0.0.7"]);

    std::fs::write(&path, "10.0.0.2 a.example.org\n10.0.0.3 b.example.org\n").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        a_of(&h, "a.example.org."),
        ["10.0.0.1"],
        "not before the reload interval"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a_of(&h, "a.example.org."), ["10.0.0.2"]);
    assert_eq!(a_of(&h, "b.example.org."), ["10.0.0.3"]);
    assert_eq!(a_of(&h, "inline.example.org."), ["10.0.0.7"]);

    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        a_of(&h, "a.example.org."),
        ["10.0.0.2"],
        "previous entries kept"
    );
    let warnings = out
        .lines()
        .iter()
        .filter(|l| l.contains("cannot read"))
        .count();
    assert_eq!(warnings, 1, "logged once: {:?}", out.lines());

    std::fs::write(&path, "10.0.0.4 a.example.org\n").unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(a_of(&h, "a.example.org."), ["10.0.0.4"]);
    assert!(out.text().contains("hosts: file readable again"));

    token.cancel();
    tokio::task::yield_now().await;
    std::fs::write(&path, "10.0.0.5 a.example.org # longer than before\n").unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        a_of(&h, "a.example.org."),
        ["10.0.0.4"],
        "no reload after cancellation"
    );
}

#[tokio::test]
async fn the_entries_metric_counts_file_and_inline_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(&path, "10.0.0.1 a.example.org b.example.org\n").unwrap();
    let mut cfg = parse_block("hosts f {\n        10.0.0.7 inline.example.org\n    }").unwrap();
    cfg.path = path;
    let families = Families::new(Registry::new());
    let t = TestCtx::new(&families, &["example.org."]);
    let _h = Hosts::build(&cfg, &t.ctx()).unwrap();
    let text = crate::metrics::encode(families.registry());
    // 3 forward + 3 reverse.
    assert!(text.contains("\ncoredns_hosts_entries 6\n"), "{text}");
    assert!(
        text.contains("coredns_hosts_reload_timestamp_seconds 1"),
        "{text}"
    );
    t.token.cancel();
}
