//! Table tests of the v1 Endpoints plan.

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};

use super::*;
use crate::endpointslice::fixtures::{pod, ready_pods, svc};
use crate::endpointslice::model::{Family, Service, TargetPort};

fn web() -> Service {
    svc("web").port(80).selector("app=web").build()
}

fn created(w: EndpointsWrite) -> Endpoints {
    match w {
        EndpointsWrite::Create(e) => e,
        other => panic!("expected a create, got {other:?}"),
    }
}

fn names(addrs: &Option<Vec<EndpointAddress>>) -> Vec<String> {
    addrs
        .iter()
        .flatten()
        .map(|a| {
            a.target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn ready_and_not_ready_addresses_and_terminating_left_out() {
    let pods = vec![
        pod("a").ready().ip("10.0.0.1").node("n1").build(),
        pod("b").ip("10.0.0.2").build(),
        pod("c").ready().terminating().ip("10.0.0.3").build(),
        pod("d").labels("app=other").ready().ip("10.0.0.4").build(),
    ];
    let e = created(plan_endpoints(&web(), &pods, None, None));
    assert_eq!(e.metadata.name.as_deref(), Some("web"));
    assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
    let subsets = e.subsets.unwrap();
    assert_eq!(subsets.len(), 1);
    assert_eq!(names(&subsets[0].addresses), ["a"]);
    assert_eq!(names(&subsets[0].not_ready_addresses), ["b"]);
    let a = &subsets[0].addresses.as_ref().unwrap()[0];
    assert_eq!(
        (a.ip.as_str(), a.node_name.as_deref()),
        ("10.0.0.1", Some("n1"))
    );
    let port = &subsets[0].ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.port, port.protocol.as_deref(), port.name.clone()),
        (80, Some("TCP"), None)
    );
}

#[test]
fn publish_not_ready_lists_everyone_as_ready_including_terminating() {
    let s = svc("web")
        .port(80)
        .selector("app=web")
        .publish_not_ready()
        .build();
    let pods = vec![
        pod("a").ip("10.0.0.1").build(),
        pod("b").ready().terminating().ip("10.0.0.2").build(),
    ];
    let e = created(plan_endpoints(&s, &pods, None, None));
    let subsets = e.subsets.unwrap();
    assert_eq!(names(&subsets[0].addresses), ["a", "b"]);
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn named_ports_group_addresses_into_subsets() {
    let s = svc("web")
        .port_to("http", 80, TargetPort::Name("http".to_owned()))
        .selector("app=web")
        .build();
    let pods = vec![
        pod("a").ready().ip("10.0.0.1").cport("http", 8080).build(),
        pod("b").ready().ip("10.0.0.2").cport("http", 9090).build(),
        pod("c").ready().ip("10.0.0.3").cport("http", 8080).build(),
        pod("none").ready().ip("10.0.0.4").build(),
    ];
    let subsets = created(plan_endpoints(&s, &pods, None, None))
        .subsets
        .unwrap();
    let got: Vec<(i32, Vec<String>)> = subsets
        .iter()
        .map(|s| (s.ports.as_ref().unwrap()[0].port, names(&s.addresses)))
        .collect();
    assert_eq!(
        got,
        [
            (8080, vec!["a".to_owned(), "c".to_owned()]),
            (9090, vec!["b".to_owned()])
        ]
    );
}

#[test]
fn headless_without_ports_lists_addresses_without_ports() {
    let s = svc("web").headless().selector("app=web").build();
    let e = created(plan_endpoints(&s, &ready_pods(2), None, None));
    let subsets = e.subsets.unwrap();
    assert_eq!(subsets.len(), 1);
    assert!(subsets[0].ports.is_none());
    assert_eq!(names(&subsets[0].addresses), ["web-000", "web-001"]);
    assert_eq!(
        e.metadata
            .labels
            .unwrap()
            .get(HEADLESS_LABEL)
            .map(String::as_str),
        Some("")
    );
}

#[test]
fn primary_family_only_and_hostname_rule() {
    let s = svc("web")
        .port(80)
        .selector("app=web")
        .families(&[Family::V6, Family::V4])
        .build();
    let pods = vec![
        pod("a")
            .ready()
            .ip("10.0.0.1")
            .ip("fd00::1")
            .hostname("a")
            .subdomain("web")
            .build(),
        pod("v4only")
            .ready()
            .ip("10.0.0.2")
            .hostname("x")
            .subdomain("other")
            .build(),
    ];
    let subsets = created(plan_endpoints(&s, &pods, None, None))
        .subsets
        .unwrap();
    let addrs = subsets[0].addresses.as_ref().unwrap();
    assert_eq!(addrs.len(), 1);
    assert_eq!(
        (addrs[0].ip.as_str(), addrs[0].hostname.as_deref()),
        ("fd00::1", Some("a"))
    );
}

#[test]
fn over_capacity_is_truncated_and_annotated_ready_first() {
    let mut pods = ready_pods(990);
    pods.extend((0..30).map(|i| {
        pod(&format!("unready-{i}"))
            .ip(&format!("10.9.0.{}", i + 1))
            .build()
    }));
    let e = created(plan_endpoints(&web(), &pods, None, None));
    let subsets = e.subsets.clone().unwrap();
    let ready: usize = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    let not_ready: usize = subsets
        .iter()
        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!((ready, not_ready), (990, 10));
    assert_eq!(
        e.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(OVER_CAPACITY_ANNOTATION)
            .map(String::as_str),
        Some(TRUNCATED)
    );
    // Back under the cap: the annotation goes.
    let w = plan_endpoints(&web(), &ready_pods(5), Some(&e), None);
    let EndpointsWrite::Update(u) = w else {
        panic!("expected update, got {w:?}")
    };
    assert!(u.metadata.annotations.is_none());
    // Exactly at the cap: no annotation.
    let at = created(plan_endpoints(&web(), &ready_pods(1000), None, None));
    assert!(at.metadata.annotations.is_none());
}

#[test]
fn unchanged_endpoints_are_not_rewritten_and_changes_are_updates() {
    let pods = ready_pods(3);
    let mut e = created(plan_endpoints(
        &web(),
        &pods,
        None,
        Some("2026-12-05T06:00:00Z"),
    ));
    assert_eq!(
        e.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(TRIGGER_TIME_ANNOTATION)
            .map(String::as_str),
        Some("2026-12-05T06:00:00Z")
    );
    e.metadata.resource_version = Some("7".to_owned());
    assert_eq!(
        plan_endpoints(&web(), &pods, Some(&e), Some("2026-12-05T07:00:00Z")),
        EndpointsWrite::Nothing
    );
    let mut changed = pods.clone();
    changed[0].ready = false;
    let EndpointsWrite::Update(u) = plan_endpoints(&web(), &changed, Some(&e), None) else {
        panic!("expected update")
    };
    assert_eq!(u.metadata.resource_version.as_deref(), Some("7"));
    assert_eq!(
        names(&u.subsets.as_ref().unwrap()[0].not_ready_addresses),
        ["web-000"]
    );
    // A Service label change alone rewrites.
    let relabelled = svc("web")
        .port(80)
        .selector("app=web")
        .label("team", "a")
        .build();
    assert!(matches!(
        plan_endpoints(&relabelled, &pods, Some(&e), None),
        EndpointsWrite::Update(_)
    ));
}

#[test]
fn no_pods_gives_empty_subsets_and_selectorless_gives_nothing() {
    let e = created(plan_endpoints(&web(), &[], None, None));
    assert_eq!(e.subsets, Some(vec![]));
    let s = svc("db").port(5432).build();
    assert_eq!(
        plan_endpoints(&s, &ready_pods(2), None, None),
        EndpointsWrite::Nothing
    );
}

#[test]
fn subsets_digest_tells_subsets_apart() {
    let base = created(plan_endpoints(&web(), &ready_pods(3), None, None))
        .subsets
        .unwrap();
    let digest = subsets_digest(&base);
    assert_eq!(
        digest,
        subsets_digest(&base.clone()),
        "equal subsets, equal digest"
    );
    let mut not_ready = base.clone();
    let moved = not_ready[0].addresses.as_mut().unwrap().pop().unwrap();
    not_ready[0].not_ready_addresses = Some(vec![moved]);
    let mut renamed = base.clone();
    renamed[0].addresses.as_mut().unwrap()[0].hostname = Some("h".into());
    let mut no_list = base.clone();
    no_list[0].not_ready_addresses = Some(vec![]);
    let others = [vec![], not_ready, renamed, no_list];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(subsets_digest(other), digest, "case {i}");
    }
    // Known by digest, the existing object plans as it does in full.
    let e = created(plan_endpoints(&web(), &ready_pods(3), None, None));
    let by_digest = |pods: &[crate::endpointslice::model::Pod]| {
        plan_endpoints_by_digest(&web(), pods, Some((&e.metadata, digest)), None)
    };
    assert_eq!(by_digest(&ready_pods(3)), EndpointsWrite::Nothing);
    assert_eq!(
        by_digest(&ready_pods(2)),
        plan_endpoints(&web(), &ready_pods(2), Some(&e), None)
    );
}
