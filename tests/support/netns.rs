//! Network namespaces for end-to-end tests of the service proxy (issue 10).
//!
//! The proxy programs a node's nftables; testing it for real needs a node, pods
//! and a client that exist only for the test. [`Topology::build`] creates them as
//! namespaces the test owns and removes them on drop (also when the test panics):
//!
//! ```text
//!   client ns              node ns                                pod-N ns (N = 1..4)
//!   eth0 192.168.77.2/24 ─ client0 192.168.77.1/24
//!   default via .77.1      podN    10.244.1.1/32 ─────────────── eth0 10.244.1.(N+1)/32
//!                          route 10.244.1.(N+1)/32 dev podN       route 10.244.1.1 dev eth0 (link)
//!                          uplink: default route, goes nowhere    default via 10.244.1.1
//!                          ip_forward=1, rp_filter=2 (loose)
//! ```
//!
//! Pods sit on routed veths (no bridge), so every packet between two pods, or a
//! pod and the client, passes the node's IP layer and its conntrack: un-DNAT of
//! replies works without br_netfilter, and a pod reaching itself through a
//! service (hairpin) works only if the node masquerades it. `uplink` is one end
//! of a veth pair whose peer stays down: the node's default route, so that the
//! node can route (and its nftables output hook can DNAT) service IPs, while
//! nothing ever leaves. Nothing is configured in the namespace the test runs in.
//!
//! A scenario that needs the in-process test API server on 127.0.0.1 runs
//! inside the node namespace: the outer test re-executes its own binary there
//! ([`run_inside`]) to run an `#[ignore]`d inner test that finds the namespace
//! names with [`Names::inside`]. Helper processes written in Rust (the pods'
//! serve_hostname, a UDP client with a fixed source port) are "roles": ignored
//! tests defined by [`netns_roles!`] and started the same way, so they are
//! always built with the test binary.
//!
//! Every wait is bounded; every spawned process is killed on drop.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Prefix of every namespace this module creates (and the only ones it removes).
pub const PREFIX: &str = "cdnstest";
/// Number of pod namespaces.
pub const PODS: usize = 4;
/// The node's address on the pod veths (the pods' gateway).
pub const NODE_POD_SIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
/// The node's address toward the client: its "InternalIP", where NodePorts answer.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// The client's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
/// The cluster (pod) CIDR.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The service CIDR (routed nowhere: only the node's nftables give it meaning).
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The TCP port serve_hostname answers HTTP on, as the Kubernetes example does.
pub const SERVE_HOSTNAME_PORT: u16 = 9376;

/// Environment variables that carry the namespace names into re-executed tests.
const ENV_NODE: &str = "CLUSTERDNS_NETNS_NODE";
const ENV_CLIENT: &str = "CLUSTERDNS_NETNS_CLIENT";
const ENV_PODS: &str = "CLUSTERDNS_NETNS_PODS";
/// Environment variables of the roles.
const ENV_ROLE_NAME: &str = "CLUSTERDNS_NETNS_ROLE_NAME";
const ENV_ROLE_TCP: &str = "CLUSTERDNS_NETNS_ROLE_TCP";
const ENV_ROLE_UDP: &str = "CLUSTERDNS_NETNS_ROLE_UDP";
const ENV_ROLE_TARGET: &str = "CLUSTERDNS_NETNS_ROLE_TARGET";
const ENV_ROLE_SOURCE_PORT: &str = "CLUSTERDNS_NETNS_ROLE_SOURCE_PORT";
const ENV_ROLE_COUNT: &str = "CLUSTERDNS_NETNS_ROLE_COUNT";

/// Test path of the serve_hostname role defined by [`netns_roles!`].
pub const SERVE_HOSTNAME_ROLE: &str = "netns_roles::serve_hostname";
/// Test path of the UDP client role defined by [`netns_roles!`].
pub const UDP_ASK_ROLE: &str = "netns_roles::udp_ask";

/// How long a role process lives at most, whatever happens to the test.
const ROLE_MAX_LIFE: Duration = Duration::from_secs(600);
/// Bound on concurrent HTTP connections a serve_hostname handles.
const MAX_CONNECTIONS: usize = 64;

/// Defines the roles ([`SERVE_HOSTNAME_ROLE`], [`UDP_ASK_ROLE`]) as ignored
/// tests. Invoke once at the crate root of every test file that uses
/// [`Topology::serve_hostname`] or [`udp_ask`]: `support::netns::netns_roles!();`
#[allow(unused_macros)]
macro_rules! netns_roles {
    () => {
        mod netns_roles {
            #[test]
            #[ignore = "a helper process started by support::netns inside a pod namespace"]
            fn serve_hostname() {
                crate::support::netns::role_serve_hostname();
            }

            #[test]
            #[ignore = "a helper process started by support::netns::udp_ask inside a namespace"]
            fn udp_ask() {
                crate::support::netns::role_udp_ask();
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use netns_roles;

// ---------------------------------------------------------------------------
// Can this run here?

/// Why the namespace tests cannot run here, or None when they can: they need
/// CAP_NET_ADMIN and CAP_SYS_ADMIN (root) and the `ip`, `nft` and `curl` tools.
pub fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u64 = 1 << 12;
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    if caps & (CAP_NET_ADMIN | CAP_SYS_ADMIN) != CAP_NET_ADMIN | CAP_SYS_ADMIN {
        return Some(
            "not root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN for network namespaces)".into(),
        );
    }
    for tool in ["ip", "nft", "curl"] {
        if which(tool).is_none() {
            return Some(format!(
                "`{tool}` is not installed (the README test command installs it)"
            ));
        }
    }
    None
}

/// Whether a namespace test can run. When it cannot: fails the test in CI
/// (`CI` set), and elsewhere prints a loud SKIPPED line naming the test and
/// returns false (the caller returns early). Never a silent pass.
pub fn available() -> bool {
    let Some(why) = missing_prerequisite() else {
        return true;
    };
    let test = current_test();
    assert!(!in_ci(), "{test} cannot run in CI: {why}");
    eprintln!("\n!!! SKIPPED: {test} did not run: {why} !!!\n");
    false
}

fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "false" | "0"))
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

// ---------------------------------------------------------------------------
// Running commands in a namespace.

/// `ip netns exec <ns> <program>`: a Command to add arguments and environment to.
pub fn command(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Run `program args` in namespace `ns` to completion (stdin empty).
pub fn exec(ns: &str, program: &str, args: &[&str]) -> Output {
    command(ns, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run `ip netns exec {ns} {program}`: {e}"))
}

/// Run `program args` in `ns` with `input` on its stdin (e.g. `nft -f -`).
pub fn exec_stdin(ns: &str, program: &str, args: &[&str], input: &str) -> Output {
    let mut child = command(ns, program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run `ip netns exec {ns} {program}`: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    // A writer thread, so a program that answers before reading everything cannot deadlock us.
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for the command");
    let _ = writer.join();
    out
}

/// Like [`exec`], but the command must succeed; its stdout.
pub fn exec_ok(ns: &str, program: &str, args: &[&str]) -> String {
    let out = exec(ns, program, args);
    assert!(
        out.status.success(),
        "`ip netns exec {ns} {program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Apply an nft script (`nft -f -`) in `ns`; panics with nft's message on error.
pub fn nft_apply(ns: &str, script: &str) {
    let out = exec_stdin(ns, "nft", &["-f", "-"], script);
    assert!(
        out.status.success(),
        "nft -f - in {ns} failed ({}): {}\n--- script ---\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A background process, killed (and reaped) on drop. Its stdout and stderr go
/// to a log file, shown when the test panics.
pub struct Spawned {
    child: Child,
    label: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Spawn `cmd` with stdout/stderr to a log and stdin a pipe held open for
    /// the process's life, so a helper that watches stdin exits if we die.
    pub fn start(mut cmd: Command, label: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for a process log");
        let log = dir.path().join("log");
        let file = std::fs::File::create(&log).expect("create a process log");
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        Self {
            child,
            label: label.to_string(),
            log,
            _dir: dir,
        }
    }

    /// What the process wrote so far (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (of `ip netns exec`, which execs the program: same process).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited; its status if so.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kill it now and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.label, self.log());
        }
    }
}

/// Spawn `program args` in namespace `ns` in the background; killed on drop.
pub fn spawn_in(ns: &str, program: impl AsRef<OsStr>, args: &[&str]) -> Spawned {
    let label = format!("{} in {ns}", program.as_ref().to_string_lossy());
    let mut cmd = command(ns, program);
    cmd.args(args);
    Spawned::start(cmd, &label)
}

// ---------------------------------------------------------------------------
// Re-executing this test binary inside a namespace.

/// The current test binary re-executed in `ns` to run exactly the (ignored)
/// test `test` with extra environment `env`.
fn reexec(ns: &str, test: &str, env: &[(String, String)]) -> Command {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = command(ns, exe);
    cmd.args([test, "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// How an inner test run by [`run_inside`] ended.
#[derive(Debug)]
pub struct Inside {
    /// The test binary's exit status (None: killed at the time limit).
    pub status: Option<ExitStatus>,
    /// Its stdout and stderr, interleaved.
    pub output: String,
}

impl Inside {
    /// Whether the inner test ran (exactly one) and passed.
    pub fn passed(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && self.output.contains("1 passed;")
    }

    /// Panic, showing the inner output, unless it ran and passed.
    pub fn assert_passed(&self, what: &str) {
        if self.passed() {
            eprintln!("--- {what} (passed) ---\n{}", self.output);
        }
        assert!(
            self.passed(),
            "{what} did not pass (status {:?}; an exit 0 without \"1 passed\" means the test \
             name matched nothing)\n--- inner output ---\n{}",
            self.status,
            self.output
        );
    }
}

/// Re-execute this test binary inside namespace `ns` to run the ignored test
/// `test` (its full path, e.g. `proxy_inside`), with `env` added to the
/// environment; waits at most `limit` (then kills it). The inner process and
/// everything it spawns live in `ns`, so an in-process server it starts on
/// 127.0.0.1 is reachable by its children and by nothing else.
pub fn run_inside(ns: &str, test: &str, env: &[(String, String)], limit: Duration) -> Inside {
    let mut spawned = Spawned::start(reexec(ns, test, env), &format!("{test} inside {ns}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = spawned.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            spawned.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Inside {
        status,
        output: spawned.log(),
    }
}

/// Start the ignored test `test` inside `ns` in the background (a role).
pub fn spawn_inside(ns: &str, test: &str, env: &[(String, String)]) -> Spawned {
    Spawned::start(reexec(ns, test, env), &format!("{test} inside {ns}"))
}

// ---------------------------------------------------------------------------
// The topology.

/// The namespace names of one topology: what an inner test needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The node: runs the proxy, routes between everything.
    pub node: String,
    /// The client, outside the cluster CIDR, routed through the node.
    pub client: String,
    /// The pods, `pods[i]` has address [`pod_ip`]`(i)` and name [`pod_name`]`(i)`.
    pub pods: Vec<String>,
}

impl Names {
    /// Fresh names (nothing created): unique per process and call,
    /// `cdnstest-<pid>-<n>-<tag>-<role>`.
    pub fn fresh(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}-{}-{n}-{tag}", std::process::id());
        Self {
            node: format!("{base}-node"),
            client: format!("{base}-client"),
            pods: (1..=PODS).map(|i| format!("{base}-pod{i}")).collect(),
        }
    }

    /// Every namespace name: node, client, pods.
    pub fn all(&self) -> Vec<&str> {
        let mut v = vec![self.node.as_str(), self.client.as_str()];
        v.extend(self.pods.iter().map(String::as_str));
        v
    }

    /// The environment that hands these names to a re-executed test.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_NODE.into(), self.node.clone()),
            (ENV_CLIENT.into(), self.client.clone()),
            (ENV_PODS.into(), self.pods.join(",")),
        ]
    }

    /// The names handed over by [`Names::env`], if any.
    pub fn from_env() -> Option<Self> {
        let node = std::env::var(ENV_NODE).ok()?;
        let client = std::env::var(ENV_CLIENT).ok()?;
        let pods: Vec<String> = std::env::var(ENV_PODS)
            .ok()?
            .split(',')
            .map(str::to_string)
            .collect();
        Some(Self { node, client, pods })
    }

    /// For an inner test (see [`run_inside`]): the names, after checking that
    /// this process really runs in the node namespace. Run any other way (e.g.
    /// `cargo test -- --include-ignored`), it prints a loud SKIPPED line naming
    /// `outer`, the test that runs it, and returns None.
    pub fn inside(outer: &str) -> Option<Self> {
        let Some(names) = Self::from_env() else {
            eprintln!(
                "\n!!! SKIPPED: {} runs only inside a node namespace, started by {outer} !!!\n",
                current_test()
            );
            return None;
        };
        let here = Command::new("ip")
            .args(["netns", "identify"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        assert_eq!(
            here, names.node,
            "the inner test must run in the node namespace"
        );
        Some(names)
    }
}

/// The address of pod `i` (0-based): 10.244.1.(i+2).
pub fn pod_ip(i: usize) -> Ipv4Addr {
    let last = u8::try_from(i + 2).expect("pod index");
    Ipv4Addr::new(10, 244, 1, last)
}

/// The name pod `i` (0-based) serves: `pod-(i+1)`.
pub fn pod_name(i: usize) -> String {
    format!("pod-{}", i + 1)
}

/// A node, four pods and a client as network namespaces, removed on drop.
pub struct Topology {
    names: Names,
    servers: Vec<Option<Spawned>>,
}

impl std::ops::Deref for Topology {
    type Target = Names;
    fn deref(&self) -> &Names {
        &self.names
    }
}

impl Topology {
    /// Create the namespaces and wire them (see the module doc). `tag`
    /// (lowercase letters and digits, ≤ 12) shows in the names, which are
    /// unique per process and call: `cdnstest-<pid>-<n>-<tag>-<role>`.
    /// Before the first build in a process, namespaces of earlier crashed runs
    /// are swept (see [`sweep_stale`]). Panics with the failing command.
    pub fn build(tag: &str) -> Self {
        assert!(
            !tag.is_empty()
                && tag.len() <= 12
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "tag {tag:?}: 1 to 12 lowercase letters or digits"
        );
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale);

        // Own the names before creating anything, so a failure halfway is cleaned up by Drop.
        let topo = Self {
            names: Names::fresh(tag),
            servers: (0..PODS).map(|_| None).collect(),
        };
        for ns in topo.all() {
            run_ok("ip", &["netns", "add", ns]);
        }
        let node = &topo.node;
        let mut batch = vec![
            "link set lo up".to_string(),
            // Toward the client.
            format!(
                "link add client0 type veth peer name eth0 netns {}",
                topo.client
            ),
            format!("addr add {NODE_IP}/24 dev client0"),
            "link set client0 up".into(),
        ];
        for (i, pod) in topo.pods.iter().enumerate() {
            let dev = format!("pod{}", i + 1);
            batch.extend([
                format!("link add {dev} type veth peer name eth0 netns {pod}"),
                format!("addr add {NODE_POD_SIDE_IP}/32 dev {dev}"),
                format!("link set {dev} up"),
                format!(
                    "route add {}/32 dev {dev} src {NODE_POD_SIDE_IP}",
                    pod_ip(i)
                ),
            ]);
        }
        batch.extend([
            // The uplink: a veth whose peer stays down, so what it routes goes nowhere.
            "link add uplink type veth peer name uplink-peer".into(),
            "link set uplink up".into(),
            format!("route add default dev uplink src {NODE_IP}"),
        ]);
        ip_batch(node, &batch);
        ip_batch(
            &topo.client,
            &[
                "link set lo up".into(),
                format!("addr add {CLIENT_IP}/24 dev eth0"),
                "link set eth0 up".into(),
                format!("route add default via {NODE_IP}"),
            ],
        );
        for (i, pod) in topo.pods.iter().enumerate() {
            ip_batch(
                pod,
                &[
                    "link set lo up".into(),
                    format!("addr add {}/32 dev eth0", pod_ip(i)),
                    "link set eth0 up".into(),
                    format!("route add {NODE_POD_SIDE_IP}/32 dev eth0 scope link"),
                    format!(
                        "route add default via {NODE_POD_SIDE_IP} dev eth0 src {}",
                        pod_ip(i)
                    ),
                ],
            );
        }
        // Forwarding on; loose reverse-path filtering (systemd's default on most
        // nodes) pinned, so the result does not depend on the host's settings.
        exec_ok(
            node,
            "sh",
            &[
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward && \
                 echo 2 > /proc/sys/net/ipv4/conf/all/rp_filter",
            ],
        );
        topo
    }

    /// The names (for [`Names::env`] or to clone into another thread).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Start serve_hostname in every pod (see [`Topology::serve_pod`]) and
    /// wait until each answers.
    pub fn serve_hostname(&mut self, udp_port: Option<u16>) {
        for i in 0..PODS {
            self.start_serving(i, udp_port);
        }
        for i in 0..PODS {
            self.wait_serving(i);
        }
    }

    /// Start serve_hostname in pod `i`: HTTP on TCP [`SERVE_HOSTNAME_PORT`]
    /// answering [`pod_name`]`(i)`, and if `udp_port` is given a UDP echo that
    /// replies its name to every datagram. Waits (bounded) until it answers
    /// HTTP from the node. Replaces a server already running there; all stop
    /// when the topology drops.
    pub fn serve_pod(&mut self, i: usize, udp_port: Option<u16>) {
        self.start_serving(i, udp_port);
        self.wait_serving(i);
    }

    /// Kill pod `i`'s serve_hostname (and wait for it): the pod stays, its
    /// ports now refuse (TCP reset, ICMP port unreachable for UDP).
    pub fn stop_serving(&mut self, i: usize) {
        if let Some(mut server) = self.servers[i].take() {
            server.kill();
        }
    }

    fn start_serving(&mut self, i: usize, udp_port: Option<u16>) {
        self.stop_serving(i);
        let mut env = vec![
            (ENV_ROLE_NAME.to_string(), pod_name(i)),
            (ENV_ROLE_TCP.to_string(), SERVE_HOSTNAME_PORT.to_string()),
        ];
        if let Some(port) = udp_port {
            env.push((ENV_ROLE_UDP.to_string(), port.to_string()));
        }
        self.servers[i] = Some(spawn_inside(&self.names.pods[i], SERVE_HOSTNAME_ROLE, &env));
    }

    fn wait_serving(&mut self, i: usize) {
        let pod = &self.names.pods[i];
        let server = self.servers[i].as_mut().expect("a server was started");
        let url = format!("http://{}:{SERVE_HOSTNAME_PORT}/", pod_ip(i));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = curl(&self.names.node, std::slice::from_ref(&url));
            if got
                .first()
                .is_some_and(|r| r.as_deref() == Ok(&pod_name(i)))
            {
                return;
            }
            if let Some(status) = server.try_wait() {
                panic!(
                    "serve_hostname in {pod} exited ({status}); is `support::netns::netns_roles!();` \
                     at the test file's crate root?\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "serve_hostname in {pod} did not answer {url}: {got:?}\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run the ignored test `test` inside the node namespace with these names
    /// (and `env`) in its environment; see [`run_inside`].
    pub fn run_inside_node(&self, test: &str, env: &[(String, String)], limit: Duration) -> Inside {
        let mut all = self.names.env();
        all.extend(env.iter().cloned());
        run_inside(&self.names.node, test, &all, limit)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.servers.clear();
        for ns in self.names.all() {
            kill_processes_in(ns);
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Kill what still runs in one of our namespaces (started by the test, e.g.
/// a proxy an inner test left behind): by pid, as `ip netns pids` lists them.
fn kill_processes_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid.parse::<u32>().is_ok_and(|p| p != std::process::id()) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// The namespaces `ip netns list` shows.
pub fn list_namespaces() -> Vec<String> {
    let out = run_ok("ip", &["netns", "list"]);
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The pid that created namespace `name`, if the name is one of ours:
/// `cdnstest-<pid>-<n>-<tag>-<node|client|podN>` exactly.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
    let mut parts = rest.splitn(4, '-');
    let pid: u32 = parts.next()?.parse().ok()?;
    let n = parts.next()?;
    let tag = parts.next()?;
    let role = parts.next()?;
    let alnum = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let role_ok = role == "node"
        || role == "client"
        || role
            .strip_prefix("pod")
            .is_some_and(|d| d.parse::<usize>().is_ok_and(|d| (1..=PODS).contains(&d)));
    (n.bytes().all(|b| b.is_ascii_digit())
        && !n.is_empty()
        && alnum(tag)
        && tag.len() <= 12
        && role_ok)
        .then_some(pid)
}

/// Remove namespaces left by earlier crashed runs: only names of exactly our
/// shape ([`owner_pid`]), whose creating process no longer exists, and that
/// are older than ten minutes (so another pid namespace's live run is safe).
pub fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let age = std::fs::metadata(Path::new("/run/netns").join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|a| a > Duration::from_secs(600)) {
            eprintln!("support::netns: removing stale namespace {name} (pid {pid} is gone)");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n <ns> -batch -` over `commands`, which must all succeed.
fn ip_batch(ns: &str, commands: &[String]) {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ip -batch");
    let script = commands.join("\n") + "\n";
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .expect("write ip batch");
    let out = child.wait_with_output().expect("wait for ip -batch");
    assert!(
        out.status.success(),
        "ip -n {ns} -batch failed ({}): {}\n--- batch ---\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// Clients.

/// One `curl` in `ns` fetching every URL in turn (a new connection each: the
/// server closes), `--max-time 2 --connect-timeout 1` per transfer. Per URL:
/// Ok(body) on HTTP 200, else Err(why).
pub fn curl(ns: &str, urls: &[String]) -> Vec<Result<String, String>> {
    let mut args = vec![
        "-sS",
        "--max-time",
        "2",
        "--connect-timeout",
        "1",
        "-w",
        "\t%{http_code}\t%{exitcode}\n",
    ];
    args.extend(urls.iter().map(String::as_str));
    let out = exec(ns, "curl", &args);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut results: Vec<Result<String, String>> = text
        .lines()
        .map(|line| {
            let mut f = line.rsplitn(3, '\t');
            let exit = f.next().unwrap_or_default();
            let code = f.next().unwrap_or_default();
            let body = f.next().unwrap_or_default();
            match (code, exit) {
                ("200", "0") => Ok(body.to_string()),
                _ => Err(format!("http {code}, curl exit {exit} {body}")),
            }
        })
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    results.resize(urls.len(), Err(format!("no result from curl: {stderr}")));
    results
}

/// The same URL `n` times with one curl in `ns`.
pub fn curl_repeat(ns: &str, url: &str, n: usize) -> Vec<Result<String, String>> {
    curl(ns, &vec![url.to_string(); n])
}

/// How often each body was answered; failures under the key "(failed)".
pub fn tally(results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        let key = r.clone().unwrap_or_else(|_| "(failed)".into());
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// HTTP GET `/` from this process (e.g. an inner test in the node namespace):
/// the body on status 200. A new connection, 1 s to connect, 2 s to answer.
pub fn http_get_body(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    match head.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_string()),
        other => Err(format!("status {other:?}")),
    }
}

/// From namespace `ns`, send `count` datagrams to `target` from one socket
/// (bound to `source_port`, or any port if None), waiting up to 1 s for each
/// reply: the reply text, or None for no reply. One process, so one source
/// port; call again with the same port for "the same client later".
pub fn udp_ask(
    ns: &str,
    target: SocketAddrV4,
    source_port: Option<u16>,
    count: usize,
) -> Vec<Option<String>> {
    let mut env = vec![
        (ENV_ROLE_TARGET.to_string(), target.to_string()),
        (ENV_ROLE_COUNT.to_string(), count.to_string()),
    ];
    if let Some(port) = source_port {
        env.push((ENV_ROLE_SOURCE_PORT.to_string(), port.to_string()));
    }
    let limit = Duration::from_secs(5) + Duration::from_secs(2) * u32::try_from(count).unwrap_or(0);
    let inside = run_inside(ns, UDP_ASK_ROLE, &env, limit);
    assert!(
        inside.passed(),
        "udp_ask in {ns} failed ({:?}):\n{}",
        inside.status,
        inside.output
    );
    inside
        .output
        .lines()
        .filter_map(|l| {
            // libtest's "test NAME ... " may precede the first line.
            if let Some((_, text)) = l.split_once("udp_ask reply ") {
                Some(Some(text.to_string()))
            } else {
                l.ends_with("udp_ask timeout").then_some(None)
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Roles: what the re-executed test binary does in a pod or client namespace.

fn role_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn role_port(key: &str) -> Option<u16> {
    role_env(key).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v:?}: not a port"))
    })
}

/// Exit when our stdin closes (the test that spawned us died) or after
/// [`ROLE_MAX_LIFE`], whichever is first.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(ROLE_MAX_LIFE);
        std::process::exit(0);
    });
}

/// serve_hostname (the role of [`SERVE_HOSTNAME_ROLE`]): answers every HTTP
/// request on TCP `$ROLE_TCP` with `$ROLE_NAME`, and, if `$ROLE_UDP` is set,
/// every UDP datagram on that port with `$ROLE_NAME`. Runs until killed.
pub fn role_serve_hostname() {
    let Some(name) = role_env(ENV_ROLE_NAME) else {
        eprintln!(
            "\n!!! SKIPPED: a helper role, run by support::netns inside a pod namespace !!!\n"
        );
        return;
    };
    exit_with_parent();
    if let Some(port) = role_port(ENV_ROLE_UDP) {
        let socket =
            UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind UDP {port}: {e}"));
        let name = name.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(name.as_bytes(), from);
                }
            }
        });
    }
    let port = role_port(ENV_ROLE_TCP).unwrap_or(SERVE_HOSTNAME_PORT);
    let listener =
        TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind TCP {port}: {e}"));
    eprintln!("serve_hostname {name}: HTTP on {port}");
    static ACTIVE: AtomicUsize = AtomicUsize::new(0);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if ACTIVE.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closed without an answer
        }
        let name = name.clone();
        std::thread::spawn(move || {
            answer_http(conn, &name);
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Read one request head (at most 8 KiB, 2 s) and answer `name`, then close.
fn answer_http(mut conn: TcpStream, name: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
        name.len()
    );
}

/// The UDP client (the role of [`UDP_ASK_ROLE`]): prints `udp_ask reply <text>`
/// or `udp_ask timeout` per datagram.
pub fn role_udp_ask() {
    let Some(target) = role_env(ENV_ROLE_TARGET) else {
        eprintln!("\n!!! SKIPPED: a helper role, run by support::netns::udp_ask !!!\n");
        return;
    };
    exit_with_parent();
    let target: SocketAddr = target
        .parse()
        .unwrap_or_else(|_| panic!("{ENV_ROLE_TARGET}={target:?}: not an address"));
    let count: usize = role_env(ENV_ROLE_COUNT)
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let port = role_port(ENV_ROLE_SOURCE_PORT).unwrap_or(0);
    let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let mut buf = [0u8; 2048];
    for i in 0..count {
        socket
            .send_to(format!("ask {i}").as_bytes(), target)
            .unwrap_or_else(|e| panic!("send to {target}: {e}"));
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => println!("udp_ask reply {}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => println!("udp_ask timeout"),
        }
    }
}
