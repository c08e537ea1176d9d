//! PTR answers for ClusterIPs and endpoint IPs (CoreDNS `reverse.go`).
//!
//! ClusterIP owners win; otherwise every service whose ready endpoints hold
//! the address gets one PTR (`<endpoint>.<svc>.<ns>.svc.<primary zone>`).
//! Targets are built in the primary zone, lower-case. Owners in a namespace
//! that is not exposed (the `namespaces` option, or `namespace_labels` not
//! matching) are skipped; a target is given only for a service that exists
//! (so every PTR target resolves forward). A partial reverse name
//! (`0.10.in-addr.arpa.`) is NXDOMAIN, as in CoreDNS, so `fallthrough` can
//! pass it on.

use std::net::IpAddr;

use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::LookupResult;
use super::lookup::{Query, endpoint_label};
use super::model::ServiceKind;
use super::name;

impl Query<'_> {
    /// A name under `in-addr.arpa.` or `ip6.arpa.` below the plugin zone.
    pub(super) fn reverse(&self) -> LookupResult {
        let Some(ip) = name::parse_reverse(self.qname) else {
            return self.nxdomain();
        };
        let targets = self.ptr_targets(ip);
        if targets.is_empty() {
            return self.nxdomain();
        }
        match self.qtype {
            RecordType::PTR | RecordType::ANY => {
                let ttl = self.opts.ttl;
                let answers = targets
                    .into_iter()
                    .map(|t| Record::from_rdata(self.qname.clone(), ttl, RData::PTR(PTR(t))))
                    .collect();
                self.positive(answers, Vec::new())
            }
            _ => self.nodata(),
        }
    }

    fn ns_allowed(&self, ns: &str) -> bool {
        self.opts
            .namespaces
            .as_ref()
            .is_none_or(|set| set.contains(ns))
            && self.idx.namespace_exists(ns)
    }

    fn ptr_targets(&self, ip: IpAddr) -> Vec<Name> {
        let zone = &self.opts.primary_zone;
        let mut out: Vec<Name> = Vec::new();
        for key in self.idx.cluster_ips.owners(ip) {
            let Some((ns, svc)) = key.split_once('/') else {
                continue;
            };
            let is_cluster_ip = self
                .idx
                .services
                .get(key)
                .is_some_and(|s| matches!(s.kind, ServiceKind::ClusterIp(_)));
            if is_cluster_ip && self.ns_allowed(ns) {
                out.extend(Self::join(&[svc.as_bytes(), ns.as_bytes(), b"svc"], zone));
            }
        }
        if !out.is_empty() || self.opts.noendpoints {
            return out;
        }
        for key in self.idx.endpoint_ips.owners(ip) {
            let Some((ns, svc)) = key.split_once('/') else {
                continue;
            };
            let exists = self
                .idx
                .services
                .get(key)
                .is_some_and(|s| !matches!(s.kind, ServiceKind::ExternalName(_)));
            if !exists || !self.ns_allowed(ns) {
                continue;
            }
            let Some(eps) = self.idx.endpoints.get(key) else {
                continue;
            };
            for (a, _) in eps.addrs().filter(|(a, _)| a.ip == ip) {
                let Some(label) = endpoint_label(&a, self.opts.endpoint_pod_names) else {
                    continue;
                };
                let Some(target) = Self::join(
                    &[label.as_bytes(), svc.as_bytes(), ns.as_bytes(), b"svc"],
                    zone,
                ) else {
                    continue;
                };
                if !out.contains(&target) {
                    out.push(target);
                }
            }
        }
        out
    }
}
