//! Per-upstream health: CoreDNS's in-band checks, as a small state machine.
//!
//! After a failed exchange a check loop starts (at most one per upstream): it
//! asks the upstream `. IN NS` at once and then every `health_check` interval
//! until any reply arrives. Each failed check adds one to the upstream's
//! consecutive failures; the first good one resets them to 0 and ends the
//! loop. An upstream is *down* while its failures are at least `max_fails`
//! (`max_fails 0`: never down, never checked).
//!
//! Invariant: at most one check loop runs per upstream, and it ends when a
//! check succeeds or the configuration's token is cancelled.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The shortest interval between checks (guards against `health_check 0`).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Health of one upstream.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Consecutive failed checks.
    fails: AtomicU32,
    /// A check loop is running.
    checking: AtomicBool,
}

impl Health {
    /// Down: `max_fails` or more consecutive failed checks (never with 0).
    pub(crate) fn is_down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails.load(Ordering::Relaxed) >= max_fails
    }

    /// Consecutive failed checks so far.
    #[cfg(test)]
    pub(crate) fn fails(&self) -> u32 {
        self.fails.load(Ordering::Relaxed)
    }

    /// Claim the right to run the check loop; false if one already runs.
    pub(crate) fn begin_checking(&self) -> bool {
        self.checking
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Set the failure count (tests).
    #[cfg(test)]
    pub(crate) fn set_fails(&self, n: u32) {
        self.fails.store(n, Ordering::Relaxed);
    }

    /// Whether a check loop is running.
    #[cfg(test)]
    pub(crate) fn is_checking(&self) -> bool {
        self.checking.load(Ordering::Relaxed)
    }

    /// Run `check` now and then every `interval` until it returns true or
    /// `token` is cancelled; `on_fail` runs after each failed check. The caller
    /// must have won [`Health::begin_checking`].
    pub(crate) async fn run_checks<F, Fut>(
        &self,
        interval: Duration,
        token: &CancellationToken,
        mut check: F,
        mut on_fail: impl FnMut(),
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let interval = interval.max(MIN_INTERVAL);
        loop {
            let ok = tokio::select! {
                () = token.cancelled() => break,
                ok = check() => ok,
            };
            if ok {
                self.fails.store(0, Ordering::Relaxed);
                break;
            }
            self.fails.fetch_add(1, Ordering::Relaxed);
            on_fail();
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        self.checking.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A check whose results are scripted; records when it ran.
    fn scripted(
        results: &[bool],
    ) -> (
        impl FnMut() -> std::future::Ready<bool>,
        Arc<Mutex<Vec<Duration>>>,
    ) {
        let script = Arc::new(Mutex::new(results.iter().copied().collect::<VecDeque<_>>()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let t = times.clone();
        let f = move || {
            t.lock().unwrap().push(start.elapsed());
            std::future::ready(script.lock().unwrap().pop_front().unwrap_or(true))
        };
        (f, times)
    }

    #[tokio::test(start_paused = true)]
    async fn down_after_max_fails_consecutive_failures_and_up_at_the_first_good_check() {
        let h = Arc::new(Health::default());
        assert!(h.begin_checking());
        assert!(!h.begin_checking(), "one loop per upstream");
        let (check, times) = scripted(&[false, false, false, true]);
        let failures = Arc::new(AtomicU32::new(0));
        let (h2, f2) = (h.clone(), failures.clone());
        let token = CancellationToken::new();
        let task = tokio::spawn(async move {
            h2.run_checks(Duration::from_millis(500), &token, check, || {
                f2.fetch_add(1, Ordering::Relaxed);
            })
            .await;
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(h.fails(), 1, "first check at once");
        assert!(!h.is_down(2));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.fails(), 2);
        assert!(h.is_down(2), "down after max_fails failures");
        assert!(!h.is_down(0), "max_fails 0 is never down");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.fails(), 3);
        assert!(h.is_checking());
        task.await.unwrap();
        assert_eq!(h.fails(), 0, "a good check resets the failures");
        assert!(!h.is_down(2));
        assert!(!h.is_checking(), "the loop ended");
        assert_eq!(failures.load(Ordering::Relaxed), 3);
        let ms: Vec<u128> = times
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(ms, [0, 500, 1000, 1500], "checks every interval");
        assert!(
            h.begin_checking(),
            "a new loop may start after the next error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_the_token_ends_a_failing_check_loop() {
        let h = Arc::new(Health::default());
        assert!(h.begin_checking());
        let (check, times) = scripted(&[false; 100]);
        let token = CancellationToken::new();
        let (h2, t2) = (h.clone(), token.clone());
        let task = tokio::spawn(async move {
            h2.run_checks(Duration::from_secs(1), &t2, check, || {})
                .await;
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        token.cancel();
        task.await.unwrap();
        assert_eq!(times.lock().unwrap().len(), 3, "checks at 0s, 1s, 2s");
        assert_eq!(h.fails(), 3);
        assert!(h.is_down(3));
        assert!(!h.is_checking());
    }
}
