//! Benchmark: a large generated cluster (issue 3, acceptance (b) and (c)) —
//! start→ready time and memory of clusterdns for 1k, 10k and 100k Services.
//!
//! For each size the test API server is filled with Namespaces, Services (one
//! in four headless) and one EndpointSlice per Service holding `SCALE_EPS`
//! endpoints (default 15, so 10k Services = 150k endpoints). A kube client in
//! this process then lists everything the way clusterdns's watchers do (pages
//! of 500, the three kinds concurrently): that is how long the API lists take
//! to arrive. Then the release clusterdns is started `SCALE_REPEATS` times and
//! for each run we record start→`/ready` 200, start→first correct answer, when
//! its own log says each list completed, and VmHWM / VmRSS / RssAnon from
//! /proc after it settles. A sample of names is checked for correct answers.
//!
//! Settings: `SCALE_SIZES` (comma list of Service counts, an entry may be
//! `N:E` to use E endpoints per Service for that size; default
//! `1000,10000,1000:1,10000:1,100000:1`), `SCALE_EPS`, `SCALE_NAMESPACES` (default 100),
//! `SCALE_REPEATS` (default 3; sizes above `SCALE_BIG`, default 20000, run once
//! and skip the bench-side list, which is quadratic in the test API server), `SCALE_SETTLE_MS` (default 2000), `SCALE_HOLD_MS`
//! (keep each clusterdns alive that long after measuring, to attach a profiler).
//! Without `--bench` (under `cargo test --all-targets`) it runs one small
//! cluster (100 Services) once and asserts that it becomes ready and answers.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;
mod util;

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use util::{Api, Dns, Prober, a_records, dashed, ip_in, mib, ms, service, slice};

/// Start→ready target, counted from when the API lists have arrived.
const TARGET_READY: Duration = Duration::from_secs(2);
/// Peak RSS target at 10k Services / 150k endpoints, in kB (issue 12; issue 3 had 60 MB).
const TARGET_RSS_KB: u64 = 35 * 1024;
/// The page size of kube-rs watchers' initial lists, which clusterdns uses.
const PAGE: u32 = 500;

/// The generated cluster's shape.
#[derive(Clone, Copy)]
struct Shape {
    services: usize,
    eps: usize,
    namespaces: usize,
}

impl Shape {
    fn ns(&self, i: usize) -> String {
        format!("ns{}", i % self.namespaces)
    }
    fn headless(i: usize) -> bool {
        i % 4 == 3
    }
    fn cluster_ip(i: usize) -> String {
        ip_in(96, i)
    }
    fn endpoints(&self, i: usize) -> Vec<String> {
        (0..self.eps)
            .map(|k| ip_in(128, i * self.eps + k))
            .collect()
    }
}

/// Fill the API server; how long it took.
fn seed(api: &Api, shape: Shape) -> Duration {
    let t = Instant::now();
    for n in 0..shape.namespaces {
        api.server.apply(&util::namespace(&format!("ns{n}")));
    }
    for i in 0..shape.services {
        let (ns, name) = (shape.ns(i), format!("svc{i}"));
        let ip = (!Shape::headless(i)).then(|| Shape::cluster_ip(i));
        api.server.apply(&service(&ns, &name, ip.as_deref()));
        api.server.apply(&slice(&ns, &name, &shape.endpoints(i)));
    }
    t.elapsed()
}

/// List one kind completely in pages of `PAGE`; (objects, pages).
async fn list_all<K>(client: kube::Client) -> (usize, usize)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api = kube::Api::<K>::all(client);
    let (mut objects, mut pages) = (0, 0);
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("bench list");
        pages += 1;
        objects += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() || pages > 100_000 {
            return (objects, pages);
        }
    }
}

/// How long the three kinds take to list from the test API server, concurrently.
fn api_list_time(api: &Api, shape: Shape) -> Duration {
    let client = {
        let _in = api.rt.enter();
        api.server.client()
    };
    let t = Instant::now();
    let ((svcs, _), (slices, pages), (nss, _)) = api.rt.block_on(async {
        futures::join!(
            list_all::<Service>(client.clone()),
            list_all::<EndpointSlice>(client.clone()),
            list_all::<Namespace>(client.clone()),
        )
    });
    let took = t.elapsed();
    assert_eq!(
        (svcs, slices, nss),
        (shape.services, shape.services, shape.namespaces)
    );
    println!(
        "  bench list: {svcs} services, {slices} slices in {pages} pages, {nss} namespaces: {} ms",
        ms(took)
    );
    took
}

/// One clusterdns start.
struct Run {
    ready: Duration,
    answer: Duration,
    lists_done: Option<Duration>,
    hwm_kb: u64,
    rss_kb: u64,
    anon_kb: u64,
}

/// Start clusterdns, time ready and the first correct answer, then measure memory.
fn run_once(api: &Api, shape: Shape, settle: Duration) -> Run {
    // The last ClusterIP service: it is among the last objects listed.
    let probe_i = (0..shape.services)
        .rev()
        .find(|&i| !Shape::headless(i))
        .expect("a ClusterIP service");
    let probe = format!("svc{probe_i}.{}.svc.cluster.local.", shape.ns(probe_i));
    let want = [Shape::cluster_ip(probe_i)];

    let mut dns = Dns::spawn(&api.server.url());
    let mut prober = Prober::new(dns.addr);
    let (mut ready, mut answer) = (None, None);
    let deadline = dns.started + Duration::from_secs(1800);
    while ready.is_none() || answer.is_none() {
        assert!(
            Instant::now() < deadline,
            "not ready/answering after 1800 s:\n{}",
            dns.log()
        );
        if let Ok(Some(status)) = dns.child.try_wait() {
            panic!("clusterdns exited: {status}\n{}", dns.log());
        }
        if ready.is_none() && dns.is_ready() {
            ready = Some(dns.started.elapsed());
        }
        if answer.is_none()
            && let Some(m) = prober.ask(&probe, RecordType::A, Duration::from_millis(50))
            && m.metadata.response_code == ResponseCode::NoError
            && a_records(&m) == want
        {
            answer = Some(dns.started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    verify(&mut prober, shape);
    std::thread::sleep(settle);
    let lists = dns.list_completions();
    let lists_done = (lists.len() >= 3)
        .then(|| lists.iter().map(|(_, d)| *d).max())
        .flatten();
    let run = Run {
        ready: ready.unwrap_or_default(),
        answer: answer.unwrap_or_default(),
        lists_done,
        hwm_kb: dns.status_kb("VmHWM"),
        rss_kb: dns.status_kb("VmRSS"),
        anon_kb: dns.status_kb("RssAnon"),
    };
    let hold = util::env_usize("SCALE_HOLD_MS", 0);
    if hold > 0 {
        // For a person investigating memory: time to attach gdb/heaptrack.
        println!("  clusterdns pid {} held for {hold} ms", dns.child.id());
        std::thread::sleep(Duration::from_millis(hold as u64));
    }
    run
}

/// Check a spread of services (and one endpoint name each) for exact answers.
fn verify(prober: &mut Prober, shape: Shape) {
    let step = (shape.services / 40).max(1);
    for i in (0..shape.services).step_by(step) {
        let ns = shape.ns(i);
        let name = format!("svc{i}.{ns}.svc.cluster.local.");
        let eps = shape.endpoints(i);
        let m = prober
            .ask(&name, RecordType::A, Duration::from_secs(2))
            .expect("answer");
        let mut got = a_records(&m);
        got.sort();
        let mut want = if Shape::headless(i) {
            eps.clone()
        } else {
            vec![Shape::cluster_ip(i)]
        };
        want.sort();
        assert_eq!(got, want, "{name}");
        let ep = &eps[eps.len() / 2];
        let ep_name = format!("{}.svc{i}.{ns}.svc.cluster.local.", dashed(ep));
        let m = prober
            .ask(&ep_name, RecordType::A, Duration::from_secs(2))
            .expect("answer");
        assert_eq!(a_records(&m), std::slice::from_ref(ep), "{ep_name}");
    }
}

/// Parse `SCALE_SIZES`.
fn sizes(default: &str, eps: usize) -> Vec<(usize, usize)> {
    std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim().split_once(':') {
            Some((n, e)) => (
                n.parse().expect("SCALE_SIZES count"),
                e.parse().expect("SCALE_SIZES eps"),
            ),
            None => (s.trim().parse().expect("SCALE_SIZES count"), eps),
        })
        .collect()
}

fn main() {
    let bench = util::bench_mode();
    let eps = util::env_usize("SCALE_EPS", 15);
    let sizes = sizes(
        if bench {
            "1000,10000,1000:1,10000:1,100000:1"
        } else {
            "100"
        },
        eps,
    );
    let repeats = util::env_usize("SCALE_REPEATS", if bench { 3 } else { 1 }).max(1);
    let settle = Duration::from_millis(util::env_usize(
        "SCALE_SETTLE_MS",
        if bench { 2000 } else { 100 },
    ) as u64);
    let max_ns = util::env_usize("SCALE_NAMESPACES", 100).max(1);
    let big_from = util::env_usize("SCALE_BIG", 20_000);

    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for (services, eps) in sizes {
        let shape = Shape {
            services,
            eps,
            namespaces: max_ns.min(services).max(1),
        };
        println!(
            "scale: {services} services × {eps} endpoints over {} namespaces",
            shape.namespaces
        );
        let api = Api::start();
        let seeded = seed(&api, shape);
        println!("  seeded in {} ms", ms(seeded));
        // The test API server's paged list is quadratic in the object count (each
        // page clones the whole store), so big sizes skip the bench-side list and
        // run once; clusterdns's own log still says when its lists arrived.
        let big = services > big_from;
        let list = (!big).then(|| api_list_time(&api, shape));
        let mut runs = Vec::new();
        for r in 0..if big { 1 } else { repeats } {
            let run = run_once(&api, shape, settle);
            println!(
                "  run {r}: ready {} ms, answer {} ms, lists done {} ms, VmHWM {} MiB, VmRSS {} MiB",
                ms(run.ready),
                ms(run.answer),
                run.lists_done.map_or("?".into(), ms),
                mib(run.hwm_kb),
                mib(run.rss_kb)
            );
            runs.push(run);
        }
        for (r, run) in runs.iter().enumerate() {
            let after_lists = run
                .lists_done
                .map_or("?".into(), |d| ms(run.ready.saturating_sub(d)));
            rows.push(format!(
                "| {services} | {} | {} | {r} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                services * eps,
                shape.namespaces,
                list.map_or("skipped".into(), ms),
                run.lists_done.map_or("?".into(), ms),
                ms(run.ready),
                after_lists,
                list.map_or("–".into(), |l| format!(
                    "{:+.2}",
                    (run.ready.as_secs_f64() - l.as_secs_f64()) * 1000.0
                )),
                ms(run.answer),
                mib(run.hwm_kb),
                mib(run.rss_kb),
                mib(run.anon_kb),
            ));
        }
        if let (10_000, 15, Some(list)) = (services, eps, list) {
            verdicts.push(verdict(&runs, list));
        }
    }
    let table = [
        "| services | endpoints | namespaces | run | API lists (bench client) ms | lists complete (clusterdns log) ms | start→ready ms | ready − lists complete ms | ready − bench list ms | start→first correct answer ms | VmHWM MiB | VmRSS MiB | RssAnon MiB |".to_string(),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|".to_string(),
    ]
    .into_iter()
    .chain(rows)
    .collect::<Vec<_>>()
    .join("\n");
    println!("\n{table}\n{}", verdicts.join("\n"));
    if !bench {
        return;
    }
    let body = format!(
        "## scale\n\n\
         Command: `CARGO_TARGET_DIR=/work/target-shared cargo bench --bench scale` \
         (one size: e.g. `SCALE_SIZES=10000 cargo bench --bench scale`; also `SCALE_EPS`, \
         `SCALE_NAMESPACES`, `SCALE_REPEATS`, `SCALE_BIG`, `SCALE_SETTLE_MS`, `SCALE_HOLD_MS`).\n\n\
         Machine: {}. Date: {}.\n\n\
         Cluster: N Services over up to {max_ns} namespaces (one in four headless), one \
         EndpointSlice per Service with the given endpoints (ready, with a pod targetRef and a \
         node name), in the in-process test API server. \"API lists\" is a kube client in the \
         bench listing Services, EndpointSlices and Namespaces concurrently in pages of {PAGE} \
         (as kube-rs watchers do) before clusterdns starts; \"lists complete\" is the last \
         `list complete` line of clusterdns's own log, measured from process start. Memory from \
         /proc/PID/status {}s after ready (VmHWM is the peak over the whole run).\n\n{table}\n\n{}\n",
        util::machine(),
        util::today(),
        settle.as_secs_f64(),
        verdicts.join("\n\n"),
    );
    util::write_section("scale", &body);
}

/// Met / not met at 10k Services, 150k endpoints.
fn verdict(runs: &[Run], list: Duration) -> String {
    let worst_after = runs
        .iter()
        .map(|r| r.ready.saturating_sub(r.lists_done.unwrap_or(list)))
        .max()
        .unwrap_or_default();
    let worst_ready = runs.iter().map(|r| r.ready).max().unwrap_or_default();
    let peak = runs.iter().map(|r| r.hwm_kb).max().unwrap_or_default();
    let ready_ok = worst_after <= TARGET_READY;
    let rss_ok = peak <= TARGET_RSS_KB;
    format!(
        "At 10k Services / 150k endpoints: start→ready target (≤ 2 s after the lists arrive) **{}** — \
         worst run {} ms after its lists completed ({} ms from process start); peak RSS target \
         (≤ 35 MiB) **{}** — worst VmHWM {} MiB.",
        if ready_ok { "met" } else { "not met" },
        ms(worst_after),
        ms(worst_ready),
        if rss_ok { "met" } else { "not met" },
        mib(peak),
    )
}
