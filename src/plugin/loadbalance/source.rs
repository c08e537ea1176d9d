//! The `weighted` policy's weight file on disk: read at build, re-read by a
//! background task every `reload` while the configuration lives, so queries
//! only ever see a whole parsed table (swapped atomically).
//!
//! As CoreDNS: the file is re-parsed only when its content changed; a broken
//! edit is logged (once per content) and the last good weights keep being
//! used; a file missing at start is an error unless `reload` is on, in which
//! case it is a warning and every address weighs 1 until the file appears.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::weights::{Weights, WeightsError};

/// Why the weight file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightFileError {
    /// The file could not be read.
    #[error("loadbalance: cannot read weight file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's text is not a weight file.
    #[error("loadbalance: weight file {}:{source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The bad line.
        source: WeightsError,
    },
}

/// What one look at the file did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Same content as last time: nothing to do.
    Unchanged,
    /// New content, parsed and published.
    Loaded,
    /// Unreadable, or new content that does not parse: the weights are kept.
    Failed,
}

/// The weights in use and the file they come from; shared by the plugin and
/// its reload task.
pub struct WeightSource {
    path: PathBuf,
    /// Read by every query; replaced whole by a successful reload.
    weights: ArcSwap<Weights>,
    /// What the reload path saw last. Only the reload path locks it.
    seen: Mutex<Seen>,
}

/// The file as last seen.
#[derive(Default)]
struct Seen {
    /// The content last read (good or bad), so an unchanged file is not
    /// re-parsed and a broken one is logged once.
    content: Option<Vec<u8>>,
    /// The last read failed (logged once until it succeeds).
    unreadable: bool,
}

impl std::fmt::Debug for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WeightSource {
    /// Read and parse `path` now. A parse error is always an error; an
    /// unreadable file only when `reload` is zero (nothing would ever read it
    /// again), else a warning and empty weights.
    pub fn load(path: &Path, reload: Duration) -> Result<Arc<Self>, WeightFileError> {
        let source = Arc::new(Self {
            path: path.to_path_buf(),
            weights: ArcSwap::from_pointee(Weights::default()),
            seen: Mutex::default(),
        });
        match std::fs::read(path) {
            Ok(bytes) => source.accept(bytes)?,
            Err(e) if reload.is_zero() => {
                return Err(WeightFileError::Read {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                every = ?reload,
                "loadbalance: cannot read the weight file; every address weighs 1 until it can be read"
            ),
        }
        Ok(source)
    }

    /// The weights in use now.
    pub fn weights(&self) -> arc_swap::Guard<Arc<Weights>> {
        self.weights.load()
    }

    /// Parse `bytes` as the new content and publish it, remembering it as seen.
    fn accept(&self, bytes: Vec<u8>) -> Result<(), WeightFileError> {
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| WeightFileError::Read {
                path: self.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
            .and_then(|text| {
                Weights::parse(text).map_err(|source| WeightFileError::Parse {
                    path: self.path.clone(),
                    source,
                })
            });
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Seen {
            content: Some(bytes),
            unreadable: false,
        };
        let weights = parsed?;
        tracing::info!(
            path = %self.path.display(),
            names = weights.names(),
            "loadbalance: weight file loaded"
        );
        self.weights.store(Arc::new(weights));
        Ok(())
    }

    /// Re-read the file; publish it if its content changed and parses.
    pub fn refresh(&self) -> Refresh {
        let read = std::fs::read(&self.path);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) => {
                if !seen.unreadable {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        "loadbalance: cannot read the weight file; keeping the previous weights"
                    );
                }
                seen.unreadable = true;
                return Refresh::Failed;
            }
        };
        seen.unreadable = false;
        if seen.content.as_deref() == Some(&bytes[..]) {
            return Refresh::Unchanged;
        }
        drop(seen);
        match self.accept(bytes) {
            Ok(()) => Refresh::Loaded,
            Err(e) => {
                tracing::error!(error = %e, "loadbalance: keeping the previous weights");
                Refresh::Failed
            }
        }
    }

    /// Re-read the file every `every` until `token` is cancelled (a reload of
    /// the configuration or shutdown). Needs a tokio runtime; without one (or
    /// with a zero interval) nothing is spawned.
    pub fn spawn_reload(self: &Arc<Self>, every: Duration, token: &CancellationToken) {
        if every.is_zero() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (source, token) = (Arc::clone(self), token.clone());
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // immediate: the file was just read
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    _ = tick.tick() => {
                        let s = Arc::clone(&source);
                        // Off the query threads: a slow disk must not stall them.
                        if tokio::task::spawn_blocking(move || s.refresh()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
