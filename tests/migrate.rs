//! `clusterdns migrate` through the real binary: exit codes, `FILE:LINE:`
//! notes on stderr, the output accepted by `clusterdns check`, and a server
//! started from a migrated kube-dns ConfigMap answering each stub domain from
//! its own (loopback) servers and everything else from the upstreams.

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::net::IpAddr;
use std::process::{Command, Output};

use common::{TestServer, lines, repo};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use upstream::Upstream;

fn clusterdns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(args)
        .output()
        .expect("run clusterdns")
}

/// `clusterdns migrate FILE` on `text` written as `name`: (exit code, stdout, stderr).
fn migrate(name: &str, text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write input");
    let out = clusterdns(&["migrate", path.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// `clusterdns check -conf` on `corefile`: (success, stderr).
fn check(corefile: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(&path, corefile).expect("write Corefile");
    let out = clusterdns(&["check", "-conf", path.to_str().expect("utf8")]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A kube-dns ConfigMap as `kubectl get cm kube-dns -n kube-system -o yaml` prints it.
fn kube_dns_configmap(stub_domains: &str, upstreams: &str) -> String {
    format!(
        "apiVersion: v1\ndata:\n  stubDomains: |\n    {stub_domains}\n  upstreamNameservers: |\n    {upstreams}\nkind: ConfigMap\nmetadata:\n  name: kube-dns\n  namespace: kube-system\n"
    )
}

#[test]
fn the_kubeadm_corefile_migrates_to_itself_with_exit_0() {
    let path = repo().join("config/Corefile.kubeadm");
    let out = clusterdns(&["migrate", path.to_str().expect("utf8")]);
    let want = std::fs::read_to_string(&path).expect("kubeadm");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_kube_dns_configmap_migrates_to_a_corefile_that_check_accepts() {
    let cm = kube_dns_configmap(
        r#"{"acme.local": ["1.2.3.4"], "corp.example": ["10.0.0.10:5353", "10.0.0.11"]}"#,
        r#"["8.8.8.8", "8.8.4.4"]"#,
    );
    let (code, corefile, stderr) = migrate("kube-dns.yaml", &cm);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        corefile.contains("forward . 8.8.8.8 8.8.4.4 {")
            && corefile.contains("acme.local:53 {")
            && corefile.contains("forward . 10.0.0.10:5353 10.0.0.11\n"),
        "{corefile}"
    );
    // Only the assumption about the cluster domain, which changes nothing.
    assert!(
        stderr.contains("kube-dns.yaml: the cluster domain") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let (ok, why) = check(&corefile);
    assert!(ok, "clusterdns check refuses:\n{corefile}\n{why}");
}

#[test]
fn federations_are_reported_with_their_line_and_exit_1() {
    let cm = "apiVersion: v1\ndata:\n  federations: |\n    {\"myfederation\": \"example.com\"}\nkind: ConfigMap\nmetadata:\n  name: kube-dns\n";
    let (code, corefile, stderr) = migrate("kube-dns.yaml", cm);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("kube-dns.yaml:3: data.federations: federations are not supported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the result behaves differently"),
        "{stderr}"
    );
    assert!(check(&corefile).0, "{corefile}");
}

#[test]
fn malformed_stub_domains_json_is_an_error_naming_the_key() {
    let cm = kube_dns_configmap(r#"{"acme.local": ["1.2.3.4"]"#, r#"["8.8.8.8"]"#);
    let (code, corefile, stderr) = migrate("kube-dns.yaml", &cm);
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(corefile, "", "nothing printed on a bad input");
    // The JSON starts on line 4, after `stubDomains: |`.
    assert!(
        stderr.contains("kube-dns.yaml:4: data.stubDomains: not valid JSON for a map"),
        "{stderr}"
    );
}

#[test]
fn a_refused_upstream_and_a_missing_plugin_are_named_and_dropped_with_exit_1() {
    let input = ".:53 {\n    errors\n    forward . https://1.1.1.1\n    etcd example.org\n    cache 30\n}\n";
    let (code, corefile, stderr) = migrate("Corefile", input);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Corefile:3: forward: 'https' is not supported as a destination protocol"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Corefile:4: etcd: plugin 'etcd' is not supported by clusterdns"),
        "{stderr}"
    );
    assert_eq!(corefile, ".:53 {\n    errors\n    cache 30\n}\n");
    assert!(check(&corefile).0);
}

#[test]
fn a_missing_file_is_exit_64() {
    let out = clusterdns(&["migrate", "/nonexistent/kube-dns.yaml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

const CLUSTER: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.0.5}\n";

/// The migrated Corefile made runnable here, with nothing else changed: its
/// blocks on a free loopback port, health/ready/metrics on free ports, and the
/// cluster from a manifest instead of an API server.
fn on_loopback(corefile: &str) -> String {
    let edits = [
        ("    health {", "    health 127.0.0.1:{HEALTH} {"),
        ("    ready\n", "    ready 127.0.0.1:{READY}\n"),
        ("    prometheus :9153", "    prometheus 127.0.0.1:{METRICS}"),
        (
            "        pods insecure",
            "        manifests cluster.yaml\n        pods insecure",
        ),
    ];
    let text = edits.iter().fold(corefile.to_string(), |t, (from, to)| {
        assert!(t.contains(from), "migrated Corefile has no '{from}':\n{t}");
        t.replacen(from, to, 1)
    });
    assert_eq!(text.matches(":53 {").count(), 3, "{text}");
    text.replace(":53 {", ":{PORT} {\n    bind 127.0.0.1")
}

/// The address `up` answers every name with: which server answered shows in the answer.
fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

#[test]
fn a_server_from_a_migrated_configmap_forwards_each_stub_domain_to_its_servers() {
    // One loopback upstream per kube-dns nameserver; each answers every name
    // asked here with its own address.
    let servers: Vec<Upstream> = (0..5).map(|_| Upstream::start()).collect();
    let [acme, corp1, corp2, up1, up2] = &servers[..] else {
        unreachable!()
    };
    let external: Vec<String> = (0..20).map(|i| format!("n{i}.example.org.")).collect();
    let names: Vec<&str> = ["www.acme.local.", "db.corp.example."]
        .into_iter()
        .chain(external.iter().map(String::as_str))
        .collect();
    for (i, s) in servers.iter().enumerate() {
        for n in &names {
            s.answer(n, &[ip(u8::try_from(i + 1).expect("small"))]);
        }
    }
    let cm = kube_dns_configmap(
        &format!(
            r#"{{"acme.local": ["{}"], "corp.example": ["{}", "{}"]}}"#,
            acme.to(),
            corp1.to(),
            corp2.to()
        ),
        &format!(r#"["{}", "{}"]"#, up1.to(), up2.to()),
    );
    let (code, corefile, stderr) = migrate("kube-dns.yaml", &cm);
    assert_eq!(code, Some(0), "{stderr}");
    let srv = TestServer::start(&on_loopback(&corefile), &[("cluster.yaml", CLUSTER)]);

    let answer = |name: &str| {
        let m = srv.udp_expect(name, RecordType::A, ResponseCode::NoError);
        lines(&m.answers)
    };
    let from = |name: &str, i: usize| {
        format!("{name} 30 IN A {}", ip(u8::try_from(i + 1).expect("small")))
    };

    assert_eq!(answer("www.acme.local."), [from("www.acme.local.", 0)]);
    let corp = answer("db.corp.example.");
    assert!(
        corp == [from("db.corp.example.", 1)] || corp == [from("db.corp.example.", 2)],
        "db.corp.example. answered by a server not its own: {corp:?}"
    );
    for n in &external {
        let got = answer(n);
        assert!(
            got == [from(n, 3)] || got == [from(n, 4)],
            "{n} answered by a server that is not an upstream: {got:?}"
        );
    }
    // The cluster itself still answers from the kubernetes plugin.
    assert_eq!(
        answer("web.default.svc.cluster.local."),
        ["web.default.svc.cluster.local. 30 IN A 10.96.0.5"]
    );

    // Each name reached only its own servers.
    let asked = |s: &Upstream, n: &str| s.queries_for(n);
    assert_eq!(asked(acme, "www.acme.local."), 1);
    assert_eq!(
        asked(corp1, "db.corp.example.") + asked(corp2, "db.corp.example."),
        1
    );
    for s in [corp1, corp2, up1, up2] {
        assert_eq!(asked(s, "www.acme.local."), 0);
    }
    for s in [acme, up1, up2] {
        assert_eq!(asked(s, "db.corp.example."), 0);
    }
    let by_upstream: Vec<usize> = [up1, up2]
        .iter()
        .map(|s| external.iter().map(|n| asked(s, n)).sum())
        .collect();
    assert_eq!(
        by_upstream.iter().sum::<usize>(),
        external.len(),
        "{by_upstream:?}"
    );
    // Both upstreams are in the forward list (random policy: with 20 names,
    // one upstream getting all of them has probability 2^-19).
    assert!(by_upstream.iter().all(|&n| n > 0), "{by_upstream:?}");
    for s in [acme, corp1, corp2] {
        let stray: usize = external.iter().map(|n| asked(s, n)).sum();
        assert_eq!(stray, 0, "a stub server was asked an external name");
    }
}
