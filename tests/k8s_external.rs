//! `k8s_external` end to end: the real binary watches the test API server
//! (Services with `spec.externalIPs` and `status.loadBalancer.ingress`, a
//! headless Service's EndpointSlice) and `dig` asks over real UDP on
//! loopback. Cases follow CoreDNS's README (its `test.default` example) and
//! its external_test.go; a LoadBalancer IP changed in the Service's status
//! reaches the answers without a restart.

mod common;
mod support;

use std::time::Duration;

use common::{TestServer, dig, dig_flags, dig_section, eventually, lines, require};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use support::apiserver::ApiServer;

const COREFILE: &str = r#"
example.org:{PORT} cluster.local:{PORT} in-addr.arpa:{PORT} {
    bind 127.0.0.1
    kubernetes cluster.local {
        endpoint URL
    }
    k8s_external example.org in-addr.arpa {
        headless
    }
}
"#;

/// The README's example: headless, with an external IP.
fn readme_test() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "test", "namespace": "default"},
        "spec": {"clusterIP": "None", "externalIPs": ["192.168.200.123"], "type": "ClusterIP"}
    }))
    .expect("service")
}

/// A LoadBalancer Service whose ingress IP is `lb_ip`.
fn lb(lb_ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "lb", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    }))
    .expect("service")
}

/// A headless Service `db` and its slice: endpoint `db-0` at 10.244.1.5.
fn db() -> (Service, EndpointSlice) {
    let svc = serde_json::from_value(json!({
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
    }))
    .expect("service");
    let slice = serde_json::from_value(json!({
        "metadata": {
            "name": "db-a", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "db"}
        },
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}}]
    }))
    .expect("slice");
    (svc, slice)
}

fn cluster(api: &ApiServer) -> TestServer {
    api.apply::<Namespace>(
        &serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("namespace"),
    );
    api.apply(&readme_test());
    api.apply(&lb("203.0.113.10"));
    let (svc, slice) = db();
    api.apply(&svc);
    api.apply(&slice);
    TestServer::start(&COREFILE.replace("URL", &api.url()), &[])
}

#[test]
fn dig_gets_external_addresses_srv_ptr_and_the_apex_from_the_api_server() {
    let Some(tool) = require("dig") else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(ApiServer::start());
    let srv = cluster(&api);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["A", "test.default.example.org"],
            &["test.default.example.org. 5 IN A 192.168.200.123"],
        ),
        (
            &["A", "lb.default.example.org"],
            &["lb.default.example.org. 5 IN A 203.0.113.10"],
        ),
        (
            &["SRV", "_http._tcp.lb.default.example.org"],
            &["_http._tcp.lb.default.example.org. 5 IN SRV 0 100 80 lb.default.example.org."],
        ),
        (
            &["-x", "203.0.113.10"],
            &["10.113.0.203.in-addr.arpa. 5 IN PTR lb.default.example.org."],
        ),
        (
            &["SOA", "example.org"],
            &[
                "example.org. 5 IN SOA ns1.dns.example.org. hostmaster.dns.example.org. 0 7200 1800 86400 5",
            ],
        ),
        (
            &["NS", "example.org"],
            &["example.org. 5 IN NS ns1.dns.example.org."],
        ),
        (
            &["A", "db.default.example.org"],
            &["db.default.example.org. 5 IN A 10.244.1.5"],
        ),
        (
            &["SRV", "db.default.example.org"],
            &["db.default.example.org. 5 IN SRV 0 100 5432 db-0.db.default.example.org."],
        ),
        (
            &["A", "db-0.db.default.example.org"],
            &["db-0.db.default.example.org. 5 IN A 10.244.1.5"],
        ),
        // The kubernetes plugin in the same block still answers its zone.
        (
            &["A", "lb.default.svc.cluster.local"],
            &["lb.default.svc.cluster.local. 5 IN A 10.96.0.20"],
        ),
    ];
    for (args, want) in cases {
        let out = dig(&tool, &srv, args);
        assert!(out.contains("status: NOERROR"), "{args:?}: {out}");
        assert!(
            dig_flags(&out).contains(" aa"),
            "{args:?}: AA flag missing: {out}"
        );
        // The SOA serial is the time of the index's last change: compare the rest.
        let got: Vec<String> = dig_section(&out, "ANSWER")
            .into_iter()
            .map(|l| zero_soa_serial(&l))
            .collect();
        assert_eq!(got, *want, "{args:?}: {out}");
    }
    for args in [
        &["A", "nope.default.example.org"][..],
        &["A", "db-1.db.default.example.org"],
        &["A", "web.nowhere.example.org"],
    ] {
        let out = dig(&tool, &srv, args);
        assert!(out.contains("status: NXDOMAIN"), "{args:?}: {out}");
        let soa = dig_section(&out, "AUTHORITY");
        assert_eq!(soa.len(), 1, "{args:?}: {out}");
        assert!(
            soa[0].starts_with("example.org. 5 IN SOA ns1.dns.example.org."),
            "{args:?}: {out}"
        );
    }
    let out = dig(&tool, &srv, &["AAAA", "lb.default.example.org"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(dig_section(&out, "ANSWER").is_empty(), "NODATA: {out}");
}

#[test]
fn a_changed_load_balancer_ip_in_the_service_status_reaches_the_answers() {
    let Some(tool) = require("dig") else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(ApiServer::start());
    let srv = cluster(&api);
    let name = "lb.default.example.org.";
    assert_eq!(
        lines(&srv.udp(name, RecordType::A).answers),
        ["lb.default.example.org. 5 IN A 203.0.113.10"]
    );
    api.apply(&lb("203.0.113.99"));
    let moved = eventually(Duration::from_secs(15), || {
        let got = lines(&srv.udp(name, RecordType::A).answers);
        (got == ["lb.default.example.org. 5 IN A 203.0.113.99"]).then_some(())
    });
    assert!(
        moved.is_some(),
        "the new ingress IP never answered; log:\n{}",
        srv.log()
    );
    let out = dig(&tool, &srv, &["-x", "203.0.113.99"]);
    assert_eq!(
        dig_section(&out, "ANSWER"),
        ["99.113.0.203.in-addr.arpa. 5 IN PTR lb.default.example.org."]
    );
    let out = dig(&tool, &srv, &["-x", "203.0.113.10"]);
    assert!(
        out.contains("status: NXDOMAIN"),
        "the old IP has no PTR: {out}"
    );
}

/// A dig SOA line with its serial replaced by 0.
fn zero_soa_serial(line: &str) -> String {
    let mut words: Vec<&str> = line.split(' ').collect();
    if words.get(3) == Some(&"SOA") && words.len() == 11 {
        words[6] = "0";
    }
    words.join(" ")
}
