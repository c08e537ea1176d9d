//! `multicluster clusterset.local` end to end: the real binary watches the
//! test API server's ServiceImports and imported EndpointSlices and answers
//! KEP-1645's examples to the real `dig` over UDP; this cluster's own Services
//! keep answering in `cluster.local`, and without the option ServiceImports
//! are never even listed.

mod common;
mod support;

use std::time::Duration;

use clusterdns::watch::mcs::ServiceImport;
use common::{TestServer, dig, dig_section as section, eventually, require};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;

fn corefile(api: &ApiServer, multicluster: bool) -> String {
    let option = if multicluster {
        "multicluster clusterset.local"
    } else {
        ""
    };
    format!(
        "cluster.local:{{PORT}} clusterset.local:{{PORT}} {{\n    bind 127.0.0.1\n    \
         kubernetes cluster.local clusterset.local {{\n        endpoint {}\n        {option}\n    }}\n}}\n",
        api.url()
    )
}

fn import(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"name": name, "namespace": "test"}, "spec": spec
    })
}

/// An EndpointSlice an MCS implementation imported from `cluster`.
fn imported(name: &str, cluster: &str, pets: &[(&str, &str)]) -> Value {
    let endpoints: Vec<Value> = pets
        .iter()
        .map(|(host, ip)| json!({"addresses": [ip], "hostname": host, "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "test", "labels": {
            "multicluster.kubernetes.io/service-name": "headless",
            "multicluster.kubernetes.io/source-cluster": cluster
        }},
        "addressType": "IPv4",
        "ports": [{"name": "https", "protocol": "TCP", "port": 443}],
        "endpoints": endpoints
    })
}

/// The clusterset of KEP-1645's examples, beside this cluster's own
/// `myservice` and `headless` Services; the runtime serves the API while it lives.
fn clusterset() -> (tokio::runtime::Runtime, ApiServer) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(ApiServer::start());
    api.apply_json::<Namespace>(json!({"metadata": {"name": "test"}}));
    api.apply_json::<ServiceImport>(import(
        "myservice",
        json!({"type": "ClusterSetIP", "ips": ["10.42.42.42"],
               "ports": [{"name": "https", "protocol": "TCP", "port": 443}]}),
    ));
    api.apply_json::<ServiceImport>(import("headless", json!({"type": "Headless"})));
    api.apply_json::<EndpointSlice>(imported(
        "headless-a",
        "clustera",
        &[("my-pet-1", "10.3.0.100"), ("my-pet-2", "10.3.0.101")],
    ));
    api.apply_json::<EndpointSlice>(imported(
        "headless-b",
        "clusterb",
        &[("my-pet-1", "10.10.10.10")],
    ));
    api.apply_json::<Service>(json!({
        "metadata": {"name": "myservice", "namespace": "test"},
        "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "https", "port": 443}]}
    }));
    api.apply_json::<Service>(json!({
        "metadata": {"name": "headless", "namespace": "test"},
        "spec": {"clusterIP": "None", "ports": [{"name": "https", "port": 443}]}
    }));
    api.apply_json::<EndpointSlice>(json!({
        "metadata": {"name": "headless-local", "namespace": "test",
                     "labels": {"kubernetes.io/service-name": "headless"}},
        "addressType": "IPv4",
        "ports": [{"name": "https", "protocol": "TCP", "port": 443}],
        "endpoints": [{"addresses": ["10.1.1.1"], "hostname": "local-0"}]
    }));
    (rt, api)
}

/// dig's status and answer lines (sorted) for `name` `qtype`.
fn ask(tool: &std::path::Path, srv: &TestServer, name: &str, qtype: &str) -> (String, Vec<String>) {
    let out = dig(tool, srv, &["+notcp", qtype, name]);
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("?")
        .to_string();
    let mut answer = section(&out, "ANSWER");
    answer.sort();
    (status, answer)
}

#[test]
fn clusterset_names_answer_from_service_imports_as_kep_1645_specifies() {
    let Some(tool) = require("dig") else { return };
    let (_rt, api) = clusterset();
    let srv = TestServer::start(&corefile(&api, true), &[]);
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // §2.3.1: the ClusterSetIP; this cluster's Service keeps its own zone.
        (
            "myservice.test.svc.clusterset.local.",
            "A",
            "NOERROR",
            &["myservice.test.svc.clusterset.local. 5 IN A 10.42.42.42"],
        ),
        (
            "myservice.test.svc.cluster.local.",
            "A",
            "NOERROR",
            &["myservice.test.svc.cluster.local. 5 IN A 10.96.0.5"],
        ),
        // §2.3.2
        (
            "_https._tcp.myservice.test.svc.clusterset.local.",
            "SRV",
            "NOERROR",
            &[
                "_https._tcp.myservice.test.svc.clusterset.local. 5 IN SRV 0 100 443 myservice.test.svc.clusterset.local.",
            ],
        ),
        // §2.3.4: no per-cluster name for a ClusterSetIP service.
        (
            "clustera.myservice.test.svc.clusterset.local.",
            "A",
            "NXDOMAIN",
            &[],
        ),
        // §2.4.1: every cluster's endpoints, none of this cluster's slice.
        (
            "headless.test.svc.clusterset.local.",
            "A",
            "NOERROR",
            &[
                "headless.test.svc.clusterset.local. 5 IN A 10.10.10.10",
                "headless.test.svc.clusterset.local. 5 IN A 10.3.0.100",
                "headless.test.svc.clusterset.local. 5 IN A 10.3.0.101",
            ],
        ),
        (
            "headless.test.svc.cluster.local.",
            "A",
            "NOERROR",
            &["headless.test.svc.cluster.local. 5 IN A 10.1.1.1"],
        ),
        (
            "my-pet-1.clustera.headless.test.svc.clusterset.local.",
            "A",
            "NOERROR",
            &["my-pet-1.clustera.headless.test.svc.clusterset.local. 5 IN A 10.3.0.100"],
        ),
        (
            "my-pet-1.clusterb.headless.test.svc.clusterset.local.",
            "A",
            "NOERROR",
            &["my-pet-1.clusterb.headless.test.svc.clusterset.local. 5 IN A 10.10.10.10"],
        ),
        // Without the cluster id: NXDOMAIN (CoreDNS).
        (
            "my-pet-1.headless.test.svc.clusterset.local.",
            "A",
            "NXDOMAIN",
            &[],
        ),
        // §2.4.2: the union over the clusters.
        (
            "_https._tcp.headless.test.svc.clusterset.local.",
            "SRV",
            "NOERROR",
            &[
                "_https._tcp.headless.test.svc.clusterset.local. 5 IN SRV 0 33 443 my-pet-1.clustera.headless.test.svc.clusterset.local.",
                "_https._tcp.headless.test.svc.clusterset.local. 5 IN SRV 0 33 443 my-pet-1.clusterb.headless.test.svc.clusterset.local.",
                "_https._tcp.headless.test.svc.clusterset.local. 5 IN SRV 0 33 443 my-pet-2.clustera.headless.test.svc.clusterset.local.",
            ],
        ),
        ("nothere.test.svc.clusterset.local.", "A", "NXDOMAIN", &[]),
    ];
    for (name, qtype, status, answer) in cases {
        let got = ask(&tool, &srv, name, qtype);
        let want: Vec<String> = answer.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, (status.to_string(), want), "{name} {qtype}");
    }

    // A third cluster exports its endpoints: the watch brings them in.
    api.apply_json::<EndpointSlice>(imported(
        "headless-c",
        "clusterc",
        &[("my-pet-1", "10.20.0.1")],
    ));
    let seen = eventually(Duration::from_secs(15), || {
        let (_, answer) = ask(
            &tool,
            &srv,
            "my-pet-1.clusterc.headless.test.svc.clusterset.local.",
            "A",
        );
        (answer == ["my-pet-1.clusterc.headless.test.svc.clusterset.local. 5 IN A 10.20.0.1"])
            .then_some(())
    });
    assert!(seen.is_some(), "the new cluster's endpoint never answered");
    // The import goes away: its name with it.
    assert!(api.delete::<ServiceImport>("test", "myservice"));
    let gone = eventually(Duration::from_secs(15), || {
        let (status, _) = ask(&tool, &srv, "myservice.test.svc.clusterset.local.", "A");
        (status == "NXDOMAIN").then_some(())
    });
    assert!(gone.is_some(), "a deleted ServiceImport kept answering");
}

#[test]
fn service_imports_are_watched_only_with_the_option() {
    let (_rt, api) = clusterset();
    let srv = TestServer::start(&corefile(&api, false), &[]);
    let r = srv.udp(
        "myservice.test.svc.clusterset.local.",
        hickory_proto::rr::RecordType::A,
    );
    // Without the option clusterset.local is a plain cluster zone: the Service answers.
    assert_eq!(
        common::lines(&r.answers),
        ["myservice.test.svc.clusterset.local. 5 IN A 10.96.0.5"]
    );
    let log = api.request_log();
    assert!(log.iter().any(|l| l.contains("services")), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains("serviceimports")),
        "ServiceImports listed without multicluster: {log:?}"
    );
    drop(srv);
    let _srv = TestServer::start(&corefile(&api, true), &[]);
    let log = api.request_log();
    assert!(
        log.iter().any(|l| l.starts_with("LIST serviceimports")),
        "{log:?}"
    );
}
