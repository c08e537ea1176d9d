//! The binary's command line: `check`, `-version`, `-plugins`, exit codes and SIGTERM.

mod common;

use std::process::{Command, Output};

use common::repo;

fn clusterdns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(args)
        .output()
        .expect("run clusterdns")
}

fn check_text(corefile: &str) -> (Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(&path, corefile).expect("write");
    let out = clusterdns(&["check", "-conf", path.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn check_accepts_the_kubeadm_and_demo_corefiles() {
    for file in ["config/Corefile.kubeadm", "config/Corefile"] {
        let path = repo().join(file);
        let out = clusterdns(&["check", "-conf", path.to_str().expect("utf8")]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).ends_with("OK\n"));
    }
}

#[test]
fn check_reports_an_unknown_plugin_with_file_and_line() {
    let (out, err) = check_text(".:53 {\n    errors\n    kubernetez cluster.local\n}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("Corefile:3:5:"), "{err}");
    assert!(err.contains("kubernetez"), "{err}");
}

#[test]
fn check_reports_a_bad_argument_with_file_and_line() {
    let (out, err) =
        check_text(".:53 {\n    kubernetes cluster.local {\n        ttl 99999\n    }\n}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("Corefile:3:"), "{err}");
    assert!(err.contains("ttl"), "{err}");
}

#[test]
fn check_reports_an_unknown_kubernetes_property_with_file_and_line() {
    let (out, err) =
        check_text(".:53 {\n    kubernetes cluster.local {\n        podz insecure\n    }\n}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("Corefile:3:9:"), "{err}");
    assert!(err.contains("podz"), "{err}");
}

#[test]
fn check_reports_an_unterminated_block_with_file_and_line() {
    let (out, err) = check_text(".:53 {\n    kubernetes cluster.local {\n        pods insecure\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("Corefile:"), "{err}");
    assert!(
        err.to_lowercase().contains("unterminated") || err.contains("'}'"),
        "{err}"
    );
}

#[test]
fn check_lists_every_problem_not_just_the_first() {
    let (out, err) =
        check_text(".:53 {\n    frobnicate\n    kubernetes {\n        ttl x\n    }\n}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("Corefile:2:"), "{err}");
    assert!(err.contains("Corefile:4:"), "{err}");
}

#[test]
fn running_with_an_invalid_corefile_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(&path, ".:53 {\n    nonsense\n}\n").expect("write");
    let out = clusterdns(&["-conf", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn version_flag_prints_and_exits() {
    let v = clusterdns(&["-version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("clusterdns-"));
}

/// CoreDNS's `plugin.cfg` directive names, written out here independently of
/// `src/plugin/registry.rs`, so the test does not just read the table back.
const COREDNS_DIRECTIVES: &[&str] = &[
    "root",
    "metadata",
    "geoip",
    "cancel",
    "tls",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "acl",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "cache",
    "rewrite",
    "header",
    "dnssec",
    "autopath",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
];

/// The smallest valid use of each directive clusterdns ships. A directive
/// added to the registry without a line here fails the test below.
fn minimal(name: &str) -> Option<&'static str> {
    Some(match name {
        "reload" => "reload",
        "nsid" => "nsid",
        "view" => "view v {\n        expr type() == 'A'\n    }",
        "dns64" => "dns64",
        "acl" => "acl {\n        block net 10.0.0.0/8\n    }",
        "bufsize" => "bufsize",
        "tls" => "tls cert.pem key.pem",
        "timeouts" => "timeouts {\n        idle 30s\n    }",
        "bind" => "bind 127.0.0.1",
        "ready" => "ready",
        "health" => "health",
        "prometheus" => "prometheus",
        "errors" => "errors",
        "log" => "log",
        "local" => "local",
        "any" => "any",
        "chaos" => "chaos",
        "loadbalance" => "loadbalance",
        "cache" => "cache",
        "rewrite" => "rewrite name a.example. b.example.",
        "header" => "header {\n        response set ra\n    }",
        "autopath" => "autopath @kubernetes",
        "minimal" => "minimal",
        "template" => "template IN A example.org",
        "hosts" => "hosts",
        "k8s_external" => "k8s_external example.org",
        "kubernetes" => "kubernetes cluster.local",
        "loop" => "loop",
        "forward" => "forward . 127.0.0.1",
        "whoami" => "whoami",
        _ => return None,
    })
}

#[test]
fn plugins_flag_lists_exactly_the_directives_that_parse() {
    let p = clusterdns(&["-plugins"]);
    assert!(p.status.success());
    let text = String::from_utf8_lossy(&p.stdout);
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("dns."))
        .collect();
    assert!(
        listed.contains(&"kubernetes") && listed.contains(&"forward"),
        "{text}"
    );
    // Listed in CoreDNS's execution order, each once.
    let pos = |n: &str| COREDNS_DIRECTIVES.iter().position(|c| *c == n);
    let order: Vec<Option<usize>> = listed.iter().map(|n| pos(n)).collect();
    assert!(
        order.iter().all(Option::is_some),
        "not CoreDNS names: {listed:?}"
    );
    assert!(order.windows(2).all(|w| w[0] < w[1]), "order: {listed:?}");
    for name in &listed {
        let line = minimal(name)
            .unwrap_or_else(|| panic!("-plugins lists '{name}': add its minimal line here"));
        let (out, err) = check_text(&format!(".:53 {{\n    {line}\n}}\n"));
        assert!(
            out.status.success(),
            "listed '{name}' does not parse: {err}"
        );
    }
    for name in COREDNS_DIRECTIVES.iter().filter(|n| !listed.contains(n)) {
        let (out, err) = check_text(&format!(".:53 {{\n    {name}\n}}\n"));
        assert_eq!(out.status.code(), Some(1), "unlisted '{name}' parsed");
        assert!(
            err.contains(&format!(
                "Corefile:2:5: {name}: plugin '{name}' is not supported"
            )),
            "{name}: {err}"
        );
    }
    let (out, err) = check_text(".:53 {\n    frobnicate\n}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("unknown directive 'frobnicate'"), "{err}");
}

#[test]
fn sigterm_stops_the_server_with_exit_code_zero_and_removes_the_pidfile() {
    let yaml = std::fs::read_to_string(repo().join("config/demo-cluster.yaml")).expect("yaml");
    let mut srv = common::TestServer::spawn_with_args(
        &common::demo_corefile(),
        &[("demo-cluster.yaml", &yaml)],
        &["-pidfile", "{DIR}/clusterdns.pid"],
    );
    let pid_path = srv.path("clusterdns.pid");
    let child = &mut srv.child;
    let pid = common::eventually(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_path).ok()
    })
    .expect("pidfile written");
    assert_eq!(pid.trim(), child.id().to_string());
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(!pid_path.exists(), "pidfile removed at exit");
}
