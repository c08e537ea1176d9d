//! `k8s_external`: Services' external addresses (LoadBalancer ingress IPs and
//! `spec.externalIPs`) under an external zone, answered from the kubernetes
//! plugin's own index (CoreDNS's `k8s_external`).
//!
//! # Syntax (CoreDNS's)
//! ```text
//! k8s_external [ZONE...] {
//!     apex APEX                # label of the name server records, default dns
//!     ttl TTL                  # 0–3600, default 5
//!     headless                 # headless Services answer their endpoints
//!     fallthrough [ZONE...]    # NXDOMAIN goes on down the chain
//! }
//! ```
//! Without zones, the server block's. Any other property is a startup error
//! at its file:line. It needs a `kubernetes` directive in the same server
//! block (CoreDNS: "kubernetes plugin not loaded"), whose `namespaces`,
//! `endpoint_pod_names` and `noendpoints` it follows.
//!
//! # Answers
//! With `k8s_external example.org`: `svc.ns.example.org` A/AAAA (the external
//! addresses), SRV for its ports (`_port._proto.svc.ns.example.org` too);
//! `example.org` SOA and NS `ns1.dns.example.org`, whose A/AAAA are the
//! external addresses of the Service this server backs (or its own
//! addresses); PTR for external addresses when a reverse zone
//! (`in-addr.arpa`, `ip6.arpa`) is among its zones; with `headless`,
//! `svc.ns.example.org` of a headless Service without external addresses
//! answers its ready endpoints and `endpoint.svc.ns.example.org` one of them.
//! The naming and NXDOMAIN/NODATA rules are [`ClusterIndex::external`]'s.
//! As the kubernetes plugin: authoritative, REFUSED for zone transfers,
//! SERVFAIL instead of NXDOMAIN until the index has synced. Only
//! LoadBalancer ingress IPs are answered; an ingress `hostname` (a CNAME in
//! CoreDNS) is not kept.
//!
//! [`ClusterIndex::external`]: crate::index::ClusterIndex::external

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::index::{ExternalOptions, LookupRequest};
use crate::plugin::build::BuildCtx;
use crate::plugin::kubernetes::{Kubernetes, index_answer, primary_zone};
use crate::plugin::template::zone_arg;
use crate::plugin::{Next, Plugin, Result};

/// CoreDNS's default `apex` label.
const DEFAULT_APEX: &str = "dns";
/// CoreDNS's default TTL.
const DEFAULT_TTL: u32 = 5;

/// The validated directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sExternalConfig {
    /// ZONE...; empty means the server block's zones.
    pub zones: Vec<Name>,
    /// `apex` (a DNS label, lower-case).
    pub apex: String,
    /// `ttl`.
    pub ttl: u32,
    /// `headless`.
    pub headless: bool,
    /// `fallthrough [ZONES]`: `None` off, `Some(empty)` every zone.
    pub fallthrough: Option<Vec<Name>>,
    /// Where it was written (`file:line:col`), for errors at build.
    pub at: String,
}

/// Parse `k8s_external [ZONE...] { ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<K8sExternalConfig, CorefileError> {
    let zones = d
        .remaining()
        .iter()
        .map(|t| zone_arg(d, t))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let p = &d.directive().name.pos;
    let mut cfg = K8sExternalConfig {
        zones,
        apex: DEFAULT_APEX.to_string(),
        ttl: DEFAULT_TTL,
        headless: false,
        fallthrough: None,
        at: format!("{}:{}:{}", p.file.display(), p.line, p.col),
    };
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "apex" => {
                let t = sd.expect_arg("APEX")?;
                sd.expect_end()?;
                let label = t.text.to_ascii_lowercase();
                if !is_label(&label) {
                    return Err(sd.err_at(
                        t,
                        format!(
                            "'{}' is not a DNS label (letters, digits, '-', '_'; at most 63)",
                            t.text
                        ),
                    ));
                }
                cfg.apex = label;
            }
            "ttl" => {
                cfg.ttl = sd.expect_arg("TTL")?.parse_u32(&d.what("ttl"), 0..=3600)?;
                sd.expect_end()?;
            }
            "headless" => {
                sd.expect_end()?;
                cfg.headless = true;
            }
            "fallthrough" => {
                let zones = sd.remaining().iter().map(|t| zone_arg(&sd, t));
                cfg.fallthrough = Some(zones.collect::<std::result::Result<_, _>>()?);
            }
            _ => return Err(d.unknown_property(line)),
        }
    }
    Ok(cfg)
}

/// One DNS label of the characters a host name (or service label) uses.
fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The running plugin.
pub struct K8sExternal {
    /// Zones, lower-case, longest first.
    zones: Vec<Name>,
    /// `None`: no fallthrough; `Some(empty)`: all zones.
    fallthrough: Option<Vec<Name>>,
    opts: ExternalOptions,
    /// The block's kubernetes plugin: its index, options and sync state.
    kubernetes: Arc<Kubernetes>,
}

impl K8sExternal {
    /// Build the plugin over the block's kubernetes plugin.
    pub fn new(cfg: &K8sExternalConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let Some(k) = ctx.kubernetes else {
            anyhow::bail!(
                "{}: k8s_external: needs the kubernetes plugin in the same server block",
                cfg.at
            );
        };
        Ok(Self::over(cfg, ctx.zones, k.clone()))
    }

    /// The plugin for `cfg` (zones defaulting to `block_zones`) over `kubernetes`.
    pub fn over(
        cfg: &K8sExternalConfig,
        block_zones: &[Name],
        kubernetes: Arc<Kubernetes>,
    ) -> Self {
        let written = if cfg.zones.is_empty() {
            block_zones.to_vec()
        } else {
            cfg.zones.clone()
        };
        // CoreDNS builds PTR targets in the first zone written; a reverse
        // zone there would make targets no one can resolve.
        let ptr_zone = primary_zone(&written);
        let opts = ExternalOptions::new(
            kubernetes.lookup_options(),
            cfg.ttl,
            &cfg.apex,
            cfg.headless,
            ptr_zone,
        );
        let mut zones = written;
        zones.sort_by_key(|z| std::cmp::Reverse(z.num_labels()));
        Self {
            zones,
            fallthrough: cfg.fallthrough.clone(),
            opts,
            kubernetes,
        }
    }

    /// NXDOMAIN may fall through: the option covers the name, and the name
    /// is not the zone's apex or under its `APEX` label (CoreDNS answers
    /// those itself).
    fn falls_through(&self, zone: &Name, lower: &Name) -> bool {
        let covered = match &self.fallthrough {
            None => false,
            Some(zones) if zones.is_empty() => true,
            Some(zones) => zones.iter().any(|z| z.zone_of(lower)),
        };
        let apex_area = lower == zone
            || Name::from_labels([self.opts.apex().as_bytes()])
                .and_then(|l| l.append_name(zone))
                .is_ok_and(|apex| apex.zone_of(lower));
        covered && !apex_area
    }
}

#[async_trait::async_trait]
impl Plugin for K8sExternal {
    fn name(&self) -> &'static str {
        "k8s_external"
    }

    fn memo_generation(&self) -> Option<u64> {
        Some(self.kubernetes.index().generation())
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let Some(zone) = self.zones.iter().find(|z| z.zone_of(&q.lower)) else {
            return next.serve(q).await;
        };
        if matches!(q.qtype, RecordType::AXFR | RecordType::IXFR) {
            return Ok(Answer::rcode(ResponseCode::Refused));
        }
        let index = self.kubernetes.index();
        // Read before the snapshot: see SharedIndex::generation.
        let generation = index.generation();
        // The snapshot guard is dropped before any await below.
        let res = index.guard().external(
            &self.opts,
            &LookupRequest {
                qname: &q.name,
                zone,
                qtype: q.qtype,
            },
        );
        if res.rcode == ResponseCode::NXDomain
            && self.falls_through(zone, &q.lower)
            && !next.is_empty()
        {
            return next.serve(q).await;
        }
        Ok(index_answer(res, generation, self.kubernetes.synced()))
    }
}

crate::plugin::build::build_plugin!(K8sExternalConfig, |config, ctx| K8sExternal::new(
    config, ctx
)?);

#[cfg(test)]
#[path = "k8s_external_tests.rs"]
mod tests;
