//! `header`: forces header flags of responses (and the RD bit the rest of the
//! chain sees), as CoreDNS's `header` does.
//!
//! # Description
//! Each rule sets or clears flags; rules run in the order written, so the
//! last one about a flag wins.
//! - `response` rules change the answer the rest of the chain wrote, on its
//!   way back to the client: `aa` (authoritative) and `ra` (recursion
//!   available). An error from the rest of the chain (e.g. SERVFAIL for no
//!   next plugin) passes through unchanged, as in CoreDNS, where the server
//!   writes such errors past the plugin.
//! - `query` rules change the query the rest of the chain sees: `rd`
//!   (recursion desired), e.g. what `forward` asks its upstream.
//!
//! Refused at start with the rule's position, because clusterdns's plugins
//! cannot honour them: `response ... rd` (the response's RD always echoes the
//! client's query) and `query ... aa|ra` (no plugin reads them from a query).
//! Unlike CoreDNS, a `query` rule about `rd` does not change the RD bit of
//! the response to the client, which echoes the client's own.
//!
//! # Syntax
//! ```text
//! header {
//!     SELECTOR ACTION FLAGS...
//!     SELECTOR ACTION FLAGS...
//! }
//! ```
//! - **SELECTOR**: `query` or `response`.
//! - **ACTION**: `set` or `clear`.
//! - **FLAGS**: `aa`, `ra` (response), `rd` (query).
//!
//! Selector, action and flags are case-insensitive. At least one rule; no
//! arguments on the `header` line.
//!
//! # Examples
//! ```text
//! . {
//!     header {
//!         response set ra aa
//!         query clear rd
//!     }
//!     forward . 8.8.8.8
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use std::borrow::Cow;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// A header flag a rule may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// AA, authoritative answer (responses).
    Aa,
    /// RA, recursion available (responses).
    Ra,
    /// RD, recursion desired (queries).
    Rd,
}

/// One flag forced to a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The flag.
    pub flag: Flag,
    /// `true` for `set`, `false` for `clear`.
    pub state: bool,
}

/// Parsed `header` settings: the rules of each selector, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderConfig {
    /// Applied to the query before the rest of the chain (only `rd`).
    pub query: Vec<Rule>,
    /// Applied to the answer of the rest of the chain (`aa`, `ra`).
    pub response: Vec<Rule>,
}

/// Parse `header { SELECTOR ACTION FLAGS... ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<HeaderConfig, CorefileError> {
    d.expect_end()?;
    let mut cfg = HeaderConfig::default();
    for line in d.block() {
        let selector = line.name.text.to_ascii_lowercase();
        let response = match selector.as_str() {
            "response" => true,
            "query" => false,
            _ => {
                return Err(d.err_at(
                    &line.name,
                    format!(
                        "invalid selector '{}', should be query or response",
                        line.name.text
                    ),
                ));
            }
        };
        let mut sub = d.sub(line);
        let action = sub.expect_arg("set or clear")?;
        let state = match action.text.to_ascii_lowercase().as_str() {
            "set" => true,
            "clear" => false,
            _ => {
                return Err(sub.err_at(
                    action,
                    format!("unknown action '{}', should be set or clear", action.text),
                ));
            }
        };
        let first = sub.expect_arg("FLAGS")?;
        for tok in std::iter::once(first).chain(sub.remaining()) {
            let flag = match tok.text.to_ascii_lowercase().as_str() {
                "aa" => Flag::Aa,
                "ra" => Flag::Ra,
                "rd" => Flag::Rd,
                _ => {
                    return Err(sub.err_at(
                        tok,
                        format!("unknown flag '{}', should be aa, ra or rd", tok.text),
                    ));
                }
            };
            let unsupported = match (response, flag) {
                (true, Flag::Rd) => Some(
                    "the response's RD bit always echoes the client's query; `query set|clear rd` changes what the chain sees",
                ),
                (false, Flag::Aa | Flag::Ra) => Some("no clusterdns plugin reads it from a query"),
                _ => None,
            };
            if let Some(why) = unsupported {
                return Err(sub.err_at(
                    tok,
                    format!(
                        "flag '{}' in {selector} rules is not supported by clusterdns: {why}",
                        tok.text
                    ),
                ));
            }
            let rule = Rule { flag, state };
            if response {
                cfg.response.push(rule);
            } else {
                cfg.query.push(rule);
            }
        }
        sub.expect_no_block()?;
    }
    if cfg.query.is_empty() && cfg.response.is_empty() {
        return Err(d.err("expects a block with at least one rule (SELECTOR ACTION FLAGS...)"));
    }
    Ok(cfg)
}

/// `q` with the query rules applied (borrowed when there are none).
pub fn apply_query<'q>(rules: &[Rule], q: &'q Query) -> Cow<'q, Query> {
    if rules.is_empty() {
        return Cow::Borrowed(q);
    }
    let mut q = q.clone();
    for r in rules {
        if r.flag == Flag::Rd {
            q.recursion_desired = r.state;
        }
    }
    Cow::Owned(q)
}

/// Apply the response rules to `a`.
pub fn apply_response(rules: &[Rule], a: &mut Answer) {
    for r in rules {
        match r.flag {
            Flag::Aa => a.authoritative = r.state,
            Flag::Ra => a.recursion_available = r.state,
            Flag::Rd => {}
        }
    }
}

/// The running `header` plugin.
#[derive(Clone, Debug)]
pub struct Header {
    config: HeaderConfig,
}

#[async_trait::async_trait]
impl Plugin for Header {
    fn name(&self) -> &'static str {
        "header"
    }

    /// Its rules depend only on the query and the answer, never on the client,
    /// the clock or chance.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let q = apply_query(&self.config.query, q);
        let mut a = next.serve(&q).await?;
        apply_response(&self.config.response, &mut a);
        Ok(a)
    }
}

crate::plugin::build::build_plugin!(HeaderConfig, |config, _ctx| Header {
    config: config.clone()
});

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
