//! The index's storage: copy-on-write sharded maps and the per-service
//! endpoint sets, kept so that cloning a whole [`super::ClusterIndex`] copies
//! only a few hundred `Arc` pointers.
//!
//! Invariant: every map is split into [`SHARDS`] `Arc<HashMap>`s; a writer
//! that changes one key clones only that key's shard (`Arc::make_mut`), so a
//! snapshot taken before the change is never modified and the cost of a batch
//! is proportional to what it touches, not to the cluster size.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use super::model::{EndpointSlice, Port};

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

/// Who owns an address in a reverse map: keys (`ns/name` of a service, or a
/// namespace for pods) with a count, because one address can be listed twice
/// (e.g. in two slices of one service during a move). One owner is inline.
#[derive(Clone, Debug)]
pub(super) enum Owners {
    /// The common case.
    One(Arc<str>, u32),
    /// Several owners.
    Many(Vec<(Arc<str>, u32)>),
}

impl Owners {
    /// Every distinct owner.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Owners::One(k, _) => (Some(&**k), &[][..]),
            Owners::Many(v) => (None, &v[..]),
        };
        one.into_iter().chain(many.iter().map(|(k, _)| &**k))
    }
}

/// Adds one reference from `owner` to `ip`.
pub(super) fn owner_add(map: &mut Shards<IpAddr, Owners>, ip: IpAddr, owner: &Arc<str>) {
    let Some(owners) = map.get_mut(&ip) else {
        map.insert(ip, Owners::One(owner.clone(), 1));
        return;
    };
    match owners {
        Owners::One(k, n) if **k == **owner => *n += 1,
        Owners::One(k, n) => *owners = Owners::Many(vec![(k.clone(), *n), (owner.clone(), 1)]),
        Owners::Many(v) => match v.iter_mut().find(|(k, _)| **k == **owner) {
            Some((_, n)) => *n += 1,
            None => v.push((owner.clone(), 1)),
        },
    }
}

/// Drops one reference from `owner` to `ip`, removing the address when unowned.
pub(super) fn owner_remove(map: &mut Shards<IpAddr, Owners>, ip: IpAddr, owner: &str) {
    let Some(owners) = map.get_mut(&ip) else {
        return;
    };
    let empty = match owners {
        Owners::One(k, n) if &**k == owner => {
            *n -= 1;
            *n == 0
        }
        Owners::One(..) => false,
        Owners::Many(v) => {
            if let Some(i) = v.iter().position(|(k, _)| &**k == owner) {
                v[i].1 -= 1;
                if v[i].1 == 0 {
                    v.swap_remove(i);
                }
            }
            let single = match &v[..] {
                [(k, n)] => Some((k.clone(), *n)),
                _ => None,
            };
            if let Some((k, n)) = single {
                *owners = Owners::One(k, n);
            }
            false
        }
    };
    if empty {
        map.remove(&ip);
    }
}

/// One ready address of an endpoint.
#[derive(Clone, Debug)]
pub(super) struct Addr {
    /// The address.
    pub(super) ip: IpAddr,
    /// `hostname` of its endpoint, lower-cased.
    pub(super) hostname: Option<Box<str>>,
    /// Name of the Pod behind it, lower-cased.
    pub(super) pod_name: Option<Box<str>>,
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
    pub(super) addrs: Box<[Addr]>,
}

impl SlicePart {
    pub(super) fn new(slice: EndpointSlice) -> Self {
        let addrs = slice
            .endpoints
            .into_iter()
            .filter(|ep| ep.ready)
            .flat_map(|ep| {
                let (hostname, pod_name) = (ep.hostname, ep.pod_name);
                ep.addresses.into_iter().map(move |ip| Addr {
                    ip,
                    hostname: hostname.clone(),
                    pod_name: pod_name.clone(),
                })
            })
            .collect();
        SlicePart {
            name: slice.name,
            ports: slice.ports.into_boxed_slice(),
            addrs,
        }
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
        self.ready += part.addrs.len();
        match self.parts.binary_search_by(|p| p.name.cmp(&part.name)) {
            Ok(i) => {
                self.ready -= self.parts[i].addrs.len();
                self.parts[i] = part;
            }
            Err(i) => self.parts.insert(i, part),
        }
    }

    /// Removes the part of this slice name.
    pub(super) fn remove(&mut self, name: &str) -> Option<Arc<SlicePart>> {
        let i = self.parts.binary_search_by(|p| (*p.name).cmp(name)).ok()?;
        let part = self.parts.remove(i);
        self.ready -= part.addrs.len();
        Some(part)
    }

    /// Every ready address with its slice's ports.
    pub(super) fn addrs(&self) -> impl Iterator<Item = (&Addr, &[Port])> {
        self.parts
            .iter()
            .flat_map(|p| p.addrs.iter().map(move |a| (a, &*p.ports)))
    }
}

/// What makes a namespace exist.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NsInfo {
    /// A Namespace object is known.
    pub(super) object: bool,
    /// Services living in it.
    pub(super) services: u32,
}

/// The map key of a namespaced object: `ns/name` (neither may contain `/`).
pub(super) fn key(ns: &str, name: &str) -> Box<str> {
    let mut k = String::with_capacity(ns.len() + 1 + name.len());
    k.push_str(ns);
    k.push('/');
    k.push_str(name);
    k.into_boxed_str()
}
