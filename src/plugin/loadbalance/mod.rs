//! `loadbalance`: reorders A, AAAA and MX records so clients that take the
//! first address spread their load, uniformly or by weights from a file.
//!
//! # Description
//! As CoreDNS's *loadbalance*, on NOERROR answers (not zone transfers):
//! * `round_robin` (the default): the answer, authority and additional
//!   sections are shuffled. A section made only of A or only of AAAA records
//!   is shuffled as a whole; a mixed section is ordered CNAMEs first (glibc's
//!   stub resolver insists), then the other records, then the shuffled
//!   addresses, then the shuffled MX records. `prefer CIDR...` then moves
//!   addresses inside those networks to the front of the answer and
//!   additional sections (in the order the CIDRs are written), after CNAMEs.
//! * `weighted WEIGHTFILE`: for A, AAAA and SRV queries, in the answer and
//!   additional sections, one address is chosen at random with the
//!   probability of its weight among the section's addresses and becomes the
//!   first address (swapped with the one there); the section is grouped as
//!   above (CNAMEs, others, addresses, MX) but nothing else is shuffled.
//!   Weights are looked up by the address record's owner name; an address
//!   or a name the file does not list weighs 1, so names not in the file get
//!   a uniformly chosen first address. The file format is in
//!   [`weights`]; its reading and reloading in [`source`].
//!
//! `limit_answers N` (both policies) then keeps the first N records of the
//! answer section.
//!
//! # Syntax
//! ```text
//! loadbalance [round_robin | weighted WEIGHTFILE] {
//!     reload DURATION
//!     prefer CIDR...
//!     limit_answers NUM_ANSWERS
//! }
//! ```
//! * WEIGHTFILE: a relative path is relative to the directory of the
//!   Corefile it is written in (CoreDNS: to `root`).
//! * `reload` (weighted only): how often the file is checked for a changed
//!   content, default 30s, `0` disables. A broken edit is logged and the last
//!   good weights are kept. At start a broken file is an error, and so is a
//!   missing one when `reload` is 0 (otherwise a warning: weights 1 until
//!   the file appears).
//! * `prefer` (round_robin only, as CoreDNS's parser allows).
//!
//! # Examples
//! ```text
//! .:53 {
//!     loadbalance round_robin {
//!         prefer 10.0.0.0/8
//!     }
//!     kubernetes cluster.local
//! }
//! example.com:53 {
//!     hosts example.hosts
//!     loadbalance weighted example.weights {
//!         reload 10s
//!     }
//! }
//! ```
//!
//! # Metrics
//! None (CoreDNS's loadbalance exports none either). # Ready: does not report readiness.

pub mod order;
pub mod source;
pub mod weights;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Record, RecordType};
use ipnet::IpNet;

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::dns::{Answer, Query};
use crate::plugin::build::BuildCtx;
use crate::plugin::{MemoPass, Next, Plugin, Result};
use source::WeightSource;

/// Default interval between weight file checks (CoreDNS's).
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(30);

/// Which order the plugin makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyConfig {
    /// Uniform shuffle.
    RoundRobin,
    /// Weighted choice of the first address.
    Weighted {
        /// The weight file (made absolute against the Corefile's directory).
        path: PathBuf,
        /// Interval between checks of the file; zero disables them.
        reload: Duration,
    },
}

/// The parsed `loadbalance` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadbalanceConfig {
    /// The policy.
    pub policy: PolicyConfig,
    /// Networks whose addresses go first, in priority order (round_robin).
    pub prefer: Vec<IpNet>,
    /// Keep at most this many answer records.
    pub limit_answers: Option<u32>,
}

/// Parse `loadbalance`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<LoadbalanceConfig, CorefileError> {
    let mut cfg = LoadbalanceConfig {
        policy: PolicyConfig::RoundRobin,
        prefer: Vec::new(),
        limit_answers: None,
    };
    if let Some(t) = d.next_arg() {
        match t.text.as_str() {
            "round_robin" => {}
            "weighted" => {
                let file = d.expect_arg("WEIGHTFILE")?;
                cfg.policy = PolicyConfig::Weighted {
                    path: relative_to_corefile(file),
                    reload: DEFAULT_RELOAD,
                };
            }
            other => {
                return Err(d.err_at(
                    t,
                    format!("unknown policy: '{other}' (use round_robin or weighted)"),
                ));
            }
        }
    }
    d.expect_end()?;
    for line in d.block() {
        let mut sd = d.sub(line);
        match (line.name.text.as_str(), &mut cfg.policy) {
            ("reload", PolicyConfig::Weighted { reload, .. }) => {
                *reload = sd
                    .expect_arg("DURATION")?
                    .parse_duration(&sd.what("DURATION"))?;
                sd.expect_end()?;
            }
            ("reload", PolicyConfig::RoundRobin) => {
                return Err(d.err_at(&line.name, "reload: only for the weighted policy"));
            }
            ("prefer", PolicyConfig::RoundRobin) => {
                sd.expect_arg("CIDR")?;
                for t in &line.args {
                    let net: IpNet = t
                        .text
                        .parse()
                        .map_err(|e| sd.err_at(t, format!("invalid CIDR '{}': {e}", t.text)))?;
                    cfg.prefer.push(net);
                }
            }
            ("prefer", PolicyConfig::Weighted { .. }) => {
                return Err(d.err_at(&line.name, "prefer: only for the round_robin policy"));
            }
            ("limit_answers", _) => {
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

/// A path as written, or joined to the directory of the Corefile it is in.
fn relative_to_corefile(t: &Token) -> PathBuf {
    let p = PathBuf::from(&t.text);
    match t.pos.file.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    }
}

/// The running policy.
#[derive(Clone, Debug)]
enum Policy {
    RoundRobin,
    Weighted(Arc<WeightSource>),
}

/// The running plugin.
#[derive(Clone, Debug)]
pub struct Loadbalance {
    policy: Policy,
    prefer: Vec<IpNet>,
    limit_answers: Option<usize>,
}

impl Loadbalance {
    /// The round_robin plugin for these settings (the policy in `cfg` is
    /// not looked at: [`Loadbalance::build`] reads a weight file).
    pub fn round_robin(cfg: &LoadbalanceConfig) -> Self {
        Self {
            policy: Policy::RoundRobin,
            prefer: cfg.prefer.clone(),
            limit_answers: cfg.limit_answers.and_then(|n| usize::try_from(n).ok()),
        }
    }

    /// The plugin for `cfg`; for `weighted`, reads the weight file now and
    /// re-reads it in the background until `ctx.token` is cancelled.
    pub fn build(cfg: &LoadbalanceConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let mut lb = Self::round_robin(cfg);
        if let PolicyConfig::Weighted { path, reload } = &cfg.policy {
            let source = WeightSource::load(path, *reload)?;
            source.spawn_reload(*reload, ctx.token);
            lb.policy = Policy::Weighted(source);
        }
        Ok(lb)
    }

    /// Reorder the answer to a `qtype` query in place with randomness from
    /// `rng` (what `serve` does after the rest of the chain).
    pub fn balance(&self, qtype: RecordType, a: &mut Answer, rng: &mut fastrand::Rng) {
        match &self.policy {
            Policy::RoundRobin => {
                order::shuffle(&mut a.answers, rng);
                order::shuffle(&mut a.authority, rng);
                order::shuffle(&mut a.additionals, rng);
                if !self.prefer.is_empty() {
                    order::prefer(&mut a.answers, &self.prefer);
                    order::prefer(&mut a.additionals, &self.prefer);
                }
            }
            Policy::Weighted(source) => {
                if weighs(qtype) {
                    let weights = source.weights();
                    order::weighted(&mut a.answers, &weights, rng);
                    order::weighted(&mut a.additionals, &weights, rng);
                }
            }
        }
        if let Some(n) = self.limit_answers {
            a.answers.truncate(n);
        }
    }
}

/// The query types whose answers the weighted policy reorders (CoreDNS's).
fn weighs(qtype: RecordType) -> bool {
    matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::SRV)
}

#[async_trait::async_trait]
impl Plugin for Loadbalance {
    fn name(&self) -> &'static str {
        "loadbalance"
    }

    /// Deterministic only when there was nothing to choose from (round_robin:
    /// at most one address and one MX record per section; weighted: a query
    /// type it leaves alone, or at most one address in the answer and
    /// additional sections) and nothing to cut.
    fn memo_pass(&self, q: &Query, answer: &Answer) -> MemoPass {
        let count = |records: &[Record], types: &[RecordType]| {
            records
                .iter()
                .filter(|r| types.contains(&r.record_type()))
                .count()
        };
        let addresses = [RecordType::A, RecordType::AAAA];
        let fixed = match &self.policy {
            Policy::RoundRobin => [&answer.answers, &answer.authority, &answer.additionals]
                .iter()
                .all(|rs| count(rs, &addresses) <= 1 && count(rs, &[RecordType::MX]) <= 1),
            Policy::Weighted(_) => {
                !weighs(q.qtype)
                    || [&answer.answers, &answer.additionals]
                        .iter()
                        .all(|rs| count(rs, &addresses) <= 1)
            }
        };
        if self.limit_answers.is_none() && fixed {
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
            self.balance(q.qtype, &mut a, &mut fastrand::Rng::new());
        }
        Ok(a)
    }
}

crate::plugin::build::build_plugin!(LoadbalanceConfig, |config, ctx| Loadbalance::build(
    config, ctx
)?);

#[cfg(test)]
mod tests;
