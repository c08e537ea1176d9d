//! Signals, in one place: SIGTERM or SIGINT starts the shutdown sequence.
//!
//! Nothing else in the process installs signal handlers. The caller decides
//! what a signal means (lameduck first, then cancelling the root token that
//! every subsystem's child token hangs from).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Wait for SIGTERM or SIGINT (logging which one arrived), or for `root` to
/// be cancelled some other way.
pub async fn wait_for_signal(root: &CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = root.cancelled() => return Ok(()),
    };
    info!(signal = which, "shutting down");
    Ok(())
}
