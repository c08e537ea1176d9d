//! The plugin chain: one module per Corefile directive, run in CoreDNS's fixed order.
//!
//! A server block's directives are parsed by their plugin's `parse` into a
//! [`PluginConfig`]; [`build`] turns the configs into a [`Chain`] sorted by
//! [`ORDER`] (CoreDNS's `plugin.cfg`), never by the order they were written in.
//! A plugin answers a [`Query`] or hands it to [`Next`] — CoreDNS's
//! "fallthrough" as a type.

pub mod any;
pub mod autopath;
pub mod bind;
pub mod build;
pub mod cache;
pub mod errors;
pub mod forward;
pub mod health;
pub mod hosts;
pub mod kubernetes;
pub mod loadbalance;
pub mod log;
pub mod loop_detect;
pub mod prometheus;
mod rdata;
pub mod ready;
pub mod reload;
pub mod rewrite;
pub mod template;
pub mod timeouts;
pub mod whoami;

use std::sync::Arc;

use hickory_proto::op::ResponseCode;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};

/// CoreDNS's plugin execution order (`plugin.cfg`), first runs first.
/// Directives we recognise but do not ship are listed so that their position
/// (and the error for them) is the same as CoreDNS's.
pub const ORDER: &[&str] = &[
    "root",
    "metadata",
    "geoip",
    "cancel",
    "tls",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "acl",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "cache",
    "rewrite",
    "header",
    "dnssec",
    "autopath",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
];

/// Position of a directive in [`ORDER`], `None` if CoreDNS has no such plugin.
pub fn order_of(name: &str) -> Option<usize> {
    ORDER.iter().position(|n| *n == name)
}

/// Why a plugin could not answer; the server turns it into an rcode.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The chain ended without a plugin answering (CoreDNS: "no next plugin found").
    #[error("no next plugin found")]
    NoNextPlugin,
    /// A plugin decided the response code (e.g. SERVFAIL while not synced).
    #[error("{0}")]
    Rcode(ResponseCode),
}

impl PluginError {
    /// The response code the client gets.
    pub fn rcode(&self) -> ResponseCode {
        match self {
            PluginError::NoNextPlugin => ResponseCode::ServFail,
            PluginError::Rcode(rc) => *rc,
        }
    }
}

/// Result of serving a query.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// One configured Corefile directive, ready to serve.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// The directive name.
    fn name(&self) -> &'static str;
    /// Answer, or hand the query to `next`.
    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer>;
    /// `Some(ready)` for plugins that report readiness (kubernetes); `None` otherwise.
    fn ready(&self) -> Option<bool> {
        None
    }
}

/// The rest of the chain after the current plugin.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    rest: &'a [Arc<dyn Plugin>],
}

impl<'a> Next<'a> {
    /// Serve the query with the next plugin, or fail with [`PluginError::NoNextPlugin`].
    pub async fn serve(self, q: &Query) -> Result<Answer> {
        match self.rest.split_first() {
            Some((plugin, rest)) => {
                let mut answer = plugin.serve(q, Next { rest }).await?;
                if answer.writer.is_empty() {
                    answer.writer = plugin.name();
                }
                Ok(answer)
            }
            None => Err(PluginError::NoNextPlugin),
        }
    }

    /// Whether any plugin follows.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// A server block's plugins in execution order.
#[derive(Clone, Default)]
pub struct Chain {
    plugins: Arc<[Arc<dyn Plugin>]>,
}

impl Chain {
    /// A chain of these plugins, sorted by [`ORDER`].
    pub fn new(mut plugins: Vec<Arc<dyn Plugin>>) -> Self {
        plugins.sort_by_key(|p| order_of(p.name()).unwrap_or(usize::MAX));
        Self {
            plugins: plugins.into(),
        }
    }

    /// Serve a query from the first plugin.
    pub async fn serve(&self, q: &Query) -> Result<Answer> {
        Next {
            rest: &self.plugins,
        }
        .serve(q)
        .await
    }

    /// The plugins, in execution order.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// Names of plugins that report readiness and are not ready yet.
    pub fn not_ready(&self) -> Vec<&'static str> {
        self.plugins
            .iter()
            .filter(|p| p.ready() == Some(false))
            .map(|p| p.name())
            .collect()
    }
}

/// A directive parsed by its plugin, before anything is started.
#[derive(Clone, Debug)]
pub enum PluginConfig {
    /// `bind`.
    Bind(bind::Bind),
    /// `kubernetes`.
    Kubernetes(Box<kubernetes::KubernetesConfig>),
    /// `whoami`.
    Whoami,
    /// `health`.
    Health(health::Health),
    /// `ready`.
    Ready(ready::Ready),
    /// `prometheus`.
    Prometheus(prometheus::Prometheus),
    /// `reload`.
    Reload(reload::Reload),
    /// `errors`.
    Errors(errors::ErrorsConfig),
    /// `log`.
    Log(log::LogConfig),
    /// `hosts`.
    Hosts(Box<hosts::HostsConfig>),
    /// `any`.
    Any,
    /// Every `rewrite` of the block, as one instance.
    Rewrite(rewrite::RewriteConfig),
    /// Every `template` of the block, as one instance.
    Template(template::TemplateConfig),
    /// `autopath`.
    Autopath(autopath::AutopathConfig),
    /// `forward`.
    Forward(Box<forward::ForwardConfig>),
    /// `loop`.
    Loop,
    /// `cache`.
    Cache(Box<cache::CacheConfig>),
    /// `loadbalance`.
    Loadbalance(loadbalance::LoadbalanceConfig),
    /// `timeouts`: TCP limits of the block's listeners.
    Timeouts(crate::dns::tcp::TcpLimits),
}

impl PluginConfig {
    /// The directive name.
    pub fn name(&self) -> &'static str {
        match self {
            PluginConfig::Bind(_) => "bind",
            PluginConfig::Kubernetes(_) => "kubernetes",
            PluginConfig::Whoami => "whoami",
            PluginConfig::Health(_) => "health",
            PluginConfig::Ready(_) => "ready",
            PluginConfig::Prometheus(_) => "prometheus",
            PluginConfig::Reload(_) => "reload",
            PluginConfig::Errors(_) => "errors",
            PluginConfig::Log(_) => "log",
            PluginConfig::Hosts(_) => "hosts",
            PluginConfig::Any => "any",
            PluginConfig::Rewrite(_) => "rewrite",
            PluginConfig::Template(_) => "template",
            PluginConfig::Autopath(_) => "autopath",
            PluginConfig::Forward(_) => "forward",
            PluginConfig::Loop => "loop",
            PluginConfig::Cache(_) => "cache",
            PluginConfig::Loadbalance(_) => "loadbalance",
            PluginConfig::Timeouts(_) => "timeouts",
        }
    }
}

/// Parse one directive with the plugin named by it.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<PluginConfig, CorefileError> {
    let name = d.directive().name.text.as_str();
    match name {
        "bind" => bind::parse(d).map(PluginConfig::Bind),
        "kubernetes" => kubernetes::parse(d).map(|k| PluginConfig::Kubernetes(Box::new(k))),
        "whoami" => whoami::parse(d).map(|()| PluginConfig::Whoami),
        "health" => health::parse(d).map(PluginConfig::Health),
        "ready" => ready::parse(d).map(PluginConfig::Ready),
        "prometheus" => prometheus::parse(d).map(PluginConfig::Prometheus),
        "reload" => reload::parse(d).map(PluginConfig::Reload),
        "errors" => errors::parse(d).map(PluginConfig::Errors),
        "log" => log::parse(d).map(PluginConfig::Log),
        "hosts" => hosts::parse(d).map(|h| PluginConfig::Hosts(Box::new(h))),
        "any" => any::parse(d).map(|()| PluginConfig::Any),
        "rewrite" => rewrite::parse(d)
            .map(|r| PluginConfig::Rewrite(rewrite::RewriteConfig { rules: vec![r] })),
        "template" => template::parse(d)
            .map(|t| PluginConfig::Template(template::TemplateConfig { templates: vec![t] })),
        "autopath" => autopath::parse(d).map(PluginConfig::Autopath),
        "forward" => forward::parse(d).map(|f| PluginConfig::Forward(Box::new(f))),
        "loop" => loop_detect::parse(d).map(|()| PluginConfig::Loop),
        "cache" => cache::parse(d).map(|c| PluginConfig::Cache(Box::new(c))),
        "loadbalance" => loadbalance::parse(d).map(PluginConfig::Loadbalance),
        "timeouts" => timeouts::parse(d).map(PluginConfig::Timeouts),
        _ if order_of(name).is_some() => {
            Err(d.err(format!("plugin '{name}' is not supported by clusterdns")))
        }
        _ => Err(d.err(format!("unknown directive '{name}'"))),
    }
}

/// Directives CoreDNS allows several times in one server block (`rewrite`, `template`):
/// all of them form one plugin instance, in the order written.
pub fn repeatable(name: &str) -> bool {
    matches!(name, "rewrite" | "template")
}

/// Add a parsed directive to its block's list: a repeated `rewrite` or `template` joins
/// the first one, so rule order and `stop` work across directives.
pub fn add(list: &mut Vec<PluginConfig>, cfg: PluginConfig) {
    for existing in list.iter_mut() {
        match (existing, &cfg) {
            (PluginConfig::Rewrite(a), PluginConfig::Rewrite(b)) => {
                a.rules.extend(b.rules.iter().cloned());
                return;
            }
            (PluginConfig::Template(a), PluginConfig::Template(b)) => {
                a.templates.extend(b.templates.iter().cloned());
                return;
            }
            _ => {}
        }
    }
    list.push(cfg);
}

/// Build the runtime plugin for a directive that lives in the query chain.
/// `Ok(None)` for directives that are not chain plugins (`bind`, `health`,
/// `ready`, `prometheus`, `kubernetes` — the app wires those itself).
pub fn instantiate(
    cfg: &PluginConfig,
    ctx: &build::BuildCtx<'_>,
) -> anyhow::Result<Option<Arc<dyn Plugin>>> {
    Ok(match cfg {
        PluginConfig::Whoami => Some(Arc::new(whoami::Whoami)),
        PluginConfig::Errors(e) => Some(Arc::new(errors::Errors::new(e, ctx.token.clone()))),
        PluginConfig::Log(l) => Some(Arc::new(log::Log::new(l))),
        PluginConfig::Hosts(h) => Some(Arc::new(hosts::Hosts::build(h, ctx)?)),
        PluginConfig::Any => Some(Arc::new(any::Any)),
        PluginConfig::Rewrite(r) => Some(Arc::new(rewrite::Rewrite::new(r)?)),
        PluginConfig::Template(t) => Some(Arc::new(template::Template::new(t, ctx)?)),
        PluginConfig::Autopath(a) => Some(Arc::new(autopath::Autopath::new(a, ctx)?)),
        PluginConfig::Forward(f) => Some(Arc::new(forward::Forward::build(f, ctx)?)),
        PluginConfig::Loop => Some(Arc::new(loop_detect::Loop::build(ctx)?)),
        PluginConfig::Cache(c) => Some(Arc::new(cache::Cache::new(c, ctx)?)),
        PluginConfig::Loadbalance(l) => Some(Arc::new(loadbalance::Loadbalance::new(l)?)),
        PluginConfig::Bind(_)
        | PluginConfig::Health(_)
        | PluginConfig::Ready(_)
        | PluginConfig::Prometheus(_)
        | PluginConfig::Reload(_)
        | PluginConfig::Timeouts(_)
        | PluginConfig::Kubernetes(_) => None,
    })
}

/// The names of the plugins compiled in (for `-plugins`), in execution order.
pub fn compiled_in() -> Vec<&'static str> {
    let mut names = vec![
        "any",
        "bind",
        "errors",
        "forward",
        "cache",
        "health",
        "hosts",
        "kubernetes",
        "log",
        "loop",
        "loadbalance",
        "prometheus",
        "ready",
        "reload",
        "rewrite",
        "template",
        "timeouts",
        "autopath",
        "whoami",
    ];
    names.sort_by_key(|n| order_of(n));
    names
}
