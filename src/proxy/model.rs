//! What the proxy needs of Services and EndpointSlices, converted from the
//! API objects once so that selection and rendering are pure functions of
//! plain data. Conversion is lenient per object: a Service or slice that
//! cannot be understood (an unparseable IP) is reported and left out; it
//! never stops the others from being programmed.
//!
//! Upstream rules kept here (kube-proxy's `ServicePort` / `Endpoint`
//! conversion): headless and ExternalName Services have no virtual IP and are
//! skipped; an endpoint's `ready` and `serving` default to true when unset,
//! `terminating` to false; only the first address of an endpoint counts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// kube-proxy skips Services carrying this label (another proxy serves them).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Default ClientIP affinity timeout (3 hours), as the API defaults it.
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// A transport protocol a Service port can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Every protocol a Service port can have.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// nft's spelling (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// `name` ("" when the Service has one unnamed port).
    pub name: String,
    /// `protocol`.
    pub protocol: Protocol,
    /// `port`.
    pub port: u16,
    /// `nodePort`, if allocated.
    pub node_port: Option<u16>,
}

/// A Service the proxy programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.clusterIPs` (one per family).
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub lb_ips: Vec<IpAddr>,
    /// `spec.ports`.
    pub ports: Vec<Port>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `healthCheckNodePort` (external Local with NodePort/LoadBalancer).
    pub health_check_node_port: Option<u16>,
}

/// One endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The first address.
    pub ip: IpAddr,
    /// `conditions.ready` (unset = true).
    pub ready: bool,
    /// `conditions.serving` (unset = ready).
    pub serving: bool,
    /// `conditions.terminating` (unset = false).
    pub terminating: bool,
    /// `nodeName`.
    pub node: Option<String>,
    /// `hints.forZones[].name`; `None` when the endpoint has no hints.
    pub zone_hints: Option<Vec<String>>,
}

/// A slice's port: name, protocol, number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// `name` ("" when unset).
    pub name: String,
    /// `protocol`.
    pub protocol: Protocol,
    /// `port`.
    pub port: u16,
}

/// An EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// `metadata.namespace`.
    pub namespace: String,
    /// The `kubernetes.io/service-name` label.
    pub service: String,
    /// `addressType` is IPv6.
    pub ipv6: bool,
    /// `ports`.
    pub ports: Vec<SlicePort>,
    /// `endpoints`.
    pub endpoints: Vec<Endpoint>,
    /// `endpoints.kubernetes.io/last-change-trigger-time`, for the
    /// programming-latency metric.
    pub trigger_time: Option<String>,
}

/// Why an object was left out (shared by the roles).
pub use crate::k8s::object::ObjectError as ModelError;

fn port_u16(
    kind: &'static str,
    name: &str,
    field: &'static str,
    n: i32,
) -> Result<u16, ModelError> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ModelError::BadValue {
            kind,
            name: name.to_owned(),
            field,
            value: n.to_string(),
        })
}

fn ip(kind: &'static str, name: &str, field: &'static str, s: &str) -> Result<IpAddr, ModelError> {
    s.parse().map_err(|_| ModelError::BadIp {
        kind,
        name: name.to_owned(),
        field,
        value: s.to_owned(),
    })
}

impl Service {
    /// Converts an API Service; `Ok(None)` for Services the proxy does not
    /// program (headless, ExternalName, without cluster IP, or labelled for
    /// another proxy).
    pub fn from_api(svc: &core::Service) -> Result<Option<Service>, ModelError> {
        let meta = &svc.metadata;
        let missing = |field| ModelError::Missing {
            kind: "Service",
            name: meta.name.clone().unwrap_or_default(),
            field,
        };
        let name = meta.name.clone().ok_or_else(|| missing("metadata.name"))?;
        let namespace = meta
            .namespace
            .clone()
            .ok_or_else(|| missing("metadata.namespace"))?;
        let full = format!("{namespace}/{name}");
        if meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
        {
            return Ok(None);
        }
        let Some(spec) = svc.spec.as_ref() else {
            return Ok(None);
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            return Ok(None);
        }
        let mut raw: Vec<&str> = spec
            .cluster_ips
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if raw.is_empty() {
            raw.extend(spec.cluster_ip.as_deref());
        }
        let raw: Vec<&str> = raw.into_iter().filter(|s| !s.is_empty()).collect();
        if raw.is_empty() || raw.contains(&"None") {
            return Ok(None);
        }
        let cluster_ips = raw
            .iter()
            .map(|s| ip("Service", &full, "spec.clusterIPs", s))
            .collect::<Result<Vec<_>, _>>()?;
        let external_ips = spec
            .external_ips
            .iter()
            .flatten()
            .map(|s| ip("Service", &full, "spec.externalIPs", s))
            .collect::<Result<Vec<_>, _>>()?;
        let lb_ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref())
            .map(|s| ip("Service", &full, "status.loadBalancer.ingress.ip", s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ports = Vec::new();
        for p in spec.ports.iter().flatten() {
            let protocol =
                Protocol::parse(p.protocol.as_deref()).ok_or_else(|| ModelError::BadValue {
                    kind: "Service",
                    name: full.clone(),
                    field: "spec.ports.protocol",
                    value: p.protocol.clone().unwrap_or_default(),
                })?;
            let node_port = match p.node_port {
                Some(n) if n != 0 => Some(port_u16("Service", &full, "spec.ports.nodePort", n)?),
                _ => None,
            };
            ports.push(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol,
                port: port_u16("Service", &full, "spec.ports.port", p.port)?,
                node_port,
            });
        }
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let health_check_node_port = match spec.health_check_node_port {
            Some(n) if n != 0 => Some(port_u16("Service", &full, "spec.healthCheckNodePort", n)?),
            _ => None,
        };
        Ok(Some(Service {
            namespace,
            name,
            cluster_ips,
            external_ips,
            lb_ips,
            ports,
            affinity,
            external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            health_check_node_port,
        }))
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl Slice {
    /// Converts an API EndpointSlice; `Ok(None)` for slices of no Service
    /// or of an address type the proxy does not program (FQDN).
    pub fn from_api(slice: &discovery::EndpointSlice) -> Result<Option<Slice>, ModelError> {
        let meta = &slice.metadata;
        let name = meta.name.clone().unwrap_or_default();
        let Some(service) = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
        else {
            return Ok(None);
        };
        let namespace = meta.namespace.clone().ok_or_else(|| ModelError::Missing {
            kind: "EndpointSlice",
            name: name.clone(),
            field: "metadata.namespace",
        })?;
        let ipv6 = match slice.address_type.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            _ => return Ok(None),
        };
        let mut ports = Vec::new();
        for p in slice.ports.iter().flatten() {
            let (Some(protocol), Some(port)) = (Protocol::parse(p.protocol.as_deref()), p.port)
            else {
                continue;
            };
            ports.push(SlicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol,
                port: port_u16("EndpointSlice", &name, "ports.port", port)?,
            });
        }
        let mut endpoints = Vec::new();
        for e in &slice.endpoints {
            let Some(first) = e.addresses.first() else {
                continue;
            };
            let c = e.conditions.clone().unwrap_or_default();
            let ready = c.ready.unwrap_or(true);
            endpoints.push(Endpoint {
                ip: ip("EndpointSlice", &name, "endpoints.addresses", first)?,
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating: c.terminating.unwrap_or(false),
                node: e.node_name.clone(),
                zone_hints: e
                    .hints
                    .as_ref()
                    .and_then(|h| h.for_zones.as_ref())
                    .map(|z| z.iter().map(|z| z.name.clone()).collect()),
            });
        }
        let trigger_time = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("endpoints.kubernetes.io/last-change-trigger-time"))
            .cloned();
        Ok(Some(Slice {
            namespace,
            service,
            ipv6,
            ports,
            endpoints,
            trigger_time,
        }))
    }
}

/// Slices grouped by `namespace/service`.
/// Shared (`Arc`): the sync loop keeps converted slices between syncs and
/// regroups them every sync without copying.
pub type SlicesByService = BTreeMap<String, Vec<Arc<Slice>>>;

/// Group slices by the Service they belong to.
pub fn group<S: Into<Arc<Slice>>>(slices: impl IntoIterator<Item = S>) -> SlicesByService {
    let mut out = SlicesByService::new();
    for s in slices {
        let s: Arc<Slice> = s.into();
        out.entry(format!("{}/{}", s.namespace, s.service))
            .or_default()
            .push(s);
    }
    out
}
