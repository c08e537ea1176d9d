//! `reload`: apply Corefile changes without a restart.
//!
//! # Syntax
//! ```text
//! reload [INTERVAL] [JITTER]
//! ```
//! Every INTERVAL (default 30s, at least 2s) ± JITTER (default 15s, at least
//! 1s, at most INTERVAL/2) the SHA-512 of the Corefile and every file it
//! imports is compared with the running one. On a change the new Corefile is
//! parsed, validated and started **beside** the old configuration — listeners
//! that stay are kept (their routing tables are swapped atomically), kubernetes
//! sources whose settings did not change keep their watches and index (no
//! relist) — and only then switched to; no query is dropped. A broken
//! Corefile is logged with file:line, counted in `coredns_reload_failed_total`,
//! and the old configuration keeps serving. (CoreDNS closes listeners before
//! parsing the new file, which is its documented reload bug.)
//!
//! # Metrics
//! - `coredns_reload_failed_total`: reloads that failed.
//! - `coredns_reload_version_info{hash="sha512",value}`: the running Corefile's hash.

use std::path::PathBuf;
use std::time::Duration;

use prometheus::{IntCounter, IntGaugeVec, Opts, Registry};
use sha2::{Digest, Sha512};

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::build::Family;

/// The parsed `reload` directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reload {
    /// Check period.
    pub interval: Duration,
    /// Random spread added or subtracted per check.
    pub jitter: Duration,
}

/// Parse `reload`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<Reload, CorefileError> {
    let mut r = Reload {
        interval: Duration::from_secs(30),
        jitter: Duration::from_secs(15),
    };
    if let Some(t) = d.next_arg() {
        r.interval = t.parse_duration("reload interval")?;
        if r.interval < Duration::from_secs(2) {
            return Err(t.err("reload: interval value must be greater or equal to 2s"));
        }
        r.jitter = r.interval / 2;
    }
    if let Some(t) = d.next_arg() {
        r.jitter = t.parse_duration("reload jitter")?;
        if r.jitter < Duration::from_secs(1) {
            return Err(t.err("reload: jitter value must be greater or equal to 1s"));
        }
        if r.jitter > r.interval / 2 {
            return Err(t.err("reload: jitter value must be smaller than interval / 2"));
        }
    }
    d.expect_end()?;
    if let Some(sub) = d.block().first() {
        return Err(sub.name.err("reload: takes no block"));
    }
    Ok(r)
}

impl Reload {
    /// The wait before the next check: interval ± a random share of jitter.
    pub fn next_wait(&self, random: u64) -> Duration {
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if jitter_ms == 0 {
            return self.interval;
        }
        let offset = Duration::from_millis(random % (2 * jitter_ms + 1));
        (self.interval + offset).saturating_sub(self.jitter)
    }
}

/// SHA-512 over the contents of `files` (the Corefile and its imports), hex.
/// An unreadable file contributes its error text, so it still changes the hash.
pub fn checksum(files: &[PathBuf]) -> String {
    let mut h = Sha512::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        match std::fs::read(f) {
            Ok(bytes) => h.update(&bytes),
            Err(e) => h.update(e.to_string().as_bytes()),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reload metrics, under CoreDNS's names.
#[derive(Clone, Debug)]
pub struct ReloadMetrics {
    /// `coredns_reload_failed_total`.
    pub failed: IntCounter,
    /// `coredns_reload_version_info{hash,value}`.
    pub version: IntGaugeVec,
}

impl Family for ReloadMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let failed = IntCounter::with_opts(Opts::new(
            "coredns_reload_failed_total",
            "Counter of the number of failed reload attempts.",
        ))?;
        let version = IntGaugeVec::new(
            Opts::new(
                "coredns_reload_version_info",
                "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
            ),
            &["hash", "value"],
        )?;
        r.register(Box::new(failed.clone()))?;
        r.register(Box::new(version.clone()))?;
        Ok(Self { failed, version })
    }
}

impl ReloadMetrics {
    /// Publish the running hash (only one series at a time).
    pub fn set_version(&self, hash: &str) {
        self.version.reset();
        self.version.with_label_values(&["sha512", hash]).set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_interval_plus_minus_jitter() {
        let r = Reload {
            interval: Duration::from_secs(30),
            jitter: Duration::from_secs(15),
        };
        for random in [0u64, 1, 15_000, 29_999, 30_000, u64::MAX] {
            let w = r.next_wait(random);
            assert!(
                w >= Duration::from_secs(15) && w <= Duration::from_secs(45),
                "{w:?}"
            );
        }
        assert_eq!(r.next_wait(0), Duration::from_secs(15));
        assert_eq!(r.next_wait(30_000), Duration::from_secs(45));
    }

    #[test]
    fn checksum_changes_with_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("Corefile");
        std::fs::write(&f, "a").expect("write");
        let one = checksum(std::slice::from_ref(&f));
        std::fs::write(&f, "b").expect("write");
        assert_ne!(one, checksum(std::slice::from_ref(&f)));
        assert_eq!(one.len(), 128);
    }
}
