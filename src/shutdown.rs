//! Signals, in one place: SIGTERM or SIGINT starts the shutdown sequence.
//!
//! Nothing else in the process installs signal handlers. [`Signals`] is
//! installed once, before serving, and kept for the life of the process: a
//! signal that arrives while the caller is busy (a reload in progress) stays
//! pending in it and is seen at the next [`Signals::recv`], instead of being
//! lost between two short-lived listeners. The caller decides what a signal
//! means (lameduck, drain in-flight queries, then cancel the root token that
//! every subsystem's child token hangs from).

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The process's SIGTERM and SIGINT listeners.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Install the listeners (once per process).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Wait for SIGTERM or SIGINT (logging which one arrived), or for `root`
    /// to be cancelled some other way.
    pub async fn recv(&mut self, root: &CancellationToken) {
        let which = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = root.cancelled() => return,
        };
        info!(signal = which, "shutting down");
    }
}
