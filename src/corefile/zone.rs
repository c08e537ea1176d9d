//! Server block keys: `[dns://]ZONE[:PORT]`, where ZONE may be a CIDR that stands for its
//! reverse zone(s), as CoreDNS's `plugin.SplitHostPort` and `cidr` package define.
//!
//! Invariant: a [`ZoneAddr`] zone is always a lower-case FQDN with a trailing dot (`.` for
//! the root), whose labels are 1..=63 characters of letters, digits, `-` or `_`.

use std::net::IpAddr;

use super::ast::Token;
use super::error::{CorefileError, Result};

/// How a server block is reached. Only plain DNS (UDP and TCP) is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `dns://` or no scheme.
    Dns,
}

/// One zone of a server block key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoneAddr {
    /// The transport (scheme).
    pub transport: Transport,
    /// Lower-case FQDN with a trailing dot; `.` for the root.
    pub zone: String,
    /// The port written after the zone, if any (the server applies its default otherwise).
    pub port: Option<u16>,
}

/// Parses one server block key into its zone(s): one for a name, one or more for a CIDR
/// (a prefix off an octet boundary, or nibble boundary for IPv6, expands to every covering
/// classful reverse zone, e.g. `10.0.0.0/23` to `0.0.10.in-addr.arpa.` and
/// `1.0.10.in-addr.arpa.`).
pub fn parse_key(key: &Token) -> Result<Vec<ZoneAddr>> {
    let text = key.text.as_str();
    let bad = |why: String| -> CorefileError {
        key.err(format!("invalid server block key '{text}': {why}"))
    };
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("dns") => rest,
        Some((scheme, _)) => {
            return Err(key.err(format!(
                "invalid server block key '{text}': transport {}:// is not supported (only dns://)",
                scheme.to_ascii_lowercase()
            )));
        }
        None => text,
    };
    let (host, port) = split_port(rest).map_err(&bad)?;
    if host.starts_with('[') || (host.contains(':') && !host.contains('/')) {
        return Err(bad(
            "a key is a zone, not an address; choose listen addresses with the bind plugin"
                .to_string(),
        ));
    }
    let zones = match reverse_zones(host).map_err(&bad)? {
        Some(zones) => zones,
        None => vec![normalize_zone(host).map_err(&bad)?],
    };
    Ok(zones
        .into_iter()
        .map(|zone| ZoneAddr {
            transport: Transport::Dns,
            zone,
            port,
        })
        .collect())
}

/// Splits a trailing `:PORT` off: a port is all digits after the last colon.
fn split_port(s: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Ok((s, None));
    };
    if port.is_empty() {
        return Err("expected a port after ':'".to_string());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((s, None));
    }
    match port.parse::<u16>() {
        Ok(p) => Ok((host, Some(p))),
        Err(_) => Err(format!("port {port} is out of range 0..65535")),
    }
}

/// Lower-cases `host`, checks it is a domain name and makes it fully qualified. An empty
/// host (`:53`) is the root.
fn normalize_zone(host: &str) -> std::result::Result<String, String> {
    if host.is_empty() || host == "." {
        return Ok(".".to_string());
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    // Wire length: one length byte per label plus the root byte.
    if name.len() + 2 > 255 {
        return Err(format!("zone is longer than 255 bytes ({})", name.len() + 2));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("zone has an empty label".to_string());
        }
        if label.len() > 63 {
            return Err(format!("label '{label}' is longer than 63 bytes"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("'{c}' is not allowed in a zone name"));
        }
    }
    Ok(format!("{name}."))
}

/// The reverse zones of a CIDR, or `None` when `host` is not a CIDR.
fn reverse_zones(host: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let Some((ip, len)) = host.split_once('/') else {
        return Ok(None);
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Ok(None);
    };
    let Ok(len) = len.parse::<u32>() else {
        return Err(format!("invalid prefix length in CIDR {host}"));
    };
    // CoreDNS rejects IPv6 CIDRs written with a leading '::' or '0'.
    if host.starts_with(':') || (host.starts_with('0') && host.contains(':')) {
        return Err(format!("invalid CIDR {host}"));
    }
    let (addr, bits, digit, suffix): (u128, u32, u32, &str) = match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, 8, "in-addr.arpa."),
        IpAddr::V6(v6) => (u128::from(v6), 128, 4, "ip6.arpa."),
    };
    if len > bits {
        return Err(format!("prefix length {len} is longer than {bits} bits"));
    }
    let mask = |l: u32| -> u128 {
        if l == 0 {
            0
        } else {
            (u128::MAX << (128 - l)) >> (128 - bits)
        }
    };
    let network = addr & mask(len);
    let classful = len.div_ceil(digit) * digit;
    let count = 1u128 << (classful - len);
    // Unused when there is one zone; `checked_shl` keeps /0 from shifting by 128.
    let step = 1u128.checked_shl(bits - classful).unwrap_or(0);
    let mut zones = Vec::new();
    for i in 0..count {
        let net = network + i * step;
        let mut labels: Vec<String> = (0..classful / digit)
            .map(|k| {
                let shift = bits - digit * (k + 1);
                let v = (net >> shift) & ((1u128 << digit) - 1);
                if digit == 8 {
                    v.to_string()
                } else {
                    format!("{v:x}")
                }
            })
            .collect();
        labels.reverse();
        labels.push(suffix.to_string());
        zones.push(labels.join("."));
    }
    Ok(Some(zones))
}
