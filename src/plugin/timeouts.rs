//! `timeouts`: limits for the DNS-over-TCP connections of a server block's
//! listeners (CoreDNS's `timeouts` plugin, plus a connection cap of ours).
//!
//! # Syntax
//! ```text
//! timeouts {
//!     read DURATION
//!     write DURATION
//!     idle DURATION
//!     max_connections N
//! }
//! ```
//! `read`, `write` and `idle` are CoreDNS's (defaults 3s, 5s, 10s; each
//! between 1s and 24h). `max_connections` (default 1000, at least 1) is
//! ours: CoreDNS has no cap on plain TCP connections, which lets held-open
//! connections grow without bound. At least one option must be given, as in
//! CoreDNS. Not a chain plugin: the limits apply to the TCP listeners of the
//! block's addresses (blocks sharing an address share its listener; the
//! first block in the Corefile that sets `timeouts` decides). A listener
//! keeps the limits it started with: a reload applies new limits to
//! addresses it newly binds, not to ones that stay.

use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::tcp::TcpLimits;

const MIN: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(24 * 3600);

/// Parse `timeouts`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<TcpLimits, CorefileError> {
    d.expect_end()?;
    let mut limits = TcpLimits::default();
    if d.block().is_empty() {
        return Err(d.err("at least one of read, write, idle, max_connections must be set"));
    }
    for line in d.block() {
        let mut sd = d.sub(line);
        let name = line.name.text.as_str();
        match name {
            "read" | "write" | "idle" => {
                let t = sd.expect_arg("duration")?;
                let v = t.parse_duration(&sd.what("duration"))?;
                if !(MIN..=MAX).contains(&v) {
                    return Err(sd.err_at(t, "duration must be between 1s and 24h"));
                }
                *match name {
                    "read" => &mut limits.read,
                    "write" => &mut limits.write,
                    _ => &mut limits.idle,
                } = v;
            }
            "max_connections" => {
                let n = sd
                    .expect_arg("number")?
                    .parse_u32(&sd.what("number"), 1..=1_000_000)?;
                limits.max_connections = n as usize;
            }
            _ => return Err(d.unknown_property(line)),
        }
        sd.expect_end()?;
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    fn parse_text(directive: &str) -> Result<TcpLimits, String> {
        let text = format!(".:53 {{\n{directive}\n}}\n");
        let cf = parse_str(&text, Path::new("Corefile"), &|_| None, &MemFs::new())
            .map_err(|e| e.to_string())?;
        parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    #[test]
    fn options_override_coredns_defaults() {
        let d = TcpLimits::default();
        let cases = [
            (
                "timeouts {\nread 10s\n}",
                TcpLimits {
                    read: Duration::from_secs(10),
                    ..d
                },
            ),
            (
                "timeouts {\nwrite 20s\n}",
                TcpLimits {
                    write: Duration::from_secs(20),
                    ..d
                },
            ),
            (
                "timeouts {\nidle 1m\n}",
                TcpLimits {
                    idle: Duration::from_secs(60),
                    ..d
                },
            ),
            (
                "timeouts {\nmax_connections 5\nidle 1s\n}",
                TcpLimits {
                    max_connections: 5,
                    idle: Duration::from_secs(1),
                    ..d
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_text(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_options_are_errors_at_their_line() {
        let cases = [
            ("timeouts", "Corefile:2:1: timeouts: at least one"),
            ("timeouts {\n}", "Corefile:2:1: timeouts: at least one"),
            (
                "timeouts x {\nread 1s\n}",
                "Corefile:2:10: timeouts: unexpected argument 'x'",
            ),
            (
                "timeouts {\nread 0s\n}",
                "Corefile:3:6: timeouts: read: duration must be between",
            ),
            (
                "timeouts {\nidle 25h\n}",
                "Corefile:3:6: timeouts: idle: duration must be between",
            ),
            (
                "timeouts {\nread\n}",
                "Corefile:3:1: timeouts: read: missing argument",
            ),
            (
                "timeouts {\nread 1s 2s\n}",
                "Corefile:3:9: timeouts: read: unexpected argument",
            ),
            (
                "timeouts {\nmax_connections 0\n}",
                "out of range 1..1000000",
            ),
            (
                "timeouts {\nmaxtcpqueries 5\n}",
                "Corefile:3:1: timeouts: unknown property 'maxtcpqueries'",
            ),
        ];
        for (text, want) in cases {
            let got = parse_text(text).expect_err(text);
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}
