//! Publishing the index: one writer task, lock-free readers.
//!
//! Readers (every DNS query) load the current `Arc<ClusterIndex>` from an
//! `ArcSwap` and never wait. The single writer task owns all changes: it takes
//! an update from the channel, drains whatever else is already queued (so a
//! burst becomes one publish), applies it to a clone of the current index and
//! swaps the new one in. A query therefore sees either the old or the new
//! state, never a half-applied batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ClusterIndex, IndexUpdate};

/// Most updates folded into one publish, so a flood cannot starve readers of news.
const MAX_BATCH: usize = 4096;

/// The published index, shared by the writer and every reader.
#[derive(Debug, Default)]
pub struct SharedIndex {
    /// Written only by [`run_writer`]; read by the kubernetes plugin per query.
    current: ArcSwap<ClusterIndex>,
    /// Bumped after every publish: answers memoized from an older snapshot
    /// are no longer served ([`crate::dns::memo`]).
    generation: AtomicU64,
}

impl SharedIndex {
    /// A shared index starting from `index`.
    pub fn new(index: ClusterIndex) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(index),
            generation: AtomicU64::new(0),
        })
    }

    /// The publish count. Read it *before* loading the snapshot an answer
    /// comes from: a publish in between then makes the stamp older than the
    /// data, which only costs a memo miss, never a stale answer.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<ClusterIndex> {
        self.current.load_full()
    }

    /// The current snapshot for a short read (one query): no reference-count
    /// traffic on the shared `Arc` in the common case.
    pub fn guard(&self) -> arc_swap::Guard<Arc<ClusterIndex>> {
        self.current.load()
    }

    /// Apply updates now (used by the writer and by tests).
    pub fn apply(&self, updates: impl IntoIterator<Item = IndexUpdate>) {
        let mut next = ClusterIndex::clone(&self.current.load());
        for u in updates {
            next.apply(u);
        }
        next.set_serial(unix_now());
        self.current.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Create the update channel for sources.
pub fn channel() -> (mpsc::Sender<IndexUpdate>, mpsc::Receiver<IndexUpdate>) {
    mpsc::channel(1024)
}

/// The writer task: applies updates until the token is cancelled or every
/// sender is gone.
pub async fn run_writer(
    shared: Arc<SharedIndex>,
    mut rx: mpsc::Receiver<IndexUpdate>,
    token: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = token.cancelled() => return,
            u = rx.recv() => match u {
                Some(u) => u,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        shared.apply(batch);
    }
}
