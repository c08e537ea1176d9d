//! A cached EndpointSlice: per endpoint the addresses as IPs, the pod
//! `targetRef` as name and uid, node and zone names shared; about a fifth of
//! the k8s-openapi object. [`SliceRecord::to_api`] gives back the object the
//! planner compares and rewrites.

use std::sync::Arc;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};

use super::meta::{Addr, Meta, Target, shared_str};
use super::{Placement, Shared};

/// `Option<bool>` in two bits.
fn tri(b: Option<bool>) -> u8 {
    match b {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    }
}

fn untri(bits: u8) -> Option<bool> {
    match bits & 3 {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// Set when `conditions` is present.
const HAS_CONDITIONS: u8 = 0x80;

fn pack(c: Option<&EndpointConditions>) -> u8 {
    c.map_or(0, |c| {
        HAS_CONDITIONS | tri(c.ready) | (tri(c.serving) << 2) | (tri(c.terminating) << 4)
    })
}

fn unpack(bits: u8) -> Option<EndpointConditions> {
    (bits & HAS_CONDITIONS != 0).then(|| EndpointConditions {
        ready: untri(bits),
        serving: untri(bits >> 2),
        terminating: untri(bits >> 4),
    })
}

/// The addresses of an endpoint: one canonical IP (the usual case) in place.
#[derive(Clone, Debug, PartialEq)]
enum Addresses {
    One(Addr),
    Many(Box<[Addr]>),
}

/// What endpoints rarely carry, boxed.
#[derive(Clone, Debug, PartialEq)]
struct Rare {
    hostname: Option<String>,
    hints: Option<k8s_openapi::api::discovery::v1::EndpointHints>,
    deprecated_topology: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq)]
struct EndpointRecord {
    addresses: Addresses,
    target: Target,
    /// Node name and zone.
    placement: Arc<Placement>,
    rare: Option<Box<Rare>>,
    conditions: u8,
}

impl EndpointRecord {
    fn new(ep: &Endpoint, namespace: &str, shared: &mut Shared) -> EndpointRecord {
        let addresses = match ep.addresses.as_slice() {
            [one] => Addresses::One(Addr::new(one)),
            more => Addresses::Many(more.iter().map(|a| Addr::new(a)).collect()),
        };
        let rare = (ep.hostname.is_some()
            || ep.hints.is_some()
            || ep.deprecated_topology.is_some())
        .then(|| {
            Box::new(Rare {
                hostname: ep.hostname.clone(),
                hints: ep.hints.clone(),
                deprecated_topology: ep.deprecated_topology.clone(),
            })
        });
        EndpointRecord {
            addresses,
            target: Target::new(ep.target_ref.as_ref(), namespace),
            placement: {
                let node = shared_str(shared, ep.node_name.as_ref());
                let zone = shared_str(shared, ep.zone.as_ref());
                shared.placements.intern_owned((node, zone))
            },
            rare,
            conditions: pack(ep.conditions.as_ref()),
        }
    }

    fn to_api(&self, namespace: &str) -> Endpoint {
        let addresses = match &self.addresses {
            Addresses::One(a) => vec![a.to_string()],
            Addresses::Many(v) => v.iter().map(Addr::to_string).collect(),
        };
        let rare = self.rare.as_deref();
        Endpoint {
            addresses,
            conditions: unpack(self.conditions),
            deprecated_topology: rare.and_then(|r| r.deprecated_topology.clone()),
            hints: rare.and_then(|r| r.hints.clone()),
            hostname: rare.and_then(|r| r.hostname.clone()),
            node_name: self.placement.0.as_deref().map(str::to_owned),
            target_ref: self.target.to_api(namespace),
            zone: self.placement.1.as_deref().map(str::to_owned),
        }
    }
}

/// A cached EndpointSlice; see the module doc.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceRecord {
    meta: Meta,
    address_type: Box<str>,
    ports: Option<Box<[EndpointPort]>>,
    endpoints: Box<[EndpointRecord]>,
}

impl SliceRecord {
    /// The record of `slice` (of namespace `namespace`).
    pub fn new(slice: &EndpointSlice, namespace: &str, shared: &mut Shared) -> SliceRecord {
        SliceRecord {
            meta: Meta::new(&slice.metadata, shared),
            address_type: slice.address_type.as_str().into(),
            ports: slice.ports.as_deref().map(Into::into),
            endpoints: slice
                .endpoints
                .iter()
                .map(|e| EndpointRecord::new(e, namespace, shared))
                .collect(),
        }
    }

    /// The slice `namespace/name` this record was made from (metadata as
    /// [`Meta::to_api`] keeps it).
    pub fn to_api(&self, namespace: &str, name: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: self.meta.to_api(namespace, name),
            address_type: self.address_type.to_string(),
            endpoints: self.endpoints.iter().map(|e| e.to_api(namespace)).collect(),
            ports: self.ports.as_deref().map(<[_]>::to_vec),
        }
    }

    /// The slice's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::fixtures::{pod, svc};
    use crate::endpointslice::model::{Family, NodeZones};
    use crate::endpointslice::plan::{PlanOptions, plan};
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{EndpointHints, ForZone};
    use std::collections::BTreeMap;

    /// Slices as the planner writes them, then as the API server returns them.
    fn slices() -> Vec<EndpointSlice> {
        let s = svc("web")
            .port(80)
            .selector("app=web")
            .families(&[Family::V4, Family::V6])
            .prefer_close()
            .build();
        let pods = vec![
            pod("web-0").ready().ip("10.0.0.1").node("n1").build(),
            pod("web-1").ip("10.0.0.2").ip("fd00::2").node("n2").build(),
            pod("web-2")
                .ready()
                .ip("10.0.0.3")
                .terminating()
                .hostname("h")
                .subdomain("web")
                .build(),
        ];
        let zones: NodeZones = BTreeMap::from([("n1".to_owned(), "a".to_owned())]);
        let opts = PlanOptions {
            trigger_time: Some("2026-12-01T10:00:00Z".into()),
            ..PlanOptions::default()
        };
        let mut out = plan(&s, &pods, &zones, &[], &opts).create;
        out.extend(
            plan(
                &svc("empty").port(80).selector("app=none").build(),
                &[],
                &zones,
                &[],
                &opts,
            )
            .create,
        );
        for (i, slice) in out.iter_mut().enumerate() {
            slice.metadata.name = Some(format!("slice-{i}"));
            slice.metadata.resource_version = Some(format!("{}", 100 + i));
            slice.metadata.uid = Some(format!("uid-slice-{i}"));
        }
        // One endpoint of every odd shape a hand-edited slice could hold.
        let odd = Endpoint {
            addresses: vec!["10.0.0.9".into(), "010.0.0.10".into()],
            conditions: Some(EndpointConditions {
                ready: None,
                serving: Some(false),
                terminating: None,
            }),
            deprecated_topology: Some(BTreeMap::from([("k".into(), "v".into())])),
            hints: Some(EndpointHints {
                for_zones: Some(vec![ForZone { name: "b".into() }]),
                for_nodes: None,
            }),
            hostname: Some("x".into()),
            node_name: None,
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("elsewhere".into()),
                name: Some("p".into()),
                ..ObjectReference::default()
            }),
            zone: Some("b".into()),
        };
        let mut odd_slice = out[0].clone();
        odd_slice.metadata.name = Some("odd".into());
        odd_slice.endpoints = vec![odd, Endpoint::default()];
        odd_slice.ports = None;
        out.push(odd_slice);
        out
    }

    #[test]
    fn slices_round_trip() {
        let mut shared = Shared::default();
        let all = slices();
        assert!(all.len() >= 4, "v4, v6, placeholder and odd slices");
        for s in all {
            let name = s.metadata.name.clone().expect("name");
            let rec = SliceRecord::new(&s, "default", &mut shared);
            assert_eq!(rec.to_api("default", &name), s, "{name}");
        }
    }

    #[test]
    fn conditions_pack_every_combination() {
        let values = [None, Some(false), Some(true)];
        for ready in values {
            for serving in values {
                for terminating in values {
                    let c = EndpointConditions {
                        ready,
                        serving,
                        terminating,
                    };
                    assert_eq!(unpack(pack(Some(&c))), Some(c));
                }
            }
        }
        assert_eq!(unpack(pack(None)), None);
    }
}
