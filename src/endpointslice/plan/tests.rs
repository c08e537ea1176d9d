//! Table tests of the EndpointSlice plan, with a tiny in-memory "API server"
//! ([`Cluster`]) that applies plans so multi-step scenarios (scale, one pod
//! changing) see the slices the previous step wrote.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::*;
use crate::endpointslice::fixtures::{pod, ready_pods, svc};
use crate::endpointslice::model::{ContainerPort, Family, NodeZones, Pod, Service, TargetPort};

fn web() -> Service {
    svc("web").port(80).selector("app=web").build()
}

fn opts() -> PlanOptions {
    PlanOptions::default()
}

fn no_zones() -> NodeZones {
    NodeZones::new()
}

// ---- a minimal API server applying plans ----

#[derive(Default)]
struct Cluster {
    slices: Vec<EndpointSlice>,
    next: u32,
}

impl Cluster {
    fn apply(&mut self, plan: &Plan) {
        for d in &plan.delete {
            let before = self.slices.len();
            self.slices.retain(|s| s.metadata.name != d.metadata.name);
            assert_eq!(before - 1, self.slices.len(), "delete of a missing slice");
        }
        for u in &plan.update {
            let slot = self
                .slices
                .iter_mut()
                .find(|s| s.metadata.name == u.metadata.name)
                .expect("update of a missing slice");
            assert_eq!(
                slot.metadata.resource_version, u.metadata.resource_version,
                "stale update"
            );
            *slot = u.clone();
            self.next += 1;
            slot.metadata.resource_version = Some(self.next.to_string());
        }
        for c in &plan.create {
            assert!(c.metadata.name.is_none(), "creates use generateName");
            let mut s = c.clone();
            self.next += 1;
            s.metadata.name = Some(format!(
                "{}{}",
                c.metadata.generate_name.clone().unwrap(),
                self.next
            ));
            s.metadata.resource_version = Some(self.next.to_string());
            self.slices.push(s);
        }
    }

    /// Plans `svc` against the current slices and applies the plan.
    fn sync(&mut self, svc: &Service, pods: &[Pod], zones: &NodeZones) -> Plan {
        let p = plan(svc, pods, zones, &self.slices, &opts());
        self.apply(&p);
        p
    }

    fn slice_of(&self, pod: &str) -> Option<String> {
        self.slices
            .iter()
            .find(|s| s.endpoints.iter().any(|e| target(e) == pod))
            .and_then(|s| s.metadata.name.clone())
    }
}

fn target(ep: &Endpoint) -> String {
    ep.target_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .unwrap_or_default()
}

fn targets(slices: &[EndpointSlice]) -> Vec<String> {
    let mut t: Vec<String> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().map(target))
        .collect();
    t.sort();
    t
}

fn conditions(ep: &Endpoint) -> (bool, bool, bool) {
    let c = ep.conditions.as_ref().expect("conditions");
    (
        c.ready.expect("ready explicit"),
        c.serving.expect("serving explicit"),
        c.terminating.expect("terminating explicit"),
    )
}

fn endpoint_of<'a>(slices: &'a [EndpointSlice], pod: &str) -> &'a Endpoint {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| target(e) == pod)
        .unwrap_or_else(|| panic!("no endpoint for {pod}"))
}

fn port_numbers(s: &EndpointSlice) -> Vec<i32> {
    s.ports.iter().flatten().filter_map(|p| p.port).collect()
}

// ---- selection ----

#[test]
fn selector_matching_picks_namespace_labels_ip_and_live_pods() {
    let s = svc("web").port(80).selector("app=web,tier=fe").build();
    let pods = vec![
        pod("match")
            .labels("app=web,tier=fe,extra=1")
            .ip("10.0.0.1")
            .ready()
            .build(),
        pod("wrong-label")
            .labels("app=web,tier=be")
            .ip("10.0.0.2")
            .ready()
            .build(),
        pod("missing-label")
            .labels("app=web")
            .ip("10.0.0.3")
            .ready()
            .build(),
        pod("other-ns")
            .labels("app=web,tier=fe")
            .ns("kube-system")
            .ip("10.0.0.4")
            .ready()
            .build(),
        pod("no-ip").labels("app=web,tier=fe").ready().build(),
        pod("completed")
            .labels("app=web,tier=fe")
            .ip("10.0.0.6")
            .terminal()
            .build(),
        pod("not-ready")
            .labels("app=web,tier=fe")
            .ip("10.0.0.7")
            .build(),
        pod("terminating")
            .labels("app=web,tier=fe")
            .ip("10.0.0.8")
            .ready()
            .terminating()
            .build(),
    ];
    let p = plan(&s, &pods, &no_zones(), &[], &opts());
    assert_eq!(p.create.len(), 1);
    assert_eq!(targets(&p.create), ["match", "not-ready", "terminating"]);
    let addrs: BTreeSet<&str> = p.create[0]
        .endpoints
        .iter()
        .flat_map(|e| &e.addresses)
        .map(String::as_str)
        .collect();
    assert_eq!(addrs, BTreeSet::from(["10.0.0.1", "10.0.0.7", "10.0.0.8"]));
}

#[test]
fn selectorless_service_gets_no_plan() {
    let s = svc("db").port(5432).build();
    let p = plan(&s, &ready_pods(3), &no_zones(), &[], &opts());
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn empty_selector_selects_every_pod_of_the_namespace() {
    let s = svc("all").port(80).selector("").build();
    let pods = vec![
        pod("a").labels("x=1").ip("10.0.0.1").build(),
        pod("b").labels("").ip("10.0.0.2").build(),
        pod("c").ns("other").ip("10.0.0.3").build(),
    ];
    let p = plan(&s, &pods, &no_zones(), &[], &opts());
    assert_eq!(targets(&p.create), ["a", "b"]);
}

// ---- conditions ----

#[test]
fn conditions_table() {
    // (pod ready, terminating, publishNotReadyAddresses) → (ready, serving, terminating)
    let table = [
        ((true, false, false), (true, true, false)),
        ((false, false, false), (false, false, false)),
        ((true, true, false), (false, true, true)),
        ((false, true, false), (false, false, true)),
        ((false, false, true), (true, false, false)),
        ((true, true, true), (true, true, true)),
        ((false, true, true), (true, false, true)),
    ];
    for ((ready, term, publish), want) in table {
        let mut b = svc("web").port(80).selector("app=web");
        if publish {
            b = b.publish_not_ready();
        }
        let mut pb = pod("p").ip("10.0.0.1");
        if ready {
            pb = pb.ready();
        }
        if term {
            pb = pb.terminating();
        }
        let p = plan(&b.build(), &[pb.build()], &no_zones(), &[], &opts());
        assert_eq!(
            conditions(endpoint_of(&p.create, "p")),
            want,
            "input {:?}",
            (ready, term, publish)
        );
    }
}

#[test]
fn readiness_and_terminating_transitions_update_the_one_slice_in_place() {
    let s = web();
    let mut c = Cluster::default();
    let mut pods = ready_pods(3);
    c.sync(&s, &pods, &no_zones());
    let name = c.slices[0].metadata.name.clone();

    // web-001 loses Ready.
    pods[1].ready = false;
    let p = c.sync(&s, &pods, &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name, name);
    assert_eq!(
        conditions(endpoint_of(&c.slices, "web-001")),
        (false, false, false)
    );
    assert_eq!(
        conditions(endpoint_of(&c.slices, "web-000")),
        (true, true, false)
    );

    // web-002 starts terminating while still Ready: serving, not ready.
    pods[2].terminating = true;
    c.sync(&s, &pods, &no_zones());
    assert_eq!(
        conditions(endpoint_of(&c.slices, "web-002")),
        (false, true, true)
    );

    // web-001 Ready again.
    pods[1].ready = true;
    c.sync(&s, &pods, &no_zones());
    assert_eq!(
        conditions(endpoint_of(&c.slices, "web-001")),
        (true, true, false)
    );
    assert_eq!(c.slices.len(), 1);
    assert_eq!(c.slices[0].metadata.name, name);

    // web-002 finally goes away.
    pods.remove(2);
    let p = c.sync(&s, &pods, &no_zones());
    assert_eq!(p.update.len(), 1);
    assert_eq!(targets(&c.slices), ["web-000", "web-001"]);
}

#[test]
fn publish_not_ready_addresses_makes_unready_pods_ready() {
    let s = svc("web")
        .port(80)
        .selector("app=web")
        .publish_not_ready()
        .build();
    let pods = vec![
        pod("a").ip("10.0.0.1").build(),
        pod("b").ip("10.0.0.2").ready().build(),
    ];
    let p = plan(&s, &pods, &no_zones(), &[], &opts());
    assert_eq!(
        conditions(endpoint_of(&p.create, "a")),
        (true, false, false)
    );
    assert_eq!(conditions(endpoint_of(&p.create, "b")), (true, true, false));
}

// ---- ports ----

#[test]
fn named_target_port_on_different_numbers_gives_two_port_sets() {
    let s = svc("web")
        .port_to("http", 80, TargetPort::Name("http".to_owned()))
        .selector("app=web")
        .build();
    let pods = vec![
        pod("a").ip("10.0.0.1").ready().cport("http", 8080).build(),
        pod("b").ip("10.0.0.2").ready().cport("http", 9090).build(),
        pod("c")
            .ip("10.0.0.3")
            .ready()
            .cport("metrics", 9100)
            .cport("http", 8080)
            .build(),
    ];
    let p = plan(&s, &pods, &no_zones(), &[], &opts());
    assert_eq!(p.create.len(), 2);
    let by_port: BTreeMap<Vec<i32>, Vec<String>> = p
        .create
        .iter()
        .map(|sl| (port_numbers(sl), targets(std::slice::from_ref(sl))))
        .collect();
    assert_eq!(by_port[&vec![8080]], ["a", "c"]);
    assert_eq!(by_port[&vec![9090]], ["b"]);
    let port = &p.create[0].ports.as_ref().unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
}

#[test]
fn pod_without_the_named_port_is_left_out_of_that_port_only() {
    let s = svc("web")
        .port_to("http", 80, TargetPort::Name("http".to_owned()))
        .port_to("admin", 81, TargetPort::Number(9000))
        .selector("app=web")
        .build();
    let pods = vec![
        pod("with")
            .ip("10.0.0.1")
            .ready()
            .cport("http", 8080)
            .build(),
        pod("without")
            .ip("10.0.0.2")
            .ready()
            .cport("other", 8080)
            .build(),
    ];
    let p = plan(&s, &pods, &no_zones(), &[], &opts());
    let by_port: BTreeMap<Vec<i32>, Vec<String>> = p
        .create
        .iter()
        .map(|sl| (port_numbers(sl), targets(std::slice::from_ref(sl))))
        .collect();
    assert_eq!(by_port.len(), 2, "{by_port:?}");
    assert_eq!(by_port[&vec![8080, 9000]], ["with"]);
    assert_eq!(by_port[&vec![9000]], ["without"]);
}

#[test]
fn named_port_must_match_protocol_too() {
    let mut s = svc("dns")
        .port_to("dns", 53, TargetPort::Name("dns".to_owned()))
        .selector("app=web")
        .build();
    s.ports[0].protocol = "UDP".to_owned();
    let mut p0 = pod("a").ip("10.0.0.1").ready().cport("dns", 5353).build();
    p0.container_ports.push(ContainerPort {
        name: "dns".to_owned(),
        port: 1053,
        protocol: "UDP".to_owned(),
    });
    let p = plan(&s, &[p0], &no_zones(), &[], &opts());
    assert_eq!(port_numbers(&p.create[0]), [1053]);
}

// ---- sizing and churn ----

#[test]
fn two_hundred_fifty_pods_make_three_slices_without_duplicates() {
    let p = plan(&web(), &ready_pods(250), &no_zones(), &[], &opts());
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(p.create.len(), 3);
    let mut sizes: Vec<usize> = p.create.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);
    let all = targets(&p.create);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 250);
    assert_eq!(unique.len(), 250);
}

#[test]
fn max_endpoints_per_slice_is_honoured_and_zero_means_one() {
    for (max, want_slices) in [(7, 5), (1, 30), (0, 30), (1000, 1)] {
        let o = PlanOptions {
            max_endpoints_per_slice: max,
            ..opts()
        };
        let p = plan(&web(), &ready_pods(30), &no_zones(), &[], &o);
        assert_eq!(p.create.len(), want_slices, "max {max}");
        assert!(p.create.iter().all(|s| s.endpoints.len() <= max.max(1)));
        assert_eq!(targets(&p.create).len(), 30);
    }
}

#[test]
fn unchanged_desired_state_plans_no_writes() {
    let mut c = Cluster::default();
    let pods = ready_pods(250);
    c.sync(&web(), &pods, &no_zones());
    let again = plan(&web(), &pods, &no_zones(), &c.slices, &opts());
    assert!(again.is_empty(), "{again:?}");
    // Pod order does not matter either.
    let mut reversed = pods.clone();
    reversed.reverse();
    assert!(plan(&web(), &reversed, &no_zones(), &c.slices, &opts()).is_empty());
    // Nor does the trigger time alone.
    let o = PlanOptions {
        trigger_time: Some("2026-01-01T00:00:00Z".to_owned()),
        ..opts()
    };
    assert!(plan(&web(), &pods, &no_zones(), &c.slices, &o).is_empty());
}

#[test]
fn scale_250_to_10_deletes_emptied_slices_and_rewrites_only_the_survivor() {
    let mut c = Cluster::default();
    let pods = ready_pods(250);
    c.sync(&web(), &pods, &no_zones());
    // Keep 10 pods that share one slice.
    let keep_slice = c.slice_of("web-000").unwrap();
    let kept: Vec<Pod> = pods
        .iter()
        .filter(|p| c.slice_of(&p.name).as_ref() == Some(&keep_slice))
        .take(10)
        .cloned()
        .collect();
    assert_eq!(kept.len(), 10);
    let p = c.sync(&web(), &kept, &no_zones());
    assert!(p.create.is_empty());
    assert_eq!(p.delete.len(), 2);
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name.as_ref(), Some(&keep_slice));
    assert_eq!(c.slices.len(), 1);
    assert_eq!(c.slices[0].endpoints.len(), 10);
}

#[test]
fn removing_one_slices_worth_of_pods_deletes_it_and_touches_nothing_else() {
    let mut c = Cluster::default();
    let pods = ready_pods(250);
    c.sync(&web(), &pods, &no_zones());
    let doomed = c.slice_of("web-249").unwrap();
    let rest: Vec<Pod> = pods
        .iter()
        .filter(|p| c.slice_of(&p.name).as_ref() != Some(&doomed))
        .cloned()
        .collect();
    let p = c.sync(&web(), &rest, &no_zones());
    assert!(p.create.is_empty() && p.update.is_empty(), "{p:?}");
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.delete[0].metadata.name.as_ref(), Some(&doomed));
}

#[test]
fn one_pod_change_rewrites_exactly_one_slice() {
    let s = web();
    let mut c = Cluster::default();
    let mut pods = ready_pods(250);
    c.sync(&s, &pods, &no_zones());

    // Readiness flip: only the slice holding the pod.
    let holder = c.slice_of("web-123").unwrap();
    pods[123].ready = false;
    let p = c.sync(&s, &pods, &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name.as_ref(), Some(&holder));

    // A new pod: into the one slice with room, nothing else.
    pods.push(pod("web-new").ready().ip("10.0.9.9").build());
    let p = c.sync(&s, &pods, &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].endpoints.len(), 51);

    // A pod deleted: only its slice.
    let holder = c.slice_of("web-007").unwrap();
    pods.retain(|p| p.name != "web-007");
    let p = c.sync(&s, &pods, &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name.as_ref(), Some(&holder));

    // A pod's IP changes (recreated under the same name): one slice again.
    let i = pods.iter().position(|p| p.name == "web-200").unwrap();
    pods[i].ips = vec!["10.0.8.8".parse().unwrap()];
    let p = c.sync(&s, &pods, &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 1);
    assert_eq!(targets(&c.slices).len(), 250);
}

#[test]
fn new_pods_beyond_the_room_left_go_to_a_new_slice() {
    let mut c = Cluster::default();
    let mut pods = ready_pods(100);
    c.sync(&web(), &pods, &no_zones());
    pods.extend((0..5).map(|i| {
        pod(&format!("extra-{i}"))
            .ready()
            .ip(&format!("10.1.0.{i}"))
            .build()
    }));
    let p = c.sync(&web(), &pods, &no_zones());
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.create[0].endpoints.len(), 5);
}

#[test]
fn duplicated_endpoints_in_existing_slices_are_removed() {
    let mut c = Cluster::default();
    let pods = ready_pods(3);
    c.sync(&web(), &pods, &no_zones());
    // Someone (an old version, a bad restore) duplicated web-000 into a second slice of ours.
    let mut dup = c.slices[0].clone();
    dup.metadata.name = Some("web-dup".to_owned());
    dup.endpoints.truncate(1);
    c.slices.push(dup);
    let p = c.sync(&web(), &pods, &no_zones());
    assert_eq!(p.delete.len() + p.update.len(), 1, "{p:?}");
    let all = targets(&c.slices);
    assert_eq!(all, ["web-000", "web-001", "web-002"]);
}

// ---- families ----

#[test]
fn dual_stack_writes_one_slice_set_per_family() {
    let s = svc("web")
        .port(80)
        .selector("app=web")
        .families(&[Family::V6, Family::V4])
        .build();
    let pods = vec![
        pod("both").ready().ip("10.0.0.1").ip("fd00::1").build(),
        pod("v4only").ready().ip("10.0.0.2").build(),
        pod("v6only").ready().ip("fd00::3").build(),
    ];
    let p = plan(&s, &pods, &no_zones(), &[], &opts());
    let by_type: BTreeMap<&str, &EndpointSlice> = p
        .create
        .iter()
        .map(|s| (s.address_type.as_str(), s))
        .collect();
    assert_eq!(by_type.len(), 2);
    assert_eq!(
        targets(std::slice::from_ref(by_type["IPv4"])),
        ["both", "v4only"]
    );
    assert_eq!(
        targets(std::slice::from_ref(by_type["IPv6"])),
        ["both", "v6only"]
    );
    assert_eq!(
        endpoint_of(std::slice::from_ref(by_type["IPv6"]), "both").addresses,
        ["fd00::1"]
    );
    assert_eq!(
        endpoint_of(std::slice::from_ref(by_type["IPv4"]), "both").addresses,
        ["10.0.0.1"]
    );
}

#[test]
fn dropping_a_family_deletes_its_slices() {
    let dual = svc("web")
        .port(80)
        .selector("app=web")
        .families(&[Family::V4, Family::V6])
        .build();
    let v4 = web();
    let pods = vec![pod("both").ready().ip("10.0.0.1").ip("fd00::1").build()];
    let mut c = Cluster::default();
    c.sync(&dual, &pods, &no_zones());
    assert_eq!(c.slices.len(), 2);
    let p = c.sync(&v4, &pods, &no_zones());
    assert!(p.create.is_empty() && p.update.is_empty());
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.delete[0].address_type, "IPv6");
}

// ---- per-endpoint fields ----

#[test]
fn hostname_only_when_subdomain_is_the_service_name() {
    // (hostname, subdomain) → endpoint hostname
    let table = [
        (Some("h"), Some("web"), Some("h")),
        (Some("h"), Some("other"), None),
        (Some("h"), None, None),
        (None, Some("web"), None),
    ];
    for (host, sub, want) in table {
        let mut b = pod("p").ready().ip("10.0.0.1");
        if let Some(h) = host {
            b = b.hostname(h);
        }
        if let Some(s) = sub {
            b = b.subdomain(s);
        }
        let p = plan(&web(), &[b.build()], &no_zones(), &[], &opts());
        assert_eq!(
            endpoint_of(&p.create, "p").hostname.as_deref(),
            want,
            "{host:?} {sub:?}"
        );
    }
}

#[test]
fn endpoint_carries_node_zone_and_target_ref() {
    let zones = NodeZones::from([("n1".to_owned(), "z-a".to_owned())]);
    let pods = vec![
        pod("a").ready().ip("10.0.0.1").node("n1").build(),
        pod("b").ready().ip("10.0.0.2").node("n-unknown").build(),
    ];
    let p = plan(&web(), &pods, &zones, &[], &opts());
    let a = endpoint_of(&p.create, "a");
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    assert_eq!(a.zone.as_deref(), Some("z-a"));
    let r = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            r.kind.as_deref(),
            r.namespace.as_deref(),
            r.name.as_deref(),
            r.uid.as_deref()
        ),
        (Some("Pod"), Some("default"), Some("a"), Some("uid-a"))
    );
    let b = endpoint_of(&p.create, "b");
    assert_eq!(b.node_name.as_deref(), Some("n-unknown"));
    assert_eq!(b.zone, None);
    assert!(
        a.hints.is_none() && b.hints.is_none(),
        "no hints without PreferClose"
    );
}

fn zones_of(ep: &Endpoint) -> Option<Vec<String>> {
    ep.hints
        .as_ref()
        .and_then(|h| h.for_zones.as_ref())
        .map(|z| z.iter().map(|z| z.name.clone()).collect())
}

#[test]
fn prefer_close_hints_each_endpoint_to_its_own_zone() {
    let zones = NodeZones::from([
        ("n1".to_owned(), "z-a".to_owned()),
        ("n2".to_owned(), "z-b".to_owned()),
    ]);
    let s = svc("web")
        .port(80)
        .selector("app=web")
        .prefer_close()
        .build();
    let pods = vec![
        pod("a").ready().ip("10.0.0.1").node("n1").build(),
        pod("b").ready().ip("10.0.0.2").node("n2").build(),
    ];
    let p = plan(&s, &pods, &zones, &[], &opts());
    assert_eq!(
        zones_of(endpoint_of(&p.create, "a")),
        Some(vec!["z-a".to_owned()])
    );
    assert_eq!(
        zones_of(endpoint_of(&p.create, "b")),
        Some(vec!["z-b".to_owned()])
    );

    // A zoneless endpoint gets no hint; the others keep theirs. A not-ready
    // endpoint gets none either.
    let mut more = pods.clone();
    more.push(pod("c").ready().ip("10.0.0.3").node("n3").build());
    more.push(pod("d").ip("10.0.0.4").node("n1").build());
    let p = plan(&s, &more, &zones, &[], &opts());
    assert_eq!(
        zones_of(endpoint_of(&p.create, "a")),
        Some(vec!["z-a".to_owned()])
    );
    assert_eq!(zones_of(endpoint_of(&p.create, "c")), None);
    assert_eq!(zones_of(endpoint_of(&p.create, "d")), None);
    assert_eq!(endpoint_of(&p.create, "d").zone.as_deref(), Some("z-a"));

    // Turning PreferClose off removes the hints from the written slices.
    let mut c = Cluster::default();
    c.sync(&s, &pods, &zones);
    let p = c.sync(&web(), &pods, &zones);
    assert_eq!(p.update.len(), 1);
    assert!(c.slices[0].endpoints.iter().all(|e| e.hints.is_none()));
}

// ---- metadata and ownership ----

#[test]
fn labels_owner_and_name_prefix() {
    let s = svc("web")
        .port(80)
        .selector("app=web")
        .label("team", "a")
        .label(SERVICE_NAME_LABEL, "spoofed")
        .label(MANAGED_BY_LABEL, "someone-else")
        .label(HEADLESS_LABEL, "")
        .build();
    let p = plan(&s, &ready_pods(1), &no_zones(), &[], &opts());
    let m = &p.create[0].metadata;
    assert_eq!(
        m.labels.clone().unwrap(),
        BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            (SERVICE_NAME_LABEL.to_owned(), "web".to_owned()),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        ])
    );
    assert_eq!(m.generate_name.as_deref(), Some("web-"));
    assert_eq!(m.namespace.as_deref(), Some("default"));
    let owner = &m.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("v1", "Service", "web", "uid-web", Some(true))
    );

    let headless = svc("web").headless().selector("app=web").build();
    let p = plan(&headless, &ready_pods(1), &no_zones(), &[], &opts());
    let labels = p.create[0].metadata.labels.clone().unwrap();
    assert_eq!(labels.get(HEADLESS_LABEL).map(String::as_str), Some(""));
    assert_eq!(
        p.create[0].ports.as_deref(),
        Some(&[][..]),
        "headless without ports: empty port list"
    );
}

#[test]
fn service_label_change_updates_every_slice() {
    let mut c = Cluster::default();
    let pods = ready_pods(150);
    c.sync(&web(), &pods, &no_zones());
    let relabelled = svc("web")
        .port(80)
        .selector("app=web")
        .label("team", "b")
        .build();
    let p = c.sync(&relabelled, &pods, &no_zones());
    assert_eq!(p.update.len(), 2);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert!(c.slices.iter().all(|s| {
        s.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("team")
            .map(String::as_str)
            == Some("b")
    }));
    assert!(plan(&relabelled, &pods, &no_zones(), &c.slices, &opts()).is_empty());
}

#[test]
fn trigger_time_is_written_on_creates_and_updates() {
    let o = PlanOptions {
        trigger_time: Some("2026-12-05T06:00:00Z".to_owned()),
        ..opts()
    };
    let p = plan(&web(), &ready_pods(1), &no_zones(), &[], &o);
    let ann = p.create[0].metadata.annotations.clone().unwrap();
    assert_eq!(
        ann.get(TRIGGER_TIME_ANNOTATION).map(String::as_str),
        Some("2026-12-05T06:00:00Z")
    );
    let p = plan(&web(), &ready_pods(1), &no_zones(), &[], &opts());
    assert!(p.create[0].metadata.annotations.is_none());
}

#[test]
fn foreign_slices_are_never_touched() {
    let foreign = |managed_by: Option<&str>, service: &str, ns: &str| {
        let mut labels = BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())]);
        if let Some(m) = managed_by {
            labels.insert(MANAGED_BY_LABEL.to_owned(), m.to_owned());
        }
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("foreign-{}", managed_by.unwrap_or("none"))),
                namespace: Some(ns.to_owned()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".to_owned(),
            endpoints: vec![Endpoint {
                addresses: vec!["192.0.2.1".to_owned()],
                ..Endpoint::default()
            }],
            ports: None,
        }
    };
    let existing = vec![
        foreign(Some("endpointslice-controller.k8s.io"), "web", "default"),
        foreign(
            Some("endpointslicemirroring-controller.k8s.io"),
            "web",
            "default",
        ),
        foreign(None, "web", "default"),
        {
            let mut s = foreign(Some(MANAGED_BY), "web", "elsewhere");
            s.metadata.name = Some("ours-other-ns".to_owned());
            s
        },
    ];
    let p = plan(&web(), &ready_pods(2), &no_zones(), &existing, &opts());
    assert!(p.update.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.create.len(), 1);
    assert_eq!(targets(&p.create), ["web-000", "web-001"]);
    // With no pods, the foreign slices still stay and ours is a placeholder.
    let p = plan(&web(), &[], &no_zones(), &existing, &opts());
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].endpoints.is_empty());
}

#[test]
fn slices_of_an_older_service_with_the_same_name_are_replaced() {
    let mut c = Cluster::default();
    let pods = ready_pods(2);
    c.sync(&web(), &pods, &no_zones());
    let old_name = c.slices[0].metadata.name.clone();
    let mut reborn = web();
    reborn.uid = "uid-web-2".to_owned();
    let p = c.sync(&reborn, &pods, &no_zones());
    // The create and the delete fold into one update of the stale slice.
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name, old_name);
    assert_eq!(
        c.slices[0].metadata.owner_references.as_ref().unwrap()[0].uid,
        "uid-web-2"
    );
    assert!(plan(&reborn, &pods, &no_zones(), &c.slices, &opts()).is_empty());
}

// ---- placeholder ----

#[test]
fn placeholder_slice_when_no_endpoints_and_it_is_kept_then_reused() {
    let mut c = Cluster::default();
    let p = c.sync(&web(), &[], &no_zones());
    assert_eq!(p.create.len(), 1);
    assert!(c.slices[0].endpoints.is_empty());
    assert_eq!(c.slices[0].address_type, "IPv4");
    assert_eq!(c.slices[0].ports.as_deref(), Some(&[][..]));
    let placeholder = c.slices[0].metadata.name.clone();

    // Still nothing: no writes.
    assert!(plan(&web(), &[], &no_zones(), &c.slices, &opts()).is_empty());
    // Unready-but-selected pods without IP are not endpoints either.
    assert!(plan(&web(), &[pod("x").build()], &no_zones(), &c.slices, &opts()).is_empty());

    // Pods appear: the placeholder is rewritten, not deleted and recreated.
    let p = c.sync(&web(), &ready_pods(2), &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name, placeholder);
    assert_eq!(port_numbers(&c.slices[0]), [80]);

    // And gone again: back to a placeholder in the same slice.
    let p = c.sync(&web(), &[], &no_zones());
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(c.slices.len(), 1);
    assert!(c.slices[0].endpoints.is_empty());
}

// ---- invariants over random histories ----

mod invariants {
    use proptest::prelude::*;

    use super::*;

    /// One step: for each of 40 pod slots, absent / not ready / ready / terminating.
    fn step() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..4, 40)
    }

    fn pods_for(states: &[u8]) -> Vec<Pod> {
        states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != 0)
            .map(|(i, s)| {
                let mut p = pod(&format!("p{i:02}")).ip(&format!("10.2.0.{}", i + 1));
                if *s >= 2 {
                    p = p.ready();
                }
                if *s == 3 {
                    p = p.terminating();
                }
                p.build()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the history, after applying each plan: every selected pod
        /// is in exactly one slice with its current conditions, no slice is
        /// over the limit or empty, and planning again writes nothing.
        #[test]
        fn applied_plans_converge(history in proptest::collection::vec(step(), 1..6)) {
            let o = PlanOptions { max_endpoints_per_slice: 7, ..opts() };
            let mut c = Cluster::default();
            for states in &history {
                let pods = pods_for(states);
                let p = plan(&web(), &pods, &no_zones(), &c.slices, &o);
                c.apply(&p);
                let mut want: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
                want.sort();
                prop_assert_eq!(targets(&c.slices), want);
                for s in &c.slices {
                    prop_assert!(s.endpoints.len() <= 7);
                    prop_assert!(!s.endpoints.is_empty() || pods.is_empty());
                }
                for p in &pods {
                    let got = conditions(endpoint_of(&c.slices, &p.name));
                    prop_assert_eq!(got, (p.ready && !p.terminating, p.ready, p.terminating));
                }
                let again = plan(&web(), &pods, &no_zones(), &c.slices, &o);
                prop_assert!(again.is_empty(), "not converged: {:?}", again);
            }
        }
    }
}

#[test]
fn endpoints_after_counts_the_applied_result_of_our_writers_only() {
    let mut c = Cluster::default();
    let pods = ready_pods(250);
    // A foreign slice naming the same Service never counts.
    let mut foreign = EndpointSlice {
        endpoints: vec![Endpoint::default(); 7],
        ..EndpointSlice::default()
    };
    foreign.metadata.name = Some("web-upstream".into());
    foreign.metadata.labels = Some(BTreeMap::from([
        (SERVICE_NAME_LABEL.to_owned(), "web".to_owned()),
        (
            MANAGED_BY_LABEL.to_owned(),
            "endpointslice-controller.k8s.io".to_owned(),
        ),
    ]));
    c.slices.push(foreign);
    for n in [250, 10, 0, 120] {
        let p = plan(&web(), &pods[..n], &no_zones(), &c.slices, &opts());
        let predicted = p.endpoints_after(&c.slices, &[MANAGED_BY]);
        c.apply(&p);
        let actual: usize = c
            .slices
            .iter()
            .filter(|s| s.metadata.name.as_deref() != Some("web-upstream"))
            .map(|s| s.endpoints.len())
            .sum();
        assert_eq!((predicted, actual), (n, n), "{n} pods");
    }
}

#[test]
fn merge_keeps_every_write_of_both_plans() {
    let named = |n: &str| {
        let mut s = EndpointSlice::default();
        s.metadata.name = Some(n.to_owned());
        s
    };
    let mut a = Plan {
        create: vec![named("a1")],
        update: vec![named("a2")],
        delete: vec![],
    };
    a.merge(Plan {
        create: vec![],
        update: vec![named("b1")],
        delete: vec![named("b2")],
    });
    let names = |v: &[EndpointSlice]| {
        v.iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a.create), ["a1"]);
    assert_eq!(names(&a.update), ["a2", "b1"]);
    assert_eq!(names(&a.delete), ["b2"]);
}
