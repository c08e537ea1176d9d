//! Slim records of the cluster objects DNS needs.
//!
//! Memory warning (after CoreDNS `object/object.go`): every field here is paid
//! once per Service, per endpoint or per Pod in the cluster. A cluster of 10k
//! Services and 150k endpoints multiplies each byte by up to 150,000. Add a
//! field only when an answer depends on it, keep strings as `Box<str>` (no
//! spare capacity) and never store whole API objects.

use std::net::IpAddr;
use std::sync::Arc;

/// The transport protocol of a Service or endpoint port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The lower-case name used in SRV owner names (`_tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Parses a Kubernetes protocol string (`TCP`, `UDP`, `SCTP`, any case);
    /// `None` means the API default, TCP.
    pub fn from_k8s(s: Option<&str>) -> Option<Self> {
        match s.map(str::to_ascii_uppercase).as_deref() {
            None | Some("TCP") => Some(Protocol::Tcp),
            Some("UDP") => Some(Protocol::Udp),
            Some("SCTP") => Some(Protocol::Sctp),
            Some(_) => None,
        }
    }
}

/// A port of a Service or of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The port's name, lower-cased; empty for an unnamed port (no SRV).
    pub name: Box<str>,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

/// What kind of answer a Service name gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP per family (`spec.clusterIPs`), answered whatever the endpoints.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the name answers the ready endpoint addresses.
    Headless,
    /// `type: ExternalName`: a CNAME to this target (lower-cased, fully qualified, with a trailing dot).
    ExternalName(Box<str>),
}

/// A Service, as DNS sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Namespace, lower-cased.
    pub namespace: Box<str>,
    /// Name, lower-cased.
    pub name: Box<str>,
    /// ClusterIP, headless or ExternalName.
    pub kind: ServiceKind,
    /// The Service's ports (for SRV of ClusterIP services).
    pub ports: Vec<Port>,
    /// Addresses reachable from outside the cluster: `spec.externalIPs`, then
    /// `status.loadBalancer.ingress[].ip`, without duplicates. Answered only
    /// by `k8s_external`; empty (no allocation) for most Services.
    pub external: Vec<IpAddr>,
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's addresses (Kubernetes allows several; in practice one).
    pub addresses: Vec<IpAddr>,
    /// `hostname` of the endpoint, lower-cased (set for StatefulSet-style pods).
    pub hostname: Option<Box<str>>,
    /// Name of the Pod behind it (`targetRef.name` when it is a Pod), lower-cased,
    /// kept only when shorter than 64 characters (a DNS label).
    pub pod_name: Option<Box<str>>,
    /// `conditions.ready`: unset counts as ready (as CoreDNS and the spec say).
    pub ready: bool,
    /// `zone` (the topology zone), kept only for `zonal`. Shared: conversion
    /// hands every endpoint of a slice in the same zone the same `Arc`.
    pub zone: Option<Arc<str>>,
}

/// One EndpointSlice (or the one slice a legacy Endpoints object becomes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    /// Namespace, lower-cased.
    pub namespace: Box<str>,
    /// The slice's own name (the key for updates and deletes).
    pub name: Box<str>,
    /// The owning Service (`kubernetes.io/service-name` label), lower-cased.
    pub service: Box<str>,
    /// The slice's ports; empty for a portless headless Service.
    pub ports: Vec<Port>,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A Pod, kept only for `pods verified` (and later autopath).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Namespace, lower-cased.
    pub namespace: Box<str>,
    /// Name, lower-cased.
    pub name: Box<str>,
    /// `status.podIPs`.
    pub ips: Vec<IpAddr>,
}

/// A Namespace: tells an existing namespace without services (NODATA) from a
/// missing one (NXDOMAIN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Name, lower-cased.
    pub name: Box<str>,
}

/// What a `ServiceImport` name answers (MCS API `spec.type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// `ClusterSetIP`: the clusterset IPs of `spec.ips` (one per family).
    ClusterSetIp(Vec<IpAddr>),
    /// `Headless`: the ready endpoints of its multicluster EndpointSlices.
    Headless,
}

/// A `ServiceImport` (multicluster.x-k8s.io/v1alpha1), kept only with the
/// `multicluster` option: one per exported service in the clusterset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceImport {
    /// Namespace, lower-cased.
    pub namespace: Box<str>,
    /// Name, lower-cased.
    pub name: Box<str>,
    /// ClusterSetIP or headless.
    pub kind: ImportKind,
    /// `spec.ports` (for SRV of a ClusterSetIP import).
    pub ports: Vec<Port>,
}

/// An EndpointSlice an MCS implementation imported from one member cluster:
/// labelled `multicluster.kubernetes.io/service-name` (the import it backs,
/// in `slice.service`) and `multicluster.kubernetes.io/source-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiClusterSlice {
    /// The cluster id of the member cluster the endpoints live in, lower-cased
    /// (empty when the label is missing: then no `hostname.clusterid` name matches).
    pub cluster: Box<str>,
    /// The slice itself; `service` names the ServiceImport.
    pub slice: EndpointSlice,
}
