//! The pure core of `clusterdns endpoints-controller`: what kube-controller-
//! manager's EndpointSlice controller would write for a Service, computed
//! without I/O so every rule is table-tested. The controller's shell (watches,
//! queue, writes, leader election) calls [`plan::plan`] per Service and writes
//! the result; this module imports nothing from the DNS role.
//!
//! Upstream behaviour mirrored (kubernetes/endpointslice `reconciler.go`,
//! `utils.go`):
//! - endpoints are the pods in the Service's namespace that match its
//!   selector, have an IP and are not Succeeded/Failed; terminating pods stay,
//!   with `ready` false (unless `publishNotReadyAddresses`), `serving` = pod
//!   Ready, `terminating` = deletionTimestamp set — all three written;
//! - one set of slices per address family (`spec.ipFamilies`) and per distinct
//!   port set (a named targetPort resolves per pod; a pod lacking the name is
//!   left out of that port), at most `--max-endpoints-per-slice` each, filled
//!   so that one pod's change rewrites one slice;
//! - `hostname` only when the pod's subdomain is the Service's name; zone from
//!   the node's `topology.kubernetes.io/zone`; targetRef to the pod;
//! - labels, ownerReference, the headless label and the empty placeholder
//!   slice as upstream; slices with another managed-by value are never touched.
//!
//! Zone hints follow upstream's `trafficDistribution: PreferClose` rule
//! (each ready endpoint with a zone is hinted to its own zone).
//!
//! Deliberate differences: the `service.kubernetes.io/topology-mode: Auto`
//! annotation uses that same per-zone rule, where upstream allocates zones
//! in proportion to the nodes' CPUs; a pod whose node is unknown gets no zone
//! instead of being held back until the node is seen.
//!
//! - [`model`]: the slim Service/Pod inputs and their conversions.
//! - [`plan`]: the EndpointSlice reconcile itself.
//! - [`endpoints`]: the v1 Endpoints object of a selector Service.
//! - [`mirror`]: EndpointSlices mirrored from hand-made Endpoints of a selector-less Service.
//! - [`controller`]: the shell — watches, stores, syncs, leader election.
//! - [`grouped`], [`record`], [`intern`]: the caches, their compact records
//!   and the values those share.
//! - [`apply`]: writing plans and tracking our own writes.
//! - [`trigger`]: the `last-change-trigger-time` each write carries.
//! - [`metrics`]: the `clusterdns_endpointslice_*` families.
//! - [`role`]: the `endpoints-controller` command: flags → client → controller, signals.

pub mod apply;
pub mod controller;
pub mod endpoints;
#[cfg(test)]
mod fixtures;
pub mod grouped;
pub mod intern;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod plan;
pub mod record;
pub mod role;
pub mod trigger;
