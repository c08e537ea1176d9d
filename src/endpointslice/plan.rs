//! The EndpointSlice plan for one Service: from the Service, its candidate
//! pods, the nodes' zones and the slices that exist now, the slices to
//! create, update and delete. Pure; the controller's shell does the writes.
//!
//! The algorithm follows the upstream reconciler (kubernetes/endpointslice
//! `reconciler.go`) so that churn is as small as there:
//!
//! 1. Per address family and per distinct port set, the desired endpoints.
//! 2. Each existing slice keeps the desired endpoints it already holds (in
//!    their desired form); a slice left with none is deleted, a slice whose
//!    endpoints, labels or owner changed is updated, any other is untouched.
//! 3. The remaining endpoints first fill the slices being updated anyway
//!    (fullest first), then, when fewer than a slice's worth remain, the
//!    fullest untouched slice they fit in, else new slices.
//! 4. A create and a delete of the same address type become one update of
//!    the doomed slice (upstream's `finalize`), and a Service with no
//!    endpoints at all keeps one empty IPv4 placeholder slice.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::model::{Family, NodeZones, Pod, Service, TargetPort};

#[cfg(test)]
mod tests;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's writer.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Our managed-by value; slices with any other value are never touched.
pub const MANAGED_BY: &str = "endpointslice-controller.clusterdns.io";
/// The label marking the slices of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The annotation carrying the time of the change that caused a write.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Upstream's default `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The knobs of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--max-endpoints-per-slice` (0 is treated as 1).
    pub max_endpoints_per_slice: usize,
    /// The managed-by label value this controller writes and owns.
    pub managed_by: String,
    /// RFC 3339 time of the change that triggered this sync; written as
    /// [`TRIGGER_TIME_ANNOTATION`] on created and updated slices only (it
    /// never makes a slice differ on its own).
    pub trigger_time: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_endpoints_per_slice: DEFAULT_MAX_ENDPOINTS_PER_SLICE,
            managed_by: MANAGED_BY.to_owned(),
            trigger_time: None,
        }
    }
}

/// What to write for one Service. Updates and deletes carry the existing
/// slice's name and resourceVersion (optimistic concurrency); creates carry
/// `generateName: <service>-`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// New slices.
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new contents.
    pub update: Vec<EndpointSlice>,
    /// Existing slices to delete, as they are now.
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    /// True when nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// Add `other`'s writes to this plan (the two must touch different slices,
    /// as the plans of two managed-by values do).
    pub fn merge(&mut self, other: Plan) {
        self.create.extend(other.create);
        self.update.extend(other.update);
        self.delete.extend(other.delete);
    }

    /// The endpoints in the slices written by `managed_by` once this plan is
    /// applied to `existing`: the created and updated ones, plus the existing
    /// ones of those writers it leaves alone.
    pub fn endpoints_after(&self, existing: &[EndpointSlice], managed_by: &[&str]) -> usize {
        let touched: BTreeSet<String> = self
            .update
            .iter()
            .chain(&self.delete)
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        let kept: usize = existing
            .iter()
            .filter(|s| {
                let by = s
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED_BY_LABEL));
                by.is_some_and(|b| managed_by.contains(&b.as_str()))
            })
            .filter(|s| {
                s.metadata
                    .name
                    .as_ref()
                    .is_none_or(|n| !touched.contains(n))
            })
            .map(|s| s.endpoints.len())
            .sum();
        let written: usize = self
            .create
            .iter()
            .chain(&self.update)
            .map(|s| s.endpoints.len())
            .sum();
        kept + written
    }
}

/// The identity of an endpoint inside a port set: its addresses and pod.
pub(crate) type EndpointKey = (Vec<String>, String, String);

/// A port set, order-independent: (name, port, protocol, appProtocol).
pub(crate) type PortKey = Vec<(String, i32, String, String)>;

pub(crate) fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    let (ns, name) = ep
        .target_ref
        .as_ref()
        .map(|r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    (addrs, ns, name)
}

pub(crate) fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// Does the pod belong to the Service's endpoints at all (any family)?
/// Same namespace, selector matches, has an IP, not Succeeded/Failed.
/// Terminating pods stay (with `terminating: true`), as upstream.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(selector) = &svc.selector else {
        return false;
    };
    pod.namespace == svc.namespace
        && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
        && !pod.ips.is_empty()
        && !pod.terminal
}

/// The endpoint ports of a pod: each Service port whose targetPort the pod
/// resolves (a named one against its container ports with the same
/// protocol); ports it cannot resolve are left out, as upstream.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.ports
        .iter()
        .filter_map(|sp| {
            let number = match &sp.target {
                TargetPort::Number(n) => *n,
                TargetPort::Name(name) => {
                    pod.container_ports
                        .iter()
                        .find(|cp| &cp.name == name && cp.protocol == sp.protocol)?
                        .port
                }
            };
            Some(EndpointPort {
                name: Some(sp.name.clone()),
                port: Some(number),
                protocol: Some(sp.protocol.clone()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The endpoint of a pod in one family, or `None` if it has no such IP.
/// Hints are added later, once the whole family is known.
pub fn pod_endpoint(
    svc: &Service,
    pod: &Pod,
    family: Family,
    zones: &NodeZones,
) -> Option<Endpoint> {
    let addresses: Vec<String> = pod
        .ips
        .iter()
        .filter(|ip| Family::of(ip) == family)
        .map(|ip| ip.to_string())
        .collect();
    if addresses.is_empty() {
        return None;
    }
    let serving = pod.ready;
    let terminating = pod.terminating;
    let ready = svc.publish_not_ready || (serving && !terminating);
    let hostname = pod.hostname.clone().filter(|_| {
        pod.subdomain.as_deref() == Some(svc.name.as_str()) && pod.namespace == svc.namespace
    });
    Some(Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: pod.node_name.clone(),
        zone: pod.node_name.as_ref().and_then(|n| zones.get(n)).cloned(),
        target_ref: Some(pod.target_ref()),
        ..Endpoint::default()
    })
}

/// Zone hints for `PreferClose`, upstream's `trafficdist` rule: every ready
/// endpoint with a zone is hinted to its own zone; not-ready or zoneless
/// endpoints get no hint.
fn apply_zone_hints(svc: &Service, endpoints: &mut [&mut Endpoint]) {
    for ep in endpoints.iter_mut() {
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        ep.hints = match &ep.zone {
            Some(zone) if svc.prefer_close && ready => Some(EndpointHints {
                for_zones: Some(vec![ForZone { name: zone.clone() }]),
                for_nodes: None,
            }),
            _ => None,
        };
    }
}

/// The labels our slices for `svc` carry.
pub fn slice_labels(svc: &Service, managed_by: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != SERVICE_NAME_LABEL && k.as_str() != MANAGED_BY_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if svc.headless {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels.insert(SERVICE_NAME_LABEL.to_owned(), svc.name.clone());
    labels.insert(MANAGED_BY_LABEL.to_owned(), managed_by.to_owned());
    labels
}

fn owner_reference(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: svc.name.clone(),
        uid: svc.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Who a set of planned slices belongs to: the metadata every one carries.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceOwner {
    /// The `kubernetes.io/service-name` value (and the name prefix).
    pub(crate) service_name: String,
    /// The namespace of the slices.
    pub(crate) namespace: String,
    /// The complete labels each slice carries.
    pub(crate) labels: BTreeMap<String, String>,
    /// The one ownerReference each slice carries.
    pub(crate) owner: OwnerReference,
    /// The managed-by value: slices with another are not ours.
    pub(crate) managed_by: String,
}

impl SliceOwner {
    fn for_service(svc: &Service, managed_by: &str) -> SliceOwner {
        SliceOwner {
            service_name: svc.name.clone(),
            namespace: svc.namespace.clone(),
            labels: slice_labels(svc, managed_by),
            owner: owner_reference(svc),
            managed_by: managed_by.to_owned(),
        }
    }

    /// Is the slice ours and about this service (whoever its owner is)?
    fn claims(&self, slice: &EndpointSlice) -> bool {
        let labels = slice.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        slice.metadata.namespace.as_deref() == Some(self.namespace.as_str())
            && label(SERVICE_NAME_LABEL) == Some(self.service_name.as_str())
            && label(MANAGED_BY_LABEL) == Some(self.managed_by.as_str())
    }

    fn owns(&self, slice: &EndpointSlice) -> bool {
        slice.metadata.owner_references.iter().flatten().any(|o| {
            o.kind == self.owner.kind && o.uid == self.owner.uid && o.controller == Some(true)
        })
    }
}

/// Is the slice ours and about this Service (whoever its owner is)?
pub fn is_ours_for(slice: &EndpointSlice, svc: &Service, managed_by: &str) -> bool {
    SliceOwner::for_service(svc, managed_by).claims(slice)
}

/// A fresh slice (no name yet).
fn new_slice(
    owner: &SliceOwner,
    family: Family,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.service_name)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(owner.labels.clone()),
            owner_references: Some(vec![owner.owner.clone()]),
            ..ObjectMeta::default()
        },
        address_type: family.as_str().to_owned(),
        endpoints,
        ports: Some(ports),
    }
}

/// `existing` rewritten to hold `endpoints` with our labels and owner,
/// keeping its name, resourceVersion, ports and annotations. Labels are
/// replaced wholesale, as upstream: a label dropped from the Service goes.
fn rewrite(
    existing: &EndpointSlice,
    owner: &SliceOwner,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let mut slice = existing.clone();
    slice.metadata.labels = Some(owner.labels.clone());
    slice.metadata.owner_references = Some(vec![owner.owner.clone()]);
    slice.endpoints = endpoints;
    slice
}

fn metadata_current(slice: &EndpointSlice, owner: &SliceOwner) -> bool {
    slice.metadata.labels.as_ref() == Some(&owner.labels)
        && slice.metadata.owner_references.as_deref() == Some(std::slice::from_ref(&owner.owner))
}

fn stamp(slice: &mut EndpointSlice, opts: &PlanOptions) {
    let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match &opts.trigger_time {
        Some(t) => {
            annotations.insert(TRIGGER_TIME_ANNOTATION.to_owned(), t.clone());
        }
        None => {
            annotations.remove(TRIGGER_TIME_ANNOTATION);
        }
    }
    if annotations.is_empty() {
        slice.metadata.annotations = None;
    }
}

/// The desired endpoints of one family, grouped by port set.
pub(crate) type Desired = BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>;

fn desired_for(svc: &Service, pods: &[Pod], zones: &NodeZones, family: Family) -> Desired {
    let mut desired: Desired = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        let Some(ep) = pod_endpoint(svc, pod, family, zones) else {
            continue;
        };
        let ports = endpoint_ports(svc, pod);
        let entry = desired
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        entry.1.entry(endpoint_key(&ep)).or_insert(ep);
    }
    let mut all: Vec<&mut Endpoint> = desired
        .values_mut()
        .flat_map(|(_, eps)| eps.values_mut())
        .collect();
    apply_zone_hints(svc, &mut all);
    desired
}

/// Plans the slices of one Service. A Service without a selector gets an
/// empty plan: its slices come from mirroring or from its owner, never from
/// pods. `pods` may hold any pods; those the Service does not select are
/// ignored. `existing` may hold any slices; only ours for this Service are
/// considered, and of those, ones owned by another object (an older Service
/// of the same name) or of a family the Service no longer has are deleted.
pub fn plan(
    svc: &Service,
    pods: &[Pod],
    zones: &NodeZones,
    existing: &[EndpointSlice],
    opts: &PlanOptions,
) -> Plan {
    if svc.selector.is_none() {
        return Plan::default();
    }
    let owner = SliceOwner::for_service(svc, &opts.managed_by);
    let desired = svc
        .families
        .iter()
        .map(|&f| (f, desired_for(svc, pods, zones, f)))
        .collect();
    plan_sets(&owner, desired, existing, opts, true)
}

/// The generic half of [`plan`], shared with mirroring: `desired` holds, per
/// address family to keep, the endpoints per port set; ours-but-stale slices
/// (other owner, family not in `desired`) are deleted. `placeholder` keeps an
/// empty IPv4 slice when there would be none.
pub(crate) fn plan_sets(
    owner: &SliceOwner,
    desired: BTreeMap<Family, Desired>,
    existing: &[EndpointSlice],
    opts: &PlanOptions,
    placeholder: bool,
) -> Plan {
    let mut out = Plan::default();
    let max = opts.max_endpoints_per_slice.max(1);
    let ours: Vec<&EndpointSlice> = existing.iter().filter(|s| owner.claims(s)).collect();
    let mut by_family: BTreeMap<Family, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &ours {
        match Family::parse(&slice.address_type) {
            Some(f) if desired.contains_key(&f) && owner.owns(slice) => {
                by_family.entry(f).or_default().push(slice)
            }
            _ => out.delete.push((*slice).clone()),
        }
    }
    for (family, wanted) in desired {
        let existing = by_family.remove(&family).unwrap_or_default();
        plan_family(owner, max, family, wanted, &existing, &mut out);
    }
    if placeholder {
        keep_placeholder(owner, ours.len(), &mut out);
    }
    finalize(&mut out);
    for slice in out.create.iter_mut().chain(out.update.iter_mut()) {
        stamp(slice, opts);
    }
    out
}

fn plan_family(
    owner: &SliceOwner,
    max: usize,
    family: Family,
    mut desired: Desired,
    existing: &[&EndpointSlice],
    out: &mut Plan,
) {
    let mut by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        by_ports
            .entry(port_key(slice.ports.as_deref().unwrap_or_default()))
            .or_default()
            .push(slice);
    }
    let keys: BTreeSet<PortKey> = by_ports.keys().chain(desired.keys()).cloned().collect();
    for key in keys {
        let (ports, wanted) = desired.remove(&key).unwrap_or_default();
        let mut slices = by_ports.remove(&key).unwrap_or_default();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        plan_port_set(owner, max, family, ports, wanted, &slices, out);
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_port_set(
    owner: &SliceOwner,
    max: usize,
    family: Family,
    ports: Vec<EndpointPort>,
    mut wanted: BTreeMap<EndpointKey, Endpoint>,
    existing: &[&EndpointSlice],
    out: &mut Plan,
) {
    let mut to_update: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<&EndpointSlice> = Vec::new();
    for slice in existing {
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        let mut changed = false;
        for ep in &slice.endpoints {
            match wanted.remove(&endpoint_key(ep)) {
                Some(want) => {
                    changed |= &want != ep;
                    kept.push(want);
                }
                None => changed = true,
            }
        }
        if kept.is_empty() {
            out.delete.push((*slice).clone());
        } else if changed || !metadata_current(slice, owner) {
            to_update.push(rewrite(slice, owner, kept));
        } else {
            unchanged.push(slice);
        }
    }
    let mut rest: Vec<Endpoint> = wanted.into_values().collect();
    rest.reverse(); // pop() then yields them in key order
    // 1. Fill the slices that are written anyway, fullest first.
    to_update.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for slice in &mut to_update {
        while slice.endpoints.len() < max {
            let Some(ep) = rest.pop() else { break };
            slice.endpoints.push(ep);
        }
    }
    // 2. Then the fullest untouched slice the remainder fits in, else new slices.
    unchanged.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    while !rest.is_empty() {
        let fits = (rest.len() < max)
            .then(|| {
                unchanged
                    .iter()
                    .position(|s| s.endpoints.len() + rest.len() <= max)
            })
            .flatten();
        let mut slice = match fits {
            Some(i) => {
                let s = unchanged.remove(i);
                rewrite(s, owner, s.endpoints.clone())
            }
            None => new_slice(owner, family, ports.clone(), Vec::new()),
        };
        while slice.endpoints.len() < max {
            let Some(ep) = rest.pop() else { break };
            slice.endpoints.push(ep);
        }
        if slice.metadata.name.is_some() {
            to_update.push(slice);
        } else {
            out.create.push(slice);
        }
    }
    out.update.extend(to_update);
}

fn is_placeholder(slice: &EndpointSlice) -> bool {
    slice.endpoints.is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
        && slice.address_type == Family::V4.as_str()
}

/// A Service with no endpoints keeps one empty IPv4 slice, as upstream, so
/// consumers can tell "no endpoints" from "not synced yet".
fn keep_placeholder(owner: &SliceOwner, existing_ours: usize, out: &mut Plan) {
    if existing_ours != out.delete.len() || !out.create.is_empty() {
        return;
    }
    if let [only] = out.delete.as_slice()
        && is_placeholder(only)
        && owner.owns(only)
        && metadata_current(only, owner)
    {
        out.delete.clear();
        return;
    }
    out.create
        .push(new_slice(owner, Family::V4, Vec::new(), Vec::new()));
}

/// A create and a delete of the same address type become an update of the
/// doomed slice, saving a write and a name.
fn finalize(out: &mut Plan) {
    let mut keep_deleting = Vec::new();
    for doomed in std::mem::take(&mut out.delete) {
        match out
            .create
            .iter()
            .position(|c| c.address_type == doomed.address_type)
        {
            Some(i) => {
                let mut slice = out.create.remove(i);
                slice.metadata.name = doomed.metadata.name.clone();
                slice.metadata.generate_name = None;
                slice.metadata.resource_version = doomed.metadata.resource_version.clone();
                slice.metadata.uid = doomed.metadata.uid.clone();
                out.update.push(slice);
            }
            None => keep_deleting.push(doomed),
        }
    }
    out.delete = keep_deleting;
}
