//! Table tests of the API → model conversions.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;

use super::*;

fn service(v: serde_json::Value) -> core::Service {
    serde_json::from_value(v).expect("valid Service json")
}

fn pod_json(v: serde_json::Value) -> core::Pod {
    serde_json::from_value(v).expect("valid Pod json")
}

fn meta(name: &str) -> serde_json::Value {
    json!({"name": name, "namespace": "default", "uid": format!("uid-{name}")})
}

#[test]
fn service_ports_target_ports_and_defaults() {
    let s = Service::from_api(&service(json!({
        "metadata": meta("web"),
        "spec": {
            "clusterIP": "10.96.0.10",
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http-web"},
                {"name": "num", "port": 81, "targetPort": 8081, "protocol": "UDP", "appProtocol": "h2c"},
                {"name": "dflt", "port": 82}
            ]
        }
    })))
    .unwrap();
    assert_eq!(s.families, [Family::V4]);
    assert!(!s.headless && !s.publish_not_ready && !s.prefer_close);
    let got: Vec<(&str, i32, &TargetPort, &str, Option<&str>)> = s
        .ports
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.port,
                &p.target,
                p.protocol.as_str(),
                p.app_protocol.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "http",
                80,
                &TargetPort::Name("http-web".to_owned()),
                "TCP",
                None
            ),
            ("num", 81, &TargetPort::Number(8081), "UDP", Some("h2c")),
            ("dflt", 82, &TargetPort::Number(82), "TCP", None),
        ]
    );
}

#[test]
fn service_families_headless_and_topology() {
    // (spec, annotations) → (families, headless, prefer_close)
    let table = [
        (
            json!({"clusterIP": "fd00::a"}),
            json!({}),
            (vec![Family::V6], false, false),
        ),
        (
            json!({"clusterIP": "None"}),
            json!({}),
            (vec![Family::V4], true, false),
        ),
        (
            json!({"clusterIP": "10.0.0.1", "ipFamilies": ["IPv6", "IPv4"]}),
            json!({}),
            (vec![Family::V6, Family::V4], false, false),
        ),
        (
            json!({"trafficDistribution": "PreferClose"}),
            json!({}),
            (vec![Family::V4], false, true),
        ),
        (
            json!({}),
            json!({"service.kubernetes.io/topology-mode": "Auto"}),
            (vec![Family::V4], false, true),
        ),
        (
            json!({}),
            json!({"service.kubernetes.io/topology-aware-hints": "auto"}),
            (vec![Family::V4], false, true),
        ),
        (
            json!({}),
            json!({"service.kubernetes.io/topology-mode": "Disabled"}),
            (vec![Family::V4], false, false),
        ),
    ];
    for (spec, annotations, want) in table {
        let mut m = meta("s");
        m["annotations"] = annotations.clone();
        let s = Service::from_api(&service(json!({"metadata": m, "spec": spec.clone()}))).unwrap();
        assert_eq!(
            (s.families, s.headless, s.prefer_close),
            want,
            "{spec} {annotations}"
        );
    }
}

#[test]
fn service_errors_are_clear() {
    let no_uid = service(json!({"metadata": {"name": "a", "namespace": "default"}}));
    assert_eq!(
        Service::from_api(&no_uid).unwrap_err().to_string(),
        "Service a: missing metadata.uid"
    );
    let bad_family = service(json!({"metadata": meta("a"), "spec": {"ipFamilies": ["IPv5"]}}));
    assert!(matches!(
        Service::from_api(&bad_family),
        Err(ModelError::BadFamily { .. })
    ));
    let bad_ip = service(json!({"metadata": meta("a"), "spec": {"clusterIP": "10.0.0"}}));
    assert!(matches!(
        Service::from_api(&bad_ip),
        Err(ModelError::BadIp { .. })
    ));
    let unnamed = core::Service {
        metadata: ObjectMeta::default(),
        ..core::Service::default()
    };
    assert!(
        Service::from_api(&unnamed)
            .unwrap_err()
            .to_string()
            .contains("metadata.name")
    );
}

#[test]
fn pod_status_spec_and_ports() {
    let p = Pod::from_api(&pod_json(json!({
        "metadata": meta("p"),
        "spec": {
            "nodeName": "n1", "hostname": "h", "subdomain": "web",
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}],
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "UDP"}]},
                {"name": "init", "ports": [{"name": "ignored", "containerPort": 1}]}
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })))
    .unwrap();
    assert_eq!(
        p.ips,
        [
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "fd00::5".parse().unwrap()
        ]
    );
    assert!(p.ready && !p.terminating && !p.terminal);
    assert_eq!(
        (
            p.node_name.as_deref(),
            p.hostname.as_deref(),
            p.subdomain.as_deref()
        ),
        (Some("n1"), Some("h"), Some("web"))
    );
    assert_eq!(
        p.container_ports,
        [
            ContainerPort {
                name: "http".to_owned(),
                port: 8080,
                protocol: "TCP".to_owned()
            },
            ContainerPort {
                name: "proxy".to_owned(),
                port: 15001,
                protocol: "UDP".to_owned()
            },
        ]
    );
}

#[test]
fn pod_readiness_terminating_terminal_and_ip_fallback() {
    let mut raw = pod_json(json!({
        "metadata": meta("p"),
        "status": {"phase": "Succeeded", "podIP": "10.0.0.6",
                   "conditions": [{"type": "Ready", "status": "False"}]}
    }));
    raw.metadata.deletion_timestamp = Some(Time(Default::default()));
    let p = Pod::from_api(&raw).unwrap();
    assert_eq!(p.ips, ["10.0.0.6".parse::<IpAddr>().unwrap()]);
    assert!(!p.ready && p.terminating && p.terminal);
    let bad = pod_json(json!({"metadata": meta("q"), "status": {"podIP": "nope"}}));
    assert_eq!(
        Pod::from_api(&bad).unwrap_err().to_string(),
        "Pod q: status.podIPs \"nope\" is not an IP address"
    );
}

#[test]
fn node_zone_from_topology_label() {
    let node = |labels: serde_json::Value| -> core::Node {
        serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels}})).unwrap()
    };
    assert_eq!(
        node_zone(&node(json!({ZONE_LABEL: "z-a"}))),
        Some(("n1".to_owned(), "z-a".to_owned()))
    );
    assert_eq!(node_zone(&node(json!({ZONE_LABEL: ""}))), None);
    assert_eq!(node_zone(&node(json!({"other": "x"}))), None);
}

#[test]
fn stripped_pods_convert_the_same_and_lose_the_rest() {
    let full = json!({
        "metadata": {
            "name": "web-1", "namespace": "default", "uid": "uid-web-1", "resourceVersion": "42",
            "labels": {"app": "web"}, "annotations": {"a": "b"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": "u"}],
            "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:status": {"f:phase": {}}}}]
        },
        "spec": {
            "nodeName": "node-a", "hostname": "web-1", "subdomain": "web",
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "X", "value": "1"}],
                            "ports": [{"name": "http", "containerPort": 8080}]}],
            "initContainers": [
                {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always",
                 "ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]},
                {"name": "init", "image": "init:1", "ports": [{"name": "ignored", "containerPort": 1}]}
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "tolerations": [{"key": "k", "operator": "Exists"}]
        },
        "status": {
            "phase": "Running", "podIP": "10.0.0.1",
            "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "hostIP": "192.168.0.1",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:00Z"}
            ],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "app:1", "imageID": ""}]
        }
    });
    let mut terminating = full.clone();
    terminating["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:01:00Z");
    terminating["status"]["conditions"][1]["status"] = json!("False");
    let bare = json!({"metadata": meta("bare")});
    for case in [full, terminating, bare] {
        let original = pod_json(case);
        let mut slim = original.clone();
        strip_pod(&mut slim);
        assert_eq!(
            Pod::from_api(&slim).unwrap(),
            Pod::from_api(&original).unwrap()
        );
        assert_eq!(slim.metadata.labels, original.metadata.labels);
        assert_eq!(
            slim.metadata.resource_version,
            original.metadata.resource_version
        );
        assert!(slim.metadata.managed_fields.is_none() && slim.metadata.annotations.is_none());
        assert!(slim.metadata.owner_references.is_none());
        let spec = slim.spec.clone().unwrap_or_default();
        assert!(spec.volumes.is_none() && spec.tolerations.is_none());
        assert!(
            spec.containers
                .iter()
                .all(|c| c.image.is_none() && c.env.is_none())
        );
        let status = slim.status.clone().unwrap_or_default();
        assert!(status.container_statuses.is_none() && status.host_ip.is_none());
        assert!(
            status
                .conditions
                .iter()
                .flatten()
                .all(|c| c.type_ == "Ready")
        );
        let mut again = slim.clone();
        strip_pod(&mut again);
        assert_eq!(again, slim, "stripping twice changes nothing");
    }
}

#[test]
fn strip_managed_fields_drops_only_them() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let mut slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-abc", "namespace": "default", "resourceVersion": "7",
                     "labels": {"kubernetes.io/service-name": "web"},
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                        "fieldsType": "FieldsV1", "fieldsV1": {"f:endpoints": {}}}]},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}]
    }))
    .expect("slice");
    let mut want = slice.clone();
    want.metadata.managed_fields = None;
    super::strip_managed_fields(&mut slice);
    assert_eq!(slice, want);
    assert!(slice.metadata.managed_fields.is_none());
}

#[test]
fn service_identity_keeps_only_the_identity() {
    let full = service(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "9",
                     "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10"},
        "status": {"loadBalancer": {}}
    }));
    let mut slim = full.clone();
    service_identity(&mut slim);
    let want = ObjectMeta {
        name: Some("web".into()),
        namespace: Some("default".into()),
        uid: Some("u1".into()),
        resource_version: Some("9".into()),
        ..ObjectMeta::default()
    };
    assert_eq!(slim.metadata, want);
    assert!(slim.spec.is_none() && slim.status.is_none());
}

#[test]
fn strip_node_keeps_name_and_zone() {
    let full: core::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n1", "resourceVersion": "3",
                     "labels": {"kubernetes.io/hostname": "n1", "topology.kubernetes.io/zone": "zone-a"},
                     "annotations": {"a": "b"}},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}]}
    }))
    .expect("node");
    let mut slim = full.clone();
    strip_node(&mut slim);
    assert_eq!(node_zone(&slim), node_zone(&full));
    assert_eq!(
        node_zone(&slim),
        Some(("n1".to_owned(), "zone-a".to_owned()))
    );
    assert_eq!(slim.metadata.resource_version.as_deref(), Some("3"));
    let labels = slim.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.len(), 1);
    assert!(slim.spec.is_none() && slim.status.is_none() && slim.metadata.annotations.is_none());
    let mut zoneless = full.clone();
    zoneless.metadata.labels = None;
    strip_node(&mut zoneless);
    assert_eq!(
        (node_zone(&zoneless), zoneless.metadata.labels),
        (None, None)
    );
}
