//! The pure half of leader election: given what the Lease says, when we first
//! saw it say that, the time now and our identity, what to do next.
//!
//! Like kube-controller-manager, expiry is judged on *our* clock: a lease held
//! by another is expired once its record has not changed for its
//! `leaseDurationSeconds` since we first observed it. The holder's
//! `renewTime` is only used to notice that the record changed, so clock skew
//! between nodes cannot make two leaders.

use std::time::{Duration, Instant};

/// The parts of a Lease that election looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `spec.holderIdentity`; `None` or empty: nobody holds it (released).
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`, when present and positive.
    pub duration: Option<Duration>,
    /// `spec.renewTime` as written (only compared for change).
    pub renew_time: Option<String>,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
}

impl Record {
    /// The holder, if anyone holds the lease.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What the elector does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it with us as holder.
    Create,
    /// Free or expired: take it over (one more transition).
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Another holds it and it has not expired on our clock.
    Wait {
        /// Who holds it.
        holder: String,
        /// Time until it would expire if not renewed.
        remaining: Duration,
    },
}

/// Decide from the lease `record` (first observed at `observed_at`), `now`,
/// our `identity`, and the `default_duration` for leases that state none.
pub fn decide(
    record: Option<&Record>,
    observed_at: Instant,
    now: Instant,
    identity: &str,
    default_duration: Duration,
) -> Decision {
    let Some(record) = record else {
        return Decision::Create;
    };
    let Some(holder) = record.holder() else {
        return Decision::Acquire;
    };
    if holder == identity {
        return Decision::Renew;
    }
    let duration = record.duration.unwrap_or(default_duration);
    let expires = observed_at + duration;
    match expires.checked_duration_since(now) {
        Some(remaining) if !remaining.is_zero() => Decision::Wait {
            holder: holder.to_string(),
            remaining,
        },
        _ => Decision::Acquire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: Option<&str>, secs: Option<u64>) -> Record {
        Record {
            holder: holder.map(str::to_string),
            duration: secs.map(Duration::from_secs),
            renew_time: Some("2026-01-01T00:00:00.000000Z".into()),
            transitions: 3,
        }
    }

    #[test]
    fn decisions_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let default = s(15);
        // (case, record, observed_at, now, expected)
        let cases: Vec<(&str, Option<Record>, Instant, Instant, Decision)> = vec![
            ("missing lease", None, t0, t0, Decision::Create),
            (
                "released (empty holder)",
                Some(rec(Some(""), Some(15))),
                t0,
                t0,
                Decision::Acquire,
            ),
            (
                "no holder field",
                Some(rec(None, Some(15))),
                t0,
                t0,
                Decision::Acquire,
            ),
            (
                "ours, fresh",
                Some(rec(Some("me"), Some(15))),
                t0,
                t0,
                Decision::Renew,
            ),
            (
                "ours, long unrenewed: still renew (we hold it)",
                Some(rec(Some("me"), Some(15))),
                t0,
                t0 + s(100),
                Decision::Renew,
            ),
            (
                "other, just observed",
                Some(rec(Some("other"), Some(15))),
                t0,
                t0,
                Decision::Wait {
                    holder: "other".into(),
                    remaining: s(15),
                },
            ),
            (
                "other, 1 ms before expiry",
                Some(rec(Some("other"), Some(15))),
                t0,
                t0 + s(15) - ms(1),
                Decision::Wait {
                    holder: "other".into(),
                    remaining: ms(1),
                },
            ),
            (
                "other, exactly at expiry",
                Some(rec(Some("other"), Some(15))),
                t0,
                t0 + s(15),
                Decision::Acquire,
            ),
            (
                "other, long expired",
                Some(rec(Some("other"), Some(2))),
                t0,
                t0 + s(60),
                Decision::Acquire,
            ),
            (
                "other, no duration in lease: our default applies",
                Some(rec(Some("other"), None)),
                t0,
                t0 + s(10),
                Decision::Wait {
                    holder: "other".into(),
                    remaining: s(5),
                },
            ),
            (
                "other, observed later than now (clock values out of order)",
                Some(rec(Some("other"), Some(2))),
                t0 + s(1),
                t0,
                Decision::Wait {
                    holder: "other".into(),
                    remaining: s(3),
                },
            ),
        ];
        for (name, record, observed, now, want) in cases {
            assert_eq!(
                decide(record.as_ref(), observed, now, "me", default),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn identity_is_compared_exactly() {
        let t0 = Instant::now();
        let r = rec(Some("me-abc"), Some(15));
        assert!(matches!(
            decide(Some(&r), t0, t0, "me", Duration::from_secs(15)),
            Decision::Wait { .. }
        ));
    }
}
