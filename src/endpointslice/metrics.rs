//! Metrics of the endpoints controller, served on `--metrics-bind-address`
//! beside `/healthz`. kube-controller-manager exports the same facts as
//! `endpoint_slice_controller_*`; ours are `clusterdns_endpointslice_*` so
//! that a cluster running both never mixes them up on one dashboard.
//!
//! - `clusterdns_endpointslice_syncs_total{result}`: Service syncs, `success` or `error`.
//! - `clusterdns_endpointslice_changes_total{object,operation}`: writes made,
//!   `object` = `endpointslice` | `endpoints`, `operation` = `create` |
//!   `update` | `delete`.
//! - `clusterdns_endpointslice_endpoints_desired`: endpoints in all the
//!   slices the controller wants to exist (after the last sync of each Service).
//! - `clusterdns_endpointslice_errors_total{reason}`: failed syncs by cause,
//!   `conflict` (409, re-planned), `api` (any other API error), `cache`.
//! - `clusterdns_endpointslice_sync_duration_seconds`: one Service's sync,
//!   planning and writes included.
//! - `clusterdns_endpointslice_leader`: 1 while this process may write (it
//!   holds the Lease, or runs without `--leader-elect`), else 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, exponential_buckets,
};

use super::apply::{Change, Object};

/// The controller's metrics (cheap to clone: handles to shared counters).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Syncs by result.
    pub syncs: IntCounterVec,
    /// Writes by object and operation.
    pub changes: IntCounterVec,
    /// Desired endpoints over all Services.
    pub endpoints_desired: IntGauge,
    /// Failed syncs by reason.
    pub errors: IntCounterVec,
    /// Sync duration.
    pub sync_duration: Histogram,
    /// Whether this process writes.
    pub leader: IntGauge,
    /// Desired endpoints per Service (namespace, name), summed into
    /// `endpoints_desired`.
    per_service: Arc<Mutex<HashMap<(String, String), i64>>>,
}

impl Default for Metrics {
    /// Metrics registered nowhere (for embedding the controller in tests).
    fn default() -> Self {
        Metrics::register(&Registry::new()).unwrap_or_else(|e| {
            unreachable!("fresh registry refused a metric: {e}");
        })
    }
}

impl Metrics {
    /// Create the metrics and register them into `r`.
    pub fn register(r: &Registry) -> prometheus::Result<Metrics> {
        let syncs = IntCounterVec::new(
            Opts::new(
                "clusterdns_endpointslice_syncs_total",
                "Service syncs of the endpoints controller, by result.",
            ),
            &["result"],
        )?;
        let changes = IntCounterVec::new(
            Opts::new(
                "clusterdns_endpointslice_changes_total",
                "EndpointSlice and Endpoints writes, by object and operation.",
            ),
            &["object", "operation"],
        )?;
        let endpoints_desired = IntGauge::new(
            "clusterdns_endpointslice_endpoints_desired",
            "Endpoints in the EndpointSlices the controller wants to exist.",
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "clusterdns_endpointslice_errors_total",
                "Failed Service syncs, by reason (each is retried with backoff).",
            ),
            &["reason"],
        )?;
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(
                "clusterdns_endpointslice_sync_duration_seconds",
                "Duration of one Service's sync, writes included.",
            )
            .buckets(exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        let leader = IntGauge::new(
            "clusterdns_endpointslice_leader",
            "1 while this process writes (holds the Lease, or runs without leader election).",
        )?;
        r.register(Box::new(syncs.clone()))?;
        r.register(Box::new(changes.clone()))?;
        r.register(Box::new(endpoints_desired.clone()))?;
        r.register(Box::new(errors.clone()))?;
        r.register(Box::new(sync_duration.clone()))?;
        r.register(Box::new(leader.clone()))?;
        for result in ["success", "error"] {
            syncs.with_label_values(&[result]);
        }
        Ok(Metrics {
            syncs,
            changes,
            endpoints_desired,
            errors,
            sync_duration,
            leader,
            per_service: Arc::default(),
        })
    }

    /// Count the writes of one sync.
    pub fn record_changes(&self, changes: &[(Object, Change)]) {
        for (object, change) in changes {
            self.changes
                .with_label_values(&[object.as_str(), change.as_str()])
                .inc();
        }
    }

    /// The Service `(namespace, name)` now wants `count` endpoints (`None`:
    /// it is gone).
    pub fn set_desired(&self, namespace: &str, name: &str, count: Option<usize>) {
        let mut per = self.per_service.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_owned(), name.to_owned());
        let old = match count {
            Some(n) => per.insert(key, i64::try_from(n).unwrap_or(i64::MAX)),
            None => per.remove(&key),
        };
        let new = count.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.endpoints_desired.add(new - old.unwrap_or(0));
    }

    /// Forget every Service (a new leadership term re-learns them).
    pub fn clear_desired(&self) {
        self.per_service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.endpoints_desired.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode;

    #[test]
    fn desired_sums_per_service_and_forgets_gone_ones() {
        let r = Registry::new();
        let m = Metrics::register(&r).expect("register");
        m.set_desired("a", "web", Some(10));
        m.set_desired("b", "web", Some(5));
        m.set_desired("a", "web", Some(7));
        assert_eq!(m.endpoints_desired.get(), 12);
        m.set_desired("b", "web", None);
        assert_eq!(m.endpoints_desired.get(), 7);
        m.clear_desired();
        assert_eq!(m.endpoints_desired.get(), 0);
        m.set_desired("a", "web", Some(3));
        assert_eq!(m.endpoints_desired.get(), 3);
    }

    #[test]
    fn changes_are_labelled_by_object_and_operation() {
        let r = Registry::new();
        let m = Metrics::register(&r).expect("register");
        m.record_changes(&[
            (Object::Slice, Change::Create),
            (Object::Slice, Change::Create),
            (Object::Endpoints, Change::Update),
        ]);
        let text = encode(&r);
        assert!(
            text.contains(
                "clusterdns_endpointslice_changes_total{object=\"endpointslice\",operation=\"create\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "clusterdns_endpointslice_changes_total{object=\"endpoints\",operation=\"update\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("clusterdns_endpointslice_syncs_total{result=\"error\"} 0"));
    }
}
