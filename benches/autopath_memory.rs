//! Bench: `autopath @kubernetes` with `pods verified` (CoreDNS's only mode:
//! every Pod in the cluster watched) against ours without it (the client's
//! namespace learned from the EndpointSlices already watched): server
//! memory, and the share of clients autopath recognises.
//!
//! The release clusterdns runs against the in-process test API server
//! holding `AP_SERVICES` ClusterIP Services (default 1,000) over
//! `AP_NAMESPACES` namespaces (default 50), each backed by `AP_EPS` pods
//! (default 7), plus `AP_LONE` pods that back no Service (default 3,000):
//! 10,000 Pods by default. Pod IPs are loopback addresses (127.64.0.0/16),
//! so the bench can ask from a pod's own address: every `AP_SAMPLE`-th pod
//! (default 10) asks `svc0.ns0.svc.cluster.local.<its ns>.svc.cluster.local.`
//! once, and an answer that starts with autopath's CNAME counts as
//! recognised. Each mode is started `AP_REPEATS` times (default 2),
//! interleaved; VmHWM/VmRSS/RssAnon are read once it is ready and has
//! answered, after `AP_SETTLE_MS` (default 1000).
//!
//! Run: `cargo bench --bench autopath_memory`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;
mod util;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use util::{Api, Dns};

/// The generated cluster.
#[derive(Clone, Copy)]
struct Shape {
    services: usize,
    namespaces: usize,
    eps: usize,
    lone: usize,
}

impl Shape {
    fn pods(&self) -> usize {
        self.services * self.eps + self.lone
    }
    /// Namespace of pod `p`: its Service's, or round robin for lone pods.
    fn pod_ns(&self, p: usize) -> String {
        let owner = if p < self.services * self.eps {
            p / self.eps
        } else {
            p
        };
        format!("ns{}", owner % self.namespaces)
    }
    fn pod_ip(p: usize) -> String {
        format!("127.64.{}.{}", p / 250, p % 250 + 1)
    }
}

fn pod(ns: &str, name: &str, ip: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    }))
    .expect("pod")
}

fn seed(api: &Api, shape: Shape) {
    for n in 0..shape.namespaces {
        api.server.apply(&util::namespace(&format!("ns{n}")));
    }
    for s in 0..shape.services {
        let ns = format!("ns{}", s % shape.namespaces);
        let name = format!("svc{s}");
        api.server
            .apply(&util::service(&ns, &name, Some(&util::ip_in(96, s))));
        let ips: Vec<String> = (s * shape.eps..(s + 1) * shape.eps)
            .map(Shape::pod_ip)
            .collect();
        api.server.apply(&util::slice(&ns, &name, &ips));
    }
    for p in 0..shape.pods() {
        api.server.apply(&pod(
            &shape.pod_ns(p),
            &format!("pod{p}"),
            &Shape::pod_ip(p),
        ));
    }
}

/// One A query for `name` sent from `from`; the reply, if any.
fn ask_from(from: &str, to: SocketAddr, name: &str) -> Option<Message> {
    let s = UdpSocket::bind(format!("{from}:0")).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let q = common::query(name, RecordType::A);
    s.send_to(&q.to_vec().ok()?, to).ok()?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

struct Run {
    mode: &'static str,
    ready: Duration,
    hwm_kb: u64,
    rss_kb: u64,
    anon_kb: u64,
    asked: usize,
    recognised: usize,
}

fn run_once(api: &Api, shape: Shape, mode: &'static str, sample: usize, settle: Duration) -> Run {
    let pods = if mode == "pods verified" {
        "verified"
    } else {
        "insecure"
    };
    let dns = Dns::spawn_with(
        &api.server.url(),
        &format!("pods {pods}"),
        "autopath @kubernetes",
    );
    let ready = dns.wait_ready(Duration::from_secs(600));
    std::thread::sleep(settle);
    let (mut asked, mut recognised) = (0, 0);
    for p in (0..shape.pods()).step_by(sample.max(1)) {
        let qname = format!(
            "svc0.ns0.svc.cluster.local.{}.svc.cluster.local.",
            shape.pod_ns(p)
        );
        let m = ask_from(&Shape::pod_ip(p), dns.addr, &qname)
            .unwrap_or_else(|| panic!("no answer from {}; log:\n{}", dns.addr, dns.log()));
        asked += 1;
        let cname = m.metadata.response_code == ResponseCode::NoError
            && m.answers
                .first()
                .is_some_and(|r| r.record_type() == RecordType::CNAME);
        recognised += usize::from(cname);
    }
    Run {
        mode,
        ready,
        hwm_kb: dns.status_kb("VmHWM"),
        rss_kb: dns.status_kb("VmRSS"),
        anon_kb: dns.status_kb("RssAnon"),
        asked,
        recognised,
    }
}

fn main() {
    let bench = util::bench_mode();
    let shape = Shape {
        services: util::env_usize("AP_SERVICES", if bench { 1000 } else { 50 }),
        namespaces: util::env_usize("AP_NAMESPACES", 50).max(1),
        eps: util::env_usize("AP_EPS", 7),
        lone: util::env_usize("AP_LONE", if bench { 3000 } else { 150 }),
    };
    let repeats = util::env_usize("AP_REPEATS", if bench { 2 } else { 1 }).max(1);
    let sample = util::env_usize("AP_SAMPLE", 10);
    let settle = Duration::from_millis(util::env_usize("AP_SETTLE_MS", 1000) as u64);
    let api = Api::start();
    let t = Instant::now();
    seed(&api, shape);
    println!(
        "autopath_memory: {} Services, {} Pods ({} backing no Service), seeded in {}",
        shape.services,
        shape.pods(),
        shape.lone,
        util::ms(t.elapsed())
    );
    let mut runs = Vec::new();
    for r in 0..repeats {
        for mode in ["pods verified", "endpoints (ours)"] {
            let run = run_once(&api, shape, mode, sample, settle);
            println!(
                "  run {r} {mode}: ready {}, VmHWM {}, recognised {}/{}",
                util::ms(run.ready),
                util::mib(run.hwm_kb),
                run.recognised,
                run.asked
            );
            runs.push(run);
        }
    }
    let expected_endpoints = shape.services * shape.eps;
    // Every pod is known with the Pod watch; only those that back a Service without it.
    for run in &runs {
        let share = run.recognised as f64 / run.asked.max(1) as f64;
        let want = if run.mode == "pods verified" {
            1.0
        } else {
            expected_endpoints as f64 / shape.pods() as f64
        };
        assert!(
            (share - want).abs() < 0.05,
            "{}: recognised {share:.3} of clients, expected about {want:.3}",
            run.mode
        );
    }
    if !bench {
        return;
    }
    let mut body = format!(
        "## autopath_memory (issue 13 item 6)\n\n\
         Command: `cargo bench --bench autopath_memory` (`AP_SERVICES`, `AP_NAMESPACES`, `AP_EPS`, \
         `AP_LONE`, `AP_REPEATS`, `AP_SAMPLE`, `AP_SETTLE_MS`). {} ClusterIP Services in {} \
         namespaces, {} Pods: {} back a Service ({} each), {} back none; every {}th pod asks one \
         autopath question from its own (loopback) address. Corefile: `autopath @kubernetes` and \
         `kubernetes cluster.local {{ endpoint … ; pods verified | pods insecure }}`. Machine: {}. \
         Date: {}.\n\n\
         | mode | run | start→ready ms | VmHWM MiB | VmRSS MiB | RssAnon MiB | clients recognised |\n\
         |---|---|---|---|---|---|---|\n",
        shape.services,
        shape.namespaces,
        shape.pods(),
        expected_endpoints,
        shape.eps,
        shape.lone,
        sample,
        util::machine(),
        util::today()
    );
    for (i, run) in runs.iter().enumerate() {
        body.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} |\n",
            run.mode,
            i / 2,
            util::ms(run.ready),
            util::mib(run.hwm_kb),
            util::mib(run.rss_kb),
            util::mib(run.anon_kb),
            run.recognised,
            run.asked
        ));
    }
    util::write_section("autopath_memory", &body);
}
