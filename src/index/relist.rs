//! A complete new set of one kind, built beside the published index and
//! swapped in whole.
//!
//! A watcher's relist (`Init` … `InitDone`) used to be buffered as a `Vec` of
//! slim objects and only then turned into the index's own form, so at the end
//! of a big list both copies were alive. A [`Relist`] is that index form
//! itself: the source feeds each object in as it arrives (converted once,
//! then dropped) and sends the finished `Relist` as one
//! [`IndexUpdate::Replace`](super::IndexUpdate::Replace).
//!
//! Invariant: applying a `Relist` replaces every map of its kind in one
//! `apply` (the writer publishes once), so a query sees the complete old set
//! or the complete new set, never a mix.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{ClusterIndex, Kind, Object};

/// Identity of a `Relist` (kept by its clones), for `PartialEq`.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The complete new set of one kind, in the index's own form (see the module docs).
#[derive(Clone, Debug)]
pub struct Relist {
    pub(super) kind: Kind,
    /// An index holding only this kind's objects (and the namespace counts they imply).
    pub(super) part: ClusterIndex,
    objects: usize,
    id: u64,
}

impl Relist {
    /// An empty set of `kind`.
    pub fn new(kind: Kind) -> Self {
        Relist {
            kind,
            part: ClusterIndex::bulk(),
            objects: 0,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Adds one object (objects of another kind are ignored).
    pub fn put(&mut self, object: Object) {
        if object.kind() == self.kind {
            self.part.put(object);
            self.objects += 1;
        }
    }

    /// The kind this set replaces.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Number of objects put.
    pub fn len(&self) -> usize {
        self.objects
    }

    /// True when no object was put.
    pub fn is_empty(&self) -> bool {
        self.objects == 0
    }
}

/// Two relists are equal when one is a clone of the other.
impl PartialEq for Relist {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Relist {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexUpdate;
    use crate::index::model::{Endpoint, EndpointSlice, Namespace, Service, ServiceKind};

    fn service(ns: &str, name: &str) -> Object {
        Object::Service(Service {
            namespace: ns.into(),
            name: name.into(),
            kind: ServiceKind::ClusterIp(vec!["10.96.0.1".parse().expect("ip")]),
            ports: Vec::new(),
            external: Vec::new(),
        })
    }

    fn slice(ns: &str, name: &str, svc: &str, ips: &[&str]) -> Object {
        Object::EndpointSlice(EndpointSlice {
            namespace: ns.into(),
            name: name.into(),
            service: svc.into(),
            ports: Vec::new(),
            endpoints: ips
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.parse().expect("ip")],
                    hostname: None,
                    pod_name: None,
                    ready: true,
                    zone: None,
                })
                .collect(),
        })
    }

    #[test]
    fn a_replace_swaps_the_whole_kind_and_ignores_other_kinds() {
        let mut idx = ClusterIndex::default();
        idx.apply(IndexUpdate::Apply(slice("a", "old", "x", &["10.0.0.9"])));
        let mut relist = Relist::new(Kind::EndpointSlice);
        relist.put(slice("a", "s1", "x", &["10.0.0.1", "10.0.0.2"]));
        relist.put(slice("b", "s2", "y", &["10.0.0.1"]));
        relist.put(service("a", "x"));
        assert_eq!((relist.len(), relist.kind()), (2, Kind::EndpointSlice));
        assert!(!idx.is_synced(Kind::EndpointSlice));
        idx.apply(IndexUpdate::Replace(Box::new(relist)));
        assert!(idx.is_synced(Kind::EndpointSlice));
        assert_eq!((idx.endpoint_count(), idx.service_count()), (3, 0));
        let owners: Vec<&str> = idx
            .endpoint_ips
            .owners("10.0.0.1".parse().expect("ip"))
            .collect();
        assert_eq!(owners, ["a/x", "b/y"]);
        assert!(!idx.endpoint_ips.contains("10.0.0.9".parse().expect("ip")));
    }

    #[test]
    fn a_namespace_relist_keeps_namespaces_that_still_hold_services() {
        let mut idx = ClusterIndex::default();
        idx.apply(IndexUpdate::Apply(service("svcns", "x")));
        idx.apply(IndexUpdate::Apply(Object::Namespace(Namespace {
            name: "gone".into(),
        })));
        let mut relist = Relist::new(Kind::Namespace);
        relist.put(Object::Namespace(Namespace { name: "new".into() }));
        idx.apply(IndexUpdate::Replace(Box::new(relist)));
        let mut names: Vec<&str> = idx.namespaces.keys().map(|k| &**k).collect();
        names.sort_unstable();
        assert_eq!(names, ["new", "svcns"]);
    }

    #[test]
    fn relists_equal_only_their_own_clones() {
        let a = Relist::new(Kind::Pod);
        assert_eq!(a, a.clone());
        assert_ne!(a, Relist::new(Kind::Pod));
    }
}
