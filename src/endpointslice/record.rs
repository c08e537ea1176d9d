//! The compact forms the controller caches between syncs. A sync needs the
//! planner's inputs ([`super::model`] objects and API EndpointSlices and
//! Endpoints) for one Service at a time; the caches hold every object of
//! the cluster. So the caches hold records — boxed strings, uids as 16
//! bytes, label sets and node names shared through [`super::intern`] — and
//! a sync turns its Service's few records back into the planner's types.
//! Each conversion round-trips exactly (table-tested), so the planners and
//! their tests are unchanged; the one exception, Endpoints, keeps only a
//! digest of its subsets, which is all the Endpoints planner compares. At
//! 10,000 Services × 10 pods this is what keeps the controller under 100 MB
//! (benches/RESULTS.md).
//!
//! - [`pod`]: a Pod as [`super::model::Pod`] needs it.
//! - [`service`]: a Service as [`super::model::Service`] needs it.
//! - [`mod@slice`], [`endpoints`]: our EndpointSlices and the v1 Endpoints.
//! - [`meta`]: what those two share (metadata, `targetRef`, addresses).
//! - [`pod::Template`] and [`Placement`]: values shared by a thin pointer.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::intern::Interner;
use super::model::ContainerPort;

pub mod endpoints;
pub mod meta;
pub mod pod;
pub mod service;
pub mod slice;

/// A `metadata.uid`: 16 bytes for the canonical lowercase UUID the API
/// server assigns, the text otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uid {
    /// A canonical lowercase UUID.
    Uuid([u8; 16]),
    /// Anything else, as written.
    Text(Box<str>),
}

/// Positions of the dashes in a canonical UUID.
const DASHES: [usize; 4] = [8, 13, 18, 23];

impl Uid {
    /// Parses `s`, keeping it as text unless it prints back identically.
    pub fn new(s: &str) -> Uid {
        Uid::parse_uuid(s).map_or_else(|| Uid::Text(s.into()), Uid::Uuid)
    }

    fn parse_uuid(s: &str) -> Option<[u8; 16]> {
        let b = s.as_bytes();
        if b.len() != 36 || DASHES.iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let hex: Vec<u8> = b
            .iter()
            .enumerate()
            .filter(|(i, _)| !DASHES.contains(i))
            .map(|(_, &c)| nibble(c))
            .collect::<Option<_>>()?;
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
            *o = (pair[0] << 4) | pair[1];
        }
        Some(out)
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uid::Text(s) => f.write_str(s),
            Uid::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// IP addresses in order; the single-address case without an allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ips {
    /// Exactly one.
    One(IpAddr),
    /// Zero or several.
    Many(Box<[IpAddr]>),
}

impl Ips {
    /// From a list, order kept.
    pub fn new(ips: &[IpAddr]) -> Ips {
        match ips {
            [one] => Ips::One(*one),
            more => Ips::Many(more.into()),
        }
    }

    /// As a slice.
    pub fn as_slice(&self) -> &[IpAddr] {
        match self {
            Ips::One(ip) => std::slice::from_ref(ip),
            Ips::Many(v) => v,
        }
    }
}

/// A label (or annotation): key and value, each a shared string.
pub type Pair = (Arc<str>, Arc<str>);

/// A label set sorted by key, shared between records with equal labels.
pub type Labels = Arc<[Pair]>;

/// The value of label `key`.
pub fn label<'a>(labels: &'a [Pair], key: &str) -> Option<&'a str> {
    labels
        .binary_search_by(|(k, _)| (**k).cmp(key))
        .ok()
        .map(|i| &*labels[i].1)
}

/// Every `key=value` of `selector` is among `labels`.
pub fn selector_matches<'a>(
    selector: impl IntoIterator<Item = (&'a str, &'a str)>,
    labels: &[Pair],
) -> bool {
    selector
        .into_iter()
        .all(|(k, v)| label(labels, k) == Some(v))
}

/// The tables records share values through, one for all the caches (a
/// Service's name is in its labels and selector, its pods' labels, its
/// slices' and Endpoints' labels).
#[derive(Debug, Default)]
pub struct Shared {
    /// Label keys and values, node names, zones.
    pub strings: Interner<str>,
    /// Label sets.
    pub labels: Interner<[Pair]>,
    /// Container port lists (equal for the pods of one template).
    pub ports: Interner<[ContainerPort]>,
    /// Pod label sets with port lists.
    pub templates: Interner<pod::Template>,
    /// Node name with zone, of slice endpoints.
    pub placements: Interner<Placement>,
}

/// Where an endpoint runs: node name and zone, shared by the endpoints on
/// one node (a thin pointer in place of two).
pub type Placement = (Option<Arc<str>>, Option<Arc<str>>);

/// The [`Shared`] tables as the caches' writers hold them.
pub type SharedTables = Arc<Mutex<Shared>>;

impl Shared {
    /// The shared label set of a map (sorted, as a map iterates).
    pub fn labels<'a>(
        &mut self,
        map: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Labels {
        let pairs: Vec<Pair> = map
            .into_iter()
            .map(|(k, v)| (self.strings.intern(k), self.strings.intern(v)))
            .collect();
        self.labels.intern(&pairs)
    }

    /// The shared copy of an optional string.
    pub fn string(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.strings.intern(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_round_trip_and_only_canonical_ones_pack() {
        let cases = [
            ("5f0c3a9e-1b2d-4c5e-8f70-123456789abc", true),
            ("00000000-0000-0000-0000-000000000000", true),
            ("5F0C3A9E-1B2D-4C5E-8F70-123456789ABC", false), // upper case prints back lower
            ("uid-web", false),
            ("5f0c3a9e1b2d-4c5e-8f70-123456789abcd", false),
            ("5f0c3a9e-1b2d-4c5e-8f70-123456789abg", false),
            ("", false),
        ];
        for (text, packed) in cases {
            let uid = Uid::new(text);
            assert_eq!(matches!(uid, Uid::Uuid(_)), packed, "{text}");
            assert_eq!(uid.to_string(), text);
        }
    }

    #[test]
    fn ips_keep_order() {
        let v4: IpAddr = "10.0.0.1".parse().expect("ip");
        let v6: IpAddr = "fd00::1".parse().expect("ip");
        for list in [vec![], vec![v4], vec![v6, v4]] {
            assert_eq!(Ips::new(&list).as_slice(), list.as_slice());
        }
        assert!(matches!(Ips::new(&[v4]), Ips::One(_)));
    }

    #[test]
    fn selectors_match_sorted_labels() {
        let mut shared = Shared::default();
        let map = std::collections::BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]);
        let labels = shared.labels(&map);
        assert!(Arc::ptr_eq(&labels, &shared.labels(&map)));
        let cases: [(&[(&str, &str)], bool); 5] = [
            (&[], true),
            (&[("app", "web")], true),
            (&[("app", "web"), ("tier", "front")], true),
            (&[("app", "db")], false),
            (&[("zone", "a")], false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                selector_matches(sel.iter().copied(), &labels),
                want,
                "{sel:?}"
            );
        }
        assert_eq!(label(&labels, "tier"), Some("front"));
    }
}
