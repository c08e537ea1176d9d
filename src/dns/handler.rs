//! Routing a [`Query`] to a server block's plugin chain, and the request
//! metrics around it. Shared by the UDP and TCP loops, which do the wire
//! side (parse, protocol rules, encode) through [`super::wire`].
//!
//! Routing follows CoreDNS: every server block on a listener owns zones, and a
//! query goes to the block whose zone is the longest suffix of the query name;
//! no match is REFUSED. A failing chain answers with its error's rcode and a
//! panicking one with SERVFAIL, so a query is never lost.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use futures::FutureExt;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;
use tracing::debug;

use crate::dns::metrics::{DnsMetrics, Observation, response_size};
use crate::dns::{Answer, Query, Transport};
use crate::plugin::Chain;

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
}

/// The server blocks of one listener, as one immutable routing table.
struct Table {
    /// (zone, its text for the metrics' `zone` label, block index) sorted
    /// by label count, longest first.
    zones: Vec<(Name, Arc<str>, usize)>,
    routes: Vec<Route>,
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
        zones.sort_by_key(|(z, _, _)| std::cmp::Reverse(z.num_labels()));
        Self { zones, routes }
    }

    /// The block whose zone is the longest suffix of `lower`, with that
    /// zone's text (computed once per table, not per query).
    fn route(&self, lower: &Name) -> Option<(&Arc<str>, &Route)> {
        self.zones
            .iter()
            .find(|(zone, _, _)| zone.zone_of(lower))
            .map(|(_, text, i)| (text, &self.routes[*i]))
    }
}

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
        let started = Instant::now();
        let table = self.table.load();
        let Some((zone, route)) = table.route(&q.lower) else {
            return Answer::rcode(ResponseCode::Refused);
        };
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
        if let Some(m) = &route.metrics {
            let question = q.name.len() + 1 + 4;
            m.observe(&Observation {
                server: &route.server,
                zone,
                proto: q.transport.as_str(),
                family: if q.src.is_ipv4() { "1" } else { "2" },
                qtype: q.qtype,
                dnssec_ok: q.dnssec_ok,
                request_size: match q.transport {
                    Transport::Tcp => usize::from(u16::MAX),
                    Transport::Udp => usize::from(q.edns_payload.unwrap_or(512)),
                },
                response_size: response_size(
                    question,
                    &[&answer.answers, &answer.authority, &answer.additionals],
                ),
                rcode: answer.rcode,
                plugin: answer.writer,
                elapsed: started.elapsed(),
            });
        }
        answer
    }
}
