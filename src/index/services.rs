//! Service, endpoint, SRV, pod and ExternalName answers.
//!
//! Invariant: the same candidate list CoreDNS builds (one entry per address ×
//! matching port, its "no ports" sentinel included) decides both existence
//! and SRV weights, so `weight = max(1, floor(100 / entries))` matches CoreDNS
//! exactly (dual-stack ClusterIP: 50; six endpoints: 16).

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::PodMode;
use super::lookup::{Entry, Query, addr_record, endpoint_label};
use super::model::{Port, ServiceKind};
use super::name::{self, StackStr};
use super::store::EndpointSet;
use super::store::ServiceEntry;
use super::{LookupRequest, LookupResult};

/// CNAME chain length after which internal resolution stops (CoreDNS: 8).
const MAX_CNAME_DEPTH: u8 = 8;

impl Query<'_> {
    /// `<service>.<ns>.svc.<zone>`.
    pub(super) fn service(&self, ns: &[u8], service: &[u8]) -> LookupResult {
        let Some((svc, key)) = self.find_service(ns, service) else {
            return self.nxdomain();
        };
        let eps = self.endpoints(&key);
        let ready = eps.map_or(0, |e| e.ready);
        match &svc.kind {
            ServiceKind::ExternalName(target) => self.external(target),
            ServiceKind::ClusterIp(ips) => {
                if self.opts.ignore_empty_service && ready == 0 {
                    return self.nxdomain();
                }
                match self.qtype {
                    RecordType::SRV => self.srv_answer(svc, &cluster_entries(svc, ips, b"", b"")),
                    _ => self.positive(
                        self.addr_records(self.qname, ips.iter().copied()),
                        Vec::new(),
                    ),
                }
            }
            ServiceKind::Headless => {
                let Some(eps) = eps.filter(|_| ready > 0) else {
                    return self.nxdomain();
                };
                match self.qtype {
                    RecordType::SRV => {
                        self.srv_answer(svc, &endpoint_entries(eps, |_| true, b"", b""))
                    }
                    _ => self.positive(
                        self.addr_records(self.qname, eps.addrs().map(|(a, _)| a.ip)),
                        Vec::new(),
                    ),
                }
            }
        }
    }

    /// `<endpoint>.<service>.<ns>.svc.<zone>`: by hostname, pod name or dashed IP,
    /// under headless and ClusterIP services alike. In a multicluster zone
    /// (`<endpoint>.<cluster>.<service>...`) only the endpoints of the member
    /// cluster `cluster` match.
    pub(super) fn endpoint(
        &self,
        ns: &[u8],
        service: &[u8],
        endpoint: &[u8],
        cluster: Option<&[u8]>,
    ) -> LookupResult {
        let Some((svc, key)) = self.find_service(ns, service) else {
            return self.nxdomain();
        };
        let Some(label) = StackStr::lower(endpoint) else {
            return self.nxdomain();
        };
        let Some(eps) = self.endpoints(&key) else {
            return self.nxdomain();
        };
        if matches!(svc.kind, ServiceKind::ExternalName(_)) {
            return self.nxdomain();
        }
        let label_ip = name::endpoint_label_ip(label.as_str());
        let pod_names = self.opts.endpoint_pod_names;
        let is_it = |a: &super::store::Addr<'_>| {
            cluster.is_none_or(|c| name::eq(c, a.cluster))
                && match (a.hostname, a.pod_name) {
                    (Some(h), _) => h == label.as_str(),
                    (None, Some(p)) if pod_names => p == label.as_str(),
                    _ => label_ip == Some(a.ip),
                }
        };
        let entries = endpoint_entries(eps, is_it, b"", b"");
        if entries.is_empty() {
            return self.nxdomain();
        }
        match self.qtype {
            RecordType::SRV => self.srv_answer(svc, &entries),
            _ => self.positive(
                self.addr_records(self.qname, entries.iter().map(|e| e.ip)),
                Vec::new(),
            ),
        }
    }

    /// `<topo>.pin|prefer._zone.<service>.<ns>.svc.<zone>` (`zonal`; CoreDNS
    /// 1.14.7's zone-scoped names). Only a headless service has them: any
    /// other or unknown service is NXDOMAIN. The name of a headless service
    /// always exists, so an empty selection is NODATA: `pin` answers the ready
    /// endpoints whose `zone` is `topo` (compared case-insensitively),
    /// `prefer` those or, when there are none, every ready endpoint. A/AAAA
    /// and SRV (with glue) are answered from the selection; other types NODATA.
    pub(super) fn zonal(
        &self,
        ns: &[u8],
        service: &[u8],
        topo: Option<StackStr>,
        prefer: bool,
    ) -> LookupResult {
        let Some((svc, key)) = self.find_service(ns, service) else {
            return self.nxdomain();
        };
        if svc.kind != ServiceKind::Headless {
            return self.nxdomain();
        }
        let in_zone = |a: &super::store::Addr<'_>| {
            topo.as_ref()
                .zip(a.zone)
                .is_some_and(|(t, z)| z.eq_ignore_ascii_case(t.as_str()))
        };
        let mut entries = match self.endpoints(&key) {
            Some(eps) => endpoint_entries(eps, in_zone, b"", b""),
            None => Vec::new(),
        };
        if entries.is_empty()
            && prefer
            && let Some(eps) = self.endpoints(&key)
        {
            entries = endpoint_entries(eps, |_| true, b"", b"");
        }
        match self.qtype {
            RecordType::SRV => self.srv_answer(svc, &entries),
            _ => self.positive(
                self.addr_records(self.qname, entries.iter().map(|e| e.ip)),
                Vec::new(),
            ),
        }
    }

    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`: the name exists when a
    /// port matches; only SRV (and ANY) have data there. An ExternalName
    /// service has no ports, so nothing exists below it (NXDOMAIN).
    pub(super) fn srv(&self, ns: &[u8], service: &[u8], port: &[u8], proto: &[u8]) -> LookupResult {
        let Some((svc, key)) = self.find_service(ns, service) else {
            return self.nxdomain();
        };
        let eps = self.endpoints(&key);
        let ready = eps.map_or(0, |e| e.ready);
        let entries = match &svc.kind {
            ServiceKind::ExternalName(_) => Vec::new(),
            ServiceKind::ClusterIp(_) if self.opts.ignore_empty_service && ready == 0 => Vec::new(),
            ServiceKind::ClusterIp(ips) => cluster_entries(svc, ips, port, proto),
            ServiceKind::Headless => match eps {
                Some(eps) => endpoint_entries(eps, |_| true, port, proto),
                None => Vec::new(),
            },
        };
        if entries.is_empty() {
            return self.nxdomain();
        }
        match self.qtype {
            RecordType::SRV | RecordType::ANY => self.srv_answer(svc, &entries),
            _ => self.nodata(),
        }
    }

    /// SRV records for `entries`, with A/AAAA glue for every target.
    fn srv_answer(&self, svc: &ServiceEntry, entries: &[Entry<'_>]) -> LookupResult {
        let zone = self.zone_spelled();
        let Some(base) = Self::join(
            &[svc.name().as_bytes(), svc.namespace().as_bytes(), b"svc"],
            zone,
        ) else {
            return self.nodata();
        };
        let (answers, glue) = self.srv_records(&base, entries);
        self.positive(answers, glue)
    }

    /// SRV records for `entries` and the A/AAAA glue of their targets: `base`
    /// for an entry without an endpoint, `<endpoint label>.<base>` otherwise.
    pub(super) fn srv_records(
        &self,
        base: &Name,
        entries: &[Entry<'_>],
    ) -> (Vec<Record>, Vec<Record>) {
        // CoreDNS: every entry weighs 100; weight = 100 * 100 / total, floored, at least 1.
        let weight = u16::try_from(100 / entries.len().max(1))
            .unwrap_or(1)
            .max(1);
        let ttl = self.opts.ttl;
        let (mut answers, mut glue) = (Vec::new(), Vec::new());
        let (mut seen_srv, mut seen_glue) = (HashSet::new(), HashSet::new());
        for e in entries {
            let Some(port) = e.port else { continue };
            let target = match e.ep {
                None => base.clone(),
                // A multicluster endpoint is `<endpoint>.<cluster>.<service>...`.
                Some(a) => match endpoint_label(&a, self.opts.endpoint_pod_names).and_then(|l| {
                    if a.cluster.is_empty() {
                        Self::join(&[l.as_bytes()], base)
                    } else {
                        Self::join(&[l.as_bytes(), a.cluster.as_bytes()], base)
                    }
                }) {
                    Some(t) => t,
                    None => continue,
                },
            };
            if seen_srv.insert((target.clone(), port.port)) {
                let srv = SRV::new(0, weight, port.port, target.clone());
                answers.push(Record::from_rdata(self.qname.clone(), ttl, RData::SRV(srv)));
            }
            if seen_glue.insert((target.clone(), e.ip)) {
                glue.push(addr_record(target, ttl, e.ip));
            }
        }
        (answers, glue)
    }

    /// `<dashed-ip>.<ns>.pod.<zone>` per the `pods` mode.
    pub(super) fn pod(&self, ns: &[u8], pod: &[u8]) -> LookupResult {
        if self.opts.pods == PodMode::Disabled {
            return self.nxdomain();
        }
        let Some(ns) = self.exposed_ns(ns) else {
            return self.nxdomain();
        };
        let Some(ip) = name::pod_label_ip(pod) else {
            return self.nxdomain();
        };
        if self.opts.pods == PodMode::Verified {
            let known = self.idx.pod_ips.owners(ip).any(|n| n == ns.as_str());
            if !known {
                return self.nxdomain();
            }
        }
        self.positive(
            self.addr_records(self.qname, std::iter::once(ip)),
            Vec::new(),
        )
    }

    /// An ExternalName service: a CNAME for every type but SRV (CoreDNS leaves
    /// SRV unimplemented: NODATA). For address and other data types a target
    /// inside the primary zone is resolved here and appended; a target outside
    /// is left to the plugin through `chase`.
    fn external(&self, target: &str) -> LookupResult {
        let Ok(mut target) = Name::from_ascii(target) else {
            return self.nodata();
        };
        target.set_fqdn(true);
        let cname = Record::from_rdata(
            self.qname.clone(),
            self.opts.ttl,
            RData::CNAME(CNAME(target.clone())),
        );
        match self.qtype {
            RecordType::SRV => self.nodata(),
            RecordType::CNAME | RecordType::ANY => self.positive(vec![cname], Vec::new()),
            // `x CNAME x` is a loop: CoreDNS drops it, leaving NODATA.
            _ if target == *self.qname => self.nodata(),
            _ if self.opts.primary_zone.zone_of(&target) => {
                if self.depth + 1 >= MAX_CNAME_DEPTH {
                    return self.positive(vec![cname], Vec::new());
                }
                let req = LookupRequest {
                    qname: &target,
                    zone: &self.opts.primary_zone,
                    qtype: self.qtype,
                };
                let sub = Query::new(self.idx, self.opts, &req, self.depth + 1).run();
                let mut answers = vec![cname];
                answers.extend(sub.answers);
                LookupResult { answers, ..sub }
            }
            _ => {
                let mut result = self.positive(vec![cname], Vec::new());
                result.chase = Some(target);
                result
            }
        }
    }
}

/// Port name and protocol matching: an empty query part matches anything; a
/// named query part never matches an unnamed port.
fn port_matches(p: &Port, port: &[u8], proto: &[u8]) -> bool {
    (port.is_empty() || name::eq(port, &p.name))
        && (proto.is_empty() || name::eq(proto, p.protocol.as_str()))
}

/// The ports of a list that match, or CoreDNS's sentinel (`None`) for a list
/// without ports, which only a bare query (no port, no protocol) matches.
pub(super) fn matching_ports<'p>(
    ports: &'p [Port],
    port: &[u8],
    proto: &[u8],
) -> Vec<Option<&'p Port>> {
    if ports.is_empty() {
        return if port.is_empty() && proto.is_empty() {
            vec![None]
        } else {
            Vec::new()
        };
    }
    ports
        .iter()
        .filter(|p| port_matches(p, port, proto))
        .map(Some)
        .collect()
}

/// ClusterIP candidates: the Service's own ports × its ClusterIPs.
pub(super) fn cluster_entries<'e>(
    svc: &'e ServiceEntry,
    ips: &[IpAddr],
    port: &[u8],
    proto: &[u8],
) -> Vec<Entry<'e>> {
    let mut out = Vec::new();
    for p in matching_ports(&svc.ports, port, proto) {
        out.extend(ips.iter().map(|&ip| Entry {
            ip,
            ep: None,
            port: p,
        }));
    }
    out
}

/// Endpoint candidates: each chosen ready address × its slice's matching ports.
pub(super) fn endpoint_entries<'e>(
    eps: &'e EndpointSet,
    mut keep: impl FnMut(&super::store::Addr<'e>) -> bool,
    port: &[u8],
    proto: &[u8],
) -> Vec<Entry<'e>> {
    let mut out = Vec::new();
    for (a, ports) in eps.addrs() {
        if !keep(&a) {
            continue;
        }
        for p in matching_ports(ports, port, proto) {
            out.push(Entry {
                ip: a.ip,
                ep: Some(a),
                port: p,
            });
        }
    }
    out
}
