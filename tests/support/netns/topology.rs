//! The node, pod and client namespaces of one test: their names (unique per
//! process and call, handed to re-executed tests through the environment),
//! building and wiring them, the pods' servers, and removal on drop; plus the
//! sweep of namespaces that crashed runs left behind.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::client::curl;
use super::exec::{Inside, Spawned, exec_ok, run_inside, spawn_inside};
use super::roles::{ENV_ROLE_NAME, ENV_ROLE_TCP, ENV_ROLE_UDP, SERVE_HOSTNAME_ROLE};
use super::{
    CLIENT_IP, NODE_IP, NODE_POD_SIDE_IP, PODS, PREFIX, SERVE_HOSTNAME_PORT, current_test,
};

/// Environment variables that carry the namespace names into re-executed tests.
const ENV_NODE: &str = "CLUSTERDNS_NETNS_NODE";
const ENV_CLIENT: &str = "CLUSTERDNS_NETNS_CLIENT";
const ENV_PODS: &str = "CLUSTERDNS_NETNS_PODS";

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
pub(super) fn kill_processes_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid.parse::<u32>().is_ok_and(|p| p != std::process::id()) {
            // The shell's builtin kill: no procps needed.
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$1\"", "sh", pid])
                .status();
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
