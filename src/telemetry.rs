//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Per-query logging is the `log` plugin's job, not a library's: hickory's
//! targets are held at `warn` unless `RUST_LOG` says otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber (once; later calls are ignored).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_proto=warn,hickory_net=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
