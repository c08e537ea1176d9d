//! Pure conversion of Kubernetes API objects (k8s-openapi) into the slim
//! [`crate::index::model`] records the index keeps.
//!
//! Every source (the manifests reader and the kube-rs watchers) goes
//! through these functions, so a Service read from a file and the same Service
//! read from the API server become the same record. Invariants kept here:
//! every name is lower-cased (DNS is case-insensitive; the index compares
//! bytes), unparsable IPs and port numbers are dropped rather than guessed,
//! names longer than the API server allows reject the object,
//! and nothing of the API object survives the conversion (see the memory
//! warning in `model.rs`). No I/O, no logging, no source-specific defaults:
//! an object without a namespace is an error here, and a source that has a
//! default (the manifests reader uses `default`) fills it in first.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::mcs::ServiceImport;
use crate::index::model::{self, Protocol};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label that ties an imported EndpointSlice to its ServiceImport (MCS API).
pub const MC_SERVICE_NAME_LABEL: &str = "multicluster.kubernetes.io/service-name";
/// The label naming the member cluster an imported EndpointSlice comes from.
pub const MC_SOURCE_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";

/// Longest pod name kept as an endpoint name: it must fit in one DNS label.
const MAX_POD_NAME: usize = 63;
/// Longest name of a Service or Namespace: each is one DNS label (the API
/// server enforces RFC 1035 labels for both).
const MAX_LABEL_NAME: usize = 63;
/// Longest name of any other object (an RFC 1123 subdomain, as the API server enforces).
const MAX_NAME: usize = 253;

/// Why an API object could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A field the conversion needs is absent or empty.
    #[error("{kind} has no {field}")]
    MissingField {
        /// The object's kind (`Service`, ...).
        kind: &'static str,
        /// The JSON path of the missing field (`metadata.name`).
        field: &'static str,
    },
    /// A name longer than the API server allows for the kind: no real cluster
    /// holds it, and as a Service or Namespace it could never be a DNS label.
    #[error("{kind} {field} is {len} characters long (at most {max})")]
    NameTooLong {
        /// The object's kind.
        kind: &'static str,
        /// `metadata.name` or `metadata.namespace`.
        field: &'static str,
        /// Its length (saturated; u32 keeps the error small).
        len: u32,
        /// The limit for the kind.
        max: u32,
    },
    /// A name the index cannot key: it contains `/` (no Kubernetes name
    /// does; the index keys objects by `namespace/name`).
    #[error("{kind} has a {field} containing '/'")]
    InvalidName {
        /// The object's kind.
        kind: &'static str,
        /// The JSON path of the field (`metadata.namespace`).
        field: &'static str,
    },
}

/// The result of a conversion.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// Converts a Service. `type: ExternalName` wins over everything else, then
/// `clusterIP: None` makes it headless; otherwise it answers its ClusterIPs
/// (`spec.clusterIPs`, or `spec.clusterIP` when that list is absent).
pub fn service(svc: &core::Service) -> Result<model::Service> {
    const KIND: &str = "Service";
    let (namespace, name) = namespaced_name(&svc.metadata, KIND)?;
    let spec = svc.spec.as_ref();
    let ports = spec
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
        .collect();
    let kind = match spec {
        Some(s) if s.type_.as_deref() == Some("ExternalName") => {
            let target = s.external_name.as_deref().map(str::trim).unwrap_or("");
            if target.is_empty() {
                return Err(ConvertError::MissingField {
                    kind: KIND,
                    field: "spec.externalName",
                });
            }
            model::ServiceKind::ExternalName(fqdn(target))
        }
        Some(s) if is_headless(s) => model::ServiceKind::Headless,
        Some(s) => {
            let ips: Vec<&String> = match (&s.cluster_ips, &s.cluster_ip) {
                (Some(ips), _) if !ips.is_empty() => ips.iter().collect(),
                (_, Some(ip)) => vec![ip],
                _ => Vec::new(),
            };
            model::ServiceKind::ClusterIp(ips.into_iter().filter_map(|ip| parse_ip(ip)).collect())
        }
        None => model::ServiceKind::ClusterIp(Vec::new()),
    };
    Ok(model::Service {
        namespace,
        name,
        kind,
        ports,
        external: external_ips(svc),
    })
}

/// The addresses `k8s_external` answers for a Service: `spec.externalIPs`,
/// then the LoadBalancer ingress IPs, in that order (CoreDNS's), each once.
/// Ingress entries with only a `hostname` and unparsable addresses are skipped.
fn external_ips(svc: &core::Service) -> Vec<IpAddr> {
    let spec = svc
        .spec
        .as_ref()
        .and_then(|s| s.external_ips.as_deref())
        .unwrap_or_default()
        .iter()
        .map(String::as_str);
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.ip.as_deref());
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in spec.chain(ingress).filter_map(parse_ip) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Converts a discovery.k8s.io/v1 EndpointSlice. `Ok(None)` when DNS has no
/// use for it: no `kubernetes.io/service-name` label, or an address type other
/// than IPv4/IPv6 (FQDN slices); an error when `addressType` is missing. Not-ready endpoints are kept with
/// `ready: false`; the index decides what to answer.
pub fn endpoint_slice(slice: &discovery::EndpointSlice) -> Result<Option<model::EndpointSlice>> {
    slice_owned_by(slice, SERVICE_NAME_LABEL)
}

/// Converts an EndpointSlice an MCS implementation imported (`multicluster`):
/// owned by the ServiceImport its `multicluster.kubernetes.io/service-name`
/// label names, from the member cluster of its
/// `multicluster.kubernetes.io/source-cluster` label (empty when absent).
/// `Ok(None)` as for [`endpoint_slice`] when DNS has no use for it.
pub fn multicluster_slice(
    slice: &discovery::EndpointSlice,
) -> Result<Option<model::MultiClusterSlice>> {
    let Some(converted) = slice_owned_by(slice, MC_SERVICE_NAME_LABEL)? else {
        return Ok(None);
    };
    let cluster = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MC_SOURCE_CLUSTER_LABEL))
        .map_or_else(Box::default, |c| lower(c));
    Ok(Some(model::MultiClusterSlice {
        cluster,
        slice: converted,
    }))
}

/// Converts a ServiceImport (multicluster.x-k8s.io/v1alpha1): `spec.type:
/// Headless` is headless, anything else (the API default `ClusterSetIP`)
/// answers the IPs of `spec.ips`.
pub fn service_import(import: &ServiceImport) -> Result<model::ServiceImport> {
    const KIND: &str = "ServiceImport";
    let (namespace, name) = namespaced_name(&import.metadata, KIND)?;
    let spec = import.spec.as_ref();
    let ports = spec
        .map(|s| s.ports.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
        .collect();
    let kind = match spec {
        Some(s) if s.type_.as_deref() == Some("Headless") => model::ImportKind::Headless,
        _ => model::ImportKind::ClusterSetIp(
            spec.map(|s| s.ips.as_slice())
                .unwrap_or_default()
                .iter()
                .filter_map(|ip| parse_ip(ip))
                .collect(),
        ),
    };
    Ok(model::ServiceImport {
        namespace,
        name,
        kind,
        ports,
    })
}

/// An EndpointSlice owned by the service its label `owner_label` names.
fn slice_owned_by(
    slice: &discovery::EndpointSlice,
    owner_label: &str,
) -> Result<Option<model::EndpointSlice>> {
    const KIND: &str = "EndpointSlice";
    let (namespace, name) = namespaced_name(&slice.metadata, KIND)?;
    let Some(service) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(owner_label))
        .filter(|s| !s.is_empty() && !s.contains('/'))
    else {
        return Ok(None);
    };
    match slice.address_type.as_str() {
        "IPv4" | "IPv6" => {}
        // Required by the API; absent only in a broken object.
        "" => {
            return Err(ConvertError::MissingField {
                kind: KIND,
                field: "addressType",
            });
        }
        _ => return Ok(None),
    }
    let ports = slice
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), p.port))
        .collect();
    let mut zones = Zones::default();
    let endpoints = slice
        .endpoints
        .iter()
        .filter_map(|ep| {
            let mut e = endpoint(
                ep.addresses.iter().map(String::as_str),
                ep.hostname.as_deref(),
                ep.target_ref.as_ref(),
                ep.conditions.as_ref().and_then(|c| c.ready) != Some(false),
            )?;
            e.zone = ep.zone.as_deref().and_then(|z| zones.intern(z));
            Some(e)
        })
        .collect();
    Ok(Some(model::EndpointSlice {
        namespace,
        name,
        service: lower(service),
        ports,
        endpoints,
    }))
}

/// Converts a legacy v1 Endpoints object: one slice per subset, named
/// `<name>-<subset index>`, owned by the Service of the same name. `addresses`
/// become ready endpoints, `notReadyAddresses` not-ready ones.
pub fn endpoints(ep: &core::Endpoints) -> Result<Vec<model::EndpointSlice>> {
    let (namespace, name) = namespaced_name(&ep.metadata, "Endpoints")?;
    let subsets = ep.subsets.as_deref().unwrap_or_default();
    let slices = subsets
        .iter()
        .enumerate()
        .map(|(i, subset)| {
            let ports = subset
                .ports
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
                .collect();
            let ready = subset
                .addresses
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|a| (a, true));
            let not_ready = subset
                .not_ready_addresses
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|a| (a, false));
            let endpoints = ready
                .chain(not_ready)
                .filter_map(|(a, ready)| {
                    endpoint(
                        std::iter::once(a.ip.as_str()),
                        a.hostname.as_deref(),
                        a.target_ref.as_ref(),
                        ready,
                    )
                })
                .collect();
            model::EndpointSlice {
                namespace: namespace.clone(),
                name: format!("{name}-{i}").into(),
                service: name.clone(),
                ports,
                endpoints,
            }
        })
        .collect();
    Ok(slices)
}

/// Converts a Pod. `Ok(None)` for a pod that has finished (phase `Succeeded`
/// or `Failed`): its IP may already belong to another pod.
pub fn pod(pod: &core::Pod) -> Result<Option<model::Pod>> {
    let (namespace, name) = namespaced_name(&pod.metadata, "Pod")?;
    let Some(status) = pod.status.as_ref() else {
        return Ok(Some(model::Pod {
            namespace,
            name,
            ips: Vec::new(),
        }));
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return Ok(None);
    }
    let ips = match (&status.pod_ips, &status.pod_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.iter().filter_map(|p| parse_ip(&p.ip)).collect(),
        (_, Some(ip)) => parse_ip(ip).into_iter().collect(),
        _ => Vec::new(),
    };
    Ok(Some(model::Pod {
        namespace,
        name,
        ips,
    }))
}

/// Converts a Namespace (only its name matters).
pub fn namespace(ns: &core::Namespace) -> Result<model::Namespace> {
    Ok(model::Namespace {
        name: name(&ns.metadata, "Namespace")?,
    })
}

// === helpers ===

fn name(meta: &ObjectMeta, kind: &'static str) -> Result<Box<str>> {
    let max = match kind {
        "Service" | "Namespace" => MAX_LABEL_NAME,
        _ => MAX_NAME,
    };
    key_part(meta.name.as_deref(), kind, "metadata.name", max)
}

fn namespaced_name(meta: &ObjectMeta, kind: &'static str) -> Result<(Box<str>, Box<str>)> {
    let name = name(meta, kind)?;
    let namespace = key_part(
        meta.namespace.as_deref(),
        kind,
        "metadata.namespace",
        MAX_LABEL_NAME,
    )?;
    Ok((namespace, name))
}

/// A non-empty name without `/`, at most `max` characters, lower-cased. The
/// index keys objects by `namespace/name`; a `/` inside either (found by
/// fuzzing) made a key split at the wrong place, so counts and namespaces
/// drifted on replace and delete. A name longer than the API server allows
/// belongs to no real cluster and, for a Service or Namespace, could never be
/// a DNS label.
fn key_part(
    value: Option<&str>,
    kind: &'static str,
    field: &'static str,
    max: usize,
) -> Result<Box<str>> {
    match value {
        Some(v) if v.contains('/') => Err(ConvertError::InvalidName { kind, field }),
        Some(v) if v.len() > max => Err(ConvertError::NameTooLong {
            kind,
            field,
            len: u32::try_from(v.len()).unwrap_or(u32::MAX),
            max: u32::try_from(max).unwrap_or(u32::MAX),
        }),
        Some(v) if !v.is_empty() => Ok(lower(v)),
        _ => Err(ConvertError::MissingField { kind, field }),
    }
}

fn is_headless(spec: &core::ServiceSpec) -> bool {
    let none = |ip: &str| ip.eq_ignore_ascii_case("none");
    spec.cluster_ip.as_deref().is_some_and(none)
        || spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .is_some_and(|ip| none(ip))
}

/// A port, or `None` when its number is absent or out of range or its
/// protocol unknown (such a port cannot be answered).
fn port(name: Option<&str>, protocol: Option<&str>, number: Option<i32>) -> Option<model::Port> {
    let port = u16::try_from(number?).ok().filter(|p| *p != 0)?;
    Some(model::Port {
        name: lower(name.unwrap_or("")),
        protocol: Protocol::from_k8s(protocol)?,
        port,
    })
}

/// One endpoint, or `None` when none of its addresses is an IP.
fn endpoint<'a>(
    addresses: impl Iterator<Item = &'a str>,
    hostname: Option<&str>,
    target: Option<&core::ObjectReference>,
    ready: bool,
) -> Option<model::Endpoint> {
    let addresses: Vec<IpAddr> = addresses.filter_map(parse_ip).collect();
    if addresses.is_empty() {
        return None;
    }
    let pod_name = target
        .filter(|t| t.kind.as_deref() == Some("Pod"))
        .and_then(|t| t.name.as_deref())
        .filter(|n| !n.is_empty() && n.len() <= MAX_POD_NAME)
        .map(lower);
    Some(model::Endpoint {
        addresses,
        hostname: hostname.filter(|h| !h.is_empty()).map(lower),
        pod_name,
        ready,
        zone: None,
    })
}

/// The distinct topology zones of one slice, so its endpoints share one
/// string per zone (a slice's endpoints sit in a handful of zones).
#[derive(Default)]
struct Zones(Vec<Arc<str>>);

impl Zones {
    /// The shared string of `zone`; `None` for an empty one.
    fn intern(&mut self, zone: &str) -> Option<Arc<str>> {
        if zone.is_empty() {
            return None;
        }
        if let Some(z) = self.0.iter().find(|z| ***z == *zone) {
            return Some(z.clone());
        }
        let z: Arc<str> = Arc::from(zone);
        self.0.push(z.clone());
        Some(z)
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

fn lower(s: &str) -> Box<str> {
    s.to_ascii_lowercase().into_boxed_str()
}

/// Lower-cases a host name and makes it fully qualified.
fn fqdn(s: &str) -> Box<str> {
    let mut out = s.to_ascii_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out.into_boxed_str()
}

#[cfg(test)]
mod tests;
