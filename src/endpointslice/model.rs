//! The slim inputs of the reconcile core: only the fields of Services, Pods
//! and Nodes that decide EndpointSlices, so the planner is easy to table-test
//! and the controller's caches stay small. Conversions from the k8s-openapi
//! types are pure; an object missing what identifies it is an error, never a
//! panic.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// Node name → the node's `topology.kubernetes.io/zone` label.
pub type NodeZones = BTreeMap<String, String>;

/// The node label upstream reads an endpoint's zone from.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Why an API object could not be turned into a model object (shared by the roles).
pub use crate::k8s::object::ObjectError as ModelError;

/// An EndpointSlice `addressType` the controller writes (never `FQDN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `IPv4`.
    V4,
    /// `IPv6`.
    V6,
}

impl Family {
    /// The `addressType` / `ipFamilies` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Parses an `addressType` / `ipFamilies` value.
    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

/// A Service port's `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A number, used as is.
    Number(i32),
    /// A container port name, resolved per pod.
    Name(String),
}

/// One entry of `spec.ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` (empty when the Service has a single unnamed port).
    pub name: String,
    /// `port`.
    pub port: i32,
    /// `targetPort` (defaulted to `port` as the API server does).
    pub target: TargetPort,
    /// `protocol` (`TCP` by default).
    pub protocol: String,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}

/// What the planner needs of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`, for the slices' ownerReference.
    pub uid: String,
    /// `metadata.labels`, copied onto the slices (minus the reserved ones).
    pub labels: BTreeMap<String, String>,
    /// `spec.selector`; `None` for a selector-less Service (its endpoints are
    /// written by hand and mirrored, not planned from pods).
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// The address families to write slices for (`spec.ipFamilies`, else
    /// the family of the cluster IP, else IPv4).
    pub families: Vec<Family>,
    /// `spec.clusterIP: None`.
    pub headless: bool,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// `spec.trafficDistribution: PreferClose` or the annotation
    /// `service.kubernetes.io/topology-mode: Auto` (or the older
    /// `service.kubernetes.io/topology-aware-hints: Auto`).
    pub prefer_close: bool,
    /// `metadata.creationTimestamp`: the Service's trigger time for the
    /// `last-change-trigger-time` annotation.
    pub created: Option<Timestamp>,
}

/// A container port a named `targetPort` can resolve to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerPort {
    /// `name` (may be empty).
    pub name: String,
    /// `containerPort`.
    pub port: i32,
    /// `protocol` (`TCP` by default).
    pub protocol: String,
}

/// What the planner needs of a Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`, for the endpoint's targetRef.
    pub uid: String,
    /// `metadata.labels`, matched against the Service's selector.
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` (or `status.podIP`).
    pub ips: Vec<IpAddr>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `status.phase` is `Succeeded` or `Failed`: never an endpoint.
    pub terminal: bool,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// The ports of the containers and of the sidecar (restartPolicy
    /// `Always`) init containers, in spec order.
    pub container_ports: Vec<ContainerPort>,
    /// `lastTransitionTime` of the `Ready` condition: the pod's trigger
    /// time for the `last-change-trigger-time` annotation.
    pub ready_changed: Option<Timestamp>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// Name, namespace and uid, each required and non-empty.
fn identity(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &'static str,
) -> Result<(String, String, String), ModelError> {
    let missing = |field| ModelError::Missing {
        kind,
        name: meta.name.clone().unwrap_or_else(|| "?".to_owned()),
        field,
    };
    Ok((
        non_empty(&meta.name).ok_or_else(|| missing("metadata.name"))?,
        non_empty(&meta.namespace).ok_or_else(|| missing("metadata.namespace"))?,
        non_empty(&meta.uid).ok_or_else(|| missing("metadata.uid"))?,
    ))
}

fn protocol_or_tcp(p: &Option<String>) -> String {
    non_empty(p).unwrap_or_else(|| "TCP".to_owned())
}

/// The topology annotations that turn on zone hints (current and older name).
const TOPOLOGY_ANNOTATIONS: [&str; 2] = [
    "service.kubernetes.io/topology-mode",
    "service.kubernetes.io/topology-aware-hints",
];

impl Service {
    /// Converts an API Service.
    pub fn from_api(svc: &core::Service) -> Result<Service, ModelError> {
        let meta = &svc.metadata;
        let (name, namespace, uid) = identity(meta, "Service")?;
        let spec = svc.spec.clone().unwrap_or_default();
        let ports = spec
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| ServicePort {
                name: p.name.clone().unwrap_or_default(),
                port: p.port,
                target: match &p.target_port {
                    Some(IntOrString::Int(n)) if *n != 0 => TargetPort::Number(*n),
                    Some(IntOrString::String(s)) if !s.is_empty() => TargetPort::Name(s.clone()),
                    _ => TargetPort::Number(p.port),
                },
                protocol: protocol_or_tcp(&p.protocol),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
        let headless = cluster_ip == "None";
        let mut families = Vec::new();
        for f in spec.ip_families.iter().flatten() {
            let fam = Family::parse(f).ok_or_else(|| ModelError::BadFamily {
                name: name.clone(),
                value: f.clone(),
            })?;
            if !families.contains(&fam) {
                families.push(fam);
            }
        }
        if families.is_empty() && !headless && !cluster_ip.is_empty() {
            let ip: IpAddr = cluster_ip.parse().map_err(|_| ModelError::BadIp {
                kind: "Service",
                name: name.clone(),
                field: "spec.clusterIP",
                value: cluster_ip.clone(),
            })?;
            families.push(Family::of(&ip));
        }
        if families.is_empty() {
            families.push(Family::V4);
        }
        let annotations = meta.annotations.clone().unwrap_or_default();
        let topology_auto = TOPOLOGY_ANNOTATIONS.iter().any(|k| {
            annotations
                .get(*k)
                .is_some_and(|v| v.eq_ignore_ascii_case("auto"))
        });
        let prefer_close =
            topology_auto || spec.traffic_distribution.as_deref() == Some("PreferClose");
        Ok(Service {
            name,
            namespace,
            uid,
            labels: meta.labels.clone().unwrap_or_default(),
            selector: spec.selector,
            ports,
            families,
            headless,
            publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
            prefer_close,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
        })
    }
}

impl Pod {
    /// The `targetRef` an endpoint or address of this pod carries.
    pub fn target_ref(&self) -> core::ObjectReference {
        core::ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: Some(self.uid.clone()),
            ..core::ObjectReference::default()
        }
    }

    /// Converts an API Pod.
    pub fn from_api(pod: &core::Pod) -> Result<Pod, ModelError> {
        let meta = &pod.metadata;
        let (name, namespace, uid) = identity(meta, "Pod")?;
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let mut raw: Vec<String> = status
            .pod_ips
            .iter()
            .flatten()
            .map(|p| p.ip.clone())
            .collect();
        if raw.is_empty() {
            raw.extend(non_empty(&status.pod_ip));
        }
        let mut ips = Vec::with_capacity(raw.len());
        for value in raw {
            let ip: IpAddr = value.parse().map_err(|_| ModelError::BadIp {
                kind: "Pod",
                name: name.clone(),
                field: "status.podIPs",
                value: value.clone(),
            })?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let ready_condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let ready_changed =
            ready_condition.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
        let terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let container_ports = spec
            .containers
            .iter()
            .chain(sidecars)
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| ContainerPort {
                name: p.name.clone().unwrap_or_default(),
                port: p.container_port,
                protocol: protocol_or_tcp(&p.protocol),
            })
            .collect();
        Ok(Pod {
            name,
            namespace,
            uid,
            labels: meta.labels.clone().unwrap_or_default(),
            ips,
            ready,
            terminating: meta.deletion_timestamp.is_some(),
            terminal,
            node_name: non_empty(&spec.node_name),
            hostname: non_empty(&spec.hostname),
            subdomain: non_empty(&spec.subdomain),
            container_ports,
            ready_changed,
        })
    }
}

/// Drop `metadata.managedFields` (often the largest part of an object the
/// API server returns) from an object the controller caches. Safe for the
/// objects it later replaces: a PUT without managedFields leaves the
/// server's record of them unchanged.
pub fn strip_managed_fields<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Only an object's identity: name, namespace, uid, resourceVersion.
fn identity_only(meta: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        ..ObjectMeta::default()
    }
}

/// Drop in place every field of a Pod that [`Pod::from_api`] and the
/// controller's pod→Service mapping do not read (managedFields, annotations,
/// volumes, container specs but their ports, statuses but Ready, ...), so
/// the pod cache holds a fraction of each object. Keeps: name, namespace,
/// uid, resourceVersion, labels, deletionTimestamp; nodeName, hostname,
/// subdomain, containers' and sidecars' names and ports; phase, pod IPs and
/// the Ready condition.
pub fn strip_pod(pod: &mut core::Pod) {
    let mut meta = std::mem::take(&mut pod.metadata);
    let (labels, deletion_timestamp) = (meta.labels.take(), meta.deletion_timestamp.take());
    pod.metadata = ObjectMeta {
        labels,
        deletion_timestamp,
        ..identity_only(meta)
    };
    let ports_only = |c: core::Container| core::Container {
        name: c.name,
        ports: c.ports,
        restart_policy: c.restart_policy,
        ..core::Container::default()
    };
    pod.spec = pod.spec.take().map(|spec| core::PodSpec {
        containers: spec.containers.into_iter().map(ports_only).collect(),
        init_containers: spec.init_containers.map(|v| {
            v.into_iter()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .map(ports_only)
                .collect()
        }),
        node_name: spec.node_name,
        hostname: spec.hostname,
        subdomain: spec.subdomain,
        ..core::PodSpec::default()
    });
    pod.status = pod.status.take().map(|status| core::PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        conditions: status
            .conditions
            .map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect()),
        ..core::PodStatus::default()
    });
}

/// Keep only a Service's identity (name, namespace, uid, resourceVersion):
/// what the store that triggers syncs needs, the rest being cached as a
/// record.
pub fn service_identity(svc: &mut core::Service) {
    svc.metadata = identity_only(std::mem::take(&mut svc.metadata));
    svc.spec = None;
    svc.status = None;
}

/// Drop in place everything of a Node but its name, resourceVersion and
/// zone label — all the controller reads of it ([`node_zone`]), and all
/// whose change should re-sync the Services with pods on it.
pub fn strip_node(node: &mut core::Node) {
    let meta = std::mem::take(&mut node.metadata);
    let zone = meta
        .labels
        .and_then(|mut l| l.remove_entry(ZONE_LABEL))
        .map(|(k, v)| BTreeMap::from([(k, v)]));
    node.metadata = ObjectMeta {
        name: meta.name,
        resource_version: meta.resource_version,
        labels: zone,
        ..ObjectMeta::default()
    };
    node.spec = None;
    node.status = None;
}

/// The zone of an API Node, if it carries the topology label.
pub fn node_zone(node: &core::Node) -> Option<(String, String)> {
    let name = non_empty(&node.metadata.name)?;
    let zone = node.metadata.labels.as_ref()?.get(ZONE_LABEL)?;
    (!zone.is_empty()).then(|| (name, zone.clone()))
}

#[cfg(test)]
mod tests;
