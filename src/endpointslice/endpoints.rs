//! The v1 Endpoints object of a selector Service, as kube-controller-
//! manager's Endpoints controller writes it: one address per selected pod (its
//! IP of the Service's primary family), ready pods under `addresses`, others
//! under `notReadyAddresses`, terminating pods left out unless
//! `publishNotReadyAddresses`; addresses grouped into subsets by resolved port
//! set; at most [`MAX_ADDRESSES`] addresses, with the over-capacity annotation
//! when cut. Pure; the shell writes what [`plan_endpoints`] returns.
//!
//! Difference from upstream: when over capacity, ready addresses are kept
//! first in subset order, where upstream shares the cut across subsets in
//! proportion; the count and the annotation are the same.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::model::{Family, Pod, Service};
use super::plan::{HEADLESS_LABEL, TRIGGER_TIME_ANNOTATION, endpoint_ports, selects};

#[cfg(test)]
mod tests;

/// Most addresses one Endpoints object holds (upstream's cap).
pub const MAX_ADDRESSES: usize = 1000;
/// Set to [`TRUNCATED`] when addresses were cut at [`MAX_ADDRESSES`].
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// The value of [`OVER_CAPACITY_ANNOTATION`].
pub const TRUNCATED: &str = "truncated";

/// What to write for a Service's Endpoints.
#[derive(Clone, Debug, PartialEq)]
pub enum EndpointsWrite {
    /// The existing object is already right (or the Service has no selector).
    Nothing,
    /// No Endpoints exists yet.
    Create(Endpoints),
    /// The existing one (name and resourceVersion kept) with new contents.
    Update(Endpoints),
}

type AddrKey = (String, String);
type PortKey = Vec<(String, i32, String, String)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut k: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port,
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

fn address(svc: &Service, pod: &Pod, family: Family) -> Option<EndpointAddress> {
    let ip = pod.ips.iter().find(|ip| Family::of(ip) == family)?;
    let hostname = pod.hostname.clone().filter(|_| {
        pod.subdomain.as_deref() == Some(svc.name.as_str()) && pod.namespace == svc.namespace
    });
    Some(EndpointAddress {
        ip: ip.to_string(),
        hostname,
        node_name: pod.node_name.clone(),
        target_ref: Some(pod.target_ref()),
    })
}

/// The subsets, sorted (by port set, then address IP and pod uid), before
/// the capacity cut.
pub fn desired_subsets(svc: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let Some(&family) = svc.families.first() else {
        return Vec::new();
    };
    // port set → (ports, ready, not ready)
    type Group = (
        Vec<EndpointPort>,
        BTreeMap<AddrKey, EndpointAddress>,
        BTreeMap<AddrKey, EndpointAddress>,
    );
    let mut groups: BTreeMap<PortKey, Group> = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        if pod.terminating && !svc.publish_not_ready {
            continue;
        }
        let Some(addr) = address(svc, pod, family) else {
            continue;
        };
        let ports: Vec<EndpointPort> = endpoint_ports(svc, pod)
            .into_iter()
            .map(|p| EndpointPort {
                name: p.name.filter(|n| !n.is_empty()),
                port: p.port.unwrap_or_default(),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        if ports.is_empty() && !(svc.ports.is_empty() && svc.headless) {
            continue; // no port of the Service resolves on this pod
        }
        let mut ports = ports;
        ports.sort_by_key(|p| port_key(std::slice::from_ref(p)));
        let group = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new(), BTreeMap::new()));
        let key = (addr.ip.clone(), pod.uid.clone());
        if svc.publish_not_ready || pod.ready {
            group.1.insert(key, addr);
        } else {
            group.2.insert(key, addr);
        }
    }
    groups
        .into_values()
        .map(|(ports, ready, not_ready)| EndpointSubset {
            addresses: (!ready.is_empty()).then(|| ready.into_values().collect()),
            not_ready_addresses: (!not_ready.is_empty()).then(|| not_ready.into_values().collect()),
            ports: (!ports.is_empty()).then_some(ports),
        })
        .collect()
}

/// Cuts `subsets` to `max` addresses, ready ones first. Returns whether
/// anything was cut.
fn truncate(subsets: &mut Vec<EndpointSubset>, max: usize) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let total: usize = subsets
        .iter()
        .map(|s| count(&s.addresses) + count(&s.not_ready_addresses))
        .sum();
    if total <= max {
        return false;
    }
    let mut budget = max;
    for s in subsets.iter_mut() {
        let keep = count(&s.addresses).min(budget);
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(keep);
        }
        budget -= keep;
    }
    for s in subsets.iter_mut() {
        let keep = count(&s.not_ready_addresses).min(budget);
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(keep);
        }
        budget -= keep;
    }
    for s in subsets.iter_mut() {
        s.addresses = s.addresses.take().filter(|a| !a.is_empty());
        s.not_ready_addresses = s.not_ready_addresses.take().filter(|a| !a.is_empty());
    }
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    true
}

fn labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.labels.clone();
    if svc.headless {
        l.insert(HEADLESS_LABEL.to_owned(), String::new());
    } else {
        l.remove(HEADLESS_LABEL);
    }
    l
}

/// A digest of an Endpoints object's subsets (absent = empty): what an
/// existing object is compared by, so the controller's cache need not hold
/// every address of every Service a second time (the slices hold them).
/// 128 bits of SipHash over the subsets' `Debug` text, which spells out every
/// field; stable within one process, which is all a cache needs.
pub fn subsets_digest(subsets: &[EndpointSubset]) -> u128 {
    use std::fmt::Write;
    use std::hash::{Hash, Hasher};
    struct Feed(std::collections::hash_map::DefaultHasher);
    impl Write for Feed {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let half = |salt: u8| {
        let mut feed = Feed(std::collections::hash_map::DefaultHasher::new());
        salt.hash(&mut feed.0);
        // Writing into a hasher cannot fail.
        let _ = write!(feed, "{subsets:?}");
        feed.0.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The Endpoints write for a selector Service. `existing` is the current
/// Endpoints of the same name, if any. No write when subsets, labels and the
/// capacity annotation already match (the trigger time alone never writes).
pub fn plan_endpoints(
    svc: &Service,
    pods: &[Pod],
    existing: Option<&Endpoints>,
    trigger_time: Option<&str>,
) -> EndpointsWrite {
    let existing = existing.map(|e| {
        (
            &e.metadata,
            subsets_digest(e.subsets.as_deref().unwrap_or_default()),
        )
    });
    plan_endpoints_by_digest(svc, pods, existing, trigger_time)
}

/// [`plan_endpoints`] with the existing object known by its metadata and
/// [`subsets_digest`] only.
pub fn plan_endpoints_by_digest(
    svc: &Service,
    pods: &[Pod],
    existing: Option<(&ObjectMeta, u128)>,
    trigger_time: Option<&str>,
) -> EndpointsWrite {
    if svc.selector.is_none() {
        return EndpointsWrite::Nothing;
    }
    let mut subsets = desired_subsets(svc, pods);
    let truncated = truncate(&mut subsets, MAX_ADDRESSES);
    let want_labels = labels(svc);
    if let Some((meta, digest)) = existing {
        let have_annotation = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(OVER_CAPACITY_ANNOTATION))
            .is_some_and(|v| v == TRUNCATED);
        let have_labels = meta.labels.clone().unwrap_or_default();
        if digest == subsets_digest(&subsets)
            && have_labels == want_labels
            && have_annotation == truncated
        {
            return EndpointsWrite::Nothing;
        }
    }
    let mut meta = existing
        .map(|(meta, _)| meta.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(svc.name.clone()),
            namespace: Some(svc.namespace.clone()),
            ..ObjectMeta::default()
        });
    meta.labels = (!want_labels.is_empty()).then_some(want_labels);
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.remove(OVER_CAPACITY_ANNOTATION);
    annotations.remove(TRIGGER_TIME_ANNOTATION);
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.to_owned(), TRUNCATED.to_owned());
    }
    if let Some(t) = trigger_time {
        annotations.insert(TRIGGER_TIME_ANNOTATION.to_owned(), t.to_owned());
    }
    if annotations.is_empty() {
        meta.annotations = None;
    }
    let obj = Endpoints {
        metadata: meta,
        subsets: Some(subsets),
    };
    match existing {
        Some(_) => EndpointsWrite::Update(obj),
        None => EndpointsWrite::Create(obj),
    }
}
