//! The `cname` rule's response half: a CNAME target in the answer that the rule
//! matches is rewritten, and the new target is looked up so the answer chain leads
//! somewhere real.
//!
//! CoreDNS (plugin/rewrite/cname_target.go) looks the new target up through its
//! `upstream` helper, i.e. the whole server again. Here the lookup goes to the rest of
//! the chain after `rewrite` (`next`): the plugins that answer the names (kubernetes,
//! forward, template, ...) are all there, and `rewrite` cannot loop on itself. Plugins
//! placed before `rewrite` (cache, acl, ...) do not see the lookup; they see the final
//! answer as usual.

use hickory_proto::rr::{Name, RData, Record};

use super::NameMatch;
use crate::dns::{Answer, Query};
use crate::plugin::Next;

/// Where the rule hits `answers`: the index of the first CNAME whose target it
/// rewrites, and the rewritten target.
fn first_match(matcher: &NameMatch, answers: &[Record]) -> Option<(usize, Name)> {
    answers
        .iter()
        .enumerate()
        .find_map(|(i, rr)| match &rr.data {
            RData::CNAME(c) => matcher.apply_name(&c.0).map(|n| (i, n)),
            _ => None,
        })
}

/// Apply one `cname` rule to `answer`, the response to `q` (the query as the rest of
/// the chain saw it). As CoreDNS: the CNAME records up to the matched one are kept,
/// its target is rewritten, and everything after it is replaced by the answer section
/// of a lookup of the new target (same type and class); the lookup's TC bit is
/// carried over so a truncated chain is not cached as complete. The response code
/// stays the original's. If the lookup fails the answer is left as it was.
pub(super) async fn follow(matcher: &NameMatch, answer: &mut Answer, q: &Query, next: Next<'_>) {
    let Some((at, target)) = first_match(matcher, &answer.answers) else {
        return;
    };
    let mut lookup = q.clone();
    lookup.lower = target.to_lowercase();
    lookup.name = target.clone();
    let found = match next.serve(&lookup).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, target = %target, "rewrite cname: lookup of the new target failed");
            return;
        }
    };
    let mut chain: Vec<Record> = answer
        .answers
        .drain(..=at)
        .filter(|rr| matches!(rr.data, RData::CNAME(_)))
        .collect();
    if let Some(RData::CNAME(c)) = chain.last_mut().map(|rr| &mut rr.data) {
        c.0 = target;
    }
    chain.extend(found.answers);
    answer.answers = chain;
    answer.truncated = found.truncated;
}
