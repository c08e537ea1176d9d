//! Server block keys: `[dns://]ZONE[:PORT]`, where ZONE may be a CIDR that stands for its
//! reverse zone(s), as CoreDNS's `plugin.SplitHostPort` and `cidr` package define.
//!
//! Invariant: a [`ZoneAddr`] zone is always a lower-case FQDN with a trailing dot (`.` for
//! the root), whose labels are 1..=63 characters of letters, digits, `-` or `_`.

use std::net::IpAddr;

use super::ast::Token;
use super::error::{CorefileError, Result};

/// How a server block is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// `dns://` or no scheme: UDP and TCP (port 53, or `-dns.port`).
    Dns,
    /// `tls://`: DNS over TLS, RFC 7858 (port 853).
    Tls,
    /// `https://`: DNS over HTTPS, RFC 8484 (port 443).
    Https,
}

impl Transport {
    /// The scheme as written in keys and CoreDNS's `server` label.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Dns => "dns",
            Transport::Tls => "tls",
            Transport::Https => "https",
        }
    }

    /// The port a key without one gets (`dns` takes the `-dns.port` flag's).
    pub fn default_port(self, dns_port: u16) -> u16 {
        match self {
            Transport::Dns => dns_port,
            Transport::Tls => 853,
            Transport::Https => 443,
        }
    }
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
    let (transport, rest) = match text.split_once("://") {
        None => (Transport::Dns, text),
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "dns" => (Transport::Dns, rest),
            "tls" => (Transport::Tls, rest),
            "https" => (Transport::Https, rest),
            other => {
                return Err(key.err(format!(
                    "invalid server block key '{text}': transport {other}:// is not supported \
                     (dns://, tls://, https://)"
                )));
            }
        },
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
            transport,
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
        return Err(format!(
            "zone is longer than 255 bytes ({})",
            name.len() + 2
        ));
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::ast::Pos;

    fn key(text: &str) -> Token {
        Token::new(text, Pos::new(Path::new("Corefile"), 1, 1))
    }

    fn zones(text: &str) -> Vec<(String, Option<u16>)> {
        parse_key(&key(text))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .into_iter()
            .map(|z| (z.zone, z.port))
            .collect()
    }

    #[test]
    fn keys_become_lower_case_fqdn_zones_with_optional_port() {
        let cases: &[(&str, &[&str], Option<u16>)] = &[
            (".", &["."], None),
            (".:53", &["."], Some(53)),
            ("dns://.:53", &["."], Some(53)),
            ("DNS://example.org", &["example.org."], None),
            ("Example.ORG:1053", &["example.org."], Some(1053)),
            ("cluster.local.", &["cluster.local."], None),
            (":53", &["."], Some(53)),
            ("_tcp.example.org", &["_tcp.example.org."], None),
            ("10.0.0.0/24", &["0.0.10.in-addr.arpa."], None),
            ("10.0.0.0/24:1053", &["0.0.10.in-addr.arpa."], Some(1053)),
            ("10.1.2.3/8", &["10.in-addr.arpa."], None),
            (
                "10.0.0.0/23",
                &["0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."],
                None,
            ),
            ("0.0.0.0/0", &["in-addr.arpa."], None),
            ("2001:db8::/32", &["8.b.d.0.1.0.0.2.ip6.arpa."], None),
            ("fd00::/7", &["c.f.ip6.arpa.", "d.f.ip6.arpa."], None),
            (
                "dns://2001:db8::/32:53",
                &["8.b.d.0.1.0.0.2.ip6.arpa."],
                Some(53),
            ),
        ];
        for (text, want, port) in cases {
            let want: Vec<(String, Option<u16>)> =
                want.iter().map(|z| (z.to_string(), *port)).collect();
            assert_eq!(zones(text), want, "key {text}");
        }
    }

    #[test]
    fn a_cidr_off_an_octet_boundary_expands_to_every_covering_zone() {
        let z = zones("172.16.0.0/12");
        assert_eq!(z.len(), 16);
        assert_eq!(z[0].0, "16.172.in-addr.arpa.");
        assert_eq!(z[15].0, "31.172.in-addr.arpa.");
        assert_eq!(zones("10.0.0.0/17").len(), 128);
        // Below /24 each address is its own zone, as CoreDNS's cidr.Split does.
        let z = zones("192.168.1.128/25");
        assert_eq!(z.len(), 128);
        assert_eq!(z[0].0, "128.1.168.192.in-addr.arpa.");
        assert_eq!(z[127].0, "255.1.168.192.in-addr.arpa.");
    }

    #[test]
    fn the_scheme_gives_the_transport_and_its_default_port() {
        let cases: &[(&str, Transport, Option<u16>, u16)] = &[
            (".", Transport::Dns, None, 1053),
            ("dns://.:5353", Transport::Dns, Some(5353), 1053),
            ("tls://.", Transport::Tls, None, 853),
            ("TLS://cluster.local:8853", Transport::Tls, Some(8853), 853),
            ("https://.", Transport::Https, None, 443),
            (
                "https://example.org:8443",
                Transport::Https,
                Some(8443),
                443,
            ),
        ];
        for &(text, transport, port, default) in cases {
            let z = parse_key(&key(text)).unwrap();
            assert_eq!((z[0].transport, z[0].port), (transport, port), "{text}");
            assert_eq!(transport.default_port(1053), default, "{text}");
        }
        assert_eq!(Transport::Https.scheme(), "https");
    }

    #[test]
    fn bad_keys_are_errors_that_say_why() {
        let cases = &[
            (
                "grpc://example.org",
                "transport grpc:// is not supported (dns://, tls://, https://)",
            ),
            (
                "quic://.",
                "transport quic:// is not supported (dns://, tls://, https://)",
            ),
            (
                "[::1]:53",
                "a key is a zone, not an address; choose listen addresses with the bind plugin",
            ),
            (".:99999", "port 99999 is out of range 0..65535"),
            (".:", "expected a port after ':'"),
            ("a..b", "zone has an empty label"),
            ("a/b.org", "'/' is not allowed in a zone name"),
            ("10.0.0.0/33", "prefix length 33 is longer than 32 bits"),
            ("::/0", "invalid CIDR ::/0"),
        ];
        for (text, why) in cases {
            let e = parse_key(&key(text)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Corefile:1:1: invalid server block key '{text}': {why}"),
            );
        }
        let long = format!("{}.org", "a".repeat(64));
        assert!(
            parse_key(&key(&long))
                .unwrap_err()
                .message
                .contains("longer than 63")
        );
    }
}
