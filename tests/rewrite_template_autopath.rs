//! rewrite, template and autopath through the real binary over UDP (rewrite's
//! response rules as `dig` prints them).
//!
//! The autopath "pod" is the test client itself: the manifests hold a Pod with
//! status.podIP 127.0.0.1 in `default` (or, without `pods verified`, an
//! EndpointSlice holding 127.0.0.1); a client bound to 127.0.0.3 is neither.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{TestServer, dig, dig_section, lines, require};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// `nginx-service` in `default`: what every test asks for.
macro_rules! nginx_service {
    () => {
        r#"
apiVersion: v1
kind: Service
metadata: {name: nginx-service, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.100
  clusterIPs: [10.96.0.100]
  ports: [{name: http, protocol: TCP, port: 80}]
---
"#
    };
}

const CLUSTER: &str = concat!(
    nginx_service!(),
    r#"apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec: {containers: [{name: c, image: busybox}]}
status:
  phase: Running
  podIP: 127.0.0.1
  podIPs: [{ip: 127.0.0.1}]
"#
);

const REWRITE_TEMPLATE: &str = r#"
.:{PORT} {
    bind 127.0.0.1
    rewrite name exact db.example.com nginx-service.default.svc.cluster.local
    rewrite stop {
        name regex (.*)\.corp\.example\. {1}.default.svc.cluster.local.
        answer name (.*)\.default\.svc\.cluster\.local\. {1}.corp.example.
    }
    template IN A example.org {
        match "^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)-(?P<c>[0-9]+)-(?P<d>[0-9]+)[.]example[.]org[.]$"
        answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
    }
    kubernetes cluster.local {
        manifests cluster.yaml
    }
}
"#;

#[test]
fn rewrite_answers_the_rewritten_name_under_the_asked_name() {
    let srv = TestServer::start(REWRITE_TEMPLATE, &[("cluster.yaml", CLUSTER)]);
    let m = srv.udp("db.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_ascii(), "db.example.com.");
    assert_eq!(lines(&m.answers), ["db.example.com. 5 IN A 10.96.0.100"]);
    let m = srv.udp("nginx-service.corp.example.", RecordType::A);
    assert_eq!(
        lines(&m.answers),
        ["nginx-service.corp.example. 5 IN A 10.96.0.100"]
    );
    let m = srv.udp("missing.corp.example.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn template_answers_a_regex_zone_and_servfails_other_names_in_it() {
    let srv = TestServer::start(REWRITE_TEMPLATE, &[("cluster.yaml", CLUSTER)]);
    let m = srv.udp("ip-10-1-2-3.example.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        lines(&m.answers),
        ["ip-10-1-2-3.example.org. 60 IN A 10.1.2.3"]
    );
    let m = srv.udp("www.example.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

/// rewrite's response rules (rcode, cname) in front of a template and the cluster.
const REWRITE_RESPONSE: &str = r#"
.:{PORT} {
    bind 127.0.0.1
    rewrite continue rcode prefix www. NXDOMAIN NOERROR
    rewrite cname suffix .cdn.example.net. .default.svc.cluster.local.
    template ANY ANY coredns.rocks {
        rcode NXDOMAIN
    }
    template IN A example.net {
        match "^www[.]example[.]net[.]$"
        answer "{{ .Name }} 60 IN CNAME nginx-service.cdn.example.net."
    }
    kubernetes cluster.local {
        manifests cluster.yaml
    }
}
"#;

#[test]
fn dig_sees_rewrite_rcode_change_the_code_of_matching_names_only() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::start(REWRITE_RESPONSE, &[("cluster.yaml", CLUSTER)]);
    let out = dig(&tool, &srv, &["A", "www.coredns.rocks"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(dig_section(&out, "ANSWER").is_empty(), "{out}");
    let out = dig(&tool, &srv, &["A", "ftp.coredns.rocks"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
}

#[test]
fn dig_sees_rewrite_cname_point_the_chain_at_the_rewritten_target() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::start(REWRITE_RESPONSE, &[("cluster.yaml", CLUSTER)]);
    let out = dig(&tool, &srv, &["A", "www.example.net"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert_eq!(
        dig_section(&out, "ANSWER"),
        [
            "www.example.net. 60 IN CNAME nginx-service.default.svc.cluster.local.",
            "nginx-service.default.svc.cluster.local. 5 IN A 10.96.0.100",
        ]
    );
}

fn autopath_corefile(pods: &str) -> String {
    format!(
        r#"
cluster.local:{{PORT}} {{
    bind 127.0.0.1
    prometheus 127.0.0.1:{{HEALTH}}
    autopath @kubernetes
    # Stands in for an upstream: the bare single-label name autopath tries last is
    # NXDOMAIN instead of "no next plugin" (SERVFAIL, as in CoreDNS).
    template ANY ANY . {{
        match "^[^.]+[.]$"
        rcode NXDOMAIN
        fallthrough
    }}
    kubernetes cluster.local {{
        manifests cluster.yaml
        pods {pods}
    }}
}}
"#
    )
}

/// One UDP query from `from` (a loopback address other than the pod's).
fn udp_from(from: &str, to: SocketAddr, name: &str) -> Message {
    let q = common::query(name, RecordType::A);
    let s = UdpSocket::bind(format!("{from}:0")).expect("bind client");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s.send_to(&q.to_vec().expect("encode"), to).expect("send");
    let mut buf = vec![0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("reply");
    Message::from_vec(&buf[..n]).expect("decode")
}

#[test]
fn autopath_answers_a_pods_search_path_expansion_in_one_round_trip() {
    let srv = TestServer::start(&autopath_corefile("verified"), &[("cluster.yaml", CLUSTER)]);
    let qname = "nginx-service.default.svc.cluster.local.default.svc.cluster.local.";
    let m = srv.udp(qname, RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_ascii(), qname);
    assert_eq!(
        lines(&m.answers),
        [
            "nginx-service.default.svc.cluster.local. 5 IN A 10.96.0.100".to_string(),
            format!("{qname} 5 IN CNAME nginx-service.default.svc.cluster.local."),
        ]
    );
    // The CNAME leads, so the client follows it from the name it asked.
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    let metrics = srv
        .http_get(srv.health_port, "/metrics")
        .expect("metrics")
        .1;
    let want = format!(
        "coredns_autopath_success_total{{server=\"dns://:{}\"}} ",
        srv.addr.port()
    );
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_default();
    assert!(line.ends_with(" 1"), "{line:?} in\n{metrics}");
}

#[test]
fn autopath_leaves_a_client_that_is_not_a_pod_with_a_plain_nxdomain() {
    let srv = TestServer::start(&autopath_corefile("verified"), &[("cluster.yaml", CLUSTER)]);
    let qname = "nginx-service.default.svc.cluster.local.default.svc.cluster.local.";
    let m = udp_from("127.0.0.3", srv.addr, qname);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1, "the zone SOA");
}

/// No Pod objects: the client 127.0.0.1 is known only as an endpoint of
/// `client-svc` in `default`.
const CLUSTER_ENDPOINTS_ONLY: &str = concat!(
    nginx_service!(),
    r#"apiVersion: v1
kind: Service
metadata: {name: client-svc, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.101
  clusterIPs: [10.96.0.101]
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: client-svc-x
  namespace: default
  labels: {kubernetes.io/service-name: client-svc}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 80}]
endpoints:
- {addresses: [127.0.0.1], conditions: {ready: true}}
"#
);

#[test]
fn autopath_without_pods_verified_learns_the_client_from_endpointslices() {
    // CoreDNS refuses `autopath @kubernetes` without `pods verified`; we learn
    // the client's namespace from the EndpointSlices its address is in.
    let srv = TestServer::start(
        &autopath_corefile("insecure"),
        &[("cluster.yaml", CLUSTER_ENDPOINTS_ONLY)],
    );
    let qname = "nginx-service.default.svc.cluster.local.default.svc.cluster.local.";
    let m = srv.udp(qname, RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        m.answers[0].record_type(),
        RecordType::CNAME,
        "one round trip"
    );
    assert_eq!(
        lines(&m.answers),
        [
            "nginx-service.default.svc.cluster.local. 5 IN A 10.96.0.100".to_string(),
            format!("{qname} 5 IN CNAME nginx-service.default.svc.cluster.local."),
        ]
    );
    // A client whose address backs no Service gets the plain answer.
    let m = udp_from("127.0.0.3", srv.addr, qname);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
}
