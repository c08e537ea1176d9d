//! `rewrite`: rewrites the question before the rest of the chain sees it, and maps the
//! response back so the client never notices.
//!
//! # Description
//! As CoreDNS's *rewrite*: every `rewrite` directive of a server block is one rule of a
//! single plugin instance, tried in the order written. A rule that matches rewrites the
//! query; `stop` (the default) ends the rule list, `continue` lets later rules see the
//! rewritten query. Invariant: the response always carries the client's original
//! question (the server writes it from the request), and response rewrites run only for
//! rules that rewrote this query, last rule first.
//!
//! # Syntax
//! ```text
//! rewrite [continue|stop] name [exact|prefix|suffix|substring|regex] FROM TO [answer auto|answer name FROM TO|answer value FROM TO]...
//! rewrite [continue|stop] type FROM TO
//! rewrite [continue|stop] class FROM TO
//! rewrite [continue|stop] ttl [exact|prefix|suffix|substring|regex] NAME TTL|MIN-MAX
//! rewrite [continue|stop] rcode [exact|prefix|suffix|substring|regex] NAME FROM TO
//! rewrite [continue|stop] cname [exact|prefix|suffix|substring|regex] FROM TO
//! rewrite [continue|stop] edns0 local set|replace|append CODE DATA [revert]
//! rewrite [continue|stop] edns0 local unset CODE
//! rewrite [continue|stop] edns0 nsid set|replace|append [revert]
//! rewrite [continue|stop] edns0 nsid unset
//! rewrite [continue|stop] edns0 subnet set|replace|append V4BITMASK V6BITMASK [revert]
//! rewrite [continue|stop] edns0 subnet unset
//! rewrite [continue|stop] {
//!     name regex FROM TO
//!     answer name FROM TO
//! }
//! ```
//! Names are compared lower-case and fully qualified (`FROM`/`TO` get a trailing dot, as
//! CoreDNS's `Normalize`). `exact` answers are always mapped back; `answer auto` maps
//! prefix/suffix/substring answers back by the inverse rule; regex rules need an
//! explicit `answer name` (owner names) or `answer value` (CNAME, NS, PTR, MX, SRV and SOA
//! data). A rewritten name that is not a valid domain name gives SERVFAIL.
//!
//! `rcode` rules match the question name as `ttl` rules do (after earlier rules rewrote
//! it) and change an answer's response code `FROM` (a miekg/dns name such as `SERVFAIL`,
//! or 0-23) to `TO`, once per rule, last rule first. As in CoreDNS they apply to answers
//! a plugin wrote (e.g. an upstream's SERVFAIL through `forward`), not to a failure of the
//! chain itself (e.g. `template ... rcode SERVFAIL`, an unsynced index), whose code the
//! server writes.
//!
//! A `cname` rule, as in CoreDNS, applies to every query (so with `stop` no later rule
//! runs): in the answer, the first CNAME whose target it matches gets the new target,
//! the records after it are replaced by a lookup of that target (same type, through the
//! rest of the chain after `rewrite`, see `cname.rs`); the lookup's TC bit is kept, the
//! original response code, authority and additional sections stay.
//! Only `exact` FROM/TO are made fully qualified. CNAME rules run before the other
//! response rewrites, so the looked-up records get those too.
//!
//! `edns0` rules change the request's EDNS0 options ([`Query::edns_options`]), which
//! `forward` writes into the query it sends upstream (creating an OPT record, 4096
//! bytes, DO clear, when the client sent none); see `edns0.rs` for what each action
//! does. DATA is text, or hex after `0x`, or one of the variables `{qname}`,
//! `{qtype}`, `{client_ip}`, `{client_port}`, `{protocol}`. `{server_ip}`,
//! `{server_port}` and metadata labels are refused at start (plugins do not see the
//! local address; there is no `metadata` plugin). `subnet` sends the client's address
//! cut to the prefix length of its family (RFC 7871). An `nsid` rule also decides
//! whether the `nsid` plugin answers. Unlike CoreDNS, the response never echoes the
//! rewritten options (its OPT is written from the client's request, and `forward`
//! does not pass the upstream's options back), so every rule behaves as with `revert`.
//!
//! # Examples
//! ```text
//! rewrite name exact db.example.com. mysql.default.svc.cluster.local.
//! rewrite stop {
//!     name regex (.*)\.corp\.example\. {1}.default.svc.cluster.local.
//!     answer name (.*)\.default\.svc\.cluster\.local\. {1}.corp.example.
//! }
//! rewrite continue rcode regex (.*)\.coredns\.rocks SERVFAIL NOERROR
//! rewrite cname regex (.*)\.cdn\.example\.net\. {1}.other.cdn.com.
//! rewrite edns0 local set 0xffee {client_ip}
//! rewrite continue edns0 subnet set 24 56
//! ```
//!
//! # Metrics / Ready
//! None.

mod cname;
mod edns0;
#[cfg(test)]
mod edns0_tests;
mod parse;
#[cfg(test)]
pub(crate) mod tests;

pub use edns0::{Action, Edns0Option, Edns0Rule, LocalData, Variable, client_subnet};
pub use parse::{Mode, NameMatch, ResponseRule, RewriteConfig, Rule, RuleKind, Target, parse};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record};

use crate::dns::{Answer, Query};
use crate::plugin::{Next, Plugin, PluginError, Result};

/// The running plugin.
#[derive(Debug)]
pub struct Rewrite {
    rules: Vec<Rule>,
}

impl Rewrite {
    /// The plugin for these rules.
    pub fn new(cfg: &RewriteConfig) -> Self {
        Self {
            rules: cfg.rules.clone(),
        }
    }
}

/// What a rule asks of the response.
enum Revert<'a> {
    Names(&'a ResponseRule),
    Ttl(u32, u32),
    Rcode(ResponseCode, ResponseCode),
    Cname(&'a NameMatch),
}

impl NameMatch {
    /// The rewritten name, if `name` (lower-case, FQDN text) matches.
    pub fn apply(&self, name: &str) -> Option<String> {
        match self {
            NameMatch::Exact { from, to } => (name == from).then(|| to.clone()),
            NameMatch::Prefix { from, to } => {
                name.strip_prefix(from.as_str()).map(|r| format!("{to}{r}"))
            }
            NameMatch::Suffix { from, to } => {
                name.strip_suffix(from.as_str()).map(|r| format!("{r}{to}"))
            }
            NameMatch::Substring { from, to } => name
                .contains(from.as_str())
                .then(|| name.replace(from.as_str(), to)),
            NameMatch::Regex { re, to } => {
                let caps = re.captures(name)?;
                let mut s = to.clone();
                for (i, g) in caps.iter().enumerate() {
                    s = s.replace(&format!("{{{i}}}"), g.map_or("", |m| m.as_str()));
                }
                Some(s)
            }
        }
    }

    pub(crate) fn apply_name(&self, name: &Name) -> Option<Name> {
        let text = name.to_lowercase().to_ascii();
        let new = self.apply(&text)?;
        Name::from_ascii(&new).ok()
    }
}

fn rewrite_record(rule: &ResponseRule, rr: &mut Record) {
    match rule.target {
        Target::Owner => {
            if let Some(n) = rule.matcher.apply_name(&rr.name) {
                rr.name = n;
            }
        }
        Target::Value => {
            let m = &rule.matcher;
            crate::plugin::rdata::for_each_name_mut(&mut rr.data, |n: &mut Name| {
                if let Some(new) = m.apply_name(n) {
                    *n = new;
                }
            });
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let mut cur = q.clone();
        let mut reverts: Vec<Revert<'_>> = Vec::new();
        let mut changed = false;
        for rule in &self.rules {
            let done = match &rule.kind {
                RuleKind::Name { matcher, answers } => {
                    match matcher.apply(&cur.lower.to_ascii()) {
                        Some(new) => {
                            // CoreDNS: an invalid name after the rewrite is SERVFAIL.
                            let name = Name::from_ascii(&new)
                                .map_err(|_| PluginError::Rcode(ResponseCode::ServFail))?;
                            cur.lower = name.to_lowercase();
                            cur.name = name;
                            reverts.extend(answers.iter().map(Revert::Names));
                            true
                        }
                        None => false,
                    }
                }
                RuleKind::Type { from, to } => {
                    let hit = cur.qtype == *from;
                    if hit {
                        cur.qtype = *to;
                    }
                    hit
                }
                RuleKind::Class { from, to } => {
                    let hit = cur.qclass == *from;
                    if hit {
                        cur.qclass = *to;
                    }
                    hit
                }
                RuleKind::Ttl { matcher, min, max } => {
                    let hit = matcher.apply(&cur.lower.to_ascii()).is_some();
                    if hit {
                        reverts.push(Revert::Ttl(*min, *max));
                    }
                    hit
                }
                // CoreDNS: a cname rule applies to every query (its response half
                // looks for matching CNAME targets).
                RuleKind::Cname { matcher } => {
                    reverts.push(Revert::Cname(matcher));
                    true
                }
                RuleKind::Edns0(rule) => rule.apply(&mut cur),
                RuleKind::Rcode { matcher, from, to } => {
                    let hit = matcher.apply(&cur.lower.to_ascii()).is_some();
                    if hit {
                        reverts.push(Revert::Rcode(*from, *to));
                    }
                    hit
                }
            };
            changed |= done;
            if done && rule.mode == Mode::Stop {
                break;
            }
        }
        if !changed {
            return next.serve(q).await;
        }
        let mut answer = next.serve(&cur).await?;
        // CNAME targets first, so the records a lookup brings in get the other
        // response rewrites too.
        for r in reverts.iter().rev() {
            if let Revert::Cname(matcher) = r {
                cname::follow(matcher, &mut answer, &cur, next).await;
            }
        }
        if !reverts.is_empty() {
            let sections = [
                &mut answer.answers,
                &mut answer.authority,
                &mut answer.additionals,
            ];
            for section in sections {
                for rr in section.iter_mut() {
                    for r in reverts.iter().rev() {
                        match r {
                            Revert::Names(rule) => rewrite_record(rule, rr),
                            Revert::Ttl(min, max) => rr.ttl = rr.ttl.clamp(*min, *max),
                            Revert::Rcode(..) | Revert::Cname(_) => {}
                        }
                    }
                }
            }
            // Message-level: the response code, once, last rule first.
            for r in reverts.iter().rev() {
                if let Revert::Rcode(from, to) = r
                    && answer.rcode == *from
                {
                    answer.rcode = *to;
                }
            }
        }
        Ok(answer)
    }
}

crate::plugin::build::build_plugin!(
    RewriteConfig,
    |config, _ctx| Rewrite::new(config),
    join rules
);
