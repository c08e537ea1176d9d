//! Upstream selection order (`policy random|round_robin|sequential`) and the
//! process's cheap randomness.
//!
//! Invariant: [`Policy::order`] returns every index `0..n` exactly once, so a
//! query can fail over through all upstreams whatever the policy.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How upstreams are ordered for a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// A random order per query (CoreDNS's default).
    #[default]
    Random,
    /// Start one further along the list each query.
    RoundRobin,
    /// Always in the written order.
    Sequential,
}

impl Policy {
    /// The order in which to try `n` upstreams; `turn` is the round-robin counter.
    pub fn order(self, n: usize, turn: &AtomicUsize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        match self {
            Policy::Sequential => {}
            Policy::RoundRobin => {
                if n > 0 {
                    let start = turn.fetch_add(1, Ordering::Relaxed) % n;
                    order.rotate_left(start);
                }
            }
            Policy::Random => shuffle(&mut order),
        }
        order
    }
}

/// Fisher–Yates with [`random_u64`].
pub(crate) fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = random_below(i + 1);
        items.swap(i, j);
    }
}

/// A random number in `0..n` (0 when `n` is 0).
pub(crate) fn random_below(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // The modulo bias over 2^64 is negligible for n ≤ 15 upstreams.
    (random_u64() % n as u64) as usize
}

/// 64 unpredictable bits: SipHash keyed by the std library's per-process random
/// keys, over a counter. Good enough for message ids, probe names and policy;
/// not for cryptography.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_usize(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keeps_the_written_order() {
        let turn = AtomicUsize::new(0);
        for _ in 0..3 {
            assert_eq!(Policy::Sequential.order(3, &turn), vec![0, 1, 2]);
        }
    }

    #[test]
    fn round_robin_starts_one_further_each_query() {
        let turn = AtomicUsize::new(0);
        let got: Vec<Vec<usize>> = (0..4).map(|_| Policy::RoundRobin.order(3, &turn)).collect();
        assert_eq!(
            got,
            vec![vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
        );
        assert!(Policy::RoundRobin.order(0, &turn).is_empty());
    }

    #[test]
    fn random_is_a_permutation_that_puts_every_upstream_first_sometimes() {
        let turn = AtomicUsize::new(0);
        let mut first = [0u32; 4];
        for _ in 0..400 {
            let mut o = Policy::Random.order(4, &turn);
            first[o[0]] += 1;
            o.sort_unstable();
            assert_eq!(o, vec![0, 1, 2, 3]);
        }
        assert!(first.iter().all(|&c| c > 30), "{first:?}");
    }

    #[test]
    fn random_numbers_differ_and_stay_in_range() {
        let a: Vec<u64> = (0..100).map(|_| random_u64()).collect();
        let mut dedup = a.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), 100);
        assert!((0..1000).all(|_| random_below(7) < 7));
        assert_eq!(random_below(0), 0);
    }
}
