//! One shared copy of the values that repeat across the controller's cached
//! records — label sets of pods from one template, container port lists,
//! node names, namespaces — instead of one copy per record: at 100,000
//! pods that is the difference between megabytes and kilobytes. Copies no
//! record holds any more are dropped by a sweep that runs whenever the table
//! has doubled since the last one, so churn cannot grow it without bound.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// Below this many entries the table is never swept.
const MIN_SWEEP: usize = 64;

/// A table of shared values; see the module doc.
#[derive(Debug)]
pub struct Interner<T: ?Sized> {
    set: HashSet<Arc<T>>,
    /// Entries left after the last sweep.
    swept_at: usize,
}

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::new(),
            swept_at: 0,
        }
    }
}

impl<T> Interner<T>
where
    T: ?Sized + Hash + Eq,
    for<'a> Arc<T>: From<&'a T>,
{
    /// The shared copy of `value` (made now if there is none).
    pub fn intern(&mut self, value: &T) -> Arc<T> {
        if let Some(v) = self.set.get(value) {
            return v.clone();
        }
        self.add(Arc::from(value))
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// The shared copy of an owned `value` (kept if there is none).
    pub fn intern_owned(&mut self, value: T) -> Arc<T> {
        if let Some(v) = self.set.get(&value) {
            return v.clone();
        }
        self.add(Arc::new(value))
    }
}

impl<T: ?Sized + Hash + Eq> Interner<T> {
    fn add(&mut self, v: Arc<T>) -> Arc<T> {
        if self.set.len() >= MIN_SWEEP.max(self.swept_at.saturating_mul(2)) {
            self.sweep();
        }
        self.set.insert(v.clone());
        v
    }

    /// Drop the copies only the table still holds.
    pub fn sweep(&mut self) {
        self.set.retain(|v| Arc::strong_count(v) > 1);
        self.set.shrink_to_fit();
        self.swept_at = self.set.len();
    }

    /// Distinct values held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy() {
        let mut t: Interner<str> = Interner::default();
        let a = t.intern("node-1");
        let b = t.intern(&String::from("node-1"));
        let c = t.intern("node-2");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!((&*a, &*c, t.len()), ("node-1", "node-2", 2));
        let mut lists: Interner<[(Box<str>, i32)]> = Interner::default();
        let x = lists.intern(&[("http".into(), 80)]);
        let y = lists.intern(&[("http".into(), 80)]);
        assert!(Arc::ptr_eq(&x, &y));
        let mut pairs: Interner<(Option<Arc<str>>, i32)> = Interner::default();
        let p = pairs.intern_owned((Some(a.clone()), 1));
        let q = pairs.intern_owned((Some("node-1".into()), 1));
        assert!(Arc::ptr_eq(&p, &q));
        assert!(!Arc::ptr_eq(&p, &pairs.intern_owned((None, 1))));
    }

    #[test]
    fn unheld_values_are_swept_once_the_table_doubles() {
        let mut t: Interner<str> = Interner::default();
        let kept = t.intern("kept");
        for i in 0..MIN_SWEEP - 1 {
            drop(t.intern(&format!("gone-{i}")));
        }
        assert_eq!(t.len(), MIN_SWEEP, "no sweep below the minimum");
        // The next new value sweeps first: only `kept` survives, plus the new one.
        let new = t.intern("new");
        assert_eq!(t.len(), 2);
        assert!(Arc::ptr_eq(&kept, &t.intern("kept")));
        assert_eq!(&*new, "new");
        // Churn stays bounded: many short-lived values never pile up.
        for i in 0..10 * MIN_SWEEP {
            drop(t.intern(&format!("churn-{i}")));
        }
        assert!(t.len() <= MIN_SWEEP + 2, "table grew to {}", t.len());
    }
}
