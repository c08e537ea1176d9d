//! The cluster index: pure data that answers "what records does this name have".
//!
//! No I/O and no async here. Sources feed [`IndexUpdate`]s; the kubernetes
//! plugin asks [`ClusterIndex::lookup`]. Every record rule of the Kubernetes
//! DNS specification (and CoreDNS's extensions to it) lives in this module and
//! is table-tested here.
//!
//! (Stub: the implementation is being written.)

pub mod model;
pub mod update;

pub use update::{IndexUpdate, Kind, Object};

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};

/// How pod records (`1-2-3-4.ns.pod.zone`) are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodMode {
    /// No pod records: NXDOMAIN (CoreDNS default).
    #[default]
    Disabled,
    /// Answer the IP spelled in the name without checking.
    Insecure,
    /// Answer only when a Pod with that IP exists in that namespace.
    Verified,
}

/// The kubernetes plugin's options that change answers.
#[derive(Clone, Debug)]
pub struct LookupOptions {
    /// `namespaces NS...`: only these are exposed; `None` exposes all.
    pub namespaces: Option<HashSet<Box<str>>>,
    /// `pods`.
    pub pods: PodMode,
    /// `endpoint_pod_names`.
    pub endpoint_pod_names: bool,
    /// `ttl` (default 5).
    pub ttl: u32,
    /// `noendpoints`.
    pub noendpoints: bool,
    /// `ignore empty_service`.
    pub ignore_empty_service: bool,
    /// The first non-reverse zone: PTR targets and ExternalName chasing use it.
    pub primary_zone: Name,
    /// This server's own addresses, answered for `ns.dns.<zone>` and as NS glue.
    pub local_ips: Vec<IpAddr>,
}

/// One question for the index.
#[derive(Clone, Copy, Debug)]
pub struct LookupRequest<'a> {
    /// The query name exactly as the client sent it (case preserved, FQDN).
    pub qname: &'a Name,
    /// The plugin zone that matched (lower-case FQDN), e.g. `cluster.local.`.
    pub zone: &'a Name,
    /// The query type.
    pub qtype: RecordType,
}

/// The index's answer, ready to put on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupResult {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the zone SOA for NXDOMAIN/NODATA, NS at the apex).
    pub authority: Vec<Record>,
    /// Additional section (A/AAAA glue for SRV targets and NS).
    pub additionals: Vec<Record>,
    /// An ExternalName CNAME whose target lies outside the cluster zones: the
    /// plugin may resolve it through the rest of the chain and append that answer.
    pub chase: Option<Name>,
}

/// The whole cluster as DNS sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterIndex {}
pub mod snapshot;
#[allow(missing_docs, unused)]
impl ClusterIndex {
    pub fn apply(&mut self, update: IndexUpdate) { todo!() }
    pub fn is_synced(&self, kind: Kind) -> bool { todo!() }
    pub fn set_serial(&mut self, serial: u32) {}
    pub fn lookup(&self, opts: &LookupOptions, req: &LookupRequest<'_>) -> LookupResult { todo!() }
}
