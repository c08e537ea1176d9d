//! `cache`: a frontend cache for answers of the rest of the chain, on moka.
//!
//! # Description
//! As CoreDNS's *cache*: positive answers (NOERROR with data, delegations)
//! and denials (NXDOMAIN, NODATA with SOA) are kept in two separate caches
//! with their own capacity, keyed by (lower-case qname, qtype, qclass, DO).
//! An entry lives for the lowest TTL of its records (for a denial also the
//! SOA's MINIMUM), raised to MINTTL and capped at TTL. SERVFAIL answers go to
//! the denial cache for `servfail` (default 5s). Truncated answers and zone
//! transfers are never stored, nor REFUSED/FORMERR/NOTIMP. Served TTLs count
//! down as the entry ages (all records of an answer show the same TTL, as
//! CoreDNS); the first answer already shows the clamped TTL. Hits are
//! rewritten to the asking query's spelling of the name; the server adds the
//! query's ID and flags. With a capacity below 1024 CoreDNS still keeps 1024
//! entries (256 shards of at least 4), and capacities are rounded down to a
//! multiple of 256: we size moka the same way.
//!
//! # Syntax
//! ```text
//! cache [TTL] [ZONES...] {
//!     success CAPACITY [TTL] [MINTTL]
//!     denial CAPACITY [TTL] [MINTTL]
//!     prefetch AMOUNT [[DURATION] [PERCENTAGE%]]
//!     serve_stale [DURATION] [REFRESH_MODE]
//!     servfail DURATION
//!     disable success|denial [ZONES...]
//!     keepttl
//! }
//! ```
//! Defaults: TTL 3600 (success) / 1800 (denial), MINTTL 5, capacity 9984,
//! prefetch DURATION 1m and 10%, serve_stale 1h `immediate`, servfail 5s
//! (at most 5m). `prefetch`: an entry hit AMOUNT times with no gap of
//! DURATION between hits is refreshed in the background through the rest of
//! the chain once only PERCENTAGE of its TTL remains. `serve_stale`: for
//! DURATION after expiry the entry is still answered, with TTL 0;
//! `immediate` answers at once and refreshes in the background, `verify`
//! asks the rest of the chain first and answers stale only when that fails
//! (an error, or neither NOERROR nor NXDOMAIN). Background refreshes stop
//! when the configuration is replaced. Repeated `disable` lines add up.
//!
//! # Beyond CoreDNS: the cluster index is never hidden by the cache
//! Answers written by the `kubernetes` plugin (and by `autopath`, which
//! builds its answers from the same index) are **not cached at all**; they
//! pass through untouched, TTLs included. CoreDNS caches them (`cache 30`
//! in older kubeadm Corefiles), so a Service deleted or re-addressed keeps
//! being answered from the cache for up to 30 s — newer kubeadm adds
//! `disable success/denial cluster.local` for exactly this reason (RFC 1035
//! §6.1.2: an authoritative server answers from its zone, not a cache). We
//! make it the rule rather than a Corefile option because the index already
//! answers in O(1) from an immutable snapshot: a cache hit would save a hash
//! lookup and a few record copies, at the price of serving data the index
//! knows to be stale. The alternative, invalidating entries on every index
//! update, would couple the cache to the watch sources and still race with
//! in-flight refreshes. What stays cached is what is expensive: answers
//! from `forward` (including names that fall through the kubernetes zones)
//! and from other plugins. ExternalName answers are written by kubernetes
//! and so are not cached either, even though part of them came from
//! upstream.
//!
//! # Examples
//! ```text
//! .:53 {
//!     cache 30 {
//!         disable success cluster.local
//!         prefetch 10 1m 20%
//!         serve_stale 1h verify
//!     }
//!     forward . /etc/resolv.conf
//! }
//! ```
//!
//! # Metrics
//! `coredns_cache_entries{server,type,zones,view}`,
//! `coredns_cache_hits_total{server,type,zones,view}`,
//! `coredns_cache_misses_total`, `coredns_cache_requests_total`,
//! `coredns_cache_prefetch_total`, `coredns_cache_drops_total`,
//! `coredns_cache_served_stale_total` (all `{server,zones,view}`) and
//! `coredns_cache_evictions_total{server,type,zones,view}`; `view` is empty.
//! `drops` stays 0: CoreDNS counts answers whose question does not match the
//! query, and our answers carry no question of their own. Requests for
//! index-written names count as misses, as they do in CoreDNS with
//! `disable`.
//!
//! # Ready
//! Does not report readiness.

mod entry;
mod metrics;
mod parse;
#[cfg(test)]
mod tests;

pub use metrics::CacheMetrics;
pub use parse::{CacheConfig, Prefetch, ServeStale, StaleMode, Tier, parse};

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dns::{Answer, Query, Transport};
use crate::plugin::build::BuildCtx;
use crate::plugin::{MemoPass, Next, Plugin, Result};
use entry::{Class, Entry, Key, Kind, clamp, message_ttl};
use metrics::{Series, idx};

/// Writers whose answers come from the cluster index and are never cached.
pub const INDEX_WRITERS: &[&str] = &["kubernetes", "k8s_external", "autopath"];

/// The running plugin.
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    /// Zones cached, lower-case.
    zones: Vec<Name>,
    cfg: CacheConfig,
    /// Positive answers; moka is internally synchronised.
    success: Moka<Key, Arc<Entry>>,
    /// Denials and SERVFAIL.
    denial: Moka<Key, Arc<Entry>>,
    series: Series,
    /// Cancelled on reload or shutdown: ends background refreshes.
    token: CancellationToken,
}

/// moka's memory reclaim: an entry can go once it can no longer be served
/// (fresh TTL plus the serve_stale window), in real time.
struct Lifetime {
    stale: Duration,
}

impl moka::Expiry<Key, Arc<Entry>> for Lifetime {
    fn expire_after_create(
        &self,
        _: &Key,
        v: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(v.orig_ttl)) + self.stale)
    }

    fn expire_after_update(
        &self,
        _: &Key,
        v: &Arc<Entry>,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(v.orig_ttl)) + self.stale)
    }
}

/// CoreDNS's sharded capacity: 256 shards of `capacity / 256` entries, at least 4.
fn effective_capacity(capacity: u64) -> u64 {
    (capacity / 256).max(4) * 256
}

impl Cache {
    /// Build the plugin; zones default to the server block's.
    pub fn new(cfg: &CacheConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let metrics = ctx.families.get::<CacheMetrics>()?;
        let zones = if cfg.zones.is_empty() {
            ctx.zones.to_vec()
        } else {
            cfg.zones.clone()
        };
        let label = zones
            .iter()
            .map(Name::to_ascii)
            .collect::<Vec<_>>()
            .join(",");
        let series = Series::new(&metrics, ctx.server, &label);
        let stale = cfg.serve_stale.map_or(Duration::ZERO, |s| s.duration);
        let build = |tier: &Tier, kind: Kind| {
            let evictions = series.evictions[idx(kind)].clone();
            Moka::builder()
                .max_capacity(effective_capacity(tier.capacity))
                .expire_after(Lifetime { stale })
                .eviction_listener(move |_, _, cause| {
                    if cause == RemovalCause::Size {
                        evictions.inc();
                    }
                })
                .build()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                success: build(&cfg.success, Kind::Success),
                denial: build(&cfg.denial, Kind::Denial),
                zones,
                cfg: cfg.clone(),
                series,
                token: ctx.token.clone(),
            }),
        })
    }

    /// Refresh `entry` in the background through `next` (prefetch and stale
    /// refresh); at most one refresh per entry at a time.
    fn refresh(&self, q: &Query, key: Key, entry: &Arc<Entry>, next: Next<'_>) {
        if !entry.start_refresh() {
            return;
        }
        self.inner.series.prefetch.inc();
        // The task outlives this request, so it owns its copy of the rest of
        // the chain (a few Arc clones). `Next::rest` is visible to submodules
        // of `plugin`.
        let rest: Arc<[Arc<dyn Plugin>]> = next.rest.into();
        let inner = self.inner.clone();
        let old = entry.clone();
        let mut q = q.clone();
        // As CoreDNS: a refresh is not limited by the asking client's UDP size.
        q.transport = Transport::Tcp;
        tokio::spawn(async move {
            let next = Next { rest: &rest };
            tokio::select! {
                () = inner.token.cancelled() => {}
                res = next.serve(&q) => {
                    if let Ok(answer) = res {
                        inner.store(&q, key, answer, Some(&old));
                    }
                }
            }
            old.end_refresh();
        });
    }

    #[cfg(test)]
    fn sync(&self) {
        self.inner.success.run_pending_tasks();
        self.inner.denial.run_pending_tasks();
        self.inner.update_gauges();
    }
}

impl Inner {
    fn cache(&self, kind: Kind) -> &Moka<Key, Arc<Entry>> {
        match kind {
            Kind::Success => &self.success,
            Kind::Denial => &self.denial,
        }
    }

    /// The entry for `key` if it is fresh or within the serve_stale window
    /// (denial first, as CoreDNS).
    fn lookup(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let stale = self.cfg.serve_stale.map_or(0, |s| {
            i64::try_from(s.duration.as_secs()).unwrap_or(i64::MAX)
        });
        [Kind::Denial, Kind::Success].into_iter().find_map(|kind| {
            let e = self.cache(kind).get(key)?;
            let ttl = e.ttl(now);
            (ttl > 0 || -ttl < stale).then_some(e)
        })
    }

    fn should_prefetch(&self, e: &Entry, ttl: i64, now: Instant) -> bool {
        let Some(p) = self.cfg.prefetch else {
            return false;
        };
        let hits = e.hit(p.duration, now);
        let threshold = (u64::from(p.percentage) * u64::from(e.orig_ttl)).div_ceil(100);
        hits >= p.amount && u64::try_from(ttl).is_ok_and(|t| t <= threshold)
    }

    fn disabled(&self, kind: Kind, name: &Name) -> bool {
        let zones = match kind {
            Kind::Success => &self.cfg.disable_success,
            Kind::Denial => &self.cfg.disable_denial,
        };
        zones.iter().any(|z| z.zone_of(name))
    }

    /// Store `answer` if it may be cached, and return it as the client gets
    /// it: every TTL set to the clamped duration (CoreDNS, to avoid a TTL
    /// jumping from 1799 to 8 between two answers). Index answers pass untouched.
    fn store(&self, q: &Query, key: Key, mut answer: Answer, inherit: Option<&Entry>) -> Answer {
        if INDEX_WRITERS.contains(&answer.writer) {
            return answer;
        }
        let Some(class) = Class::of(&answer) else {
            return answer;
        };
        let kind = class.kind();
        let duration = match class {
            Class::NoError | Class::Delegation => clamp(
                message_ttl(&answer, class),
                self.cfg.success.min_ttl,
                self.cfg.success.max_ttl,
            ),
            Class::NoData | Class::NameError => clamp(
                message_ttl(&answer, class),
                self.cfg.denial.min_ttl,
                self.cfg.denial.max_ttl,
            ),
            Class::ServerError => self.cfg.servfail,
        };
        let secs = u32::try_from(duration.as_secs()).unwrap_or(u32::MAX);
        for r in answer
            .answers
            .iter_mut()
            .chain(&mut answer.authority)
            .chain(&mut answer.additionals)
        {
            r.ttl = secs;
        }
        let meta = matches!(q.qtype, RecordType::AXFR | RecordType::IXFR);
        if answer.truncated || meta || secs == 0 || self.disabled(kind, &q.lower) {
            return answer;
        }
        let now = Instant::now();
        let entry = Arc::new(Entry::new(answer.clone(), kind, duration, now));
        if let Some(old) = inherit {
            entry.inherit(old, now);
        }
        let other = match kind {
            Kind::Success => Kind::Denial,
            Kind::Denial => Kind::Success,
        };
        // One answer per key: a refreshed positive answer must not be
        // shadowed by an older denial (looked up first), nor the reverse.
        self.cache(other).invalidate(&key);
        self.cache(kind).insert(key, entry);
        self.update_gauges();
        answer
    }

    fn update_gauges(&self) {
        for kind in [Kind::Success, Kind::Denial] {
            let n = i64::try_from(self.cache(kind).entry_count()).unwrap_or(i64::MAX);
            self.series.entries[idx(kind)].set(n);
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    /// Index answers pass through uncached (see above), counted as a request
    /// and a miss when the name is in the cache's zones.
    fn memo_pass(&self, q: &Query, answer: &Answer) -> MemoPass {
        if !INDEX_WRITERS.contains(&answer.writer) {
            MemoPass::Block
        } else if self.inner.zones.iter().any(|z| z.zone_of(&q.lower)) {
            MemoPass::Replay
        } else {
            MemoPass::Quiet
        }
    }

    fn memo_replay(&self) {
        self.inner.series.requests.inc();
        self.inner.series.misses.inc();
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let inner = &self.inner;
        if !inner.zones.iter().any(|z| z.zone_of(&q.lower)) {
            return next.serve(q).await;
        }
        let key = Key::of(q);
        let now = Instant::now();
        inner.series.requests.inc();
        let Some(entry) = inner.lookup(&key, now) else {
            inner.series.misses.inc();
            let answer = next.serve(q).await?;
            return Ok(inner.store(q, key, answer, None));
        };
        inner.series.hits[idx(entry.kind)].inc();
        let ttl = entry.ttl(now);
        if ttl <= 0 {
            if inner
                .cfg
                .serve_stale
                .is_some_and(|s| s.mode == StaleMode::Verify)
            {
                if let Ok(answer) = next.serve(q).await
                    && matches!(answer.rcode, ResponseCode::NoError | ResponseCode::NXDomain)
                {
                    return Ok(inner.store(q, key, answer, Some(&entry)));
                }
            } else {
                self.refresh(q, key, &entry, next);
            }
            inner.series.served_stale.inc();
            return Ok(entry.render(q, 0));
        }
        if inner.should_prefetch(&entry, ttl, now) {
            self.refresh(q, key, &entry, next);
        }
        let shown = if inner.cfg.keepttl {
            entry.orig_ttl
        } else {
            u32::try_from(ttl).unwrap_or(u32::MAX)
        };
        Ok(entry.render(q, shown))
    }
}

crate::plugin::build::build_plugin!(CacheConfig, |config, ctx| Cache::new(config, ctx)?);
