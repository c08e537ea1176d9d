//! Lease-based leader election (coordination.k8s.io/v1), the way
//! kube-controller-manager does it, for any role that must run once per
//! cluster (the EndpointSlice controller; not the per-node proxy).
//!
//! [`spawn`] starts an elector task. It tries to acquire the Lease every
//! `retry_period`; once leader it renews every `retry_period`, and if it cannot
//! renew within `renew_deadline` (API unreachable, lost a race, someone else
//! holds the lease) it stops being leader at once. Whoever uses it watches
//! [`Leadership::is_leader`] and does leader work only while it is `true`. On
//! shutdown (the token is cancelled) a leader first reports `false`, then
//! releases the Lease (empty holder) so another replica takes over without
//! waiting for expiry.
//!
//! Writes are `replace` with the `resourceVersion` just read: a 409 Conflict
//! means another replica wrote first, and we are not leader. The decision
//! itself is pure and lives in [`mod@decide`].
//!
//! We do not use the `kube-lease-manager` crate: it counts durations in whole
//! seconds, writes with server-side apply, has no separate renew deadline after
//! which a leader steps down, and does not judge expiry on the local clock.

pub mod decide;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use decide::{Decision, Record, decide};

/// Why an election setting is unusable, or an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The durations do not satisfy lease > renew deadline > retry period > 0.
    #[error(
        "leader election needs lease duration ({lease:?}) > renew deadline ({renew:?}) > retry period ({retry:?}) > 0"
    )]
    Durations {
        /// Lease duration.
        lease: Duration,
        /// Renew deadline.
        renew: Duration,
        /// Retry period.
        retry: Duration,
    },
    /// The lease name or namespace is empty.
    #[error("leader election needs a lease name and namespace")]
    NoName,
    /// An API request failed.
    #[error("lease {name}: {source}")]
    Api {
        /// The lease.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// Election settings (kube-controller-manager's flags and defaults).
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// Namespace of the Lease (`kube-system`).
    pub namespace: String,
    /// Name of the Lease (e.g. `clusterdns-endpoints-controller`).
    pub name: String,
    /// Our holderIdentity (see [`default_identity`]).
    pub identity: String,
    /// `--leader-elect-lease-duration` (15s).
    pub lease_duration: Duration,
    /// `--leader-elect-renew-deadline` (10s).
    pub renew_deadline: Duration,
    /// `--leader-elect-retry-period` (2s).
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// Settings with the defaults for `name` in `kube-system` and a fresh identity.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Check the durations and names.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return Err(LeaderError::NoName);
        }
        let ok = !self.retry_period.is_zero()
            && self.retry_period < self.renew_deadline
            && self.renew_deadline < self.lease_duration
            && self.lease_duration.as_secs() >= 1;
        if ok {
            Ok(())
        } else {
            Err(LeaderError::Durations {
                lease: self.lease_duration,
                renew: self.renew_deadline,
                retry: self.retry_period,
            })
        }
    }

    /// `leaseDurationSeconds` as written to the Lease (whole seconds, at least 1).
    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// Hostname plus a random suffix, so two processes on one host differ.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .filter(|h| !h.trim().is_empty())
        })
        .unwrap_or_else(|| "clusterdns".into());
    let suffix: String = (0..8).map(|_| fastrand::alphanumeric()).collect();
    format!("{}_{}", host.trim(), suffix.to_ascii_lowercase())
}

/// A running elector.
#[derive(Debug)]
pub struct Leadership {
    /// `true` while we are leader; becomes `false` the moment we are not.
    pub is_leader: watch::Receiver<bool>,
    /// The elector task; ends after the shutdown token is cancelled and the
    /// lease is released (dropping the [`Leadership`] does not stop it).
    pub task: JoinHandle<()>,
}

impl Leadership {
    /// Wait until we lead, then return a token for this leadership term: it
    /// is cancelled the moment the term ends (leadership lost, or the elector
    /// stopped). `None` once the elector has ended. A controller runs
    /// `while let Some(term) = leadership.next_term().await { work(term).await }`.
    pub async fn next_term(&mut self) -> Option<CancellationToken> {
        self.is_leader.wait_for(|leading| *leading).await.ok()?;
        if self.is_leader.has_changed().is_err() {
            // The elector is gone (its last word may still read `true`).
            return None;
        }
        let term = CancellationToken::new();
        let mut watch = self.is_leader.clone();
        let end = term.clone();
        tokio::spawn(async move {
            // Ends on `false` or when the elector is gone, either way the term is over.
            let _ = watch.wait_for(|leading| !*leading).await;
            end.cancel();
        });
        Some(term)
    }
}

/// Start electing with `client` until `shutdown` is cancelled.
pub fn spawn(
    client: Client,
    config: ElectionConfig,
    shutdown: CancellationToken,
) -> Result<Leadership, LeaderError> {
    config.validate()?;
    let (tx, rx) = watch::channel(false);
    let elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        observed: None,
    };
    let task = tokio::spawn(elector.run(tx, shutdown));
    Ok(Leadership {
        is_leader: rx,
        task,
    })
}

/// The outcome of one acquire-or-renew attempt.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the lease now.
    Held,
    /// Another holds it.
    Other,
    /// Our write got 409 Conflict: someone wrote the Lease between our read
    /// and our write. Not leader by this attempt; the next read tells more.
    Conflict,
}

struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    /// The last record seen and when we first saw it (for expiry on our clock).
    observed: Option<(Record, Instant)>,
}

impl Elector {
    async fn run(mut self, tx: watch::Sender<bool>, shutdown: CancellationToken) {
        let retry = self.config.retry_period;
        'outer: loop {
            // Follower: try every retry period.
            loop {
                if shutdown.is_cancelled() {
                    break 'outer;
                }
                match self.attempt_bounded().await {
                    Ok(Attempt::Held) if shutdown.is_cancelled() => {
                        // Won just as we were told to stop: never announce it.
                        self.release().await;
                        break 'outer;
                    }
                    Ok(Attempt::Held) => break,
                    Ok(Attempt::Other | Attempt::Conflict) => {}
                    Err(e) => tracing::warn!(error = %e, "leader election: acquiring"),
                }
                if sleep_or_shutdown(retry, &shutdown).await {
                    break 'outer;
                }
            }
            tracing::info!(
                lease = %self.config.name,
                identity = %self.config.identity,
                "became leader"
            );
            tx.send_replace(true);
            // Leader: renew every retry period; if no renewal succeeds within
            // the renew deadline (counted from the start of the last good one),
            // step down at that moment.
            let mut renewed_at = Instant::now();
            loop {
                let deadline = renewed_at + self.config.renew_deadline;
                let pause = retry.min(deadline.saturating_duration_since(Instant::now()));
                if sleep_or_shutdown(pause, &shutdown).await {
                    tx.send_replace(false);
                    self.release().await;
                    break 'outer;
                }
                let started = Instant::now();
                let left = deadline.saturating_duration_since(started);
                if left.is_zero() {
                    tracing::warn!(
                        lease = %self.config.name,
                        "could not renew within the renew deadline; stepping down"
                    );
                    break;
                }
                match tokio::time::timeout(left, self.attempt()).await {
                    Ok(Ok(Attempt::Held)) => renewed_at = started,
                    Ok(Ok(Attempt::Other)) => {
                        tracing::warn!(lease = %self.config.name, "leadership lost to another holder");
                        break;
                    }
                    Ok(Ok(Attempt::Conflict)) => {
                        tracing::warn!(lease = %self.config.name, "renewal conflicted; retrying");
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewing"),
                    Err(_) => {
                        tracing::warn!(
                            lease = %self.config.name,
                            "renewal did not finish within the renew deadline; stepping down"
                        );
                        break;
                    }
                }
            }
            tx.send_replace(false);
            if shutdown.is_cancelled() {
                break;
            }
        }
        tx.send_replace(false);
    }

    /// One attempt, bounded by the renew deadline (a hung request is a failure).
    async fn attempt_bounded(&mut self) -> Result<Attempt, LeaderError> {
        let deadline = self.config.renew_deadline;
        match tokio::time::timeout(deadline, self.attempt()).await {
            Ok(r) => r,
            Err(_) => Err(self.api_error(kube::Error::Service(
                format!("no answer within {deadline:?}").into(),
            ))),
        }
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            name: format!("{}/{}", self.config.namespace, self.config.name),
            source,
        }
    }

    async fn attempt(&mut self) -> Result<Attempt, LeaderError> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let now = Instant::now();
        let record = current.as_ref().map(record_of);
        let observed_at = match (&self.observed, &record) {
            (Some((seen, at)), Some(r)) if seen == r => *at,
            _ => now,
        };
        if let Some(r) = &record {
            self.observed = Some((r.clone(), observed_at));
        }
        let decision = decide(
            record.as_ref(),
            observed_at,
            now,
            &self.config.identity,
            self.config.lease_duration,
        );
        let wall = MicroTime(Timestamp::now());
        let (lease, create) = match (decision, current) {
            (Decision::Wait { .. }, _) => return Ok(Attempt::Other),
            (Decision::Create, _) | (_, None) => (
                Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(self.config.duration_seconds()),
                        acquire_time: Some(wall.clone()),
                        renew_time: Some(wall),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                },
                true,
            ),
            (Decision::Acquire, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.config.identity.clone());
                spec.lease_duration_seconds = Some(self.config.duration_seconds());
                spec.acquire_time = Some(wall.clone());
                spec.renew_time = Some(wall);
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                (lease, false)
            }
            (Decision::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.lease_duration_seconds = Some(self.config.duration_seconds());
                spec.renew_time = Some(wall);
                (lease, false)
            }
        };
        let written = if create {
            self.api.create(&PostParams::default(), &lease).await
        } else {
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
        };
        match written {
            Ok(lease) => {
                self.observed = Some((record_of(&lease), Instant::now()));
                Ok(Attempt::Held)
            }
            // 409: another replica wrote between our read and our write.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Give the lease up (empty holder), if we still hold it; bounded, best effort.
    async fn release(&mut self) {
        let deadline = self.config.renew_deadline;
        let name = self.config.name.clone();
        let identity = self.config.identity.clone();
        let api = self.api.clone();
        let result = tokio::time::timeout(deadline, async move {
            let Some(mut lease) = api.get_opt(&name).await? else {
                return Ok(false);
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(identity.as_str()) {
                return Ok(false);
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            api.replace(&name, &PostParams::default(), &lease).await?;
            Ok::<bool, kube::Error>(true)
        })
        .await;
        match result {
            Ok(Ok(true)) => tracing::info!(lease = %self.config.name, "lease released"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the lease"),
            Err(_) => tracing::warn!("releasing the lease: no answer within {deadline:?}"),
        }
    }
}

/// The election view of a Lease.
fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.as_ref();
    Record {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        duration: spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|d| u64::try_from(d).ok())
            .filter(|d| *d > 0)
            .map(Duration::from_secs),
        renew_time: spec.and_then(|s| s.renew_time.as_ref().map(|t| t.0.to_string())),
        transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
    }
}

/// Sleep `d`; `true` if shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lease: u64, renew: u64, retry: u64) -> ElectionConfig {
        ElectionConfig {
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
            ..ElectionConfig::new("x")
        }
    }

    #[test]
    fn durations_must_be_ordered() {
        let table = [
            (15_000, 10_000, 2_000, true),
            (2_000, 1_500, 200, true),
            (10_000, 10_000, 2_000, false),
            (15_000, 2_000, 2_000, false),
            (15_000, 10_000, 0, false),
            (900, 500, 100, false),
        ];
        for (lease, renew, retry, ok) in table {
            assert_eq!(
                config(lease, renew, retry).validate().is_ok(),
                ok,
                "{lease} {renew} {retry}"
            );
        }
    }

    #[test]
    fn empty_name_is_refused() {
        let c = ElectionConfig::new("");
        assert!(matches!(c.validate(), Err(LeaderError::NoName)));
    }

    #[test]
    fn identities_differ_and_are_nonempty() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        assert!(a.contains('_') && !a.starts_with('_'));
    }

    #[test]
    fn record_ignores_nonpositive_durations() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(0),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let r = record_of(&lease);
        assert_eq!(r.duration, None);
        assert_eq!(r.holder(), Some("a"));
    }
}
