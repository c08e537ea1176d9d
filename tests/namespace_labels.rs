//! `namespace_labels` isolates: only namespaces whose labels match are
//! exposed, and a namespace gaining or losing the label at run time appears
//! or disappears, with the API source (through the test API server) and with
//! the `manifests` source (through a rewritten file). Real binary, real UDP.

mod common;
mod support;

use std::time::Duration;

use common::{TestServer, eventually, lines};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service};
use serde_json::json;
use support::apiserver::ApiServer;

const SELECTED: &str = "web.tests.svc.cluster.local.";
const OTHER: &str = "other.default.svc.cluster.local.";

fn ns(name: &str, labels: serde_json::Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("namespace")
}

fn svc(ns: &str, name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]}
    }))
    .expect("service")
}

fn corefile(source: &str) -> String {
    format!(
        r#"
cluster.local:{{PORT}} in-addr.arpa:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local in-addr.arpa {{
        {source}
        namespace_labels team=dns-tests
    }}
}}
"#
    )
}

/// Poll (at most 15 s) until the answer to (name, qtype) satisfies `check`.
fn until(srv: &TestServer, name: &str, qtype: RecordType, check: impl Fn(&Message) -> bool) {
    let reached = eventually(Duration::from_secs(15), || {
        check(&srv.udp(name, qtype)).then_some(())
    });
    assert!(
        reached.is_some(),
        "{name} {qtype} never reached the expected answer; last: {:?}",
        srv.udp(name, qtype)
    );
}

fn is_rcode(rcode: ResponseCode) -> impl Fn(&Message) -> bool {
    move |m| m.metadata.response_code == rcode
}

fn answers(want: &'static str) -> impl Fn(&Message) -> bool {
    move |m| lines(&m.answers) == [want]
}

/// The unlabelled namespace is invisible (records, the namespace name and
/// PTRs alike); the labelled one answers.
fn assert_isolated(srv: &TestServer) {
    let r = srv.udp(SELECTED, RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["web.tests.svc.cluster.local. 5 IN A 10.0.0.1"]
    );
    for (name, qtype) in [
        (OTHER, RecordType::A),
        ("default.svc.cluster.local.", RecordType::A),
        ("2.0.0.10.in-addr.arpa.", RecordType::PTR),
    ] {
        srv.udp_expect(name, qtype, ResponseCode::NXDomain);
    }
}

#[test]
fn api_source_exposes_only_labelled_namespaces_and_follows_label_changes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(ApiServer::start());
    api.apply(&ns("tests", json!({"team": "dns-tests"})));
    api.apply(&ns("default", json!({})));
    api.apply(&svc("tests", "web", "10.0.0.1"));
    api.apply(&svc("default", "other", "10.0.0.2"));
    let srv = TestServer::start(&corefile(&format!("endpoint {}", api.url())), &[]);
    assert_isolated(&srv);

    // `default` gains the label: the selected Namespace watch sees it ADDED.
    api.apply(&ns("default", json!({"team": "dns-tests"})));
    until(
        &srv,
        OTHER,
        RecordType::A,
        answers("other.default.svc.cluster.local. 5 IN A 10.0.0.2"),
    );
    until(
        &srv,
        "default.svc.cluster.local.",
        RecordType::A,
        is_rcode(ResponseCode::NoError),
    );

    // ... and loses it again: the watch sees it DELETED.
    api.apply(&ns("default", json!({"team": "web"})));
    until(&srv, OTHER, RecordType::A, is_rcode(ResponseCode::NXDomain));
    assert_isolated(&srv);
}

#[test]
fn manifests_source_exposes_only_labelled_namespaces_and_follows_rewrites() {
    // `default` is labelled team=web; the rewrite relabels it team=dns-tests.
    let unlabelled =
        std::fs::read_to_string(common::repo().join("tests/fixtures/namespace_labels.yaml"))
            .expect("fixture");
    let labelled = unlabelled.replace(
        "{name: default, labels: {team: web}}",
        "{name: default, labels: {team: dns-tests}}",
    );
    assert_ne!(
        labelled, unlabelled,
        "relabelling `default` found nothing to replace in the fixture"
    );
    let srv = TestServer::start(
        &corefile("manifests cluster.yaml"),
        &[("cluster.yaml", &unlabelled)],
    );
    assert_isolated(&srv);
    srv.udp_expect(
        "c.implied.svc.cluster.local.",
        RecordType::A,
        ResponseCode::NXDomain,
    );

    common::write(&srv.path("cluster.yaml"), &labelled);
    until(
        &srv,
        OTHER,
        RecordType::A,
        answers("other.default.svc.cluster.local. 5 IN A 10.0.0.2"),
    );

    common::write(&srv.path("cluster.yaml"), &unlabelled);
    until(&srv, OTHER, RecordType::A, is_rcode(ResponseCode::NXDomain));
    assert_isolated(&srv);
}
