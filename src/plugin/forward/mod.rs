//! `forward`: proxy queries to upstream resolvers, with in-band health checks.
//!
//! # Description
//! Queries for names under FROM (and not under an `except` name) are sent to
//! the upstreams; everything else goes to the next plugin. Names the
//! `kubernetes` plugin owns never get here unless it falls through: it runs
//! earlier in the chain (CoreDNS's plugin order).
//!
//! The transport follows the client (UDP or TCP); `force_tcp` always uses TCP,
//! `prefer_udp` always starts with UDP. A truncated UDP reply is asked again
//! over TCP from the same upstream. The client's EDNS payload size, DO bit
//! and EDNS0 options (as `rewrite edns0` left them, without the hop-by-hop
//! COOKIE, TCP-KEEPALIVE and PADDING) are passed on; options added to a query
//! without OPT get one (4096 bytes, DO clear, as CoreDNS). The upstream's
//! options are not passed back. The answer copies the upstream's rcode, sections and the
//! AA, TC and RA flags; owner names equal to the query name are written in the
//! query's case.
//!
//! Each exchange waits at most 2 s for a reply, a query at most 5 s in all
//! (CoreDNS's read timeout and deadline). On a network error (timeout,
//! refused) the next upstream in `policy` order is tried and a health check
//! loop starts for the failed one (see `health.rs`); an upstream with
//! `max_fails` consecutive failed checks is skipped while others are healthy.
//! When all are down a random one is tried, or, with
//! `failfast_all_unhealthy_upstreams`, the query fails at once (SERVFAIL).
//! Upstreams the `loop` plugin found looping are removed for good; with none
//! left the answer is SERVFAIL.
//!
//! Connection reuse: none for plain upstreams, see `exchange.rs`. A
//! `tls://` upstream (DNS over TLS, port 853 by default) is always asked
//! over TLS, whatever the client used, on one persistent pipelined
//! connection (`dot.rs`) that closes after `expire` idle. Its certificate
//! is verified against `tls`'s CA (the system's roots without one) for the
//! name `tls_servername`, or for the upstream's IP address when that is not
//! given. `tls`, `tls_servername` and `expire` in a forward without a
//! `tls://` upstream are refused at start (they would do nothing).
//!
//! # Syntax
//! ```text
//! forward FROM TO... {
//!     except IGNORED_NAMES...
//!     force_tcp
//!     prefer_udp
//!     max_fails INTEGER                    # default 2; 0: never down, no checks
//!     policy random|round_robin|sequential # default random
//!     health_check DURATION [no_rec] [domain FQDN]   # default 0.5s, `. IN NS`, RD
//!     max_concurrent MAX                   # default 0: unlimited
//!     next RCODE...                        # hand these answers to the next plugin
//!     failover RCODE...                    # try another upstream on these answers
//!     max_connect_attempts N               # default 0: each upstream once per query
//!     failfast_all_unhealthy_upstreams
//!     tls [CERT KEY] [CA]                  # tls:// upstreams: client cert, CA
//!     tls_servername NAME                  # tls:// upstreams: name to verify
//!     expire DURATION                      # tls:// connections idle; default 10s
//! }
//! ```
//! TO is `IP`, `IP:PORT`, `[IPv6]:PORT` (port 53 by default, `dns://` allowed),
//! `tls://IP[:PORT]` (port 853 by default) or a resolv.conf path whose
//! `nameserver` lines are used; at most 15.
//! `max_concurrent N`: a query arriving while N are in flight is answered
//! REFUSED at once and counted; nothing queues, so memory stays bounded.
//!
//! # Examples
//! ```text
//! forward . /etc/resolv.conf { max_concurrent 1000 }
//! forward . 10.0.0.10 10.0.0.11:1053 { except example.org; policy sequential }
//! ```
//!
//! # Metrics
//! - `coredns_proxy_request_duration_seconds{proxy_name="forward",to,rcode}`
//! - `coredns_proxy_healthcheck_failures_total{proxy_name="forward",to}`
//! - `coredns_forward_healthcheck_broken_total`: all upstreams were down.
//! - `coredns_forward_max_concurrent_rejects_total`
//! - `coredns_proxy_conn_cache_hits_total{proxy_name="forward",to,proto}` and
//!   `_misses_total` (and the pre-1.11 `coredns_forward_conn_cache_*{to,proto}`):
//!   per query to a `tls://` upstream (`proto="tcp-tls"`), whether its
//!   connection was open or had to be dialled.

mod dot;
mod exchange;
mod health;
mod metrics;
mod parse;
mod policy;
mod resolv;

#[cfg(test)]
pub(crate) mod tests;

pub use metrics::ForwardMetrics;
pub use parse::{
    ClientTls, DEFAULT_EXPIRE, ForwardConfig, MAX_UPSTREAMS, UpstreamSpec, address, parse, rcode,
    rcode_name,
};
pub use policy::{Policy, random_u64};
pub use resolv::nameservers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dns::{Answer, Query, Transport};
use crate::plugin::build::BuildCtx;
use crate::plugin::loop_detect::LoopGuard;
use crate::plugin::{Next, Plugin, PluginError, Result};
use dot::{DotUpstream, Reuse};
use exchange::{Ask, ExchangeError, Proto};
use health::Health;

/// How long one exchange waits for a reply (CoreDNS's read timeout).
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one query may take across all its attempts (CoreDNS's deadline).
pub const QUERY_DEADLINE: Duration = Duration::from_secs(5);
/// The largest EDNS payload size passed upstream (the server's own limit).
const MAX_EDNS_PAYLOAD: u16 = 4096;

/// One upstream and its health.
#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    /// CoreDNS's `to` label: `IP:PORT`.
    label: String,
    health: Health,
    /// `Some` for a `tls://` upstream: its connection.
    dot: Option<DotUpstream>,
}

/// The running plugin.
pub struct Forward {
    inner: Arc<Inner>,
}

struct Inner {
    from: Name,
    except: Vec<Name>,
    upstreams: Box<[Upstream]>,
    policy: Policy,
    turn: AtomicUsize,
    force_tcp: bool,
    prefer_udp: bool,
    max_fails: u32,
    hc_interval: Duration,
    hc_rd: bool,
    hc_domain: Name,
    max_concurrent: usize,
    inflight: AtomicUsize,
    next_rcodes: Vec<ResponseCode>,
    failover_rcodes: Vec<ResponseCode>,
    max_connect_attempts: usize,
    failfast: bool,
    metrics: ForwardMetrics,
    guard: Arc<LoopGuard>,
    token: CancellationToken,
}

/// The upstream addresses of `cfg`, resolv.conf files read now.
pub fn upstream_addrs(cfg: &ForwardConfig) -> anyhow::Result<Vec<SocketAddr>> {
    Ok(upstreams(cfg)?.into_iter().map(|(a, _)| a).collect())
}

/// The upstream addresses of `cfg` and whether each is `tls://`.
fn upstreams(cfg: &ForwardConfig) -> anyhow::Result<Vec<(SocketAddr, bool)>> {
    let mut addrs = Vec::new();
    for spec in &cfg.to {
        match spec {
            UpstreamSpec::Addr(a) => addrs.push((*a, false)),
            UpstreamSpec::Tls(a) => addrs.push((*a, true)),
            UpstreamSpec::ResolvConf { path, at } => addrs.extend(
                resolv::read(path)
                    .map_err(|e| anyhow::anyhow!("{at}: forward: {e}"))?
                    .into_iter()
                    .map(|a| (a, false)),
            ),
        }
    }
    if addrs.len() > MAX_UPSTREAMS {
        anyhow::bail!(
            "{}: forward: more than {MAX_UPSTREAMS} upstreams configured: {}",
            cfg.at,
            addrs.len()
        );
    }
    Ok(addrs)
}

impl Forward {
    /// Build the plugin for one server block: read resolv.conf files, register
    /// the upstreams with the block's loop guard.
    pub fn build(cfg: &ForwardConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let addrs = upstreams(cfg)?;
        let guard = ctx.shared.get::<LoopGuard>();
        let plain: Vec<SocketAddr> = addrs.iter().map(|(a, _)| *a).collect();
        guard.set_upstreams(ctx.zones.first().unwrap_or(&Name::root()), &plain);
        let metrics = ctx.families.get::<ForwardMetrics>()?;
        let tls = if addrs.iter().any(|(_, tls)| *tls) {
            let cert_key = cfg
                .tls
                .cert_key
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            let config = crate::tls::client_config(cert_key, cfg.tls.ca.as_deref(), &[])
                .map_err(|e| anyhow::anyhow!("{}: forward: tls: {e}", cfg.at))?;
            Some(Arc::new(config))
        } else {
            None
        };
        Self::new(cfg, addrs, tls, metrics, guard, ctx.token.child_token())
    }

    fn new(
        cfg: &ForwardConfig,
        addrs: Vec<(SocketAddr, bool)>,
        tls: Option<Arc<rustls::ClientConfig>>,
        metrics: ForwardMetrics,
        guard: Arc<LoopGuard>,
        token: CancellationToken,
    ) -> anyhow::Result<Self> {
        let upstreams = addrs
            .into_iter()
            .map(|(addr, is_tls)| {
                let dot = match (is_tls, &tls) {
                    (true, Some(config)) => {
                        let name =
                            crate::tls::server_name(cfg.tls_servername.as_deref(), addr.ip())
                                .map_err(|e| anyhow::anyhow!("{}: forward: {e}", cfg.at))?;
                        Some(DotUpstream::new(
                            addr,
                            name,
                            config.clone(),
                            cfg.expire,
                            token.clone(),
                        ))
                    }
                    _ => None,
                };
                Ok(Upstream {
                    addr,
                    label: addr.to_string(),
                    health: Health::default(),
                    dot,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                from: cfg.from.clone(),
                except: cfg.except.clone(),
                upstreams,
                policy: cfg.policy,
                turn: AtomicUsize::new(0),
                force_tcp: cfg.force_tcp,
                prefer_udp: cfg.prefer_udp,
                max_fails: cfg.max_fails,
                hc_interval: cfg.health_check,
                hc_rd: cfg.health_check_rd,
                hc_domain: cfg.health_check_domain.clone(),
                max_concurrent: cfg.max_concurrent as usize,
                inflight: AtomicUsize::new(0),
                next_rcodes: cfg.next.clone(),
                failover_rcodes: cfg.failover.clone(),
                max_connect_attempts: cfg.max_connect_attempts as usize,
                failfast: cfg.failfast_all_unhealthy_upstreams,
                metrics,
                guard,
                token,
            }),
        })
    }
}

/// A slot among `max_concurrent`; released on drop.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a query's attempts came to.
enum Outcome {
    Answer(Answer),
    Next,
    Fail,
}

impl Inner {
    /// FROM covers the name and no `except` name does (the FROM name itself
    /// is always forwarded, as in CoreDNS).
    fn matches(&self, lower: &Name) -> bool {
        self.from.zone_of(lower)
            && (*lower == self.from || !self.except.iter().any(|e| e.zone_of(lower)))
    }

    fn acquire(&self) -> Option<Slot<'_>> {
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.inflight);
        (self.max_concurrent == 0 || before < self.max_concurrent).then_some(slot)
    }

    fn proto(&self, q: &Query) -> Proto {
        if self.force_tcp {
            Proto::Tcp
        } else if self.prefer_udp {
            Proto::Udp
        } else {
            match q.transport {
                Transport::Udp => Proto::Udp,
                Transport::Tcp => Proto::Tcp,
            }
        }
    }

    /// One attempt at upstream `i`: the client's transport (or the forced
    /// one), then TCP if a UDP reply came back truncated.
    async fn ask(&self, i: usize, q: &Query, deadline: Instant) -> Result<Message, ExchangeError> {
        let up = &self.upstreams[i];
        let ask = Ask {
            name: &q.name,
            qtype: q.qtype,
            qclass: q.qclass,
            recursion_desired: q.recursion_desired,
            edns: q
                .edns_payload
                .map(|p| (p.clamp(512, MAX_EDNS_PAYLOAD), q.dnssec_ok)),
            options: q.edns_options.as_deref().map_or(&[], Vec::as_slice),
        };
        let budget = || READ_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let start = Instant::now();
        let reply = match &up.dot {
            Some(dot) => self.ask_tls(up, dot, &ask, budget()).await?,
            None => {
                let proto = self.proto(q);
                let reply = exchange::exchange(up.addr, &ask, proto, budget()).await?;
                if reply.metadata.truncation && proto == Proto::Udp {
                    debug!(upstream = %up.label, name = %q.name, "truncated over udp, asking over tcp");
                    exchange::exchange(up.addr, &ask, Proto::Tcp, budget()).await?
                } else {
                    reply
                }
            }
        };
        self.metrics
            .request_duration
            .with_label_values(&[
                "forward",
                &up.label,
                &rcode_name(reply.metadata.response_code),
            ])
            .observe(start.elapsed().as_secs_f64());
        Ok(reply)
    }

    /// One exchange over a `tls://` upstream's connection, counted as a
    /// connection-cache hit or miss.
    async fn ask_tls(
        &self,
        up: &Upstream,
        dot: &DotUpstream,
        ask: &Ask<'_>,
        timeout: Duration,
    ) -> Result<Message, ExchangeError> {
        let (reply, reuse) = exchange::exchange_tls(dot, ask, timeout).await?;
        match reuse {
            Reuse::Hit => self.metrics.conn_cache_hits.inc(&up.label, "tcp-tls"),
            Reuse::Miss => self.metrics.conn_cache_misses.inc(&up.label, "tcp-tls"),
        }
        Ok(reply)
    }

    /// Start the check loop of upstream `i` unless one runs (or checks are off).
    fn check_later(self: &Arc<Self>, i: usize) {
        if self.max_fails == 0 || !self.upstreams[i].health.begin_checking() {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let up = &inner.upstreams[i];
            let proto = if inner.force_tcp {
                Proto::Tcp
            } else {
                Proto::Udp
            };
            let ask = Ask {
                name: &inner.hc_domain,
                qtype: RecordType::NS,
                qclass: DNSClass::IN,
                recursion_desired: inner.hc_rd,
                edns: None,
                options: &[],
            };
            let check = || async {
                match &up.dot {
                    Some(dot) => exchange::exchange_tls(dot, &ask, READ_TIMEOUT)
                        .await
                        .is_ok(),
                    None => exchange::exchange(up.addr, &ask, proto, READ_TIMEOUT)
                        .await
                        .is_ok(),
                }
            };
            let failed = || {
                inner
                    .metrics
                    .healthcheck_failures
                    .with_label_values(&["forward", &up.label])
                    .inc();
            };
            up.health
                .run_checks(inner.hc_interval, &inner.token, check, failed)
                .await;
        });
    }

    /// The upstreams to try, in order: policy order without looping ones,
    /// down ones skipped while any is healthy. `None`: fail the query.
    fn candidates(&self) -> Option<Vec<usize>> {
        let live: Vec<usize> = self
            .policy
            .order(self.upstreams.len(), &self.turn)
            .into_iter()
            .filter(|&i| !self.guard.is_looping(i))
            .collect();
        if live.is_empty() {
            return None;
        }
        let healthy: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| !self.upstreams[i].health.is_down(self.max_fails))
            .collect();
        if !healthy.is_empty() {
            return Some(healthy);
        }
        self.metrics.healthcheck_broken.inc();
        if self.failfast {
            return None;
        }
        Some(vec![live[policy::random_below(live.len())]])
    }

    async fn resolve(self: &Arc<Self>, q: &Query, has_next: bool) -> Outcome {
        let Some(order) = self.candidates() else {
            return Outcome::Fail;
        };
        let attempts = match self.max_connect_attempts {
            0 => order.len(),
            n => n,
        };
        let deadline = Instant::now() + QUERY_DEADLINE;
        let mut failed_over: Option<Message> = None;
        for (n, &i) in order.iter().cycle().take(attempts).enumerate() {
            if Instant::now() >= deadline {
                break;
            }
            let reply = match self.ask(i, q, deadline).await {
                Ok(reply) => reply,
                Err(error) => {
                    debug!(upstream = %self.upstreams[i].label, name = %q.name, %error, "forward failed");
                    self.check_later(i);
                    continue;
                }
            };
            let rcode = reply.metadata.response_code;
            if self.failover_rcodes.contains(&rcode) && n + 1 < attempts {
                failed_over = Some(reply);
                continue;
            }
            if has_next && self.next_rcodes.contains(&rcode) {
                return Outcome::Next;
            }
            return Outcome::Answer(to_answer(q, reply));
        }
        match failed_over {
            Some(reply) => Outcome::Answer(to_answer(q, reply)),
            None => Outcome::Fail,
        }
    }

    /// A loop probe: only to the upstream it is for, never to a looping one.
    async fn probe(&self, i: usize, q: &Query) -> Result<Answer> {
        if self.guard.is_looping(i) {
            return Err(PluginError::Rcode(ResponseCode::ServFail));
        }
        let deadline = Instant::now() + READ_TIMEOUT;
        match self.ask(i, q, deadline).await {
            Ok(reply) => Ok(to_answer(q, reply)),
            Err(_) => Err(PluginError::Rcode(ResponseCode::ServFail)),
        }
    }
}

/// Ask `addr` `name IN HINFO` over UDP once; whether any reply came back
/// within `timeout` (the `loop` plugin's probe).
pub(crate) async fn send_probe(addr: SocketAddr, name: &Name, timeout: Duration) -> bool {
    let ask = Ask {
        name,
        qtype: RecordType::HINFO,
        qclass: DNSClass::IN,
        recursion_desired: true,
        edns: None,
        options: &[],
    };
    exchange::exchange(addr, &ask, Proto::Udp, timeout)
        .await
        .is_ok()
}

/// The upstream's reply as our answer: rcode, flags and sections copied,
/// owner names equal to the query name in the query's case.
fn to_answer(q: &Query, reply: Message) -> Answer {
    let fix = |records: Vec<Record>| -> Vec<Record> {
        records
            .into_iter()
            .map(|mut r| {
                if r.name == q.lower {
                    r.name = q.name.clone();
                }
                r
            })
            .collect()
    };
    let m = reply.metadata;
    Answer {
        rcode: m.response_code,
        authoritative: m.authoritative,
        truncated: m.truncation,
        recursion_available: m.recursion_available,
        answers: fix(reply.answers),
        authority: fix(reply.authorities),
        additionals: fix(reply.additionals),
        writer: "",
        memo: None,
        extras: None,
    }
}

#[async_trait::async_trait]
impl Plugin for Forward {
    fn name(&self) -> &'static str {
        "forward"
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let inner = &self.inner;
        if !inner.matches(&q.lower) {
            return next.serve(q).await;
        }
        if let Some(i) = inner.guard.probe_index(q) {
            return inner.probe(i, q).await;
        }
        let Some(_slot) = inner.acquire() else {
            inner.metrics.max_concurrent_rejects.inc();
            return Ok(Answer::rcode(ResponseCode::Refused));
        };
        match inner.resolve(q, !next.is_empty()).await {
            Outcome::Answer(a) => Ok(a),
            Outcome::Next => next.serve(q).await,
            Outcome::Fail => Err(PluginError::Rcode(ResponseCode::ServFail)),
        }
    }
}

crate::plugin::build::build_plugin!(ForwardConfig, |config, ctx| Forward::build(config, ctx)?);
