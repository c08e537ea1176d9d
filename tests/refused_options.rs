//! Options clusterdns refuses rather than accepts and ignores: starting the
//! real binary with each one must fail at once (exit 64, before any socket is
//! served) with an error naming the Corefile's file:line:col and the reason.
//! One test per refused option, so a regression names the option.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Start `clusterdns` on `block_body` (the lines of one server block on a
/// free loopback port); return its stderr after it exits. Panics if it is
/// still running after 10 s (the option was accepted).
fn start_fails(block_body: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    let port = common::free_port();
    let text = format!(".:{port} {{\n    bind 127.0.0.1\n{block_body}\n}}\n");
    std::fs::write(&path, &text).expect("write Corefile");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .arg("-conf")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clusterdns");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("clusterdns started with a refused option:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("stderr");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(status.code(), Some(64), "exit code; stderr:\n{stderr}");
    stderr
}

/// The error starts with `<dir>/Corefile:LINE:COL: ` and contains `why`.
fn assert_refused_at(stderr: &str, line_col: &str, why: &str) {
    let at = format!("Corefile:{line_col}: ");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(&at) && first.contains(why),
        "want '{at}...{why}', got:\n{stderr}"
    );
    assert!(
        first.contains(&*std::path::MAIN_SEPARATOR.to_string()),
        "names the file: {first}"
    );
}

#[test]
fn refused_forward_tls_upstream() {
    let e = start_fails("    forward . tls://1.1.1.1");
    assert_refused_at(
        &e,
        "3:15",
        "forward: DNS-over-TLS (tls://) upstreams are not supported by clusterdns",
    );
}

#[test]
fn refused_forward_tls() {
    let e = start_fails("    forward . 127.0.0.1 {\n        tls cert.pem key.pem ca.pem\n    }");
    assert_refused_at(&e, "4:9", "forward: tls: not supported by clusterdns");
}

#[test]
fn refused_forward_tls_servername() {
    let e =
        start_fails("    forward . 127.0.0.1 {\n        tls_servername cloudflare-dns.com\n    }");
    assert_refused_at(
        &e,
        "4:9",
        "forward: tls_servername: not supported by clusterdns",
    );
}

#[test]
fn refused_forward_expire() {
    let e = start_fails("    forward . 127.0.0.1 {\n        expire 30s\n    }");
    assert_refused_at(
        &e,
        "4:9",
        "forward: expire: not supported by clusterdns: upstream connections are not pooled",
    );
}

#[test]
fn refused_errors_stacktrace() {
    let e = start_fails("    errors {\n        stacktrace\n    }");
    assert_refused_at(&e, "4:9", "errors: stacktrace: not supported by clusterdns");
}

#[test]
fn refused_loadbalance_weighted() {
    let e = start_fails("    loadbalance weighted weights.txt {\n        reload 10s\n    }");
    assert_refused_at(
        &e,
        "3:17",
        "loadbalance: the weighted policy is not supported by clusterdns",
    );
}

#[test]
fn refused_template_ederror() {
    let e = start_fails("    template IN A example.org {\n        ederror 15 \"blocked\"\n    }");
    assert_refused_at(&e, "4:9", "template: ederror: not supported by clusterdns");
}

#[test]
fn refused_rewrite_edns0() {
    let e = start_fails("    rewrite edns0 local set 0xffee abcd");
    assert_refused_at(
        &e,
        "3:13",
        "rewrite: edns0 rules are not supported by clusterdns",
    );
}

#[test]
fn refused_rewrite_cname() {
    let e = start_fails("    rewrite cname exact a.example. b.example.");
    assert_refused_at(
        &e,
        "3:13",
        "rewrite: cname rules are not supported by clusterdns",
    );
}

#[test]
fn refused_rewrite_rcode() {
    let e = start_fails("    rewrite rcode exact a.example. SERVFAIL NXDOMAIN");
    assert_refused_at(
        &e,
        "3:13",
        "rewrite: rcode rules are not supported by clusterdns",
    );
}

#[test]
fn refused_timeouts_maxtcpqueries() {
    let e = start_fails("    timeouts {\n        maxtcpqueries 128\n    }");
    assert_refused_at(&e, "4:9", "timeouts: unknown property 'maxtcpqueries'");
}

#[test]
fn refused_whoami_block() {
    let e = start_fails("    whoami {\n        anything\n    }");
    assert_refused_at(&e, "3:5", "whoami: takes no block");
}

#[test]
fn refused_prometheus_block() {
    let e = start_fails("    prometheus 127.0.0.1:0 {\n        runtime_metrics\n    }");
    assert_refused_at(&e, "4:9", "prometheus: takes no block");
}

#[test]
fn refused_kubernetes_multicluster() {
    kubernetes_option("multicluster clusterset.local");
}

#[test]
fn refused_kubernetes_zonal() {
    kubernetes_option("zonal");
}

#[test]
fn refused_kubernetes_resyncperiod() {
    kubernetes_option("resyncperiod 30s");
}

#[test]
fn refused_kubernetes_upstream() {
    kubernetes_option("upstream");
}

fn kubernetes_option(line: &str) {
    let e = start_fails(&format!(
        "    kubernetes cluster.local {{\n        {line}\n    }}"
    ));
    let option = line.split_whitespace().next().expect("option");
    assert_refused_at(
        &e,
        "4:9",
        &format!("kubernetes: option '{option}' is not supported by clusterdns"),
    );
}
