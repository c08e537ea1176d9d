//! What changed since the proxy's last sync, told by the watch events, so a
//! sync after one endpoint change re-renders that one Service instead of
//! converting, grouping and comparing all of them (at 10k Services that
//! O(all) work was about a third of a one-change sync). The watch tasks
//! record each event here after the reflector stored it; the sync loop
//! takes the set. A relist or a Node change marks everything, and the sync
//! loop then starts over from the stores.
//!
//! It also keeps which slices belong to which Service (by the
//! `kubernetes.io/service-name` label), since the store cannot be asked.
//!
//! Pure: no I/O, no clock.

use std::collections::{BTreeSet, HashMap};

/// `namespace/name`.
pub type Key = String;

/// See the module doc.
#[derive(Debug, Default)]
pub struct Changes {
    all: bool,
    services: BTreeSet<Key>,
    /// Service key → its slices' keys.
    slices_of: HashMap<Key, BTreeSet<Key>>,
    /// Slice key → its Service's key.
    owner: HashMap<Key, Key>,
}

/// What [`Changes::take`] hands the sync loop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Everything may have changed.
    pub all: bool,
    /// The Services (keys) whose Service object or slices changed.
    pub services: BTreeSet<Key>,
}

impl Changes {
    /// Nothing known yet: everything to do.
    pub fn new() -> Self {
        Changes {
            all: true,
            ..Changes::default()
        }
    }

    /// Everything may have changed (a relist, a Node change).
    pub fn everything(&mut self) {
        self.all = true;
    }

    /// A Service was stored or deleted.
    pub fn service(&mut self, key: Key) {
        self.services.insert(key);
    }

    /// A slice was stored, naming Service `service` (key) if it has the label.
    pub fn slice(&mut self, key: Key, service: Option<Key>) {
        self.slice_gone(&key);
        if let Some(svc) = service {
            self.slices_of
                .entry(svc.clone())
                .or_default()
                .insert(key.clone());
            self.owner.insert(key, svc.clone());
            self.services.insert(svc);
        }
    }

    /// A slice was deleted.
    pub fn slice_deleted(&mut self, key: &str) {
        self.slice_gone(key);
    }

    /// Forget `key`'s ownership, marking its Service changed.
    fn slice_gone(&mut self, key: &str) {
        if let Some(svc) = self.owner.remove(key) {
            if let Some(set) = self.slices_of.get_mut(&svc) {
                set.remove(key);
                if set.is_empty() {
                    self.slices_of.remove(&svc);
                }
            }
            self.services.insert(svc);
        }
    }

    /// Rebuild the slice index from every stored slice (key, Service key);
    /// call with the store read while holding the lock around `self`, so
    /// no event is lost between the read and the rebuild.
    pub fn reindex(&mut self, slices: impl IntoIterator<Item = (Key, Option<Key>)>) {
        self.slices_of.clear();
        self.owner.clear();
        for (key, svc) in slices {
            if let Some(svc) = svc {
                self.slices_of
                    .entry(svc.clone())
                    .or_default()
                    .insert(key.clone());
                self.owner.insert(key, svc);
            }
        }
    }

    /// The slices (keys) of Service `svc`.
    pub fn slices_of(&self, svc: &str) -> impl Iterator<Item = &Key> {
        self.slices_of.get(svc).into_iter().flatten()
    }

    /// What changed since the last call; the index stays.
    pub fn take(&mut self) -> Taken {
        Taken {
            all: std::mem::take(&mut self.all),
            services: std::mem::take(&mut self.services),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Changes, svc: &str) -> Vec<String> {
        c.slices_of(svc).cloned().collect()
    }

    #[test]
    fn events_mark_their_services_and_keep_the_slice_index() {
        let mut c = Changes::new();
        assert!(c.take().all, "everything at start");
        assert_eq!(c.take(), Taken::default(), "then nothing");

        c.reindex([
            ("ns/web-1".to_owned(), Some("ns/web".to_owned())),
            ("ns/stray".to_owned(), None),
        ]);
        assert_eq!(keys(&c, "ns/web"), ["ns/web-1"]);
        assert_eq!(c.take(), Taken::default(), "a reindex changes nothing");

        // A second slice, a Service edit, a slice moving to another Service.
        c.slice("ns/web-2".into(), Some("ns/web".into()));
        c.service("ns/db".into());
        c.slice("ns/web-1".into(), Some("ns/api".into()));
        assert_eq!(keys(&c, "ns/web"), ["ns/web-2"]);
        assert_eq!(keys(&c, "ns/api"), ["ns/web-1"]);
        let t = c.take();
        assert!(!t.all);
        assert_eq!(
            t.services.iter().collect::<Vec<_>>(),
            ["ns/api", "ns/db", "ns/web"]
        );

        // Deleting marks the owner; an unknown slice marks nothing.
        c.slice_deleted("ns/web-2");
        c.slice_deleted("ns/nobody");
        assert!(keys(&c, "ns/web").is_empty());
        assert_eq!(
            c.take().services.into_iter().collect::<Vec<_>>(),
            ["ns/web"]
        );

        c.everything();
        assert!(c.take().all);
    }
}
