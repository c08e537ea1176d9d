//! Forward lookups: a parsed query name plus the index become one DNS answer.
//!
//! Rules (CoreDNS `kubernetes.go`/`backend_lookup.go` behaviour, made strict
//! where CoreDNS is not): a name that exists never gets NXDOMAIN for another
//! type (NODATA instead: `dns-version` A, `ns.dns` SRV, `_http._tcp.svc` A);
//! NXDOMAIN means nothing exists at or below the name. Owner names are the
//! query name as sent; names we build use the zone as the query spelled it.
//!
//! In a `multicluster` zone the same rules run on other data: service names
//! find ServiceImports (not Services) and endpoints come from the imported
//! slices, named `<endpoint>.<clusterid>.<service>...`. With `zonal` the
//! grammar has `<topology-zone>.pin|prefer._zone.<service>...` too.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::model::Port;
use super::name::{self, Branch, Grammar, QueryName, StackStr};
use super::store::ServiceEntry;
use super::store::{Addr, EndpointSet};
use super::{ClusterIndex, LookupOptions, LookupRequest, LookupResult, PodMode};

/// The schema version answered at `dns-version.<zone>`.
const SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the schema version TXT (the spec's example, as CoreDNS).
const SCHEMA_TTL: u32 = 28800;

impl ClusterIndex {
    /// Answers one question. `req.zone` must be the plugin zone that matched
    /// `req.qname` (lower-case); names outside it are NXDOMAIN.
    pub fn lookup(&self, opts: &LookupOptions, req: &LookupRequest<'_>) -> LookupResult {
        Query::new(self, opts, req, 0).run()
    }
}

/// One question being answered.
pub(super) struct Query<'a> {
    pub(super) idx: &'a ClusterIndex,
    pub(super) opts: &'a LookupOptions,
    pub(super) qname: &'a Name,
    zone: &'a Name,
    pub(super) qtype: RecordType,
    /// CNAME hops taken to get here.
    pub(super) depth: u8,
    /// The zone is a `multicluster` zone: services are ServiceImports.
    pub(super) multicluster: bool,
    /// The zone as spelled in the query (computed on first use).
    spelled: OnceCell<Name>,
}

/// One SRV candidate: an address, the endpoint it belongs to (none for a
/// ClusterIP) and its port (none for CoreDNS's "no ports" sentinel).
pub(super) struct Entry<'e> {
    pub(super) ip: IpAddr,
    pub(super) ep: Option<Addr<'e>>,
    pub(super) port: Option<&'e Port>,
}

impl<'a> Query<'a> {
    pub(super) fn new(
        idx: &'a ClusterIndex,
        opts: &'a LookupOptions,
        req: &LookupRequest<'a>,
        depth: u8,
    ) -> Self {
        Query {
            idx,
            opts,
            qname: req.qname,
            zone: req.zone,
            qtype: req.qtype,
            depth,
            multicluster: opts.multicluster_zones.contains(req.zone),
            spelled: OnceCell::new(),
        }
    }

    pub(super) fn run(&self) -> LookupResult {
        let below_zone = self.qname.iter().len() > self.zone.iter().len();
        if below_zone && name::is_reverse(self.qname) && self.zone.zone_of(self.qname) {
            return self.reverse();
        }
        let grammar = Grammar {
            multicluster: self.multicluster,
            zonal: self.opts.zonal,
        };
        match name::parse_in(self.qname, self.zone, grammar) {
            QueryName::Apex => self.apex(),
            QueryName::DnsVersion => match self.qtype {
                RecordType::TXT | RecordType::ANY => {
                    let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]));
                    self.positive(
                        vec![Record::from_rdata(self.qname.clone(), SCHEMA_TTL, txt)],
                        Vec::new(),
                    )
                }
                _ => self.nodata(),
            },
            QueryName::NsDns => {
                let answers = self.addr_records(self.qname, self.opts.local_ips.iter().copied());
                self.positive(answers, Vec::new())
            }
            QueryName::DnsParent | QueryName::BareSvc | QueryName::BarePod => self.nodata(),
            QueryName::Namespace { branch, ns } => {
                if (branch == Branch::Pod && self.opts.pods == PodMode::Disabled)
                    || !self.exposed(ns)
                {
                    return self.nxdomain();
                }
                self.nodata()
            }
            QueryName::Service { service, ns } => self.service(ns, service),
            // CoreDNS: in a multicluster zone an endpoint needs its cluster id.
            QueryName::Endpoint { .. } if self.multicluster => self.nxdomain(),
            QueryName::Endpoint {
                endpoint,
                service,
                ns,
            } => self.endpoint(ns, service, endpoint, None),
            QueryName::McEndpoint {
                endpoint,
                cluster,
                service,
                ns,
            } => self.endpoint(ns, service, endpoint, Some(cluster)),
            QueryName::Zonal {
                topo,
                prefer,
                service,
                ns,
            } => self.zonal(ns, service, topo, prefer),
            QueryName::Srv {
                port,
                proto,
                service,
                ns,
            } => self.srv(ns, service, port, proto),
            QueryName::Pod { pod, ns } => self.pod(ns, pod),
            QueryName::Invalid => self.nxdomain(),
        }
    }

    // === names and records ===

    /// The zone as the query spelled it.
    pub(super) fn zone_spelled(&self) -> &Name {
        self.spelled.get_or_init(|| {
            let n = self.zone.iter().len();
            if self.zone.zone_of(self.qname) {
                self.qname.trim_to(n)
            } else {
                self.zone.clone()
            }
        })
    }

    /// `labels` followed by `zone`; `None` if too long for a DNS name.
    pub(super) fn join(labels: &[&[u8]], zone: &Name) -> Option<Name> {
        Name::from_labels(labels.iter().copied())
            .ok()?
            .append_name(zone)
            .ok()
    }

    fn soa(&self) -> Record {
        let zone = self.zone_spelled().clone();
        let ns = Self::join(&[b"ns", b"dns"], &zone).unwrap_or_else(|| zone.clone());
        let mbox = Self::join(&[b"hostmaster"], &zone).unwrap_or_else(|| zone.clone());
        let soa = SOA::new(ns, mbox, self.idx.serial, 7200, 1800, 86400, self.opts.ttl);
        Record::from_rdata(zone, self.opts.ttl.min(300), RData::SOA(soa))
    }

    pub(super) fn nxdomain(&self) -> LookupResult {
        self.negative(ResponseCode::NXDomain)
    }

    pub(super) fn nodata(&self) -> LookupResult {
        self.negative(ResponseCode::NoError)
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

    /// NOERROR with these records, or NODATA when there are none.
    pub(super) fn positive(&self, answers: Vec<Record>, additionals: Vec<Record>) -> LookupResult {
        LookupResult::positive(answers, additionals, || self.nodata())
    }

    /// A/AAAA records of the asked family (both for ANY), deduplicated, in order.
    pub(super) fn addr_records(
        &self,
        owner: &Name,
        ips: impl Iterator<Item = IpAddr>,
    ) -> Vec<Record> {
        let (v4, v6) = match self.qtype {
            RecordType::A => (true, false),
            RecordType::AAAA => (false, true),
            RecordType::ANY => (true, true),
            _ => return Vec::new(),
        };
        let mut seen: Vec<IpAddr> = Vec::new();
        let mut big: HashSet<IpAddr> = HashSet::new();
        let mut out = Vec::new();
        for ip in ips {
            if (ip.is_ipv4() && !v4) || (ip.is_ipv6() && !v6) {
                continue;
            }
            // Linear for the usual handful, hashed past it.
            let new = if seen.len() < 32 {
                !seen.contains(&ip) && {
                    seen.push(ip);
                    true
                }
            } else {
                !seen.contains(&ip) && big.insert(ip)
            };
            if new {
                out.push(addr_record(owner.clone(), self.opts.ttl, ip));
            }
        }
        out
    }

    // === the zone apex and namespaces ===

    fn apex(&self) -> LookupResult {
        let ns_name = Self::join(&[b"ns", b"dns"], self.zone_spelled());
        let ns = |q: &Self| -> (Vec<Record>, Vec<Record>) {
            let Some(target) = ns_name.clone() else {
                return (Vec::new(), Vec::new());
            };
            let glue = q
                .opts
                .local_ips
                .iter()
                .map(|ip| addr_record(target.clone(), q.opts.ttl, *ip))
                .collect();
            (
                vec![Record::from_rdata(
                    q.qname.clone(),
                    q.opts.ttl,
                    RData::NS(NS(target)),
                )],
                glue,
            )
        };
        match self.qtype {
            RecordType::SOA => self.positive(vec![self.soa_answer()], Vec::new()),
            RecordType::NS => {
                let (answers, glue) = ns(self);
                self.positive(answers, glue)
            }
            RecordType::ANY => {
                let (mut answers, glue) = ns(self);
                answers.insert(0, self.soa_answer());
                self.positive(answers, glue)
            }
            _ => self.nodata(),
        }
    }

    /// The SOA as an answer: owner is the query name (which is the zone).
    fn soa_answer(&self) -> Record {
        let mut soa = self.soa();
        soa.name = self.qname.clone();
        soa
    }

    /// Lower-cased namespace label if it is exposed: allowed by `namespaces`
    /// and existing (see [`ClusterIndex`] for what makes a namespace exist).
    pub(super) fn exposed_ns(&self, ns: &[u8]) -> Option<StackStr> {
        let ns = StackStr::lower(ns)?;
        let allowed = self
            .opts
            .namespaces
            .as_ref()
            .is_none_or(|set| set.contains(ns.as_str()));
        (allowed && self.idx.namespace_exists(ns.as_str())).then_some(ns)
    }

    fn exposed(&self, ns: &[u8]) -> bool {
        self.exposed_ns(ns).is_some()
    }

    /// The service named by two labels, with its map key, if its namespace is
    /// exposed: a ServiceImport in a multicluster zone, a Service elsewhere.
    pub(super) fn find_service(
        &self,
        ns: &[u8],
        service: &[u8],
    ) -> Option<(&'a ServiceEntry, KeyBuf)> {
        let ns = self.exposed_ns(ns)?;
        let service = StackStr::lower(service)?;
        let mut key = KeyBuf::default();
        key.push(ns.as_bytes());
        key.push(b"/");
        key.push(service.as_bytes());
        let map = if self.multicluster {
            &self.idx.imports
        } else {
            &self.idx.services
        };
        let svc = map.get(key.as_str())?;
        Some((svc, key))
    }

    /// The merged endpoints of a service key (of the multicluster slices in
    /// a multicluster zone); none with `noendpoints`.
    pub(super) fn endpoints(&self, key: &KeyBuf) -> Option<&'a EndpointSet> {
        if self.opts.noendpoints {
            return None;
        }
        let map = if self.multicluster {
            &self.idx.mc_endpoints
        } else {
            &self.idx.endpoints
        };
        map.get(key.as_str()).map(|set| &**set)
    }
}

/// A stack buffer for a `ns/name` map key (two labels of at most 63 bytes).
pub(super) struct KeyBuf {
    buf: [u8; 128],
    len: usize,
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl KeyBuf {
    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// An A or AAAA record.
pub(super) fn addr_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, data)
}

/// The label of an endpoint address: its hostname, else (with
/// `endpoint_pod_names`) its pod name, else its dashed IP.
pub(super) fn endpoint_label(a: &Addr<'_>, pod_names: bool) -> Option<StackStr> {
    if let Some(h) = a.hostname {
        return StackStr::lower(h.as_bytes());
    }
    if pod_names && let Some(p) = a.pod_name {
        return StackStr::lower(p.as_bytes());
    }
    Some(name::dashed_ip(a.ip))
}
