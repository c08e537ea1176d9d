//! Criterion bench: the query path around the index — plugin chain overhead
//! and DNS message decoding/encoding.
//!
//! Measures, on the reference cluster of `fixture` (10k Services / 97.5k
//! endpoints; 500 Services under `cargo test`):
//! - `query_chain/*`: `Chain::serve` of a chain holding only the kubernetes
//!   plugin, against `ClusterIndex::lookup` called directly for the same
//!   question; the difference is what the plugin layer costs per query
//!   (zone match, snapshot load, synced check, `Answer` assembly, the boxed
//!   async-trait future). The futures never wait, so they are polled once
//!   with a no-op waker (no runtime in the measurement).
//! - `query_codec/*`: `Message::from_vec` of a typical stub-resolver query
//!   (one question + EDNS OPT); building a response `Message` from the
//!   answer's records and `to_vec()`; encoding the same records by reference
//!   into a reused buffer with `emit_message_parts` (no `Message`, no clone).
//! - `query_full/*`: decode → `Chain::serve` → encode of a response, i.e. the
//!   whole per-query work except socket I/O and hickory-server's framing.
//! - `query_server/*`: the same through the server's own functions
//!   (`wire::parse`, `Handler`, `wire::encode`: a memo miss) against a hit
//!   of the UDP loop's answer memo for the same request bytes.
//!
//! Run: `cargo bench --bench query_path`.

mod fixture;

use std::future::Future;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use clusterdns::dns::wire::{self, Parsed};
use clusterdns::dns::{Answer, AnswerMemo, Handler, Query, Route, Transport};
use clusterdns::index::LookupRequest;
use clusterdns::index::snapshot::SharedIndex;
use clusterdns::plugin::kubernetes::{Kubernetes, KubernetesConfig, Source};
use clusterdns::plugin::{Chain, Plugin};
use criterion::Criterion;
use fixture::{Probe, Shape};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, emit_message_parts};
use hickory_proto::op::{Metadata, Query as Question};
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::BinEncoder;

/// Drives a future that is expected to complete without waiting: polled once
/// with a no-op waker, and only if it does wait, handed to an executor.
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => futures::executor::block_on(fut),
    }
}

/// The `kubernetes cluster.local in-addr.arpa { pods verified }` plugin.
fn kubernetes(shared: Arc<SharedIndex>) -> Kubernetes {
    let opts = fixture::options();
    let cfg = KubernetesConfig {
        zones: vec![fixture::zone(), fixture::reverse_zone()],
        source: Source::Manifests(vec![PathBuf::from("/dev/null")]),
        namespaces: opts.namespaces,
        namespace_labels: None,
        labels: None,
        pods: opts.pods,
        endpoint_pod_names: opts.endpoint_pod_names,
        ttl: opts.ttl,
        noendpoints: opts.noendpoints,
        fallthrough: None,
        ignore_empty_service: opts.ignore_empty_service,
        startup_timeout: Duration::from_secs(5),
        multicluster: opts.multicluster_zones,
        multicluster_at: None,
        zonal: opts.zonal,
    };
    Kubernetes::new(&cfg, &[], opts.local_ips, shared)
}

fn query(probe: &Probe) -> Query {
    let src = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 3), 40000));
    Query::new(probe.qname.clone(), probe.qtype, src, Transport::Udp)
}

/// The probes the chain comparison uses: one cheap positive answer, one with
/// several records, one SRV with glue, one PTR and the two negative kinds.
fn chain_probes(shape: &Shape) -> Vec<Probe> {
    fixture::probes(shape)
        .into_iter()
        .filter(|p| {
            matches!(
                p.label,
                "clusterip_a"
                    | "headless_a_3_endpoints"
                    | "srv_headless"
                    | "ptr_endpoint"
                    | "nxdomain_service"
                    | "search_path_miss"
            )
        })
        .collect()
}

/// `Chain::serve` with the kubernetes plugin vs `lookup` directly.
fn bench_chain(c: &mut Criterion) {
    let shape = Shape::reference();
    let shared = SharedIndex::new(fixture::build_index(&shape));
    let plugin: Arc<dyn Plugin> = Arc::new(kubernetes(shared.clone()));
    let chain = Chain::new(vec![plugin]);
    let opts = fixture::options();
    let mut group = c.benchmark_group("query_chain");
    for probe in chain_probes(&shape) {
        let q = query(&probe);
        let req = LookupRequest {
            qname: &probe.qname,
            zone: &probe.zone,
            qtype: probe.qtype,
        };
        let direct = shared.load().lookup(&opts, &req);
        let served = run(chain.serve(&q)).unwrap_or_else(|e| panic!("{}: {e}", probe.label));
        assert_eq!(
            (served.rcode, &served.answers),
            (direct.rcode, &direct.answers),
            "{}",
            probe.label
        );
        group.bench_function(format!("{}/lookup_direct", probe.label), |b| {
            b.iter(|| shared.load().lookup(&opts, black_box(&req)));
        });
        group.bench_function(format!("{}/chain_serve", probe.label), |b| {
            b.iter(|| run(chain.serve(black_box(&q))));
        });
    }
    group.finish();
}

/// A stub resolver's query: RD set, one question, EDNS with a 1232 payload.
fn wire_query(qname: &Name, qtype: hickory_proto::rr::RecordType) -> Vec<u8> {
    let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Question::query(qname.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    msg.to_vec()
        .unwrap_or_else(|e| panic!("encoding a bench query: {e}"))
}

fn response_metadata(answer: &Answer) -> Metadata {
    let mut meta = Metadata::new(0x1234, MessageType::Response, OpCode::Query);
    meta.recursion_desired = true;
    meta.authoritative = answer.authoritative;
    meta.response_code = answer.rcode;
    meta
}

fn response_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns
}

/// A response `Message` of `answer` for `question`, records cloned in.
fn response(question: &Question, answer: &Answer) -> Message {
    let mut msg = Message::new(0x1234, MessageType::Response, OpCode::Query);
    msg.metadata = response_metadata(answer);
    msg.add_query(question.clone());
    msg.add_answers(answer.answers.iter().cloned());
    msg.add_authorities(answer.authority.iter().cloned());
    msg.add_additionals(answer.additionals.iter().cloned());
    msg.set_edns(response_edns());
    msg
}

/// Encode `answer` by reference into `buf` (cleared first), as a server
/// writing into a reused buffer would.
fn encode_into(buf: &mut Vec<u8>, question: &Question, answer: &Answer, edns: &Edns) {
    buf.clear();
    let mut encoder = BinEncoder::new(buf);
    let meta = response_metadata(answer);
    let result = emit_message_parts(
        &meta,
        &mut std::iter::once(question),
        &mut answer.answers.iter(),
        &mut answer.authority.iter(),
        &mut answer.additionals.iter(),
        Some(edns),
        None,
        &mut encoder,
    );
    if let Err(e) = result {
        panic!("encoding a bench response: {e}");
    }
}

/// Query decoding and response building/encoding for the chain's answers.
fn bench_codec(c: &mut Criterion) {
    let shape = Shape::reference();
    let shared = SharedIndex::new(fixture::build_index(&shape));
    let chain = Chain::new(vec![Arc::new(kubernetes(shared)) as Arc<dyn Plugin>]);
    let mut group = c.benchmark_group("query_codec");

    let probes = fixture::probes(&shape);
    let first = &probes[0];
    let wire = wire_query(&first.qname, first.qtype);
    let decoded = Message::from_vec(&wire).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(decoded.queries[0].name(), &first.qname);
    group.bench_function("decode_query", |b| {
        b.iter(|| Message::from_vec(black_box(&wire)));
    });

    let edns = response_edns();
    let mut buf = Vec::with_capacity(4096);
    for probe in chain_probes(&shape) {
        let answer = run(chain.serve(&query(&probe))).unwrap_or_else(|e| panic!("{e}"));
        let question = Question::query(probe.qname.clone(), probe.qtype);
        let msg = response(&question, &answer);
        let bytes = msg.to_vec().unwrap_or_else(|e| panic!("encode: {e}"));
        encode_into(&mut buf, &question, &answer, &edns);
        assert_eq!(buf, bytes, "{}: both encoders agree", probe.label);
        group.bench_function(format!("{}/build_message_to_vec", probe.label), |b| {
            b.iter(|| response(black_box(&question), black_box(&answer)).to_vec());
        });
        group.bench_function(format!("{}/to_vec_prebuilt", probe.label), |b| {
            b.iter(|| black_box(&msg).to_vec());
        });
        group.bench_function(format!("{}/emit_parts_reused_buffer", probe.label), |b| {
            b.iter(|| encode_into(&mut buf, black_box(&question), black_box(&answer), &edns));
        });
    }
    group.finish();
}

/// Decode → chain → encode, the per-query work minus sockets.
fn bench_full(c: &mut Criterion) {
    let shape = Shape::reference();
    let shared = SharedIndex::new(fixture::build_index(&shape));
    let chain = Chain::new(vec![Arc::new(kubernetes(shared)) as Arc<dyn Plugin>]);
    let src = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 3), 40000));
    let edns = response_edns();
    let mut buf = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("query_full");
    for probe in chain_probes(&shape) {
        let wire = wire_query(&probe.qname, probe.qtype);
        group.bench_function(probe.label, |b| {
            b.iter(|| {
                let Ok(msg) = Message::from_vec(black_box(&wire)) else {
                    return 0;
                };
                let Some(question) = msg.queries.first() else {
                    return 0;
                };
                let q = Query::new(
                    question.name().clone(),
                    question.query_type(),
                    src,
                    Transport::Udp,
                );
                let Ok(answer) = run(chain.serve(&q)) else {
                    return 0;
                };
                encode_into(&mut buf, question, &answer, &edns);
                buf.len()
            });
        });
    }
    group.finish();
}

/// The server's own per-query functions, as the UDP loop calls them:
/// `wire::parse` → `Handler::answer_memoizable` → `wire::encode` (a memo
/// miss), against `Handler::answer_from_memo` for the same request bytes
/// (a hit). Sockets excluded.
fn bench_server(c: &mut Criterion) {
    let shape = Shape::reference();
    let shared = SharedIndex::new(fixture::build_index(&shape));
    let chain = Chain::new(vec![Arc::new(kubernetes(shared)) as Arc<dyn Plugin>]);
    let handler = Handler::new(vec![Route {
        zones: vec![Name::root()],
        chain,
        server: "dns://:53".into(),
        metrics: None,
        view: None,
    }]);
    let src = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 3), 40000));
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("query_server");
    for probe in chain_probes(&shape) {
        let bytes = wire_query(&probe.qname, probe.qtype);
        let full = |out: &mut Vec<u8>| {
            let Parsed::Query(req) = wire::parse(black_box(&bytes), src, Transport::Udp) else {
                return None;
            };
            let (answer, ticket) = run(handler.answer_memoizable(&req.query));
            wire::encode(&req, &answer, Transport::Udp, out)?;
            ticket
        };
        group.bench_function(format!("{}/full_path", probe.label), |b| {
            b.iter(|| {
                full(&mut out);
                out.len()
            });
        });
        let mut memo = AnswerMemo::default();
        let _ = handler.answer_from_memo(&mut memo, &bytes, src, &mut out);
        let ticket = full(&mut out).expect("a memoizable answer");
        memo.insert(&bytes, ticket, &out);
        group.bench_function(format!("{}/memo_hit", probe.label), |b| {
            b.iter(|| {
                assert!(handler.answer_from_memo(&mut memo, black_box(&bytes), src, &mut out));
                out.len()
            });
        });
    }
    group.finish();
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, written out so the
    // bench has no undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    bench_chain(&mut c);
    bench_codec(&mut c);
    bench_full(&mut c);
    bench_server(&mut c);
    c.final_summary();
}
