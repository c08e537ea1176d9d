//! The controller's caches of Pods and EndpointSlices, grouped the way a
//! sync reads them: pods by namespace, slices by (namespace, Service). A
//! sync then touches only its namespace's pods and its Service's slices,
//! not the whole cluster — with a reflector store of every object, each of
//! N syncs walked all M cached objects (at 10k Services × 10 pods, 10,000 ×
//! 100,000 pod conversions: minutes to converge). Entries hold the converted
//! form a sync uses (pods as compact [`super::model::Pod`]s, not API objects).
//!
//! Fed by watcher events: a relist (`Init`… `InitDone`) is built beside the
//! live groups and swapped in when complete, as kube-runtime's stores do.
//! [`Grouped::ready`] turns true with the first complete list.

use std::collections::HashMap;
use std::sync::Arc;

use kube::runtime::watcher::Event;

/// `id → value` per group, plus where each id lives.
#[derive(Debug)]
struct Groups<T> {
    groups: HashMap<String, HashMap<String, Arc<T>>>,
    group_of: HashMap<String, String>,
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
    fn insert(&mut self, group: String, id: String, value: T) {
        if let Some(old) = self.group_of.get(&id)
            && *old != group
        {
            let old = old.clone();
            self.remove(&id, &old);
        }
        self.group_of.insert(id.clone(), group.clone());
        self.groups
            .entry(group)
            .or_default()
            .insert(id, Arc::new(value));
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
    /// The cached form.
    fn convert(&self, obj: &K) -> Option<Self::Value>;
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
    pub fn apply<K, F: Filing<K, Value = T>>(&mut self, filing: &F, event: &Event<K>) {
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
                if let Some(group) = self.live.group_of.get(&id).cloned() {
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

    /// The value with this id.
    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        let group = self.live.group_of.get(id)?;
        self.live.groups.get(group)?.get(id).cloned()
    }

    /// Every value.
    pub fn all(&self) -> impl Iterator<Item = &Arc<T>> {
        self.live.groups.values().flat_map(|g| g.values())
    }

    /// Number of cached values.
    pub fn len(&self) -> usize {
        self.live.group_of.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn file<K, T, F: Filing<K, Value = T>>(groups: &mut Groups<T>, filing: &F, obj: &K) {
    let id = filing.id(obj);
    match (filing.group(obj), filing.convert(obj)) {
        (Some(group), Some(value)) => groups.insert(group, id, value),
        _ => {
            if let Some(group) = groups.group_of.get(&id).cloned() {
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
        fn convert(&self, o: &(&'static str, &'static str, i32)) -> Option<i32> {
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
        g.apply(&Plain, &Event::Init);
        g.apply(&Plain, &Event::InitApply(("a", "x", 1)));
        g.apply(&Plain, &Event::InitApply(("a", "y", 2)));
        assert_eq!(
            values(&g, "a"),
            Vec::<i32>::new(),
            "not live before InitDone"
        );
        g.apply(&Plain, &Event::InitDone);
        assert!(g.ready());
        assert_eq!(values(&g, "a"), [1, 2]);
        // An object that changes group leaves the old one.
        g.apply(&Plain, &Event::Apply(("b", "y", 3)));
        assert_eq!((values(&g, "a"), values(&g, "b")), (vec![1], vec![3]));
        assert_eq!(g.get("y").map(|v| *v), Some(3));
        // One that is no longer filed (negative: no group) is dropped.
        g.apply(&Plain, &Event::Apply(("a", "x", -1)));
        assert_eq!(values(&g, "a"), Vec::<i32>::new());
        g.apply(&Plain, &Event::Delete(("b", "y", 3)));
        assert!(g.is_empty());
        // A relist replaces everything, also what it no longer holds.
        g.apply(&Plain, &Event::Apply(("c", "z", 9)));
        g.apply(&Plain, &Event::Init);
        g.apply(&Plain, &Event::InitApply(("d", "w", 4)));
        g.apply(&Plain, &Event::InitDone);
        assert_eq!((values(&g, "c"), values(&g, "d")), (vec![], vec![4]));
        assert_eq!(g.len(), 1);
    }
}
