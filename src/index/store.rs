//! The index's storage: copy-on-write sharded maps and the per-service
//! endpoint sets, kept so that cloning a whole [`super::ClusterIndex`] copies
//! only a few hundred `Arc` pointers. Endpoint addresses are stored as bare
//! IPs (4 bytes each when a slice is all IPv4, as an EndpointSlice of the
//! API always is; 17 otherwise) with their names out of line only when they
//! have any.
//!
//! Invariant: every map is split into [`SHARDS`] `Arc<HashMap>`s; a writer
//! that changes one key clones only that key's shard (`Arc::make_mut`), so a
//! snapshot taken before the change is never modified and the cost of a batch
//! is proportional to what it touches, not to the cluster size.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::model::{EndpointSlice, ImportKind, Port, Service, ServiceImport, ServiceKind};

/// Number of shards per map: enough that one shard of 150k entries holds
/// ~2k, few enough that a clone is cheap.
pub(super) const SHARDS: usize = 128;

/// A key that picks its shard with a fixed hash (stable across clones).
pub(super) trait ShardKey {
    /// The shard number in `0..SHARDS`.
    fn shard(&self) -> usize;
}

fn fnv(bytes: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) % SHARDS
}

impl ShardKey for str {
    fn shard(&self) -> usize {
        fnv(self.as_bytes())
    }
}

impl ShardKey for Box<str> {
    fn shard(&self) -> usize {
        fnv(self.as_bytes())
    }
}

impl ShardKey for Arc<str> {
    fn shard(&self) -> usize {
        fnv(self.as_bytes())
    }
}

impl ShardKey for IpAddr {
    fn shard(&self) -> usize {
        match self {
            IpAddr::V4(v4) => fnv(&v4.octets()),
            IpAddr::V6(v6) => fnv(&v6.octets()),
        }
    }
}

/// A hash map split into copy-on-write shards.
#[derive(Clone, Debug)]
pub(super) struct Shards<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
}

impl<K, V> Default for Shards<K, V> {
    fn default() -> Self {
        Shards {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
        }
    }
}

impl<K: ShardKey + Hash + Eq + Clone, V: Clone> Shards<K, V> {
    fn shard_mut(&mut self, i: usize) -> &mut HashMap<K, V> {
        Arc::make_mut(&mut self.shards[i])
    }

    /// The value of `key`.
    pub(super) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: ShardKey + Hash + Eq + ?Sized,
    {
        self.shards[key.shard()].get(key)
    }

    /// A mutable value (clones its shard if a snapshot shares it).
    pub(super) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: ShardKey + Hash + Eq + ?Sized,
    {
        let shard = &mut self.shards[key.shard()];
        if !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).get_mut(key)
    }

    /// Inserts, returning the old value.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let i = key.shard();
        self.shard_mut(i).insert(key, value)
    }

    /// Removes, returning the old value.
    pub(super) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: ShardKey + Hash + Eq + ?Sized,
    {
        let i = key.shard();
        if !self.shards[i].contains_key(key) {
            return None;
        }
        self.shard_mut(i).remove(key)
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
}

/// A Service as the index keeps it: its `ns/name` key (the same `Arc` as
/// the map keys and reverse-map owners, so no separate namespace and name
/// strings: ~100 B less per service), its kind and its ports.
#[derive(Debug)]
pub(super) struct ServiceEntry {
    key: Arc<str>,
    /// What kind of answer its name gets.
    pub(super) kind: ServiceKind,
    /// Its ports.
    pub(super) ports: Vec<Port>,
    /// Its external addresses (`k8s_external`).
    pub(super) external: ExternalIps,
}

impl ServiceEntry {
    /// The entry of `svc`, whose key (`ns/name`) is `key`.
    pub(super) fn new(key: Arc<str>, svc: Service) -> Self {
        ServiceEntry {
            key,
            kind: svc.kind,
            ports: svc.ports,
            external: ExternalIps::new(svc.external),
        }
    }

    /// The entry of a ServiceImport (`multicluster`), whose key is `key`: a
    /// ClusterSetIP import answers like a ClusterIP service, a headless one
    /// like a headless service.
    pub(super) fn import(key: Arc<str>, import: ServiceImport) -> Self {
        let kind = match import.kind {
            ImportKind::ClusterSetIp(ips) => ServiceKind::ClusterIp(ips),
            ImportKind::Headless => ServiceKind::Headless,
        };
        ServiceEntry {
            key,
            kind,
            ports: import.ports,
            external: ExternalIps::new(Vec::new()),
        }
    }

    /// Its namespace (lower-cased).
    pub(super) fn namespace(&self) -> &str {
        self.key.split_once('/').map_or("", |(ns, _)| ns)
    }

    /// Its name (lower-cased).
    pub(super) fn name(&self) -> &str {
        self.key.split_once('/').map_or(&*self.key, |(_, n)| n)
    }
}

/// A service's external addresses behind one thin pointer: 8 bytes in every
/// [`ServiceEntry`] (which keeps its `Arc` allocation in the 96-byte class of
/// the allocator; a 16-byte boxed slice would move every service to 112), and
/// a second allocation only for the few services that have any.
#[derive(Debug, Default)]
pub(super) struct ExternalIps(Option<Box<Box<[IpAddr]>>>);

impl ExternalIps {
    /// The addresses of `ips` (no allocation when empty).
    pub(super) fn new(ips: Vec<IpAddr>) -> Self {
        ExternalIps((!ips.is_empty()).then(|| Box::new(ips.into_boxed_slice())))
    }
}

impl std::ops::Deref for ExternalIps {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        self.0.as_deref().map_or(&[], |ips| ips)
    }
}

/// One ready address of an endpoint, as lookups see it (a view into a
/// [`SlicePart`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Addr<'a> {
    /// The address.
    pub(super) ip: IpAddr,
    /// `hostname` of its endpoint, lower-cased.
    pub(super) hostname: Option<&'a str>,
    /// Name of the Pod behind it, lower-cased.
    pub(super) pod_name: Option<&'a str>,
    /// The member cluster of a multicluster slice (empty otherwise).
    pub(super) cluster: &'a str,
    /// The topology zone of its endpoint (`zone`), when known and kept.
    pub(super) zone: Option<&'a str>,
}

/// The names of the address at `at` in [`SlicePart::ips`]; stored only for
/// addresses that have one, so a nameless address costs just its IP.
#[derive(Debug)]
struct Named {
    at: u32,
    hostname: Option<Box<str>>,
    pod_name: Option<Box<str>>,
}

/// One EndpointSlice reduced to what DNS answers: its ports and its ready
/// addresses (not-ready endpoints are dropped here, as CoreDNS does).
#[derive(Debug)]
pub(super) struct SlicePart {
    /// The slice's name.
    pub(super) name: Box<str>,
    /// Ports; empty for a portless service.
    pub(super) ports: Box<[Port]>,
    /// Ready addresses.
    ips: Ips,
    /// Names of the addresses that have any, sorted by `at`.
    names: Box<[Named]>,
    /// What only `multicluster` and `zonal` slices have, out of line: one
    /// pointer per slice otherwise.
    extra: Option<Box<SliceExtra>>,
}

/// The rarely present parts of a [`SlicePart`].
#[derive(Debug, Default)]
struct SliceExtra {
    /// The member cluster id of a multicluster slice (empty for this cluster's).
    cluster: Box<str>,
    /// The distinct topology zones of the slice's endpoints (a slice's
    /// endpoints share a handful), each string once per slice.
    zones: Box<[Arc<str>]>,
    /// Per ready address, 1 + its zone's index in `zones`, 0 for none: one
    /// byte per address, empty when no endpoint has a zone.
    zone_at: Box<[u8]>,
}

/// The ready addresses of a slice: 4 bytes each when all are IPv4 (an
/// EndpointSlice has one address type), 17 when the families are mixed or IPv6.
#[derive(Debug)]
enum Ips {
    V4(Box<[Ipv4Addr]>),
    Any(Box<[IpAddr]>),
}

impl Ips {
    fn new(ips: Vec<IpAddr>) -> Self {
        let v4: Option<Vec<Ipv4Addr>> = ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        match v4 {
            Some(v4) => Ips::V4(v4.into_boxed_slice()),
            None => Ips::Any(ips.into_boxed_slice()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Ips::V4(a) => a.len(),
            Ips::Any(a) => a.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let (v4, any) = match self {
            Ips::V4(a) => (Some(a.iter().map(|&a| IpAddr::V4(a))), None),
            Ips::Any(a) => (None, Some(a.iter().copied())),
        };
        v4.into_iter().flatten().chain(any.into_iter().flatten())
    }
}

impl SlicePart {
    pub(super) fn new(slice: EndpointSlice) -> Self {
        let mut ips = Vec::new();
        let mut names = Vec::new();
        let mut zones: Vec<Arc<str>> = Vec::new();
        let mut zone_at: Vec<u8> = Vec::new();
        for ep in slice.endpoints.into_iter().filter(|ep| ep.ready) {
            let named = ep.hostname.is_some() || ep.pod_name.is_some();
            let zone = ep.zone.as_ref().map_or(0, |z| {
                let i = zones.iter().position(|k| k == z).unwrap_or_else(|| {
                    zones.push(z.clone());
                    zones.len() - 1
                });
                // Past 255 distinct zones in one slice (no real cluster has
                // that many) an endpoint counts as zoneless.
                u8::try_from(i + 1).unwrap_or(0)
            });
            if zone != 0 && zone_at.is_empty() {
                zone_at.resize(ips.len(), 0);
            }
            for ip in ep.addresses {
                if !zone_at.is_empty() || zone != 0 {
                    zone_at.push(zone);
                }
                if named {
                    // An address count beyond u32 cannot come from one API object.
                    let at = u32::try_from(ips.len()).unwrap_or(u32::MAX);
                    names.push(Named {
                        at,
                        hostname: ep.hostname.clone(),
                        pod_name: ep.pod_name.clone(),
                    });
                }
                ips.push(ip);
            }
        }
        let extra = (!zone_at.is_empty()).then(|| {
            Box::new(SliceExtra {
                cluster: Box::default(),
                zones: zones.into_boxed_slice(),
                zone_at: zone_at.into_boxed_slice(),
            })
        });
        SlicePart {
            name: slice.name,
            ports: slice.ports.into_boxed_slice(),
            ips: Ips::new(ips),
            names: names.into_boxed_slice(),
            extra,
        }
    }

    /// The part of an imported slice from member cluster `cluster`.
    pub(super) fn imported(slice: EndpointSlice, cluster: Box<str>) -> Self {
        let mut part = Self::new(slice);
        if !cluster.is_empty() {
            part.extra.get_or_insert_with(Box::default).cluster = cluster;
        }
        part
    }

    /// The member cluster of an imported slice; empty for this cluster's.
    fn cluster(&self) -> &str {
        self.extra.as_ref().map_or("", |e| &e.cluster)
    }

    /// Number of ready addresses.
    pub(super) fn len(&self) -> usize {
        self.ips.len()
    }

    /// The ready addresses.
    pub(super) fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.iter()
    }

    /// The topology zone of the ready address at `i`.
    fn zone_of(&self, i: usize) -> Option<&str> {
        let extra = self.extra.as_ref()?;
        let at = usize::from(*extra.zone_at.get(i)?);
        extra.zones.get(at.checked_sub(1)?).map(|z| &**z)
    }

    /// Every ready address with its names.
    pub(super) fn addrs(&self) -> impl Iterator<Item = Addr<'_>> {
        let mut names = self.names.iter().peekable();
        self.ips.iter().enumerate().map(move |(i, ip)| {
            let named = names.next_if(|n| usize::try_from(n.at).is_ok_and(|at| at == i));
            Addr {
                ip,
                hostname: named.and_then(|n| n.hostname.as_deref()),
                pod_name: named.and_then(|n| n.pod_name.as_deref()),
                cluster: self.cluster(),
                zone: self.zone_of(i),
            }
        })
    }
}

/// All slices of one service, merged at apply time: parts sorted by slice name
/// (a stable answer order) and the count of ready addresses.
#[derive(Clone, Debug, Default)]
pub(super) struct EndpointSet {
    /// The slices' parts.
    pub(super) parts: Vec<Arc<SlicePart>>,
    /// Ready addresses over all parts.
    pub(super) ready: usize,
}

impl EndpointSet {
    /// Inserts or replaces the part with this slice name.
    pub(super) fn put(&mut self, part: Arc<SlicePart>) {
        self.ready += part.len();
        match self.parts.binary_search_by(|p| p.name.cmp(&part.name)) {
            Ok(i) => {
                self.ready -= self.parts[i].len();
                self.parts[i] = part;
            }
            Err(i) => self.parts.insert(i, part),
        }
    }

    /// Removes the part of this slice name.
    pub(super) fn remove(&mut self, name: &str) -> Option<Arc<SlicePart>> {
        let i = self.parts.binary_search_by(|p| (*p.name).cmp(name)).ok()?;
        let part = self.parts.remove(i);
        self.ready -= part.len();
        Some(part)
    }

    /// Every ready address with its slice's ports.
    pub(super) fn addrs(&self) -> impl Iterator<Item = (Addr<'_>, &[Port])> {
        self.parts
            .iter()
            .flat_map(|p| p.addrs().map(move |a| (a, &*p.ports)))
    }
}

/// What makes a namespace exist.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NsInfo {
    /// A Namespace object is known.
    pub(super) object: bool,
    /// Services living in it.
    pub(super) services: u32,
    /// ServiceImports living in it (`multicluster`).
    pub(super) imports: u32,
}

impl NsInfo {
    /// Nothing makes the namespace exist any more.
    pub(super) fn is_empty(&self) -> bool {
        !self.object && self.services == 0 && self.imports == 0
    }
}

/// The map key of a namespaced object: `ns/name` (neither may contain `/`).
pub(super) fn key(ns: &str, name: &str) -> Box<str> {
    let mut k = String::with_capacity(ns.len() + 1 + name.len());
    k.push_str(ns);
    k.push('/');
    k.push_str(name);
    k.into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::model::Endpoint;

    fn ep(ips: &[&str], hostname: Option<&str>, pod: Option<&str>, ready: bool) -> Endpoint {
        Endpoint {
            addresses: ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
            hostname: hostname.map(Into::into),
            pod_name: pod.map(Into::into),
            ready,
            zone: None,
        }
    }

    #[test]
    fn names_stay_with_their_addresses_when_kept_out_of_line() {
        let part = SlicePart::new(EndpointSlice {
            namespace: "ns".into(),
            name: "s".into(),
            service: "svc".into(),
            ports: Vec::new(),
            endpoints: vec![
                ep(&["10.0.0.1"], None, None, true),
                ep(&["10.0.0.2"], Some("web-0"), None, true),
                ep(&["10.0.0.3"], Some("hidden"), None, false),
                ep(&["10.0.0.4", "fd00::4"], None, Some("pod-4"), true),
                ep(&["10.0.0.5"], None, None, true),
            ],
        });
        let got: Vec<(String, Option<&str>, Option<&str>)> = part
            .addrs()
            .map(|a| (a.ip.to_string(), a.hostname, a.pod_name))
            .collect();
        let want = [
            ("10.0.0.1", None, None),
            ("10.0.0.2", Some("web-0"), None),
            ("10.0.0.4", None, Some("pod-4")),
            ("fd00::4", None, Some("pod-4")),
            ("10.0.0.5", None, None),
        ];
        let want: Vec<(String, Option<&str>, Option<&str>)> = want
            .iter()
            .map(|(ip, h, p)| (ip.to_string(), *h, *p))
            .collect();
        assert_eq!(got, want);
        assert_eq!(part.len(), 5);
    }

    #[test]
    fn an_all_ipv4_slice_keeps_its_addresses_compact_and_in_order() {
        let endpoints = vec![
            ep(&["10.0.0.2"], None, None, true),
            ep(&["10.0.0.1"], Some("web-1"), None, true),
        ];
        let part = SlicePart::new(EndpointSlice {
            namespace: "ns".into(),
            name: "s".into(),
            service: "svc".into(),
            ports: Vec::new(),
            endpoints,
        });
        assert!(matches!(part.ips, Ips::V4(_)));
        let got: Vec<(String, Option<&str>)> = part
            .addrs()
            .map(|a| (a.ip.to_string(), a.hostname))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.2".to_string(), None),
                ("10.0.0.1".to_string(), Some("web-1"))
            ]
        );
        let ips: Vec<IpAddr> = part.ips().collect();
        assert_eq!(ips, [ip4("10.0.0.2"), ip4("10.0.0.1")]);
    }

    /// The index keeps one `Arc<ServiceEntry>` per Service: 16 bytes of
    /// counts plus this must stay within the allocator's 96-byte class.
    #[test]
    fn a_service_entry_stays_small_with_or_without_external_addresses() {
        assert_eq!(std::mem::size_of::<ServiceEntry>(), 72);
        let none = ExternalIps::new(Vec::new());
        assert!(none.is_empty() && none.0.is_none());
        let some = ExternalIps::new(vec![ip4("192.0.2.1"), ip4("192.0.2.2")]);
        assert_eq!(&*some, [ip4("192.0.2.1"), ip4("192.0.2.2")]);
    }

    #[test]
    fn zones_are_kept_once_per_slice_and_found_per_address() {
        let zoned = |ip: &str, zone: Option<&str>, ready: bool| Endpoint {
            zone: zone.map(Arc::from),
            ..ep(&[ip], None, None, ready)
        };
        let part = SlicePart::new(EndpointSlice {
            namespace: "ns".into(),
            name: "s".into(),
            service: "svc".into(),
            ports: Vec::new(),
            endpoints: vec![
                zoned("10.0.0.1", None, true),
                zoned("10.0.0.2", Some("a"), true),
                zoned("10.0.0.3", Some("b"), false),
                zoned("10.0.0.4", Some("b"), true),
                zoned("10.0.0.5", Some("a"), true),
            ],
        });
        let got: Vec<Option<&str>> = part.addrs().map(|a| a.zone).collect();
        assert_eq!(got, [None, Some("a"), Some("b"), Some("a")]);
        let extra = part.extra.as_ref().expect("zones kept");
        assert_eq!((extra.zones.len(), extra.zone_at.len()), (2, 4));
        // No zone anywhere: nothing is stored for zones.
        let plain = SlicePart::new(EndpointSlice {
            namespace: "ns".into(),
            name: "s".into(),
            service: "svc".into(),
            ports: Vec::new(),
            endpoints: vec![ep(&["10.0.0.1"], None, None, true)],
        });
        assert!(plain.extra.is_none());
        assert_eq!(plain.addrs().next().and_then(|a| a.zone), None);
    }

    fn ip4(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }
}
