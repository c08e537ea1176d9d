//! The mirroring direction: a Service without a selector whose v1 Endpoints
//! are written by hand (an external database behind a Service) gets
//! EndpointSlices copied from them, so DNS and the proxy, which read slices
//! only, see those endpoints. Mirrors upstream's EndpointSlice-mirroring
//! controller: one endpoint per address (`ready` from `addresses` vs
//! `notReadyAddresses`, the only condition written), address family from the
//! IP (unparseable IPs are skipped), one slice set per subset port set, at
//! most 1000 addresses taken per subset; labels copied from the Endpoints plus
//! service-name and our mirroring managed-by value; owner the Endpoints.
//! A Service that has a selector, lost its Endpoints, or whose Endpoints carry
//! `endpointslice.kubernetes.io/skip-mirror: "true"` gets its mirrored slices
//! deleted. No placeholder slice, as upstream.
//!
//! Not mirrored (yet): the Endpoints' annotations.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, ObjectReference};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::model::{Family, ModelError, Service};
use super::plan::{
    Desired, MANAGED_BY_LABEL, Plan, PlanOptions, SERVICE_NAME_LABEL, SliceOwner, endpoint_key,
    plan_sets, port_key,
};

#[cfg(test)]
mod tests;

/// Our mirroring managed-by value (upstream's is
/// `endpointslicemirroring-controller.k8s.io`; we never touch that one).
pub const MIRROR_MANAGED_BY: &str = "endpointslicemirroring-controller.clusterdns.io";
/// Endpoints carrying this label with value `true` are not mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Most addresses mirrored from one subset (upstream's cap).
pub const MAX_ADDRESSES_PER_SUBSET: usize = 1000;

impl PlanOptions {
    /// Options for mirroring: `opts` with the mirroring managed-by value.
    pub fn mirroring(opts: &PlanOptions) -> PlanOptions {
        PlanOptions {
            managed_by: MIRROR_MANAGED_BY.to_owned(),
            ..opts.clone()
        }
    }
}

fn mirrored(ep: &Endpoints) -> bool {
    let skip = ep
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    !skip
}

fn to_endpoint(addr: &EndpointAddress, ready: bool) -> Option<(Family, Endpoint)> {
    let ip: IpAddr = addr.ip.parse().ok()?;
    Some((
        Family::of(&ip),
        Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                ..EndpointConditions::default()
            }),
            hostname: addr.hostname.clone().filter(|h| !h.is_empty()),
            node_name: addr.node_name.clone().filter(|n| !n.is_empty()),
            target_ref: addr.target_ref.clone().map(|r| ObjectReference {
                resource_version: None,
                ..r
            }),
            ..Endpoint::default()
        },
    ))
}

/// The mirrored slices of `svc`. `endpoints` is the Endpoints object of the
/// same name, if any; `opts.managed_by` should be [`MIRROR_MANAGED_BY`]
/// (see [`PlanOptions::mirroring`]). An Endpoints object without uid cannot
/// be an owner and is an error.
pub fn plan_mirror(
    svc: &Service,
    endpoints: Option<&Endpoints>,
    existing: &[EndpointSlice],
    opts: &PlanOptions,
) -> Result<Plan, ModelError> {
    let source = endpoints.filter(|e| svc.selector.is_none() && mirrored(e));
    let (labels, owner_ref) = match source {
        Some(e) => {
            let uid = e
                .metadata
                .uid
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| ModelError::Missing {
                    kind: "Endpoints",
                    name: svc.name.clone(),
                    field: "metadata.uid",
                })?;
            let labels = e.metadata.labels.clone().unwrap_or_default();
            (
                labels,
                OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Endpoints".to_owned(),
                    name: svc.name.clone(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
            )
        }
        None => (BTreeMap::new(), OwnerReference::default()),
    };
    let mut labels: BTreeMap<String, String> = labels
        .into_iter()
        .filter(|(k, _)| k != SERVICE_NAME_LABEL && k != MANAGED_BY_LABEL)
        .collect();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), svc.name.clone());
    labels.insert(MANAGED_BY_LABEL.to_owned(), opts.managed_by.clone());
    let owner = SliceOwner {
        service_name: svc.name.clone(),
        namespace: svc.namespace.clone(),
        labels,
        owner: owner_ref,
        managed_by: opts.managed_by.clone(),
    };
    let mut desired: BTreeMap<Family, Desired> = BTreeMap::new();
    for subset in source.iter().flat_map(|e| e.subsets.iter().flatten()) {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let key = port_key(&ports);
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        for (addr, is_ready) in ready.chain(not_ready).take(MAX_ADDRESSES_PER_SUBSET) {
            let Some((family, ep)) = to_endpoint(addr, is_ready) else {
                continue;
            };
            desired
                .entry(family)
                .or_default()
                .entry(key.clone())
                .or_insert_with(|| (ports.clone(), BTreeMap::new()))
                .1
                .entry(endpoint_key(&ep))
                .or_insert(ep);
        }
    }
    Ok(plan_sets(&owner, desired, existing, opts, false))
}
