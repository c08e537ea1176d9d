//! The forward plugin's metrics, with CoreDNS's names, labels and buckets so
//! that existing dashboards find them (`proxy_name` is always `forward`).

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::plugin::build::Family;

/// The forward metrics (CoreDNS's names and labels), registered once per process.
#[derive(Clone, Debug)]
pub struct ForwardMetrics {
    /// `coredns_proxy_request_duration_seconds{proxy_name,to,rcode}`.
    pub request_duration: HistogramVec,
    /// `coredns_proxy_healthcheck_failures_total{proxy_name,to}`.
    pub healthcheck_failures: IntCounterVec,
    /// `coredns_forward_healthcheck_broken_total`.
    pub healthcheck_broken: IntCounter,
    /// `coredns_forward_max_concurrent_rejects_total`.
    pub max_concurrent_rejects: IntCounter,
    /// `coredns_proxy_conn_cache_hits_total{proxy_name,to,proto}` (CoreDNS
    /// 1.11 on) and `coredns_forward_conn_cache_hits_total{to,proto}` (before):
    /// a query that found a `tls://` connection open.
    pub conn_cache_hits: ConnCounters,
    /// The same pair for `_misses_total`: a query that dialled a connection.
    pub conn_cache_misses: ConnCounters,
}

/// One connection-cache counter under both the current and the older
/// CoreDNS name, so that dashboards of either generation find it.
#[derive(Clone, Debug)]
pub struct ConnCounters {
    proxy: IntCounterVec,
    forward: IntCounterVec,
}

impl ConnCounters {
    fn register(r: &Registry, what: &str, help: &str) -> prometheus::Result<Self> {
        let proxy = IntCounterVec::new(
            Opts::new(format!("coredns_proxy_conn_cache_{what}_total"), help),
            &["proxy_name", "to", "proto"],
        )?;
        let forward = IntCounterVec::new(
            Opts::new(format!("coredns_forward_conn_cache_{what}_total"), help),
            &["to", "proto"],
        )?;
        r.register(Box::new(proxy.clone()))?;
        r.register(Box::new(forward.clone()))?;
        Ok(Self { proxy, forward })
    }

    /// Count one for upstream `to` over `proto` (CoreDNS's `tcp-tls`).
    pub fn inc(&self, to: &str, proto: &str) {
        self.proxy.with_label_values(&["forward", to, proto]).inc();
        self.forward.with_label_values(&[to, proto]).inc();
    }
}

impl Family for ForwardMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "coredns_proxy_request_duration_seconds",
                "Histogram of the time each request took.",
            )
            // CoreDNS's plugin.TimeBuckets.
            .buckets(prometheus::exponential_buckets(0.00025, 2.0, 16)?),
            &["proxy_name", "to", "rcode"],
        )?;
        let healthcheck_failures = IntCounterVec::new(
            Opts::new(
                "coredns_proxy_healthcheck_failures_total",
                "Counter of the number of failed healthchecks.",
            ),
            &["proxy_name", "to"],
        )?;
        let healthcheck_broken = IntCounter::new(
            "coredns_forward_healthcheck_broken_total",
            "Counter of the number of complete failures of the healthchecks.",
        )?;
        let max_concurrent_rejects = IntCounter::new(
            "coredns_forward_max_concurrent_rejects_total",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
        )?;
        r.register(Box::new(request_duration.clone()))?;
        r.register(Box::new(healthcheck_failures.clone()))?;
        r.register(Box::new(healthcheck_broken.clone()))?;
        r.register(Box::new(max_concurrent_rejects.clone()))?;
        Ok(Self {
            request_duration,
            healthcheck_failures,
            healthcheck_broken,
            max_concurrent_rejects,
            conn_cache_hits: ConnCounters::register(
                r,
                "hits",
                "Counter of connection cache hits per upstream and protocol.",
            )?,
            conn_cache_misses: ConnCounters::register(
                r,
                "misses",
                "Counter of connection cache misses per upstream and protocol.",
            )?,
        })
    }
}
