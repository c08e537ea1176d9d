use std::net::SocketAddr;
use std::path::Path;

use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{RData, Record};

use super::capture::capture;
use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::plugin::{Chain, PluginError};

fn parse_block(body: &str) -> std::result::Result<LogConfig, CorefileError> {
    let src = format!(". {{\n    {body}\n}}\n");
    let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let dir = c.blocks[0].directives[0].clone();
    parse(&mut Dispenser::new(&dir))
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

const ALL: Classes = Classes {
    all: true,
    success: false,
    denial: false,
    error: false,
};

#[test]
fn arguments_are_names_then_an_optional_format() {
    let scopes =
        |cfg: &LogConfig| -> Vec<String> { cfg.rules.iter().map(|r| r.scope.to_ascii()).collect() };
    let cfg = parse_block("log").unwrap();
    assert_eq!(scopes(&cfg), ["."]);
    assert_eq!(*cfg.rules[0].format, Format::new(COMMON));
    assert_eq!(cfg.rules[0].classes, ALL);
    assert_eq!(cfg.rules[0].min_duration, Duration::ZERO);

    let cfg = parse_block("log Example.ORG").unwrap();
    assert_eq!(scopes(&cfg), ["example.org."]);

    let cfg = parse_block("log example.org example.net. {combined}").unwrap();
    assert_eq!(scopes(&cfg), ["example.org.", "example.net."]);
    assert!(cfg.rules.iter().all(|r| *r.format == Format::new(COMBINED)));

    let cfg = parse_block("log . {common}").unwrap();
    assert_eq!(*cfg.rules[0].format, Format::new(COMMON));

    let cfg = parse_block(r#"log . "{proto} Request: {name}""#).unwrap();
    assert_eq!(*cfg.rules[0].format, Format::new("{proto} Request: {name}"));

    let cfg = parse_block("log example.org example.net").unwrap();
    assert_eq!(
        scopes(&cfg),
        ["example.org.", "example.net."],
        "no '{{': all names"
    );
}

#[test]
fn class_lines_add_up_and_min_duration_defaults_to_100ms() {
    let cfg = parse_block("log {\n        class denial\n        class error\n    }").unwrap();
    let want = Classes {
        all: false,
        success: false,
        denial: true,
        error: true,
    };
    assert_eq!(cfg.rules[0].classes, want);

    let cfg = parse_block("log {\n        class success all\n        minDuration\n    }").unwrap();
    assert!(cfg.rules[0].classes.all && cfg.rules[0].classes.success);
    assert_eq!(cfg.rules[0].min_duration, Duration::from_millis(100));

    let cfg = parse_block("log a. b. {\n        minDuration 2s\n    }").unwrap();
    assert!(
        cfg.rules
            .iter()
            .all(|r| r.min_duration == Duration::from_secs(2))
    );
    assert!(cfg.rules.iter().all(|r| r.classes == ALL));
}

#[test]
fn bad_log_lines_are_reported_at_the_offending_token() {
    let c = |l: &str| format!("log {{\n        {l}\n    }}");
    let cases = [
        (
            c("class"),
            "Corefile:3:9: log: class: missing argument: CLASSES",
        ),
        (
            c("class denial bogus"),
            "Corefile:3:22: log: class: unknown class 'bogus' (use all, denial, error or success)",
        ),
        (
            c("minDuration 1x"),
            "Corefile:3:21: log: minDuration: DURATION: invalid duration '1x' (use e.g. 30s, 1m30s, 500ms)",
        ),
        (
            c("minDuration 1s 2s"),
            "Corefile:3:24: log: minDuration: unexpected argument '2s'",
        ),
        (
            c("format x"),
            "Corefile:3:9: log: unknown property 'format'",
        ),
        ("log a..b".to_string(), "Corefile:2:9: log: bad name 'a..b'"),
    ];
    for (body, want) in cases {
        assert_eq!(parse_block(&body).unwrap_err().to_string(), want, "{body}");
    }
}

fn query(src: &str, transport: Transport, edns: Option<u16>) -> Query {
    let src: SocketAddr = src.parse().unwrap();
    let mut q = Query::new(name("Example.ORG."), RecordType::A, src, transport);
    q.id = 4242;
    q.edns_payload = edns;
    q
}

fn a_answer() -> Answer {
    let mut a = Answer::rcode(ResponseCode::NoError);
    a.authoritative = true;
    let ip = RData::A(A::new(10, 0, 0, 1));
    a.answers
        .push(Record::from_rdata(name("Example.ORG."), 30, ip));
    a
}

#[test]
fn common_format_renders_every_field_like_coredns() {
    let q = query("10.0.0.1:40212", Transport::Udp, Some(4096));
    let answer = a_answer();
    let e = Entry {
        q: &q,
        answer: &answer,
        duration: Duration::from_micros(12_300),
    };
    // size: 12 header + 17 question + 11 OPT; rsize: + a 16-byte compressed A record.
    assert_eq!(
        Format::new(COMMON).render(&e),
        r#"10.0.0.1:40212 - 4242 "A IN example.org. udp 40 false 4096" NOERROR qr,aa,rd 56 0.0123s"#
    );
    assert_eq!(
        Format::new(COMBINED).render(&e),
        r#"10.0.0.1:40212 - 4242 "A IN example.org. udp 40 false 4096" NOERROR qr,aa,rd 56 0.0123s "QUERY""#
    );

    let mut q = query("[::1]:53000", Transport::Tcp, None);
    q.dnssec_ok = true;
    q.recursion_desired = false;
    let failed = Answer::rcode(ResponseCode::ServFail);
    let e = Entry {
        q: &q,
        answer: &failed,
        duration: Duration::from_nanos(1500),
    };
    assert_eq!(
        Format::new(COMMON).render(&e),
        r#"[::1]:53000 - 4242 "A IN example.org. tcp 29 true 65535" SERVFAIL qr 29 0.0000015s"#
    );
    let q = query("10.0.0.1:1", Transport::Udp, None);
    let e = Entry {
        q: &q,
        answer: &failed,
        duration: Duration::ZERO,
    };
    assert_eq!(
        Format::new("{>bufsize} {local} {/pod} {foo} {>id {class}").render(&e),
        "512 - - {foo} {>id IN"
    );
}

#[test]
fn responses_are_classified_as_success_denial_or_error() {
    let soa = Record::from_rdata(
        name("example.org."),
        30,
        RData::SOA(SOA::new(name("ns."), name("h."), 1, 1, 1, 1, 1)),
    );
    let ns = Record::from_rdata(name("sub.example.org."), 30, RData::NS(NS(name("ns."))));
    let with = |rc, auth: Option<&Record>| {
        let mut a = Answer::rcode(rc);
        a.authority.extend(auth.cloned());
        a
    };
    let mut whoami = Answer::rcode(ResponseCode::NoError);
    whoami.additionals.push(a_answer().answers[0].clone());
    let cases = [
        (a_answer(), Class::Success),
        (with(ResponseCode::NoError, Some(&soa)), Class::Denial),
        (with(ResponseCode::NoError, None), Class::Denial),
        (with(ResponseCode::NoError, Some(&ns)), Class::Success),
        (whoami, Class::Success),
        (with(ResponseCode::NXDomain, Some(&soa)), Class::Denial),
        (with(ResponseCode::NXDomain, None), Class::Denial),
        (with(ResponseCode::ServFail, None), Class::Error),
        (with(ResponseCode::Refused, None), Class::Error),
        (with(ResponseCode::NotImp, None), Class::Error),
        (with(ResponseCode::FormErr, None), Class::Error),
    ];
    for (a, want) in cases {
        assert_eq!(classify(&a), want, "{:?}", a.rcode);
    }
    assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
    assert_eq!(rcode_name(ResponseCode::BADCOOKIE), "BADCOOKIE");
    assert_eq!(rcode_name(ResponseCode::Unknown(3000)), "3000");
}

/// Answers by the first label: `ok` A record, `nx` NXDOMAIN, `fail` error, `slow` after 2s.
struct Fake;

#[async_trait::async_trait]
impl Plugin for Fake {
    fn name(&self) -> &'static str {
        "whoami"
    }
    async fn serve(&self, q: &Query, _next: Next<'_>) -> Result<Answer> {
        let first = q
            .lower
            .iter()
            .next()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        match first.as_slice() {
            b"nx" => Ok(Answer::rcode(ResponseCode::NXDomain)),
            b"fail" => Err(PluginError::Rcode(ResponseCode::ServFail)),
            b"slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(a_answer())
            }
            _ => Ok(a_answer()),
        }
    }
}

async fn run(body: &str, names: &[&str]) -> Vec<String> {
    let (out, _g) = capture();
    let cfg = parse_block(body).unwrap();
    let chain = Chain::new(vec![Arc::new(Log::new(&cfg)), Arc::new(Fake)]);
    for n in names {
        let mut q = query("127.0.0.1:5353", Transport::Udp, None);
        q.lower = name(n);
        q.name = q.lower.clone();
        let got = chain.serve(&q).await;
        // The result passes through unchanged.
        assert_eq!(got.is_err(), n.starts_with("fail"), "{n}");
    }
    out.lines()
        .iter()
        .map(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix("INFO clusterdns::query: ")
                .unwrap_or_else(|| panic!("not an INFO line of target clusterdns::query: {l}"));
            rest.to_string()
        })
        .collect()
}

const NAMES: [&str; 3] = ["ok.example.org.", "nx.example.org.", "fail.example.org."];

#[tokio::test]
async fn every_query_is_logged_by_default_through_tracing() {
    let lines = run("log . \"{name} {rcode}\"", &NAMES).await;
    assert_eq!(
        lines,
        [
            "ok.example.org. NOERROR",
            "nx.example.org. NXDOMAIN",
            "fail.example.org. SERVFAIL"
        ]
    );
}

#[tokio::test]
async fn class_filters_select_denials_or_errors() {
    let body =
        |class: &str| format!("log . \"{{name}} {{rcode}}\" {{\n        class {class}\n    }}");
    assert_eq!(
        run(&body("denial"), &NAMES).await,
        ["nx.example.org. NXDOMAIN"]
    );
    assert_eq!(
        run(&body("error"), &NAMES).await,
        ["fail.example.org. SERVFAIL"]
    );
    assert_eq!(
        run(&body("success"), &NAMES).await,
        ["ok.example.org. NOERROR"]
    );
    assert_eq!(run(&body("success error"), &NAMES).await.len(), 2);
}

#[tokio::test]
async fn names_limit_logging_to_their_zones() {
    let lines = run(
        "log example.net sub.example.org {name}",
        &[
            "a.sub.example.org.",
            "other.example.org.",
            "x.example.net.",
            "sub.example.org.",
        ],
    )
    .await;
    assert_eq!(
        lines,
        ["a.sub.example.org.", "x.example.net.", "sub.example.org."]
    );
}

#[tokio::test(start_paused = true)]
async fn min_duration_also_logs_slow_responses() {
    let body = "log . {name} {\n        class error\n        minDuration 1s\n    }";
    let lines = run(body, &["ok.example.org.", "slow.example.org."]).await;
    assert_eq!(lines, ["slow.example.org."]);
}
