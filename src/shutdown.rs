//! Signals, in one place: SIGTERM or SIGINT cancels the root token.
//!
//! Every subsystem holds a child of the root [`CancellationToken`]; nothing
//! else in the process installs signal handlers.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Wait for SIGTERM or SIGINT, log which one arrived, then cancel `root`.
/// Returns at once if `root` is cancelled some other way.
pub async fn cancel_on_signal(root: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = root.cancelled() => return Ok(()),
    };
    info!(signal = which, "shutting down");
    root.cancel();
    Ok(())
}
