//! The cluster index: pure data that answers "what records does this name have".
//!
//! No I/O and no async here. Sources feed [`IndexUpdate`]s through
//! [`ClusterIndex::apply`]; the kubernetes plugin asks [`ClusterIndex::lookup`].
//! Every record rule of the Kubernetes DNS specification 1.1.0 (and CoreDNS's
//! extensions to it) lives in this module and is table-tested in `tests.rs`.
//!
//! Invariants:
//! - A lookup costs O(1) in the number of services: objects sit in hash maps
//!   keyed by `namespace/name`, and the reverse maps (ClusterIP, endpoint IP
//!   and pod IP → owners) are maintained by `apply`, never rebuilt per query.
//! - A clone is cheap (a few hundred `Arc` copies, see `store`), so a writer
//!   can clone the published snapshot, apply a batch and publish the result.
//! - Answers are authoritative: NXDOMAIN only when nothing exists at or below
//!   the name; NODATA (NOERROR, no answer) when the name exists without the
//!   asked type. Both carry the zone SOA in the authority section.

mod external;
mod lookup;
pub mod model;
pub mod name;
mod relist;
mod reverse;
mod revmap;
mod services;
pub mod snapshot;
mod store;
#[cfg(test)]
mod tests;
pub mod update;

pub use external::ExternalOptions;
pub use relist::Relist;
pub use update::{IndexUpdate, Kind, Object};

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};

use model::{
    EndpointSlice, MultiClusterSlice, Namespace, Pod, Service, ServiceImport, ServiceKind,
};
use revmap::RevMap;
use store::{EndpointSet, NsInfo, ServiceEntry, Shards, SlicePart, key};

/// How pod records (`1-2-3-4.ns.pod.zone`) are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodMode {
    /// No pod records: NXDOMAIN (CoreDNS default).
    #[default]
    Disabled,
    /// Answer the IP spelled in the name without checking.
    Insecure,
    /// Answer only when a Pod with that IP exists in that namespace.
    Verified,
}

/// The kubernetes plugin's options that change answers.
#[derive(Clone, Debug)]
pub struct LookupOptions {
    /// `namespaces NS...`: only these (lower-case) are exposed; `None` exposes all.
    pub namespaces: Option<HashSet<Box<str>>>,
    /// `pods`.
    pub pods: PodMode,
    /// `endpoint_pod_names`.
    pub endpoint_pod_names: bool,
    /// `ttl` (default 5).
    pub ttl: u32,
    /// `noendpoints`.
    pub noendpoints: bool,
    /// `ignore empty_service`.
    pub ignore_empty_service: bool,
    /// The first non-reverse zone: PTR targets and ExternalName chasing use it.
    pub primary_zone: Name,
    /// This server's own addresses, answered for `ns.dns.<zone>` and as NS glue.
    pub local_ips: Vec<IpAddr>,
    /// `multicluster ZONES`: in these zones (lower-case FQDNs) service names
    /// answer from ServiceImports and endpoints are `host.clusterid.svc...`.
    pub multicluster_zones: Vec<Name>,
    /// `zonal`: headless services answer `<topology-zone>.pin|prefer._zone.`
    /// names (outside multicluster zones).
    pub zonal: bool,
}

/// One question for the index.
#[derive(Clone, Copy, Debug)]
pub struct LookupRequest<'a> {
    /// The query name exactly as the client sent it (case preserved, FQDN).
    pub qname: &'a Name,
    /// The plugin zone that matched (lower-case FQDN), e.g. `cluster.local.`.
    pub zone: &'a Name,
    /// The query type.
    pub qtype: RecordType,
}

/// The index's answer, ready to put on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupResult {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the zone SOA for NXDOMAIN/NODATA, NS at the apex).
    pub authority: Vec<Record>,
    /// Additional section (A/AAAA glue for SRV targets and NS).
    pub additionals: Vec<Record>,
    /// An ExternalName CNAME whose target lies outside the cluster zones: the
    /// plugin may resolve it through the rest of the chain and append that answer.
    pub chase: Option<Name>,
}

impl LookupResult {
    /// NOERROR with these records, or `nodata()` (the zone's own NODATA, with
    /// its SOA) when there are none: a name never answers NOERROR empty-handed
    /// without its SOA.
    pub(crate) fn positive(
        answers: Vec<Record>,
        additionals: Vec<Record>,
        nodata: impl FnOnce() -> LookupResult,
    ) -> LookupResult {
        if answers.is_empty() {
            return nodata();
        }
        LookupResult {
            rcode: ResponseCode::NoError,
            answers,
            authority: Vec::new(),
            additionals,
            chase: None,
        }
    }
}

/// The whole cluster as DNS sees it.
///
/// A namespace *exists* when a Namespace object is known for it **or** any
/// Service lives in it. CoreDNS asks only its Namespace informer; counting
/// services as well keeps answers right when Namespaces are not watched (the
/// `manifests` source, RBAC without namespace list) and costs nothing, since a
/// service can only be created in an existing namespace.
///
/// An index made by [`ClusterIndex::namespace_filtered`] (the
/// `namespace_labels` option) counts only Namespace objects: its sources send
/// only the Namespaces whose labels match, so a Service in any other
/// namespace, and that namespace itself, are NXDOMAIN, as in CoreDNS.
#[derive(Clone, Debug, Default)]
pub struct ClusterIndex {
    /// Services by `ns/name`.
    services: Shards<Arc<str>, Arc<ServiceEntry>>,
    /// The merged slices of each service, by the service's `ns/name`.
    endpoints: Shards<Arc<str>, Arc<EndpointSet>>,
    /// Which service each slice (`ns/slice`) belongs to.
    slice_owner: Shards<Box<str>, Arc<str>>,
    /// ClusterIP → owning services (`ns/name`).
    cluster_ips: RevMap,
    /// External IP (externalIPs, LoadBalancer ingress) → owning services, for
    /// `k8s_external`'s PTR answers.
    external_ips: RevMap,
    /// Ready endpoint IP → owning services (`ns/name`).
    endpoint_ips: RevMap,
    /// Pod IPs by `ns/name`.
    pods: Shards<Box<str>, Arc<[IpAddr]>>,
    /// Pod IP → namespaces of the pods holding it.
    pod_ips: RevMap,
    /// ServiceImports by `ns/name` (`multicluster`; empty otherwise).
    imports: Shards<Arc<str>, Arc<ServiceEntry>>,
    /// The merged multicluster slices of each import, by the import's `ns/name`.
    mc_endpoints: Shards<Arc<str>, Arc<EndpointSet>>,
    /// Which import each multicluster slice (`ns/slice`) belongs to.
    mc_slice_owner: Shards<Box<str>, Arc<str>>,
    /// Namespaces that exist (see the type's docs).
    namespaces: Arc<HashMap<Box<str>, NsInfo>>,
    /// Kinds that have had their first complete list (Reset).
    synced: HashSet<Kind>,
    /// SOA serial.
    serial: u32,
    /// Ready endpoint addresses over all slices.
    endpoint_total: usize,
    /// Only Namespace objects make a namespace exist (`namespace_labels`);
    /// fixed at creation, kept by clones and relists.
    namespace_objects_only: bool,
}

impl ClusterIndex {
    /// Applies one update; a `Reset` replaces one kind entirely and marks it synced.
    pub fn apply(&mut self, update: IndexUpdate) {
        match update {
            IndexUpdate::Apply(object) => self.put(object),
            IndexUpdate::Delete {
                kind,
                namespace,
                name,
            } => self.delete(kind, &namespace, &name),
            IndexUpdate::Reset { kind, objects } => {
                let mut relist = Relist::new(kind);
                for object in objects {
                    relist.put(object);
                }
                self.adopt(relist);
            }
            IndexUpdate::Replace(relist) => self.adopt(*relist),
            IndexUpdate::Batch(updates) => {
                for u in updates {
                    self.apply(u);
                }
            }
        }
    }

    /// An empty index for the `namespace_labels` option: a namespace exists
    /// only while a (selected) Namespace object is known for it.
    pub fn namespace_filtered() -> Self {
        ClusterIndex {
            namespace_objects_only: true,
            ..ClusterIndex::default()
        }
    }

    /// Whether namespace `ns` (lower-case) exists, per the type's rules.
    fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces
            .get(ns)
            .is_some_and(|info| info.object || !self.namespace_objects_only)
    }

    /// True once a `Reset` of `kind` has been applied.
    pub fn is_synced(&self, kind: Kind) -> bool {
        self.synced.contains(&kind)
    }

    /// Sets the SOA serial (the writer uses the Unix time of the last change).
    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Namespaces of the Pods holding `ip` (autopath maps a client to its pod's
    /// namespace). Empty when no Pod has it, or Pods are not watched (`pods verified` off).
    pub fn pod_namespaces(&self, ip: IpAddr) -> Vec<&str> {
        self.pod_ips.owners(ip).collect()
    }

    /// Namespaces of the Services whose EndpointSlices hold `ip` (each once,
    /// in the order first seen): who a client is, learned without a Pod
    /// watch. A pod that backs no Service is not found.
    pub fn endpoint_namespaces(&self, ip: IpAddr) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for owner in self.endpoint_ips.owners(ip) {
            if let Some((ns, _)) = owner.split_once('/')
                && !out.contains(&ns)
            {
                out.push(ns);
            }
        }
        out
    }

    /// Number of Services.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Number of ready endpoint addresses over all EndpointSlices.
    pub fn endpoint_count(&self) -> usize {
        self.endpoint_total
    }

    /// An empty index whose reverse maps append unsorted (for a [`Relist`]).
    fn bulk() -> Self {
        ClusterIndex {
            cluster_ips: RevMap::bulk(),
            external_ips: RevMap::bulk(),
            endpoint_ips: RevMap::bulk(),
            pod_ips: RevMap::bulk(),
            ..ClusterIndex::default()
        }
    }

    fn put(&mut self, object: Object) {
        match object {
            Object::Service(s) => self.put_service(s),
            Object::EndpointSlice(s) => self.put_slice(s),
            Object::Pod(p) => self.put_pod(p),
            Object::Namespace(n) => self.put_namespace(n),
            Object::ServiceImport(i) => self.put_import(i),
            Object::MultiClusterSlice(s) => self.put_mc_slice(s),
        }
    }

    fn delete(&mut self, kind: Kind, ns: &str, name: &str) {
        let k = key(ns, name);
        match kind {
            Kind::Service => self.drop_service(&k),
            Kind::EndpointSlice => self.drop_slice(&k),
            Kind::Pod => self.drop_pod(&k),
            Kind::Namespace => {
                let map = Arc::make_mut(&mut self.namespaces);
                if let Some(info) = map.get_mut(name) {
                    info.object = false;
                    if info.is_empty() {
                        map.remove(name);
                    }
                }
            }
            Kind::ServiceImport => self.drop_import(&k),
            Kind::MultiClusterSlice => self.drop_mc_slice(&k),
        }
    }

    /// Replaces every map of the relist's kind with the relist's own, and
    /// marks the kind synced.
    fn adopt(&mut self, relist: Relist) {
        let Relist { kind, mut part, .. } = relist;
        part.cluster_ips.finish();
        part.external_ips.finish();
        part.endpoint_ips.finish();
        part.pod_ips.finish();
        match kind {
            Kind::Service => {
                self.services = part.services;
                self.cluster_ips = part.cluster_ips;
                self.external_ips = part.external_ips;
                let map = Arc::make_mut(&mut self.namespaces);
                map.retain(|_, info| {
                    info.services = 0;
                    !info.is_empty()
                });
                for (ns, info) in part.namespaces.iter() {
                    map.entry(ns.clone()).or_default().services += info.services;
                }
            }
            Kind::EndpointSlice => {
                self.endpoints = part.endpoints;
                self.slice_owner = part.slice_owner;
                self.endpoint_ips = part.endpoint_ips;
                self.endpoint_total = part.endpoint_total;
            }
            Kind::Pod => {
                self.pods = part.pods;
                self.pod_ips = part.pod_ips;
            }
            Kind::Namespace => {
                let map = Arc::make_mut(&mut self.namespaces);
                map.retain(|_, info| {
                    info.object = false;
                    !info.is_empty()
                });
                for (ns, info) in part.namespaces.iter() {
                    if info.object {
                        map.entry(ns.clone()).or_default().object = true;
                    }
                }
            }
            Kind::ServiceImport => {
                self.imports = part.imports;
                let map = Arc::make_mut(&mut self.namespaces);
                map.retain(|_, info| {
                    info.imports = 0;
                    !info.is_empty()
                });
                for (ns, info) in part.namespaces.iter() {
                    map.entry(ns.clone()).or_default().imports += info.imports;
                }
            }
            Kind::MultiClusterSlice => {
                self.mc_endpoints = part.mc_endpoints;
                self.mc_slice_owner = part.mc_slice_owner;
            }
        }
        self.synced.insert(kind);
    }

    fn put_service(&mut self, svc: Service) {
        let owner: Arc<str> = Arc::from(key(&svc.namespace, &svc.name));
        let entry = ServiceEntry::new(owner.clone(), svc);
        for ip in cluster_ips(&entry.kind) {
            self.cluster_ips.add(*ip, &owner);
        }
        for ip in entry.external.iter() {
            self.external_ips.add(*ip, &owner);
        }
        match self.services.insert(owner.clone(), Arc::new(entry)) {
            Some(old) => {
                for ip in cluster_ips(&old.kind) {
                    self.cluster_ips.remove(*ip, &owner);
                }
                for ip in old.external.iter() {
                    self.external_ips.remove(*ip, &owner);
                }
            }
            None => {
                let (ns, _) = owner.split_once('/').unwrap_or_default();
                let map = Arc::make_mut(&mut self.namespaces);
                map.entry(ns.into()).or_default().services += 1;
            }
        }
    }

    fn drop_service(&mut self, k: &str) {
        let Some(old) = self.services.remove(k) else {
            return;
        };
        for ip in cluster_ips(&old.kind) {
            self.cluster_ips.remove(*ip, k);
        }
        for ip in old.external.iter() {
            self.external_ips.remove(*ip, k);
        }
        let map = Arc::make_mut(&mut self.namespaces);
        if let Some(info) = map.get_mut(old.namespace()) {
            info.services = info.services.saturating_sub(1);
            if info.is_empty() {
                map.remove(old.namespace());
            }
        }
    }

    fn put_import(&mut self, import: ServiceImport) {
        let owner: Arc<str> = Arc::from(key(&import.namespace, &import.name));
        let entry = ServiceEntry::import(owner.clone(), import);
        if self
            .imports
            .insert(owner.clone(), Arc::new(entry))
            .is_none()
        {
            let (ns, _) = owner.split_once('/').unwrap_or_default();
            let map = Arc::make_mut(&mut self.namespaces);
            map.entry(ns.into()).or_default().imports += 1;
        }
    }

    fn drop_import(&mut self, k: &str) {
        let Some(old) = self.imports.remove(k) else {
            return;
        };
        let map = Arc::make_mut(&mut self.namespaces);
        if let Some(info) = map.get_mut(old.namespace()) {
            info.imports = info.imports.saturating_sub(1);
            if info.is_empty() {
                map.remove(old.namespace());
            }
        }
    }

    /// A multicluster slice joins its import's set. It feeds no reverse map:
    /// PTRs and autopath stay with this cluster's own endpoints (as CoreDNS).
    fn put_mc_slice(&mut self, mc: MultiClusterSlice) {
        let MultiClusterSlice { cluster, slice } = mc;
        let slice_key = key(&slice.namespace, &slice.name);
        self.drop_mc_slice(&slice_key);
        if slice.service.is_empty() {
            return;
        }
        let owner: Arc<str> = Arc::from(key(&slice.namespace, &slice.service));
        let part = Arc::new(SlicePart::imported(slice, cluster));
        match self.mc_endpoints.get_mut(&*owner) {
            Some(set) => Arc::make_mut(set).put(part),
            None => {
                let mut set = EndpointSet::default();
                set.put(part);
                self.mc_endpoints.insert(owner.clone(), Arc::new(set));
            }
        }
        self.mc_slice_owner.insert(slice_key, owner);
    }

    fn drop_mc_slice(&mut self, slice_key: &str) {
        let Some(owner) = self.mc_slice_owner.remove(slice_key) else {
            return;
        };
        let name = slice_key.split_once('/').map_or(slice_key, |(_, n)| n);
        let Some(set) = self.mc_endpoints.get_mut(&*owner) else {
            return;
        };
        let set = Arc::make_mut(set);
        set.remove(name);
        if set.parts.is_empty() {
            self.mc_endpoints.remove(&*owner);
        }
    }

    fn put_slice(&mut self, slice: EndpointSlice) {
        let slice_key = key(&slice.namespace, &slice.name);
        self.drop_slice(&slice_key);
        if slice.service.is_empty() {
            return;
        }
        let owner: Arc<str> = Arc::from(key(&slice.namespace, &slice.service));
        let part = Arc::new(SlicePart::new(slice));
        for ip in part.ips() {
            self.endpoint_ips.add(ip, &owner);
        }
        self.endpoint_total += part.len();
        match self.endpoints.get_mut(&*owner) {
            Some(set) => Arc::make_mut(set).put(part),
            None => {
                let mut set = EndpointSet::default();
                set.put(part);
                self.endpoints.insert(owner.clone(), Arc::new(set));
            }
        }
        self.slice_owner.insert(slice_key, owner);
    }

    fn drop_slice(&mut self, slice_key: &str) {
        let Some(owner) = self.slice_owner.remove(slice_key) else {
            return;
        };
        let name = slice_key.split_once('/').map_or(slice_key, |(_, n)| n);
        let Some(set) = self.endpoints.get_mut(&*owner) else {
            return;
        };
        let set = Arc::make_mut(set);
        let Some(part) = set.remove(name) else { return };
        let empty = set.parts.is_empty();
        if empty {
            self.endpoints.remove(&*owner);
        }
        for ip in part.ips() {
            self.endpoint_ips.remove(ip, &owner);
        }
        self.endpoint_total -= part.len();
    }

    fn put_pod(&mut self, pod: Pod) {
        let k = key(&pod.namespace, &pod.name);
        self.drop_pod(&k);
        let ns: Arc<str> = Arc::from(&*pod.namespace);
        for ip in &pod.ips {
            self.pod_ips.add(*ip, &ns);
        }
        self.pods.insert(k, Arc::from(pod.ips));
    }

    fn drop_pod(&mut self, k: &str) {
        let Some(ips) = self.pods.remove(k) else {
            return;
        };
        let ns = k.split_once('/').map_or(k, |(ns, _)| ns);
        for ip in ips.iter() {
            self.pod_ips.remove(*ip, ns);
        }
    }

    fn put_namespace(&mut self, ns: Namespace) {
        let map = Arc::make_mut(&mut self.namespaces);
        map.entry(ns.name).or_default().object = true;
    }
}

/// The ClusterIPs of a service (none for headless and ExternalName).
fn cluster_ips(kind: &ServiceKind) -> &[IpAddr] {
    match kind {
        ServiceKind::ClusterIp(ips) => ips,
        _ => &[],
    }
}
