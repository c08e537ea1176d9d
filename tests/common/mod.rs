//! Test support: start the real `clusterdns` binary on loopback and talk DNS to
//! it over real UDP and TCP sockets.
//!
//! Every server gets its own temporary directory (Corefile + manifests) and a
//! free port, so tests run in parallel. Loops are bounded by deadlines.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// Root of the repository (for config/ files).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port free for both UDP and TCP on 127.0.0.1 at the time of asking.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
}

/// A running `clusterdns` process, killed on drop.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// The port that replaced `{HEALTH}` in the Corefile.
    pub health_port: u16,
    /// The port that replaced `{READY}` in the Corefile.
    pub ready_port: u16,
    /// The port that replaced `{METRICS}` in the Corefile.
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Start with `corefile` (where `{PORT}` is replaced by a free port) in a
    /// fresh directory holding `files` (name, content).
    pub fn start(corefile: &str, files: &[(&str, &str)]) -> Self {
        let server = Self::spawn(corefile, files);
        server.wait_answering();
        server
    }

    /// Like [`TestServer::start`] but without waiting for synced answers.
    pub fn spawn(corefile: &str, files: &[(&str, &str)]) -> Self {
        Self::spawn_with_args(corefile, files, &[])
    }

    /// Spawn with extra command-line arguments; `{DIR}` in them is the server's directory.
    pub fn spawn_with_args(corefile: &str, files: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write file");
        }
        let port = free_port();
        let (health_port, ready_port, metrics_port) = (free_port(), free_port(), free_port());
        let conf = dir.path().join("Corefile");
        let text = corefile
            .replace("{PORT}", &port.to_string())
            .replace("{HEALTH}", &health_port.to_string())
            .replace("{READY}", &ready_port.to_string())
            .replace("{METRICS}", &metrics_port.to_string());
        std::fs::write(&conf, text).expect("corefile");
        let log = std::fs::File::create(dir.path().join("clusterdns.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
            .arg("-conf")
            .arg(&conf)
            .args(
                args.iter()
                    .map(|a| a.replace("{DIR}", &dir.path().to_string_lossy())),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn clusterdns");
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            health_port,
            ready_port,
            metrics_port,
            dir,
        }
    }

    /// `GET path` on a local HTTP port: (status, body), or None if not answering.
    pub fn http_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        http_get(SocketAddr::from(([127, 0, 0, 1], port)), path)
    }

    /// The README demo: config/Corefile (its port 1053 moved to a free one)
    /// serving a copy of config/demo-cluster.yaml.
    pub fn demo() -> Self {
        let yaml = std::fs::read_to_string(repo().join("config/demo-cluster.yaml"))
            .expect("config/demo-cluster.yaml");
        Self::start(&demo_corefile(), &[("demo-cluster.yaml", &yaml)])
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Wait until the server answers a cluster name from synced data: before
    /// the index is synced a missing name is SERVFAIL, after it NXDOMAIN.
    fn wait_answering(&self) {
        let probe = query("start-probe.default.svc.cluster.local.", RecordType::A);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(m) = try_udp(self.addr, &probe, 300)
                && m.metadata.response_code != ResponseCode::ServFail
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("clusterdns did not start answering on {}", self.addr);
    }

    pub fn udp(&self, name: &str, qtype: RecordType) -> Message {
        udp(self.addr, &query(name, qtype))
    }

    pub fn tcp(&self, name: &str, qtype: RecordType) -> Message {
        tcp(self.addr, &query(name, qtype))
    }

    /// The UDP answer to (name, qtype), which must have response code `rcode`.
    pub fn udp_expect(&self, name: &str, qtype: RecordType, rcode: ResponseCode) -> Message {
        let m = self.udp(name, qtype);
        assert_eq!(m.metadata.response_code, rcode, "{name} {qtype}: {m:?}");
        m
    }
}

impl TestServer {
    /// What the server logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("clusterdns.log")).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- clusterdns log ({}) ---\n{}", self.addr, self.log());
        }
    }
}

/// config/Corefile with its ports (DNS 1053, health 8080, ready 8181) moved
/// to `{PORT}`, `{HEALTH}` and `{READY}`.
pub fn demo_corefile() -> String {
    let text = std::fs::read_to_string(repo().join("config/Corefile")).expect("config/Corefile");
    for needle in [".:1053 {", "127.0.0.1:8080", "127.0.0.1:8181"] {
        assert!(
            text.contains(needle),
            "config/Corefile changed shape: no {needle}"
        );
    }
    text.replace(".:1053 {", ".:{PORT} {")
        .replace("127.0.0.1:8080", "127.0.0.1:{HEALTH}")
        .replace("127.0.0.1:8181", "127.0.0.1:{READY}")
}

/// A minimal HTTP/1.0 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A recursion-desired query message.
pub fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m
}

/// The same query with an OPT record advertising `payload` bytes.
pub fn with_edns(mut m: Message, payload: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(payload);
    m.set_edns(e);
    m
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(4242);
    NEXT.fetch_add(7, Ordering::Relaxed)
}

/// Send raw bytes over UDP; the reply bytes or None after `ms` milliseconds.
/// From 127.0.0.1 to a loopback server, else from the unspecified address
/// (a loopback source cannot leave the host's loopback).
pub fn udp_raw(addr: SocketAddr, bytes: &[u8], ms: u64) -> Option<Vec<u8>> {
    let from = if addr.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let s = UdpSocket::bind(from).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(ms))).ok()?;
    s.send_to(bytes, addr).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn try_udp(addr: SocketAddr, m: &Message, ms: u64) -> Result<Message, String> {
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    let reply = udp_raw(addr, &bytes, ms).ok_or("no reply")?;
    let msg = Message::from_vec(&reply).map_err(|e| e.to_string())?;
    if msg.metadata.id != m.metadata.id {
        return Err("id mismatch".into());
    }
    Ok(msg)
}

/// Query over UDP (3 tries of 2 s).
pub fn udp(addr: SocketAddr, m: &Message) -> Message {
    let mut last = String::new();
    for _ in 0..3 {
        match try_udp(addr, m, 2000) {
            Ok(msg) => return msg,
            Err(e) => last = e,
        }
    }
    panic!("udp query to {addr} failed: {last}");
}

/// Query over TCP (2-byte length framing).
pub fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let bytes = m.to_vec().expect("encode");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("tcp connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let len = u16::try_from(bytes.len()).expect("len");
    s.write_all(&len.to_be_bytes()).expect("write len");
    s.write_all(&bytes).expect("write msg");
    let mut lenbuf = [0u8; 2];
    s.read_exact(&mut lenbuf).expect("read len");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenbuf))];
    s.read_exact(&mut buf).expect("read msg");
    Message::from_vec(&buf).expect("decode")
}

/// The answer section as sorted zone-file lines with whitespace folded.
pub fn lines(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| {
            r.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    v.sort();
    v
}

/// Path of a tool on PATH, or None.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// Whether this is a CI run: `CI` set to anything but empty, `false` or `0`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "false" | "0"))
}

/// The path of `tool` (e.g. `dig`) for a test that needs it. When it is
/// missing: in CI the test fails; elsewhere it prints a loud SKIPPED line
/// naming the test and returns None (the caller returns early). Never a
/// silent pass.
pub fn require(tool: &str) -> Option<PathBuf> {
    let found = which(tool);
    if found.is_none() {
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_string();
        assert!(
            !in_ci(),
            "`{tool}` missing in CI ({test}): .ci/run must install it"
        );
        eprintln!(
            "\n!!! SKIPPED: `{tool}` is not installed, so {test} did not run; the README test \
             command installs it !!!\n"
        );
    }
    found
}

/// Poll `f` every 20 ms until it returns Some or `limit` passes.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn write(path: &Path, content: &str) {
    // Write then rename, as a ConfigMap update does, so readers never see half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Run `dig` (at `dig`) against the server once; its stdout, or `None` when
/// dig failed (e.g. no answer yet while the server starts).
pub fn try_dig(dig: &Path, srv: &TestServer, args: &[&str]) -> Option<String> {
    let out = Command::new(dig)
        .arg(format!("@{}", srv.addr.ip()))
        .args(["-p", &srv.addr.port().to_string(), "+time=1", "+tries=1"])
        .args(args)
        .output()
        .expect("run dig");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// dig's output once the server answers (polled, bounded by 20 s).
pub fn dig(dig: &Path, srv: &TestServer, args: &[&str]) -> String {
    eventually(Duration::from_secs(20), || try_dig(dig, srv, args)).unwrap_or_else(|| {
        panic!(
            "no answer from clusterdns on {} to dig {args:?}; log:\n{}",
            srv.addr,
            srv.log()
        )
    })
}

/// The lines of one section of dig output (`ANSWER`, `AUTHORITY`, ...), whitespace folded.
pub fn dig_section(out: &str, name: &str) -> Vec<String> {
    let head = format!(";; {name} SECTION:");
    out.lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// dig's `;; flags:` line.
pub fn dig_flags(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_default()
        .to_string()
}
