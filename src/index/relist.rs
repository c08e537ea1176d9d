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
