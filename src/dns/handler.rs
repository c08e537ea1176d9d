//! hickory-server's `RequestHandler`: wire request → [`Query`] → plugin chain → wire response.
//!
//! Routing follows CoreDNS: every server block on a listener owns zones, and a
//! query goes to the block whose zone is the longest suffix of the query name;
//! no match is REFUSED. The handler also owns the protocol rules plugins must
//! not care about: one question per query (else FORMERR), QUERY opcode only
//! (else NOTIMP), OPT in the response iff the query had one, and the UDP size
//! limit (512 without EDNS) with TC set when the answer does not fit.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use futures::FutureExt;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
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
    /// (zone, block index) sorted by label count, longest first.
    zones: Vec<(Name, usize)>,
    routes: Vec<Route>,
}

impl Table {
    fn new(routes: Vec<Route>) -> Self {
        let mut zones: Vec<(Name, usize)> = routes
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.zones.iter().map(move |z| (z.to_lowercase(), i)))
            .collect();
        zones.sort_by_key(|(z, _)| std::cmp::Reverse(z.num_labels()));
        Self { zones, routes }
    }

    /// The block whose zone is the longest suffix of `lower`, with that zone.
    fn route(&self, lower: &Name) -> Option<(&Name, &Route)> {
        self.zones
            .iter()
            .find(|(zone, _)| zone.zone_of(lower))
            .map(|(zone, i)| (zone, &self.routes[*i]))
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
                zone: &zone.to_ascii(),
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

fn transport(p: Protocol) -> Transport {
    match p {
        Protocol::Udp => Transport::Udp,
        _ => Transport::Tcp,
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let edns = request.edns.as_ref().map(super::wire::response_edns);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }

        let queries = request.queries.queries();
        let answer = if request.metadata.op_code != OpCode::Query {
            Answer::rcode(ResponseCode::NotImp)
        } else if queries.len() != 1 {
            Answer::rcode(ResponseCode::FormErr)
        } else {
            let original = queries[0].original();
            let name = original.name().clone();
            let q = Query {
                id: request.metadata.id,
                lower: name.to_lowercase(),
                name,
                qtype: original.query_type(),
                qclass: original.query_class(),
                src: request.src(),
                transport: transport(request.protocol()),
                edns_payload: request.edns.as_ref().map(Edns::max_payload),
                dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
                recursion_desired: request.metadata.recursion_desired,
            };
            self.answer(&q).await
        };

        metadata.response_code = answer.rcode;
        metadata.authoritative = answer.authoritative;
        metadata.truncation = answer.truncated;
        metadata.recursion_available = answer.recursion_available;
        let response = builder.build(
            metadata,
            answer.answers.iter(),
            answer.authority.iter(),
            std::iter::empty::<&Record>(),
            answer.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                debug!(%error, "sending response failed");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
