//! `k8s_external` answers: Services' external addresses under an external
//! zone, from the same index the kubernetes plugin answers from.
//!
//! Names (after CoreDNS `plugin/k8s_external` and the kubernetes plugin's
//! `External`), left of the external zone `ZONE`:
//! - `ZONE`: SOA and NS (`ns1.APEX.ZONE`, glue: this server's addresses);
//! - `APEX.ZONE`: an empty non-terminal; `ns1.APEX.ZONE`: A/AAAA of this
//!   server; anything else below `APEX.ZONE` does not exist;
//! - `NS.ZONE`: a namespace (exists, no data);
//! - `SVC.NS.ZONE`: A/AAAA of the Service's external addresses
//!   (`spec.externalIPs`, LoadBalancer ingress IPs), SRV for its ports with
//!   the service name as target; with `headless`, a headless Service without
//!   external addresses answers its ready endpoints instead;
//! - `_PORT._PROTO.SVC.NS.ZONE`: SRV for the matching ports;
//! - `EP.SVC.NS.ZONE` (with `headless` only): one endpoint by hostname, pod
//!   name (`endpoint_pod_names`) or dashed IP;
//! - a reverse name in a reverse zone the plugin serves: PTR to
//!   `SVC.NS.<first forward zone>` for each Service holding the address.
//!
//! Rules, as the kubernetes plugin's: NXDOMAIN when nothing exists at or
//! below the name (a Service without external addresses does not exist
//! here), NODATA when the name exists without the asked type (CoreDNS answers
//! only A, AAAA, SRV and PTR, and SOA/NS at the apex; ANY is NODATA). Both
//! carry the external zone's SOA. Stricter than CoreDNS: an endpoint name
//! without `headless`, and A/AAAA at an SRV name, are NXDOMAIN and NODATA
//! (CoreDNS answers the service's external IPs for both).

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::lookup::{Entry, Query, addr_record};
use super::model::ServiceKind;
use super::name::{self, StackStr};
use super::services::{endpoint_entries, matching_ports};
use super::store::{Addr, ServiceEntry};
use super::{ClusterIndex, LookupOptions, LookupRequest, LookupResult};

/// The `k8s_external` options that change answers, with the kubernetes
/// plugin's options it shares (namespaces, endpoint names, this server's IPs).
#[derive(Clone, Debug)]
pub struct ExternalOptions {
    /// The kubernetes plugin's options, with `ttl` set to this plugin's and
    /// `primary_zone` to the zone of PTR targets.
    k8s: LookupOptions,
    /// `apex`: the label under which the zone's name server lives (lower-case).
    apex: Box<str>,
    /// `headless`.
    headless: bool,
}

impl ExternalOptions {
    /// Options over the kubernetes plugin's `k8s`: `ttl`, `apex` (a DNS
    /// label), `headless`, and the zone PTR targets are built in.
    pub fn new(k8s: &LookupOptions, ttl: u32, apex: &str, headless: bool, ptr_zone: Name) -> Self {
        let mut k8s = k8s.clone();
        k8s.ttl = ttl;
        k8s.primary_zone = ptr_zone;
        ExternalOptions {
            k8s,
            apex: apex.to_ascii_lowercase().into(),
            headless,
        }
    }

    /// The `apex` label.
    pub fn apex(&self) -> &str {
        &self.apex
    }
}

impl ClusterIndex {
    /// Answers one question in an external zone. `req.zone` must be the
    /// `k8s_external` zone that matched `req.qname` (lower-case).
    pub fn external(&self, opts: &ExternalOptions, req: &LookupRequest<'_>) -> LookupResult {
        External {
            q: Query::new(self, &opts.k8s, req, 0),
            opts,
            zone_len: req.zone.iter().len(),
        }
        .run()
    }

    /// The addresses of this server as `k8s_external` gives them (CoreDNS
    /// `nsAddrs` for external names): when the local addresses back Services,
    /// those Services' external addresses (or, with `headless`, a headless
    /// Service's endpoints); otherwise the local addresses themselves.
    fn external_ns_addrs(&self, opts: &ExternalOptions) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        let mut backs_a_service = false;
        for local in &opts.k8s.local_ips {
            for owner in self.endpoint_ips.owners(*local) {
                backs_a_service = true;
                let Some(svc) = self.services.get(owner) else {
                    continue;
                };
                if opts.headless && svc.kind == ServiceKind::Headless {
                    let eps = self.endpoints.get(owner);
                    out.extend(eps.into_iter().flat_map(|e| e.addrs().map(|(a, _)| a.ip)));
                } else {
                    out.extend(svc.external.iter().copied());
                }
            }
        }
        if !backs_a_service {
            out = opts.k8s.local_ips.clone();
        }
        let mut seen = Vec::with_capacity(out.len());
        out.retain(|ip| {
            !seen.contains(ip) && {
                seen.push(*ip);
                true
            }
        });
        out
    }
}

/// One question in an external zone.
struct External<'a> {
    /// The shared helpers (names, services, endpoints) over the derived options.
    q: Query<'a>,
    opts: &'a ExternalOptions,
    /// Labels of the matched zone.
    zone_len: usize,
}

impl External<'_> {
    fn run(&self) -> LookupResult {
        let qname = self.q.qname;
        let total = qname.iter().len();
        let Some(left) = total.checked_sub(self.zone_len) else {
            return self.nxdomain();
        };
        if left == 0 {
            return self.apex();
        }
        // Labels left of the zone, first (leftmost) first.
        let labels: Vec<&[u8]> = qname.iter().take(left).collect();
        if name::eq(labels[left - 1], &self.opts.apex) {
            return self.sub_apex(&labels);
        }
        if name::is_reverse(qname) {
            return self.reverse();
        }
        match labels[..] {
            [ns] => match self.q.exposed_ns(ns) {
                Some(_) => self.nodata(),
                None => self.nxdomain(),
            },
            [service, ns] => self.service(ns, service),
            [endpoint, service, ns] => self.endpoint(ns, service, endpoint),
            [port, proto, service, ns] => {
                self.srv(ns, service, underscore(port), underscore(proto))
            }
            _ => self.nxdomain(),
        }
    }

    // === records ===

    fn ttl(&self) -> u32 {
        self.opts.k8s.ttl
    }

    /// `<label>.<APEX>.<zone as spelled>`.
    fn in_apex(&self, label: &[u8]) -> Option<Name> {
        Query::join(&[label, self.opts.apex.as_bytes()], self.q.zone_spelled())
    }

    /// CoreDNS's external SOA: `ns1.APEX.ZONE hostmaster.APEX.ZONE`, the
    /// plugin's TTL as record TTL and minimum.
    fn soa(&self) -> Record {
        let zone = self.q.zone_spelled().clone();
        let mname = self.in_apex(b"ns1").unwrap_or_else(|| zone.clone());
        let rname = self.in_apex(b"hostmaster").unwrap_or_else(|| zone.clone());
        let ttl = self.ttl();
        let soa = SOA::new(mname, rname, self.q.idx.serial(), 7200, 1800, 86400, ttl);
        Record::from_rdata(zone, ttl, RData::SOA(soa))
    }

    fn negative(&self, rcode: ResponseCode) -> LookupResult {
        LookupResult {
            rcode,
            answers: Vec::new(),
            authority: vec![self.soa()],
            additionals: Vec::new(),
            chase: None,
        }
    }

    fn nxdomain(&self) -> LookupResult {
        self.negative(ResponseCode::NXDomain)
    }

    fn nodata(&self) -> LookupResult {
        self.negative(ResponseCode::NoError)
    }

    /// NOERROR with these records, or this zone's NODATA when there are none.
    fn positive(&self, answers: Vec<Record>, additionals: Vec<Record>) -> LookupResult {
        LookupResult::positive(answers, additionals, || self.nodata())
    }

    /// A or AAAA records of `ips` at `owner` for an A or AAAA question
    /// (nothing for other types: CoreDNS answers ANY with NODATA here).
    fn addresses(&self, owner: &Name, ips: impl Iterator<Item = IpAddr>) -> Vec<Record> {
        match self.q.qtype {
            RecordType::A | RecordType::AAAA => self.q.addr_records(owner, ips),
            _ => Vec::new(),
        }
    }

    // === the apex and its name server ===

    fn apex(&self) -> LookupResult {
        match self.q.qtype {
            RecordType::SOA => {
                let mut soa = self.soa();
                soa.name = self.q.qname.clone();
                self.positive(vec![soa], Vec::new())
            }
            RecordType::NS => {
                let Some(ns) = self.in_apex(b"ns1") else {
                    return self.nodata();
                };
                let glue = self
                    .q
                    .idx
                    .external_ns_addrs(self.opts)
                    .into_iter()
                    .map(|ip| addr_record(ns.clone(), self.ttl(), ip))
                    .collect();
                let record =
                    Record::from_rdata(self.q.qname.clone(), self.ttl(), RData::NS(NS(ns)));
                self.positive(vec![record], glue)
            }
            _ => self.nodata(),
        }
    }

    /// A name whose last label before the zone is the apex label.
    fn sub_apex(&self, labels: &[&[u8]]) -> LookupResult {
        match labels {
            [_apex] => self.nodata(),
            [ns1, _apex] if name::eq(ns1, "ns1") => {
                let ips = self.q.idx.external_ns_addrs(self.opts);
                self.positive(self.addresses(self.q.qname, ips.into_iter()), Vec::new())
            }
            _ => self.nxdomain(),
        }
    }

    // === services ===

    /// `svc.ns.ZONE` as an SRV target and glue owner.
    fn base(&self, svc: &ServiceEntry) -> Option<Name> {
        Query::join(
            &[svc.name().as_bytes(), svc.namespace().as_bytes()],
            self.q.zone_spelled(),
        )
    }

    /// SRV records for `entries` (targets under `svc.ns.ZONE`) with glue.
    fn srv_answer(&self, svc: &ServiceEntry, entries: &[Entry<'_>]) -> LookupResult {
        let Some(base) = self.base(svc) else {
            return self.nodata();
        };
        let (answers, glue) = self.q.srv_records(&base, entries);
        self.positive(answers, glue)
    }

    /// With `headless`: the ready endpoints of a service that has no
    /// external address and is not an ExternalName.
    fn headless_endpoints(
        &self,
        svc: &ServiceEntry,
        key: &str,
    ) -> Option<&super::store::EndpointSet> {
        let eligible = self.opts.headless
            && svc.external.is_empty()
            && !matches!(svc.kind, ServiceKind::ExternalName(_))
            && !self.opts.k8s.noendpoints;
        let eps = self.q.idx.endpoints.get(key).filter(|e| e.ready > 0);
        eps.map(|e| &**e).filter(|_| eligible)
    }

    fn service(&self, ns: &[u8], service: &[u8]) -> LookupResult {
        let Some((svc, key)) = self.q.find_service(ns, service) else {
            return self.nxdomain();
        };
        if !svc.external.is_empty() {
            let entries = external_entries(svc, b"", b"");
            return match self.q.qtype {
                RecordType::SRV => self.srv_answer(svc, &entries),
                _ => self.positive(
                    self.addresses(self.q.qname, svc.external.iter().copied()),
                    Vec::new(),
                ),
            };
        }
        let Some(eps) = self.headless_endpoints(svc, key.as_str()) else {
            return self.nxdomain();
        };
        if svc.kind != ServiceKind::Headless {
            // Its endpoints have names below it; the service name has no data.
            return self.nodata();
        }
        match self.q.qtype {
            RecordType::SRV => self.srv_answer(svc, &endpoint_entries(eps, |_| true, b"", b"")),
            _ => self.positive(
                self.addresses(self.q.qname, eps.addrs().map(|(a, _)| a.ip)),
                Vec::new(),
            ),
        }
    }

    fn endpoint(&self, ns: &[u8], service: &[u8], endpoint: &[u8]) -> LookupResult {
        let Some((svc, key)) = self.q.find_service(ns, service) else {
            return self.nxdomain();
        };
        let Some(eps) = self.headless_endpoints(svc, key.as_str()) else {
            return self.nxdomain();
        };
        let Some(label) = StackStr::lower(endpoint) else {
            return self.nxdomain();
        };
        let label_ip = name::endpoint_label_ip(label.as_str());
        let pod_names = self.opts.k8s.endpoint_pod_names;
        let is_it = |a: &Addr<'_>| match (a.hostname, a.pod_name) {
            (Some(h), _) => h == label.as_str(),
            (None, Some(p)) if pod_names => p == label.as_str(),
            _ => label_ip == Some(a.ip),
        };
        let entries = endpoint_entries(eps, is_it, b"", b"");
        if entries.is_empty() {
            return self.nxdomain();
        }
        match self.q.qtype {
            RecordType::SRV => self.srv_answer(svc, &entries),
            _ => self.positive(
                self.addresses(self.q.qname, entries.iter().map(|e| e.ip)),
                Vec::new(),
            ),
        }
    }

    fn srv(&self, ns: &[u8], service: &[u8], port: &[u8], proto: &[u8]) -> LookupResult {
        let Some((svc, key)) = self.q.find_service(ns, service) else {
            return self.nxdomain();
        };
        let entries = if !svc.external.is_empty() {
            external_entries(svc, port, proto)
        } else if svc.kind == ServiceKind::Headless
            && let Some(eps) = self.headless_endpoints(svc, key.as_str())
        {
            endpoint_entries(eps, |_| true, port, proto)
        } else {
            Vec::new()
        };
        if entries.is_empty() {
            return self.nxdomain();
        }
        match self.q.qtype {
            RecordType::SRV => self.srv_answer(svc, &entries),
            _ => self.nodata(),
        }
    }

    // === reverse ===

    /// PTR for a full reverse name: one target per exposed Service holding
    /// the address as an external address.
    fn reverse(&self) -> LookupResult {
        let Some(ip) = name::parse_reverse(self.q.qname) else {
            return self.nxdomain();
        };
        let zone = &self.opts.k8s.primary_zone;
        let mut targets: Vec<Name> = Vec::new();
        for key in self.q.idx.external_ips.owners(ip) {
            let Some((ns, svc)) = key.split_once('/') else {
                continue;
            };
            if self.q.find_service(ns.as_bytes(), svc.as_bytes()).is_none() {
                continue;
            }
            if let Some(t) = Query::join(&[svc.as_bytes(), ns.as_bytes()], zone)
                && !targets.contains(&t)
            {
                targets.push(t);
            }
        }
        if targets.is_empty() {
            return self.nxdomain();
        }
        match self.q.qtype {
            RecordType::PTR => {
                let answers = targets
                    .into_iter()
                    .map(|t| {
                        Record::from_rdata(self.q.qname.clone(), self.ttl(), RData::PTR(PTR(t)))
                    })
                    .collect();
                self.positive(answers, Vec::new())
            }
            _ => self.nodata(),
        }
    }
}

/// An SRV label without its leading `_`.
fn underscore(label: &[u8]) -> &[u8] {
    label.strip_prefix(b"_").unwrap_or(label)
}

/// SRV candidates of a service's external addresses × its matching ports
/// (CoreDNS's "no ports" sentinel included, which gives no SRV record).
fn external_entries<'e>(svc: &'e ServiceEntry, port: &[u8], proto: &[u8]) -> Vec<Entry<'e>> {
    let mut out = Vec::new();
    for p in matching_ports(&svc.ports, port, proto) {
        out.extend(svc.external.iter().map(|&ip| Entry {
            ip,
            ep: None,
            port: p,
        }));
    }
    out
}
