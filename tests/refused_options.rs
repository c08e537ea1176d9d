//! Options clusterdns refuses rather than accepts and ignores: starting the
//! real binary with each one must fail at once (exit 64, before any socket is
//! served) with an error naming the Corefile's file:line:col and the reason.
//! One test per refused option (rows of `refused!`), so a regression names
//! the option.

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

/// The lines of a server block: `directive` with a block holding `line`
/// (the directive at 3:5, the line at 4:9).
fn with_block(directive: &str, line: &str) -> String {
    format!("    {directive} {{\n        {line}\n    }}")
}

/// One `#[test]` per row: `name: block body => "line:col", "reason";`.
macro_rules! refused {
    ($($name:ident: $body:expr => $at:literal, $why:literal;)*) => {
        $(
            #[test]
            fn $name() {
                assert_refused_at(&start_fails(&$body), $at, $why);
            }
        )*
    };
}

refused! {
    forward_https_upstream: "    forward . https://1.1.1.1/dns-query" => "3:15",
        "forward: 'https' is not supported as a destination protocol (dns://, tls://)";
    forward_tls_without_tls_upstream: with_block("forward . 127.0.0.1", "tls cert.pem key.pem ca.pem") => "4:9",
        "forward: tls: 'tls' applies to tls:// upstreams and this forward has none";
    forward_tls_servername_without_tls_upstream: with_block("forward . 127.0.0.1", "tls_servername a.example") => "4:9",
        "forward: tls_servername: 'tls_servername' applies to tls:// upstreams and this forward has none";
    forward_expire_without_tls_upstream: with_block("forward . 127.0.0.1", "expire 30s") => "4:9",
        "forward: expire: 'expire' applies to tls:// upstreams and this forward has none";
    view_server_ip: with_block("view internal", "expr server_ip() == '10.0.0.10'") => "4:14",
        "view: expr: at character 0: unknown function or word 'server_ip'";
    errors_stacktrace: with_block("errors", "stacktrace") => "4:9",
        "errors: stacktrace: not supported by clusterdns";
    loadbalance_weighted_prefer: with_block("loadbalance weighted weights.txt", "prefer 10.0.0.0/8") => "4:9",
        "loadbalance: prefer: only for the round_robin policy";
    rewrite_edns0_server_ip: "    rewrite edns0 local set 0xffee {server_ip}" => "3:36",
        "rewrite: edns0 local: {server_ip} is not supported by clusterdns: plugins do not see the address a query arrived at";
    rewrite_edns0_metadata_label: "    rewrite edns0 local set 0xffee {kubernetes/client-namespace}" => "3:36",
        "rewrite: edns0 local: metadata label {kubernetes/client-namespace} is not supported by clusterdns: there is no metadata plugin";
    timeouts_maxtcpqueries: with_block("timeouts", "maxtcpqueries 128") => "4:9",
        "timeouts: unknown property 'maxtcpqueries'";
    header_response_rd: with_block("header", "response clear rd") => "4:24",
        "header: response: flag 'rd' in response rules is not supported by clusterdns";
    header_query_aa: with_block("header", "query set aa") => "4:19",
        "header: query: flag 'aa' in query rules is not supported by clusterdns";
    whoami_block: with_block("whoami", "anything") => "3:5",
        "whoami: takes no block";
    prometheus_block: with_block("prometheus 127.0.0.1:0", "runtime_metrics") => "4:9",
        "prometheus: takes no block";
    kubernetes_multicluster_zone_not_served:
        with_block("kubernetes cluster.local", "multicluster clusterset.local") => "4:9",
        "kubernetes: multicluster zone clusterset.local. is not one of the plugin's zones";
    kubernetes_multicluster_zone_not_in_block: with_block("kubernetes", "multicluster clusterset.local")
        => "4:9", "kubernetes: multicluster zone clusterset.local. is not one of the plugin's zones";
    kubernetes_multicluster_without_zone: with_block("kubernetes cluster.local", "multicluster")
        => "4:9", "kubernetes: multicluster needs at least one ZONE";
    kubernetes_zonal_with_noendpoints:
        with_block("kubernetes cluster.local", "zonal\n        noendpoints") => "4:9",
        "kubernetes: zonal needs the endpoints";
    kubernetes_resyncperiod: with_block("kubernetes cluster.local", "resyncperiod 30s") => "4:9",
        "kubernetes: option 'resyncperiod' is not supported by clusterdns";
    kubernetes_upstream: with_block("kubernetes cluster.local", "upstream") => "4:9",
        "kubernetes: option 'upstream' is not supported by clusterdns";
    k8s_external_without_kubernetes: "    k8s_external example.org" => "3:5",
        "k8s_external: needs the kubernetes plugin in the same server block";
    k8s_external_unknown_property: with_block("k8s_external example.org", "resync 30s") => "4:9",
        "k8s_external: unknown property 'resync'";
}
