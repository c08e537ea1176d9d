//! Typed readings of one token (numbers, Go-style durations, listen addresses), shared by
//! every plugin's `parse()` so the same value is spelled the same way everywhere.
//!
//! Invariant: a bad value is an error at that token; `what` (e.g. `"cache: TTL"`) starts
//! the message, so callers name their plugin there.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::ast::Token;
use super::error::{CorefileError, Result};

impl Token {
    /// An error at this token.
    pub fn err(&self, msg: impl Into<String>) -> CorefileError {
        CorefileError::at(&self.pos, msg)
    }

    /// A decimal integer within `range`.
    pub fn parse_u32(&self, what: &str, range: RangeInclusive<u32>) -> Result<u32> {
        let t = self.text.as_str();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(format!("{what}: '{t}' is not a number")));
        }
        match t.parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.err(format!(
                "{what}: {t} is out of range {}..{}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// A duration in Go syntax (`5s`, `1m30s`, `500ms`, `1h`, `2.5s`; units ns, us, µs, ms,
    /// s, m, h), or a bare integer meaning seconds as several CoreDNS plugins accept.
    /// Negative durations are rejected.
    pub fn parse_duration(&self, what: &str) -> Result<Duration> {
        let bad = || {
            self.err(format!(
                "{what}: invalid duration '{}' (use e.g. 30s, 1m30s, 500ms)",
                self.text
            ))
        };
        let t = self.text.strip_prefix('+').unwrap_or(&self.text);
        if t.starts_with('-') {
            return Err(self.err(format!("{what}: duration '{}' is negative", self.text)));
        }
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = t.parse().map_err(|_| bad())?;
            return Ok(Duration::from_secs(secs));
        }
        let nanos = go_duration_nanos(t).ok_or_else(bad)?;
        // Go durations are an i64 of nanoseconds.
        if nanos > i64::MAX as u128 {
            return Err(self.err(format!("{what}: duration '{}' is too large", self.text)));
        }
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
        let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| bad())?;
        Ok(Duration::new(secs, sub))
    }

    /// A listen address: `:8080` (all IPv4 interfaces), `127.0.0.1:8080`, `[::1]:8080`,
    /// `localhost:8080` (127.0.0.1), or an address without port, which gets `default_port`.
    pub fn parse_socket_addr(&self, what: &str, default_port: u16) -> Result<SocketAddr> {
        let t = self.text.as_str();
        let bad = |why: &str| self.err(format!("{what}: invalid address '{t}': {why}"));
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, default_port));
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected ':' after ']'"))?,
                ),
            };
            let ip: IpAddr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
            (Some(ip), port)
        } else {
            let (host, port) = match t.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            };
            let ip = match host {
                "" => None,
                "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                h => Some(h.parse().map_err(|_| {
                    bad("the host must be an IP address or localhost (IPv6 in brackets)")
                })?),
            };
            (ip, port)
        };
        let port = match port {
            None => default_port,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad("port out of range"))?
            }
            Some(_) => return Err(bad("the port must be a number 0..65535")),
        };
        let ip = host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(SocketAddr::new(ip, port))
    }
}

/// A Go duration string with a unit (`15s`, `1m30s`); `None` when malformed,
/// negative or too large.
pub fn go_duration(s: &str) -> Option<Duration> {
    let nanos = go_duration_nanos(s.strip_prefix('+').unwrap_or(s))?;
    if nanos > i64::MAX as u128 {
        return None;
    }
    Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
}

/// Nanoseconds of a Go duration string without sign; `None` when malformed.
fn go_duration_nanos(s: &str) -> Option<u128> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        // 39 digits overflow u128; anything that long is out of range anyway.
        if int.len() > 30 {
            return None;
        }
        let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = whole.checked_mul(scale)?;
        // Fraction: only the digits that can matter at nanosecond precision.
        let frac = &frac[..frac.len().min(20)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().ok()?;
            let div = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
            part = part.checked_add(digits.checked_mul(scale)? / div)?;
        }
        total = total.checked_add(part)?;
        rest = next;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::ast::Pos;

    fn tok(text: &str) -> Token {
        Token::new(text, Pos::new(Path::new("Corefile"), 3, 9))
    }

    #[test]
    fn durations_follow_go_syntax_and_bare_integers_are_seconds() {
        let ms = Duration::from_millis;
        let cases = [
            ("5s", ms(5_000)),
            ("1m30s", ms(90_000)),
            ("500ms", ms(500)),
            ("1h", ms(3_600_000)),
            ("2.5s", ms(2_500)),
            ("1.5h", ms(5_400_000)),
            (".5s", ms(500)),
            ("30", ms(30_000)),
            ("0", ms(0)),
            ("+10s", ms(10_000)),
            ("100us", Duration::from_micros(100)),
            ("1µs", Duration::from_micros(1)),
            ("10ns", Duration::from_nanos(10)),
            ("1h2m3s4ms", ms(3_723_004)),
        ];
        for (text, want) in cases {
            assert_eq!(
                tok(text).parse_duration("cache: TTL").unwrap(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_name_the_plugin_value_and_position() {
        let cases = [
            (
                "",
                "Corefile:3:9: cache: TTL: invalid duration '' (use e.g. 30s, 1m30s, 500ms)",
            ),
            (
                "5x",
                "Corefile:3:9: cache: TTL: invalid duration '5x' (use e.g. 30s, 1m30s, 500ms)",
            ),
            (
                "s",
                "Corefile:3:9: cache: TTL: invalid duration 's' (use e.g. 30s, 1m30s, 500ms)",
            ),
            (
                "1.2.3s",
                "Corefile:3:9: cache: TTL: invalid duration '1.2.3s' (use e.g. 30s, 1m30s, 500ms)",
            ),
            (
                "-5s",
                "Corefile:3:9: cache: TTL: duration '-5s' is negative",
            ),
            (
                "3000000h",
                "Corefile:3:9: cache: TTL: duration '3000000h' is too large",
            ),
        ];
        for (text, want) in cases {
            let e = tok(text).parse_duration("cache: TTL").unwrap_err();
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn numbers_are_checked_against_their_range() {
        assert_eq!(tok("30").parse_u32("cache: capacity", 1..=100).unwrap(), 30);
        let e = tok("0").parse_u32("cache: capacity", 1..=100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Corefile:3:9: cache: capacity: 0 is out of range 1..100"
        );
        let e = tok("-1").parse_u32("cache: capacity", 1..=100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Corefile:3:9: cache: capacity: '-1' is not a number"
        );
        let e = tok("99999999999").parse_u32("x", 0..=u32::MAX).unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
    }

    #[test]
    fn listen_addresses_accept_port_only_ip_bracketed_ipv6_and_localhost() {
        let cases = [
            (":8080", "0.0.0.0:8080"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::1]:8080", "[::1]:8080"),
            ("localhost:8080", "127.0.0.1:8080"),
            ("127.0.0.1", "127.0.0.1:9153"),
            ("::1", "[::1]:9153"),
            ("[::1]", "[::1]:9153"),
            ("localhost", "127.0.0.1:9153"),
            ("0.0.0.0:0", "0.0.0.0:0"),
        ];
        for (text, want) in cases {
            let got = tok(text)
                .parse_socket_addr("prometheus: address", 9153)
                .unwrap();
            assert_eq!(got.to_string(), want, "{text}");
        }
    }

    #[test]
    fn bad_listen_addresses_are_errors() {
        let cases = [
            (
                "example.com:80",
                "the host must be an IP address or localhost (IPv6 in brackets)",
            ),
            (":99999", "port out of range"),
            ("[::1", "missing ']'"),
            ("1.2.3.4:x", "the port must be a number 0..65535"),
            ("[::1]x", "expected ':' after ']'"),
        ];
        for (text, why) in cases {
            let e = tok(text).parse_socket_addr("health", 8080).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Corefile:3:9: health: invalid address '{text}': {why}")
            );
        }
    }
}
