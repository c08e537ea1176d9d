//! The one registration table of Corefile directives: name, position in
//! CoreDNS's plugin order, and how it is parsed (which says how it is built).
//!
//! Adding a directive means writing its module and adding one row to
//! [`DIRECTIVES`]; parsing ([`parse`]), the "once per block" rule
//! ([`repeatable`]), chain order ([`order_of`]) and `-plugins`
//! ([`compiled_in`]) all read this table, so they cannot disagree.
//!
//! A directive is one of two kinds:
//! - a **chain plugin** (most): its parse returns a [`BuildPlugin`] and the
//!   build turns that into the [`Plugin`] that serves queries;
//! - an **app directive** (`bind`, `health`, `ready`, `prometheus`, `reload`,
//!   `timeouts`, `tls`, `kubernetes`): its settings shape listeners, HTTP endpoints or sources,
//!   so the app wires it (`src/app/plan.rs`) from a [`PluginConfig`] variant.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::build::BuildCtx;
use crate::plugin::{
    Plugin, acl, any, autopath, bind, bufsize, cache, chaos, dns64, errors, forward, header,
    health, hosts, kubernetes, loadbalance, local, log, loop_detect, minimal, nsid, prometheus,
    ready, reload, rewrite, template, timeouts, tls, view, whoami,
};

/// What a chain plugin's parse returns: validated settings that build the
/// running plugin (at start and at every reload).
pub trait BuildPlugin: AsAny + Debug + Send + Sync {
    /// The running plugin for one server block.
    fn build(&self, ctx: &BuildCtx<'_>) -> anyhow::Result<Arc<dyn Plugin>>;

    /// For directives registered [`Kind::Repeatable`]: these settings followed
    /// by `later` (parsed by the same function) as one instance, so rule
    /// order and `stop` work across directives. `None` when not joinable.
    fn join(&self, later: &dyn BuildPlugin) -> Option<Arc<dyn BuildPlugin>> {
        let _ = later;
        None
    }
}

/// Downcasting for [`BuildPlugin`] (joins and tests look at the concrete settings).
pub trait AsAny {
    /// `self` as [`Any`].
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A parsed chain directive: its name and settings.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    name: &'static str,
    config: Arc<dyn BuildPlugin>,
}

impl ChainConfig {
    /// The directive name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The settings, for downcasting (`config().as_any().downcast_ref::<T>()`).
    pub fn config(&self) -> &dyn BuildPlugin {
        self.config.as_ref()
    }

    /// Build the running plugin.
    pub fn build(&self, ctx: &BuildCtx<'_>) -> anyhow::Result<Arc<dyn Plugin>> {
        self.config.build(ctx)
    }
}

/// A directive parsed by its plugin, before anything is started.
#[derive(Clone, Debug)]
pub enum PluginConfig {
    /// `bind` (listen addresses).
    Bind(bind::Bind),
    /// `kubernetes` (a cluster source and the chain plugin over it).
    Kubernetes(Box<kubernetes::KubernetesConfig>),
    /// `health` (an HTTP endpoint and the lameduck delay).
    Health(health::Health),
    /// `ready` (an HTTP endpoint).
    Ready(ready::Ready),
    /// `prometheus` (an HTTP endpoint).
    Prometheus(prometheus::Prometheus),
    /// `reload` (the Corefile watcher).
    Reload(reload::Reload),
    /// `timeouts` (limits of the block's TCP listeners).
    Timeouts(crate::dns::tcp::TcpLimits),
    /// `tls` (the certificate of a `tls://` or `https://` block's listener).
    Tls(Box<tls::ServerTls>),
    /// `view` (which queries the block takes).
    View(Box<view::View>),
    /// Every other directive: a plugin in the query chain.
    Chain(ChainConfig),
}

impl PluginConfig {
    /// The directive name.
    pub fn name(&self) -> &'static str {
        match self {
            PluginConfig::Bind(_) => "bind",
            PluginConfig::Kubernetes(_) => "kubernetes",
            PluginConfig::Health(_) => "health",
            PluginConfig::Ready(_) => "ready",
            PluginConfig::Prometheus(_) => "prometheus",
            PluginConfig::Reload(_) => "reload",
            PluginConfig::Timeouts(_) => "timeouts",
            PluginConfig::Tls(_) => "tls",
            PluginConfig::View(_) => "view",
            PluginConfig::Chain(c) => c.name,
        }
    }
}

/// What a directive's parse function returns.
pub enum Parsed {
    /// An app directive.
    App(PluginConfig),
    /// A chain plugin's settings.
    Chain(Arc<dyn BuildPlugin>),
}

/// Parses one directive (a row of [`DIRECTIVES`]).
pub type ParseFn = fn(&mut Dispenser<'_>) -> Result<Parsed, CorefileError>;

/// How a directive is handled.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A CoreDNS plugin clusterdns does not ship: refused at start with this
    /// reason, the position kept so the table is CoreDNS's `plugin.cfg`.
    NotShipped(&'static str),
    /// At most once per server block.
    Once(ParseFn),
    /// Any number of times per block; all of them join into one instance.
    Repeatable(ParseFn),
}

/// One row of the registration table.
#[derive(Clone, Copy)]
pub struct Directive {
    /// The directive name.
    pub name: &'static str,
    /// How it is parsed.
    pub kind: Kind,
}

impl Directive {
    /// The parse function, `None` for plugins we do not ship.
    pub fn parse_fn(&self) -> Option<ParseFn> {
        match self.kind {
            Kind::NotShipped(_) => None,
            Kind::Once(f) | Kind::Repeatable(f) => Some(f),
        }
    }
}

const fn no(name: &'static str, why: &'static str) -> Directive {
    Directive {
        name,
        kind: Kind::NotShipped(why),
    }
}

/// The plugins clusterdns does not ship and why (for the README and `-plugins`).
pub fn not_shipped() -> Vec<(&'static str, &'static str)> {
    DIRECTIVES
        .iter()
        .filter_map(|d| match d.kind {
            Kind::NotShipped(why) => Some((d.name, why)),
            _ => None,
        })
        .collect()
}

const fn once(name: &'static str, parse: ParseFn) -> Directive {
    Directive {
        name,
        kind: Kind::Once(parse),
    }
}

const fn many(name: &'static str, parse: ParseFn) -> Directive {
    Directive {
        name,
        kind: Kind::Repeatable(parse),
    }
}

fn chain<T: BuildPlugin + 'static>(t: T) -> Parsed {
    Parsed::Chain(Arc::new(t))
}

/// Every directive CoreDNS knows, in CoreDNS's execution order (`plugin.cfg`,
/// first runs first), with the parse function of those clusterdns ships.
pub const DIRECTIVES: &[Directive] = &[
    no(
        "root",
        "it only sets the directory of zone files, and clusterdns serves no zone files (`file`, `auto`)",
    ),
    no(
        "metadata",
        "no clusterdns plugin produces or reads request metadata",
    ),
    no(
        "geoip",
        "it needs a MaxMind database and feeds metadata, which nothing here reads",
    ),
    no(
        "cancel",
        "every query is already bounded (forward: 5 s per query, 2 s per exchange; the server never waits longer)",
    ),
    once("tls", |d| {
        tls::parse(d).map(|t| Parsed::App(PluginConfig::Tls(Box::new(t))))
    }),
    once("timeouts", |d| {
        timeouts::parse(d).map(|t| Parsed::App(PluginConfig::Timeouts(t)))
    }),
    no(
        "multisocket",
        "UDP already uses one SO_REUSEPORT socket per core",
    ),
    once("reload", |d| {
        reload::parse(d).map(|r| Parsed::App(PluginConfig::Reload(r)))
    }),
    once("nsid", |d| nsid::parse(d).map(chain)),
    once("bufsize", |d| bufsize::parse(d).map(chain)),
    once("bind", |d| {
        bind::parse(d).map(|b| Parsed::App(PluginConfig::Bind(b)))
    }),
    no(
        "debug",
        "a panicking query is caught and logged (SERVFAIL) whatever the setting; use RUST_LOG=debug for debug logs",
    ),
    no("trace", "no OpenTracing/OpenTelemetry exporter is built in"),
    once("ready", |d| {
        ready::parse(d).map(|r| Parsed::App(PluginConfig::Ready(r)))
    }),
    once("health", |d| {
        health::parse(d).map(|h| Parsed::App(PluginConfig::Health(h)))
    }),
    no(
        "pprof",
        "Go's profiler; profile clusterdns with perf (benches/profile)",
    ),
    once("prometheus", |d| {
        prometheus::parse(d).map(|p| Parsed::App(PluginConfig::Prometheus(p)))
    }),
    once("errors", |d| errors::parse(d).map(chain)),
    once("log", |d| log::parse(d).map(chain)),
    no(
        "dnstap",
        "no dnstap output is built in; the `log` plugin logs queries",
    ),
    once("local", |d| local::parse(d).map(chain)),
    once("dns64", |d| dns64::parse(d).map(chain)),
    many("acl", |d| acl::parse(d).map(chain)),
    once("any", |d| any::parse(d).map(|()| chain(any::Any))),
    once("chaos", |d| chaos::parse(d).map(chain)),
    once("loadbalance", |d| loadbalance::parse(d).map(chain)),
    no(
        "tsig",
        "no TSIG keys (no zone transfers or dynamic updates to sign)",
    ),
    once("cache", |d| cache::parse(d).map(chain)),
    many("rewrite", |d| {
        rewrite::parse(d).map(|r| chain(rewrite::RewriteConfig { rules: vec![r] }))
    }),
    once("header", |d| header::parse(d).map(chain)),
    no(
        "dnssec",
        "cluster zones are not signed (neither CoreDNS's kubernetes answers nor ours carry signatures)",
    ),
    once("autopath", |d| autopath::parse(d).map(chain)),
    once("minimal", |d| minimal::parse(d).map(chain)),
    many("template", |d| {
        template::parse(d).map(|t| chain(template::TemplateConfig { templates: vec![t] }))
    }),
    no("transfer", "no zone transfers (AXFR/IXFR are refused)"),
    once("hosts", |d| hosts::parse(d).map(chain)),
    no(
        "route53",
        "no cloud DNS backends; forward to the provider's resolver instead",
    ),
    no(
        "azure",
        "no cloud DNS backends; forward to the provider's resolver instead",
    ),
    no(
        "clouddns",
        "no cloud DNS backends; forward to the provider's resolver instead",
    ),
    once("k8s_external", |d| {
        crate::plugin::k8s_external::parse(d).map(chain)
    }),
    once("kubernetes", |d| {
        kubernetes::parse(d).map(|k| Parsed::App(PluginConfig::Kubernetes(Box::new(k))))
    }),
    no(
        "file",
        "no zone files are served; use `hosts` or `template` for a few static records",
    ),
    no(
        "auto",
        "no zone files are served; use `hosts` or `template` for a few static records",
    ),
    no("secondary", "no zone transfers, so no secondary zones"),
    no(
        "etcd",
        "no etcd backend; Kubernetes Services are the source of records",
    ),
    once("loop", |d| {
        loop_detect::parse(d).map(|()| chain(loop_detect::LoopConfig))
    }),
    once("forward", |d| forward::parse(d).map(chain)),
    no(
        "grpc",
        "no DNS-over-gRPC upstreams; use plain or tls:// `forward` upstreams",
    ),
    no(
        "erratic",
        "a fault-injection plugin for CoreDNS's own tests",
    ),
    once("whoami", |d| {
        whoami::parse(d).map(|()| chain(whoami::Whoami))
    }),
    no(
        "on",
        "no event hooks (it runs shell commands on startup and shutdown)",
    ),
    no(
        "sign",
        "zone files are not served, so there is nothing to sign",
    ),
    once("view", |d| {
        view::parse(d).map(|v| Parsed::App(PluginConfig::View(Box::new(v))))
    }),
    no("nomad", "no Nomad backend"),
];

/// The row for `name`, if CoreDNS has such a plugin.
pub fn directive(name: &str) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|d| d.name == name)
}

/// Position of a directive in CoreDNS's order, `None` if CoreDNS has no such plugin.
pub fn order_of(name: &str) -> Option<usize> {
    DIRECTIVES.iter().position(|d| d.name == name)
}

/// Whether `name` may be written several times in one server block.
pub fn repeatable(name: &str) -> bool {
    directive(name).is_some_and(|d| matches!(d.kind, Kind::Repeatable(_)))
}

/// The directives clusterdns ships (for `-plugins`), in execution order.
pub fn compiled_in() -> Vec<&'static str> {
    DIRECTIVES
        .iter()
        .filter(|d| d.parse_fn().is_some())
        .map(|d| d.name)
        .collect()
}

/// Parse one directive with the plugin named by it.
pub fn parse(d: &mut Dispenser<'_>) -> Result<PluginConfig, CorefileError> {
    let name = d.directive().name.text.as_str();
    let Some(entry) = directive(name) else {
        return Err(d.err(format!("unknown directive '{name}'")));
    };
    let parse = match entry.kind {
        Kind::Once(parse) | Kind::Repeatable(parse) => parse,
        Kind::NotShipped(why) => {
            return Err(d.err(format!(
                "plugin '{name}' is not supported by clusterdns: {why}"
            )));
        }
    };
    Ok(match parse(d)? {
        Parsed::App(p) => p,
        Parsed::Chain(config) => PluginConfig::Chain(ChainConfig {
            name: entry.name,
            config,
        }),
    })
}

/// Add a parsed directive to its block's list: a repeated directive (`rewrite`,
/// `template`) joins the first one of its name.
pub fn add(list: &mut Vec<PluginConfig>, cfg: PluginConfig) {
    if let PluginConfig::Chain(new) = &cfg
        && repeatable(new.name)
    {
        for existing in list.iter_mut() {
            if let PluginConfig::Chain(old) = existing
                && old.name == new.name
                && let Some(joined) = old.config.join(new.config.as_ref())
            {
                old.config = joined;
                return;
            }
        }
    }
    list.push(cfg);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    #[test]
    fn names_are_unique_and_the_order_is_coredns_plugin_cfg() {
        let names: HashSet<&str> = DIRECTIVES.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), DIRECTIVES.len());
        let pos = |n| order_of(n).expect(n);
        // A few relations CoreDNS's plugin.cfg fixes and behaviour depends on.
        assert!(pos("errors") < pos("log"));
        assert!(pos("cache") < pos("rewrite"));
        assert!(pos("rewrite") < pos("autopath"));
        assert!(pos("hosts") < pos("kubernetes"));
        assert!(pos("hosts") < pos("k8s_external"));
        assert!(pos("k8s_external") < pos("kubernetes"));
        assert!(pos("kubernetes") < pos("loop"));
        assert!(pos("loop") < pos("forward"));
        assert_eq!(order_of("frobnicate"), None);
    }

    #[test]
    fn only_acl_rewrite_and_template_repeat() {
        let rep: Vec<&str> = DIRECTIVES
            .iter()
            .filter(|d| repeatable(d.name))
            .map(|d| d.name)
            .collect();
        assert_eq!(rep, ["acl", "rewrite", "template"]);
    }

    fn parse_one(text: &str) -> Result<PluginConfig, CorefileError> {
        let src = format!(".:53 {{\n{text}\n}}\n");
        let cf = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
        parse(&mut Dispenser::new(&cf.blocks[0].directives[0]))
    }

    #[test]
    fn the_readme_lists_every_unshipped_plugin_with_its_reason() {
        let readme = include_str!("../../README.md");
        let listed = readme
            .lines()
            .skip_while(|l| !l.starts_with("| plugin not shipped | why |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .count();
        let rows = not_shipped();
        assert_eq!(
            listed,
            rows.len(),
            "README table and registry differ in length"
        );
        for (name, why) in rows {
            assert!(
                readme.contains(&format!("| {name} | {why} |")),
                "README lacks the row for '{name}': | {name} | {why} |"
            );
        }
    }

    #[test]
    fn unknown_and_unshipped_directives_are_refused_with_their_position() {
        assert_eq!(
            parse_one("etcd example.org").unwrap_err().to_string(),
            "Corefile:2:1: etcd: plugin 'etcd' is not supported by clusterdns: no etcd backend; \
             Kubernetes Services are the source of records"
        );
        assert_eq!(
            parse_one("frobnicate").unwrap_err().to_string(),
            "Corefile:2:1: frobnicate: unknown directive 'frobnicate'"
        );
    }

    #[test]
    fn a_parsed_directive_carries_its_table_name() {
        for (text, name) in [
            ("whoami", "whoami"),
            ("loop", "loop"),
            ("forward . 127.0.0.1", "forward"),
            ("health", "health"),
            ("timeouts {\nidle 1s\n}", "timeouts"),
            ("kubernetes cluster.local", "kubernetes"),
        ] {
            assert_eq!(parse_one(text).expect(text).name(), name);
        }
    }

    /// The chain sorts running plugins by `Plugin::name()`: it must be the row's name,
    /// or a plugin would silently run out of CoreDNS's order.
    #[tokio::test]
    async fn every_chain_directive_builds_a_plugin_named_as_its_row() {
        let families = crate::plugin::build::Families::new(::prometheus::Registry::new());
        let tc = crate::plugin::build::TestCtx::new(&families, &["."]);
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("hosts");
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
        std::fs::write(&resolv, "search default.svc.cluster.local\n").expect("resolv");
        let lines = [
            "nsid".to_string(),
            "bufsize".to_string(),
            "dns64".to_string(),
            "acl {\nblock net 10.0.0.0/8\n}".to_string(),
            "errors".to_string(),
            "log".to_string(),
            "local".to_string(),
            "any".to_string(),
            "chaos".to_string(),
            "loadbalance".to_string(),
            "cache".to_string(),
            "rewrite name a.example. b.example.".to_string(),
            "header {\nresponse set ra\n}".to_string(),
            format!("autopath {}", resolv.display()),
            "minimal".to_string(),
            "template IN A example.org".to_string(),
            format!("hosts {}", hosts.display()),
            "loop".to_string(),
            "forward . 127.0.0.1".to_string(),
            "whoami".to_string(),
        ];
        let mut built = HashSet::new();
        for line in &lines {
            let PluginConfig::Chain(c) = parse_one(line).expect(line) else {
                panic!("{line}: not a chain directive")
            };
            let plugin = c.build(&tc.ctx()).expect(line);
            assert_eq!(plugin.name(), c.name(), "{line}");
            built.insert(c.name());
        }
        tc.token.cancel();
        let app = [
            "reload",
            "timeouts",
            "tls",
            "view",
            "bind",
            "ready",
            "health",
            "prometheus",
            "kubernetes",
        ];
        // Built over a kubernetes plugin in its own tests (k8s_external_tests.rs).
        let needs_kubernetes = ["k8s_external"];
        let shipped: HashSet<&str> = compiled_in().into_iter().collect();
        let covered: HashSet<&str> = built
            .iter()
            .copied()
            .chain(app)
            .chain(needs_kubernetes)
            .collect();
        assert_eq!(shipped, covered, "a shipped directive is not covered here");
    }
}
