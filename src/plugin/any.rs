//! `any`: answers ANY queries the RFC 8482 way, so they never fan out into the chain.
//!
//! # Description
//! An `ANY` question is a common amplification vector and no client needs its
//! full answer. This plugin answers every `ANY` query itself with a single
//! synthesized HINFO record and hands every other query to the next plugin.
//!
//! Invariant: an ANY query never reaches the rest of the chain; any other query
//! always does, unchanged.
//!
//! # Syntax
//! ```text
//! any
//! ```
//! No arguments and no block.
//!
//! The answer is CoreDNS's exactly: `<qname> 8482 IN HINFO "ANY obsoleted" "See RFC 8482"`
//! (RFC 8482 §4.2 lets the responder choose the HINFO strings; CoreDNS's are
//! kept so that a drop-in swap answers byte-for-byte the same), NOERROR, not
//! authoritative, the owner name as the client spelled it.
//!
//! # Examples
//! ```text
//! . {
//!     any
//!     forward . 8.8.8.8
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// TTL of the synthesized HINFO record (CoreDNS's choice: the RFC's number).
pub const HINFO_TTL: u32 = 8482;
/// HINFO CPU string of the synthesized record.
pub const HINFO_CPU: &str = "ANY obsoleted";
/// HINFO OS string of the synthesized record.
pub const HINFO_OS: &str = "See RFC 8482";

/// Parse `any` (no arguments, no block).
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<(), CorefileError> {
    d.expect_end()?;
    match d.block().first() {
        Some(line) => Err(d.unknown_property(line)),
        None => Ok(()),
    }
}

/// The `any` plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Any;

/// The RFC 8482 answer to an ANY query for `q`.
pub fn answer(q: &Query) -> Answer {
    let mut a = Answer::rcode(ResponseCode::NoError);
    let hinfo = HINFO::new(HINFO_CPU.to_string(), HINFO_OS.to_string());
    a.answers.push(Record::from_rdata(
        q.name.clone(),
        HINFO_TTL,
        RData::HINFO(hinfo),
    ));
    a
}

#[async_trait::async_trait]
impl Plugin for Any {
    fn name(&self) -> &'static str {
        "any"
    }

    /// A query it passed on is not ANY, and never will be.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        if q.qtype == RecordType::ANY {
            return Ok(answer(q));
        }
        next.serve(q).await
    }
}

crate::plugin::build::build_plugin!(Any, |any, _ctx| *any);

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

    fn query(name: &str, qtype: RecordType) -> Query {
        let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        Query::new(Name::from_ascii(name).unwrap(), qtype, src, Transport::Udp)
    }

    fn parse_line(line: &str) -> std::result::Result<(), CorefileError> {
        let src = format!(". {{\n    {line}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
        let dir = c.blocks[0].directives[0].clone();
        parse(&mut Dispenser::new(&dir))
    }

    #[test]
    fn any_takes_no_arguments_and_no_block() {
        assert!(parse_line("any").is_ok());
        let cases = [
            ("any foo", "Corefile:2:9: any: unexpected argument 'foo'"),
            (
                "any {\n        bar\n    }",
                "Corefile:3:9: any: unknown property 'bar'",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).unwrap_err().to_string(), want, "{line}");
        }
    }

    #[tokio::test]
    async fn any_queries_get_one_hinfo_and_never_reach_the_chain() {
        let hits = Arc::new(AtomicUsize::new(0));
        let chain = Chain::new(vec![Arc::new(Counter(hits.clone())), Arc::new(Any)]);
        let a = chain
            .serve(&query("Example.ORG.", RecordType::ANY))
            .await
            .unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(a.writer, "any");
        assert!(!a.authoritative);
        assert_eq!(a.answers.len(), 1);
        let rr = &a.answers[0];
        assert_eq!(rr.name.to_string(), "Example.ORG.");
        assert_eq!(rr.ttl, 8482);
        let RData::HINFO(h) = &rr.data else {
            panic!("not HINFO: {rr:?}");
        };
        assert_eq!(h.cpu.as_ref(), b"ANY obsoleted");
        assert_eq!(h.os.as_ref(), b"See RFC 8482");
    }

    #[tokio::test]
    async fn other_query_types_pass_through_untouched() {
        let hits = Arc::new(AtomicUsize::new(0));
        let chain = Chain::new(vec![Arc::new(Any), Arc::new(Counter(hits.clone()))]);
        for qtype in [RecordType::A, RecordType::TXT, RecordType::HINFO] {
            let a = chain.serve(&query("example.org.", qtype)).await.unwrap();
            assert_eq!(a.rcode, ResponseCode::NXDomain);
            assert_eq!(a.writer, "whoami");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }
}
