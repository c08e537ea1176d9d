//! From a validated [`Config`] to everything a running configuration needs,
//! without opening a socket: plugin chains per listening address, HTTP
//! endpoints, and the kubernetes sources (reusing running ones whose
//! settings did not change, so a reload does not relist).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sources::{SourceTask, Sources};
use crate::admin;
use crate::config::{Config, ServerConfig};
use crate::corefile::Transport;
use crate::dns::Route;
use crate::dns::metrics::DnsMetrics;
use crate::dns::server::{Listen, ListenSettings, RouteTable};
use crate::plugin::build::{BlockShared, BuildCtx, Families};
use crate::plugin::kubernetes::Kubernetes;
use crate::plugin::ready::Readiness;
use crate::plugin::reload::Reload;
use crate::plugin::{Chain, Plugin, PluginConfig, health, prometheus};

/// One configuration, built and not yet serving.
pub(super) struct Plan {
    /// Server blocks per listening address.
    pub(super) routes: RouteTable,
    /// The kubernetes sources this configuration uses.
    pub(super) sources: Vec<SourceTask>,
    /// `/health`, `/ready`, `/metrics` per address.
    pub(super) endpoints: admin::Endpoints,
    /// Readiness over this configuration's plugins.
    pub(super) readiness: Arc<Readiness>,
    /// The longest `health { lameduck }`.
    pub(super) lameduck: Duration,
    /// Where `/health` is served (each gets a once-a-second self check).
    pub(super) health_addrs: Vec<SocketAddr>,
    /// The longest kubernetes `startup_timeout`: how long DNS waits for data.
    pub(super) startup_timeout: Duration,
    /// `reload`, if any block has it.
    pub(super) reload: Option<Reload>,
    /// TCP limits (`timeouts`) and transport (`tls://`, `https://`, with the
    /// certificate read now) per listening address.
    pub(super) listen: ListenSettings,
}

/// Build a configuration. `token` is this configuration's generation token:
/// plugin background tasks end when it is cancelled.
pub(super) fn plan(
    cfg: &Config,
    families: &Families,
    sources: &Sources,
    token: &CancellationToken,
) -> anyhow::Result<Plan> {
    let mut routes: RouteTable = BTreeMap::new();
    let mut tasks: Vec<SourceTask> = Vec::new();
    let mut all_plugins: Vec<Arc<dyn Plugin>> = Vec::new();
    let mut endpoints = admin::Endpoints::default();
    let mut ready_at = Vec::new();
    let mut lameduck = Duration::ZERO;
    let mut health_addrs = Vec::new();
    let mut startup_timeout = Duration::ZERO;
    let mut reload = None;
    let mut listen = ListenSettings::default();
    for server in &cfg.servers {
        let addrs = listen_addrs(server)?;
        let local_ips = advertised_ips(&addrs);
        let server_label = server.label();
        if let Some(kind) = transport(server)? {
            for addr in &addrs {
                listen.listen.entry(*addr).or_insert_with(|| kind.clone());
            }
        }
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        // kubernetes first, so that plugins built after it (autopath) can reach it.
        let mut kubernetes: Option<Arc<Kubernetes>> = None;
        for p in &server.plugins {
            if let PluginConfig::Kubernetes(k) = p {
                let task = sources.task_for(k, &tasks);
                startup_timeout = startup_timeout.max(k.startup_timeout);
                let k8s = Arc::new(Kubernetes::new(
                    k,
                    &server.zones,
                    local_ips.clone(),
                    task.index.clone(),
                ));
                plugins.push(k8s.clone());
                kubernetes = Some(k8s);
                tasks.push(task);
            }
        }
        let shared = BlockShared::default();
        let ctx = BuildCtx {
            families,
            server: &server_label,
            zones: &server.zones,
            token,
            kubernetes: kubernetes.as_ref(),
            listen: &addrs,
            shared: &shared,
        };
        for p in &server.plugins {
            match p {
                PluginConfig::Bind(_)
                | PluginConfig::Kubernetes(_)
                | PluginConfig::Tls(_)
                | PluginConfig::View(_) => {}
                PluginConfig::Health(h) => {
                    endpoints.add(h.addr, "/health", health::handler());
                    lameduck = lameduck.max(h.lameduck);
                    if !health_addrs.contains(&h.addr) {
                        health_addrs.push(h.addr);
                    }
                }
                PluginConfig::Ready(r) => ready_at.push(r.clone()),
                PluginConfig::Prometheus(p) => {
                    let handler = prometheus::handler(families.registry().clone());
                    endpoints.add(p.addr, "/metrics", handler);
                }
                PluginConfig::Reload(r) => reload = Some(*r),
                PluginConfig::Timeouts(t) => {
                    for addr in &addrs {
                        listen.tcp_limits.entry(*addr).or_insert(*t);
                    }
                }
                PluginConfig::Chain(c) => plugins.push(c.build(&ctx)?),
            }
        }
        all_plugins.extend(plugins.iter().cloned());
        let metrics = block_metrics(server, families, &server_label)?;
        let chain = Chain::new(plugins);
        let server_label: Arc<str> = server_label.into();
        let view = server.view().map(|v| Arc::new(v.clone()));
        for addr in addrs {
            routes.entry(addr).or_default().push(Route {
                zones: server.zones.clone(),
                chain: chain.clone(),
                server: server_label.clone(),
                metrics: metrics.clone(),
                view: view.clone(),
            });
        }
    }
    let readiness = Readiness::new(all_plugins);
    for r in ready_at {
        endpoints.add(r.addr, "/ready", readiness.handler(r.monitor));
    }
    Ok(Plan {
        routes,
        sources: tasks,
        endpoints,
        readiness,
        lameduck,
        health_addrs,
        startup_timeout,
        reload,
        listen,
    })
}

/// How a block's addresses are served: `None` for plain DNS, else DNS over
/// TLS or HTTPS with the `tls` certificate, read from its files now (so a
/// reload re-reads them). The first block on an address decides its
/// certificate, as the first decides its `timeouts`.
fn transport(server: &ServerConfig) -> anyhow::Result<Option<Listen>> {
    let tls = server.tls();
    let config = |alpn: &[&[u8]]| -> anyhow::Result<Arc<rustls::ServerConfig>> {
        // Config validation requires `tls` in tls:// and https:// blocks.
        let tls = tls.ok_or_else(|| anyhow::anyhow!("{}: no tls directive", server.label()))?;
        Ok(Arc::new(tls.server_config(alpn)?))
    };
    Ok(match server.transport {
        Transport::Dns => {
            if let Some(t) = tls {
                tracing::warn!(
                    at = %t.at,
                    server = %server.label(),
                    "tls does nothing in a dns:// server block (as in CoreDNS); use tls:// or https://"
                );
            }
            None
        }
        Transport::Tls => Some(Listen::Tls(config(&[b"dot"])?)),
        Transport::Https => Some(Listen::Https(config(&[b"h2", b"http/1.1"])?)),
    })
}

/// Request metrics for blocks with `prometheus` (as CoreDNS records them).
fn block_metrics(
    server: &ServerConfig,
    families: &Families,
    label: &str,
) -> anyhow::Result<Option<DnsMetrics>> {
    if !server
        .plugins
        .iter()
        .any(|p| matches!(p, PluginConfig::Prometheus(_)))
    {
        return Ok(None);
    }
    let m = families.get::<DnsMetrics>()?;
    let names: Vec<&'static str> = server.plugins.iter().map(PluginConfig::name).collect();
    let view = server.view().map_or("", |v| &*v.name);
    for z in &server.zones {
        m.enable(label, &z.to_ascii(), view, &names);
    }
    Ok(Some(m))
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
