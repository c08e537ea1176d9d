//! A cached v1 Endpoints object: per address the IP in place, the pod
//! `targetRef` as name and uid, node names shared. [`EndpointsRecord::to_api`]
//! gives back the object [`super::super::endpoints::plan_endpoints`] compares
//! and [`super::super::mirror::plan_mirror`] mirrors.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};

use super::Shared;
use super::meta::{Addr, Meta, Target, shared_str};

#[derive(Clone, Debug, PartialEq)]
struct AddressRecord {
    ip: Addr,
    target: Target,
    node_name: Option<Arc<str>>,
    hostname: Option<Box<str>>,
}

impl AddressRecord {
    fn new(a: &EndpointAddress, namespace: &str, shared: &mut Shared) -> AddressRecord {
        AddressRecord {
            ip: Addr::new(&a.ip),
            target: Target::new(a.target_ref.as_ref(), namespace),
            node_name: shared_str(shared, a.node_name.as_ref()),
            hostname: a.hostname.as_deref().map(Into::into),
        }
    }

    fn to_api(&self, namespace: &str) -> EndpointAddress {
        EndpointAddress {
            hostname: self.hostname.as_deref().map(str::to_owned),
            ip: self.ip.to_string(),
            node_name: self.node_name.as_deref().map(str::to_owned),
            target_ref: self.target.to_api(namespace),
        }
    }
}

type Addresses = Option<Box<[AddressRecord]>>;

#[derive(Clone, Debug, PartialEq)]
struct SubsetRecord {
    addresses: Addresses,
    not_ready: Addresses,
    ports: Option<Box<[EndpointPort]>>,
}

/// A cached Endpoints object; see the module doc.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointsRecord {
    meta: Meta,
    subsets: Option<Box<[SubsetRecord]>>,
}

impl EndpointsRecord {
    /// The record of `ep` (of namespace `namespace`).
    pub fn new(ep: &Endpoints, namespace: &str, shared: &mut Shared) -> EndpointsRecord {
        let mut addresses = |v: &Option<Vec<EndpointAddress>>| -> Addresses {
            v.as_ref().map(|v| {
                v.iter()
                    .map(|a| AddressRecord::new(a, namespace, shared))
                    .collect()
            })
        };
        let subsets = ep.subsets.as_ref().map(|subsets| {
            subsets
                .iter()
                .map(|s| SubsetRecord {
                    addresses: addresses(&s.addresses),
                    not_ready: addresses(&s.not_ready_addresses),
                    ports: s.ports.as_deref().map(Into::into),
                })
                .collect()
        });
        EndpointsRecord {
            meta: Meta::new(&ep.metadata, shared),
            subsets,
        }
    }

    /// The Endpoints `namespace/name` this record was made from (metadata
    /// as [`Meta::to_api`] keeps it).
    pub fn to_api(&self, namespace: &str, name: &str) -> Endpoints {
        let addresses = |v: &Addresses| -> Option<Vec<EndpointAddress>> {
            v.as_ref()
                .map(|v| v.iter().map(|a| a.to_api(namespace)).collect())
        };
        Endpoints {
            metadata: self.meta.to_api(namespace, name),
            subsets: self.subsets.as_ref().map(|subsets| {
                subsets
                    .iter()
                    .map(|s| EndpointSubset {
                        addresses: addresses(&s.addresses),
                        not_ready_addresses: addresses(&s.not_ready),
                        ports: s.ports.as_deref().map(<[_]>::to_vec),
                    })
                    .collect()
            }),
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::endpoints::{EndpointsWrite, plan_endpoints};
    use crate::endpointslice::fixtures::{pod, svc};
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn objects() -> Vec<Endpoints> {
        let s = svc("web")
            .port(80)
            .selector("app=web")
            .label("team", "a")
            .build();
        let pods = vec![
            pod("web-0").ready().ip("10.0.0.1").node("n1").build(),
            pod("web-1").ip("10.0.0.2").node("n1").build(),
            pod("web-2")
                .ready()
                .ip("10.0.0.3")
                .hostname("h")
                .subdomain("web")
                .build(),
        ];
        let EndpointsWrite::Create(mut planned) =
            plan_endpoints(&s, &pods, None, Some("2026-12-01T10:00:00Z"))
        else {
            panic!("a create");
        };
        planned.metadata.resource_version = Some("7".into());
        planned.metadata.uid = Some("uid-ep".into());
        // Hand-made, as mirroring reads them: odd addresses, empty lists, no subsets.
        let hand = Endpoints {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            subsets: Some(vec![
                EndpointSubset {
                    addresses: Some(vec![EndpointAddress {
                        ip: "db.example.com".into(),
                        target_ref: Some(ObjectReference {
                            kind: Some("Node".into()),
                            name: Some("n".into()),
                            ..ObjectReference::default()
                        }),
                        ..EndpointAddress::default()
                    }]),
                    not_ready_addresses: Some(Vec::new()),
                    ports: None,
                },
                EndpointSubset::default(),
            ]),
        };
        let none = Endpoints {
            metadata: ObjectMeta {
                name: Some("empty".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            subsets: None,
        };
        vec![planned, hand, none]
    }

    #[test]
    fn endpoints_round_trip() {
        let mut shared = Shared::default();
        for e in objects() {
            let name = e.metadata.name.clone().expect("name");
            let rec = EndpointsRecord::new(&e, "default", &mut shared);
            assert_eq!(rec.to_api("default", &name), e, "{name}");
        }
    }
}
