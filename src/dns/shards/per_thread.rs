//! One value per thread for an owner (a metric set, a counter), all of them
//! reachable from the owner: what the per-thread metric buffers and the
//! per-thread counters share. A thread finds its value with a short scan of
//! its own list (no lock, nothing shared written); the owner visits every
//! thread's value when it is scraped.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

type Erased = Arc<dyn Any + Send + Sync>;

thread_local! {
    /// This thread's value of each owner it has used.
    static MINE: RefCell<Vec<(u64, Erased)>> = const { RefCell::new(Vec::new()) };
}

/// The owner of one `T` per thread.
pub(super) struct PerThread<T> {
    id: u64,
    all: Mutex<Vec<Arc<T>>>,
}

impl<T: Default + Send + Sync + 'static> Default for PerThread<T> {
    fn default() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            all: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Default + Send + Sync + 'static> PerThread<T> {
    /// An identity for logs and debugging.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Run `f` on this thread's value (created on the thread's first use).
    /// `f` must not use another `PerThread` for the first time on this thread.
    pub(super) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        MINE.with(|mine| {
            {
                let mine = mine.borrow();
                let found = mine
                    .iter()
                    .find(|(id, _)| *id == self.id)
                    .and_then(|(_, v)| v.downcast_ref::<T>());
                if let Some(value) = found {
                    return f(value);
                }
            }
            let value = Arc::new(T::default());
            self.lock().push(Arc::clone(&value));
            let out = f(&value);
            let mut mine = mine.borrow_mut();
            // Forget the values of owners that are gone.
            mine.retain(|(_, v)| Arc::strong_count(v) > 1);
            mine.push((self.id, value));
            out
        })
    }

    /// Visit every thread's value.
    pub(super) fn each(&self, mut f: impl FnMut(&T)) {
        for value in self.lock().iter() {
            f(value);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<T>>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_value_and_the_owner_sees_them_all() {
        let owner = PerThread::<AtomicU64>::default();
        std::thread::scope(|s| {
            for n in 1..=3u64 {
                let owner = &owner;
                s.spawn(move || {
                    for _ in 0..n {
                        owner.with(|v| v.fetch_add(1, Ordering::Relaxed));
                    }
                    assert_eq!(owner.with(|v| v.load(Ordering::Relaxed)), n);
                });
            }
        });
        let mut seen = Vec::new();
        owner.each(|v| seen.push(v.load(Ordering::Relaxed)));
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3]);
    }
}
