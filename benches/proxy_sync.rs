//! Benchmark: `clusterdns proxy` against real nftables (issue 10 acceptance) —
//! full sync at 1,000 and 10,000 Services × 10 endpoints, API write → rules
//! applied for one endpoint added or removed, and the proxy's RSS.
//!
//! Everything that touches nftables happens inside a network namespace this
//! bench creates (`cdns-pbench-<pid>`) and always deletes, also when the
//! measured part panics: the bench re-executes itself there
//! (`ip netns exec NS <this binary>` with `PROXY_BENCH_INNER` naming the caller's namespace), and the
//! inner run refuses to start unless its network namespace differs from
//! that one (and from PID 1's, when readable). Inside, loopback is brought up, so the in-process test API
//! server, the in-process sync loop and the spawned proxy binary all talk
//! over the namespace's own 127.0.0.1, and `nft` is run directly, as the
//! proxy runs it in production (no `ip netns exec` per transaction).
//!
//! 1. Full sync, per size: API objects → the proxy's model (the conversion
//!    every sync does from its reflector stores), `render` (pure), the full
//!    script, `nft -f -` into an empty table, and a full resync over the
//!    existing table (`nft::existing` to learn what exists + script +
//!    transaction), as the periodic resync does; script size and
//!    `Ruleset::size`. Then one endpoint added and removed: render, diff
//!    script (size vs full) and its transaction.
//! 2. Latency: `shell::run` in-process against the test API server holding
//!    the cluster; one EndpointSlice write at a time (alternately adding an
//!    11th endpoint to a Service and removing it again), timed from just
//!    before `ApiServer::apply` until the sync loop's `syncs_total` counter
//!    moves (polled every 1 ms: the counter is bumped right after `nft -f -`
//!    returned) to a sync whose result the kernel shows (the Service's
//!    `service-ips` element, naming the shared chain `lb4-tcp-N`, is read
//!    back after each move). Writes are spaced beyond
//!    `--min-sync-period`. A second run with the default 1 s writes at a random moment
//!    after the previous sync, which is what the default costs.
//! 3. RSS: the release binary `clusterdns proxy` (with `--sync-period` short
//!    enough to see one periodic full resync) against the same API server;
//!    VmHWM / VmRSS / RssAnon from /proc after the first full sync and after
//!    a resync.
//!
//! Settings: `PS_SIZES` (default `1000,10000`), `PS_EPS` (endpoints per
//! Service, default 10), `PS_LATENCY_SIZE` (default 10000), `PS_CHANGES`
//! (default 200), `PS_MIN_SYNC_MS` (comma list, default `0`),
//! `PS_DEFAULT_CHANGES` (changes under the default 1 s, default 20),
//! `PS_RSS_SIZE` (default 10000), `PS_RESYNC_S` (the RSS run's
//! `--sync-period`, default 10), `PS_JSON_LIST_MAX` (largest size at which
//! the old `nft -j list table` is timed for comparison, default 1000),
//! `PS_DUMP` (a directory to keep the generated scripts in).
//!
//! Without `--bench` (under `cargo test --all-targets`) it runs 20 Services ×
//! 3 endpoints through all three parts and asserts that the kernel holds
//! every Service, that every change is applied (checked in the kernel each
//! time) and that the binary syncs; not root or no `nft`/`ip`: a loud
//! SKIPPED line (a failure when CI is set).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;
mod util;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterdns::proxy::metrics::Metrics;
use clusterdns::proxy::model::{self, Slice};
use clusterdns::proxy::nft::{self, Tool};
use clusterdns::proxy::render::{Options, Rendered, render};
use clusterdns::proxy::ruleset::{Existing, Ruleset};
use clusterdns::proxy::select::Node;
use clusterdns::proxy::shell::{self, Health, NodePortFlag, Settings};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio_util::sync::CancellationToken;
use util::{Api, ip_in, mean, mib, ms, percentile};

/// Marks the run inside the namespace.
const INNER: &str = "PROXY_BENCH_INNER";
/// Full sync target at 10k Services.
const TARGET_FULL: Duration = Duration::from_secs(1);
/// API write → applied, p99 target.
const TARGET_P99: Duration = Duration::from_millis(50);
/// Our node: one of the 50 nodes the slices spread endpoints over
/// (`util::slice`), so 1 in 50 endpoints is here and can hairpin.
const NODE: &str = "node-0";
/// Namespaces the Services are spread over.
const NAMESPACES: usize = 100;
/// How long one change may take before the bench fails.
const PER_CHANGE_LIMIT: Duration = Duration::from_secs(20);

fn main() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    if !privileged() {
        return;
    }
    let ns = support::netns::Scratch::create("cdns-pbench", "run");
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().expect("own path"))
        .args(std::env::args().skip(1))
        .env(INNER, netns_id())
        .status()
        .expect("re-execute inside the namespace");
    drop(ns);
    assert!(status.success(), "the run inside the namespace failed");
}

/// Root with `ip` and `nft`, or a loud skip (a failure in CI).
fn privileged() -> bool {
    support::netns::available()
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn netns_id() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .expect("read /proc/self/ns/net")
        .display()
        .to_string()
}

/// Never program the namespace the bench was started in (nor PID 1's,
/// when readable): the inner run must be in the one created for it.
fn assert_own_netns() {
    let me = netns_id();
    let outer = std::env::var(INNER).unwrap_or_default();
    assert_ne!(
        me, outer,
        "refusing to program nftables in the caller's namespace"
    );
    if let Ok(init) = std::fs::read_link("/proc/1/ns/net") {
        assert_ne!(
            me,
            init.display().to_string(),
            "refusing to program PID 1's namespace"
        );
    }
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
        })
        .collect()
}

fn inner() {
    assert_own_netns();
    sh("ip", &["link", "set", "lo", "up"]);
    let bench = util::bench_mode();
    let eps = util::env_usize("PS_EPS", if bench { 10 } else { 3 });
    let sizes = env_list("PS_SIZES", if bench { "1000,10000" } else { "20" });
    let lat_size = util::env_usize("PS_LATENCY_SIZE", if bench { 10_000 } else { 20 });
    let changes = util::env_usize("PS_CHANGES", if bench { 200 } else { 6 });
    let min_syncs = env_list("PS_MIN_SYNC_MS", "0");
    let default_changes = util::env_usize("PS_DEFAULT_CHANGES", if bench { 20 } else { 0 });
    let rss_size = util::env_usize("PS_RSS_SIZE", if bench { 10_000 } else { 20 });
    let resync_s = util::env_usize("PS_RESYNC_S", if bench { 10 } else { 3 });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut full = Vec::new();
    for &n in &sizes {
        eprintln!("full sync: {n} services × {eps} endpoints");
        full.push(full_sync(&rt, n, eps, bench));
    }
    let mut lat = Vec::new();
    for &m in &min_syncs {
        eprintln!("latency: {lat_size} services, min-sync-period {m} ms");
        lat.push(latency(
            lat_size,
            eps,
            changes,
            Duration::from_millis(m as u64),
            false,
        ));
    }
    if default_changes > 0 {
        eprintln!("latency: {lat_size} services, min-sync-period 1 s, unspaced writes");
        lat.push(latency(
            lat_size,
            eps,
            default_changes,
            Duration::from_secs(1),
            true,
        ));
    }
    eprintln!("rss: {rss_size} services");
    let mem = rss(rss_size, eps, Duration::from_secs(resync_s as u64));
    let body = report(&full, &lat, &mem, eps);
    println!("{body}");
    if bench {
        util::write_section("proxy", &body);
    }
}

// ---------------------------------------------------------------- cluster

fn svc_name(i: usize) -> (String, String) {
    (format!("ns{}", i % NAMESPACES), format!("svc{i}"))
}

/// The endpoint IPs of Service `i`: `eps` base ones, plus the extra one when `extra`.
fn endpoint_ips(i: usize, eps: usize, extra: bool) -> Vec<String> {
    let mut ips: Vec<String> = (0..eps).map(|k| ip_in(128, i * eps + k)).collect();
    if extra {
        ips.push(ip_in(224, i));
    }
    ips
}

fn api_service(i: usize) -> Service {
    let (ns, name) = svc_name(i);
    util::service(&ns, &name, Some(&ip_in(96, i)))
}

fn api_slice(i: usize, eps: usize, extra: bool) -> EndpointSlice {
    let (ns, name) = svc_name(i);
    util::slice(&ns, &name, &endpoint_ips(i, eps, extra))
}

fn node() -> Node {
    Node {
        name: NODE.into(),
        zone: None,
    }
}

fn opts() -> Options {
    Options::default()
}

fn to_models(services: &[Service], slices: &[EndpointSlice]) -> (Vec<model::Service>, Vec<Slice>) {
    let s = services
        .iter()
        .map(|s| {
            model::Service::from_api(s)
                .expect("service converts")
                .expect("has a VIP")
        })
        .collect();
    let e = slices
        .iter()
        .map(|s| {
            Slice::from_api(s)
                .expect("slice converts")
                .expect("slice used")
        })
        .collect();
    (s, e)
}

/// Service `i`'s ClusterIP entry, the key of its `service-ips` element.
fn service_entry(i: usize) -> String {
    format!("{} . tcp . 80", ip_in(96, i))
}

/// How many endpoints the kernel balances Service entry `key` over: its
/// `service-ips` element names the shared chain `lb4-tcp-N`.
fn kernel_endpoints(key: &str) -> Option<usize> {
    let out = Command::new("nft")
        .args(["get", "element", "inet", "clusterdns", "service-ips"])
        .arg(format!("{{ {key} }}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text.split("goto lb4-tcp-").nth(1)?;
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    n.parse().ok()
}

/// Elements in the kernel's `service-ips` map.
fn kernel_vips() -> usize {
    let json = sh(
        "nft",
        &["-j", "list", "map", "inet", "clusterdns", "service-ips"],
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("nft json");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["map"]["elem"].as_array())
        .map(Vec::len)
        .sum()
}

fn delete_table(rt: &tokio::runtime::Runtime) {
    rt.block_on(nft::delete_table(&Tool::named("nft"), "clusterdns"))
        .expect("delete our table");
}

/// Bytes of the strings a ruleset holds (names, rules, keys, values): a
/// lower bound of its heap size.
fn ruleset_bytes(rs: &Ruleset) -> usize {
    let chains: usize = rs
        .chains
        .iter()
        .map(|(k, c)| {
            k.len()
                + c.base.as_ref().map_or(0, String::len)
                + c.rules.iter().map(String::len).sum::<usize>()
        })
        .sum();
    let maps: usize = rs
        .maps
        .values()
        .flat_map(|m| m.elements.iter())
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
        .sum();
    chains + maps
}

// ---------------------------------------------------------------- 1. full sync

/// With `PS_DUMP=DIR`, keep the scripts for a look with nft by hand.
fn dump(file: &str, script: &str) {
    if let Ok(dir) = std::env::var("PS_DUMP") {
        std::fs::write(std::path::Path::new(&dir).join(file), script).expect("dump script");
    }
}

struct Full {
    services: usize,
    convert: Duration,
    render: Duration,
    script: Duration,
    script_bytes: usize,
    size: clusterdns::proxy::ruleset::Size,
    ruleset_bytes: usize,
    /// RSS growth (kB) for: the API objects, their models, one rendering, its full script.
    parts_kb: [u64; 4],
    api_json_bytes: usize,
    apply_fresh: Duration,
    list: Duration,
    json_list: Option<(Duration, usize)>,
    resync_script: Duration,
    resync_apply: Duration,
    resync_bytes: usize,
    incr: Vec<Incr>,
}

struct Incr {
    what: &'static str,
    render: Duration,
    diff: Duration,
    bytes: usize,
    apply: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn full_sync(rt: &tokio::runtime::Runtime, n: usize, eps: usize, bench: bool) -> Full {
    let nft_tool = Tool::named("nft");
    let repeats = if bench { 5 } else { 1 };
    // Memory of the parts the proxy holds, as growth of this process's RSS
    // while each is built and kept (approximate: allocator slack included).
    let rss = || status_kb(std::process::id(), "VmRSS");
    let r0 = rss();
    let services: Vec<Service> = (0..n).map(api_service).collect();
    let slices: Vec<EndpointSlice> = (0..n).map(|i| api_slice(i, eps, false)).collect();
    let r1 = rss();
    let (models, slice_models) = to_models(&services, &slices);
    let r2 = rss();
    let (first, render_first) = timed(|| {
        render(
            &models,
            &model::group(slice_models.clone()),
            &node(),
            &opts(),
        )
    });
    let r3 = rss();
    let first_script = first.ruleset.full_script(&Existing::default());
    let r4 = rss();
    let parts_kb = [
        r1 - r0.min(r1),
        r2 - r1.min(r2),
        r3 - r2.min(r3),
        r4 - r3.min(r4),
    ];
    drop((first, first_script));
    let api_json_bytes = services
        .iter()
        .map(|s| serde_json::to_vec(s).map_or(0, |v| v.len()))
        .chain(
            slices
                .iter()
                .map(|s| serde_json::to_vec(s).map_or(0, |v| v.len())),
        )
        .sum();
    let convert = median(
        (0..repeats)
            .map(|_| {
                timed(|| {
                    let (s, e) = to_models(&services, &slices);
                    (s, model::group(e))
                })
                .1
            })
            .collect(),
    );
    let grouped = model::group(slice_models.clone());
    let mut renders = vec![render_first];
    let mut rendered: Option<Rendered> = None;
    for _ in 1..repeats.max(2) {
        let (r, d) = timed(|| render(&models, &grouped, &node(), &opts()));
        renders.push(d);
        rendered = Some(r);
    }
    let rendered = rendered.expect("rendered once");
    let rs = &rendered.ruleset;
    let size = rs.size();
    assert_eq!(
        rs.maps["service-ips"].elements.len(),
        n,
        "one ClusterIP element per Service"
    );
    let (script, script_t) = timed(|| rs.full_script(&Existing::default()));
    dump(&format!("full-{n}.nft"), &script);

    delete_table(rt);
    let (res, apply_fresh) = timed(|| rt.block_on(nft::apply(&nft_tool, &script)));
    res.expect("full script applies to an empty table");
    assert_eq!(kernel_vips(), n, "the kernel holds every Service");

    // Full resync over the existing table, as the periodic resync does it.
    // What the resync used to list (rules and elements, as JSON), for
    // comparison: 55 s at 10k, so only up to `PS_JSON_LIST_MAX` Services.
    let json_list = (n <= util::env_usize("PS_JSON_LIST_MAX", 1000)).then(|| {
        let (json, t) = timed(|| sh("nft", &["-j", "list", "table", "inet", "clusterdns"]));
        (t, json.len())
    });
    let (existing, list) = timed(|| {
        rt.block_on(nft::existing(&nft_tool, "clusterdns"))
            .expect("list existing")
    });
    assert_eq!(
        existing.chains.len(),
        size.chains,
        "the listing names every chain"
    );
    let (resync, resync_script) = timed(|| rs.full_script(&existing));
    dump(&format!("resync-{n}.nft"), &resync);
    let (res, resync_apply) = timed(|| rt.block_on(nft::apply(&nft_tool, &resync)));
    res.expect("resync applies over the existing table");
    assert_eq!(kernel_vips(), n, "the kernel still holds every Service");

    // One endpoint added to Service 0, then removed again.
    let chain = service_entry(0);
    assert_eq!(kernel_endpoints(&chain), Some(eps));
    let mut incr = Vec::new();
    let mut prev = rendered;
    for (what, extra) in [("endpoint added", true), ("endpoint removed", false)] {
        let mut sm = slice_models.clone();
        sm[0] = Slice::from_api(&api_slice(0, eps, extra))
            .expect("slice")
            .expect("slice");
        let g = model::group(sm);
        let (next, r) = timed(|| render(&models, &g, &node(), &opts()));
        let (diff, d) = timed(|| prev.ruleset.diff_script(&next.ruleset));
        dump(&format!("diff-{n}-{}.nft", usize::from(extra)), &diff);
        let (res, a) = timed(|| rt.block_on(nft::apply(&nft_tool, &diff)));
        res.unwrap_or_else(|e| panic!("incremental script applies: {e}\n{diff}"));
        assert_eq!(
            kernel_endpoints(&chain),
            Some(eps + usize::from(extra)),
            "{what}: the kernel's service chain changed"
        );
        incr.push(Incr {
            what,
            render: r,
            diff: d,
            bytes: diff.len(),
            apply: a,
        });
        prev = next;
    }
    delete_table(rt);
    Full {
        services: n,
        convert,
        render: median(renders),
        script: script_t,
        script_bytes: script.len(),
        size,
        ruleset_bytes: ruleset_bytes(&prev.ruleset),
        parts_kb,
        api_json_bytes,
        apply_fresh,
        list,
        json_list,
        resync_script,
        resync_apply,
        resync_bytes: resync.len(),
        incr,
    }
}

// ---------------------------------------------------------------- 2. latency

struct Latency {
    services: usize,
    min_sync: Duration,
    unspaced: bool,
    cold: Duration,
    samples: Vec<Duration>,
    syncs: Vec<Duration>,
    early: usize,
}

fn load(api: &Api, n: usize, eps: usize) {
    for i in 0..NAMESPACES.min(n) {
        api.server.apply(&util::namespace(&format!("ns{i}")));
    }
    for i in 0..n {
        api.server.apply(&api_service(i));
        api.server.apply(&api_slice(i, eps, false));
    }
}

fn syncs(m: &Metrics) -> u64 {
    m.syncs.with_label_values(&["full"]).get() + m.syncs.with_label_values(&["partial"]).get()
}

fn wait_sync(m: &Metrics, before: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while syncs(m) <= before {
        assert!(Instant::now() < deadline, "no sync within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn latency(n: usize, eps: usize, changes: usize, min_sync: Duration, unspaced: bool) -> Latency {
    let api = Api::start();
    load(&api, n, eps);
    let cleanup_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    delete_table(&cleanup_rt);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let metrics = Metrics::default();
    let settings = Settings {
        node: NODE.into(),
        opts: opts(),
        nodeports: NodePortFlag::AllLocal,
        sync_period: Duration::from_secs(3600),
        min_sync_period: min_sync,
        metrics: metrics.clone(),
        nft: Tool::named("nft"),
        conntrack: Tool::named("conntrack"),
    };
    let stop = CancellationToken::new();
    let client = {
        let _in = rt.enter();
        api.server.client()
    };
    let started = Instant::now();
    let task = rt.spawn(shell::run(
        client,
        settings,
        Arc::new(Health::new(Duration::from_secs(3600))),
        stop.clone(),
    ));
    wait_sync(&metrics, 0, Duration::from_secs(300));
    let cold = started.elapsed();
    assert_eq!(kernel_vips(), n, "first sync programmed every Service");
    // Events of the initial lists that arrived after the first sync's
    // snapshot wake the loop once more; let that (no-op) sync pass, so every
    // later sync is one of our writes.
    let quiet = min_sync + Duration::from_secs(1);
    loop {
        let seen = syncs(&metrics);
        std::thread::sleep(quiet);
        if syncs(&metrics) == seen {
            break;
        }
    }

    let warmup = if changes >= 20 { 4 } else { 0 };
    let mut samples = Vec::new();
    let mut sync_times = Vec::new();
    let mut early = 0;
    let mut chains: BTreeMap<usize, String> = BTreeMap::new();
    let mut last_applied = Instant::now();
    for c in 0..changes + warmup {
        // Pairs of changes on one Service: add an 11th endpoint, remove it.
        let i = (c / 2 * 7919) % n;
        let extra = c % 2 == 0;
        let want = Some(eps + usize::from(extra));
        let chain = chains.entry(i).or_insert_with(|| service_entry(i)).clone();
        if unspaced {
            // The next write lands anywhere in the second after the last sync.
            let at = Duration::from_millis(fastrand::u64(0..1000));
            std::thread::sleep(at.saturating_sub(last_applied.elapsed()));
        } else {
            let gap = min_sync + Duration::from_millis(5);
            std::thread::sleep(gap.saturating_sub(last_applied.elapsed()));
        }
        let mut before = syncs(&metrics);
        let sum_before = metrics.sync_duration.get_sample_sum();
        let slice = api_slice(i, eps, extra);
        let t0 = Instant::now();
        api.server.apply(&slice);
        // The first sync after the write whose result the kernel shows:
        // timed when the counter moved, then checked in the kernel (a sync
        // already running at the write would move it too early).
        let took = loop {
            wait_sync(&metrics, before, PER_CHANGE_LIMIT);
            let took = t0.elapsed();
            before = syncs(&metrics);
            if kernel_endpoints(&chain) == want {
                break took;
            }
            early += 1;
            assert!(t0.elapsed() < PER_CHANGE_LIMIT, "change {c} never applied");
        };
        last_applied = Instant::now();
        let sync_took =
            Duration::from_secs_f64((metrics.sync_duration.get_sample_sum() - sum_before).max(0.0));
        if c >= warmup {
            samples.push(took);
            sync_times.push(sync_took);
        }
    }
    assert_eq!(metrics.errors.get(), 0, "no failed transaction");
    assert_eq!(
        metrics.syncs.with_label_values(&["full"]).get(),
        1,
        "every later sync is incremental"
    );
    stop.cancel();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("sync loop stops")
            .expect("sync loop task");
    });
    delete_table(&cleanup_rt);
    Latency {
        services: n,
        min_sync,
        unspaced,
        cold,
        samples,
        syncs: sync_times,
        early,
    }
}

// ---------------------------------------------------------------- 3. RSS

struct Memory {
    services: usize,
    first_sync: Duration,
    after_first: [u64; 3],
    after_resync: [u64; 3],
    resync_period: Duration,
}

/// The proxy process; killed on drop (also when the bench panics).
struct Proxy(Child, std::path::PathBuf);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- proxy log ---\n{}",
                std::fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

fn mem_of(pid: u32) -> [u64; 3] {
    ["VmHWM", "VmRSS", "RssAnon"].map(|f| status_kb(pid, f))
}

/// `clusterdns_proxy_syncs_total{type="full"}` of the proxy's /metrics.
fn full_syncs(metrics: std::net::SocketAddr) -> Option<u64> {
    let (_, body) = common::http_get(metrics, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with("clusterdns_proxy_syncs_total{type=\"full\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

fn rss(n: usize, eps: usize, resync: Duration) -> Memory {
    let api = Api::start();
    load(&api, n, eps);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    delete_table(&rt);
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("proxy.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let (mport, hport) = (common::free_port(), common::free_port());
    let maddr = std::net::SocketAddr::from(([127, 0, 0, 1], mport));
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(["proxy", "--endpoint", &api.server.url()])
        .args(["--hostname-override", NODE])
        .args(["--metrics-bind-address", &maddr.to_string()])
        .args(["--healthz-bind-address", &format!("127.0.0.1:{hport}")])
        .args(["--sync-period", &format!("{}s", resync.as_secs())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn clusterdns proxy");
    let proxy = Proxy(child, log_path);
    let pid = proxy.0.id();
    let deadline = Instant::now() + Duration::from_secs(300);
    while full_syncs(maddr).unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "the proxy never synced");
        std::thread::sleep(Duration::from_millis(2));
    }
    let first_sync = started.elapsed();
    assert_eq!(kernel_vips(), n, "the proxy programmed every Service");
    std::thread::sleep(Duration::from_secs(1));
    let after_first = mem_of(pid);
    let deadline = Instant::now() + resync * 3 + Duration::from_secs(60);
    while full_syncs(maddr).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "no periodic full resync");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after_resync = mem_of(pid);
    assert!(after_first[1] > 0, "read the proxy's VmRSS");
    assert_eq!(kernel_vips(), n, "the resync kept every Service");
    drop(proxy);
    delete_table(&rt);
    Memory {
        services: n,
        first_sync,
        after_first,
        after_resync,
        resync_period: resync,
    }
}

// ---------------------------------------------------------------- report

fn kib(b: usize) -> String {
    format!("{:.0}", b as f64 / 1024.0)
}

fn report(full: &[Full], lat: &[Latency], mem: &Memory, eps: usize) -> String {
    let mut o = String::new();
    let w = &mut o;
    use std::fmt::Write as _;
    let _ = writeln!(w, "## proxy (nftables service proxy, issue 10)\n");
    let _ = writeln!(
        w,
        "Command: `cargo bench --bench proxy_sync` as root (settings: `PS_SIZES`, `PS_EPS`, `PS_LATENCY_SIZE`, `PS_CHANGES`, `PS_MIN_SYNC_MS`, `PS_DEFAULT_CHANGES`, `PS_RSS_SIZE`, `PS_RESYNC_S`). Everything runs inside a network namespace the bench creates and deletes; `nft` {} is run directly in it.\n",
        nft_version()
    );
    let _ = writeln!(
        w,
        "Machine: {}. Date: {}.\n",
        util::machine(),
        util::today()
    );
    let _ = writeln!(
        w,
        "### Full sync ({eps} endpoints per Service, one TCP port, ClusterIP)\n"
    );
    let _ = writeln!(
        w,
        "| services | chains / rules / elements | convert API→model ms | render ms | full script ms | script KiB | `nft -f -` into empty table ms | **render + script + nft** ms | resync: list names ms | resync: script ms | resync: `nft -f -` ms (KiB) | **resync total** ms | (before: `nft -j list table` ms, KiB) |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in full {
        let first = f.render + f.script + f.apply_fresh;
        let resync = f.render + f.list + f.resync_script + f.resync_apply;
        let _ = writeln!(
            w,
            "| {} | {} / {} / {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} ({}) | **{}** | {} |",
            f.services,
            f.size.chains,
            f.size.rules,
            f.size.elements,
            ms(f.convert),
            ms(f.render),
            ms(f.script),
            kib(f.script_bytes),
            ms(f.apply_fresh),
            ms(first),
            ms(f.list),
            ms(f.resync_script),
            ms(f.resync_apply),
            kib(f.resync_bytes),
            ms(resync),
            f.json_list
                .map_or("–".to_owned(), |(t, b)| format!("{}, {}", ms(t), kib(b))),
        );
    }
    let _ = writeln!(
        w,
        "\nRender and convert: median of 5 (1 outside `--bench`); nft times are single runs of `nft -f -` as the proxy calls it (`nft::apply`), including nft's start-up. \"Convert\" is what every sync pays before rendering (the shell converts its reflector stores each time); the shell's `sync_proxy_rules_duration_seconds` covers render + script + nft.\n"
    );
    let _ = writeln!(w, "One endpoint changed (incremental sync):\n");
    let _ = writeln!(
        w,
        "| services | change | render ms | diff script ms | diff script bytes (vs full KiB) | `nft -f -` ms |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for f in full {
        for i in &f.incr {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} ({}) | {} |",
                f.services,
                i.what,
                ms(i.render),
                ms(i.diff),
                i.bytes,
                kib(f.script_bytes),
                ms(i.apply)
            );
        }
    }
    if let Some(big) = full.iter().find(|f| f.services >= 10_000) {
        let t = big.render + big.script + big.apply_fresh;
        let r = big.render + big.list + big.resync_script + big.resync_apply;
        let _ = writeln!(
            w,
            "\nFull sync at {} Services (target ≤ 1 s): first sync {} ms — **{}**; resync over the existing table {} ms — **{}**.",
            big.services,
            ms(t),
            verdict(t <= TARGET_FULL),
            ms(r),
            verdict(r <= TARGET_FULL)
        );
    }
    let _ = writeln!(
        w,
        "\n### API write → rules applied (in-process `shell::run`)\n"
    );
    let _ = writeln!(
        w,
        "One EndpointSlice write at a time (alternately an 11th endpoint added to a Service and removed again), timed from just before `ApiServer::apply` until the sync loop's `clusterdns_proxy_syncs_total` moved (polled every 1 ms, so up to ~1 ms of the figure is polling; the counter moves right after `nft -f -` returned). After every move the kernel's service chain is read back: only a sync whose result shows the new endpoint count ends the measurement (a move without it, from a sync already under way at the write, is counted in the last column and waited past). \"Sync\" is the loop's own `sync_proxy_rules_duration_seconds` for that change (render + diff + nft); the rest is the watch event reaching the reflector, the wake-up and the store → model conversion.\n"
    );
    let _ = writeln!(
        w,
        "| services | --min-sync-period | writes | n | cold start → first full sync ms | p50 | p90 | p99 | max | mean | sync p50 | sync p99 | counter moves without the change |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for l in lat {
        let mut s = l.samples.clone();
        s.sort();
        let mut y = l.syncs.clone();
        y.sort();
        let _ = writeln!(
            w,
            "| {} | {} ms | {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} |",
            l.services,
            l.min_sync.as_millis(),
            if l.unspaced {
                "at a random moment ≤ 1 s after the last sync"
            } else {
                "spaced beyond min-sync-period"
            },
            s.len(),
            ms(l.cold),
            ms(percentile(&s, 50.0)),
            ms(percentile(&s, 90.0)),
            ms(percentile(&s, 99.0)),
            ms(s.last().copied().unwrap_or_default()),
            ms(mean(&s)),
            ms(percentile(&y, 50.0)),
            ms(percentile(&y, 99.0)),
            l.early
        );
    }
    for l in lat.iter().filter(|l| !l.unspaced) {
        let mut s = l.samples.clone();
        s.sort();
        let p99 = percentile(&s, 99.0);
        let _ = writeln!(
            w,
            "\nAt {} Services with --min-sync-period {} ms: p99 {} ms (target ≤ 50 ms) — **{}**.",
            l.services,
            l.min_sync.as_millis(),
            ms(p99),
            verdict(p99 <= TARGET_P99)
        );
    }
    let _ = writeln!(w, "\n### Memory of `clusterdns proxy` (release binary)\n");
    let _ = writeln!(
        w,
        "`clusterdns proxy --endpoint http://127.0.0.1:PORT --hostname-override {NODE} --metrics-bind-address 127.0.0.1:P --healthz-bind-address 127.0.0.1:P --sync-period {}s` against the test API server in the namespace ({} Services × {eps} endpoints); /proc/PID/status 1 s after the first full sync and 1 s after the first periodic full resync (which lists the names in our table and rewrites all of it).\n",
        mem.resync_period.as_secs(),
        mem.services
    );
    let _ = writeln!(
        w,
        "| services | start → first full sync ms | after first sync: VmHWM / VmRSS / RssAnon MiB | after a resync: VmHWM / VmRSS / RssAnon MiB |"
    );
    let _ = writeln!(w, "|---|---|---|---|");
    let m3 = |m: &[u64; 3]| format!("{} / {} / {}", mib(m[0]), mib(m[1]), mib(m[2]));
    let _ = writeln!(
        w,
        "| {} | {} | {} | {} |",
        mem.services,
        ms(mem.first_sync),
        m3(&mem.after_first),
        m3(&mem.after_resync)
    );
    if let Some(f) = full.iter().find(|f| f.services == mem.services) {
        let _ = writeln!(
            w,
            "\nWhat it holds at this size (measured in the bench): the API objects as JSON are {} KiB (the reflector stores keep them deserialized, several times that); the last written ruleset's strings (chain names, rules, map keys and values) are {} KiB, before BTreeMap/Vec/String overhead; a full sync also builds the next ruleset and a {} KiB script.",
            kib(f.api_json_bytes),
            kib(f.ruleset_bytes),
            kib(f.script_bytes),
        );
        let _ = writeln!(
            w,
            "\nGrowth of the bench process's RSS while building and keeping each part at {} Services (approximate, allocator slack included): the typed API objects (what the reflector stores hold) {} MiB; their proxy models {} MiB; one rendering (`Rendered`: the ruleset the loop keeps as \"written\") {} MiB; its full script {} MiB.",
            f.services,
            mib(f.parts_kb[0]),
            mib(f.parts_kb[1]),
            mib(f.parts_kb[2]),
            mib(f.parts_kb[3]),
        );
    }
    o
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn nft_version() -> String {
    Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
