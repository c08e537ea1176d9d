//! Metrics of the proxy, kube-proxy's facts under `clusterdns_proxy_*`:
//!
//! - `clusterdns_proxy_sync_proxy_rules_duration_seconds`: one sync (render +
//!   `nft` transaction).
//! - `clusterdns_proxy_network_programming_duration_seconds`: from an
//!   EndpointSlice's `endpoints.kubernetes.io/last-change-trigger-time` to the
//!   rules that carry the change being in the kernel (the SIG-scalability
//!   network programming latency SLI).
//! - `clusterdns_proxy_sync_proxy_rules_last_timestamp_seconds`: the last
//!   successful sync (Unix time).
//! - `clusterdns_proxy_nftables_objects{kind}`: chains, rules and map
//!   elements in our table after the last sync.
//! - `clusterdns_proxy_syncs_total{type}`: successful syncs, `full` or `partial`.
//! - `clusterdns_proxy_sync_errors_total`: failed transactions (retried as a full sync).
//! - `clusterdns_proxy_conntrack_deletions_total{result}`: stale UDP flow deletions.

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    exponential_buckets,
};

/// The proxy's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Sync duration.
    pub sync_duration: Histogram,
    /// Trigger time → rules in the kernel.
    pub programming: Histogram,
    /// Last successful sync.
    pub last_sync: Gauge,
    /// Objects in our table.
    pub objects: IntGaugeVec,
    /// Successful syncs by type.
    pub syncs: IntCounterVec,
    /// Failed syncs.
    pub errors: IntCounter,
    /// conntrack deletions by result.
    pub conntrack: IntCounterVec,
}

impl Default for Metrics {
    /// Metrics registered nowhere (for embedding the proxy in tests).
    fn default() -> Self {
        Metrics::register(&Registry::new())
            .unwrap_or_else(|e| unreachable!("fresh registry refused a metric: {e}"))
    }
}

impl Metrics {
    /// Create the metrics and register them into `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Metrics> {
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(
                "clusterdns_proxy_sync_proxy_rules_duration_seconds",
                "Duration of one sync of the nftables rules (render and transaction).",
            )
            .buckets(exponential_buckets(0.001, 2.0, 15)?),
        )?;
        let programming = Histogram::with_opts(
            HistogramOpts::new(
                "clusterdns_proxy_network_programming_duration_seconds",
                "From an EndpointSlice's last-change-trigger-time to its rules being in the kernel.",
            )
            .buckets(exponential_buckets(0.001, 2.0, 20)?),
        )?;
        let last_sync = Gauge::new(
            "clusterdns_proxy_sync_proxy_rules_last_timestamp_seconds",
            "Unix time of the last successful sync.",
        )?;
        let objects = IntGaugeVec::new(
            Opts::new(
                "clusterdns_proxy_nftables_objects",
                "Chains, rules and map elements in the proxy's table after the last sync.",
            ),
            &["kind"],
        )?;
        let syncs = IntCounterVec::new(
            Opts::new(
                "clusterdns_proxy_syncs_total",
                "Successful syncs, full (whole table) or partial (changes only).",
            ),
            &["type"],
        )?;
        let errors = IntCounter::new(
            "clusterdns_proxy_sync_errors_total",
            "Failed nft transactions (the next sync is a full one).",
        )?;
        let conntrack = IntCounterVec::new(
            Opts::new(
                "clusterdns_proxy_conntrack_deletions_total",
                "Deletions of stale UDP conntrack entries, by result.",
            ),
            &["result"],
        )?;
        r.register(Box::new(sync_duration.clone()))?;
        r.register(Box::new(programming.clone()))?;
        r.register(Box::new(last_sync.clone()))?;
        r.register(Box::new(objects.clone()))?;
        r.register(Box::new(syncs.clone()))?;
        r.register(Box::new(errors.clone()))?;
        r.register(Box::new(conntrack.clone()))?;
        for t in ["full", "partial"] {
            syncs.with_label_values(&[t]);
        }
        Ok(Metrics {
            sync_duration,
            programming,
            last_sync,
            objects,
            syncs,
            errors,
            conntrack,
        })
    }
}
