//! Wiring: a validated [`Config`] becomes running listeners, plugin chains,
//! index writers and sources.
//!
//! Phases, so that every configuration error surfaces before a socket opens:
//! [`plan`] (no I/O: build plugins, check that every directive can run), then
//! [`App::start`] (bind, spawn), then [`App::shutdown`] (stop sources, drain DNS).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::config::{Config, ServerConfig};
use crate::dns::server::{self, DnsServers, Listener};
use crate::dns::{Handler, Route};
use crate::index::ClusterIndex;
use crate::index::snapshot::SharedIndex;
use crate::plugin::build::{BlockShared, BuildCtx, Families};
use crate::plugin::health::{self, Health};
use crate::plugin::kubernetes::Kubernetes;
use crate::plugin::prometheus::{self, Prometheus};
use crate::plugin::ready::{Monitor, Readiness, Ready};
use crate::plugin::{self, Chain, Plugin, PluginConfig};
use crate::watch::metrics::WatchMetrics;

mod sources;
use sources::{SourceTask, Starter};

/// Everything built from the config, before any socket is opened.
pub struct Plan {
    listeners: Vec<Listener>,
    sources: Vec<SourceTask>,
    /// Every plugin of every chain (for `/ready`).
    plugins: Vec<Arc<dyn Plugin>>,
    health: Vec<Health>,
    ready: Vec<Ready>,
    prometheus: Vec<Prometheus>,
    /// The longest kubernetes `startup_timeout`: how long DNS waits for data.
    startup_timeout: Duration,
}

/// Build plugin chains and listeners from a validated config. Fails on
/// directives that cannot run yet and on `bind` targets that do not resolve.
pub fn plan(cfg: &Config, families: &Families, token: &CancellationToken) -> anyhow::Result<Plan> {
    let mut routes: BTreeMap<SocketAddr, Vec<Route>> = BTreeMap::new();
    let mut sources = Vec::new();
    let mut all_plugins: Vec<Arc<dyn Plugin>> = Vec::new();
    let (mut health, mut ready, mut prometheus) = (Vec::new(), Vec::new(), Vec::new());
    let mut startup_timeout = Duration::ZERO;
    for server in &cfg.servers {
        let addrs = listen_addrs(server)?;
        let local_ips = advertised_ips(&addrs);
        let server_label = format!("dns://:{}", server.port);
        let shared = BlockShared::default();
        let ctx = BuildCtx {
            families,
            server: &server_label,
            zones: &server.zones,
            token,
            listen: &addrs,
            shared: &shared,
        };
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        for p in &server.plugins {
            match p {
                PluginConfig::Bind(_) => {}
                PluginConfig::Health(h) => health.push(h.clone()),
                PluginConfig::Ready(r) => ready.push(r.clone()),
                PluginConfig::Prometheus(p) => prometheus.push(p.clone()),
                PluginConfig::Kubernetes(k) => {
                    let index = SharedIndex::new(ClusterIndex::default());
                    startup_timeout = startup_timeout.max(k.startup_timeout);
                    plugins.push(Arc::new(Kubernetes::new(
                        k,
                        &server.zones,
                        local_ips.clone(),
                        index.clone(),
                    )));
                    sources.push(SourceTask {
                        cfg: (**k).clone(),
                        index,
                    });
                }
                other => plugins.extend(plugin::instantiate(other, &ctx)?),
            }
        }
        all_plugins.extend(plugins.iter().cloned());
        let chain = Chain::new(plugins);
        for addr in addrs {
            routes.entry(addr).or_default().push(Route {
                zones: server.zones.clone(),
                chain: chain.clone(),
            });
        }
    }
    let listeners = routes
        .into_iter()
        .map(|(addr, routes)| Listener {
            addr,
            handler: Handler::new(routes),
        })
        .collect();
    Ok(Plan {
        listeners,
        sources,
        plugins: all_plugins,
        health,
        ready,
        prometheus,
        startup_timeout,
    })
}

/// Addresses a server block listens on: its `bind` targets, else the wildcards.
fn listen_addrs(server: &ServerConfig) -> anyhow::Result<Vec<SocketAddr>> {
    let ips = match server.bind() {
        Some(b) => b.resolve()?,
        None => vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ],
    };
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, server.port))
        .collect())
}

/// The addresses answered for `ns.dns.<zone>`: the bound ones, or every
/// non-loopback interface address when bound to the wildcard.
fn advertised_ips(addrs: &[SocketAddr]) -> Vec<IpAddr> {
    if addrs.iter().all(|a| !a.ip().is_unspecified()) {
        return addrs.iter().map(SocketAddr::ip).collect();
    }
    if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.into_iter()
                .filter(|i| !i.is_loopback())
                .map(|i| i.ip())
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until every readiness-reporting plugin is ready, at most `limit`.
async fn wait_for_data(readiness: &Readiness, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let waiting = readiness.not_ready(Monitor::Continuously);
        if waiting.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            if !limit.is_zero() {
                tracing::warn!(
                    plugins = ?waiting,
                    ?limit,
                    "no complete data yet; serving DNS anyway (SERVFAIL for unknown cluster names until synced)"
                );
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The running server.
pub struct App {
    dns: DnsServers,
    http_addrs: Vec<SocketAddr>,
    readiness: Arc<Readiness>,
    /// The longest `health { lameduck }` configured.
    lameduck: Duration,
    tasks: TaskTracker,
    token: CancellationToken,
}

impl App {
    /// Bind listeners, start HTTP endpoints, sources and index writers, wait
    /// (at most `startup_timeout`) for the data, then answer DNS.
    ///
    /// Like CoreDNS, serving waits up to `startup_timeout` (default 5 s) for
    /// the first complete list; if the data has not arrived by then, DNS
    /// starts anyway: cluster names the index cannot vouch for get SERVFAIL
    /// (never NXDOMAIN) and `/ready` stays 503 until the data arrives.
    pub async fn start(
        plan: Plan,
        families: &Families,
        token: CancellationToken,
    ) -> anyhow::Result<Self> {
        let bound = server::bind(plan.listeners).context("opening DNS listeners")?;
        let tasks = TaskTracker::new();
        let registry = families.registry().clone();
        let watch_metrics = families.get::<WatchMetrics>()?;
        let readiness = Readiness::new(plan.plugins);
        let mut endpoints = admin::Endpoints::default();
        for h in &plan.health {
            endpoints.add(h.addr, "/health", health::handler());
        }
        for r in &plan.ready {
            endpoints.add(r.addr, "/ready", readiness.handler(r.monitor));
        }
        for p in &plan.prometheus {
            endpoints.add(p.addr, "/metrics", prometheus::handler(registry.clone()));
        }
        let http_addrs = admin::serve(endpoints, &tasks, token.child_token()).await?;
        let lameduck = plan
            .health
            .iter()
            .map(|h| h.lameduck)
            .max()
            .unwrap_or_default();
        let mut starter = Starter::new(&tasks, &token, watch_metrics);
        for s in plan.sources {
            starter.start(s).await?;
        }
        tasks.close();
        wait_for_data(&readiness, plan.startup_timeout).await;
        Ok(Self {
            dns: bound.serve(),
            http_addrs,
            readiness,
            lameduck,
            tasks,
            token,
        })
    }

    /// The bound DNS addresses.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        self.dns.local_addrs()
    }

    /// The bound HTTP (health/ready) addresses.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// Lameduck first (keep answering, `/ready` 503), then stop sources and
    /// drain the DNS servers, waiting at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        if !self.lameduck.is_zero() {
            tracing::info!(lameduck = ?self.lameduck, "going into lameduck mode");
            self.readiness.drain();
            tokio::time::sleep(self.lameduck).await;
        }
        self.token.cancel();
        let drain = async {
            self.dns.shutdown().await;
            self.tasks.wait().await;
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(?grace, "shutdown grace period expired");
        }
    }
}
