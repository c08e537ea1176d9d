//! The cache's metrics, with CoreDNS's names, help texts and labels
//! (`plugin/cache/metrics.go`): `server`, `zones` (the cached zones joined by
//! `,`), `view` (always empty: we have no views) and `type` (`success` or
//! `denial`) where CoreDNS has it.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::entry::Kind;
use crate::dns::shards::counter::{FlushingVec, ThreadCounter};

/// The cache metric families, registered once per process.
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    /// `coredns_cache_entries{server,type,zones,view}`.
    pub entries: IntGaugeVec,
    /// `coredns_cache_hits_total{server,type,zones,view}` (per query: counted per thread).
    pub hits: FlushingVec,
    /// `coredns_cache_misses_total{server,zones,view}` (deprecated in CoreDNS, kept for dashboards).
    pub misses: FlushingVec,
    /// `coredns_cache_requests_total{server,zones,view}`.
    pub requests: FlushingVec,
    /// `coredns_cache_prefetch_total{server,zones,view}`.
    pub prefetch: IntCounterVec,
    /// `coredns_cache_drops_total{server,zones,view}`.
    pub drops: IntCounterVec,
    /// `coredns_cache_served_stale_total{server,zones,view}`.
    pub served_stale: IntCounterVec,
    /// `coredns_cache_evictions_total{server,type,zones,view}`.
    pub evictions: IntCounterVec,
}

const TYPED: &[&str] = &["server", "type", "zones", "view"];
const UNTYPED: &[&str] = &["server", "zones", "view"];

/// A per-query family: counted per thread, summed on scrape.
fn per_query(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<FlushingVec> {
    let c = FlushingVec::new(IntCounterVec::new(Opts::new(name, help), labels)?);
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl crate::plugin::build::Family for CacheMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let entries = IntGaugeVec::new(
            Opts::new(
                "coredns_cache_entries",
                "The number of elements in the cache.",
            ),
            TYPED,
        )?;
        r.register(Box::new(entries.clone()))?;
        Ok(Self {
            entries,
            hits: per_query(
                r,
                "coredns_cache_hits_total",
                "The count of cache hits.",
                TYPED,
            )?,
            misses: per_query(
                r,
                "coredns_cache_misses_total",
                "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
                UNTYPED,
            )?,
            requests: per_query(
                r,
                "coredns_cache_requests_total",
                "The count of cache requests.",
                UNTYPED,
            )?,
            prefetch: counter(
                r,
                "coredns_cache_prefetch_total",
                "The number of times the cache has prefetched a cached item.",
                UNTYPED,
            )?,
            drops: counter(
                r,
                "coredns_cache_drops_total",
                "The number responses that are not cached, because the reply is malformed.",
                UNTYPED,
            )?,
            served_stale: counter(
                r,
                "coredns_cache_served_stale_total",
                "The number of requests served from stale cache entries.",
                UNTYPED,
            )?,
            evictions: counter(
                r,
                "coredns_cache_evictions_total",
                "The count of cache evictions.",
                TYPED,
            )?,
        })
    }
}

/// One cache instance's series, resolved once so the query path does no label lookups.
#[derive(Clone, Debug)]
pub(super) struct Series {
    pub(super) entries: [IntGauge; 2],
    pub(super) hits: [ThreadCounter; 2],
    pub(super) evictions: [IntCounter; 2],
    pub(super) misses: ThreadCounter,
    pub(super) requests: ThreadCounter,
    pub(super) prefetch: IntCounter,
    pub(super) served_stale: IntCounter,
}

impl Series {
    pub(super) fn new(m: &CacheMetrics, server: &str, zones: &str) -> Self {
        let typed = |v: &IntCounterVec| {
            [Kind::Success, Kind::Denial]
                .map(|k| v.with_label_values(&[server, k.label(), zones, ""]))
        };
        let plain = |v: &IntCounterVec| v.with_label_values(&[server, zones, ""]);
        let per_query = |v: &FlushingVec| v.with_label_values(&[server, zones, ""]);
        Self {
            entries: [Kind::Success, Kind::Denial]
                .map(|k| m.entries.with_label_values(&[server, k.label(), zones, ""])),
            hits: [Kind::Success, Kind::Denial]
                .map(|k| m.hits.with_label_values(&[server, k.label(), zones, ""])),
            evictions: typed(&m.evictions),
            misses: per_query(&m.misses),
            requests: per_query(&m.requests),
            prefetch: plain(&m.prefetch),
            served_stale: plain(&m.served_stale),
        }
    }
}

/// Index of a kind in the per-type arrays.
pub(super) fn idx(k: Kind) -> usize {
    match k {
        Kind::Success => 0,
        Kind::Denial => 1,
    }
}
