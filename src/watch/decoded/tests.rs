use super::*;
use kube::core::ObjectList;

const SLICES: &str = r#"{
    "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
    "metadata": {"resourceVersion": "9"},
    "items": [
        {"metadata": {"name": "web-abc", "namespace": "a", "resourceVersion": "5",
                      "labels": {"kubernetes.io/service-name": "web",
                                 "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                                 "app": "web"},
                      "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-05T12:00:00Z",
                                      "other": "x"},
                      "managedFields": [{"manager": "kube-controller-manager"}]},
         "addressType": "IPv4",
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                        "nodeName": "node-1",
                        "targetRef": {"kind": "Pod", "namespace": "a", "name": "web-0"}}]},
        {"metadata": {"name": "orphan", "namespace": "a", "resourceVersion": "6"},
         "addressType": "IPv4", "endpoints": []},
        {"metadata": {"name": "bad", "namespace": "a", "resourceVersion": "7"},
         "addressType": "IPv4", "endpoints": [{"addresses": "10.0.0.2"}]},
        {"metadata": {"name": "x/y", "namespace": "a", "resourceVersion": "8",
                      "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "endpoints": []}
    ]
}"#;

fn full(i: usize) -> discovery::EndpointSlice {
    let list: ObjectList<discovery::EndpointSlice> =
        serde_json::from_str(&SLICES.replace(r#"[{"addresses": "10.0.0.2"}]"#, "[]"))
            .expect("typed list decodes");
    list.items[i].clone()
}

#[test]
fn items_carry_the_record_conversion_gives_and_only_the_metadata_the_watch_reads() {
    let list: ObjectList<Decoded<discovery::EndpointSlice>> =
        serde_json::from_str(SLICES).expect("list decodes");
    assert_eq!(list.items.len(), 4);

    let good = &list.items[0];
    let want = full(0).record().expect("converts");
    assert!(matches!(want, Some(Object::EndpointSlice(_))));
    assert_eq!(good.record, Ok(want));
    assert_eq!(good.describe(), "a/web-abc");
    assert_eq!(good.meta.resource_version.as_deref(), Some("5"));
    let labels: Vec<&str> = good
        .meta
        .labels
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(labels, ["endpointslice.kubernetes.io/managed-by"]);
    let annotations: Vec<&str> = good
        .meta
        .annotations
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        annotations,
        ["endpoints.kubernetes.io/last-change-trigger-time"]
    );
    assert!(good.meta.managed_fields.is_none());

    // No service-name label: DNS has no use for it.
    assert_eq!(list.items[1].record, Ok(None));

    let bad = &list.items[2];
    assert!(
        matches!(&bad.record, Err(Skip::Undecodable(e)) if e.contains("invalid type")),
        "{:?}",
        bad.record
    );
    assert_eq!(bad.describe(), "a/bad");
    assert_eq!(bad.meta.resource_version.as_deref(), Some("7"));

    let unusable = &list.items[3];
    assert_eq!(
        unusable.record,
        Err(Skip::Unusable(
            full(3).record().expect_err("a '/' in the name")
        ))
    );
    assert_eq!(unusable.describe(), "a/x/y");
}

#[test]
fn each_kind_converts_to_its_own_record() {
    let svc: Decoded<core::Service> = serde_json::from_str(
        r#"{"metadata": {"name": "s", "namespace": "a"}, "spec": {"clusterIP": "10.96.0.1"}}"#,
    )
    .expect("service");
    assert!(matches!(svc.record, Ok(Some(Object::Service(_)))));
    let ns: Decoded<core::Namespace> =
        serde_json::from_str(r#"{"metadata": {"name": "a"}}"#).expect("namespace");
    assert!(matches!(ns.record, Ok(Some(Object::Namespace(_)))));
    let pod: Decoded<core::Pod> = serde_json::from_str(
        r#"{"metadata": {"name": "p", "namespace": "a"}, "status": {"phase": "Succeeded"}}"#,
    )
    .expect("pod");
    assert_eq!(pod.record, Ok(None));
    assert_eq!(Decoded::<core::Pod>::plural(&()), "pods");
}

#[test]
fn text_that_is_not_json_still_fails_the_page() {
    let r: Result<ObjectList<Decoded<core::Service>>, _> =
        serde_json::from_str(r#"{"kind": "ServiceList", "items": [{"metadata": "#);
    assert!(r.is_err());
}
