//! `chaos`: answers the CH-class TXT questions operators ask a server about
//! itself (`dig CH TXT version.bind`), as CoreDNS's `chaos` does.
//!
//! # Description
//! A `TXT` query in class `CH` for one of five well-known names gets a
//! synthesized answer; every other query (another class, type or name) goes
//! to the next plugin unchanged:
//!
//! | name | answer |
//! |---|---|
//! | `version.bind`, `version.server` | one TXT: **VERSION** |
//! | `authors.bind` | one TXT per author |
//! | `hostname.bind`, `id.server` | one TXT: the host name (`localhost` if unknown) |
//!
//! The records are `<qname> 0 CH TXT "..."` with the owner name as the client
//! spelled it (names match case-insensitively); NOERROR, not authoritative.
//! Each string is cut to 255 bytes (at a character boundary), the most a TXT
//! string holds.
//!
//! # Syntax
//! ```text
//! chaos [VERSION] [AUTHORS...]
//! ```
//! - **VERSION** defaults to `clusterdns-<version>` (CoreDNS: `CoreDNS-<version>`).
//! - **AUTHORS** defaults to `clusterdns` (CoreDNS: the handles in its OWNERS
//!   files). Duplicates are dropped and the list is sorted; CoreDNS shuffles
//!   the order per query, we answer the sorted order every time.
//!
//! No block. The host name is read when the configuration is built (at start
//! and at every reload), from `/proc/sys/kernel/hostname` as Go's
//! `os.Hostname` does on Linux.
//!
//! The block must receive these queries: its zones must cover the names
//! (`.` does, or list `version.bind version.server authors.bind hostname.bind id.server`).
//!
//! # Examples
//! ```text
//! . {
//!     chaos clusterdns-001 info@example.org
//! }
//! ```
//! `dig @127.0.0.1 CH TXT version.bind` then answers `version.bind. 0 CH TXT "clusterdns-001"`.
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// The default VERSION.
pub const DEFAULT_VERSION: &str = concat!("clusterdns-", env!("CARGO_PKG_VERSION"));
/// The default AUTHORS.
pub const DEFAULT_AUTHORS: &[&str] = &["clusterdns"];
/// The longest string a TXT record's character-string holds.
const MAX_TXT: usize = 255;
/// Where the kernel keeps the host name (what Go's `os.Hostname` reads).
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// Parsed `chaos` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChaosConfig {
    /// The answer to `version.bind` / `version.server`.
    pub version: String,
    /// The answers to `authors.bind`: sorted, no duplicates, never empty.
    pub authors: Vec<String>,
}

/// Parse `chaos [VERSION] [AUTHORS...]`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<ChaosConfig, CorefileError> {
    d.expect_no_block()?;
    let version = match d.next_arg() {
        Some(t) => trim(&t.text),
        None => DEFAULT_VERSION.to_string(),
    };
    let mut authors: Vec<String> = d.remaining().iter().map(|t| trim(&t.text)).collect();
    if authors.is_empty() {
        authors = DEFAULT_AUTHORS.iter().map(|a| a.to_string()).collect();
    }
    authors.sort();
    authors.dedup();
    Ok(ChaosConfig { version, authors })
}

/// `s` cut to at most 255 bytes, at a character boundary.
fn trim(s: &str) -> String {
    let mut end = s.len().min(MAX_TXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The running `chaos` plugin: the settings and the host name.
#[derive(Clone, Debug)]
pub struct Chaos {
    config: ChaosConfig,
    hostname: String,
}

impl Chaos {
    /// The plugin answering `hostname` for `hostname.bind` / `id.server`.
    pub fn new(config: &ChaosConfig, hostname: &str) -> Self {
        Self {
            config: config.clone(),
            hostname: trim(hostname),
        }
    }

    /// The answer to `q`, or `None` when `q` is not one of the CH TXT questions.
    pub fn answer(&self, q: &Query) -> Option<Answer> {
        if q.qclass != DNSClass::CH || q.qtype != RecordType::TXT {
            return None;
        }
        let lower = q.lower.to_ascii();
        let texts: Vec<&str> = match lower.as_str() {
            "version.bind." | "version.server." => vec![&self.config.version],
            "authors.bind." => self.config.authors.iter().map(String::as_str).collect(),
            "hostname.bind." | "id.server." => vec![&self.hostname],
            _ => return None,
        };
        let mut a = Answer::rcode(ResponseCode::NoError);
        a.answers = texts
            .into_iter()
            .map(|t| {
                let mut rr =
                    Record::from_rdata(q.name.clone(), 0, RData::TXT(TXT::new(vec![t.into()])));
                rr.dns_class = DNSClass::CH;
                rr
            })
            .collect();
        Some(a)
    }
}

/// The system's host name, `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    std::fs::read_to_string(HOSTNAME_FILE)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[async_trait::async_trait]
impl Plugin for Chaos {
    fn name(&self) -> &'static str {
        "chaos"
    }

    /// A query it passed on is not one of its CH TXT names, and never will be.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        match self.answer(q) {
            Some(a) => Ok(a),
            None => next.serve(q).await,
        }
    }
}

crate::plugin::build::build_plugin!(ChaosConfig, |config, _ctx| Chaos::new(
    config,
    &system_hostname()
));

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_proto::rr::Name;

    use super::*;
    use crate::corefile::{MemFs, parse_str};
    use crate::dns::Transport;
    use crate::plugin::Chain;
    use crate::plugin::build::Counter;

    fn query(name: &str, qtype: RecordType, class: DNSClass) -> Query {
        let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let mut q = Query::new(Name::from_ascii(name).unwrap(), qtype, src, Transport::Udp);
        q.qclass = class;
        q
    }

    fn parse_line(line: &str) -> std::result::Result<ChaosConfig, CorefileError> {
        let src = format!(". {{\n    {line}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
        let dir = c.blocks[0].directives[0].clone();
        parse(&mut Dispenser::new(&dir))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_takes_a_version_then_authors_with_defaults() {
        let long = "v".repeat(300);
        let cases = [
            (
                "chaos",
                DEFAULT_VERSION.to_string(),
                strings(DEFAULT_AUTHORS),
            ),
            ("chaos v1", "v1".into(), strings(DEFAULT_AUTHORS)),
            (
                "chaos v1 zed amy zed",
                "v1".into(),
                strings(&["amy", "zed"]),
            ),
            (
                &format!("chaos {long} {long}"),
                "v".repeat(255),
                vec!["v".repeat(255)],
            ),
        ];
        for (line, version, authors) in cases {
            let got = parse_line(line).unwrap();
            assert_eq!(got, ChaosConfig { version, authors }, "{line}");
        }
        assert!(DEFAULT_VERSION.starts_with("clusterdns-0."));
    }

    #[test]
    fn a_block_is_an_error_at_its_line() {
        let err = parse_line("chaos v1 {\n        foo\n    }").unwrap_err();
        assert_eq!(err.to_string(), "Corefile:2:5: chaos: takes no block");
    }

    #[test]
    fn trim_cuts_at_a_character_boundary() {
        // 'é' is two bytes: 127 of them are 254 bytes, the 128th would cross 255.
        let s = "é".repeat(200);
        assert_eq!(trim(&s), "é".repeat(127));
        assert_eq!(trim("short"), "short");
    }

    fn txts(a: &Answer) -> Vec<String> {
        a.answers
            .iter()
            .map(|rr| {
                assert_eq!(rr.dns_class, DNSClass::CH, "{rr:?}");
                assert_eq!(rr.ttl, 0);
                let RData::TXT(t) = &rr.data else {
                    panic!("not TXT: {rr:?}");
                };
                assert_eq!(t.txt_data.len(), 1, "one string per record: {rr:?}");
                String::from_utf8(t.txt_data[0].to_vec()).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_five_names_are_answered_in_ch_txt() {
        let cfg = parse_line("chaos v9 bob amy").unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let chain = Chain::new(vec![
            Arc::new(Counter(hits.clone())),
            Arc::new(Chaos::new(&cfg, "node-1")),
        ]);
        let cases: [(&str, &[&str]); 6] = [
            ("version.bind.", &["v9"]),
            ("VERSION.Server.", &["v9"]),
            ("authors.bind.", &["amy", "bob"]),
            ("hostname.bind.", &["node-1"]),
            ("id.server.", &["node-1"]),
            ("Version.Bind.", &["v9"]),
        ];
        for (name, want) in cases {
            let a = chain
                .serve(&query(name, RecordType::TXT, DNSClass::CH))
                .await
                .unwrap();
            assert_eq!(a.rcode, ResponseCode::NoError, "{name}");
            assert_eq!(a.writer, "chaos");
            assert!(!a.authoritative);
            assert_eq!(txts(&a), strings(want), "{name}");
            assert!(a.answers.iter().all(|rr| rr.name.to_string() == name));
            assert!(a.authority.is_empty() && a.additionals.is_empty());
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn other_class_type_or_name_passes_to_the_next_plugin() {
        let cfg = parse_line("chaos").unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let chain = Chain::new(vec![
            Arc::new(Chaos::new(&cfg, "h")),
            Arc::new(Counter(hits.clone())),
        ]);
        let cases = [
            ("version.bind.", RecordType::TXT, DNSClass::IN),
            ("version.bind.", RecordType::A, DNSClass::CH),
            ("version.bind.", RecordType::ANY, DNSClass::CH),
            ("x.version.bind.", RecordType::TXT, DNSClass::CH),
            ("bind.", RecordType::TXT, DNSClass::CH),
            ("example.org.", RecordType::TXT, DNSClass::CH),
        ];
        for (name, qtype, class) in cases {
            let a = chain.serve(&query(name, qtype, class)).await.unwrap();
            assert_eq!(a.rcode, ResponseCode::NXDomain, "{name} {qtype} {class}");
            assert_eq!(a.writer, "whoami");
        }
        assert_eq!(hits.load(Ordering::SeqCst), cases.len());
    }

    #[test]
    fn system_hostname_is_never_empty() {
        let h = system_hostname();
        assert!(!h.is_empty() && !h.contains('\n'), "{h:?}");
    }
}
