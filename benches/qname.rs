//! Criterion bench: query-name parsing, the first thing every cluster query does.
//!
//! Measures `clusterdns::index::name::parse` (the `svc`/`pod` grammar left of
//! the zone, borrowed labels, no allocation) for each name form the index
//! answers, and `parse_reverse` / `is_reverse` for PTR names. Each input is a
//! prebuilt `hickory_proto::rr::Name` (the server decodes it once per query),
//! so the numbers are the parser alone. Mixed-case variants show the cost of
//! case-insensitive matching (DNS 0x20 clients randomise case).
//!
//! Run: `cargo bench --bench qname`. Under `cargo test --all-targets` each
//! bench runs once as a smoke test.

use std::hint::black_box;
use std::str::FromStr;

use clusterdns::index::name::{self, QueryName};
use criterion::Criterion;
use hickory_proto::rr::Name;

fn n(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("bad bench name {s}: {e}"))
}

/// A bench id, a query name and the parse result it must give.
type Case = (&'static str, &'static str, fn(&QueryName<'_>) -> bool);

/// `name::parse` for each form of cluster name, with the kind it must yield
/// checked once before measuring (a wrong fixture would bench the wrong path).
fn bench_parse(c: &mut Criterion) {
    let zone = n("cluster.local.");
    let cases: [Case; 7] = [
        ("service", "svc0.ns0.svc.cluster.local.", |q| {
            matches!(q, QueryName::Service { .. })
        }),
        ("service_mixed_case", "SvC0.nS0.SVC.Cluster.Local.", |q| {
            matches!(q, QueryName::Service { .. })
        }),
        ("srv", "_http._tcp.svc0.ns0.svc.cluster.local.", |q| {
            matches!(q, QueryName::Srv { .. })
        }),
        ("endpoint", "10-0-0-1.svc3.ns3.svc.cluster.local.", |q| {
            matches!(q, QueryName::Endpoint { .. })
        }),
        ("pod", "10-0-0-1.ns0.pod.cluster.local.", |q| {
            matches!(q, QueryName::Pod { .. })
        }),
        (
            "search_path_miss",
            "svc0.ns0.svc.cluster.local.ns0.svc.cluster.local.",
            |q| matches!(q, QueryName::Invalid),
        ),
        ("outside_zone", "www.example.com.", |q| {
            matches!(q, QueryName::Invalid)
        }),
    ];
    let mut group = c.benchmark_group("qname_parse");
    for (label, text, expect) in cases {
        let qname = n(text);
        assert!(expect(&name::parse(&qname, &zone)), "{text} parsed wrongly");
        group.bench_function(label, |b| {
            b.iter(|| name::parse(black_box(&qname), black_box(&zone)));
        });
    }
    group.finish();
}

/// `is_reverse` + `parse_reverse` for a full IPv4 and IPv6 PTR name (what
/// the lookup does for every reverse query), and `parse_reverse` rejecting
/// a partial reverse name.
fn bench_reverse(c: &mut Criterion) {
    let v4 = n("1.0.0.10.in-addr.arpa.");
    let v6 = n("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.");
    let partial = n("0.10.in-addr.arpa.");
    assert_eq!(
        name::parse_reverse(&v4).map(|ip| ip.to_string()).as_deref(),
        Some("10.0.0.1")
    );
    assert_eq!(
        name::parse_reverse(&v6).map(|ip| ip.to_string()).as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(name::parse_reverse(&partial), None);

    let mut group = c.benchmark_group("qname_reverse");
    for (label, qname) in [("v4", &v4), ("v6", &v6), ("partial_v4", &partial)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                let q = black_box(qname);
                name::is_reverse(q).then(|| name::parse_reverse(q))
            });
        });
    }
    group.finish();
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, written out so the
    // bench has no undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    bench_parse(&mut c);
    bench_reverse(&mut c);
    c.final_summary();
}
