//! What the cache stores: an answer, when it was stored and for how long,
//! and how often it was asked for (for `prefetch`).
//!
//! Invariant: time is read from `tokio::time` only, so a paused test clock
//! drives expiry, prefetch and serve_stale exactly; moka's own (real-time)
//! expiry only reclaims memory after an entry can no longer be served.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::time::Instant;

use crate::dns::{Answer, Query};

/// Lower bound CoreDNS uses when a message carries no TTL at all.
const MINIMAL_DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Upper bound of a message's own TTL before capping.
const MAXIMUM_DEFAULT_TTL: u32 = 3600;

/// The cache key: CoreDNS's (qname, qtype, DO), plus the class.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    /// The query name, lower-case.
    pub(super) name: Name,
    pub(super) qtype: RecordType,
    pub(super) qclass: DNSClass,
    /// The DNSSEC OK bit of the query.
    pub(super) dnssec_ok: bool,
}

impl Key {
    pub(super) fn of(q: &Query) -> Self {
        Self {
            name: q.lower.clone(),
            qtype: q.qtype,
            qclass: q.qclass,
            dnssec_ok: q.dnssec_ok,
        }
    }
}

/// Which of the two caches (and the `type` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Positive answers.
    Success,
    /// Denial of existence and SERVFAIL.
    Denial,
}

impl Kind {
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Denial => "denial",
        }
    }
}

/// The response types that can be cached (CoreDNS's `response.Typify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// NOERROR with records (or nothing to say otherwise).
    NoError,
    /// NOERROR, no answer, NS in authority.
    Delegation,
    /// NOERROR, no answer, SOA in authority.
    NoData,
    /// NXDOMAIN.
    NameError,
    /// SERVFAIL.
    ServerError,
}

impl Class {
    /// The type of a response; `None` for those never cached (REFUSED, FORMERR, ...).
    pub(super) fn of(a: &Answer) -> Option<Self> {
        let has = |t: RecordType| a.authority.iter().any(|r| r.record_type() == t);
        match a.rcode {
            ResponseCode::NoError if !a.answers.is_empty() => Some(Class::NoError),
            ResponseCode::NoError if has(RecordType::SOA) => Some(Class::NoData),
            ResponseCode::NoError if has(RecordType::NS) => Some(Class::Delegation),
            ResponseCode::NoError => Some(Class::NoError),
            ResponseCode::NXDomain => Some(Class::NameError),
            ResponseCode::ServFail => Some(Class::ServerError),
            _ => None,
        }
    }

    pub(super) fn kind(self) -> Kind {
        match self {
            Class::NoError | Class::Delegation => Kind::Success,
            Class::NoData | Class::NameError | Class::ServerError => Kind::Denial,
        }
    }
}

/// The lowest TTL in the message (CoreDNS's `MinimalTTL`); for a denial also
/// the SOA's MINIMUM field (RFC 2308 §5: the negative TTL is the lesser of
/// the SOA's TTL and MINIMUM).
pub(super) fn message_ttl(a: &Answer, class: Class) -> Duration {
    let all = || a.answers.iter().chain(&a.authority).chain(&a.additionals);
    if all().next().is_none() {
        return MINIMAL_DEFAULT_TTL;
    }
    let mut min = all().map(|r| r.ttl).fold(MAXIMUM_DEFAULT_TTL, u32::min);
    if matches!(class, Class::NoData | Class::NameError) {
        for r in &a.authority {
            if let RData::SOA(soa) = &r.data {
                min = min.min(soa.minimum);
            }
        }
    }
    Duration::from_secs(u64::from(min))
}

/// `ttl` raised to `min`, then capped at `max` (the cap wins).
pub(super) fn clamp(ttl: Duration, min: Duration, max: Duration) -> Duration {
    ttl.max(min).min(max)
}

/// CoreDNS's `freq.Freq`: hits counted while no gap reaches the window.
#[derive(Debug, Default)]
struct Freq {
    last: Option<Instant>,
    hits: u32,
}

/// One cached answer.
#[derive(Debug)]
pub(super) struct Entry {
    /// The answer as the rest of the chain wrote it.
    answer: Answer,
    /// Which cache holds it.
    pub(super) kind: Kind,
    /// Seconds it is fresh for (after clamping).
    pub(super) orig_ttl: u32,
    /// When it was stored.
    stored: Instant,
    /// Hit history for `prefetch`; locked only for a counter update.
    freq: Mutex<Freq>,
    /// Set while a background refresh of this entry runs (one at a time).
    refreshing: AtomicBool,
}

impl Entry {
    pub(super) fn new(answer: Answer, kind: Kind, ttl: Duration, now: Instant) -> Self {
        Self {
            answer,
            kind,
            orig_ttl: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            stored: now,
            freq: Mutex::default(),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Remaining seconds; zero or negative once expired (CoreDNS's `item.ttl`).
    pub(super) fn ttl(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.stored).as_secs();
        i64::from(self.orig_ttl) - i64::try_from(elapsed).unwrap_or(i64::MAX)
    }

    /// Count a hit; the number of hits with no gap of `window` or more.
    pub(super) fn hit(&self, window: Duration, now: Instant) -> u32 {
        let mut f = self.freq.lock().unwrap_or_else(|p| p.into_inner());
        let recent = f
            .last
            .is_some_and(|last| now.saturating_duration_since(last) <= window);
        f.hits = if recent { f.hits.saturating_add(1) } else { 1 };
        f.last = Some(now);
        f.hits
    }

    /// Carry the hit history of a refreshed entry over to its replacement.
    pub(super) fn inherit(&self, from: &Entry, now: Instant) {
        let hits = from.freq.lock().unwrap_or_else(|p| p.into_inner()).hits;
        let mut f = self.freq.lock().unwrap_or_else(|p| p.into_inner());
        f.last = Some(now);
        f.hits = hits;
    }

    /// Claim the right to refresh this entry; false if a refresh already runs.
    pub(super) fn start_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Release the claim (the refresh failed; a later hit may try again).
    pub(super) fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// The stored answer tailored to `q`, every TTL set to `ttl`.
    pub(super) fn render(&self, q: &Query, ttl: u32) -> Answer {
        let mut a = self.answer.clone();
        a.writer = "cache";
        for r in a
            .answers
            .iter_mut()
            .chain(&mut a.authority)
            .chain(&mut a.additionals)
        {
            tailor(r, q, ttl);
        }
        a
    }
}

/// Set `ttl` and give records owned by the query name the query's spelling
/// (0x20 case randomisation, and a first asker's case never leaks to others).
pub(super) fn tailor(r: &mut Record, q: &Query, ttl: u32) {
    r.ttl = ttl;
    // Name equality is case-insensitive.
    if r.name == q.name {
        r.name = q.name.clone();
    }
}
