//! Parse tables for `header`, and its rules applied through a chain.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::{Chain, PluginError};

fn parse_line(line: &str) -> std::result::Result<HeaderConfig, CorefileError> {
    let src = format!(". {{\n    {line}\n}}\n");
    let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let dir = c.blocks[0].directives[0].clone();
    parse(&mut Dispenser::new(&dir))
}

/// `header` with these rule lines (the first at 3:9).
fn block(rules: &[&str]) -> String {
    let body: String = rules.iter().map(|r| format!("        {r}\n")).collect();
    format!("header {{\n{body}    }}")
}

fn set(flag: Flag) -> Rule {
    Rule { flag, state: true }
}
fn clear(flag: Flag) -> Rule {
    Rule { flag, state: false }
}

#[test]
fn rules_keep_their_order_per_selector() {
    let cases = [
        (vec!["response set ra"], vec![], vec![set(Flag::Ra)]),
        (
            vec!["response set ra aa", "response clear aa"],
            vec![],
            vec![set(Flag::Ra), set(Flag::Aa), clear(Flag::Aa)],
        ),
        (vec!["query set rd"], vec![set(Flag::Rd)], vec![]),
        (
            vec!["RESPONSE Clear AA", "query clear RD"],
            vec![clear(Flag::Rd)],
            vec![clear(Flag::Aa)],
        ),
    ];
    for (rules, query, response) in cases {
        let got = parse_line(&block(&rules)).unwrap();
        assert_eq!(got, HeaderConfig { query, response }, "{rules:?}");
    }
}

#[test]
fn bad_lines_are_errors_at_their_position() {
    let cases = [
        (
            "header".to_string(),
            "Corefile:2:5: header: expects a block with at least one rule (SELECTOR ACTION FLAGS...)",
        ),
        (
            "header {\n    }".to_string(),
            "Corefile:2:5: header: expects a block with at least one rule (SELECTOR ACTION FLAGS...)",
        ),
        (
            format!(
                "header foo {}",
                &block(&["response set aa"])["header ".len()..]
            ),
            "Corefile:2:12: header: unexpected argument 'foo'",
        ),
        (
            block(&["request set aa"]),
            "Corefile:3:9: header: invalid selector 'request', should be query or response",
        ),
        (
            block(&["response"]),
            "Corefile:3:9: header: response: missing argument: set or clear",
        ),
        (
            block(&["response toggle aa"]),
            "Corefile:3:18: header: response: unknown action 'toggle', should be set or clear",
        ),
        (
            block(&["response set"]),
            "Corefile:3:18: header: response: missing argument: FLAGS",
        ),
        (
            block(&["response set aa xx"]),
            "Corefile:3:25: header: response: unknown flag 'xx', should be aa, ra or rd",
        ),
        (
            block(&["response set ra", "response clear rd"]),
            "Corefile:4:24: header: response: flag 'rd' in response rules is not supported by \
             clusterdns: the response's RD bit always echoes the client's query; \
             `query set|clear rd` changes what the chain sees",
        ),
        (
            block(&["query set rd ra"]),
            "Corefile:3:22: header: query: flag 'ra' in query rules is not supported by \
             clusterdns: no clusterdns plugin reads it from a query",
        ),
        (
            block(&["query clear aa"]),
            "Corefile:3:21: header: query: flag 'aa' in query rules is not supported by \
             clusterdns: no clusterdns plugin reads it from a query",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse_line(&line).unwrap_err().to_string(), want, "{line}");
    }
}

/// Records the RD bit of the query it sees and answers with fixed AA/RA.
struct Fixed {
    aa: bool,
    ra: bool,
    seen_rd: Arc<Mutex<Vec<bool>>>,
}

#[async_trait::async_trait]
impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        "whoami"
    }
    async fn serve(&self, q: &Query, _next: Next<'_>) -> Result<Answer> {
        self.seen_rd.lock().unwrap().push(q.recursion_desired);
        let mut a = Answer::rcode(ResponseCode::NoError);
        a.authoritative = self.aa;
        a.recursion_available = self.ra;
        Ok(a)
    }
}

fn query(rd: bool) -> Query {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut q = Query::new(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::A,
        src,
        Transport::Udp,
    );
    q.recursion_desired = rd;
    q
}

/// (rules, (aa, ra) written by the next plugin, client's rd) => (aa, ra, rd seen).
type Case = (
    &'static [&'static str],
    (bool, bool),
    bool,
    (bool, bool, bool),
);

#[tokio::test]
async fn rules_force_flags_whatever_the_chain_and_client_said() {
    let cases: [Case; 6] = [
        (
            &["response set ra"],
            (false, false),
            true,
            (false, true, true),
        ),
        (
            &["response set ra aa"],
            (false, false),
            true,
            (true, true, true),
        ),
        (
            &["response clear aa ra"],
            (true, true),
            true,
            (false, false, true),
        ),
        (
            &["response set aa", "response clear aa"],
            (false, true),
            true,
            (false, true, true),
        ),
        (
            &["query clear rd"],
            (true, false),
            true,
            (true, false, false),
        ),
        (
            &["query clear rd", "query set rd", "response set ra"],
            (false, false),
            false,
            (false, true, true),
        ),
    ];
    for (rules, (aa, ra), rd, want) in cases {
        let cfg = parse_line(&block(rules)).unwrap();
        let seen_rd = Arc::new(Mutex::new(Vec::new()));
        let chain = Chain::new(vec![
            Arc::new(Fixed {
                aa,
                ra,
                seen_rd: seen_rd.clone(),
            }),
            Arc::new(Header { config: cfg }),
        ]);
        let a = chain.serve(&query(rd)).await.unwrap();
        let seen = seen_rd.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{rules:?}");
        assert_eq!(
            (a.authoritative, a.recursion_available, seen[0]),
            want,
            "{rules:?}"
        );
        assert_eq!(a.writer, "whoami");
    }
}

#[tokio::test]
async fn an_error_from_the_chain_passes_through() {
    let cfg = parse_line(&block(&["response set aa"])).unwrap();
    let chain = Chain::new(vec![Arc::new(Header { config: cfg })]);
    let err = chain.serve(&query(true)).await.unwrap_err();
    assert!(matches!(err, PluginError::NoNextPlugin), "{err:?}");
}

#[test]
fn without_query_rules_the_query_is_borrowed() {
    let q = query(true);
    assert!(matches!(apply_query(&[], &q), Cow::Borrowed(_)));
    assert!(!apply_query(&[clear(Flag::Rd)], &q).recursion_desired);
}
