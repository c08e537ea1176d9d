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

mod client;
mod exec;
mod roles;
mod scratch;
mod topology;

use std::net::Ipv4Addr;
use std::path::PathBuf;

// Each test binary uses a subset of these.
#[allow(unused_imports)]
pub use client::{curl, curl_repeat, http_get_body, tally, udp_ask};
#[allow(unused_imports)]
pub use exec::{
    Inside, Spawned, command, exec, exec_ok, exec_stdin, nft_apply, ruleset_without, run_inside,
    spawn_in, spawn_inside,
};
#[allow(unused_imports)]
pub(crate) use roles::netns_roles;
#[allow(unused_imports)]
pub use roles::{SERVE_HOSTNAME_ROLE, UDP_ASK_ROLE, role_serve_hostname, role_udp_ask};
#[allow(unused_imports)]
pub use scratch::Scratch;
#[allow(unused_imports)]
pub use topology::{Names, Topology, list_namespaces, owner_pid, pod_ip, pod_name, sweep_stale};

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

pub(crate) fn current_test() -> String {
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

/// Poll `f` every 20 ms until it returns Some or `limit` passes.
pub fn eventually<T>(limit: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
