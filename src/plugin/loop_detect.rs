//! `loop`: detect forwarding loops at start, and degrade instead of exiting.
//!
//! # Description
//! When its server block starts, `loop` sends one probe per `forward`
//! upstream, `<random>.<random>.<zone> IN HINFO` (zone: the block's first),
//! to the block's own listener, and counts how often each probe comes back
//! through the chain. `forward` sends a probe only to the upstream it is for.
//! A probe seen more than twice means that upstream leads back to us.
//! Probes are retried every 0.5 s for up to 30 s until one gets any reply.
//!
//! CoreDNS halts the process then, and the pod crash-loops (typically
//! `forward . /etc/resolv.conf` with systemd-resolved's `127.0.0.53`). We
//! instead take the looping upstream out of the block's forward set, keep
//! answering cluster names, answer SERVFAIL for names only looping upstreams
//! could resolve (no other upstream left), log it once at error level with the
//! fix, count it, and report not ready.
//!
//! Invariant: an upstream is marked looping at most once, and never unmarked
//! while the configuration runs (a reload probes afresh).
//!
//! # Syntax
//! ```text
//! loop
//! ```
//!
//! # Metrics
//! - `clusterdns_loop_detected_total{server,upstream}`: loops found.
//!
//! # Ready
//! Not ready (`/ready` lists `loop`) while any upstream of the block loops.
//! With `ready`'s default `monitor until-ready`, readiness that was reported
//! once stays; `monitor continuously` shows a loop found later.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::build::{BuildCtx, Family};
use crate::plugin::forward::{random_u64, send_probe};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// How long probes are retried after start (CoreDNS: 30 s).
const PROBE_WINDOW: Duration = Duration::from_secs(30);
/// Pause between tries of one probe.
const PROBE_RETRY: Duration = Duration::from_millis(500);
/// How long one probe waits: longer than forward's 2 s read timeout, so a
/// dead upstream's SERVFAIL still counts as a reply.
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);
/// More sightings than this mean a loop (CoreDNS: "more than twice").
const MAX_SEEN: u32 = 2;

/// Parse `loop` (no arguments, no block).
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<(), CorefileError> {
    d.expect_end()?;
    d.expect_no_block()
}

/// The loop metrics.
#[derive(Clone, Debug)]
pub struct LoopMetrics {
    /// `clusterdns_loop_detected_total{server,upstream}`.
    pub detected: IntCounterVec,
}

impl Family for LoopMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let detected = IntCounterVec::new(
            Opts::new(
                "clusterdns_loop_detected_total",
                "Forwarding loops detected at start; the looping upstream was taken out of forward.",
            ),
            &["server", "upstream"],
        )?;
        r.register(Box::new(detected.clone()))?;
        Ok(Self { detected })
    }
}

/// One forward upstream as the loop check sees it.
#[derive(Debug)]
pub struct Target {
    /// The upstream.
    pub addr: SocketAddr,
    /// Its probe name, lower-case.
    pub probe: Name,
    seen: AtomicU32,
    looping: AtomicBool,
}

/// What `loop` and `forward` of one server block share (via
/// [`BlockShared`](crate::plugin::build::BlockShared)): forward's upstreams
/// with their probe names, and which of them loop.
#[derive(Debug, Default)]
pub struct LoopGuard {
    /// A `loop` plugin runs in the block (forward looks for probes only then).
    enabled: AtomicBool,
    targets: OnceLock<Box<[Target]>>,
    any_looping: AtomicBool,
}

impl LoopGuard {
    /// Register forward's upstreams (in forward's order) and make a probe name
    /// under `zone` for each. Only the first call counts.
    pub fn set_upstreams(&self, zone: &Name, addrs: &[SocketAddr]) {
        let targets = addrs
            .iter()
            .map(|&addr| Target {
                addr,
                probe: probe_name(zone),
                seen: AtomicU32::new(0),
                looping: AtomicBool::new(false),
            })
            .collect();
        let _ = self.targets.set(targets);
    }

    /// Forward's upstreams, once registered.
    pub fn targets(&self) -> &[Target] {
        self.targets.get().map_or(&[], |t| t)
    }

    /// Which upstream a query is the probe for (only with a `loop` plugin).
    pub fn probe_index(&self, q: &Query) -> Option<usize> {
        if q.qtype != RecordType::HINFO || !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        self.targets().iter().position(|t| t.probe == q.lower)
    }

    /// Whether upstream `i` was found looping.
    pub fn is_looping(&self, i: usize) -> bool {
        self.any_looping.load(Ordering::Relaxed)
            && self
                .targets()
                .get(i)
                .is_some_and(|t| t.looping.load(Ordering::Relaxed))
    }

    /// Whether any upstream loops.
    pub fn any_looping(&self) -> bool {
        self.any_looping.load(Ordering::Relaxed)
    }

    /// Count a sighting of probe `i`; true exactly once, when it becomes a loop.
    fn saw(&self, i: usize) -> bool {
        let Some(t) = self.targets().get(i) else {
            return false;
        };
        let seen = t.seen.fetch_add(1, Ordering::AcqRel) + 1;
        if seen <= MAX_SEEN || t.looping.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.any_looping.store(true, Ordering::Release);
        true
    }
}

/// `<random>.<random>.<zone>`.
fn probe_name(zone: &Name) -> Name {
    let (a, b) = (random_u64().to_string(), random_u64().to_string());
    Name::from_labels([a.as_bytes(), b.as_bytes()])
        .and_then(|n| n.append_domain(zone))
        .unwrap_or_else(|_| {
            // A zone too long for two more labels: probe at the root instead.
            Name::from_labels([a.as_bytes(), b.as_bytes()]).unwrap_or_else(|_| Name::root())
        })
        .to_lowercase()
}

/// The running plugin.
pub struct Loop {
    guard: Arc<LoopGuard>,
    server: String,
    metrics: LoopMetrics,
}

impl Loop {
    /// Build the plugin and start probing through the block's first listen
    /// address (loopback for a wildcard).
    pub fn build(ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let guard = ctx.shared.get::<LoopGuard>();
        guard.enabled.store(true, Ordering::Relaxed);
        let metrics = ctx.families.get::<LoopMetrics>()?;
        match (ctx.listen.first(), tokio::runtime::Handle::try_current()) {
            (Some(&addr), Ok(rt)) if addr.port() != 0 => {
                let target = SocketAddr::new(loopback_for(addr.ip()), addr.port());
                rt.spawn(probe_all(guard.clone(), target, ctx.token.child_token()));
            }
            _ => tracing::debug!(server = ctx.server, "loop: no address to probe"),
        }
        Ok(Self {
            guard,
            server: ctx.server.to_string(),
            metrics,
        })
    }

    /// A plugin over `guard` that sends no probes (tests).
    pub fn with_guard(guard: Arc<LoopGuard>, server: &str, metrics: LoopMetrics) -> Self {
        guard.enabled.store(true, Ordering::Relaxed);
        Self {
            guard,
            server: server.to_string(),
            metrics,
        }
    }
}

fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Send every upstream's probe until it gets a reply or the window closes.
async fn probe_all(guard: Arc<LoopGuard>, to: SocketAddr, token: CancellationToken) {
    let start = Instant::now();
    // forward registers its upstreams while the chain is built, just after us.
    while guard.targets.get().is_none() {
        if start.elapsed() > Duration::from_secs(2) {
            tracing::debug!("loop: no forward upstreams to probe");
            return;
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let probes = guard.targets().iter().map(|t| async {
        while start.elapsed() < PROBE_WINDOW {
            let sent = tokio::select! {
                () = token.cancelled() => return,
                ok = send_probe(to, &t.probe, PROBE_TIMEOUT) => ok,
            };
            if sent {
                return;
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(PROBE_RETRY) => {}
            }
        }
    });
    futures::future::join_all(probes).await;
}

#[async_trait::async_trait]
impl Plugin for Loop {
    fn name(&self) -> &'static str {
        "loop"
    }

    /// Only HINFO queries can be its probes.
    fn memo_pass(&self, q: &Query, _answer: &Answer) -> MemoPass {
        if q.qtype == RecordType::HINFO {
            MemoPass::Block
        } else {
            MemoPass::Quiet
        }
    }

    fn ready(&self) -> Option<bool> {
        Some(!self.guard.any_looping())
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        if let Some(i) = self.guard.probe_index(q)
            && self.guard.saw(i)
            && let Some(t) = self.guard.targets().get(i)
        {
            let upstream = t.addr.to_string();
            tracing::error!(
                server = %self.server,
                upstream = %upstream,
                probe = %q.name,
                "loop: forwarding loop detected: HINFO {} came back more than twice through \
                 upstream {upstream}; {upstream} is taken out of forward (names only it could \
                 resolve get SERVFAIL). Fix: point forward at a real resolver, not 127.0.0.53 \
                 (systemd-resolved) or this server itself, e.g. kubelet's --resolv-conf \
                 /run/systemd/resolve/resolv.conf",
                q.name
            );
            self.metrics
                .detected
                .with_label_values(&[self.server.as_str(), upstream.as_str()])
                .inc();
        }
        next.serve(q).await
    }
}

#[cfg(test)]
mod tests;

/// The parsed `loop` directive (it takes no arguments).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopConfig;

crate::plugin::build::build_plugin!(LoopConfig, |_config, ctx| Loop::build(ctx)?);
