//! The controller's caches (Pods, EndpointSlices, Endpoints, Services,
//! Nodes), grouped the way a sync reads them: pods by namespace, slices by
//! (namespace, Service). A
//! sync then touches only its namespace's pods and its Service's slices,
//! not the whole cluster — with a reflector store of every object, each of
//! N syncs walked all M cached objects (at 10k Services × 10 pods, 10,000 ×
//! 100,000 pod conversions: minutes to converge). Entries hold compact
//! records ([`super::record`]), not API objects.
//!
//! Fed by watcher events: a relist (`Init`… `InitDone`) is built beside the
//! live groups and swapped in when complete, as kube-runtime's stores do.
//! [`Grouped::ready`] turns true with the first complete list.

use std::collections::HashMap;
use std::sync::Arc;

use kube::runtime::watcher::Event;

/// `id → value` per group, plus where each id lives (only for filings
/// whose objects can change group).
#[derive(Debug)]
struct Groups<T> {
    groups: HashMap<Box<str>, HashMap<Box<str>, Arc<T>>>,
    group_of: HashMap<Box<str>, Box<str>>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            groups: HashMap::new(),
            group_of: HashMap::new(),
        }
    }
}

impl<T> Groups<T> {
    fn insert(&mut self, stable: bool, group: String, id: String, value: T) {
        if !stable {
            if let Some(old) = self.group_of.get(id.as_str())
                && **old != *group
            {
                let old = old.to_string();
                self.remove(&id, &old);
            }
            self.group_of
                .insert(id.as_str().into(), group.as_str().into());
        }
        self.groups
            .entry(group.into())
            .or_default()
            .insert(id.into(), Arc::new(value));
    }

    fn remove(&mut self, id: &str, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.remove(id);
            if g.is_empty() {
                self.groups.remove(group);
            }
        }
        self.group_of.remove(id);
    }

    /// Where `id` is filed: by its recorded group, or (stable filings) by
    /// the group the object names.
    fn group_of(&self, stable: bool, id: &str, named: Option<String>) -> Option<String> {
        if stable {
            named
        } else {
            self.group_of.get(id).map(|g| g.to_string())
        }
    }
}

/// How to file an API object: its group and id, and its cached form
/// (`None`: not cached, e.g. it cannot be understood).
pub trait Filing<K> {
    /// The cached form.
    type Value;
    /// The group (`None`: not cached).
    fn group(&self, obj: &K) -> Option<String>;
    /// A cluster-unique id (`namespace/name`).
    fn id(&self, obj: &K) -> String;
    /// The cached form (`&mut`: it may share values with earlier ones).
    fn convert(&mut self, obj: &K) -> Option<Self::Value>;
    /// Whether an object's group never changes (e.g. it is its namespace):
    /// then no id → group index is kept, which at 100,000 pods saves a map
    /// entry and two strings each.
    fn stable_group(&self) -> bool {
        false
    }
}

/// A cache of converted objects grouped by key; see the module doc.
#[derive(Debug)]
pub struct Grouped<T> {
    live: Groups<T>,
    building: Option<Groups<T>>,
    ready: bool,
}

impl<T> Default for Grouped<T> {
    fn default() -> Self {
        Grouped {
            live: Groups::default(),
            building: None,
            ready: false,
        }
    }
}

impl<T> Grouped<T> {
    /// Apply one watcher event.
    pub fn apply<K, F: Filing<K, Value = T>>(&mut self, filing: &mut F, event: &Event<K>) {
        match event {
            Event::Init => self.building = Some(Groups::default()),
            Event::InitApply(obj) => {
                if let Some(b) = self.building.as_mut() {
                    file(b, filing, obj);
                }
            }
            Event::InitDone => {
                if let Some(b) = self.building.take() {
                    self.live = b;
                }
                self.ready = true;
            }
            Event::Apply(obj) => file(&mut self.live, filing, obj),
            Event::Delete(obj) => {
                let id = filing.id(obj);
                let stable = filing.stable_group();
                if let Some(group) = self.live.group_of(stable, &id, filing.group(obj)) {
                    self.live.remove(&id, &group);
                }
            }
        }
    }

    /// Whether a first complete list has been applied.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The values of `group`.
    pub fn group(&self, group: &str) -> Vec<Arc<T>> {
        self.live
            .groups
            .get(group)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// `f(id, value)` for each value of `group`, keeping the `Some`s.
    pub fn scan<R>(&self, group: &str, mut f: impl FnMut(&str, &T) -> Option<R>) -> Vec<R> {
        self.live
            .groups
            .get(group)
            .map(|g| g.iter().filter_map(|(id, v)| f(id, v)).collect())
            .unwrap_or_default()
    }

    /// The value with this id in `group`.
    pub fn get_in(&self, group: &str, id: &str) -> Option<Arc<T>> {
        self.live.groups.get(group)?.get(id).cloned()
    }

    /// The value with this id (filings whose groups can change only).
    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        let group = self.live.group_of.get(id)?;
        self.get_in(group, id)
    }

    /// Every `(id, value)`.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Arc<T>)> {
        self.live
            .groups
            .values()
            .flat_map(|g| g.iter().map(|(id, v)| (&**id, v)))
    }

    /// Number of cached values.
    pub fn len(&self) -> usize {
        self.live.groups.values().map(HashMap::len).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.live.groups.is_empty()
    }
}

fn file<K, T, F: Filing<K, Value = T>>(groups: &mut Groups<T>, filing: &mut F, obj: &K) {
    let id = filing.id(obj);
    let stable = filing.stable_group();
    let group = filing.group(obj);
    match (group.clone(), filing.convert(obj)) {
        (Some(group), Some(value)) => groups.insert(stable, group, id, value),
        _ => {
            if let Some(group) = groups.group_of(stable, &id, group) {
                groups.remove(&id, &group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (group, id, value) objects filed as they say.
    struct Plain;
    impl Filing<(&'static str, &'static str, i32)> for Plain {
        type Value = i32;
        fn group(&self, o: &(&'static str, &'static str, i32)) -> Option<String> {
            (o.2 >= 0).then(|| o.0.to_owned())
        }
        fn id(&self, o: &(&'static str, &'static str, i32)) -> String {
            o.1.to_owned()
        }
        fn convert(&mut self, o: &(&'static str, &'static str, i32)) -> Option<i32> {
            Some(o.2)
        }
    }

    fn values(g: &Grouped<i32>, group: &str) -> Vec<i32> {
        let mut v: Vec<i32> = g.group(group).iter().map(|a| **a).collect();
        v.sort();
        v
    }

    #[test]
    fn relist_is_swapped_in_whole_and_events_move_entries() {
        let mut g = Grouped::default();
        assert!(!g.ready());
        g.apply(&mut Plain, &Event::Init);
        g.apply(&mut Plain, &Event::InitApply(("a", "x", 1)));
        g.apply(&mut Plain, &Event::InitApply(("a", "y", 2)));
        assert_eq!(
            values(&g, "a"),
            Vec::<i32>::new(),
            "not live before InitDone"
        );
        g.apply(&mut Plain, &Event::InitDone);
        assert!(g.ready());
        assert_eq!(values(&g, "a"), [1, 2]);
        // An object that changes group leaves the old one.
        g.apply(&mut Plain, &Event::Apply(("b", "y", 3)));
        assert_eq!((values(&g, "a"), values(&g, "b")), (vec![1], vec![3]));
        assert_eq!(g.get("y").map(|v| *v), Some(3));
        // One that is no longer filed (negative: no group) is dropped.
        g.apply(&mut Plain, &Event::Apply(("a", "x", -1)));
        assert_eq!(values(&g, "a"), Vec::<i32>::new());
        g.apply(&mut Plain, &Event::Delete(("b", "y", 3)));
        assert!(g.is_empty());
        // A relist replaces everything, also what it no longer holds.
        g.apply(&mut Plain, &Event::Apply(("c", "z", 9)));
        g.apply(&mut Plain, &Event::Init);
        g.apply(&mut Plain, &Event::InitApply(("d", "w", 4)));
        g.apply(&mut Plain, &Event::InitDone);
        assert_eq!((values(&g, "c"), values(&g, "d")), (vec![], vec![4]));
        assert_eq!(g.len(), 1);
    }

    /// Objects whose group is the part of their id before `/`, and never changes.
    struct Namespaced;
    impl Filing<(&'static str, i32)> for Namespaced {
        type Value = i32;
        fn group(&self, o: &(&'static str, i32)) -> Option<String> {
            o.0.split_once('/').map(|(ns, _)| ns.to_owned())
        }
        fn id(&self, o: &(&'static str, i32)) -> String {
            o.0.to_owned()
        }
        fn convert(&mut self, o: &(&'static str, i32)) -> Option<i32> {
            (o.1 >= 0).then_some(o.1)
        }
        fn stable_group(&self) -> bool {
            true
        }
    }

    #[test]
    fn stable_groups_find_entries_without_an_index() {
        let mut g = Grouped::default();
        let f = &mut Namespaced;
        g.apply(f, &Event::Init);
        g.apply(f, &Event::InitApply(("a/x", 1)));
        g.apply(f, &Event::InitApply(("a/y", 2)));
        g.apply(f, &Event::InitApply(("b/x", 3)));
        g.apply(f, &Event::InitDone);
        assert_eq!(
            (values(&g, "a"), values(&g, "b"), g.len()),
            (vec![1, 2], vec![3], 3)
        );
        assert!(g.live.group_of.is_empty(), "no id index for stable groups");
        g.apply(f, &Event::Apply(("a/x", 5)));
        assert_eq!(g.get_in("a", "a/x").map(|v| *v), Some(5));
        // Not convertible any more: dropped from its group.
        g.apply(f, &Event::Apply(("a/y", -1)));
        g.apply(f, &Event::Delete(("b/x", 3)));
        assert_eq!((values(&g, "a"), values(&g, "b")), (vec![5], vec![]));
        let mut ids: Vec<(String, i32)> = g.scan("a", |id, v| Some((id.to_owned(), *v)));
        ids.sort();
        assert_eq!(ids, [("a/x".to_owned(), 5)]);
        g.apply(f, &Event::Delete(("a/x", 5)));
        assert!(g.is_empty());
    }
}
