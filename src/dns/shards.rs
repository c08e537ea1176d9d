//! Per-thread buffers of the per-query metrics, summed into the shared
//! metric families when they are scraped. Recording a query into the shared
//! `coredns_dns_*` vectors writes atomics (and takes a read lock) that every
//! worker thread shares, so on many cores each query bounces the same cache
//! lines between them; here each thread counts into its own shard (the
//! prometheus crate's `local` metrics behind a lock only its thread and a
//! scrape take), and a scrape first flushes every shard, so what it reports
//! is exact.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::local::{LocalHistogramVec, LocalIntCounterVec};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramVec, IntCounterVec};

/// The shared families a shard counts into.
#[derive(Clone, Debug)]
pub struct Families {
    /// `coredns_dns_requests_total`.
    pub requests: IntCounterVec,
    /// `coredns_dns_do_requests_total`.
    pub do_requests: IntCounterVec,
    /// `coredns_dns_responses_total`.
    pub responses: IntCounterVec,
    /// `coredns_dns_request_duration_seconds`.
    pub duration: HistogramVec,
    /// `coredns_dns_request_size_bytes`.
    pub request_size: HistogramVec,
    /// `coredns_dns_response_size_bytes`.
    pub response_size: HistogramVec,
}

/// One thread's buffer.
pub struct Shard {
    /// See [`Families`].
    pub requests: LocalIntCounterVec,
    /// See [`Families`].
    pub do_requests: LocalIntCounterVec,
    /// See [`Families`].
    pub responses: LocalIntCounterVec,
    /// See [`Families`].
    pub duration: LocalHistogramVec,
    /// See [`Families`].
    pub request_size: LocalHistogramVec,
    /// See [`Families`].
    pub response_size: LocalHistogramVec,
}

impl Shard {
    fn new(f: &Families) -> Shard {
        Shard {
            requests: f.requests.local(),
            do_requests: f.do_requests.local(),
            responses: f.responses.local(),
            duration: f.duration.local(),
            request_size: f.request_size.local(),
            response_size: f.response_size.local(),
        }
    }

    fn flush(&self) {
        self.requests.flush();
        self.do_requests.flush();
        self.responses.flush();
        self.duration.flush();
        self.request_size.flush();
        self.response_size.flush();
    }
}

type Shared = Arc<Mutex<Shard>>;

fn lock(s: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard of each [`Sharded`] it has recorded into.
    static MINE: RefCell<Vec<(u64, Shared)>> = const { RefCell::new(Vec::new()) };
}

/// The families and every thread's shard of them.
#[derive(Debug)]
pub struct Sharded {
    id: u64,
    families: Families,
    shards: Mutex<Vec<Shared>>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shard")
    }
}

impl Sharded {
    /// Shards of `families`.
    pub fn new(families: Families) -> Arc<Sharded> {
        Arc::new(Sharded {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            families,
            shards: Mutex::new(Vec::new()),
        })
    }

    /// Record into this thread's shard.
    pub fn with<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        MINE.with(|mine| {
            let mut mine = mine.borrow_mut();
            let shard = match mine.iter().find(|(id, _)| *id == self.id) {
                Some((_, s)) => Arc::clone(s),
                None => {
                    let s = Arc::new(Mutex::new(Shard::new(&self.families)));
                    self.shards
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Arc::clone(&s));
                    // Forget the shards of metric sets that are gone.
                    mine.retain(|(_, s)| Arc::strong_count(s) > 1);
                    mine.push((self.id, Arc::clone(&s)));
                    s
                }
            };
            drop(mine);
            let mut guard = lock(&shard);
            f(&mut guard)
        })
    }

    /// Move every shard's counts into the shared families.
    pub fn flush(&self) {
        for s in self.shards.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            lock(s).flush();
        }
    }
}

/// The collector a registry holds: flushes the shards, then reports the
/// families.
pub struct Collect(pub Arc<Sharded>);

impl Collector for Collect {
    fn desc(&self) -> Vec<&Desc> {
        let f = &self.0.families;
        let mut d = Vec::new();
        d.extend(f.requests.desc());
        d.extend(f.do_requests.desc());
        d.extend(f.responses.desc());
        d.extend(f.duration.desc());
        d.extend(f.request_size.desc());
        d.extend(f.response_size.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.flush();
        let f = &self.0.families;
        let mut out = Vec::new();
        out.extend(f.requests.collect());
        out.extend(f.do_requests.collect());
        out.extend(f.responses.collect());
        out.extend(f.duration.collect());
        out.extend(f.request_size.collect());
        out.extend(f.response_size.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, Opts, Registry};

    fn families() -> Families {
        let c = |n: &str| IntCounterVec::new(Opts::new(n, n), &["l"]).expect("counter");
        let h = |n: &str| HistogramVec::new(HistogramOpts::new(n, n), &["l"]).expect("histogram");
        Families {
            requests: c("req"),
            do_requests: c("dor"),
            responses: c("resp"),
            duration: h("dur"),
            request_size: h("reqs"),
            response_size: h("resps"),
        }
    }

    fn value(r: &Registry, name: &str) -> (u64, u64) {
        let fam = r
            .gather()
            .into_iter()
            .find(|f| f.name() == name)
            .expect("family");
        let m = &fam.get_metric()[0];
        match fam.get_field_type() {
            prometheus::proto::MetricType::COUNTER => (m.get_counter().get_value() as u64, 0),
            _ => (0, m.get_histogram().get_sample_count()),
        }
    }

    /// Counts made on several threads all show in the next scrape, and are
    /// not counted twice by the one after.
    #[test]
    fn a_scrape_sums_every_threads_shard() {
        let sharded = Sharded::new(families());
        let r = Registry::new();
        r.register(Box::new(Collect(Arc::clone(&sharded))))
            .expect("register");
        std::thread::scope(|s| {
            for _ in 0..4 {
                let sharded = &sharded;
                s.spawn(move || {
                    for _ in 0..250 {
                        sharded.with(|sh| {
                            sh.requests.with_label_values(&["x"]).inc();
                            sh.duration.with_label_values(&["x"]).observe(0.001);
                        });
                    }
                });
            }
        });
        sharded.with(|sh| sh.requests.with_label_values(&["x"]).inc());
        assert_eq!(value(&r, "req"), (1001, 0));
        assert_eq!(value(&r, "dur"), (0, 1000));
        assert_eq!(value(&r, "req"), (1001, 0), "a second scrape adds nothing");
        assert_eq!(sharded.shards.lock().expect("lock").len(), 5);
    }
}
