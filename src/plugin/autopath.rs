//! `autopath`: walks a pod's DNS search path inside the server, so an `ndots:5` lookup
//! costs the client one round trip instead of up to six.
//!
//! # Description
//! As CoreDNS's *autopath*: when a query name lies under the first element of the
//! client's search path (`<ns>.svc.<zone>` for a pod), the base name the client asked
//! for is tried with every search element in turn, then bare; the first answer that is
//! not NXDOMAIN is returned with a CNAME from the queried name to the found name
//! prepended (unless the found records already carry the queried name). When every try
//! fails, the first try's reply is returned and the client goes on searching.
//! Invariant: autopath never changes an answer for a name the client did not ask; it
//! only shortcuts the search the client would do next.
//!
//! With `@kubernetes` the search path is the pod's: the client IP is mapped to its
//! pod's namespace. With `pods verified` that is the kubernetes plugin's pod index, as
//! in CoreDNS. **Beyond CoreDNS**, which refuses `@kubernetes` without `pods verified`:
//! otherwise the namespace is learned from the EndpointSlices already watched (the
//! namespaces of the Services whose endpoints hold the client's address), so autopath
//! works without watching every pod in the cluster. A client that backs no Service
//! (or is not a known pod) gets no autopath: its answers are the plain ones.
//! Unlike CoreDNS, the search domains of this server's own `/etc/resolv.conf` are not
//! appended to the pod's path.
//!
//! # Syntax
//! ```text
//! autopath [ZONE...] RESOLV-CONF
//! ```
//! RESOLV-CONF is `@kubernetes` or a resolv.conf-style file whose `search` line is the path.
//!
//! # Examples
//! ```text
//! autopath @kubernetes
//! ```
//!
//! # Metrics
//! `coredns_autopath_success_total{server}`: queries answered from the search path.

use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record};
use prometheus::{IntCounterVec, Opts, Registry};

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::build::{BuildCtx, Family};
use crate::plugin::kubernetes::Kubernetes;
use crate::plugin::template::zone_arg;
use crate::plugin::{Next, Plugin, PluginError, Result};

/// Where the search path comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolv {
    /// `@PLUGIN` (only `@kubernetes` can give one).
    Plugin(String),
    /// A resolv.conf-style file.
    File(PathBuf),
}

/// The validated directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutopathConfig {
    /// ZONE...; empty means the server block's zones.
    pub zones: Vec<Name>,
    /// RESOLV-CONF.
    pub resolv: Resolv,
    /// Where it was written (`file:line:col`).
    pub at: String,
}

/// Parse `autopath [ZONE...] RESOLV-CONF`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<AutopathConfig, CorefileError> {
    d.expect_no_block()?;
    let args = d.remaining();
    let Some((last, zones)) = args.split_last() else {
        return Err(d.err("missing argument: RESOLV-CONF (e.g. @kubernetes)"));
    };
    let resolv = match last.text.strip_prefix('@') {
        Some("") => return Err(d.err_at(last, "missing plugin name after '@'")),
        Some(p) => Resolv::Plugin(p.to_string()),
        None => Resolv::File(PathBuf::from(&last.text)),
    };
    let zones = zones
        .iter()
        .map(|t| zone_arg(d, t))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let p = &d.directive().name.pos;
    Ok(AutopathConfig {
        zones,
        resolv,
        at: format!("{}:{}:{}", p.file.display(), p.line, p.col),
    })
}

/// The autopath metric handles.
#[derive(Clone)]
pub struct AutopathMetrics {
    success: IntCounterVec,
}

impl Family for AutopathMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let success = IntCounterVec::new(
            Opts::new(
                "coredns_autopath_success_total",
                "Counter of requests that did autopath.",
            ),
            &["server"],
        )?;
        r.register(Box::new(success.clone()))?;
        Ok(Self { success })
    }
}

enum Source {
    Kubernetes(Arc<Kubernetes>),
    Static(Vec<Name>),
}

/// The running plugin.
pub struct Autopath {
    zones: Vec<Name>,
    source: Source,
    server: String,
    metrics: AutopathMetrics,
}

impl Autopath {
    /// Build the plugin: `@kubernetes` needs the block's kubernetes plugin.
    pub fn new(cfg: &AutopathConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let at = &cfg.at;
        let source = match &cfg.resolv {
            Resolv::Plugin(p) if p == "kubernetes" => {
                let Some(k) = ctx.kubernetes else {
                    anyhow::bail!(
                        "{at}: autopath: @kubernetes needs a kubernetes plugin in the same server block"
                    );
                };
                if !k.pods_verified() {
                    tracing::info!(
                        "{at}: autopath: without 'pods verified', client namespaces are learned \
                         from EndpointSlice addresses; clients that back no Service get plain answers"
                    );
                }
                Source::Kubernetes(k.clone())
            }
            Resolv::Plugin(p) => {
                anyhow::bail!(
                    "{at}: autopath: plugin '{p}' cannot give a search path (only @kubernetes)"
                )
            }
            Resolv::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("{at}: autopath: failed to read {}: {e}", path.display())
                })?;
                Source::Static(
                    search_of(&text).map_err(|e| anyhow::anyhow!("{at}: autopath: {e}"))?,
                )
            }
        };
        Ok(Self {
            zones: if cfg.zones.is_empty() {
                ctx.zones.to_vec()
            } else {
                cfg.zones.clone()
            },
            source,
            server: ctx.server.to_string(),
            metrics: ctx.families.get::<AutopathMetrics>()?,
        })
    }
}

/// The search list of a resolv.conf (its last `search` or `domain` line).
fn search_of(text: &str) -> std::result::Result<Vec<Name>, String> {
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("search") | Some("domain") => {
                search = words
                    .map(|w| {
                        let mut n = Name::from_ascii(w)
                            .map_err(|e| format!("bad search domain '{w}': {e}"))?;
                        n.set_fqdn(true);
                        Ok(n.to_lowercase())
                    })
                    .collect::<std::result::Result<_, String>>()?;
            }
            _ => {}
        }
    }
    Ok(search)
}

/// CoreDNS's `Kubernetes.AutoPath`: `<ns>.svc.<zone>`, `svc.<zone>`, `<zone>` for a query
/// in one of the plugin's zones from a known pod; `None` otherwise.
fn kubernetes_search(k: &Kubernetes, q: &Query) -> Option<Vec<Name>> {
    let zone = k.zones().iter().find(|z| z.zone_of(&q.lower))?;
    let namespaces = k.client_namespaces(q.src.ip());
    let svc = Name::from_ascii("svc").ok()?.append_domain(zone).ok()?;
    let in_ns = |ns: &str| Name::from_ascii(ns).ok()?.append_domain(&svc).ok();
    // One IP, several pods (host network): prefer the namespace the query is in.
    let first = namespaces
        .iter()
        .filter_map(|ns| in_ns(ns))
        .find(|n| n.zone_of(&q.lower))
        .or_else(|| namespaces.first().and_then(|ns| in_ns(ns)))?;
    Some(vec![first, svc, zone.clone()])
}

/// Prepend `original CNAME <owner of the first other record>` (CoreDNS's `cnamer`).
fn cnamer(answer: &mut Answer, original: &Name) {
    let Some((target, ttl)) = answer
        .answers
        .iter()
        .find(|rr| rr.name != *original)
        .map(|rr| (rr.name.clone(), rr.ttl))
    else {
        return;
    };
    let cname = Record::from_rdata(original.clone(), ttl, RData::CNAME(CNAME(target)));
    answer.answers.insert(0, cname);
}

/// Whether a reply stops the walk: CoreDNS goes on after NXDOMAIN and after rcodes
/// that mean "nothing written" (SERVFAIL, REFUSED, FORMERR, NOTIMP).
fn found(rcode: ResponseCode) -> bool {
    !matches!(
        rcode,
        ResponseCode::NXDomain
            | ResponseCode::ServFail
            | ResponseCode::Refused
            | ResponseCode::FormErr
            | ResponseCode::NotImp
    )
}

#[async_trait::async_trait]
impl Plugin for Autopath {
    fn name(&self) -> &'static str {
        "autopath"
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        if !self.zones.iter().any(|z| z.zone_of(&q.lower)) {
            return next.serve(q).await;
        }
        let search = match &self.source {
            Source::Kubernetes(k) => kubernetes_search(k, q),
            Source::Static(s) => Some(s.clone()),
        };
        let Some(first) = search.as_ref().and_then(|s| s.first()) else {
            return next.serve(q).await;
        };
        if !first.zone_of(&q.lower) || q.lower.num_labels() == first.num_labels() {
            return next.serve(q).await;
        }
        // The name the client asked for, before its resolver appended `first`.
        let keep = usize::from(q.name.num_labels() - first.num_labels());
        let Ok(base) = Name::from_labels(q.name.iter().take(keep)) else {
            return next.serve(q).await;
        };
        let candidates = search
            .iter()
            .flatten()
            .filter_map(|s| base.clone().append_domain(s).ok())
            .chain(std::iter::once(base.clone()));
        let mut first_reply: Option<Result<Answer>> = None;
        for name in candidates {
            let mut sub = q.clone();
            sub.lower = name.to_lowercase();
            sub.name = name;
            let reply = next.serve(&sub).await;
            match reply {
                Err(PluginError::NoNextPlugin) => return reply,
                Ok(mut answer) if found(answer.rcode) => {
                    cnamer(&mut answer, &q.name);
                    self.metrics
                        .success
                        .with_label_values(&[&self.server])
                        .inc();
                    return Ok(answer);
                }
                other => {
                    if first_reply.is_none() {
                        first_reply = Some(other);
                    }
                }
            }
        }
        match first_reply {
            Some(reply) => reply,
            None => next.serve(q).await,
        }
    }
}

crate::plugin::build::build_plugin!(AutopathConfig, |config, ctx| Autopath::new(config, ctx)?);

#[cfg(test)]
#[path = "autopath_tests.rs"]
mod tests;
