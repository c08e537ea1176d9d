//! `kubernetes`: authoritative answers for the cluster zones from the index.
//!
//! # Syntax (CoreDNS's, plus `manifests`)
//! ```text
//! kubernetes [ZONES...] {
//!     endpoint URL | kubeconfig PATH [CONTEXT] | tls CERT KEY CACERT
//!     apiserver_qps QPS            # client-side limits on API requests, see k8s::limit
//!     apiserver_burst BURST
//!     apiserver_max_inflight MAX
//!     manifests PATH...            # ours: read objects from YAML instead of an API server
//!     namespaces NAMESPACE...
//!     namespace_labels EXPRESSION
//!     labels EXPRESSION
//!     pods disabled|insecure|verified
//!     endpoint_pod_names
//!     ttl TTL
//!     noendpoints
//!     fallthrough [ZONES...]
//!     ignore empty_service
//!     startup_timeout DURATION
//!     multicluster ZONE...
//!     zonal
//! }
//! ```
//! Relative `manifests` paths are resolved from the Corefile's directory.
//!
//! The handler is thin, like CoreDNS's `handler.go`: pick the zone, ask the
//! index, then apply the rules that are about serving rather than data —
//! REFUSED for zone transfers, `fallthrough` for name errors, SERVFAIL (with
//! SOA) instead of NXDOMAIN while the index has not synced, and chasing an
//! ExternalName target that lies outside the cluster through the rest of the
//! chain.
//!
//! # multicluster ZONE...
//! The Multi-Cluster Services API (KEP-1645's DNS specification, as CoreDNS's
//! `multicluster` option serves it). Each ZONE must be one of the plugin's
//! zones (usually `clusterset.local`); only then are ServiceImports
//! (multicluster.x-k8s.io/v1alpha1) and the EndpointSlices labelled
//! `multicluster.kubernetes.io/service-name` watched. In such a zone:
//! - `svc.ns.svc.ZONE` A/AAAA: the `spec.ips` of a ClusterSetIP import, or the
//!   ready endpoints of every member cluster for a headless one (NXDOMAIN
//!   when it has none); SRV per port of the import (ClusterSetIP, target
//!   `svc.ns.svc.ZONE`) or of the slices (headless, targets below).
//! - `host.clusterid.svc.ns.svc.ZONE`: the endpoint named `host` (hostname,
//!   dashed IP, or pod name with `endpoint_pod_names`) of the slices whose
//!   `multicluster.kubernetes.io/source-cluster` label is `clusterid`.
//! - `_port._proto.svc.ns.svc.ZONE` SRV, as in the cluster zone.
//! - `host.svc.ns.svc.ZONE` (no cluster id) is NXDOMAIN, as in CoreDNS.
//! - No PTRs for clusterset IPs or imported endpoints (neither has CoreDNS;
//!   the specification waives them where the IP already has one).
//!
//! # zonal
//! CoreDNS 1.14.7's zone-scoped names for headless services (not in
//! multicluster zones; needs the endpoints, so not with `noendpoints`):
//! - `TOPO.pin._zone.svc.ns.svc.ZONE`: the ready endpoints whose EndpointSlice
//!   `zone` is TOPO (every label left of `pin`, joined with dots, compared
//!   case-insensitively); NODATA when none is there.
//! - `TOPO.prefer._zone.svc.ns.svc.ZONE`: the same, or every ready endpoint
//!   of the service when none is in TOPO.
//! - A/AAAA and SRV (targets and glue filtered alike) are answered; other
//!   types NODATA. A ClusterIP, ExternalName or unknown service, an unknown
//!   directive and the whole shape without `zonal` are NXDOMAIN.
//!
//! # Ready
//! Reports ready once Services and EndpointSlices (and Pods with `pods
//! verified`, Namespaces with `namespace_labels`, ServiceImports and imported
//! EndpointSlices with `multicluster`) have been listed completely at least once.
//!
//! # namespace_labels
//! Only namespaces whose labels match are exposed; every name in another
//! namespace (records, `NS.svc.ZONE`, PTRs of its services) is NXDOMAIN, with
//! either source. The index for such a directive is made by
//! [`ClusterIndex::namespace_filtered`](crate::index::ClusterIndex::namespace_filtered).

mod parse;

pub use parse::{KubernetesConfig, Source, check_multicluster_zones, parse};

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use crate::dns::{Answer, Query};
use crate::index::snapshot::SharedIndex;
use crate::index::{Kind, LookupOptions, LookupRequest, LookupResult, PodMode};
use crate::plugin::{Next, Plugin, Result};

/// The running plugin.
pub struct Kubernetes {
    /// Zones, lower-case, longest first.
    zones: Vec<Name>,
    /// `None`: no fallthrough; `Some(empty)`: all zones.
    fallthrough: Option<Vec<Name>>,
    opts: LookupOptions,
    /// `namespace_labels` is set: answers need the Namespace list too.
    namespace_labels: bool,
    /// Published by the index writer; read per query.
    index: Arc<SharedIndex>,
}

impl Kubernetes {
    /// Build the plugin for `zones` (the directive's, or the server block's).
    pub fn new(
        cfg: &KubernetesConfig,
        block_zones: &[Name],
        local_ips: Vec<IpAddr>,
        index: Arc<SharedIndex>,
    ) -> Self {
        let mut zones = if cfg.zones.is_empty() {
            block_zones.to_vec()
        } else {
            cfg.zones.clone()
        };
        zones.sort_by_key(|z| std::cmp::Reverse(z.num_labels()));
        let primary_zone = primary_zone(&zones);
        Self {
            zones,
            fallthrough: cfg.fallthrough.clone(),
            opts: LookupOptions {
                namespaces: cfg.namespaces.clone(),
                pods: cfg.pods,
                endpoint_pod_names: cfg.endpoint_pod_names,
                ttl: cfg.ttl,
                noendpoints: cfg.noendpoints,
                ignore_empty_service: cfg.ignore_empty_service,
                primary_zone,
                local_ips,
                multicluster_zones: cfg.multicluster.clone(),
                zonal: cfg.zonal,
            },
            namespace_labels: cfg.namespace_labels.is_some(),
            index,
        }
    }

    /// The plugin's zones, longest first (autopath builds the search path from them).
    pub fn zones(&self) -> &[Name] {
        &self.zones
    }

    /// Whether `pods verified` is set, i.e. Pods are watched and indexed by IP.
    pub fn pods_verified(&self) -> bool {
        self.opts.pods == PodMode::Verified
    }

    /// Namespaces a client at `ip` belongs to, from the current index
    /// snapshot: its Pods' with `pods verified`, else those of the Services
    /// whose EndpointSlices hold the address (no Pod watch needed; a client
    /// that backs no Service is unknown).
    pub fn client_namespaces(&self, ip: IpAddr) -> Vec<String> {
        let index = self.index.guard();
        let found = if self.pods_verified() {
            index.pod_namespaces(ip)
        } else {
            index.endpoint_namespaces(ip)
        };
        found.into_iter().map(str::to_string).collect()
    }

    /// The index it answers from (`k8s_external` answers from the same).
    pub fn index(&self) -> &Arc<SharedIndex> {
        &self.index
    }

    /// The options its answers follow (`k8s_external` shares `namespaces`,
    /// `endpoint_pod_names`, `noendpoints` and this server's addresses).
    pub fn lookup_options(&self) -> &LookupOptions {
        &self.opts
    }

    /// Whether every kind its answers need has been listed completely once.
    pub fn synced(&self) -> bool {
        let idx = self.index.load();
        idx.is_synced(Kind::Service)
            && (self.opts.noendpoints || idx.is_synced(Kind::EndpointSlice))
            && (self.opts.pods != PodMode::Verified || idx.is_synced(Kind::Pod))
            && (!self.namespace_labels || idx.is_synced(Kind::Namespace))
            && (self.opts.multicluster_zones.is_empty()
                || (idx.is_synced(Kind::ServiceImport)
                    && (self.opts.noendpoints || idx.is_synced(Kind::MultiClusterSlice))))
    }

    fn falls_through(&self, lower: &Name) -> bool {
        match &self.fallthrough {
            None => false,
            Some(zones) if zones.is_empty() => true,
            Some(zones) => zones.iter().any(|z| z.zone_of(lower)),
        }
    }
}

/// The first zone that is not a reverse zone (CoreDNS's primary zone), by the
/// order written; falls back to the first zone.
/// An index lookup (from the snapshot read at `generation`) as the plugin's
/// answer: authoritative, memoizable while the index stays at that
/// generation, and SERVFAIL instead of NXDOMAIN until the index has synced
/// (it cannot vouch for a name's absence yet). Shared by `kubernetes` and
/// `k8s_external`, which answer from the same index.
pub(crate) fn index_answer(res: LookupResult, generation: u64, synced: bool) -> Answer {
    let rcode = if res.rcode == ResponseCode::NXDomain && !synced {
        ResponseCode::ServFail
    } else {
        res.rcode
    };
    let mut answer = Answer::rcode(rcode);
    answer.authoritative = true;
    answer.answers = res.answers;
    answer.authority = res.authority;
    answer.additionals = res.additionals;
    answer.memo = Some(generation);
    answer
}

pub(crate) fn primary_zone(zones: &[Name]) -> Name {
    let is_reverse = |z: &Name| {
        let s = z.to_ascii();
        s.ends_with("in-addr.arpa.") || s.ends_with("ip6.arpa.")
    };
    zones
        .iter()
        .find(|z| !is_reverse(z))
        .or_else(|| zones.first())
        .cloned()
        .unwrap_or_else(Name::root)
}

#[async_trait::async_trait]
impl Plugin for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn ready(&self) -> Option<bool> {
        Some(self.synced())
    }

    fn memo_generation(&self) -> Option<u64> {
        Some(self.index.generation())
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let Some(zone) = self.zones.iter().find(|z| z.zone_of(&q.lower)) else {
            return next.serve(q).await;
        };
        if matches!(q.qtype, RecordType::AXFR | RecordType::IXFR) {
            return Ok(Answer::rcode(ResponseCode::Refused));
        }
        // Read before the snapshot: see SharedIndex::generation.
        let generation = self.index.generation();
        // The snapshot guard is dropped before any await below.
        let mut res = self.index.guard().lookup(
            &self.opts,
            &LookupRequest {
                qname: &q.name,
                zone,
                qtype: q.qtype,
            },
        );
        if res.rcode == ResponseCode::NXDomain && self.falls_through(&q.lower) && !next.is_empty() {
            return next.serve(q).await;
        }
        let chase = res.chase.take();
        // Everything in it came from the query and this snapshot; an
        // ExternalName chased upstream below does not.
        let mut answer = index_answer(res, generation, self.synced());
        if let Some(target) = chase
            && !next.is_empty()
        {
            // The ExternalName target is outside our zones: ask the rest of the
            // chain (forward, once configured) and append what it knows.
            let mut sub = q.clone();
            sub.lower = target.to_lowercase();
            sub.name = target;
            answer.memo = None;
            if let Ok(upstream) = next.serve(&sub).await {
                answer.answers.extend(upstream.answers);
                answer.truncated |= upstream.truncated;
            }
        }
        Ok(answer)
    }
}
