//! The query-name grammar of the cluster zone (after CoreDNS `parse.go`), and
//! the reverse-name and dashed-IP forms used by endpoint, pod and PTR records.
//!
//! Everything here is pure and allocation-free: labels are borrowed from the
//! query [`Name`], compared case-insensitively, and lower-cased only into
//! fixed stack buffers. Invariant: [`parse`] never fails — a name that fits no
//! form is [`QueryName::Invalid`] (answered NXDOMAIN), so a fuzzer can feed it
//! anything.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// The two branches below the zone that hold cluster names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// `svc.<zone>`: services and their endpoints.
    Svc,
    /// `pod.<zone>`: pods by dashed IP.
    Pod,
}

/// What a query name asks for, by the labels left of the zone. Labels are the
/// raw bytes as the client sent them (case preserved); SRV port and protocol
/// have their leading `_` removed, and an empty one matches anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryName<'a> {
    /// The zone itself.
    Apex,
    /// `dns-version.<zone>` (the schema version TXT).
    DnsVersion,
    /// `dns.<zone>`: the empty parent of `ns.dns.<zone>`.
    DnsParent,
    /// `ns.dns.<zone>`: this server's own addresses.
    NsDns,
    /// `svc.<zone>`.
    BareSvc,
    /// `pod.<zone>`.
    BarePod,
    /// `<ns>.svc.<zone>` or `<ns>.pod.<zone>`.
    Namespace {
        /// Which branch.
        branch: Branch,
        /// The namespace label.
        ns: &'a [u8],
    },
    /// `<service>.<ns>.svc.<zone>`.
    Service {
        /// The service label.
        service: &'a [u8],
        /// The namespace label.
        ns: &'a [u8],
    },
    /// `<endpoint>.<service>.<ns>.svc.<zone>`.
    Endpoint {
        /// The endpoint label (hostname, dashed IP or pod name).
        endpoint: &'a [u8],
        /// The service label.
        service: &'a [u8],
        /// The namespace label.
        ns: &'a [u8],
    },
    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`.
    Srv {
        /// Port name without the `_`; empty matches any port.
        port: &'a [u8],
        /// Protocol without the `_`; empty matches any protocol.
        proto: &'a [u8],
        /// The service label.
        service: &'a [u8],
        /// The namespace label.
        ns: &'a [u8],
    },
    /// `<endpoint>.<cluster>.<service>.<ns>.svc.<zone>`: an endpoint of a
    /// multicluster service in one member cluster (`multicluster` zones only).
    McEndpoint {
        /// The endpoint label (hostname, dashed IP or pod name).
        endpoint: &'a [u8],
        /// The cluster id label.
        cluster: &'a [u8],
        /// The service label.
        service: &'a [u8],
        /// The namespace label.
        ns: &'a [u8],
    },
    /// `<topology-zone>.pin|prefer._zone.<service>.<ns>.svc.<zone>` (`zonal`
    /// only, never in `multicluster` zones): a headless service's endpoints
    /// in one topology zone.
    Zonal {
        /// The topology zone: every label left of the directive, joined with
        /// `.` and lower-cased; `None` when longer than a label value can be
        /// (63), so no endpoint's zone can match it.
        topo: Option<StackStr>,
        /// `prefer` (fall back to every endpoint) rather than `pin`.
        prefer: bool,
        /// The service label.
        service: &'a [u8],
        /// The namespace label.
        ns: &'a [u8],
    },
    /// `<dashed-ip>.<ns>.pod.<zone>`.
    Pod {
        /// The pod label (a dashed IP).
        pod: &'a [u8],
        /// The namespace label.
        ns: &'a [u8],
    },
    /// Anything else (wrong branch, too many labels, outside the zone): NXDOMAIN.
    Invalid,
}

/// Which optional forms a zone's grammar has (kubernetes plugin options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grammar {
    /// The zone is a `multicluster` zone: five labels without a leading `_`
    /// are `<endpoint>.<cluster>.<service>.<ns>.svc`.
    pub multicluster: bool,
    /// `zonal`: `<topology-zone>.pin|prefer._zone.<service>.<ns>.svc` (not in
    /// multicluster zones).
    pub zonal: bool,
}

/// The anchor label of a zone-scoped name.
const ZONE_ANCHOR: &str = "_zone";

/// Parses the labels of `qname` left of `zone` in the plain cluster grammar.
/// Case-insensitive.
pub fn parse<'a>(qname: &'a Name, zone: &Name) -> QueryName<'a> {
    parse_in(qname, zone, Grammar::default())
}

/// Parses the labels of `qname` left of `zone` in `grammar`. Case-insensitive.
pub fn parse_in<'a>(qname: &'a Name, zone: &Name, grammar: Grammar) -> QueryName<'a> {
    let total = qname.iter().len();
    let zone_len = zone.iter().len();
    if total < zone_len || !zone.zone_of(qname) {
        return QueryName::Invalid;
    }
    let left = total - zone_len;
    if left == 0 {
        return QueryName::Apex;
    }
    // The longest fixed form has five labels left of the zone; only a zonal
    // name has more.
    if left > 5 {
        if grammar.zonal && !grammar.multicluster {
            return zonal(qname, zone_len, left);
        }
        return QueryName::Invalid;
    }
    let mut labels: [&[u8]; 5] = [&[]; 5];
    for (slot, label) in labels.iter_mut().zip(qname.iter()) {
        *slot = label;
    }
    let labels = &labels[..left];
    let last = labels[left - 1];
    if left == 1 {
        return if eq(last, "svc") {
            QueryName::BareSvc
        } else if eq(last, "pod") {
            QueryName::BarePod
        } else if eq(last, "dns-version") {
            QueryName::DnsVersion
        } else if eq(last, "dns") {
            QueryName::DnsParent
        } else {
            QueryName::Invalid
        };
    }
    if left == 2 && eq(last, "dns") && eq(labels[0], "ns") {
        return QueryName::NsDns;
    }
    let branch = if eq(last, "svc") {
        Branch::Svc
    } else if eq(last, "pod") {
        Branch::Pod
    } else {
        return QueryName::Invalid;
    };
    match (branch, labels) {
        (_, &[ns, _]) => QueryName::Namespace { branch, ns },
        (Branch::Svc, &[service, ns, _]) => QueryName::Service { service, ns },
        (Branch::Pod, &[pod, ns, _]) => QueryName::Pod { pod, ns },
        (Branch::Svc, &[endpoint, service, ns, _]) => QueryName::Endpoint {
            endpoint,
            service,
            ns,
        },
        (Branch::Svc, &[endpoint, cluster, service, ns, _])
            if grammar.multicluster
                && !endpoint.starts_with(b"_")
                && !cluster.starts_with(b"_") =>
        {
            QueryName::McEndpoint {
                endpoint,
                cluster,
                service,
                ns,
            }
        }
        (Branch::Svc, &[port, proto, service, ns, _]) => QueryName::Srv {
            port: strip_underscore(port),
            proto: strip_underscore(proto),
            service,
            ns,
        },
        // Pods have no deeper names; anything longer is too long.
        _ => QueryName::Invalid,
    }
}

/// `<topo>.pin|prefer._zone.<service>.<ns>.svc` with `left` (> 5) labels
/// left of the zone; anything else of that length is Invalid.
fn zonal(qname: &Name, zone_len: usize, left: usize) -> QueryName<'_> {
    // The five fixed labels, right to left: svc, ns, service, _zone, directive.
    let mut fixed = qname.iter().rev().skip(zone_len);
    let (Some(svc), Some(ns), Some(service), Some(anchor), Some(directive)) = (
        fixed.next(),
        fixed.next(),
        fixed.next(),
        fixed.next(),
        fixed.next(),
    ) else {
        return QueryName::Invalid;
    };
    if !eq(svc, "svc") || !eq(anchor, ZONE_ANCHOR) {
        return QueryName::Invalid;
    }
    let prefer = if eq(directive, "prefer") {
        true
    } else if eq(directive, "pin") {
        false
    } else {
        return QueryName::Invalid;
    };
    let mut topo = Some(StackStr::new());
    for (i, label) in qname.iter().take(left - 5).enumerate() {
        topo = topo.and_then(|mut t| {
            if i > 0 {
                t.write_str(".").ok()?;
            }
            let lower = StackStr::lower(label)?;
            t.write_str(lower.as_str()).ok()?;
            // A label value is at most 63 characters.
            (t.len <= 63).then_some(t)
        });
    }
    QueryName::Zonal {
        topo,
        prefer,
        service,
        ns,
    }
}

fn strip_underscore(label: &[u8]) -> &[u8] {
    label.strip_prefix(b"_").unwrap_or(label)
}

/// Case-insensitive comparison of a query label with lower-case data.
pub fn eq(label: &[u8], data: &str) -> bool {
    label.eq_ignore_ascii_case(data.as_bytes())
}

/// True if `name` lies under `in-addr.arpa.` or `ip6.arpa.`.
pub fn is_reverse(name: &Name) -> bool {
    let mut rev = name.iter().rev();
    matches!((rev.next(), rev.next()), (Some(arpa), Some(kind))
        if arpa.eq_ignore_ascii_case(b"arpa")
            && (kind.eq_ignore_ascii_case(b"in-addr") || kind.eq_ignore_ascii_case(b"ip6")))
}

/// The address of a full reverse name: four decimal labels under
/// `in-addr.arpa.` or 32 nibbles under `ip6.arpa.`. `None` for anything else
/// (a partial name such as `0.10.in-addr.arpa.` included).
pub fn parse_reverse(name: &Name) -> Option<IpAddr> {
    let labels = name.iter().len();
    let mut it = name.iter();
    match labels {
        6 => {
            let mut octets = [0u8; 4];
            for slot in octets.iter_mut().rev() {
                *slot = decimal_octet(it.next()?)?;
            }
            if eq(it.next()?, "in-addr") && eq(it.next()?, "arpa") {
                return Some(IpAddr::V4(Ipv4Addr::from(octets)));
            }
            None
        }
        34 => {
            let mut value: u128 = 0;
            for shift in 0..32 {
                let label = it.next()?;
                let [digit] = label else { return None };
                let nibble = (*digit as char).to_digit(16)?;
                value |= u128::from(nibble) << (4 * shift);
            }
            if eq(it.next()?, "ip6") && eq(it.next()?, "arpa") {
                return Some(IpAddr::V6(Ipv6Addr::from(value)));
            }
            None
        }
        _ => None,
    }
}

/// A decimal 0–255 without leading zeros (as Go's `net.ParseIP` requires).
fn decimal_octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    let mut value: u16 = 0;
    for &c in label {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(c - b'0');
    }
    u8::try_from(value).ok()
}

/// A short string on the stack: a lower-cased label or a dashed IP (both at
/// most 63 bytes), so lookups never allocate.
#[derive(Clone, Copy)]
pub struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl StackStr {
    const fn new() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }

    /// The label lower-cased, or `None` if it is not UTF-8 (so it can match no
    /// Kubernetes name) or longer than a DNS label.
    pub fn lower(label: &[u8]) -> Option<Self> {
        let mut s = Self::new();
        let dst = s.buf.get_mut(..label.len())?;
        for (d, c) in dst.iter_mut().zip(label) {
            *d = c.to_ascii_lowercase();
        }
        s.len = label.len();
        std::str::from_utf8(s.as_bytes()).ok()?;
        Some(s)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text; only ASCII or checked UTF-8 is ever written.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl PartialEq for StackStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for StackStr {}

impl fmt::Debug for StackStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The endpoint label of an address without a hostname: `10-0-0-1`, or for
/// IPv6 every `:` as `-`, a leading or trailing `-` padded with `0` so the
/// label is a valid hostname (`::1` → `0--1`, `5678:abcd::` → `5678-abcd--0`).
/// CoreDNS pads only the trailing end; [`endpoint_label_ip`] accepts its
/// unpadded leading form too.
pub fn dashed_ip(ip: IpAddr) -> StackStr {
    let mut s = coredns_dashed_ip(ip);
    if s.as_bytes().first() == Some(&b'-') {
        let mut padded = StackStr::new();
        // At most 40 bytes: fits in 64.
        let _ = write!(padded, "0{}", s.as_str());
        s = padded;
    }
    s
}

/// CoreDNS's form: IPv6 `:` → `-` and a trailing `-` → `-0`.
fn coredns_dashed_ip(ip: IpAddr) -> StackStr {
    let mut text = StackStr::new();
    // An IP address is at most 45 bytes of text: fits in 64.
    let _ = write!(text, "{ip}");
    for b in &mut text.buf[..text.len] {
        if *b == b'.' || *b == b':' {
            *b = b'-';
        }
    }
    if text.as_bytes().last() == Some(&b'-') {
        let _ = text.write_str("0");
    }
    text
}

/// The address whose dashed form (ours or CoreDNS's) is exactly `label`
/// (already lower-cased); `None` for any other spelling.
pub fn endpoint_label_ip(label: &str) -> Option<IpAddr> {
    let ip = dashed_to_ip(label)?;
    (dashed_ip(ip).as_str() == label || coredns_dashed_ip(ip).as_str() == label).then_some(ip)
}

/// CoreDNS's pod-label rule: exactly three `-` and no `--` is IPv4 with `-` →
/// `.`; anything else is IPv6 with `-` → `:`. `None` if that is no address.
pub fn pod_label_ip(label: &[u8]) -> Option<IpAddr> {
    let lower = StackStr::lower(label)?;
    dashed_to_ip(lower.as_str())
}

fn dashed_to_ip(label: &str) -> Option<IpAddr> {
    let dashes = label.bytes().filter(|&b| b == b'-').count();
    let mut text = StackStr::new();
    if dashes == 3 && !label.contains("--") {
        for part in label.split('-') {
            if text.len > 0 {
                text.write_str(".").ok()?;
            }
            text.write_str(part).ok()?;
        }
        return text.as_str().parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    for part in label.split('-').enumerate() {
        if part.0 > 0 {
            text.write_str(":").ok()?;
        }
        text.write_str(part.1).ok()?;
    }
    text.as_str().parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn parses_every_form_case_insensitively() {
        let zone = n("cluster.local.");
        let q = n("_HTTP._Tcp.Svc1.TestNS.SVC.Cluster.Local.");
        match parse(&q, &zone) {
            QueryName::Srv {
                port,
                proto,
                service,
                ns,
            } => {
                assert_eq!(
                    (port, proto, service, ns),
                    (&b"HTTP"[..], &b"Tcp"[..], &b"Svc1"[..], &b"TestNS"[..])
                );
            }
            other => panic!("{other:?}"),
        }
        let cases = [
            ("cluster.local.", QueryName::Apex),
            ("dns-version.cluster.local.", QueryName::DnsVersion),
            ("NS.DNS.cluster.local.", QueryName::NsDns),
            ("dns.cluster.local.", QueryName::DnsParent),
            ("svc.cluster.local.", QueryName::BareSvc),
            ("pod.cluster.local.", QueryName::BarePod),
            ("foo.cluster.local.", QueryName::Invalid),
            ("a.b.c.svc.ns.svc.cluster.local.", QueryName::Invalid),
            ("a.b.ns.pod.cluster.local.", QueryName::Invalid),
            ("x.ns.foo.cluster.local.", QueryName::Invalid),
            ("svc1.testns.svc.example.org.", QueryName::Invalid),
        ];
        for (q, want) in cases {
            assert_eq!(parse(&n(q), &zone), want, "{q}");
        }
        let q = n("testns.pod.cluster.local.");
        assert_eq!(
            parse(&q, &zone),
            QueryName::Namespace {
                branch: Branch::Pod,
                ns: b"testns"
            }
        );
        let q = n("ep.svc1.testns.svc.cluster.local.");
        assert_eq!(
            parse(&q, &zone),
            QueryName::Endpoint {
                endpoint: b"ep",
                service: b"svc1",
                ns: b"testns"
            }
        );
    }

    #[test]
    fn multicluster_and_zonal_forms_exist_only_in_their_grammar() {
        let zone = n("cluster.local.");
        let mc = Grammar {
            multicluster: true,
            zonal: true,
        };
        let zonal = Grammar {
            multicluster: false,
            zonal: true,
        };
        let q = n("Ep.C1.Svc.NS.svc.cluster.local.");
        assert_eq!(
            parse_in(&q, &zone, mc),
            QueryName::McEndpoint {
                endpoint: b"Ep",
                cluster: b"C1",
                service: b"Svc",
                ns: b"NS"
            }
        );
        assert!(matches!(parse(&q, &zone), QueryName::Srv { .. }));
        // A leading `_` on either label keeps the SRV form (CoreDNS).
        let q = n("_http.tcp.svc.ns.svc.cluster.local.");
        assert!(matches!(parse_in(&q, &zone, mc), QueryName::Srv { .. }));
        let q = n("Corp.Example.pin._zone.db.prod.svc.cluster.local.");
        match parse_in(&q, &zone, zonal) {
            QueryName::Zonal {
                topo,
                prefer,
                service,
                ns,
            } => {
                assert_eq!(topo.as_ref().map(StackStr::as_str), Some("corp.example"));
                assert_eq!((prefer, service, ns), (false, &b"db"[..], &b"prod"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_in(&q, &zone, mc), QueryName::Invalid);
        assert_eq!(parse(&q, &zone), QueryName::Invalid);
        let q = n("z.prefer._zone.db.prod.svc.cluster.local.");
        assert!(matches!(
            parse_in(&q, &zone, zonal),
            QueryName::Zonal { prefer: true, .. }
        ));
        for bad in [
            "z.pin.zone.db.prod.svc.cluster.local.",
            "z.nail._zone.db.prod.svc.cluster.local.",
            "z.pin._zone.db.prod.pod.cluster.local.",
        ] {
            assert_eq!(parse_in(&n(bad), &zone, zonal), QueryName::Invalid, "{bad}");
        }
    }

    #[test]
    fn reverse_names_need_a_full_address() {
        assert_eq!(
            parse_reverse(&n("4.3.2.1.in-addr.arpa.")),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            parse_reverse(&n("4.3.2.1.IN-ADDR.ARPA.")),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(parse_reverse(&n("3.2.1.in-addr.arpa.")), None);
        assert_eq!(parse_reverse(&n("256.3.2.1.in-addr.arpa.")), None);
        assert_eq!(parse_reverse(&n("04.3.2.1.in-addr.arpa.")), None);
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.";
        assert_eq!(parse_reverse(&n(v6)), Some("1234:abcd::1".parse().unwrap()));
        assert_eq!(parse_reverse(&n("0.d.c.b.a.4.3.2.1.ip6.arpa.")), None);
        assert!(is_reverse(&n("0.10.in-addr.arpa.")));
        assert!(!is_reverse(&n("svc.cluster.local.")));
    }

    #[test]
    fn dashed_ips_follow_coredns_and_pad_both_ends() {
        let d = |s: &str| dashed_ip(s.parse().unwrap()).as_str().to_owned();
        assert_eq!(d("172.0.0.2"), "172-0-0-2");
        assert_eq!(d("5678:abcd::1"), "5678-abcd--1");
        assert_eq!(d("5678:abcd::"), "5678-abcd--0");
        assert_eq!(d("::1"), "0--1");
        assert_eq!(endpoint_label_ip("0--1"), Some("::1".parse().unwrap()));
        assert_eq!(endpoint_label_ip("--1"), Some("::1".parse().unwrap()));
        assert_eq!(
            endpoint_label_ip("5678-abcd--0"),
            Some("5678:abcd::".parse().unwrap())
        );
        assert_eq!(endpoint_label_ip("5678-abcd-0-0-0-0-0-1"), None);
        assert_eq!(endpoint_label_ip("ep1a"), None);
    }

    #[test]
    fn pod_labels_become_addresses() {
        assert_eq!(
            pod_label_ip(b"10-240-0-1"),
            Some("10.240.0.1".parse().unwrap())
        );
        assert_eq!(
            pod_label_ip(b"1-2-3--A-B-C"),
            Some("1:2:3::a:b:c".parse().unwrap())
        );
        assert_eq!(pod_label_ip(b"blah"), None);
        assert_eq!(pod_label_ip(b"a-b-c-d"), None);
    }
}
