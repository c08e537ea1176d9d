//! Metrics of the API watches.
//!
//! - `coredns_kubernetes_dns_programming_duration_seconds{service_kind}`:
//!   CoreDNS's name, buckets and labels — the SIG-scalability DNS programming
//!   latency SLI, from the EndpointSlice's
//!   `endpoints.kubernetes.io/last-change-trigger-time` annotation to the moment
//!   the change reaches the index. `service_kind` is `cluster_ip`,
//!   `headless_with_selector` or `headless_without_selector`.
//! - `clusterdns_watch_restarts_total{kind}`: watch failures, each followed by
//!   a retry (a relist at once after 410 Gone, else after a backoff step; see
//!   [`retry`](crate::k8s::retry)).
//! - `clusterdns_watch_relists_total{kind}`: completed (re)lists — start, 410
//!   Gone, reconnect.
//! - `clusterdns_watch_events_total{kind,type}`: applied/deleted objects.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The watch metrics, registered once per process.
#[derive(Clone, Debug)]
pub struct WatchMetrics {
    /// Trigger time → index, per service kind.
    pub programming: HistogramVec,
    /// Watch errors per kind.
    pub restarts: IntCounterVec,
    /// Completed lists per kind.
    pub relists: IntCounterVec,
    /// Events per kind and type (`apply`, `delete`).
    pub events: IntCounterVec,
}

impl crate::plugin::build::Family for WatchMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let programming = HistogramVec::new(
            HistogramOpts::new(
                "coredns_kubernetes_dns_programming_duration_seconds",
                "Histogram of the time (in seconds) it took to program a dns instance.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 20)?),
            &["service_kind"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "clusterdns_watch_restarts_total",
                "Watch failures of the Kubernetes API watches, each followed by a retry (at once after 410 Gone, else after a backoff).",
            ),
            &["kind"],
        )?;
        let relists = IntCounterVec::new(
            Opts::new(
                "clusterdns_watch_relists_total",
                "Completed lists (initial, after 410 Gone or reconnect) that replaced a kind in the index.",
            ),
            &["kind"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "clusterdns_watch_events_total",
                "Watch events applied to the index.",
            ),
            &["kind", "type"],
        )?;
        r.register(Box::new(programming.clone()))?;
        r.register(Box::new(restarts.clone()))?;
        r.register(Box::new(relists.clone()))?;
        r.register(Box::new(events.clone()))?;
        Ok(Self {
            programming,
            restarts,
            relists,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_prometheus_conventions_and_coredns_names() {
        let r = Registry::new();
        let m = <WatchMetrics as crate::plugin::build::Family>::register(&r).expect("register");
        m.programming
            .with_label_values(&["cluster_ip"])
            .observe(0.01);
        m.restarts.with_label_values(&["Service"]).inc();
        m.relists.with_label_values(&["Service"]).inc();
        m.events.with_label_values(&["Service", "apply"]).inc();
        let text = crate::metrics::encode(&r);
        assert!(text.contains(
            "coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind=\"cluster_ip\",le=\"0.016\"} 1"
        ), "{text}");
        assert!(text.contains("clusterdns_watch_restarts_total{kind=\"Service\"} 1"));
        for family in r.gather() {
            let name = family.name();
            let is_counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
            assert_eq!(is_counter, name.ends_with("_total"), "{name}");
            if family.get_field_type() == prometheus::proto::MetricType::HISTOGRAM {
                assert!(name.ends_with("_seconds"), "{name}");
            }
        }
    }
}
