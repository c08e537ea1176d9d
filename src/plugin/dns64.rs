//! `dns64`: synthesizes AAAA records from A records (RFC 6147), so that
//! IPv6-only pods reach IPv4-only services through a NAT64 gateway
//! (CoreDNS's `dns64`).
//!
//! # Description
//! An AAAA question (class IN) from an IPv6 client (or any client with
//! `allow_ipv4`) is answered by the rest of the chain first. When that
//! answer is NOERROR without AAAA records (or always, with `translate_all`),
//! the same name is asked again for A through the rest of the chain, and
//! every A record becomes an AAAA record with the IPv4 address embedded in
//! PREFIX as RFC 6052 §2.2 places it; CNAME records of the A answer are
//! kept. The synthesized TTL is at most the SOA minimum of the first answer's
//! authority section, when it has one (RFC 6147 §5.1.7). When the A answer
//! has no A records, the first answer is returned unchanged.
//!
//! # Syntax
//! ```text
//! dns64 [PREFIX]
//! dns64 {
//!     prefix PREFIX
//!     translate_all
//!     allow_ipv4
//! }
//! ```
//! PREFIX is an IPv6 network of length 32, 40, 48, 56, 64 or 96 (default
//! `64:ff9b::/96`, the well-known prefix); bits 64–71 must be zero.
//!
//! # Examples
//! ```text
//! . {
//!     dns64 64:ff9b::/96
//!     forward . 8.8.8.8
//! }
//! ```
//!
//! # Metrics
//! - `coredns_dns64_requests_translated_total{server}`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use ipnet::Ipv6Net;
use prometheus::{IntCounterVec, Opts, Registry};

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::dns::{Answer, Query};
use crate::plugin::build::Family;
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// The well-known prefix (RFC 6052 §2.1).
pub const WELL_KNOWN: &str = "64:ff9b::/96";

/// Parsed `dns64` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dns64Config {
    /// Where IPv4 addresses are embedded.
    pub prefix: Ipv6Net,
    /// `translate_all`: synthesize even when AAAA records exist.
    pub translate_all: bool,
    /// `allow_ipv4`: translate for IPv4 clients too.
    pub allow_ipv4: bool,
}

/// Parse `dns64 [PREFIX] { prefix; translate_all; allow_ipv4 }`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<Dns64Config, CorefileError> {
    let mut cfg = Dns64Config {
        prefix: WELL_KNOWN.parse().expect("the well-known prefix"),
        translate_all: false,
        allow_ipv4: false,
    };
    if let Some(t) = d.next_arg() {
        cfg.prefix = prefix(d, t)?;
    }
    d.expect_end()?;
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.as_str() {
            "prefix" => {
                let t = sd.expect_arg("PREFIX")?;
                cfg.prefix = prefix(&sd, t)?;
            }
            "translate_all" => cfg.translate_all = true,
            "allow_ipv4" => cfg.allow_ipv4 = true,
            _ => return Err(d.unknown_property(line)),
        }
        sd.expect_end()?;
    }
    Ok(cfg)
}

/// An RFC 6052 prefix: length 32/40/48/56/64/96, no host bits, bits 64–71 zero.
fn prefix(d: &Dispenser<'_>, t: &Token) -> std::result::Result<Ipv6Net, CorefileError> {
    let net: Ipv6Net = t
        .as_str()
        .parse()
        .map_err(|_| d.err_at(t, format!("'{}' is not an IPv6 prefix", t.text)))?;
    if ![32, 40, 48, 56, 64, 96].contains(&net.prefix_len()) {
        return Err(d.err_at(
            t,
            format!(
                "prefix length {} is not one of 32, 40, 48, 56, 64, 96 (RFC 6052)",
                net.prefix_len()
            ),
        ));
    }
    if net.trunc() != net {
        return Err(d.err_at(t, format!("'{}' has bits set after its length", t.text)));
    }
    if net.network().octets()[8] != 0 {
        return Err(d.err_at(t, "bits 64 to 71 of the prefix must be zero (RFC 6052)"));
    }
    Ok(net)
}

/// `v4` embedded in `prefix` (RFC 6052 §2.2: octet 8, bits 64–71, is skipped).
pub fn embed(prefix: Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let mut out = prefix.network().octets();
    let mut at = usize::from(prefix.prefix_len() / 8);
    for byte in v4.octets() {
        if at == 8 {
            at += 1;
        }
        out[at] = byte;
        at += 1;
    }
    Ipv6Addr::from(out)
}

/// The dns64 metrics.
#[derive(Clone, Debug)]
pub struct Dns64Metrics {
    translated: IntCounterVec,
}

impl Family for Dns64Metrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let translated = IntCounterVec::new(
            Opts::new(
                "coredns_dns64_requests_translated_total",
                "Counter of DNS requests translated by dns64.",
            ),
            &["server"],
        )?;
        r.register(Box::new(translated.clone()))?;
        Ok(Self { translated })
    }
}

/// The running plugin.
pub struct Dns64 {
    cfg: Dns64Config,
    server: String,
    metrics: Dns64Metrics,
}

impl Dns64 {
    /// The plugin for `cfg` in the block labelled `server`.
    pub fn new(cfg: Dns64Config, server: &str, metrics: Dns64Metrics) -> Self {
        Self {
            cfg,
            server: server.to_string(),
            metrics,
        }
    }

    fn intercepts(&self, q: &Query) -> bool {
        let v6_client = match q.src.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
            IpAddr::V4(_) => false,
        };
        q.qtype == RecordType::AAAA
            && q.qclass == DNSClass::IN
            && (v6_client || self.cfg.allow_ipv4)
    }

    fn translates(&self, a: &Answer) -> bool {
        a.rcode == ResponseCode::NoError
            && (self.cfg.translate_all
                || !a
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::AAAA))
    }

    /// The AAAA answer made of `via_a` (the A answer), or `None` when it has no A.
    fn synthesize(&self, first: &Answer, via_a: Answer) -> Option<Answer> {
        if !via_a
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::A)
        {
            return None;
        }
        let soa_min = first.authority.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
            _ => None,
        });
        let answers = via_a
            .answers
            .into_iter()
            .map(|r| match &r.data {
                RData::A(a) => {
                    let ttl = soa_min.map_or(r.ttl, |m| m.min(r.ttl));
                    let aaaa = AAAA(embed(self.cfg.prefix, a.0));
                    Record::from_rdata(r.name.clone(), ttl, RData::AAAA(aaaa))
                }
                _ => r,
            })
            .collect();
        Some(Answer {
            answers,
            additionals: Vec::new(),
            ..via_a
        })
    }
}

#[async_trait::async_trait]
impl Plugin for Dns64 {
    fn name(&self) -> &'static str {
        "dns64"
    }

    /// Only AAAA questions are ever changed (and those depend on the
    /// client's address family, which the memo key does not hold).
    fn memo_pass(&self, q: &Query, _answer: &Answer) -> MemoPass {
        if q.qtype == RecordType::AAAA {
            MemoPass::Block
        } else {
            MemoPass::Quiet
        }
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        if !self.intercepts(q) {
            return next.serve(q).await;
        }
        let first = next.serve(q).await?;
        if !self.translates(&first) {
            return Ok(first);
        }
        let mut a_query = q.clone();
        a_query.qtype = RecordType::A;
        let Ok(via_a) = next.serve(&a_query).await else {
            return Ok(first);
        };
        match self.synthesize(&first, via_a) {
            Some(a) => {
                self.metrics
                    .translated
                    .with_label_values(&[&self.server])
                    .inc();
                Ok(a)
            }
            None => Ok(first),
        }
    }
}

crate::plugin::build::build_plugin!(Dns64Config, |config, ctx| Dns64::new(
    *config,
    ctx.server,
    ctx.families.get::<Dns64Metrics>()?
));

#[cfg(test)]
#[path = "dns64_tests.rs"]
mod tests;
