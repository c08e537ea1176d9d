//! Table tests of mirroring hand-made Endpoints into EndpointSlices.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{self as core, EndpointAddress, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::endpointslice::fixtures::svc;
use crate::endpointslice::plan::{MANAGED_BY, plan};

fn db() -> Service {
    svc("db").port(5432).build()
}

fn addr(ip: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.to_owned(),
        ..EndpointAddress::default()
    }
}

fn subset(ready: &[&str], not_ready: &[&str], ports: &[(&str, i32)]) -> EndpointSubset {
    EndpointSubset {
        addresses: Some(ready.iter().map(|ip| addr(ip)).collect()),
        not_ready_addresses: Some(not_ready.iter().map(|ip| addr(ip)).collect()),
        ports: Some(
            ports
                .iter()
                .map(|(n, p)| core::EndpointPort {
                    name: Some((*n).to_owned()),
                    port: *p,
                    ..core::EndpointPort::default()
                })
                .collect(),
        ),
    }
}

fn hand_made(subsets: Vec<EndpointSubset>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some("db".to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some("uid-ep-db".to_owned()),
            labels: Some(BTreeMap::from([("team".to_owned(), "data".to_owned())])),
            ..ObjectMeta::default()
        },
        subsets: Some(subsets),
    }
}

fn mopts() -> PlanOptions {
    PlanOptions::mirroring(&PlanOptions::default())
}

/// Applies a plan the way the API server would (names for creates).
fn apply(slices: &mut Vec<EndpointSlice>, p: &Plan) {
    for d in &p.delete {
        slices.retain(|s| s.metadata.name != d.metadata.name);
    }
    for u in &p.update {
        let slot = slices
            .iter_mut()
            .find(|s| s.metadata.name == u.metadata.name)
            .expect("exists");
        *slot = u.clone();
    }
    for (i, c) in p.create.iter().enumerate() {
        let mut s = c.clone();
        s.metadata.name = Some(format!(
            "{}m{}-{i}",
            c.metadata.generate_name.clone().unwrap(),
            slices.len()
        ));
        slices.push(s);
    }
}

fn ips(s: &EndpointSlice) -> Vec<(String, Option<bool>)> {
    s.endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready),
            )
        })
        .collect()
}

#[test]
fn hand_made_endpoints_are_mirrored() {
    let ep = hand_made(vec![subset(
        &["192.0.2.10"],
        &["192.0.2.11"],
        &[("pg", 5432)],
    )]);
    let p = plan_mirror(&db(), Some(&ep), &[], &mopts()).unwrap();
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(p.create.len(), 1);
    let s = &p.create[0];
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(
        ips(s),
        [
            ("192.0.2.10".to_owned(), Some(true)),
            ("192.0.2.11".to_owned(), Some(false))
        ]
    );
    let c = s.endpoints[0].conditions.as_ref().unwrap();
    assert_eq!(
        (c.serving, c.terminating),
        (None, None),
        "mirroring writes only ready"
    );
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("pg"), Some(5432), Some("TCP"))
    );
    assert_eq!(
        s.metadata.labels.clone().unwrap(),
        BTreeMap::from([
            ("team".to_owned(), "data".to_owned()),
            (SERVICE_NAME_LABEL.to_owned(), "db".to_owned()),
            (MANAGED_BY_LABEL.to_owned(), MIRROR_MANAGED_BY.to_owned()),
        ])
    );
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Endpoints", "db", "uid-ep-db")
    );
    assert_eq!(s.metadata.generate_name.as_deref(), Some("db-"));
}

#[test]
fn families_and_port_sets_split_and_bad_ips_are_skipped() {
    let ep = hand_made(vec![
        subset(
            &["192.0.2.10", "2001:db8::10", "not-an-ip"],
            &[],
            &[("pg", 5432)],
        ),
        subset(&["192.0.2.20"], &[], &[("pg", 6432)]),
    ]);
    let p = plan_mirror(&db(), Some(&ep), &[], &mopts()).unwrap();
    let mut got: Vec<(String, Vec<i32>, Vec<String>)> = p
        .create
        .iter()
        .map(|s| {
            (
                s.address_type.clone(),
                s.ports.iter().flatten().filter_map(|p| p.port).collect(),
                s.endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("IPv4".to_owned(), vec![5432], vec!["192.0.2.10".to_owned()]),
            ("IPv4".to_owned(), vec![6432], vec!["192.0.2.20".to_owned()]),
            (
                "IPv6".to_owned(),
                vec![5432],
                vec!["2001:db8::10".to_owned()]
            ),
        ]
    );
}

#[test]
fn unchanged_endpoints_mirror_without_writes_and_a_change_rewrites_one_slice() {
    let mut slices = Vec::new();
    let ep = hand_made(vec![subset(
        &["192.0.2.10", "192.0.2.11"],
        &[],
        &[("pg", 5432)],
    )]);
    let first = plan_mirror(&db(), Some(&ep), &slices, &mopts()).unwrap();
    apply(&mut slices, &first);
    assert!(
        plan_mirror(&db(), Some(&ep), &slices, &mopts())
            .unwrap()
            .is_empty()
    );

    let ep2 = hand_made(vec![subset(
        &["192.0.2.10"],
        &["192.0.2.11"],
        &[("pg", 5432)],
    )]);
    let p = plan_mirror(&db(), Some(&ep2), &slices, &mopts()).unwrap();
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    apply(&mut slices, &p);
    assert_eq!(ips(&slices[0])[1], ("192.0.2.11".to_owned(), Some(false)));
}

#[test]
fn mirrored_slices_go_when_the_source_goes_or_is_not_to_be_mirrored() {
    let ep = hand_made(vec![subset(&["192.0.2.10"], &[], &[("pg", 5432)])]);
    let mut slices = Vec::new();
    let first = plan_mirror(&db(), Some(&ep), &slices, &mopts()).unwrap();
    apply(&mut slices, &first);
    assert_eq!(slices.len(), 1);

    let mut skip = ep.clone();
    skip.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(SKIP_MIRROR_LABEL.to_owned(), "true".to_owned());
    let with_selector = svc("db").port(5432).selector("app=db").build();
    let empty = hand_made(vec![]);
    let cases: [(&str, &Service, Option<&Endpoints>); 4] = [
        ("endpoints deleted", &db(), None),
        ("skip-mirror", &db(), Some(&skip)),
        ("service got a selector", &with_selector, Some(&ep)),
        ("no subsets", &db(), Some(&empty)),
    ];
    for (what, s, e) in cases {
        let p = plan_mirror(s, e, &slices, &mopts()).unwrap();
        assert!(p.create.is_empty() && p.update.is_empty(), "{what}: {p:?}");
        assert_eq!(p.delete.len(), 1, "{what}");
    }
}

#[test]
fn mirroring_and_the_slice_controller_leave_each_other_alone() {
    let ep = hand_made(vec![subset(&["192.0.2.10"], &[], &[("pg", 5432)])]);
    let mut slices = Vec::new();
    let first = plan_mirror(&db(), Some(&ep), &slices, &mopts()).unwrap();
    apply(&mut slices, &first);
    // Upstream's own mirrored slice for the same Service.
    let mut upstream = slices[0].clone();
    upstream.metadata.name = Some("db-upstream".to_owned());
    upstream.metadata.labels.as_mut().unwrap().insert(
        MANAGED_BY_LABEL.to_owned(),
        "endpointslicemirroring-controller.k8s.io".to_owned(),
    );
    slices.push(upstream);
    assert!(
        plan_mirror(&db(), Some(&ep), &slices, &mopts())
            .unwrap()
            .is_empty()
    );
    // The selector planner does not claim mirrored slices either.
    let with_selector = svc("db").port(5432).selector("app=db").build();
    let p = plan(
        &with_selector,
        &[],
        &Default::default(),
        &slices,
        &PlanOptions::default(),
    );
    assert!(p.delete.is_empty() && p.update.is_empty(), "{p:?}");
    assert_eq!(
        p.create[0].metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
        MANAGED_BY
    );
}

#[test]
fn endpoints_without_uid_is_an_error() {
    let mut ep = hand_made(vec![subset(&["192.0.2.10"], &[], &[])]);
    ep.metadata.uid = None;
    let err = plan_mirror(&db(), Some(&ep), &[], &mopts()).unwrap_err();
    assert!(err.to_string().contains("metadata.uid"), "{err}");
}

#[test]
fn at_most_1000_addresses_per_subset() {
    let many: Vec<String> = (0..1200)
        .map(|i| format!("10.1.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let ep = hand_made(vec![subset(&refs, &[], &[("pg", 5432)])]);
    let p = plan_mirror(&db(), Some(&ep), &[], &mopts()).unwrap();
    let total: usize = p.create.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(total, MAX_ADDRESSES_PER_SUBSET);
    assert!(p.create.iter().all(|s| s.endpoints.len() <= 100));
}
