//! When a failed watch tries again: the pure error → delay policy.
//!
//! A 410 Gone (a watch or a list continuation from a resourceVersion the API
//! server has compacted away) is the normal end of a too-old watch, not a
//! fault: the watcher relists at once, and the index keeps serving the old
//! state until the new list is swapped in. Every other error (connection
//! refused, 5xx, 401/403, a body that is not JSON) is a fault and waits one
//! step of a capped exponential backoff before the next request, so a
//! struggling API server is not hammered. Two 410s in a row without progress
//! in between count as a fault, so a server that answers 410 to everything
//! cannot make the watcher spin.
//!
//! Progress (a completed list, or a watch event) resets both counters. The
//! delay here has no jitter; the caller spreads it (see [`jittered`]).

use std::time::Duration;

use kube::runtime::watcher;

/// The capped exponential backoff applied to faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The cap; each further fault doubles the delay up to this.
    pub max: Duration,
}

impl Default for Backoff {
    /// client-go's reflector values (as kube-rs's `default_backoff`): 800 ms doubling to 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
        }
    }
}

/// What kind of failure an error is, for the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 410 Gone: relist now.
    Gone,
    /// Anything else: back off.
    Fault,
}

impl Failure {
    /// Classifies a kube-rs watcher error.
    pub fn of(error: &watcher::Error) -> Self {
        let code = match error {
            watcher::Error::WatchError(status) => Some(status.code),
            watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        };
        if code == Some(410) {
            Failure::Gone
        } else {
            Failure::Fault
        }
    }
}

/// The retry state of one watch (owned by its task).
#[derive(Clone, Debug)]
pub struct Retry {
    backoff: Backoff,
    /// Faults since the last progress.
    faults: u32,
    /// 410s since the last progress.
    gone: u32,
}

impl Retry {
    /// A fresh state.
    pub fn new(backoff: Backoff) -> Self {
        Retry {
            backoff,
            faults: 0,
            gone: 0,
        }
    }

    /// The delay before the next request after `failure`.
    pub fn on_failure(&mut self, failure: Failure) -> Duration {
        if failure == Failure::Gone && self.gone == 0 {
            self.gone += 1;
            return Duration::ZERO;
        }
        let exp = self.faults.min(31);
        self.faults = self.faults.saturating_add(1);
        self.backoff
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.backoff.max)
    }

    /// A list completed or an event arrived: the next failure starts afresh.
    pub fn on_progress(&mut self) {
        self.faults = 0;
        self.gone = 0;
    }
}

/// `delay` spread over ±25% with `unit` in `[0, 1)` (a random number), so
/// watches that failed together do not retry together.
pub fn jittered(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(0.75 + unit.clamp(0.0, 1.0) * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status::failure("test", "Test").with_code(code))
    }

    #[test]
    fn a_410_is_gone_and_everything_else_is_a_fault() {
        use watcher::Error as E;
        let cases: Vec<(E, Failure)> = vec![
            (E::WatchError(status(410)), Failure::Gone),
            (
                E::InitialListFailed(kube::Error::Api(status(410))),
                Failure::Gone,
            ),
            (E::WatchError(status(500)), Failure::Fault),
            (
                E::InitialListFailed(kube::Error::Api(status(500))),
                Failure::Fault,
            ),
            (
                E::WatchStartFailed(kube::Error::Api(status(401))),
                Failure::Fault,
            ),
            (
                E::WatchFailed(kube::Error::Api(status(503))),
                Failure::Fault,
            ),
            (E::WatchError(status(403)), Failure::Fault),
            (E::NoResourceVersion, Failure::Fault),
            (
                E::WatchFailed(kube::Error::LinesCodecMaxLineLengthExceeded),
                Failure::Fault,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(Failure::of(&error), want, "{error}");
        }
    }

    #[test]
    fn delays_follow_the_policy() {
        use Failure::{Fault, Gone};
        let backoff = Backoff {
            initial: MS(100),
            max: MS(1000),
        };
        // (name, steps): a failure with the delay it must get, or `None` = progress.
        type Step = Option<(Failure, u64)>;
        let cases: &[(&str, &[Step])] = &[
            ("a 410 relists at once", &[Some((Gone, 0))]),
            (
                "faults double up to the cap",
                &[
                    Some((Fault, 100)),
                    Some((Fault, 200)),
                    Some((Fault, 400)),
                    Some((Fault, 800)),
                    Some((Fault, 1000)),
                    Some((Fault, 1000)),
                ],
            ),
            (
                "a second 410 without progress backs off",
                &[Some((Gone, 0)), Some((Gone, 100)), Some((Gone, 200))],
            ),
            (
                "progress makes the next 410 immediate again",
                &[Some((Gone, 0)), None, Some((Gone, 0))],
            ),
            (
                "progress resets the backoff",
                &[
                    Some((Fault, 100)),
                    Some((Fault, 200)),
                    None,
                    Some((Fault, 100)),
                ],
            ),
            (
                "a 410 after faults is still immediate, later faults continue the backoff",
                &[Some((Fault, 100)), Some((Gone, 0)), Some((Fault, 200))],
            ),
        ];
        for (name, steps) in cases {
            let mut retry = Retry::new(backoff);
            for (i, step) in steps.iter().enumerate() {
                match step {
                    Some((failure, ms)) => {
                        assert_eq!(retry.on_failure(*failure), MS(*ms), "{name}: step {i}")
                    }
                    None => retry.on_progress(),
                }
            }
        }
    }

    #[test]
    fn many_faults_saturate_at_the_cap_without_overflow() {
        let mut retry = Retry::new(Backoff::default());
        let last = (0..100).map(|_| retry.on_failure(Failure::Fault)).last();
        assert_eq!(last, Some(Duration::from_secs(30)));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let d = Duration::from_secs(4);
        assert_eq!(jittered(d, 0.0), Duration::from_secs(3));
        assert_eq!(jittered(d, 0.5), d);
        assert_eq!(jittered(d, 1.0), Duration::from_secs(5));
        assert_eq!(jittered(Duration::ZERO, 0.7), Duration::ZERO);
    }
}
