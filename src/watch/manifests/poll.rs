//! The polling loop of the `manifests` source: notices file changes and
//! publishes each new good state as one [`IndexUpdate::Batch`].
//!
//! Each tick compares a cheap fingerprint (the file list, every file's mtime
//! and size); only when it moves are the files read, and only when their
//! content hash differs from the state last sent are they parsed. A failed
//! load sends nothing, so the index keeps serving the last good state, and is
//! logged once per distinct error. Reading and parsing run on the blocking
//! pool; the loop itself only sleeps between ticks.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{Filters, ManifestError, Manifests, Source, is_manifest, parse_sources, read_sources};
use crate::index::{IndexUpdate, Kind, Object};

/// Floor for the interval: a zero interval would spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// A file modified this recently may be written again within the same mtime
/// tick with the same size, which the fingerprint cannot see: while any file
/// is this fresh, every tick reads and hashes the content.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What the fingerprint records per path: mtime and size, or why stat failed.
type Stat = Result<(Option<SystemTime>, u64), io::ErrorKind>;

/// The cheap identity of the manifests: every file (directories expanded) with its stat.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, Stat)>);

/// What the loop remembers between ticks (owned by the loop alone).
#[derive(Debug, Default)]
struct PollState {
    /// The fingerprint of the last files read; `None` before the first read.
    fingerprint: Option<Fingerprint>,
    /// Whether that fingerprint was taken while a file was freshly modified.
    racy: bool,
    /// Content hash of the state last sent; `None` until a load succeeds.
    sent_hash: Option<u64>,
    /// The last error logged, so that a persisting error is logged once.
    last_error: Option<String>,
}

/// The result of one read-and-parse attempt.
enum Outcome {
    /// Same content as the state last sent.
    Unchanged,
    /// A new good state.
    Loaded { hash: u64, objects: Vec<Object> },
    /// The files are broken or missing.
    Failed(ManifestError),
}

impl Manifests {
    /// Loads the manifests, sends them as one `Batch` of four `Reset`s, then
    /// re-reads them on every change until `token` is cancelled (or the
    /// receiver is gone). A bad load sends nothing; if the very first load is
    /// bad, nothing is sent until the files are fixed, and the index stays unsynced.
    pub async fn run(self, tx: mpsc::Sender<IndexUpdate>, token: CancellationToken) {
        let source = Arc::new(self);
        let mut ticker = tokio::time::interval(source.interval.max(MIN_INTERVAL));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut state = PollState::default();
        loop {
            tokio::select! {
                biased;
                () = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Some(update) = state.poll(&source).await else {
                continue;
            };
            tokio::select! {
                biased;
                () = token.cancelled() => return,
                sent = tx.send(update) => if sent.is_err() {
                    tracing::debug!("manifests: index receiver gone, stopping");
                    return;
                },
            }
        }
    }
}

impl PollState {
    /// One tick: the update to send, if the files hold a new good state.
    async fn poll(&mut self, source: &Arc<Manifests>) -> Option<IndexUpdate> {
        let (fingerprint, racy) = fingerprint(&source.paths);
        if self.fingerprint.as_ref() == Some(&fingerprint) && !self.racy {
            return None;
        }
        self.fingerprint = Some(fingerprint);
        self.racy = racy;
        let src = Arc::clone(source);
        let last = self.sent_hash;
        let outcome = match tokio::task::spawn_blocking(move || attempt(&src, last)).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // Only a panic gets here (the task is never aborted): retry next tick.
                tracing::warn!(%error, "manifests: reload task failed");
                self.fingerprint = None;
                return None;
            }
        };
        match outcome {
            Outcome::Unchanged => {
                if self.last_error.take().is_some() {
                    tracing::info!("manifests: files are back to the state being served");
                }
                None
            }
            Outcome::Loaded { hash, objects } => {
                self.sent_hash = Some(hash);
                self.last_error = None;
                Some(batch(objects))
            }
            Outcome::Failed(e) => {
                self.report(&e);
                None
            }
        }
    }

    fn report(&mut self, e: &ManifestError) {
        let message = e.to_string();
        if self.last_error.as_deref() == Some(message.as_str()) {
            return;
        }
        let path = e.path().display();
        if self.sent_hash.is_some() {
            tracing::warn!(path = %path, error = %e, "manifests: keeping the previous state");
        } else {
            tracing::warn!(path = %path, error = %e, "manifests: no good state yet, waiting for the files to be fixed");
        }
        self.last_error = Some(message);
    }
}

/// Reads, hashes and (if the content moved) parses: blocking work.
fn attempt(m: &Manifests, last: Option<u64>) -> Outcome {
    let sources = match read_sources(&m.paths) {
        Ok(sources) => sources,
        Err(e) => return Outcome::Failed(e),
    };
    let hash = content_hash(&sources);
    if last == Some(hash) {
        return Outcome::Unchanged;
    }
    let filters = Filters {
        labels: m.selector.as_ref(),
        namespace_labels: m.namespace_selector.as_ref(),
    };
    match parse_sources(&sources, filters) {
        Ok(objects) => Outcome::Loaded { hash, objects },
        Err(e) => Outcome::Failed(e),
    }
}

fn content_hash(sources: &[Source]) -> u64 {
    let mut h = DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

/// Stats every file `paths` stand for; the flag says whether one is fresh (racy).
fn fingerprint(paths: &[PathBuf]) -> (Fingerprint, bool) {
    let stat = |p: &PathBuf| -> Stat {
        std::fs::metadata(p)
            .map(|m| (m.modified().ok(), m.len()))
            .map_err(|e| e.kind())
    };
    let mut entries = Vec::new();
    for path in paths {
        let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            entries.push((path.clone(), stat(path)));
            continue;
        }
        match std::fs::read_dir(path) {
            Ok(dir) => {
                let mut files: Vec<PathBuf> = dir
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_manifest(p))
                    .collect();
                files.sort();
                entries.extend(files.into_iter().map(|f| {
                    let s = stat(&f);
                    (f, s)
                }));
            }
            Err(e) => entries.push((path.clone(), Err(e.kind()))),
        }
    }
    let fresh_since = SystemTime::now().checked_sub(RACY_WINDOW);
    let racy = entries.iter().any(|(_, s)| match (s, fresh_since) {
        (Ok((Some(mtime), _)), Some(since)) => *mtime >= since,
        _ => false,
    });
    (Fingerprint(entries), racy)
}

/// The `Reset`s of one complete state (every kind), to become visible together.
fn batch(objects: Vec<Object>) -> IndexUpdate {
    let kinds = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::Namespace,
        Kind::ServiceImport,
        Kind::MultiClusterSlice,
    ];
    let mut groups: [Vec<Object>; 6] = Default::default();
    for object in objects {
        let slot = match object.kind() {
            Kind::Service => 0,
            Kind::EndpointSlice => 1,
            Kind::Pod => 2,
            Kind::Namespace => 3,
            Kind::ServiceImport => 4,
            Kind::MultiClusterSlice => 5,
        };
        groups[slot].push(object);
    }
    tracing::info!(
        services = groups[0].len(),
        endpoint_slices = groups[1].len(),
        pods = groups[2].len(),
        namespaces = groups[3].len(),
        "manifests: loaded"
    );
    IndexUpdate::Batch(
        kinds
            .into_iter()
            .zip(groups)
            .map(|(kind, objects)| IndexUpdate::Reset { kind, objects })
            .collect(),
    )
}
