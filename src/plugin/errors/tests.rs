use std::net::SocketAddr;
use std::path::Path;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::Chain;
use crate::plugin::log::capture::capture;

fn parse_block(body: &str) -> std::result::Result<ErrorsConfig, CorefileError> {
    let src = format!(". {{\n    {body}\n}}\n");
    let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let dir = c.blocks[0].directives[0].clone();
    parse(&mut Dispenser::new(&dir))
}

#[test]
fn consolidate_lines_parse_with_coredns_defaults() {
    let cfg = parse_block("errors").unwrap();
    assert!(cfg.consolidate.is_empty());
    assert!(parse_block("errors stdout").is_ok());

    let cfg = parse_block(
        "errors {\n        consolidate 5m \".* i/o timeout$\" warning\n        \
         consolidate 30s \"^Failed to .+\"\n        \
         consolidate 1s ^x info show_first\n        consolidate 2s ^y show_first\n    }",
    )
    .unwrap();
    let got: Vec<(Duration, &str, Level, bool)> = cfg
        .consolidate
        .iter()
        .map(|c| (c.period, c.regex.as_str(), c.level, c.show_first))
        .collect();
    let s = Duration::from_secs;
    assert_eq!(
        got,
        [
            (s(300), ".* i/o timeout$", Level::Warning, false),
            (s(30), "^Failed to .+", Level::Error, false),
            (s(1), "^x", Level::Info, true),
            (s(2), "^y", Level::Error, true),
        ]
    );
}

#[test]
fn bad_errors_lines_are_reported_at_the_offending_token() {
    let c = |l: &str| format!("errors {{\n        {l}\n    }}");
    let cases = [
        (
            "errors foo".to_string(),
            "Corefile:2:12: errors: invalid log file: foo",
        ),
        (
            "errors stdout x".to_string(),
            "Corefile:2:19: errors: unexpected argument 'x'",
        ),
        (
            c("consolidate"),
            "Corefile:3:9: errors: consolidate: missing argument: DURATION",
        ),
        (
            c("consolidate 5s"),
            "Corefile:3:21: errors: consolidate: missing argument: REGEXP",
        ),
        (
            c("consolidate 5x re"),
            "Corefile:3:21: errors: consolidate: DURATION: invalid duration '5x' (use e.g. 30s, 1m30s, 500ms)",
        ),
        (
            c("consolidate 5s re loud"),
            "Corefile:3:27: errors: consolidate: unknown log level 'loud' (use warning, error, info or debug)",
        ),
        (
            c("consolidate 5s re show_first warning"),
            "Corefile:3:38: errors: consolidate: unexpected argument 'warning'",
        ),
        (
            c("consolidate 5s re info show_first x"),
            "Corefile:3:43: errors: consolidate: unexpected argument 'x'",
        ),
        (
            c("stacktrace"),
            "Corefile:3:9: errors: stacktrace: not supported by clusterdns: a panicking query is \
             logged by Rust's panic hook; set RUST_BACKTRACE=1 for backtraces (process-wide)",
        ),
        (
            c("panicRecoveryStacktrace"),
            "Corefile:3:9: errors: unknown property 'panicRecoveryStacktrace'",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(parse_block(&body).unwrap_err().to_string(), want, "{body}");
    }
    let e = parse_block(&c("consolidate 5s (unclosed"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Corefile:3:24: errors: consolidate: bad REGEXP: "),
        "{e}"
    );
    let long = format!("consolidate 5s {}", "a".repeat(10_001));
    let e = parse_block(&c(&long)).unwrap_err().to_string();
    assert_eq!(
        e,
        "Corefile:3:24: errors: consolidate: REGEXP longer than 10000 characters"
    );
}

#[test]
fn durations_print_the_way_go_prints_them() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(15), "15ns"),
        (Duration::from_micros(1500), "1.5ms"),
        (Duration::from_nanos(2_500), "2.5µs"),
        (Duration::from_millis(500), "500ms"),
        (Duration::from_secs(30), "30s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_secs(300), "5m0s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_millis(3_723_250), "1h2m3.25s"),
    ];
    for (d, want) in cases {
        assert_eq!(go_duration(d), want, "{d:?}");
    }
}

/// The last plugin: fails with `rcode` (SERVFAIL answer for `Ok`).
struct Fake(Option<ResponseCode>);

#[async_trait::async_trait]
impl Plugin for Fake {
    fn name(&self) -> &'static str {
        "whoami"
    }
    async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
        match self.0 {
            Some(rc) => Err(PluginError::Rcode(rc)),
            None => Ok(Answer::rcode(ResponseCode::ServFail)),
        }
    }
}

fn query() -> Query {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let name = Name::from_ascii("Example.ORG.").unwrap();
    Query::new(name, RecordType::A, src, Transport::Udp)
}

fn chain(body: &str, last: Option<Fake>, token: &CancellationToken) -> Chain {
    let cfg = parse_block(body).unwrap();
    let mut plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(Errors::new(&cfg, token.clone()))];
    plugins.extend(last.map(|f| Arc::new(f) as Arc<dyn Plugin>));
    Chain::new(plugins)
}

fn trimmed(lines: Vec<String>) -> Vec<String> {
    lines.iter().map(|l| l.trim_start().to_string()).collect()
}

#[tokio::test]
async fn chain_errors_are_logged_like_coredns_and_returned_unchanged() {
    let (out, _g) = capture();
    let token = CancellationToken::new();
    let c = chain("errors", None, &token);
    let err = c.serve(&query()).await.unwrap_err();
    assert!(matches!(err, PluginError::NoNextPlugin));
    let c = chain("errors", Some(Fake(Some(ResponseCode::Refused))), &token);
    let err = c.serve(&query()).await.unwrap_err();
    assert_eq!(err.rcode(), ResponseCode::Refused);
    assert_eq!(
        trimmed(out.lines()),
        [
            "ERROR clusterdns::plugin::errors: 2 example.org. A: no next plugin found".to_string(),
            format!(
                "ERROR clusterdns::plugin::errors: 5 example.org. A: {}",
                ResponseCode::Refused
            ),
        ]
    );
}

#[tokio::test]
async fn answers_are_not_errors_even_with_a_failing_rcode() {
    let (out, _g) = capture();
    let c = chain("errors", Some(Fake(None)), &CancellationToken::new());
    let a = c.serve(&query()).await.unwrap();
    assert_eq!(a.rcode, ResponseCode::ServFail);
    assert_eq!(out.text(), "");
}

const CONSOLIDATE: &str = "errors {\n        consolidate 30s ^no.next warning\n    }";

#[tokio::test(start_paused = true)]
async fn matching_errors_are_counted_and_summarised_once_per_period() {
    let (out, _g) = capture();
    let c = chain(CONSOLIDATE, None, &CancellationToken::new());
    for _ in 0..3 {
        assert!(c.serve(&query()).await.is_err());
    }
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(out.text(), "", "nothing before the period ends");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = "WARN clusterdns::plugin::errors: 3 errors like '^no.next' occurred in last 30s";
    assert_eq!(trimmed(out.lines()), [summary]);

    // A new period starts with the next error; a lone error is still summarised.
    assert!(c.serve(&query()).await.is_err());
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        trimmed(out.lines()),
        [
            summary,
            "WARN clusterdns::plugin::errors: 1 errors like '^no.next' occurred in last 30s"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn errors_that_match_no_pattern_are_logged_at_once() {
    let (out, _g) = capture();
    let c = chain(
        CONSOLIDATE,
        Some(Fake(Some(ResponseCode::ServFail))),
        &CancellationToken::new(),
    );
    assert!(c.serve(&query()).await.is_err());
    assert_eq!(out.lines().len(), 1);
    assert!(
        out.text()
            .contains("ERROR clusterdns::plugin::errors: 2 example.org. A: ")
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(out.lines().len(), 1, "no summary for unmatched errors");
}

#[tokio::test(start_paused = true)]
async fn show_first_logs_the_first_error_and_summarises_only_repeats() {
    let (out, _g) = capture();
    let body = "errors {\n        consolidate 10s ^no info show_first\n    }";
    let c = chain(body, None, &CancellationToken::new());
    let first = "INFO clusterdns::plugin::errors: 2 example.org. A: no next plugin found";

    assert!(c.serve(&query()).await.is_err());
    assert_eq!(trimmed(out.lines()), [first], "shown immediately");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        trimmed(out.lines()),
        [first],
        "a single error gets no summary"
    );

    for _ in 0..3 {
        assert!(c.serve(&query()).await.is_err());
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        trimmed(out.lines()),
        [
            first,
            first,
            "INFO clusterdns::plugin::errors: 3 errors like '^no' occurred in last 10s"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn pending_counts_are_flushed_when_the_configuration_is_replaced() {
    let (out, _g) = capture();
    let token = CancellationToken::new();
    let c = chain(CONSOLIDATE, None, &token);
    assert!(c.serve(&query()).await.is_err());
    assert!(c.serve(&query()).await.is_err());
    token.cancel();
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        trimmed(out.lines()),
        ["WARN clusterdns::plugin::errors: 2 errors like '^no.next' occurred in last 30s"]
    );
}
