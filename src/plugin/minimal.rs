//! `minimal`: drops the authority and additional sections of successful
//! answers, so responses are as small as they can be (CoreDNS's `minimal`,
//! BIND's `minimal-responses`).
//!
//! # Description
//! The plugin lets the rest of the chain answer, then looks at the answer the
//! way CoreDNS's `response.Typify` classifies it and strips only a plain
//! success:
//!
//! | answer (rcode, sections) | CoreDNS type | sent |
//! |---|---|---|
//! | NOERROR with records in the answer section | NOERROR | answer section only |
//! | NOERROR, empty answer, no SOA and no NS in authority | NOERROR | answer section only |
//! | NOERROR, empty answer, SOA in authority | NODATA | unchanged |
//! | NOERROR, empty answer, NS (no SOA) in authority | DELEGATION | unchanged |
//! | NXDOMAIN, SERVFAIL, NOTIMP, REFUSED, ... | denial / error | unchanged |
//! | AXFR / IXFR question | META | unchanged |
//!
//! Negative answers keep their SOA (caches need it for the negative TTL) and
//! delegations keep their NS and glue. The header (rcode, flags) is never
//! changed. An error from the rest of the chain passes through unchanged.
//!
//! Not done, unlike CoreDNS: a DNSSEC (`DO`) answer carrying an expired RRSIG
//! is not singled out (CoreDNS leaves it unstripped); clusterdns does not
//! sign or validate, so such answers only come from upstreams and are
//! stripped like any other success.
//!
//! # Syntax
//! ```text
//! minimal
//! ```
//! No arguments and no block.
//!
//! # Examples
//! ```text
//! example.org {
//!     whoami
//!     forward . 8.8.8.8
//!     minimal
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// Parse `minimal` (no arguments, no block).
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<MinimalConfig, CorefileError> {
    d.expect_end()?;
    d.expect_no_block()?;
    Ok(MinimalConfig)
}

/// Parsed `minimal` settings (there are none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinimalConfig;

/// The `minimal` plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Minimal;

/// Whether `a`, the answer to a `qtype` question, is a plain success that
/// `minimal` strips (CoreDNS's `response.NoError` type).
pub fn is_plain_success(qtype: RecordType, a: &Answer) -> bool {
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) || a.rcode != ResponseCode::NoError {
        return false;
    }
    if !a.answers.is_empty() {
        return true;
    }
    let has = |t: RecordType| a.authority.iter().any(|rr| rr.record_type() == t);
    !has(RecordType::SOA) && !has(RecordType::NS)
}

/// Strip the authority and additional sections of `a` if it is a plain success.
pub fn minimize(qtype: RecordType, a: &mut Answer) {
    if is_plain_success(qtype, a) {
        a.authority.clear();
        a.additionals.clear();
    }
}

#[async_trait::async_trait]
impl Plugin for Minimal {
    fn name(&self) -> &'static str {
        "minimal"
    }

    /// What it strips depends only on the answer it got back.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let mut a = next.serve(q).await?;
        minimize(q.qtype, &mut a);
        Ok(a)
    }
}

crate::plugin::build::build_plugin!(MinimalConfig, |_config, _ctx| Minimal);

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::Path;
    use std::sync::Arc;

    use hickory_proto::rr::rdata::{A, NS, SOA};
    use hickory_proto::rr::{Name, RData, Record};

    use super::*;
    use crate::corefile::{MemFs, parse_str};
    use crate::dns::Transport;
    use crate::plugin::Chain;

    fn parse_line(line: &str) -> std::result::Result<MinimalConfig, CorefileError> {
        let src = format!(". {{\n    {line}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
        let dir = c.blocks[0].directives[0].clone();
        parse(&mut Dispenser::new(&dir))
    }

    #[test]
    fn minimal_takes_no_arguments_and_no_block() {
        assert_eq!(parse_line("minimal"), Ok(MinimalConfig));
        let cases = [
            (
                "minimal on",
                "Corefile:2:13: minimal: unexpected argument 'on'",
            ),
            (
                "minimal {\n        x\n    }",
                "Corefile:2:5: minimal: takes no block",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).unwrap_err().to_string(), want, "{line}");
        }
    }

    fn name() -> Name {
        Name::from_ascii("a.example.").unwrap()
    }
    fn a_rr() -> Record {
        Record::from_rdata(name(), 30, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))))
    }
    fn ns_rr() -> Record {
        let ns = Name::from_ascii("ns.example.").unwrap();
        Record::from_rdata(Name::from_ascii("example.").unwrap(), 30, RData::NS(NS(ns)))
    }
    fn soa_rr() -> Record {
        let n = Name::from_ascii("example.").unwrap();
        let soa = SOA::new(n.clone(), n.clone(), 1, 7200, 1800, 86400, 30);
        Record::from_rdata(n, 30, RData::SOA(soa))
    }
    fn glue_rr() -> Record {
        let ns = Name::from_ascii("ns.example.").unwrap();
        Record::from_rdata(ns, 30, RData::A(A(Ipv4Addr::new(192, 0, 2, 53))))
    }

    /// (rcode, answer, authority, additional).
    fn answer(rcode: ResponseCode, ans: &[Record], auth: &[Record], add: &[Record]) -> Answer {
        let mut a = Answer::rcode(rcode);
        a.authoritative = true;
        a.answers = ans.to_vec();
        a.authority = auth.to_vec();
        a.additionals = add.to_vec();
        a
    }

    #[test]
    fn only_plain_successes_are_stripped() {
        use ResponseCode::*;
        // (case, qtype, answer before, stripped?)
        let cases = [
            (
                "data with NS and glue",
                RecordType::A,
                answer(NoError, &[a_rr()], &[ns_rr()], &[glue_rr()]),
                true,
            ),
            (
                "data with SOA",
                RecordType::A,
                answer(NoError, &[a_rr()], &[soa_rr()], &[]),
                true,
            ),
            (
                "empty, no SOA or NS",
                RecordType::A,
                answer(NoError, &[], &[], &[glue_rr()]),
                true,
            ),
            (
                "nodata",
                RecordType::AAAA,
                answer(NoError, &[], &[soa_rr()], &[glue_rr()]),
                false,
            ),
            (
                "delegation",
                RecordType::A,
                answer(NoError, &[], &[ns_rr()], &[glue_rr()]),
                false,
            ),
            (
                "nxdomain",
                RecordType::A,
                answer(NXDomain, &[], &[soa_rr()], &[glue_rr()]),
                false,
            ),
            (
                "nxdomain with answers",
                RecordType::A,
                answer(NXDomain, &[a_rr()], &[soa_rr()], &[]),
                false,
            ),
            (
                "servfail",
                RecordType::A,
                answer(ServFail, &[], &[ns_rr()], &[glue_rr()]),
                false,
            ),
            (
                "refused",
                RecordType::A,
                answer(Refused, &[a_rr()], &[ns_rr()], &[]),
                false,
            ),
            (
                "axfr",
                RecordType::AXFR,
                answer(NoError, &[soa_rr()], &[ns_rr()], &[glue_rr()]),
                false,
            ),
        ];
        for (case, qtype, before, stripped) in cases {
            assert_eq!(is_plain_success(qtype, &before), stripped, "{case}");
            let mut after = before.clone();
            minimize(qtype, &mut after);
            if stripped {
                let mut want = before.clone();
                want.authority.clear();
                want.additionals.clear();
                assert_eq!(after, want, "{case}");
            } else {
                assert_eq!(after, before, "{case}");
            }
        }
    }

    /// Answers with a fixed answer.
    struct Fixed(Answer);

    #[async_trait::async_trait]
    impl Plugin for Fixed {
        fn name(&self) -> &'static str {
            "whoami"
        }
        async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
            Ok(self.0.clone())
        }
    }

    fn query(qtype: RecordType) -> Query {
        let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        Query::new(name(), qtype, src, Transport::Udp)
    }

    #[tokio::test]
    async fn through_a_chain_the_writer_and_header_are_kept() {
        let full = answer(ResponseCode::NoError, &[a_rr()], &[ns_rr()], &[glue_rr()]);
        let chain = Chain::new(vec![Arc::new(Fixed(full.clone())), Arc::new(Minimal)]);
        let got = chain.serve(&query(RecordType::A)).await.unwrap();
        assert_eq!(got.answers, full.answers);
        assert!(got.authority.is_empty() && got.additionals.is_empty());
        assert!(got.authoritative);
        assert_eq!(got.writer, "whoami");

        let nodata = answer(ResponseCode::NoError, &[], &[soa_rr()], &[]);
        let chain = Chain::new(vec![Arc::new(Minimal), Arc::new(Fixed(nodata.clone()))]);
        let got = chain.serve(&query(RecordType::AAAA)).await.unwrap();
        assert_eq!(got.authority, nodata.authority);
    }

    #[tokio::test]
    async fn an_error_from_the_chain_passes_through() {
        let chain = Chain::new(vec![Arc::new(Minimal)]);
        let err = chain.serve(&query(RecordType::A)).await.unwrap_err();
        assert!(
            matches!(err, crate::plugin::PluginError::NoNextPlugin),
            "{err:?}"
        );
    }
}
