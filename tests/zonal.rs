//! `zonal` end to end: the real binary watches the test API server's
//! EndpointSlices (with each endpoint's `zone`) and answers CoreDNS 1.14.7's
//! zone-scoped names (zonal_test.go's cases) to the real `dig` over UDP; an
//! endpoint moving zone changes the answer; without the option the names do
//! not exist.

mod common;
mod support;

use std::path::Path;
use std::time::Duration;

use common::{TestServer, dig, dig_section as section, eventually, require};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;

fn corefile(api: &ApiServer, zonal: bool) -> String {
    let option = if zonal { "zonal" } else { "" };
    format!(
        "cluster.local:{{PORT}} {{\n    bind 127.0.0.1\n    \
         kubernetes cluster.local {{\n        endpoint {}\n        {option}\n    }}\n}}\n",
        api.url()
    )
}

/// The slice of `hdls` with these (address, zone) endpoints.
fn hdls_slice(endpoints: &[(&str, &str)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, zone)| json!({"addresses": [ip], "zone": zone, "conditions": {"ready": true}}))
        .collect();
    json!({
        "metadata": {"name": "hdls-slice", "namespace": "testns",
                     "labels": {"kubernetes.io/service-name": "hdls"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
        "endpoints": endpoints
    })
}

/// zonal_test.go's fixture: headless `hdls` over us-west-2a/2b, ClusterIP `clstr`.
fn cluster() -> (tokio::runtime::Runtime, ApiServer) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(ApiServer::start());
    api.apply_json::<Namespace>(json!({"metadata": {"name": "testns"}}));
    api.apply_json::<Service>(json!({
        "metadata": {"name": "hdls", "namespace": "testns"},
        "spec": {"clusterIP": "None"}
    }));
    api.apply_json::<Service>(json!({
        "metadata": {"name": "clstr", "namespace": "testns"},
        "spec": {"clusterIP": "10.0.0.10", "ports": [{"name": "http", "port": 80}]}
    }));
    api.apply_json::<EndpointSlice>(hdls_slice(&[
        ("172.0.0.1", "us-west-2a"),
        ("172.0.0.2", "us-west-2b"),
        ("172.0.0.3", "us-west-2b"),
    ]));
    (rt, api)
}

/// dig's status, answer and additional lines (each sorted) for `name` `qtype`.
fn ask(
    tool: &Path,
    srv: &TestServer,
    name: &str,
    qtype: &str,
) -> (String, Vec<String>, Vec<String>) {
    let out = dig(tool, srv, &["+notcp", qtype, name]);
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("?")
        .to_string();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let extra = section(&out, "ADDITIONAL")
        .into_iter()
        .filter(|l| !l.starts_with(';'))
        .collect();
    (status, sorted(section(&out, "ANSWER")), sorted(extra))
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

#[test]
fn zone_scoped_names_answer_as_coredns_defines_them() {
    let Some(tool) = require("dig") else { return };
    let (_rt, api) = cluster();
    let srv = TestServer::start(&corefile(&api, true), &[]);
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    );
    let cases: &[Row] = &[
        (
            "us-west-2a.pin._zone.hdls.testns.svc.cluster.local.",
            "A",
            "NOERROR",
            &["us-west-2a.pin._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1"],
        ),
        (
            "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.",
            "A",
            "NOERROR",
            &[
                "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
                "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
            ],
        ),
        (
            "us-west-2c.pin._zone.hdls.testns.svc.cluster.local.",
            "A",
            "NOERROR",
            &[],
        ),
        (
            "us-west-2a.prefer._zone.hdls.testns.svc.cluster.local.",
            "A",
            "NOERROR",
            &["us-west-2a.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1"],
        ),
        (
            "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.",
            "A",
            "NOERROR",
            &[
                "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1",
                "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
                "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
            ],
        ),
        (
            "us-west-2a.pin._zone.ghost.testns.svc.cluster.local.",
            "A",
            "NXDOMAIN",
            &[],
        ),
        (
            "us-west-2a.florp._zone.hdls.testns.svc.cluster.local.",
            "A",
            "NXDOMAIN",
            &[],
        ),
        (
            "us-west-2a.pin._zone.clstr.testns.svc.cluster.local.",
            "A",
            "NXDOMAIN",
            &[],
        ),
        (
            "us-west-2c.pin._zone.hdls.testns.svc.cluster.local.",
            "TXT",
            "NOERROR",
            &[],
        ),
        (
            "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.",
            "SRV",
            "NOERROR",
            &[
                "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 50 80 172-0-0-2.hdls.testns.svc.cluster.local.",
                "us-west-2b.pin._zone.hdls.testns.svc.cluster.local. 5 IN SRV 0 50 80 172-0-0-3.hdls.testns.svc.cluster.local.",
            ],
        ),
    ];
    for (name, qtype, status, answer) in cases {
        let (got_status, got_answer, _) = ask(&tool, &srv, name, qtype);
        assert_eq!(
            (got_status, got_answer),
            (status.to_string(), strings(answer)),
            "{name} {qtype}"
        );
    }
    // SRV glue is zone-filtered too.
    let (_, _, extra) = ask(
        &tool,
        &srv,
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.",
        "SRV",
    );
    assert_eq!(
        extra,
        strings(&[
            "172-0-0-2.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.2",
            "172-0-0-3.hdls.testns.svc.cluster.local. 5 IN A 172.0.0.3",
        ])
    );

    // 172.0.0.1 moves to us-west-2b: us-west-2a empties (NODATA), 2b grows.
    api.apply_json::<EndpointSlice>(hdls_slice(&[
        ("172.0.0.1", "us-west-2b"),
        ("172.0.0.2", "us-west-2b"),
        ("172.0.0.3", "us-west-2b"),
    ]));
    let moved = eventually(Duration::from_secs(15), || {
        let (status, answer, _) = ask(
            &tool,
            &srv,
            "us-west-2a.pin._zone.hdls.testns.svc.cluster.local.",
            "A",
        );
        (status == "NOERROR" && answer.is_empty()).then_some(())
    });
    assert!(moved.is_some(), "the zone change never reached the answer");
    let (_, answer, _) = ask(
        &tool,
        &srv,
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.",
        "A",
    );
    assert_eq!(answer.len(), 3, "{answer:?}");
}

#[test]
fn without_the_option_zone_scoped_names_do_not_exist() {
    let Some(tool) = require("dig") else { return };
    let (_rt, api) = cluster();
    let srv = TestServer::start(&corefile(&api, false), &[]);
    let (status, answer, _) = ask(
        &tool,
        &srv,
        "us-west-2a.pin._zone.hdls.testns.svc.cluster.local.",
        "A",
    );
    assert_eq!((status.as_str(), answer.len()), ("NXDOMAIN", 0));
    // The plain headless name is unaffected.
    let (status, answer, _) = ask(&tool, &srv, "hdls.testns.svc.cluster.local.", "A");
    assert_eq!((status.as_str(), answer.len()), ("NOERROR", 3));
}
