//! The process's Prometheus registry and its text encoding.
//!
//! No global registry: `app` creates one [`Registry`] and passes it to every
//! subsystem's `Metrics::register`, so tests can build a fresh one, encode it
//! and assert single lines. Names follow CoreDNS where the meaning matches
//! (`coredns_<plugin>_...`) so dashboards keep working; ours are `clusterdns_...`.

use prometheus::{Encoder, Registry, TextEncoder};

/// A fresh registry.
pub fn registry() -> Registry {
    Registry::new()
}

/// The registry in Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for I/O reasons; a metric family that
    // fails to encode is skipped rather than failing the scrape.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
