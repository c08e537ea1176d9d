//! Plain counters counted per thread and summed on scrape, for per-query
//! counters outside the `coredns_dns_*` families (the cache's requests,
//! misses and hits, counted for every query in its zones).
//!
//! A prometheus `IntCounter` is one atomic that every worker thread writes:
//! on many cores each increment moves its cache line between cores. Here
//! each thread adds to its own cache-line-sized slot (an uncontended atomic
//! add), and the family's collector, registered in place of the family,
//! moves every slot's count into the shared counter before it reports: a
//! scrape is exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec};

use super::per_thread::PerThread;

/// One thread's count, alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

struct Inner {
    total: IntCounter,
    slots: PerThread<Slot>,
}

impl Inner {
    fn flush(&self) {
        self.slots.each(|slot| {
            let n = slot.0.swap(0, Ordering::Relaxed);
            if n > 0 {
                self.total.inc_by(n);
            }
        });
    }
}

impl Drop for Inner {
    /// A series dropped between scrapes (its cache rebuilt by a reload)
    /// keeps what it counted.
    fn drop(&mut self) {
        self.flush();
    }
}

/// One series of a [`FlushingVec`], counted per thread.
#[derive(Clone)]
pub struct ThreadCounter(Arc<Inner>);

impl std::fmt::Debug for ThreadCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ThreadCounter")
            .field(&self.0.slots.id())
            .finish()
    }
}

impl ThreadCounter {
    /// Add one, in this thread's slot.
    pub fn inc(&self) {
        self.0
            .slots
            .with(|slot| slot.0.fetch_add(1, Ordering::Relaxed));
    }

    /// The count so far (flushes this series first).
    pub fn get(&self) -> u64 {
        self.0.flush();
        self.0.total.get()
    }
}

/// An `IntCounterVec` whose series are [`ThreadCounter`]s; register it (a
/// clone) instead of the vector, so a scrape flushes them first.
#[derive(Clone)]
pub struct FlushingVec {
    vec: IntCounterVec,
    series: Arc<Mutex<Vec<Weak<Inner>>>>,
}

impl std::fmt::Debug for FlushingVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushingVec").finish_non_exhaustive()
    }
}

impl FlushingVec {
    /// Wrap `vec` (not registered itself).
    pub fn new(vec: IntCounterVec) -> Self {
        Self {
            vec,
            series: Arc::default(),
        }
    }

    /// The series with these label values.
    pub fn with_label_values(&self, values: &[&str]) -> ThreadCounter {
        let inner = Arc::new(Inner {
            total: self.vec.with_label_values(values),
            slots: PerThread::default(),
        });
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.retain(|s| s.strong_count() > 0);
        series.push(Arc::downgrade(&inner));
        ThreadCounter(inner)
    }

    fn flush(&self) {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for s in series.iter().filter_map(Weak::upgrade) {
            s.flush();
        }
    }
}

impl Collector for FlushingVec {
    fn desc(&self) -> Vec<&Desc> {
        self.vec.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.flush();
        self.vec.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Opts, Registry};

    fn family(r: &Registry) -> FlushingVec {
        let vec = IntCounterVec::new(Opts::new("t_total", "test"), &["k"]).expect("vec");
        let f = FlushingVec::new(vec);
        r.register(Box::new(f.clone())).expect("register");
        f
    }

    fn scraped(r: &Registry) -> String {
        crate::metrics::encode(r)
    }

    #[test]
    fn counts_from_every_thread_are_in_the_scrape() {
        let r = Registry::new();
        let f = family(&r);
        let a = f.with_label_values(&["a"]);
        let b = f.with_label_values(&["b"]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        a.inc();
                    }
                    b.inc();
                });
            }
        });
        a.inc();
        let text = scraped(&r);
        assert!(text.contains("t_total{k=\"a\"} 4001"), "{text}");
        assert!(text.contains("t_total{k=\"b\"} 4"), "{text}");
        // A second scrape does not count twice.
        b.inc();
        let text = scraped(&r);
        assert!(text.contains("t_total{k=\"a\"} 4001"), "{text}");
        assert!(text.contains("t_total{k=\"b\"} 5"), "{text}");
        assert_eq!(a.get(), 4001);
    }

    #[test]
    fn a_series_dropped_between_scrapes_keeps_its_count() {
        let r = Registry::new();
        let f = family(&r);
        let a = f.with_label_values(&["a"]);
        a.inc();
        assert!(scraped(&r).contains("t_total{k=\"a\"} 1"));
        a.inc();
        a.inc();
        drop(a);
        let _c = f.with_label_values(&["c"]);
        assert_eq!(f.series.lock().expect("lock").len(), 1, "only c is tracked");
        let text = scraped(&r);
        assert!(text.contains("t_total{k=\"a\"} 3"), "{text}");
    }
}
