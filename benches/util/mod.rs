//! Shared plumbing of the clusterdns benchmarks: the test API server on its own
//! runtime, generated cluster objects, the clusterdns process under measurement,
//! a UDP prober, percentiles and the `benches/RESULTS.md` section writer.
//!
//! Invariants: every wait is bounded by an explicit deadline; all traffic stays
//! on 127.0.0.1; a bench section in RESULTS.md is replaced only between its own
//! markers, so re-running one bench never touches another's numbers.

#![allow(dead_code)] // Each bench target uses a different subset.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use crate::common::{free_port, http_get, query};
use crate::support::apiserver::ApiServer;

/// True when run by `cargo bench` (which passes `--bench`); false under
/// `cargo test --all-targets`, where the bench does a quick smoke run.
pub(crate) fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A numeric setting from the environment, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The test API server plus a runtime for the bench's own kube clients.
pub(crate) struct Api {
    /// Runtime for kube clients in the bench process (the server has its own).
    pub(crate) rt: tokio::runtime::Runtime,
    /// The server.
    pub(crate) server: ApiServer,
}

impl Api {
    /// Start an empty test API server.
    pub(crate) fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("bench runtime");
        let server = rt.block_on(ApiServer::start());
        Self { rt, server }
    }
}

/// A Namespace object.
pub(crate) fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace")
}

/// A Service; `cluster_ip` None makes it headless.
pub(crate) fn service(ns: &str, name: &str, cluster_ip: Option<&str>) -> Service {
    let ip = cluster_ip.unwrap_or("None");
    let ips = cluster_ip.map(|i| vec![i]).unwrap_or_default();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "clusterIP": ip, "clusterIPs": ips, "type": "ClusterIP",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    }))
    .expect("service")
}

/// An EndpointSlice of `svc` shaped like the endpoint slice controller writes
/// them: one ready endpoint per IP with a pod targetRef and a node name.
pub(crate) fn slice(ns: &str, svc: &str, ips: &[String]) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .enumerate()
        .map(|(k, ip)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": format!("node-{}", k % 50),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": format!("{svc}-{k}")},
            })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{svc}-abcde"), "namespace": ns,
            "labels": {
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
            }
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

/// The `n`-th address of the /8-aligned block starting at `10.base.0.0`.
pub(crate) fn ip_in(base: u32, n: usize) -> String {
    let n = u32::try_from(n).expect("index fits u32") + (base << 16);
    format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)
}

/// The DNS label CoreDNS gives an endpoint without hostname: its IP with dashes.
pub(crate) fn dashed(ip: &str) -> String {
    ip.replace('.', "-")
}

/// The Corefile of a measured clusterdns: DNS, `/ready`, `/metrics`, the API endpoint.
fn corefile(
    api_url: &str,
    port: u16,
    ready: u16,
    metrics: u16,
    k8s: &str,
    plugins: &str,
) -> String {
    format!(
        "cluster.local:{port} {{\n    bind 127.0.0.1\n    ready 127.0.0.1:{ready}\n    \
         prometheus 127.0.0.1:{metrics}\n    {plugins}\n    kubernetes cluster.local {{\n        \
         endpoint {api_url}\n        {k8s}\n    }}\n}}\n"
    )
}

/// The release (under `cargo bench`) clusterdns binary, running against an API server.
pub(crate) struct Dns {
    /// The process.
    pub(crate) child: Child,
    /// When `spawn` returned (taken just before it).
    pub(crate) started: Instant,
    /// The same moment on the wall clock, to place log timestamps.
    pub(crate) started_wall: SystemTime,
    /// DNS address.
    pub(crate) addr: SocketAddr,
    /// `/ready` address.
    pub(crate) ready: SocketAddr,
    /// `/metrics` address.
    pub(crate) metrics: SocketAddr,
    dir: tempfile::TempDir,
}

impl Dns {
    /// Spawn clusterdns (inheriting `RUST_LOG`); do not wait for anything.
    pub(crate) fn spawn(api_url: &str) -> Self {
        Self::spawn_with(api_url, "", "")
    }

    /// As [`Dns::spawn`], with `k8s` added inside the kubernetes block and
    /// `plugins` (directive lines) to the server block.
    pub(crate) fn spawn_with(api_url: &str, k8s: &str, plugins: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, ready, metrics) = (free_port(), free_port(), free_port());
        let conf = dir.path().join("Corefile");
        let text = corefile(api_url, port, ready, metrics, k8s, plugins);
        std::fs::write(&conf, text).expect("corefile");
        let log = std::fs::File::create(dir.path().join("clusterdns.log")).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterdns"));
        cmd.arg("-conf")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let started_wall = SystemTime::now();
        let started = Instant::now();
        let child = cmd.spawn().expect("spawn clusterdns");
        let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
        Self {
            child,
            started,
            started_wall,
            addr: at(port),
            ready: at(ready),
            metrics: at(metrics),
            dir,
        }
    }

    /// Whether `/ready` answers 200 now.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(http_get(self.ready, "/ready"), Some((200, _)))
    }

    /// Wait (at most `limit`) for `/ready` 200; the time since spawn.
    pub(crate) fn wait_ready(&self, limit: Duration) -> Duration {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.is_ready() {
                return self.started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("clusterdns not ready after {limit:?}; log:\n{}", self.log());
    }

    /// Its stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("clusterdns.log")).unwrap_or_default()
    }

    /// `/metrics` text.
    pub(crate) fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// A field of /proc/PID/status in kB (`VmHWM`, `VmRSS`).
    pub(crate) fn status_kb(&self, field: &str) -> u64 {
        proc_kb(&format!("/proc/{}/status", self.child.id()), field)
    }

    /// A field of /proc/PID/smaps_rollup in kB (`Anonymous`, `Rss`, ...).
    pub(crate) fn smaps_kb(&self, field: &str) -> u64 {
        proc_kb(&format!("/proc/{}/smaps_rollup", self.child.id()), field)
    }

    /// Offsets from spawn of each `list complete` log line, by watched kind.
    pub(crate) fn list_completions(&self) -> Vec<(String, Duration)> {
        let mut out = Vec::new();
        for line in self.log().lines().filter(|l| l.contains("list complete")) {
            let Some(ts) = line.split_whitespace().next() else {
                continue;
            };
            let Ok(ts) = ts.parse::<k8s_openapi::jiff::Timestamp>() else {
                continue;
            };
            let when = SystemTime::from(ts);
            let kind = line
                .split("kind=")
                .nth(1)
                .and_then(|r| r.split(['}', ' ', ':']).next())
                .unwrap_or("?")
                .to_string();
            if let Ok(d) = when.duration_since(self.started_wall) {
                out.push((kind, d));
            }
        }
        out
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- clusterdns log ---\n{}", self.log());
        }
    }
}

pub(crate) fn proc_kb(path: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// One UDP socket asking one server, ignoring stale replies to earlier queries.
pub(crate) struct Prober {
    sock: UdpSocket,
    buf: Vec<u8>,
}

impl Prober {
    /// A socket "connected" to `server`.
    pub(crate) fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind prober");
        sock.connect(server).expect("connect prober");
        Self {
            sock,
            buf: vec![0; 65535],
        }
    }

    /// Ask once; the reply within `wait`, or None.
    pub(crate) fn ask(&mut self, name: &str, qtype: RecordType, wait: Duration) -> Option<Message> {
        let q = query(name, qtype);
        let id = q.metadata.id;
        self.sock.send(&q.to_vec().ok()?).ok()?;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_micros(100))))
                .ok()?;
            let n = self.sock.recv(&mut self.buf).ok()?;
            match Message::from_vec(&self.buf[..n]) {
                Ok(m) if m.metadata.id == id => return Some(m),
                _ => continue, // a late reply to an earlier query
            }
        }
    }
}

/// The A addresses of an answer.
pub(crate) fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Rank in 1..=len; the float→usize cast saturates and is clamped.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mean of values.
pub(crate) fn mean(values: &[Duration]) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.iter().sum::<Duration>() / u32::try_from(values.len()).unwrap_or(u32::MAX)
}

/// Milliseconds with two decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// kB as MiB with one decimal.
pub(crate) fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

/// Cores, kernel, CPU model and memory of this machine, for the results.
pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU");
    let mem = proc_kb("/proc/meminfo", "MemTotal");
    format!(
        "{cores} cores (`nproc` = {cores}), Linux `{}` (`uname -r`), {model}, {} GiB RAM",
        kernel.trim(),
        mem / 1024 / 1024
    )
}

/// Today's date (UTC), YYYY-MM-DD.
pub(crate) fn today() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d")
        .to_string()
}

fn results_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md")
}

/// Replace (or append) the section of `bench` in benches/RESULTS.md with `body`.
pub(crate) fn write_section(bench: &str, body: &str) {
    let path = results_path();
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmark results\n\nWritten by the bench targets in benches/ when run with \
         `cargo bench`; each section between its markers is replaced by its own bench; notes \
         outside the markers are kept.\n"
            .to_string()
    });
    let (begin, end) = (
        format!("<!-- BEGIN {bench} -->"),
        format!("<!-- END {bench} -->"),
    );
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(&path, new).expect("write benches/RESULTS.md");
    println!("updated {}", path.display());
}
