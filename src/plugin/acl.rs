//! `acl`: allow, block, filter or drop queries by source address and query
//! type (CoreDNS's `acl`), e.g. to keep clients outside the cluster from
//! using the cluster resolver.
//!
//! # Description
//! Each `acl` directive is a rule set for its ZONES (the block's zones when
//! none are given). A query is checked against the directives in Corefile
//! order: the first directive whose zones hold the name and which has a
//! matching line decides, and within a directive the first matching line
//! wins. A line matches when the query type is one of its types and the
//! client address is in one of its networks (`*`, or an omitted part,
//! matches everything). Actions:
//!
//! | action | response | EDE (RFC 8914, when the query has EDNS) |
//! |---|---|---|
//! | `allow` | the rest of the chain answers | – |
//! | `block` | REFUSED | 15 (Blocked) |
//! | `filter` | NOERROR, no records | 17 (Filtered) |
//! | `drop` | none at all | – |
//!
//! A query no line matches is allowed.
//!
//! # Syntax
//! ```text
//! acl [ZONES...] {
//!     ACTION [type QTYPE...] [net SOURCE...]
//! }
//! ```
//! ACTION is `allow`, `block`, `filter` or `drop`; QTYPE a record type or
//! `*`; SOURCE an address, a CIDR or `*`. At least one line. The directive
//! may be repeated.
//!
//! # Examples
//! ```text
//! . {
//!     acl {
//!         allow net 10.0.0.0/8 127.0.0.1
//!         block
//!     }
//! }
//! ```
//!
//! # Metrics
//! - `coredns_acl_blocked_requests_total{server,zone,view}`
//! - `coredns_acl_filtered_requests_total{server,zone,view}`
//! - `coredns_acl_dropped_requests_total{server,zone,view}`
//! - `coredns_acl_allowed_requests_total{server,view}`
//!
//! `view` is always empty (no `view` plugin).

use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use prometheus::{IntCounterVec, Opts, Registry};

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::dns::{Answer, Query};
use crate::plugin::build::Family;
use crate::plugin::{Next, Plugin, Result};

/// What a matching line does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Pass the query on.
    Allow,
    /// REFUSED.
    Block,
    /// NOERROR with no records.
    Filter,
    /// No response.
    Drop,
}

/// One line: an action, the types and networks it matches (`None`: all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The action.
    pub action: Action,
    /// The query types matched; `None` for all.
    pub types: Option<Vec<RecordType>>,
    /// The client networks matched; `None` for all.
    pub nets: Option<Vec<IpNet>>,
}

impl Line {
    fn matches(&self, qtype: RecordType, src: IpAddr) -> bool {
        let src = canonical(src);
        self.types.as_ref().is_none_or(|t| t.contains(&qtype))
            && self
                .nets
                .as_ref()
                .is_none_or(|n| n.iter().any(|net| net.contains(&src)))
    }
}

/// An IPv4-mapped IPv6 client (a dual-stack socket) as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `acl` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    /// Lower-case zones; empty for the server block's.
    pub zones: Vec<Name>,
    /// The lines, in order.
    pub lines: Vec<Line>,
}

/// All `acl` directives of a block, in Corefile order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclConfig {
    /// The directives.
    pub rules: Vec<RuleSet>,
}

/// Parse one `acl [ZONES...] { ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<AclConfig, CorefileError> {
    let zones = d
        .remaining()
        .iter()
        .map(|t| zone(d, t))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if d.block().is_empty() {
        return Err(d.err("at least one line (ACTION [type QTYPE...] [net SOURCE...]) is needed"));
    }
    let mut lines = Vec::new();
    for l in d.block() {
        let action = match l.name.as_str() {
            "allow" => Action::Allow,
            "block" => Action::Block,
            "filter" => Action::Filter,
            "drop" => Action::Drop,
            _ => {
                return Err(d.err_at(
                    &l.name,
                    format!(
                        "unknown action '{}' (allow, block, filter, drop)",
                        l.name.text
                    ),
                ));
            }
        };
        let mut sd = d.sub(l);
        lines.push(line(action, &mut sd)?);
    }
    Ok(AclConfig {
        rules: vec![RuleSet { zones, lines }],
    })
}

/// The `type ...` and `net ...` parts of a line.
fn line(action: Action, sd: &mut Dispenser<'_>) -> std::result::Result<Line, CorefileError> {
    let mut out = Line {
        action,
        types: None,
        nets: None,
    };
    let args = sd.remaining();
    let mut i = 0;
    while let Some(key) = args.get(i) {
        let values: Vec<&Token> = args[i + 1..]
            .iter()
            .take_while(|t| t.as_str() != "type" && t.as_str() != "net")
            .collect();
        i += 1 + values.len();
        if values.is_empty() {
            return Err(sd.err_at(key, format!("'{}' needs at least one value", key.text)));
        }
        match key.as_str() {
            "type" => {
                let mut types = Vec::new();
                for t in &values {
                    if t.as_str() == "*" {
                        types.clear();
                        out.types = None;
                        break;
                    }
                    types.push(
                        RecordType::from_str(&t.text.to_ascii_uppercase()).map_err(|_| {
                            sd.err_at(t, format!("'{}' is not a record type", t.text))
                        })?,
                    );
                }
                if !types.is_empty() {
                    out.types = Some(types);
                }
            }
            "net" => {
                let mut nets = Vec::new();
                for t in &values {
                    if t.as_str() == "*" {
                        nets.clear();
                        out.nets = None;
                        break;
                    }
                    nets.push(net(sd, t)?);
                }
                if !nets.is_empty() {
                    out.nets = Some(nets);
                }
            }
            _ => {
                return Err(sd.err_at(
                    key,
                    format!("expected 'type' or 'net', found '{}'", key.text),
                ));
            }
        }
    }
    Ok(out)
}

/// An address (a /32 or /128) or a CIDR.
fn net(sd: &Dispenser<'_>, t: &Token) -> std::result::Result<IpNet, CorefileError> {
    let text = t.as_str();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(canonical(ip)));
    }
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| sd.err_at(t, format!("'{text}' is not an IP address or CIDR")))
}

fn zone(d: &Dispenser<'_>, t: &Token) -> std::result::Result<Name, CorefileError> {
    let mut text = t.text.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).map_err(|e| d.err_at(t, format!("bad zone '{}': {e}", t.text)))
}

/// The acl metrics (CoreDNS's names and labels).
#[derive(Clone, Debug)]
pub struct AclMetrics {
    blocked: IntCounterVec,
    filtered: IntCounterVec,
    dropped: IntCounterVec,
    allowed: IntCounterVec,
}

impl Family for AclMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let v = IntCounterVec::new(Opts::new(name, help), labels)?;
            r.register(Box::new(v.clone()))?;
            Ok(v)
        };
        let zoned = ["server", "zone", "view"];
        Ok(Self {
            blocked: vec(
                "coredns_acl_blocked_requests_total",
                "Counter of DNS requests being blocked.",
                &zoned,
            )?,
            filtered: vec(
                "coredns_acl_filtered_requests_total",
                "Counter of DNS requests being filtered.",
                &zoned,
            )?,
            dropped: vec(
                "coredns_acl_dropped_requests_total",
                "Counter of DNS requests being dropped.",
                &zoned,
            )?,
            allowed: vec(
                "coredns_acl_allowed_requests_total",
                "Counter of DNS requests being allowed.",
                &["server", "view"],
            )?,
        })
    }
}

/// The running `acl` plugin.
pub struct Acl {
    rules: Vec<RuleSet>,
    server: String,
    metrics: AclMetrics,
}

impl Acl {
    /// The rule sets, with the block's `zones` for sets that name none.
    pub fn new(config: &AclConfig, zones: &[Name], server: &str, metrics: AclMetrics) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|r| RuleSet {
                zones: if r.zones.is_empty() {
                    zones.to_vec()
                } else {
                    r.zones.clone()
                },
                lines: r.lines.clone(),
            })
            .collect();
        Self {
            rules,
            server: server.to_string(),
            metrics,
        }
    }

    /// What the rules decide for a query (`Allow` when nothing matches), and
    /// the zone of the deciding rule set.
    pub fn decide(&self, q: &Query) -> (Action, Option<&Name>) {
        for set in &self.rules {
            let Some(zone) = set.zones.iter().find(|z| z.zone_of(&q.lower)) else {
                continue;
            };
            if let Some(l) = set.lines.iter().find(|l| l.matches(q.qtype, q.src.ip())) {
                return (l.action, Some(zone));
            }
        }
        (Action::Allow, None)
    }
}

#[async_trait::async_trait]
impl Plugin for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let (action, zone) = self.decide(q);
        let zone = zone.map(Name::to_ascii).unwrap_or_default();
        let count = |v: &IntCounterVec| v.with_label_values(&[&self.server, &zone, ""]).inc();
        let mut a = match action {
            Action::Allow => {
                self.metrics
                    .allowed
                    .with_label_values(&[&self.server, ""])
                    .inc();
                return next.serve(q).await;
            }
            Action::Block => {
                count(&self.metrics.blocked);
                let mut a = Answer::rcode(ResponseCode::Refused);
                a.extras_mut().ede = Some((15, "".into()));
                a
            }
            Action::Filter => {
                count(&self.metrics.filtered);
                let mut a = Answer::rcode(ResponseCode::NoError);
                a.extras_mut().ede = Some((17, "".into()));
                a
            }
            Action::Drop => {
                count(&self.metrics.dropped);
                let mut a = Answer::rcode(ResponseCode::NoError);
                a.extras_mut().silent = true;
                a
            }
        };
        a.recursion_available = false;
        Ok(a)
    }
}

crate::plugin::build::build_plugin!(
    AclConfig,
    |config, ctx| Acl::new(config, ctx.zones, ctx.server, ctx.families.get::<AclMetrics>()?),
    join rules
);

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
