//! Per-thread buffers of the per-query metrics, flushed into the shared
//! `coredns_dns_*` families when they are scraped. Recording a query straight
//! into the shared vectors costs five label-set hashes and lookups, a read
//! lock and eight atomic updates on cache lines every worker thread writes;
//! here a thread finds its buffer for the query's labels with one hash of a
//! few integers and pointers (the server and zone label strings are shared
//! `Arc<str>`s, kept alive by the buffer, so their addresses identify them)
//! and counts into prometheus's unsynchronised `local` metrics. The
//! registry's collector flushes every thread's buffers before it reports
//! the families, so a scrape is exact.
//!
//! The first query of a label combination on a thread creates its buffer
//! (the only time labels are hashed as strings).

pub mod counter;
mod per_thread;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::local::{LocalHistogram, LocalIntCounter};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramVec, IntCounterVec};

use per_thread::PerThread;

/// The shared families the buffers flush into.
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

/// The labels of one query.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    /// `server`.
    pub server: &'a Arc<str>,
    /// `zone`.
    pub zone: &'a Arc<str>,
    /// `view` (empty outside `view` blocks).
    pub view: &'a Arc<str>,
    /// `proto`.
    pub proto: &'static str,
    /// `family`.
    pub family: &'static str,
    /// `type`.
    pub qtype: &'static str,
    /// `rcode`.
    pub rcode: &'static str,
    /// `plugin`.
    pub plugin: &'static str,
    /// DO bit set.
    pub dnssec_ok: bool,
}

/// What identifies a buffer: the label strings by address (the same
/// address is the same text; equal texts at different addresses only make
/// two buffers that flush into the same series).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key([usize; 8], bool);

impl Labels<'_> {
    fn key(&self) -> Key {
        let p = |s: &str| s.as_ptr() as usize;
        Key(
            [
                Arc::as_ptr(self.server).cast::<u8>() as usize,
                Arc::as_ptr(self.zone).cast::<u8>() as usize,
                Arc::as_ptr(self.view).cast::<u8>() as usize,
                p(self.proto),
                p(self.family),
                p(self.qtype),
                p(self.rcode),
                p(self.plugin),
            ],
            self.dnssec_ok,
        )
    }
}

/// One label combination's counts on one thread.
pub struct Buffer {
    /// Keeps the label strings (and so their addresses) alive.
    _labels: (Arc<str>, Arc<str>, Arc<str>),
    requests: LocalIntCounter,
    do_requests: Option<LocalIntCounter>,
    responses: LocalIntCounter,
    /// Request duration.
    pub duration: LocalHistogram,
    /// Request size.
    pub request_size: LocalHistogram,
    /// Response size.
    pub response_size: LocalHistogram,
}

impl Buffer {
    fn new(f: &Families, l: &Labels<'_>) -> Buffer {
        let (server, zone, view) = (&**l.server, &**l.zone, &**l.view);
        let szv = [server, zone, view];
        let szvp = [server, zone, view, l.proto];
        Buffer {
            _labels: (Arc::clone(l.server), Arc::clone(l.zone), Arc::clone(l.view)),
            requests: f
                .requests
                .with_label_values(&[server, zone, view, l.proto, l.family, l.qtype])
                .local(),
            do_requests: l
                .dnssec_ok
                .then(|| f.do_requests.with_label_values(&szv).local()),
            responses: f
                .responses
                .with_label_values(&[server, zone, view, l.rcode, l.plugin])
                .local(),
            duration: f.duration.with_label_values(&szv).local(),
            request_size: f.request_size.with_label_values(&szvp).local(),
            response_size: f.response_size.with_label_values(&szvp).local(),
        }
    }

    /// Count the query (its histograms are the caller's to observe).
    fn count(&mut self) {
        self.requests.inc();
        if let Some(d) = &mut self.do_requests {
            d.inc();
        }
        self.responses.inc();
    }

    fn flush(&self) {
        self.requests.flush();
        if let Some(d) = &self.do_requests {
            d.flush();
        }
        self.responses.flush();
        self.duration.flush();
        self.request_size.flush();
        self.response_size.flush();
    }
}

/// One thread's buffers.
#[derive(Default)]
struct Shard {
    buffers: HashMap<Key, Buffer, foldhash::fast::RandomState>,
}

fn lock(s: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The families and every thread's shard of them.
pub struct Sharded {
    families: Families,
    shards: PerThread<Mutex<Shard>>,
}

impl std::fmt::Debug for Sharded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharded")
            .field("id", &self.shards.id())
            .finish()
    }
}

impl Sharded {
    /// Shards of `families`.
    pub fn new(families: Families) -> Arc<Sharded> {
        Arc::new(Sharded {
            families,
            shards: PerThread::default(),
        })
    }

    /// Count one query with `labels` in this thread's buffer, and let `f`
    /// observe its histograms.
    pub fn record(&self, labels: &Labels<'_>, f: impl FnOnce(&Buffer)) {
        let key = labels.key();
        self.shards.with(|shard| {
            let mut shard = lock(shard);
            let buffer = shard
                .buffers
                .entry(key)
                .or_insert_with(|| Buffer::new(&self.families, labels));
            buffer.count();
            f(buffer);
        });
    }

    /// Move every buffer's counts into the shared families.
    pub fn flush(&self) {
        self.shards.each(|s| {
            for b in lock(s).buffers.values() {
                b.flush();
            }
        });
    }
}

/// The collector a registry holds: flushes the buffers, then reports the
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
mod tests;
