//! Criterion bench: the cluster index — answering, updating and publishing.
//!
//! Measures, on a generated cluster of 10k Services / 97.5k endpoints in 100
//! namespaces (see `fixture`; 500 Services under `cargo test`):
//! - `index_lookup/*`: `ClusterIndex::lookup` per record kind — ClusterIP A,
//!   headless A (3 endpoints), SRV of a ClusterIP and of a headless service
//!   (with A glue), PTR of a ClusterIP and of an endpoint, NXDOMAIN for an
//!   unknown service, the ndots:5 search-path miss
//!   `svc.ns.svc.cluster.local.ns.svc.cluster.local.`, and a `pods verified`
//!   pod A. This is everything the kubernetes plugin does per query after it
//!   has picked the zone, including building the `Record`s.
//! - `index_publish/*`: `SharedIndex::apply` of one EndpointSlice change at
//!   10k and 100k Services: clone the published snapshot, apply the change
//!   (copy-on-write of the touched shards), and swap it in — the writer's cost
//!   per batch, which bounds how fast endpoint churn becomes visible.
//! - `index_snapshot/*`: `ClusterIndex::clone` (what `apply` starts with) and
//!   `SharedIndex::load` (what every query starts with).
//!
//! Run: `cargo bench --bench index_lookup`.

mod fixture;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use clusterdns::index::snapshot::SharedIndex;
use clusterdns::index::{ClusterIndex, IndexUpdate, LookupRequest, Object};
use criterion::{BatchSize, Criterion};
use fixture::Shape;
use hickory_proto::op::ResponseCode;

/// One `lookup` per record kind on the reference cluster; each probe's rcode
/// and answer count are checked once so the bench cannot silently measure an
/// error path.
fn bench_lookup(c: &mut Criterion) {
    let shape = Shape::reference();
    let idx = fixture::build_index(&shape);
    assert_eq!(idx.service_count(), shape.services);
    assert_eq!(idx.endpoint_count(), shape.endpoint_total());
    let opts = fixture::options();
    let mut group = c.benchmark_group("index_lookup");
    for probe in fixture::probes(&shape) {
        let req = LookupRequest {
            qname: &probe.qname,
            zone: &probe.zone,
            qtype: probe.qtype,
        };
        let res = idx.lookup(&opts, &req);
        let (rcode, answers) = expected(probe.label);
        assert_eq!(
            (res.rcode, res.answers.len()),
            (rcode, answers),
            "{}",
            probe.label
        );
        group.bench_function(probe.label, |b| {
            b.iter(|| black_box(&idx).lookup(&opts, black_box(&req)));
        });
    }
    group.finish();
}

/// The rcode and answer count each probe must get.
fn expected(label: &str) -> (ResponseCode, usize) {
    match label {
        "clusterip_a" | "ptr_clusterip" | "ptr_endpoint" | "pod_a_verified" | "srv_clusterip" => {
            (ResponseCode::NoError, 1)
        }
        "headless_a_3_endpoints" | "srv_headless" => (ResponseCode::NoError, 3),
        _ => (ResponseCode::NXDomain, 0),
    }
}

/// `SharedIndex::apply` of one endpoint change, alternating between adding
/// and removing an extra endpoint of one service so every iteration is a
/// real change and the index does not grow.
fn bench_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_publish");
    group.sample_size(if fixture::full_size() { 50 } else { 10 });
    for services in [fixture::size(10_000, 500), fixture::size(100_000, 1_000)] {
        let shape = Shape {
            services,
            // 100k Services keep ~250k endpoints so the build stays a few seconds.
            cip_eps: if services > 10_000 { 2 } else { 12 },
        };
        let shared = SharedIndex::new(fixture::build_index(&shape));
        let target = 1;
        let extra = IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1));
        let first_index = fixture::first_endpoint(&shape, target);
        let with = IndexUpdate::Apply(Object::EndpointSlice(fixture::slice(
            &shape,
            target,
            first_index,
            Some(extra),
        )));
        let without = IndexUpdate::Apply(Object::EndpointSlice(fixture::slice(
            &shape,
            target,
            first_index,
            None,
        )));
        let before = shared.load().endpoint_count();
        shared.apply([with.clone()]);
        assert_eq!(shared.load().endpoint_count(), before + 1);
        shared.apply([without.clone()]);
        assert_eq!(shared.load().endpoint_count(), before);

        let label = format!("one_endpoint_change_{}k_services", services / 1000);
        let mut add = true;
        group.bench_function(label, |b| {
            b.iter_batched(
                || {
                    add = !add;
                    if add { with.clone() } else { without.clone() }
                },
                |update| shared.apply([update]),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// Cloning the reference index (a writer's first step) and loading the
/// published snapshot (a reader's first step).
fn bench_snapshot(c: &mut Criterion) {
    let shape = Shape::reference();
    let idx = fixture::build_index(&shape);
    let mut group = c.benchmark_group("index_snapshot");
    group.bench_function("clone_10k_services", |b| {
        b.iter(|| ClusterIndex::clone(black_box(&idx)));
    });
    let shared = SharedIndex::new(idx);
    group.bench_function("load", |b| b.iter(|| black_box(&shared).load()));
    group.finish();
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, written out so the
    // bench has no undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    bench_lookup(&mut c);
    bench_publish(&mut c);
    bench_snapshot(&mut c);
    c.final_summary();
}
