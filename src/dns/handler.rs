//! Routing a [`Query`] to a server block's plugin chain, and the request
//! metrics around it. Shared by the UDP and TCP loops, which do the wire
//! side (parse, protocol rules, encode) through [`super::wire`].
//!
//! Routing follows CoreDNS: every server block on a listener owns zones, and a
//! query goes to the block whose zone is the longest suffix of the query name;
//! no match is REFUSED. A failing chain answers with its error's rcode and a
//! panicking one with SERVFAIL, so a query is never lost.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use futures::FutureExt;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;
use tracing::debug;

use crate::dns::memo::{Memo, Recorded, Ticket};
use crate::dns::metrics::{DnsMetrics, Observation, no_view, response_size};
use crate::dns::{Answer, Query, Transport};
use crate::plugin::view::{QueryFacts, View};
use crate::plugin::{Chain, MemoPass};

/// One server block's zones and its plugin chain.
#[derive(Clone)]
pub struct Route {
    /// Lower-case zones of the block.
    pub zones: Vec<Name>,
    /// The block's plugins, in execution order.
    pub chain: Chain,
    /// CoreDNS's `server` label (`dns://:53`).
    pub server: Arc<str>,
    /// Request metrics, for blocks with `prometheus`.
    pub metrics: Option<DnsMetrics>,
    /// The block's `view`: it takes a query only when the view holds.
    pub view: Option<Arc<View>>,
}

impl Route {
    /// Record one query's request metrics, for blocks with `prometheus`.
    fn observe(
        &self,
        zone: &Arc<str>,
        transport: Transport,
        src: SocketAddr,
        r: &Recorded,
        plugin: &'static str,
        started: Instant,
    ) {
        if let Some(m) = &self.metrics {
            m.observe(&Observation {
                server: &self.server,
                zone,
                view: self.view.as_ref().map_or(no_view(), |v| &v.name),
                proto: transport.as_str(),
                family: if src.is_ipv4() { "1" } else { "2" },
                qtype: r.qtype,
                dnssec_ok: r.dnssec_ok,
                request_size: usize::from(r.request_size),
                response_size: r.response_size as usize,
                rcode: r.rcode,
                plugin,
                elapsed: started.elapsed(),
            });
        }
    }
}

/// The server blocks of one listener, as one immutable routing table.
pub struct Table {
    /// (zone, its text for the metrics' `zone` label, block index) sorted
    /// by label count, longest first.
    zones: Vec<(Name, Arc<str>, usize)>,
    routes: Vec<Route>,
    /// Some block has a `view`: routing depends on more than the request
    /// bytes (the client, ...), so nothing is memoized.
    has_views: bool,
}

impl Table {
    fn new(routes: Vec<Route>) -> Self {
        let mut zones: Vec<(Name, Arc<str>, usize)> = routes
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.zones.iter().map(move |z| {
                    let z = z.to_lowercase();
                    let text: Arc<str> = z.to_ascii().into();
                    (z, text, i)
                })
            })
            .collect();
        // Stable: blocks of one zone stay in Corefile order (views first-match).
        zones.sort_by_key(|(z, _, _)| std::cmp::Reverse(z.num_labels()));
        let has_views = routes.iter().any(|r| r.view.is_some());
        Self {
            zones,
            routes,
            has_views,
        }
    }

    /// The block whose zone is the longest suffix of the query name (its
    /// position and itself), with that zone's text (computed once per table,
    /// not per query); among blocks of that zone, the first whose `view`
    /// holds for `q` (a block without a view always does).
    fn route(&self, q: &Query) -> Option<Routed<'_>> {
        let lower = &q.lower;
        // Made on the first view tried, then shared by the others.
        let mut facts: Option<QueryFacts<'_>> = None;
        let (pos, (_, text, i)) = self.zones.iter().enumerate().find(|(_, (zone, _, i))| {
            zone.zone_of(lower)
                && self.routes[*i]
                    .view
                    .as_ref()
                    .is_none_or(|v| v.holds(facts.get_or_insert_with(|| QueryFacts::of(q))))
        })?;
        Some(Routed {
            zone: pos,
            text,
            index: *i,
            route: &self.routes[*i],
        })
    }
}

/// Where [`Table::route`] sent a query.
struct Routed<'a> {
    /// Position of the zone in the table's zones.
    zone: usize,
    /// The zone's text (the metrics' `zone` label).
    text: &'a Arc<str>,
    /// Position of the block in the table's routes.
    index: usize,
    route: &'a Route,
}

/// One UDP worker's answer memo ([`crate::dns::memo`]) over this handler's tables.
pub type AnswerMemo = Memo<Table>;

/// All server blocks sharing one listener. The routing table is swapped
/// atomically on reload: a query runs entirely on the table it started with,
/// so a reload never drops or half-serves a query.
#[derive(Clone)]
pub struct Handler {
    /// Written by reloads ([`Handler::set`]); read once per query.
    table: Arc<ArcSwap<Table>>,
}

impl Handler {
    /// A handler routing among these server blocks.
    pub fn new(routes: Vec<Route>) -> Self {
        Self {
            table: Arc::new(ArcSwap::from_pointee(Table::new(routes))),
        }
    }

    /// Replace the server blocks (reload).
    pub fn set(&self, routes: Vec<Route>) {
        self.table.store(Arc::new(Table::new(routes)));
    }

    /// Answer one query through the routed chain; failures become their rcode,
    /// a panic becomes SERVFAIL (counted) instead of a lost query.
    pub async fn answer(&self, q: &Query) -> Answer {
        self.serve(q, false).await.0
    }

    /// As [`Handler::answer`], with a [`Ticket`] when the answer may be
    /// memoized: its writer stamped it and every plugin before the writer
    /// lets it through ([`crate::plugin::Plugin::memo_pass`]).
    pub async fn answer_memoizable(&self, q: &Query) -> (Answer, Option<Ticket>) {
        self.serve(q, true).await
    }

    /// Answer `request` (the bytes as received) from `memo` into `out`, if
    /// it holds a response to the same bytes that is still current: same
    /// routing table, writer data at the same generation. Replays the
    /// pass-through plugins' counters and records the request metrics.
    pub fn answer_from_memo(
        &self,
        memo: &mut AnswerMemo,
        request: &[u8],
        src: SocketAddr,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(key) = AnswerMemo::key(request) else {
            return false;
        };
        let table = self.table.load();
        memo.follow(&table);
        let Some(entry) = memo.get(key) else {
            return false;
        };
        let t = &entry.ticket;
        let Some(route) = table.routes.get(usize::from(t.route)) else {
            return false;
        };
        let plugins = route.chain.plugins();
        let Some(writer) = plugins.get(usize::from(t.writer)) else {
            return false;
        };
        if writer.memo_generation() != Some(t.generation) {
            return false;
        }
        let started = route.metrics.as_ref().map(|_| Instant::now());
        let mut replay = t.replay;
        while replay != 0 {
            if let Some(p) = plugins.get(replay.trailing_zeros() as usize) {
                p.memo_replay();
            }
            replay &= replay - 1;
        }
        out.clear();
        out.extend_from_slice(&request[..2]);
        out.extend_from_slice(&entry.response()[2..]);
        if let Some(started) = started
            && let Some((_, zone, _)) = table.zones.get(usize::from(t.recorded.zone))
        {
            route.observe(
                zone,
                Transport::Udp,
                src,
                &t.recorded,
                writer.name(),
                started,
            );
        }
        true
    }

    async fn serve(&self, q: &Query, want_ticket: bool) -> (Answer, Option<Ticket>) {
        let started = Instant::now();
        let table = self.table.load();
        let Some(routed) = table.route(q) else {
            return (Answer::rcode(ResponseCode::Refused), None);
        };
        let route = routed.route;
        let answer = match AssertUnwindSafe(route.chain.serve(q)).catch_unwind().await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                debug!(%error, name = %q.name, "plugin chain failed");
                Answer::rcode(error.rcode())
            }
            Err(_) => {
                tracing::error!(name = %q.name, qtype = %q.qtype, "panic while serving a query");
                if let Some(m) = &route.metrics {
                    m.panics.inc();
                }
                Answer::rcode(ResponseCode::ServFail)
            }
        };
        let want_ticket = want_ticket && answer.memo.is_some();
        if route.metrics.is_none() && !want_ticket {
            return (answer, None);
        }
        let recorded = Recorded {
            zone: u16::try_from(routed.zone).unwrap_or(u16::MAX),
            qtype: q.qtype,
            rcode: answer.rcode,
            dnssec_ok: q.dnssec_ok,
            request_size: match q.transport {
                Transport::Tcp => u16::MAX,
                Transport::Udp => q.edns_payload.unwrap_or(512),
            },
            response_size: u32::try_from(response_size(
                q.name.len() + 1 + 4,
                &[&answer.answers, &answer.authority, &answer.additionals],
            ))
            .unwrap_or(u32::MAX),
        };
        route.observe(
            routed.text,
            q.transport,
            q.src,
            &recorded,
            answer.writer,
            started,
        );
        let ticket = if want_ticket {
            ticket(&table, routed.index, route, q, &answer, recorded)
        } else {
            None
        };
        (answer, ticket)
    }
}

/// The memo ticket for `answer`, or `None` when a plugin before its writer
/// blocks memoizing it.
fn ticket(
    table: &Arc<Table>,
    index: usize,
    route: &Route,
    q: &Query,
    answer: &Answer,
    recorded: Recorded,
) -> Option<Ticket> {
    let generation = answer.memo?;
    if table.has_views {
        return None;
    }
    let plugins = route.chain.plugins();
    let writer = plugins.iter().position(|p| p.name() == answer.writer)?;
    let mut replay = 0u64;
    for (i, p) in plugins[..writer].iter().enumerate() {
        match p.memo_pass(q, answer) {
            MemoPass::Block => return None,
            MemoPass::Quiet => {}
            MemoPass::Replay => replay |= 1u64.checked_shl(u32::try_from(i).ok()?)?,
        }
    }
    Some(Ticket {
        table: Arc::as_ptr(table) as usize,
        route: u16::try_from(index).ok()?,
        writer: u16::try_from(writer).ok()?,
        generation,
        replay,
        recorded,
    })
}
