//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation: when
//! did the change happen that this write publishes? Consumers (kube-proxy's
//! and our own programming-latency metrics, SLO dashboards) subtract it from
//! the time they act on the object, so it must name the *earliest* change
//! not yet published, not the time of the write.
//!
//! Upstream's rule (kube-controller-manager's trigger time tracker), which
//! this follows: a Service's trigger time is its creation time; a pod's is
//! the `lastTransitionTime` of its `Ready` condition. Per Service we remember
//! the times seen at the last successful sync. At the next sync the annotation is the
//! smallest time that moved since then; a Service synced for the first time
//! gets its creation time; nothing moved gives no annotation. Pure state,
//! no clock: the controller calls [`TriggerTimes::observe`] once per sync and
//! [`TriggerTimes::commit`] when its writes succeeded.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::jiff::Timestamp;

use super::model::{Pod, Service};

/// What was seen for one Service at its last sync: pod → time, sorted, the
/// pod known by a 64-bit hash of its name. Kept for every pod of every
/// Service, names and a map per Service were ~8 MB at 10,000 Services × 10
/// pods; this is a third of it. Two pods of one Service with the same hash
/// (odds ~n²/2⁶⁵) could only make one annotation name a later time.
#[derive(Clone, Debug, Default)]
struct Seen {
    service: Option<Timestamp>,
    pods: Box<[(u64, Timestamp)]>,
}

/// The key a pod name is remembered by (stable within the process).
fn pod_key(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

impl Seen {
    fn pod(&self, name: &str) -> Option<&Timestamp> {
        let key = pod_key(name);
        let i = self.pods.binary_search_by(|(k, _)| k.cmp(&key)).ok()?;
        Some(&self.pods[i].1)
    }
}

/// The trigger-time memory of all Services, keyed by (namespace, name).
#[derive(Debug, Default)]
pub struct TriggerTimes {
    seen: HashMap<(String, String), Seen>,
}

fn earliest(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// What one sync saw, to be remembered with [`TriggerTimes::commit`] once
/// its writes succeeded (a failed sync must publish the same time again).
#[derive(Debug)]
pub struct Observation {
    key: (String, String),
    seen: Seen,
}

impl TriggerTimes {
    /// The trigger time for a sync of `svc` whose selected pods are `pods`,
    /// and what to remember if the sync succeeds.
    pub fn observe<'a>(
        &self,
        svc: &Service,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> (Option<Timestamp>, Observation) {
        let key = (svc.namespace.clone(), svc.name.clone());
        let last = self.seen.get(&key);
        let mut now: BTreeMap<u64, Timestamp> = BTreeMap::new();
        let mut moved = None;
        for pod in pods {
            let Some(t) = pod.ready_changed else { continue };
            now.insert(pod_key(&pod.name), t);
            let before = last.and_then(|l| l.pod(&pod.name));
            if before.is_none_or(|seen| t > *seen) {
                moved = earliest(moved, t);
            }
        }
        if let Some(t) = svc.created
            && last.and_then(|l| l.service).is_none_or(|seen| t > seen)
        {
            moved = earliest(moved, t);
        }
        let time = if last.is_some() { moved } else { svc.created };
        let seen = Seen {
            service: svc.created,
            pods: now.into_iter().collect(),
        };
        (time, Observation { key, seen })
    }

    /// Remember a successful sync's observation.
    pub fn commit(&mut self, observation: Observation) {
        self.seen.insert(observation.key, observation.seen);
    }

    /// Forget a deleted Service.
    pub fn forget(&mut self, namespace: &str, name: &str) {
        self.seen.remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// The annotation's text: RFC 3339 in UTC, fractional seconds only when
/// present (Go's `RFC3339Nano`).
pub fn format(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::fixtures::{pod, svc};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn at(name: &str, t: &str) -> Pod {
        let mut p = pod(name).ready().build();
        p.ready_changed = Some(ts(t));
        p
    }

    /// Observe and commit, as a successful sync does.
    fn sync(tt: &mut TriggerTimes, s: &Service, pods: &[Pod]) -> Option<Timestamp> {
        let (t, seen) = tt.observe(s, pods);
        tt.commit(seen);
        t
    }

    #[test]
    fn a_failed_sync_publishes_the_same_time_again() {
        let mut s = svc("web").build();
        s.created = Some(ts("2026-01-01T00:00:00Z"));
        let mut tt = TriggerTimes::default();
        sync(&mut tt, &s, &[]);
        let pods = [at("a", "2026-01-02T00:00:00Z")];
        let (first, _not_committed) = tt.observe(&s, &pods);
        assert_eq!(first, Some(ts("2026-01-02T00:00:00Z")));
        assert_eq!(sync(&mut tt, &s, &pods), first);
        assert_eq!(sync(&mut tt, &s, &pods), None);
    }

    #[test]
    fn first_sync_is_the_service_creation() {
        let mut s = svc("web").build();
        s.created = Some(ts("2026-01-01T00:00:00Z"));
        let mut tt = TriggerTimes::default();
        let pods = [at("a", "2026-01-02T00:00:00Z")];
        assert_eq!(sync(&mut tt, &s, &pods), s.created);
        // Nothing moved since: no annotation.
        assert_eq!(sync(&mut tt, &s, &pods), None);
    }

    #[test]
    fn the_earliest_moved_pod_time_wins() {
        let mut s = svc("web").build();
        s.created = Some(ts("2026-01-01T00:00:00Z"));
        let mut tt = TriggerTimes::default();
        sync(
            &mut tt,
            &s,
            &[
                at("a", "2026-01-02T00:00:00Z"),
                at("b", "2026-01-02T00:00:00Z"),
            ],
        );
        let cases = [
            // (pods, expected)
            (
                vec![
                    at("a", "2026-01-03T00:00:05Z"),
                    at("b", "2026-01-03T00:00:01Z"),
                ],
                Some("2026-01-03T00:00:01Z"),
            ),
            // Only b moved again; a's time is unchanged and does not count.
            (
                vec![
                    at("a", "2026-01-03T00:00:05Z"),
                    at("b", "2026-01-04T00:00:00Z"),
                ],
                Some("2026-01-04T00:00:00Z"),
            ),
            // A new pod counts from its own time.
            (
                vec![
                    at("a", "2026-01-03T00:00:05Z"),
                    at("b", "2026-01-04T00:00:00Z"),
                    at("c", "2026-01-05T00:00:00.25Z"),
                ],
                Some("2026-01-05T00:00:00.25Z"),
            ),
            // A pod that left is no trigger time (upstream has none either).
            (
                vec![
                    at("a", "2026-01-03T00:00:05Z"),
                    at("b", "2026-01-04T00:00:00Z"),
                ],
                None,
            ),
        ];
        for (i, (pods, want)) in cases.into_iter().enumerate() {
            assert_eq!(sync(&mut tt, &s, &pods), want.map(ts), "case {i}");
        }
    }

    #[test]
    fn a_recreated_service_counts_and_forget_restarts() {
        let mut s = svc("web").build();
        s.created = Some(ts("2026-01-01T00:00:00Z"));
        let mut tt = TriggerTimes::default();
        sync(&mut tt, &s, &[]);
        s.created = Some(ts("2026-02-01T00:00:00Z"));
        assert_eq!(sync(&mut tt, &s, &[]), s.created);
        tt.forget("default", "web");
        assert_eq!(sync(&mut tt, &s, &[]), s.created);
    }

    #[test]
    fn format_is_rfc3339_utc() {
        assert_eq!(format(ts("2026-01-05T00:00:00Z")), "2026-01-05T00:00:00Z");
        assert_eq!(
            format(ts("2026-01-05T00:00:00.25Z")),
            "2026-01-05T00:00:00.25Z"
        );
    }
}
