//! `local`: answers "local" names (localhost and the loopback/this-network
//! reverse zones) itself, so they never escape to an upstream (CoreDNS's `local`).
//!
//! # Description
//! Local requests are names in the zones `localhost.`, `0.in-addr.arpa.`,
//! `127.in-addr.arpa.` and `255.in-addr.arpa.`, any name under `.localhost.`
//! (RFC 6761), and, unless `localhost_prefix off`, any name starting with the
//! label `localhost` (`localhost.localdomain.`, `localhost.example.org.`: the
//! legacy form). Every other query goes to the next plugin.
//!
//! | question | answer |
//! |---|---|
//! | `localhost.`, a name under `.localhost.`, a legacy `localhost.<domain>` — A | `127.0.0.1` |
//! | the same — AAAA | `::1` |
//! | a name under `.localhost.` or legacy `localhost.<domain>` — other types | NOERROR, SOA (owner: the name) in authority |
//! | a zone apex — SOA | the zone's SOA |
//! | a zone apex — NS | `<apex> NS localhost.` |
//! | a zone apex — anything else (A/AAAA of a reverse apex too) | NOERROR, SOA in authority |
//! | `1.0.0.127.in-addr.arpa.` — PTR | `localhost.` |
//! | `1.0.0.127.in-addr.arpa.` — other types | NOERROR, zone SOA in authority |
//! | any other name in the zones | NXDOMAIN, zone SOA in authority |
//!
//! The SOA is `<owner> SOA localhost. root.localhost. 1 0 0 0 604800`; every
//! record has TTL 604800 (a week) and keeps the name as the client spelled it
//! (matching is case-insensitive). Answers are not authoritative (AA clear),
//! as CoreDNS's. Only `in-addr.arpa.` is covered; `ip6.arpa.` queries pass on
//! (as CoreDNS, documented there as a bug).
//!
//! # Syntax
//! ```text
//! local
//! local {
//!     localhost_prefix on|off
//! }
//! ```
//! `localhost_prefix` (default `on`, CoreDNS's default for backward
//! compatibility): `off` treats only names under `.localhost.` as special.
//!
//! # Examples
//! ```text
//! . {
//!     local
//!     forward . /etc/resolv.conf
//! }
//! ```
//!
//! # Metrics
//! `coredns_local_localhost_requests_total` (no labels): non-apex localhost
//! queries (under `.localhost.`, or the legacy prefix); not `localhost.`
//! itself. Each one is also logged at debug level with the client address.
//! # Ready: does not report readiness.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::{IntCounter, Registry};

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::build::Family;
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// TTL of every record `local` writes (CoreDNS's: one week).
pub const TTL: u32 = 604_800;
/// The zones `local` answers for.
const ZONES: [&str; 4] = [
    "localhost.",
    "0.in-addr.arpa.",
    "127.in-addr.arpa.",
    "255.in-addr.arpa.",
];
/// The one reverse name with data.
const LOOPBACK_PTR: &str = "1.0.0.127.in-addr.arpa.";

/// Parsed `local` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    /// Whether legacy `localhost.<domain>` names are answered (`localhost_prefix on`).
    pub localhost_prefix: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            localhost_prefix: true,
        }
    }
}

/// Parse `local [{ localhost_prefix on|off }]`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<LocalConfig, CorefileError> {
    d.expect_end()?;
    let mut cfg = LocalConfig::default();
    for line in d.block() {
        if line.name.text != "localhost_prefix" {
            return Err(d.unknown_property(line));
        }
        let mut sub = d.sub(line);
        let value = sub.expect_arg("on or off")?;
        cfg.localhost_prefix = match value.text.as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(sub.err_at(value, format!("expects 'on' or 'off', got '{other}'")));
            }
        };
        sub.expect_end()?;
        sub.expect_no_block()?;
    }
    Ok(cfg)
}

/// What [`respond`] decided for a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Local {
    /// Not a local name: the next plugin answers.
    Pass,
    /// A local answer; `counted` for the non-apex localhost forms (the metric).
    Answer {
        /// The answer to send.
        answer: Answer,
        /// Whether it counts in `coredns_local_localhost_requests_total`.
        counted: bool,
    },
}

fn soa(owner: &Name) -> Record {
    let localhost = Name::from_ascii("localhost.").unwrap_or_else(|_| Name::root());
    let root = Name::from_ascii("root.localhost.").unwrap_or_else(|_| Name::root());
    let soa = SOA::new(localhost, root, 1, 0, 0, 0, TTL);
    Record::from_rdata(owner.clone(), TTL, RData::SOA(soa))
}

fn record(owner: &Name, data: RData) -> Record {
    Record::from_rdata(owner.clone(), TTL, data)
}

fn localhost() -> Name {
    Name::from_ascii("localhost.").unwrap_or_else(|_| Name::root())
}

/// The answer for a name under `.localhost.` or a legacy `localhost.<domain>`.
fn localhost_answer(q: &Query) -> Answer {
    let mut a = Answer::rcode(ResponseCode::NoError);
    match q.qtype {
        RecordType::A => a
            .answers
            .push(record(&q.name, RData::A(A(Ipv4Addr::LOCALHOST)))),
        RecordType::AAAA => a
            .answers
            .push(record(&q.name, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)))),
        _ => a.authority.push(soa(&q.name)),
    }
    a
}

/// How `local` answers `q` (pure: no counting, no logging).
pub fn respond(q: &Query, cfg: &LocalConfig) -> Local {
    let name = q.lower.to_ascii();
    let n = name.as_str();
    let longer = n.len() > "localhost.".len();
    let rfc_subdomain = longer && n.ends_with(".localhost.");
    let legacy_prefix = longer && cfg.localhost_prefix && n.starts_with("localhost.");
    if rfc_subdomain || legacy_prefix {
        return Local::Answer {
            answer: localhost_answer(q),
            counted: true,
        };
    }
    let Some(zone) = ZONES
        .iter()
        .find(|z| n == **z || n.ends_with(&format!(".{z}")))
    else {
        return Local::Pass;
    };
    // The zone as the client spelled it: the query name's last labels.
    let zone_labels = zone.trim_end_matches('.').split('.').count();
    let zone_name = q.name.trim_to(zone_labels);
    let mut a = Answer::rcode(ResponseCode::NoError);
    if n == *zone {
        match q.qtype {
            RecordType::A if n == "localhost." => a
                .answers
                .push(record(&q.name, RData::A(A(Ipv4Addr::LOCALHOST)))),
            RecordType::AAAA if n == "localhost." => a
                .answers
                .push(record(&q.name, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)))),
            RecordType::SOA => a.answers.push(soa(&q.name)),
            RecordType::NS => a.answers.push(record(&q.name, RData::NS(NS(localhost())))),
            _ => a.authority.push(soa(&q.name)),
        }
    } else if n == LOOPBACK_PTR {
        match q.qtype {
            RecordType::PTR => a
                .answers
                .push(record(&q.name, RData::PTR(PTR(localhost())))),
            _ => a.authority.push(soa(&zone_name)),
        }
    } else {
        a.rcode = ResponseCode::NXDomain;
        a.authority.push(soa(&zone_name));
    }
    Local::Answer {
        answer: a,
        counted: false,
    }
}

/// `local`'s metric.
#[derive(Clone)]
pub struct LocalMetrics {
    localhost: IntCounter,
}

impl Family for LocalMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let localhost = IntCounter::new(
            "coredns_local_localhost_requests_total",
            "Counter of localhost.<domain> requests.",
        )?;
        r.register(Box::new(localhost.clone()))?;
        Ok(Self { localhost })
    }
}

/// The running `local` plugin.
#[derive(Clone)]
pub struct LocalPlugin {
    config: LocalConfig,
    metrics: LocalMetrics,
}

impl LocalPlugin {
    /// The plugin for `config`, counting into `metrics`.
    pub fn new(config: LocalConfig, metrics: LocalMetrics) -> Self {
        Self { config, metrics }
    }
}

#[async_trait::async_trait]
impl Plugin for LocalPlugin {
    fn name(&self) -> &'static str {
        "local"
    }

    /// A query it passed on is outside its names, and never will be; it counts
    /// only the queries it answers.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        match respond(q, &self.config) {
            Local::Pass => next.serve(q).await,
            Local::Answer { answer, counted } => {
                if counted {
                    self.metrics.localhost.inc();
                    tracing::debug!(
                        name = %q.name, qtype = %q.qtype, client = %q.src.ip(),
                        "local: intercepting localhost query"
                    );
                }
                Ok(answer)
            }
        }
    }
}

crate::plugin::build::build_plugin!(LocalConfig, |config, ctx| LocalPlugin::new(
    *config,
    ctx.families.get::<LocalMetrics>()?
));

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
