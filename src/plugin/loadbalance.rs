//! `loadbalance`: randomises the order of A, AAAA and MX records so clients
//! that take the first address spread their load.
//!
//! # Description
//! As CoreDNS's *loadbalance*: for NOERROR answers (not zone transfers) the
//! answer, authority and additional sections are shuffled. A section made
//! only of A or only of AAAA records is shuffled as a whole; a mixed section
//! is ordered CNAMEs first (glibc's stub resolver insists), then the other
//! records, then the shuffled addresses, then the shuffled MX records.
//! `prefer CIDR...` then moves addresses inside those networks to the front
//! of the answer and additional sections (in the order the CIDRs are
//! written), after CNAMEs. `limit_answers N` keeps the first N records of
//! the answer section.
//!
//! # Syntax
//! ```text
//! loadbalance [round_robin] {
//!     prefer CIDR...
//!     limit_answers NUM_ANSWERS
//! }
//! ```
//! CoreDNS's `weighted WEIGHTFILE` policy (and its `reload`) is refused at
//! start with its file:line, rather than silently balancing differently.
//!
//! # Examples
//! ```text
//! .:53 {
//!     loadbalance round_robin {
//!         prefer 10.0.0.0/8
//!     }
//!     kubernetes cluster.local
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};
use ipnet::IpNet;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// The parsed `loadbalance` directive (policy round_robin, the only one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadbalanceConfig {
    /// Networks whose addresses go first, in priority order.
    pub prefer: Vec<IpNet>,
    /// Keep at most this many answer records.
    pub limit_answers: Option<u32>,
}

/// Parse `loadbalance`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<LoadbalanceConfig, CorefileError> {
    if let Some(t) = d.next_arg() {
        match t.text.as_str() {
            "round_robin" => {}
            "weighted" => {
                return Err(d.err_at(
                    t,
                    "the weighted policy is not supported by clusterdns (use round_robin)",
                ));
            }
            other => {
                return Err(d.err_at(t, format!("unknown policy: '{other}' (use round_robin)")));
            }
        }
    }
    d.expect_end()?;
    let mut cfg = LoadbalanceConfig {
        prefer: Vec::new(),
        limit_answers: None,
    };
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "prefer" => {
                sd.expect_arg("CIDR")?;
                for t in &line.args {
                    let net: IpNet = t
                        .text
                        .parse()
                        .map_err(|e| sd.err_at(t, format!("invalid CIDR '{}': {e}", t.text)))?;
                    cfg.prefer.push(net);
                }
            }
            "limit_answers" => {
                let n = sd
                    .expect_arg("NUM_ANSWERS")?
                    .parse_u32(&sd.what("NUM_ANSWERS"), 1..=u32::MAX)?;
                cfg.limit_answers = Some(n);
                sd.expect_end()?;
            }
            _ => return Err(d.unknown_property(line)),
        }
        sd.expect_no_block()?;
    }
    Ok(cfg)
}

/// The running plugin (round_robin).
#[derive(Clone, Debug)]
pub struct Loadbalance {
    prefer: Vec<IpNet>,
    limit_answers: Option<usize>,
}

impl Loadbalance {
    /// The plugin for these settings.
    pub fn new(cfg: &LoadbalanceConfig) -> Self {
        Self {
            prefer: cfg.prefer.clone(),
            limit_answers: cfg.limit_answers.and_then(|n| usize::try_from(n).ok()),
        }
    }

    /// Reorder an answer in place (what `serve` does after the rest of the chain).
    pub fn balance(&self, a: &mut Answer) {
        shuffle(&mut a.answers);
        shuffle(&mut a.authority);
        shuffle(&mut a.additionals);
        if !self.prefer.is_empty() {
            prefer(&mut a.answers, &self.prefer);
            prefer(&mut a.additionals, &self.prefer);
        }
        if let Some(n) = self.limit_answers {
            a.answers.truncate(n);
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Loadbalance {
    fn name(&self) -> &'static str {
        "loadbalance"
    }

    /// Deterministic only when there was nothing to shuffle (at most one
    /// address and one MX record per section) and nothing to cut.
    fn memo_pass(&self, _q: &Query, answer: &Answer) -> MemoPass {
        let single = |records: &[Record]| {
            let count = |t: RecordType| records.iter().filter(|r| r.record_type() == t).count();
            count(RecordType::A) + count(RecordType::AAAA) <= 1 && count(RecordType::MX) <= 1
        };
        if self.limit_answers.is_none()
            && single(&answer.answers)
            && single(&answer.authority)
            && single(&answer.additionals)
        {
            MemoPass::Quiet
        } else {
            MemoPass::Block
        }
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let mut a = next.serve(q).await?;
        if a.rcode == ResponseCode::NoError
            && !matches!(q.qtype, RecordType::AXFR | RecordType::IXFR)
        {
            self.balance(&mut a);
        }
        Ok(a)
    }
}

fn is_address(r: &Record) -> bool {
    matches!(r.record_type(), RecordType::A | RecordType::AAAA)
}

/// A section's records by the kind loadbalance orders them by.
#[derive(Default)]
struct Groups {
    cname: Vec<Record>,
    address: Vec<Record>,
    mx: Vec<Record>,
    rest: Vec<Record>,
}

impl Groups {
    /// Move every record of `rs` into its group, keeping their order.
    fn split(rs: &mut Vec<Record>) -> Self {
        let mut g = Self::default();
        for r in rs.drain(..) {
            match r.record_type() {
                RecordType::CNAME => g.cname.push(r),
                RecordType::A | RecordType::AAAA => g.address.push(r),
                RecordType::MX => g.mx.push(r),
                _ => g.rest.push(r),
            }
        }
        g
    }
}

/// CoreDNS's `roundRobin` on one section.
fn shuffle(rs: &mut Vec<Record>) {
    if rs.len() < 2 {
        return;
    }
    let first = rs[0].record_type();
    if is_address(&rs[0]) && rs.iter().all(|r| r.record_type() == first) {
        fastrand::shuffle(rs);
        return;
    }
    let Groups {
        cname,
        mut address,
        mut mx,
        rest,
    } = Groups::split(rs);
    fastrand::shuffle(&mut address);
    fastrand::shuffle(&mut mx);
    rs.extend(cname);
    rs.extend(rest);
    rs.extend(address);
    rs.extend(mx);
}

/// CoreDNS's `prefer`: CNAMEs, addresses in the preferred networks (by
/// network order), the other addresses, MX, the rest.
fn prefer(rs: &mut Vec<Record>, nets: &[IpNet]) {
    let Groups {
        cname,
        mut address,
        mx,
        rest,
    } = Groups::split(rs);
    let rank = |r: &Record| {
        let ip = match &r.data {
            RData::A(a) => std::net::IpAddr::V4(a.0),
            RData::AAAA(a) => std::net::IpAddr::V6(a.0),
            _ => return nets.len(),
        };
        nets.iter()
            .position(|n| n.contains(&ip))
            .unwrap_or(nets.len())
    };
    // Stable: the shuffled order is kept within each rank.
    address.sort_by_key(rank);
    rs.extend(cname);
    rs.extend(address);
    rs.extend(mx);
    rs.extend(rest);
}

crate::plugin::build::build_plugin!(LoadbalanceConfig, |config, _ctx| Loadbalance::new(config));

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::str::FromStr;
    use std::sync::Arc;

    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{CNAME, MX, TXT};

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    fn parse_text(directive: &str) -> std::result::Result<LoadbalanceConfig, String> {
        let text = format!(".:53 {{\n{directive}\n}}\n");
        let cf = parse_str(&text, Path::new("conf/Corefile"), &|_| None, &MemFs::new())
            .map_err(|e| e.to_string())?;
        parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    fn rec(rdata: RData) -> Record {
        Record::from_rdata(Name::from_ascii("x.example.").unwrap(), 5, rdata)
    }

    fn a(ip: &str) -> Record {
        rec(RData::A(hickory_proto::rr::rdata::A(ip.parse().unwrap())))
    }

    fn types(rs: &[Record]) -> Vec<RecordType> {
        rs.iter().map(Record::record_type).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_point_at_the_token() {
        let c = parse_text("loadbalance").unwrap();
        assert_eq!((c.prefer, c.limit_answers), (vec![], None));
        let c = parse_text(
            "loadbalance round_robin {\n prefer 10.0.0.0/8 fd00::/8\n limit_answers 2\n}",
        )
        .unwrap();
        assert_eq!(
            c.prefer,
            [
                IpNet::from_str("10.0.0.0/8").unwrap(),
                IpNet::from_str("fd00::/8").unwrap()
            ]
        );
        assert_eq!(c.limit_answers, Some(2));
        let cases = [
            (
                "loadbalance random",
                "conf/Corefile:2:13: loadbalance: unknown policy: 'random' (use round_robin)",
            ),
            (
                "loadbalance round_robin x",
                "conf/Corefile:2:25: loadbalance: unexpected argument 'x'",
            ),
            (
                "loadbalance {\n prefer\n}",
                "conf/Corefile:3:2: loadbalance: prefer: missing argument: CIDR",
            ),
            (
                "loadbalance {\n reload 10s\n}",
                "conf/Corefile:3:2: loadbalance: unknown property 'reload'",
            ),
            (
                "loadbalance {\n prefer 10.0.0.0/33\n}",
                "conf/Corefile:3:9: loadbalance: prefer: invalid CIDR '10.0.0.0/33': ",
            ),
            (
                "loadbalance {\n limit_answers 0\n}",
                "conf/Corefile:3:16: loadbalance: limit_answers: NUM_ANSWERS: 0 is out of range 1..4294967295",
            ),
        ];
        for (text, want) in cases {
            let got = parse_text(text).expect_err(text);
            assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn weighted_is_refused_at_its_position() {
        for text in [
            "loadbalance weighted w.txt",
            "loadbalance weighted w.txt {\n reload 10s\n}",
        ] {
            assert_eq!(
                parse_text(text).unwrap_err(),
                "conf/Corefile:2:13: loadbalance: the weighted policy is not supported by \
                 clusterdns (use round_robin)"
            );
        }
    }

    #[test]
    fn round_robin_shuffles_addresses_and_keeps_the_set() {
        let lb = Loadbalance::new(&parse_text("loadbalance").unwrap());
        let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
        let mut orders = BTreeSet::new();
        for _ in 0..50 {
            let mut ans = Answer::rcode(ResponseCode::NoError);
            ans.answers = ips.iter().map(|ip| a(ip)).collect();
            lb.balance(&mut ans);
            let order: Vec<String> = ans.answers.iter().map(|r| r.data.to_string()).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, ips);
            orders.insert(order);
        }
        assert!(orders.len() > 1, "50 shuffles of 4 records gave one order");
    }

    #[test]
    fn mixed_sections_put_cnames_first_then_others_then_addresses_then_mx() {
        let target = Name::from_ascii("t.example.").unwrap();
        let mut rs = vec![
            a("10.0.0.1"),
            rec(RData::MX(MX::new(10, target.clone()))),
            rec(RData::TXT(TXT::new(vec!["x".into()]))),
            a("10.0.0.2"),
            rec(RData::CNAME(CNAME(target))),
        ];
        shuffle(&mut rs);
        use RecordType::{A as RA, CNAME as RC, MX as RM, TXT as RT};
        assert_eq!(types(&rs), [RC, RT, RA, RA, RM]);
    }

    #[test]
    fn prefer_moves_matching_addresses_first_in_cidr_order() {
        let lb = Loadbalance::new(
            &parse_text("loadbalance {\n prefer 10.2.0.0/16 10.1.0.0/16\n}").unwrap(),
        );
        for _ in 0..20 {
            let mut ans = Answer::rcode(ResponseCode::NoError);
            ans.answers = ["192.0.2.1", "10.1.0.1", "10.2.0.1", "192.0.2.2"]
                .iter()
                .map(|ip| a(ip))
                .collect();
            lb.balance(&mut ans);
            let order: Vec<String> = ans.answers.iter().map(|r| r.data.to_string()).collect();
            assert_eq!(&order[..2], ["10.2.0.1", "10.1.0.1"]);
        }
    }

    #[tokio::test]
    async fn errors_and_limit_answers() {
        struct Fixed(Answer);
        #[async_trait::async_trait]
        impl Plugin for Fixed {
            fn name(&self) -> &'static str {
                "fixed"
            }
            async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
                Ok(self.0.clone())
            }
        }
        let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
        let mut nx = Answer::rcode(ResponseCode::NXDomain);
        nx.answers = ips.iter().map(|ip| a(ip)).collect();
        let lb = Loadbalance::new(&parse_text("loadbalance {\n limit_answers 2\n}").unwrap());
        let q = Query::new(
            Name::from_ascii("x.example.").unwrap(),
            RecordType::A,
            "127.0.0.1:1".parse().unwrap(),
            crate::dns::Transport::Udp,
        );
        let chain =
            crate::plugin::Chain::new(vec![Arc::new(lb.clone()), Arc::new(Fixed(nx.clone()))]);
        assert_eq!(
            chain.serve(&q).await.unwrap().answers,
            nx.answers,
            "only NOERROR is touched"
        );
        let mut ok = nx.clone();
        ok.rcode = ResponseCode::NoError;
        let chain = crate::plugin::Chain::new(vec![Arc::new(lb), Arc::new(Fixed(ok))]);
        assert_eq!(chain.serve(&q).await.unwrap().answers.len(), 2);
    }
}
