//! Fixture tests: each case is a YAML object as the API server (or a file)
//! would hold it, and the slim record it must become.

use super::*;
use crate::index::model::{Endpoint, Port, ServiceKind};

fn yaml<T: serde::de::DeserializeOwned>(src: &str) -> T {
    serde_yaml::from_str(src).expect("fixture parses")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("fixture IP")
}

fn p(name: &str, protocol: Protocol, port: u16) -> Port {
    Port {
        name: name.into(),
        protocol,
        port,
    }
}

const SVC_HEAD: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: My-Svc, namespace: Demo}\n";

#[test]
fn service_kinds_follow_type_then_cluster_ip() {
    let cases: &[(&str, ServiceKind)] = &[
        (
            "spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.1, 'fd00::1']}",
            ServiceKind::ClusterIp(vec![ip("10.96.0.1"), ip("fd00::1")]),
        ),
        (
            "spec: {clusterIP: 10.96.0.7}",
            ServiceKind::ClusterIp(vec![ip("10.96.0.7")]),
        ),
        (
            "spec: {clusterIP: 10.96.0.7, clusterIPs: []}",
            ServiceKind::ClusterIp(vec![ip("10.96.0.7")]),
        ),
        (
            "spec: {clusterIPs: [not-an-ip, 10.96.0.8]}",
            ServiceKind::ClusterIp(vec![ip("10.96.0.8")]),
        ),
        ("spec: {}", ServiceKind::ClusterIp(vec![])),
        ("spec: {clusterIP: None}", ServiceKind::Headless),
        (
            "spec: {clusterIP: None, clusterIPs: [None]}",
            ServiceKind::Headless,
        ),
        (
            "spec: {type: ExternalName, externalName: Example.ORG}",
            ServiceKind::ExternalName("example.org.".into()),
        ),
        (
            "spec: {type: ExternalName, externalName: svc1.testns.svc.cluster.local.}",
            ServiceKind::ExternalName("svc1.testns.svc.cluster.local.".into()),
        ),
    ];
    for (spec, want) in cases {
        let svc = service(&yaml(&format!("{SVC_HEAD}{spec}"))).expect(spec);
        assert_eq!(&svc.kind, want, "{spec}");
        assert_eq!(&*svc.namespace, "demo");
        assert_eq!(&*svc.name, "my-svc");
    }
}

#[test]
fn service_ports_are_lower_cased_and_bad_ones_dropped() {
    let svc = service(&yaml(&format!(
        "{SVC_HEAD}spec:\n  clusterIP: 10.96.0.10\n  ports:\n\
         \x20 - {{name: DNS, port: 53, protocol: UDP}}\n\
         \x20 - {{name: dns-tcp, port: 53, protocol: TCP}}\n\
         \x20 - {{port: 9153}}\n\
         \x20 - {{name: sctp, port: 7777, protocol: sctp}}\n\
         \x20 - {{name: weird, port: 1, protocol: QUIC}}\n\
         \x20 - {{name: big, port: 70000}}\n"
    )))
    .expect("converts");
    assert_eq!(
        svc.ports,
        vec![
            p("dns", Protocol::Udp, 53),
            p("dns-tcp", Protocol::Tcp, 53),
            p("", Protocol::Tcp, 9153),
            p("sctp", Protocol::Sctp, 7777),
        ]
    );
}

#[test]
fn service_without_name_namespace_or_external_target_is_an_error() {
    let cases: &[(&str, &str)] = &[
        ("metadata: {namespace: a}\n", "Service has no metadata.name"),
        ("metadata: {name: a}\n", "Service has no metadata.namespace"),
        (
            "metadata: {name: a, namespace: b}\nspec: {type: ExternalName}\n",
            "Service has no spec.externalName",
        ),
        (
            "metadata: {name: a, namespace: d/efault}\n",
            "Service has a metadata.namespace containing '/'",
        ),
        (
            "metadata: {name: a/b, namespace: default}\n",
            "Service has a metadata.name containing '/'",
        ),
    ];
    for (body, want) in cases {
        let err = service(&yaml(&format!("apiVersion: v1\nkind: Service\n{body}"))).unwrap_err();
        assert_eq!(err.to_string(), *want);
    }
}

const SLICE: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: Web-ABCDE
  namespace: Demo
  labels: {kubernetes.io/service-name: Web}
addressType: IPv4
ports:
  - {name: HTTP, port: 80, protocol: TCP}
  - {name: no-number}
endpoints:
  - addresses: [10.244.1.10]
    hostname: Web-0
    conditions: {ready: true}
    targetRef: {kind: Pod, name: Web-0, namespace: demo}
  - addresses: [10.244.2.11]
    targetRef: {kind: Pod, name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
  - addresses: [10.244.1.12]
    conditions: {ready: false, serving: true}
    targetRef: {kind: Node, name: node-1}
  - addresses: [bogus]
"#;

#[test]
fn endpoint_slice_keeps_ready_flag_hostname_and_short_pod_names() {
    let slice = endpoint_slice(&yaml(SLICE))
        .expect("converts")
        .expect("kept");
    assert_eq!(&*slice.namespace, "demo");
    assert_eq!(&*slice.name, "web-abcde");
    assert_eq!(&*slice.service, "web");
    assert_eq!(slice.ports, vec![p("http", Protocol::Tcp, 80)]);
    assert_eq!(
        slice.endpoints,
        vec![
            Endpoint {
                addresses: vec![ip("10.244.1.10")],
                hostname: Some("web-0".into()),
                pod_name: Some("web-0".into()),
                ready: true,
                zone: None,
            },
            // Unset condition counts as ready; a 64-character pod name is dropped.
            Endpoint {
                addresses: vec![ip("10.244.2.11")],
                hostname: None,
                pod_name: None,
                ready: true,
                zone: None,
            },
            // Not ready is kept (the index filters); a non-Pod targetRef is no pod name.
            Endpoint {
                addresses: vec![ip("10.244.1.12")],
                hostname: None,
                pod_name: None,
                ready: false,
                zone: None,
            },
        ]
    );
}

#[test]
fn endpoint_slice_without_service_label_or_with_fqdn_addresses_is_skipped() {
    let unlabelled = SLICE.replace("labels: {kubernetes.io/service-name: Web}", "labels: {}");
    assert_eq!(endpoint_slice(&yaml(&unlabelled)), Ok(None));
    let slashed = SLICE.replace("service-name: Web}", "service-name: a/b}");
    assert_eq!(endpoint_slice(&yaml(&slashed)), Ok(None));
    let fqdn = SLICE.replace("addressType: IPv4", "addressType: FQDN");
    assert_eq!(endpoint_slice(&yaml(&fqdn)), Ok(None));
    let v6 = SLICE.replace("addressType: IPv4", "addressType: IPv6");
    assert!(endpoint_slice(&yaml(&v6)).expect("converts").is_some());
}

#[test]
fn legacy_endpoints_become_one_slice_per_subset() {
    let ep: core::Endpoints = yaml(
        r#"
apiVersion: v1
kind: Endpoints
metadata: {name: Legacy, namespace: default}
subsets:
  - addresses:
      - {ip: 10.0.0.1, hostname: a, targetRef: {kind: Pod, name: legacy-1}}
    notReadyAddresses:
      - {ip: 10.0.0.2}
    ports: [{name: http, port: 8080}]
  - addresses: [{ip: "fd00::3"}]
    ports: [{name: dns, port: 53, protocol: UDP}]
"#,
    );
    let slices = endpoints(&ep).expect("converts");
    assert_eq!(slices.len(), 2);
    assert_eq!(&*slices[0].name, "legacy-0");
    assert_eq!(&*slices[1].name, "legacy-1");
    assert!(
        slices
            .iter()
            .all(|s| &*s.service == "legacy" && &*s.namespace == "default")
    );
    assert_eq!(slices[0].ports, vec![p("http", Protocol::Tcp, 8080)]);
    assert_eq!(
        slices[0].endpoints,
        vec![
            Endpoint {
                addresses: vec![ip("10.0.0.1")],
                hostname: Some("a".into()),
                pod_name: Some("legacy-1".into()),
                ready: true,
                zone: None,
            },
            Endpoint {
                addresses: vec![ip("10.0.0.2")],
                hostname: None,
                pod_name: None,
                ready: false,
                zone: None,
            },
        ]
    );
    assert_eq!(slices[1].ports, vec![p("dns", Protocol::Udp, 53)]);
    assert_eq!(slices[1].endpoints[0].addresses, vec![ip("fd00::3")]);
}

#[test]
fn pods_take_pod_ips_and_finished_pods_are_skipped() {
    let head = "apiVersion: v1\nkind: Pod\nmetadata: {name: P, namespace: NS}\n";
    let cases: &[(&str, Option<Vec<IpAddr>>)] = &[
        (
            "status: {phase: Running, podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: 'fd00::1'}]}",
            Some(vec![ip("10.0.0.1"), ip("fd00::1")]),
        ),
        (
            "status: {phase: Running, podIP: 10.0.0.2}",
            Some(vec![ip("10.0.0.2")]),
        ),
        ("status: {phase: Pending}", Some(vec![])),
        ("spec: {}", Some(vec![])),
        ("status: {phase: Succeeded, podIP: 10.0.0.3}", None),
        ("status: {phase: Failed, podIP: 10.0.0.4}", None),
    ];
    for (status, want) in cases {
        let got = pod(&yaml(&format!("{head}{status}"))).expect(status);
        match want {
            Some(ips) => {
                let got = got.expect(status);
                assert_eq!((&*got.namespace, &*got.name), ("ns", "p"));
                assert_eq!(&got.ips, ips, "{status}");
            }
            None => assert_eq!(got, None, "{status}"),
        }
    }
}

#[test]
fn namespace_is_its_lower_cased_name() {
    let ns: core::Namespace =
        yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: Kube-System}");
    assert_eq!(&*namespace(&ns).expect("converts").name, "kube-system");
    let nameless: core::Namespace = yaml("apiVersion: v1\nkind: Namespace\nmetadata: {}");
    assert!(namespace(&nameless).is_err());
}

#[test]
fn names_longer_than_the_api_allows_reject_the_object() {
    let long = |n: usize| "a".repeat(n);
    let svc = |name: &str, ns: &str| -> core::Service {
        yaml(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{clusterIP: 10.0.0.1}}"
        ))
    };
    let slice = |name: &str| -> discovery::EndpointSlice {
        yaml(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: ns, labels: {{kubernetes.io/service-name: s}}}}\naddressType: IPv4\nendpoints: []"
        ))
    };
    let too_long = |kind, field, len, max| {
        Err::<(), _>(ConvertError::NameTooLong {
            kind,
            field,
            len,
            max,
        })
    };
    assert!(service(&svc(&long(63), "ns")).is_ok());
    assert_eq!(
        service(&svc(&long(300), "ns")).map(|_| ()),
        too_long("Service", "metadata.name", 300, 63)
    );
    assert_eq!(
        service(&svc("web", &long(64))).map(|_| ()),
        too_long("Service", "metadata.namespace", 64, 63)
    );
    // Slices are named as subdomains: longer names are fine up to 253.
    assert!(endpoint_slice(&slice(&long(200))).is_ok());
    assert_eq!(
        endpoint_slice(&slice(&long(300))).map(|_| ()),
        too_long("EndpointSlice", "metadata.name", 300, 253)
    );
}

#[test]
fn external_addresses_are_external_ips_then_load_balancer_ingress_ips_each_once() {
    let svc: core::Service = yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\n\
         spec:\n  clusterIP: 10.0.0.1\n  externalIPs: [192.168.200.123, 'fd00::7', bogus]\n\
         status:\n  loadBalancer:\n    ingress:\n    - ip: 203.0.113.5\n    - hostname: lb.example.org\n    - ip: 192.168.200.123\n",
    );
    let got = service(&svc).expect("service").external;
    let want: Vec<IpAddr> = ["192.168.200.123", "fd00::7", "203.0.113.5"]
        .iter()
        .map(|s| s.parse().expect("ip"))
        .collect();
    assert_eq!(got, want);
    let plain: core::Service = yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\nspec: {clusterIP: 10.0.0.1}",
    );
    assert!(service(&plain).expect("service").external.is_empty());
}

#[test]
fn service_imports_are_clusterset_ip_unless_headless() {
    use crate::index::model::ImportKind;
    let head = "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\nmetadata: {name: My-Svc, namespace: Demo}\n";
    let cases: &[(&str, ImportKind, Vec<Port>)] = &[
        (
            "spec: {type: ClusterSetIP, ips: [10.42.42.42, '2001:db8::1', bogus], ports: [{name: HTTPS, protocol: TCP, port: 443}, {port: 0}]}",
            ImportKind::ClusterSetIp(vec![ip("10.42.42.42"), ip("2001:db8::1")]),
            vec![p("https", Protocol::Tcp, 443)],
        ),
        (
            "spec: {type: Headless, ips: [10.0.0.9], ports: [{name: dns, protocol: UDP, port: 53}]}",
            ImportKind::Headless,
            vec![p("dns", Protocol::Udp, 53)],
        ),
        // No spec (or no type): the API's default, ClusterSetIP, with no IP yet.
        ("", ImportKind::ClusterSetIp(vec![]), vec![]),
    ];
    for (spec, kind, ports) in cases {
        let import: super::super::mcs::ServiceImport = yaml(&format!("{head}{spec}"));
        let got = service_import(&import).expect(spec);
        assert_eq!(
            (&*got.namespace, &*got.name, &got.kind, &got.ports),
            ("demo", "my-svc", kind, ports),
            "{spec}"
        );
    }
    let nameless: super::super::mcs::ServiceImport =
        yaml("metadata: {namespace: demo}\nspec: {type: Headless}");
    assert_eq!(
        service_import(&nameless),
        Err(ConvertError::MissingField {
            kind: "ServiceImport",
            field: "metadata.name"
        })
    );
}

#[test]
fn imported_slices_take_the_mcs_labels_and_endpoint_zones_are_shared() {
    let slice: discovery::EndpointSlice = yaml(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: web-abc, namespace: demo, labels: {multicluster.kubernetes.io/service-name: Web, multicluster.kubernetes.io/source-cluster: Cluster-A}}\n\
         addressType: IPv4\n\
         endpoints:\n\
         - {addresses: [10.0.0.1], zone: us-west-2a}\n\
         - {addresses: [10.0.0.2], zone: us-west-2a}\n\
         - {addresses: [10.0.0.3]}\n",
    );
    // Not this cluster's slice: no kubernetes.io/service-name label.
    assert_eq!(endpoint_slice(&slice), Ok(None));
    let mc = multicluster_slice(&slice).expect("converts").expect("used");
    assert_eq!(
        (&*mc.cluster, &*mc.slice.service, &*mc.slice.name),
        ("cluster-a", "web", "web-abc")
    );
    let zones: Vec<Option<&str>> = mc
        .slice
        .endpoints
        .iter()
        .map(|e| e.zone.as_deref())
        .collect();
    assert_eq!(zones, [Some("us-west-2a"), Some("us-west-2a"), None]);
    let (a, b) = (&mc.slice.endpoints[0].zone, &mc.slice.endpoints[1].zone);
    assert!(
        a.as_ref()
            .zip(b.as_ref())
            .is_some_and(|(a, b)| Arc::ptr_eq(a, b)),
        "one string per zone per slice"
    );
    // Without the source-cluster label the cluster id is empty.
    let mut unlabelled = slice.clone();
    if let Some(l) = unlabelled.metadata.labels.as_mut() {
        l.remove(MC_SOURCE_CLUSTER_LABEL);
    }
    let mc = multicluster_slice(&unlabelled)
        .expect("converts")
        .expect("used");
    assert_eq!(&*mc.cluster, "");
}
