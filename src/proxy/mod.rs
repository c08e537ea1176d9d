//! `clusterdns proxy`: the load-balancing third of service discovery — what
//! kube-proxy's nftables mode does. It watches Services, EndpointSlices and
//! its Node and keeps one nftables table of its own (`inet clusterdns`) so
//! that a connection to a ClusterIP, NodePort, externalIP or LoadBalancer IP
//! reaches a usable endpoint. No other table is ever touched.
//!
//! Pure parts, table- and golden-tested:
//! - [`model`]: the slim Service and EndpointSlice the proxy needs.
//! - [`select`]: which endpoints a Service port uses on this node (readiness,
//!   terminating fallback, zone hints, Local policies).
//! - [`render`]: Services + slices → the ruleset ([`ruleset::Ruleset`]).
//! - [`ruleset`]: the ruleset as data and the full / incremental `nft` scripts.
//! - [`table`]: what was written, per Service, so a sync re-renders only what changed.
//! - [`changes`]: which Services the watch events touched since the last sync.
//! - [`conntrack`]: which UDP conntrack entries went stale between two renders.
//! - [`healthcheck`]: what each health-check node port answers (Local policies).
//!
//! I/O: [`nft`] (running `nft -f -`, listing our table), [`session`] (a
//! long-lived `nft -i` for small transactions), [`shell`] (watches
//! and the rate-limited sync loop), [`sync`] (one full or partial sync), `health_ports` (serving the health-check node ports), [`metrics`], and [`role`] (the `proxy`
//! command).

pub mod changes;
pub mod conntrack;
#[cfg(test)]
mod fixtures;
mod health_ports;
pub mod healthcheck;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod render;
pub mod role;
pub mod ruleset;
pub mod select;
pub mod session;
pub mod shell;
pub mod sync;
pub mod table;
