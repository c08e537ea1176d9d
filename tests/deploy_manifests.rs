//! deploy/ as an operator applies it (`kubectl apply -k deploy/`): every
//! manifest parses into its k8s-openapi type; selectors, ServiceAccounts and
//! role references resolve; the DNS Deployment runs the ConfigMap's Corefile,
//! which `clusterdns check` accepts, with the ports, probes and Service that
//! Corefile needs; the DNS pod is locked down; and every API call each role
//! makes — recorded by the test API server while the role runs — is allowed
//! by the RBAC bound to its ServiceAccount. The negative twins break a
//! selector and an RBAC rule in memory and see the checks report exactly that.

mod common;
mod deploy;
mod support;
#[path = "common/upstream.rs"]
mod upstream;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use clusterdns::corefile::{self, MemFs};
use clusterdns::endpointslice::controller::{self, Settings};
use clusterdns::k8s::leader::ElectionConfig;
use clusterdns::proxy::nft::Tool;
use clusterdns::proxy::shell::{self, Health, NodePortFlag};
use deploy::rbac::{Request, requests, uncovered};
use deploy::{Manifests, checks, load};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use support::apiserver::ApiServer;
use support::fixtures::{poll_until, running_pod};
use tokio_util::sync::CancellationToken;

fn corefile_text(m: &Manifests) -> String {
    m.config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("coredns"))
        .and_then(|c| c.data.as_ref()?.get("Corefile").cloned())
        .expect("ConfigMap coredns with a Corefile")
}

fn parsed_corefile(m: &Manifests) -> corefile::Corefile {
    corefile::parse_str(
        &corefile_text(m),
        Path::new("Corefile"),
        &|_| None,
        &MemFs::new(),
    )
    .expect("the ConfigMap's Corefile parses")
}

#[test]
fn every_manifest_parses_and_is_in_the_kustomization() {
    let m = load();
    let listed: BTreeSet<String> = deploy::kustomization_resources().into_iter().collect();
    let present: BTreeSet<String> = std::fs::read_dir(deploy::dir())
        .expect("deploy/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml lists exactly the manifests"
    );
    assert_eq!(m.deployments.len(), 2, "DNS and controller Deployments");
    assert_eq!(m.daemonsets.len(), 1, "the proxy DaemonSet");
}

#[test]
fn cross_references_resolve() {
    let m = load();
    assert_eq!(checks::selectors(&m), Vec::<String>::new());
    assert_eq!(checks::accounts(&m), Vec::<String>::new());
    assert_eq!(
        checks::dns_wiring(&m, &parsed_corefile(&m)),
        Vec::<String>::new()
    );
    assert_eq!(checks::dns_hardening(&m), Vec::<String>::new());
}

#[test]
fn the_configmap_corefile_passes_clusterdns_check() {
    let m = load();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(&path, corefile_text(&m)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(["check", "-conf"])
        .arg(&path)
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "clusterdns check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_broken_selector_is_reported() {
    let mut m = load();
    let svc = m
        .services
        .iter_mut()
        .find(|s| s.metadata.name.as_deref() == Some("kube-dns"))
        .expect("kube-dns");
    svc.spec.as_mut().expect("spec").selector =
        Some([("k8s-app".to_owned(), "kube-dnz".to_owned())].into());
    let problems = checks::selectors(&m);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("kube-system/kube-dns") && problems[0].contains("selects no pods")
    );

    let mut m = load();
    let d = m
        .deployments
        .iter_mut()
        .find(|d| d.metadata.name.as_deref() == Some("coredns"));
    let spec = d.and_then(|d| d.spec.as_mut()).expect("coredns spec");
    spec.selector.match_labels = Some([("k8s-app".to_owned(), "other".to_owned())].into());
    let problems = checks::selectors(&m);
    assert!(
        problems.iter().any(|p| p.contains("Deployment/coredns")),
        "{problems:?}"
    );
}

/// The calls the DNS server makes while it starts and serves, with the
/// ConfigMap's Corefile (ports moved to free loopback ones, its API reached
/// through a kubeconfig, `forward` to a loopback upstream).
fn dns_requests() -> BTreeSet<Request> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(ApiServer::start());
    let _guard = rt.enter();
    server.apply_json::<Service>(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}}));
    let up = upstream::Upstream::start();
    let m = load();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, None);
    let edits = [
        (".:53 {", ".:{PORT} {\n    bind 127.0.0.1".to_owned()),
        ("    health {", "    health 127.0.0.1:{HEALTH} {".to_owned()),
        ("    ready\n", "    ready 127.0.0.1:{READY}\n".to_owned()),
        (
            "    prometheus :9153",
            "    prometheus 127.0.0.1:{METRICS}".to_owned(),
        ),
        (
            "forward . /etc/resolv.conf",
            format!("forward . {}", up.to()),
        ),
        (
            "       pods insecure",
            format!(
                "       kubeconfig {}\n       pods insecure",
                kubeconfig.display()
            ),
        ),
    ];
    let text = edits.iter().fold(corefile_text(&m), |t, (from, to)| {
        assert!(
            t.contains(from),
            "the ConfigMap's Corefile changed shape: {from}"
        );
        t.replacen(from, to, 1)
    });
    let srv = common::TestServer::spawn(&text, &[]);
    let ready = common::eventually(Duration::from_secs(20), || {
        srv.http_get(srv.ready_port, "/ready")
            .filter(|(c, _)| *c == 200)
    });
    assert!(ready.is_some(), "DNS never ready:\n{}", srv.log());
    let a = srv.udp(
        "web.default.svc.cluster.local.",
        hickory_proto::rr::RecordType::A,
    );
    assert_eq!(a.answers.len(), 1, "the DNS server answers from the API");
    requests(&server.request_log())
}

/// The calls of the endpoints controller through a Service's life, with
/// leader election.
fn controller_requests() -> BTreeSet<Request> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let server = ApiServer::start().await;
        let pod = |name: &str, ready: bool| {
            running_pod("default", name, "web", "10.244.1.2", ready, json!({"containerPort": 80}))
        };
        server.apply_json::<Pod>(pod("web-1", true));
        server.apply_json::<Service>(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.5", "ports": [{"port": 80}]}}));
        let stop = CancellationToken::new();
        let election = ElectionConfig {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(200),
            ..ElectionConfig::new("clusterdns-endpoints-controller")
        };
        let task = tokio::spawn(controller::run(
            server.client(),
            Settings::default(),
            Some(election),
            stop.clone(),
        ));
        let has = |verb: &str, what: &str| {
            (server.request_log().iter()).any(|l| l.starts_with(verb) && l.contains(what))
        };
        poll_until("slice and Endpoints created", || {
            has("CREATE", "endpointslices") && has("CREATE", "endpoints ")
        })
        .await;
        server.apply_json::<Pod>(pod("web-1", false));
        poll_until("slice and Endpoints updated", || {
            has("REPLACE", "endpointslices") && has("REPLACE", "endpoints ")
        })
        .await;
        assert!(server.delete::<Service>("default", "web"));
        poll_until("slice and Endpoints deleted", || {
            has("DELETE", "endpointslices") && has("DELETE", "endpoints ")
        })
        .await;
        // Mirroring: a selector-less Service with hand-made Endpoints.
        server.apply_json::<Service>(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.6", "ports": [{"port": 5432}]}}));
        server.apply_json::<Endpoints>(json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "db", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]}));
        let mirrored = || {
            server.list::<EndpointSlice>().iter().any(|s| {
                s["metadata"]["labels"]["kubernetes.io/service-name"] == "db"
            })
        };
        poll_until("hand-made Endpoints mirrored", mirrored).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("controller stops")
            .expect("task")
            .expect("run");
        requests(&server.request_log())
    })
}

/// The calls of the proxy's watches (its nft is `false`: the rules are not
/// the point here, the API calls are).
fn proxy_requests() -> BTreeSet<Request> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let server = ApiServer::start().await;
        let stop = CancellationToken::new();
        let settings = shell::Settings {
            node: "node-a".into(),
            opts: Default::default(),
            nodeports: NodePortFlag::Primary,
            sync_period: Duration::from_secs(30),
            min_sync_period: Duration::from_millis(100),
            metrics: Default::default(),
            nft: Tool::named("false"),
            conntrack: Tool::named("false"),
        };
        let task = tokio::spawn(shell::run(
            server.client(),
            settings,
            Arc::new(Health::new(Duration::from_secs(30))),
            stop.clone(),
        ));
        poll_until("the proxy watches its three kinds", || {
            let r = requests(&server.request_log());
            ["services", "endpointslices", "nodes"]
                .iter()
                .all(|k| r.iter().any(|q| q.resource == *k && q.verb == "watch"))
        })
        .await;
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        requests(&server.request_log())
    })
}

fn assert_covered(m: &Manifests, sa: &str, reqs: &BTreeSet<Request>, must: &[&str]) {
    for kind in must {
        assert!(
            reqs.iter().any(|r| r.resource == *kind),
            "{sa}: no call on {kind} seen: {reqs:?}"
        );
    }
    assert_eq!(
        uncovered(m, "kube-system", sa, reqs),
        Vec::<String>::new(),
        "{sa}"
    );
}

#[test]
fn rbac_covers_every_call_each_role_makes() {
    let m = load();
    assert_covered(
        &m,
        "coredns",
        &dns_requests(),
        &["services", "endpointslices"],
    );
    assert_covered(
        &m,
        "clusterdns-endpoints-controller",
        &controller_requests(),
        &[
            "services",
            "pods",
            "nodes",
            "endpointslices",
            "endpoints",
            "leases",
        ],
    );
    assert_covered(
        &m,
        "clusterdns-proxy",
        &proxy_requests(),
        &["services", "endpointslices", "nodes"],
    );
}

#[test]
fn a_missing_rbac_rule_is_reported() {
    let mut m = load();
    let role = m
        .cluster_roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("clusterdns:endpoints-controller"))
        .expect("controller ClusterRole");
    for rule in role.rules.iter_mut().flatten() {
        if rule
            .resources
            .iter()
            .flatten()
            .any(|r| r == "endpointslices")
        {
            rule.verbs.retain(|v| v != "update");
        }
    }
    let reqs: BTreeSet<Request> = requests(&[
        "LIST endpointslices".to_owned(),
        "REPLACE endpointslices default/web-abc".to_owned(),
        "REPLACE leases kube-system/clusterdns-endpoints-controller".to_owned(),
    ]);
    let missing = uncovered(&m, "kube-system", "clusterdns-endpoints-controller", &reqs);
    assert_eq!(
        missing,
        [
            "kube-system/clusterdns-endpoints-controller may not update discovery.k8s.io/endpointslices (in default)"
        ]
    );
    // A Role grants only in its own namespace.
    let elsewhere = requests(&["REPLACE leases default/x".to_owned()]);
    assert_eq!(
        uncovered(
            &m,
            "kube-system",
            "clusterdns-endpoints-controller",
            &elsewhere
        )
        .len(),
        1
    );
}
