//! Which endpoints a Service port sends traffic to on this node, as
//! kube-proxy's endpoint categorisation decides it:
//!
//! - an endpoint belongs to a port when its slice has a port of the same
//!   name and protocol (the number may differ per slice: named targetPorts);
//! - ready endpoints are used; when none is ready, endpoints that are
//!   serving and terminating are used instead (graceful termination), never
//!   both;
//! - zone hints narrow the cluster-wide set to the endpoints hinted for this
//!   node's zone, but only when every ready endpoint carries hints and at
//!   least one names this zone (otherwise hints are ignored);
//! - `Local` traffic policies use only this node's endpoints (hints do not apply).
//!
//! Pure: the renderer calls [`select`] per Service port and family.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use super::model::{Endpoint, Port, Slice};

/// Where a connection is DNAT-ed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The endpoint's IP.
    pub ip: IpAddr,
    /// The port on the endpoint.
    pub port: u16,
}

/// The outcome for one Service port and family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    /// Targets for traffic under the `Cluster` policy (sorted).
    pub cluster: Vec<Target>,
    /// Targets on this node, for `Local` policies (sorted).
    pub local: Vec<Target>,
    /// Some endpoint exists at all (ready or serving-terminating, anywhere):
    /// without one, traffic is rejected rather than dropped.
    pub any: bool,
    /// Endpoint IPs on this node or with no `nodeName`: the only sources a
    /// hairpin connection (a pod reaching itself through its Service) can
    /// come from on this node, since a pod's own node is the one that
    /// DNATs its packets.
    pub here: BTreeSet<IpAddr>,
}

/// The node the proxy programs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Its name, matched against endpoints' `nodeName`.
    pub name: String,
    /// Its `topology.kubernetes.io/zone` label.
    pub zone: Option<String>,
}

/// Ready endpoints, else the serving-and-terminating ones.
fn usable<'a>(eps: impl Iterator<Item = (&'a Endpoint, Target)> + Clone) -> Vec<Target> {
    let ready: BTreeSet<Target> = eps
        .clone()
        .filter(|(e, _)| e.ready)
        .map(|(_, t)| t)
        .collect();
    let chosen = if ready.is_empty() {
        eps.filter(|(e, _)| e.serving && e.terminating)
            .map(|(_, t)| t)
            .collect()
    } else {
        ready
    };
    chosen.into_iter().collect()
}

/// The endpoints of `port` in `slices` of the given family for `node`.
pub fn select(port: &Port, slices: &[Arc<Slice>], ipv6: bool, node: &Node) -> Chosen {
    let mut all: Vec<(&Endpoint, Target)> = Vec::new();
    for slice in slices.iter().filter(|s| s.ipv6 == ipv6) {
        let Some(sp) = slice
            .ports
            .iter()
            .find(|p| p.name == port.name && p.protocol == port.protocol)
        else {
            continue;
        };
        for e in &slice.endpoints {
            if e.ip.is_ipv6() == ipv6 {
                all.push((
                    e,
                    Target {
                        ip: e.ip,
                        port: sp.port,
                    },
                ));
            }
        }
    }
    let hinted = node.zone.as_deref().and_then(|zone| {
        let mut ready = all.iter().filter(|(e, _)| e.ready).peekable();
        ready.peek()?;
        let mut any_here = false;
        for (e, _) in ready {
            let hints = e.zone_hints.as_ref()?;
            any_here |= hints.iter().any(|z| z == zone);
        }
        any_here.then(|| {
            all.iter()
                .filter(|(e, _)| {
                    e.zone_hints
                        .as_ref()
                        .is_some_and(|h| h.iter().any(|z| z == zone))
                })
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    let cluster_pool = hinted.as_ref().unwrap_or(&all);
    let cluster = usable(cluster_pool.iter().cloned());
    let local = usable(
        all.iter()
            .filter(|(e, _)| e.node.as_deref() == Some(node.name.as_str()))
            .cloned(),
    );
    let any = !usable(all.iter().cloned()).is_empty();
    let here = all
        .iter()
        .filter(|(e, _)| e.node.as_deref().is_none_or(|n| n == node.name))
        .map(|(_, t)| t.ip)
        .collect();
    Chosen {
        cluster,
        local,
        any,
        here,
    }
}

#[cfg(test)]
mod tests;
