//! The `weighted` policy's weight file, as text: parsing it into a table and
//! choosing an address by weight. No I/O here (the file is read by
//! [`super::source`]), so both are table-tested.
//!
//! # Format (CoreDNS's)
//! ```text
//! # a comment
//! www.example.com
//! 100.64.1.1 3
//! 100.64.1.2 1
//! ```
//! A line with one field is a domain name (a missing final dot is added;
//! matched case-insensitively against the owner name of each address
//! record); a line with two fields is `IP WEIGHT` for the name above it,
//! WEIGHT in 1..=255. Blank lines and `#` comments (whole-line, or after the
//! fields: ours) are skipped. A name written twice adds to its addresses;
//! for an address written twice under one name the first weight counts, as
//! in CoreDNS. Every other line is an error naming its line number.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;

/// The weight of an address the file does not list (CoreDNS's default).
pub const DEFAULT_WEIGHT: u8 = 1;

/// Why a weight file was rejected, with the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: {kind}")]
pub struct WeightsError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub kind: WeightsErrorKind,
}

/// What is wrong with a weight file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightsErrorKind {
    /// A lone address where a domain name was expected.
    #[error("'{0}' is an address, not a domain name (missing weight?)")]
    AddressAsName(String),
    /// A domain name that is not one.
    #[error("invalid domain name '{0}'")]
    BadName(String),
    /// `IP WEIGHT` whose IP is not an address.
    #[error("invalid IP address '{0}'")]
    BadAddress(String),
    /// `IP WEIGHT` whose weight is not in 1..=255.
    #[error("invalid weight '{0}' (use 1..255)")]
    BadWeight(String),
    /// `IP WEIGHT` before any domain name.
    #[error("'{0}' comes before any domain name")]
    NoName(String),
    /// Neither one nor two fields.
    #[error("expected a domain name or 'IP WEIGHT', got '{0}'")]
    BadLine(String),
}

/// The weights of a file: per domain name, its addresses' weights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Weights {
    by_name: HashMap<Name, HashMap<IpAddr, u8>>,
}

impl Weights {
    /// Parse a weight file's text.
    pub fn parse(text: &str) -> Result<Self, WeightsError> {
        let mut by_name: HashMap<Name, HashMap<IpAddr, u8>> = HashMap::new();
        let mut current: Option<Name> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |kind| WeightsError { line, kind };
            let content = raw.split_once('#').map_or(raw, |(before, _)| before);
            let fields: Vec<&str> = content.split_whitespace().collect();
            match fields[..] {
                [] => {}
                [name] => {
                    if name.parse::<IpAddr>().is_ok() {
                        return Err(err(WeightsErrorKind::AddressAsName(name.into())));
                    }
                    let n =
                        fqdn(name).ok_or_else(|| err(WeightsErrorKind::BadName(name.into())))?;
                    by_name.entry(n.clone()).or_default();
                    current = Some(n);
                }
                [ip, weight] => {
                    let addr: IpAddr = ip
                        .parse()
                        .map_err(|_| err(WeightsErrorKind::BadAddress(ip.into())))?;
                    let w = weight
                        .parse::<u8>()
                        .ok()
                        .filter(|w| *w > 0)
                        .ok_or_else(|| err(WeightsErrorKind::BadWeight(weight.into())))?;
                    let name = current
                        .as_ref()
                        .ok_or_else(|| err(WeightsErrorKind::NoName(content.trim().into())))?;
                    by_name
                        .entry(name.clone())
                        .or_default()
                        .entry(addr.to_canonical())
                        .or_insert(w);
                }
                _ => return Err(err(WeightsErrorKind::BadLine(content.trim().into()))),
            }
        }
        Ok(Self { by_name })
    }

    /// The weight of `ip` for records owned by `name`; [`DEFAULT_WEIGHT`] when
    /// the file does not list it. An IPv4-mapped IPv6 address is its IPv4 one.
    pub fn weight(&self, name: &Name, ip: IpAddr) -> u8 {
        self.by_name
            .get(name)
            .and_then(|ips| ips.get(&ip.to_canonical()))
            .copied()
            .unwrap_or(DEFAULT_WEIGHT)
    }

    /// How many domain names the file lists.
    pub fn names(&self) -> usize {
        self.by_name.len()
    }
}

/// A fully qualified name from the file's text, or None when it is not one.
fn fqdn(text: &str) -> Option<Name> {
    let mut n = Name::from_ascii(text).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// The index whose share of `roll` it is: with weights `[3, 1, 2]`, rolls
/// 0..3 pick 0, 3 picks 1, 4..6 pick 2. `roll` must be below the weights'
/// sum ([`total`]); None otherwise.
pub fn pick(weights: &[u8], roll: u32) -> Option<usize> {
    let mut upto = 0u32;
    weights.iter().position(|w| {
        upto += u32::from(*w);
        roll < upto
    })
}

/// The sum of `weights`, the exclusive bound of a roll for [`pick`].
pub fn total(weights: &[u8]) -> u32 {
    weights.iter().map(|w| u32::from(*w)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn a_file_parses_into_weights_by_owner_name() {
        let text = "# weights for the web tier\n\
                    \n\
                    www.example.com\n\
                    100.64.1.1 3\n\
                    \x20 100.64.1.2   1   # trailing comment\n\
                    2001:db8::1 200\n\
                    \n\
                    API.example.com.\n\
                    10.0.0.1 255\n\
                    10.0.0.1 7\n\
                    www.example.com\n\
                    ::ffff:100.64.1.3 2\n";
        let w = Weights::parse(text).unwrap();
        assert_eq!(w.names(), 2);
        let www = name("www.example.com.");
        let table = [
            (&www, "100.64.1.1", 3),
            (&www, "100.64.1.2", 1),
            (&www, "2001:db8::1", 200),
            (&www, "100.64.1.3", 2),        // mapped address stored as IPv4
            (&www, "::ffff:100.64.1.1", 3), // and looked up as IPv4
            (&www, "100.64.1.9", DEFAULT_WEIGHT),
        ];
        for (n, ip, want) in table {
            assert_eq!(w.weight(n, ip.parse().unwrap()), want, "{n} {ip}");
        }
        // Case-insensitive names; the first weight of a repeated address counts.
        assert_eq!(
            w.weight(&name("api.EXAMPLE.com."), "10.0.0.1".parse().unwrap()),
            255
        );
        assert_eq!(
            w.weight(&name("other.example.com."), "100.64.1.1".parse().unwrap()),
            DEFAULT_WEIGHT
        );
        assert_eq!(Weights::parse("").unwrap(), Weights::default());
        assert_eq!(Weights::parse("# only\n\n  \n").unwrap().names(), 0);
        // A name with no addresses is listed, with nothing weighted.
        assert_eq!(Weights::parse("lonely.example.com\n").unwrap().names(), 1);
    }

    #[test]
    fn bad_lines_name_their_line_number() {
        use WeightsErrorKind as K;
        let cases = [
            ("10.0.0.1\n", 1, K::AddressAsName("10.0.0.1".into())),
            (
                "a.example\n\n10.0.0.1 3\n10.0.0.2\n",
                4,
                K::AddressAsName("10.0.0.2".into()),
            ),
            ("a..example\n", 1, K::BadName("a..example".into())),
            (
                "a.example\n10.0.0.300 3\n",
                2,
                K::BadAddress("10.0.0.300".into()),
            ),
            ("a.example\nwww 3\n", 2, K::BadAddress("www".into())),
            ("a.example\n10.0.0.1 0\n", 2, K::BadWeight("0".into())),
            ("a.example\n10.0.0.1 256\n", 2, K::BadWeight("256".into())),
            ("a.example\n10.0.0.1 -1\n", 2, K::BadWeight("-1".into())),
            ("a.example\n10.0.0.1 1.5\n", 2, K::BadWeight("1.5".into())),
            ("# c\n10.0.0.1 3\n", 2, K::NoName("10.0.0.1 3".into())),
            (
                "a.example\n10.0.0.1 3 4\n",
                2,
                K::BadLine("10.0.0.1 3 4".into()),
            ),
        ];
        for (text, line, kind) in cases {
            let got = Weights::parse(text).unwrap_err();
            assert_eq!(got, WeightsError { line, kind }, "{text:?}");
        }
        let e = Weights::parse("a.example\n10.0.0.1 0\n").unwrap_err();
        assert_eq!(e.to_string(), "2: invalid weight '0' (use 1..255)");
    }

    #[test]
    fn pick_gives_each_index_exactly_its_weight_in_rolls() {
        for weights in [
            &[3u8, 1, 2][..],
            &[1],
            &[255, 1],
            &[1, 1, 1, 1],
            &[7, 255, 3],
        ] {
            let sum = total(weights);
            let mut counts = vec![0u32; weights.len()];
            for roll in 0..sum {
                counts[pick(weights, roll).expect("roll below the sum")] += 1;
            }
            let want: Vec<u32> = weights.iter().map(|w| u32::from(*w)).collect();
            assert_eq!(counts, want, "{weights:?}");
            assert_eq!(
                pick(weights, sum),
                None,
                "a roll at the sum is out of range"
            );
        }
        assert_eq!(pick(&[], 0), None);
        assert_eq!(pick(&[3, 1, 2], 3), Some(1));
    }
}
