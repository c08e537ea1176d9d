//! Fuzz target: one API object as JSON (Service, EndpointSlice, Endpoints,
//! Pod or Namespace, chosen by its `kind`) → [`convert`] → the index.
//!
//! Properties, for an object that converts:
//! - converted names are lower-case (the index compares bytes);
//! - applied to the fuzz cluster's index, every name the object makes
//!   (service, SRV, endpoint hostnames, pod, PTR of each IP) looks up without
//!   panicking, and each answer encodes into a message that re-parses strictly
//!   with exactly the records of the answer;
//! - applying twice is the same as once, and deleting it from an index that
//!   held only it leaves no service and no endpoint behind.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query as Question};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::de::DeserializeOwned;

use super::{cluster, reparse};
use crate::index::{
    ClusterIndex, IndexUpdate, Kind, LookupOptions, LookupRequest, Object, PodMode,
};
use crate::watch::convert;

/// What came of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not JSON, no known `kind`, or not that kind's shape.
    Unreadable,
    /// The conversion refused it (missing field).
    Refused(convert::ConvertError),
    /// DNS has no use for it (a finished Pod, an FQDN slice, a slice without its label).
    Ignored,
    /// Converted into these objects; `records` answered over all lookups.
    Applied {
        /// The converted objects.
        objects: Vec<Object>,
        /// Records in all answers to the names the objects make.
        records: usize,
    },
}

/// Converts `data` and runs it through the index.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Outcome::Unreadable;
    };
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_string();
    let converted = match kind.as_str() {
        "Service" => typed::<core::Service>(value)
            .map(|s| convert::service(&s).map(|s| vec![Object::Service(s)])),
        "EndpointSlice" => typed::<discovery::EndpointSlice>(value).map(|s| {
            convert::endpoint_slice(&s).map(|s| s.map(Object::EndpointSlice).into_iter().collect())
        }),
        "Endpoints" => typed::<core::Endpoints>(value).map(|e| {
            convert::endpoints(&e).map(|v| v.into_iter().map(Object::EndpointSlice).collect())
        }),
        "Pod" => typed::<core::Pod>(value)
            .map(|p| convert::pod(&p).map(|p| p.map(Object::Pod).into_iter().collect())),
        "Namespace" => typed::<core::Namespace>(value)
            .map(|n| convert::namespace(&n).map(|n| vec![Object::Namespace(n)])),
        _ => None,
    };
    let objects = match converted {
        None => return Outcome::Unreadable,
        Some(Err(e)) => return Outcome::Refused(e),
        Some(Ok(objects)) if objects.is_empty() => return Outcome::Ignored,
        Some(Ok(objects)) => objects,
    };
    for o in &objects {
        for name in names_of(o) {
            assert_eq!(
                name,
                name.to_ascii_lowercase(),
                "a converted name is not lower-case"
            );
        }
    }
    let records = in_cluster(&objects);
    alone_then_deleted(&objects);
    Outcome::Applied { objects, records }
}

fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Option<T> {
    serde_json::from_value(value).ok()
}

/// Namespace and name strings of a converted object.
fn names_of(o: &Object) -> Vec<&str> {
    match o {
        Object::Service(s) => vec![&s.namespace, &s.name],
        Object::EndpointSlice(s) => {
            let mut v: Vec<&str> = vec![&s.namespace, &s.name, &s.service];
            for e in &s.endpoints {
                v.extend(e.hostname.as_deref());
                v.extend(e.pod_name.as_deref());
            }
            v
        }
        Object::Pod(p) => vec![&p.namespace, &p.name],
        Object::Namespace(n) => vec![&n.name],
        Object::ServiceImport(i) => vec![&i.namespace, &i.name],
        Object::MultiClusterSlice(m) => vec![&m.slice.namespace, &m.slice.name, &m.cluster],
    }
}

fn options() -> LookupOptions {
    LookupOptions {
        namespaces: None,
        pods: PodMode::Verified,
        endpoint_pod_names: false,
        ttl: 30,
        noendpoints: false,
        ignore_empty_service: false,
        primary_zone: zone(),
        local_ips: Vec::new(),
        multicluster_zones: Vec::new(),
        zonal: true,
    }
}

fn zone() -> Name {
    Name::from_ascii("cluster.local.").unwrap_or_else(|e| panic!("zone: {e}"))
}

/// Applies the objects to the fuzz cluster and looks up every name they make.
fn in_cluster(objects: &[Object]) -> usize {
    let mut index = cluster::index();
    for o in objects {
        index.apply(IndexUpdate::Apply(o.clone()));
    }
    objects.iter().map(|o| look_up_all(&index, o)).sum()
}

/// Looks up every name `o` makes in `index`, checking each answer encodes
/// strictly; returns the number of records answered.
pub(crate) fn look_up_all(index: &ClusterIndex, o: &Object) -> usize {
    let opts = options();
    questions(o)
        .into_iter()
        .map(|(qname, qtype, zone)| lookup_and_encode(index, &opts, &qname, qtype, zone))
        .sum()
}

/// The questions an object makes answerable.
fn questions(o: &Object) -> Vec<(String, RecordType, &'static str)> {
    let z = "cluster.local.";
    let mut q = Vec::new();
    let mut ptrs: Vec<IpAddr> = Vec::new();
    match o {
        Object::Service(s) => {
            let svc = format!("{}.{}.svc.{z}", s.name, s.namespace);
            for t in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::SRV,
                RecordType::ANY,
            ] {
                q.push((svc.clone(), t, z));
            }
            for p in &s.ports {
                q.push((
                    format!("_{}._{}.{svc}", p.name, p.protocol.as_str()),
                    RecordType::SRV,
                    z,
                ));
            }
            if let crate::index::model::ServiceKind::ClusterIp(ips) = &s.kind {
                ptrs.extend(ips.iter().copied());
            }
            q.push((format!("{}.svc.{z}", s.namespace), RecordType::A, z));
        }
        Object::EndpointSlice(s) => {
            let svc = format!("{}.{}.svc.{z}", s.service, s.namespace);
            q.push((svc.clone(), RecordType::A, z));
            q.push((svc.clone(), RecordType::SRV, z));
            for p in &s.ports {
                q.push((
                    format!("_{}._{}.{svc}", p.name, p.protocol.as_str()),
                    RecordType::SRV,
                    z,
                ));
            }
            for e in &s.endpoints {
                if let Some(h) = &e.hostname {
                    q.push((format!("{h}.{svc}"), RecordType::A, z));
                    q.push((format!("{h}.{svc}"), RecordType::AAAA, z));
                }
                ptrs.extend(e.addresses.iter().copied());
            }
        }
        Object::Pod(p) => {
            for ip in &p.ips {
                let dashed = ip.to_string().replace(['.', ':'], "-");
                q.push((
                    format!("{dashed}.{}.pod.{z}", p.namespace),
                    RecordType::A,
                    z,
                ));
                q.push((
                    format!("{dashed}.{}.pod.{z}", p.namespace),
                    RecordType::AAAA,
                    z,
                ));
            }
        }
        Object::Namespace(n) => q.push((format!("{}.svc.{z}", n.name), RecordType::NS, z)),
        // The API objects fuzzed here never convert to MCS records.
        Object::ServiceImport(_) | Object::MultiClusterSlice(_) => {}
    }
    for ip in ptrs {
        let zone = if ip.is_ipv4() {
            "in-addr.arpa."
        } else {
            "ip6.arpa."
        };
        q.push((Name::from(ip).to_ascii(), RecordType::PTR, zone));
    }
    q
}

/// Looks `qname` up (if it is a valid name) and checks its answer encodes
/// strictly; returns the number of records answered.
fn lookup_and_encode(
    index: &ClusterIndex,
    opts: &LookupOptions,
    qname: &str,
    qtype: RecordType,
    zone: &str,
) -> usize {
    let (Ok(name), Ok(zone)) = (Name::from_ascii(qname), Name::from_ascii(zone)) else {
        return 0; // a label over 63 bytes or a name over 255: no client can ask it
    };
    let r = index.lookup(
        opts,
        &LookupRequest {
            qname: &name,
            zone: &zone,
            qtype,
        },
    );
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.metadata.response_code = r.rcode;
    m.add_query(Question::query(name.clone(), qtype));
    m.add_answers(r.answers.iter().cloned());
    m.add_authorities(r.authority.iter().cloned());
    m.add_additionals(r.additionals.iter().cloned());
    let bytes = m
        .to_vec()
        .unwrap_or_else(|e| panic!("the answer to {name} {qtype} does not encode: {e}"));
    let m = reparse(&bytes).message;
    assert_eq!(
        [m.answers, m.authorities, m.additionals],
        [
            r.answers.clone(),
            r.authority.clone(),
            r.additionals.clone()
        ],
        "{name} {qtype}: the records read back differ from the answer"
    );
    r.answers.len() + r.authority.len() + r.additionals.len()
}

/// On an otherwise empty index: applying twice equals once, and deleting
/// the objects empties it again.
fn alone_then_deleted(objects: &[Object]) {
    let mut index = ClusterIndex::default();
    for o in objects {
        index.apply(IndexUpdate::Apply(o.clone()));
    }
    let once = (index.service_count(), index.endpoint_count());
    for o in objects {
        index.apply(IndexUpdate::Apply(o.clone()));
    }
    assert_eq!(
        (index.service_count(), index.endpoint_count()),
        once,
        "apply is not idempotent"
    );
    for o in objects {
        let (kind, namespace, name): (Kind, &str, &str) = match o {
            Object::Service(s) => (Kind::Service, &s.namespace, &s.name),
            Object::EndpointSlice(s) => (Kind::EndpointSlice, &s.namespace, &s.name),
            Object::Pod(p) => (Kind::Pod, &p.namespace, &p.name),
            Object::Namespace(n) => (Kind::Namespace, "", &n.name),
            Object::ServiceImport(i) => (Kind::ServiceImport, &i.namespace, &i.name),
            Object::MultiClusterSlice(m) => {
                (Kind::MultiClusterSlice, &m.slice.namespace, &m.slice.name)
            }
        };
        index.apply(IndexUpdate::Delete {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    assert_eq!(
        (index.service_count(), index.endpoint_count()),
        (0, 0),
        "deleting what was applied leaves records behind"
    );
}
