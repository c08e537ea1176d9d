//! Health-check node ports: a Service with `externalTrafficPolicy: Local`
//! (NodePort or LoadBalancer) gets a `healthCheckNodePort`, on which every
//! node's proxy answers whether it has a local endpoint, so load balancers
//! send traffic only to nodes that can serve it without a second hop.
//! As kube-proxy: HTTP 200 with the count when this node has local ready
//! endpoints, 503 when it has none; the body is JSON naming the Service.
//!
//! [`ports`] is pure (from the same selection the rules use); the shell
//! serves its result.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::{Service, Slice};
use super::select::{Node, select};

/// What one health-check port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `namespace/name` of the Service.
    pub service: String,
    /// Distinct local endpoint IPs in use.
    pub local_endpoints: usize,
}

impl Check {
    /// The HTTP status and JSON body kube-proxy gives.
    pub fn answer(&self) -> (u16, String) {
        let (ns, name) = self.service.split_once('/').unwrap_or(("", &self.service));
        let body = serde_json::json!({
            "service": {"namespace": ns, "name": name},
            "localEndpoints": self.local_endpoints,
            "serviceProxyHealthy": true,
        })
        .to_string();
        let status = if self.local_endpoints > 0 { 200 } else { 503 };
        (status, body)
    }
}

/// Health-check port → what it reports, for every Service (with its
/// slices) that asks for one.
pub fn ports<'a>(
    services: impl IntoIterator<Item = (&'a Service, &'a [Arc<Slice>])>,
    node: &Node,
) -> BTreeMap<u16, Check> {
    let mut out = BTreeMap::new();
    for (svc, svc_slices) in services.into_iter().filter(|(s, _)| s.external_local) {
        let Some(port) = svc.health_check_node_port else {
            continue;
        };
        let mut ips = std::collections::BTreeSet::new();
        for p in &svc.ports {
            for v6 in [false, true] {
                ips.extend(select(p, svc_slices, v6, node).local.iter().map(|t| t.ip));
            }
        }
        out.insert(
            port,
            Check {
                service: svc.key(),
                local_endpoints: ips.len(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::fixtures::{ep, slice, svc};
    use crate::proxy::model::{Protocol::Tcp, group};

    #[test]
    fn local_endpoints_decide_the_answer() {
        let node = Node {
            name: "node-a".into(),
            zone: None,
        };
        let mut web = svc("web", "10.96.0.50")
            .port("http", Tcp, 80)
            .node_port(30080);
        web.external_local = true;
        web.health_check_node_port = Some(32000);
        let mut cluster = svc("plain", "10.96.0.51")
            .port("http", Tcp, 80)
            .node_port(30081);
        cluster.health_check_node_port = Some(32001);
        let port = [("http", Tcp, 9376)];
        let cases = [
            (
                vec![
                    ep("10.244.1.2"),
                    ep("10.244.1.3"),
                    ep("10.244.2.2").on("node-b"),
                ],
                2,
                200,
            ),
            (vec![ep("10.244.2.2").on("node-b")], 0, 503),
            (vec![ep("10.244.1.2").unready()], 0, 503),
        ];
        for (eps, count, status) in cases {
            let slices = group(vec![slice("web", &eps, &port), slice("plain", &eps, &port)]);
            let of = |s: &Service| slices.get(&s.key()).map_or(&[][..], Vec::as_slice);
            let got = ports([(&web, of(&web)), (&cluster, of(&cluster))], &node);
            assert_eq!(
                got.keys().copied().collect::<Vec<_>>(),
                [32000],
                "Local only"
            );
            let check = &got[&32000];
            assert_eq!(check.local_endpoints, count);
            let (code, body) = check.answer();
            assert_eq!(code, status);
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["service"]["name"], "web");
            assert_eq!(v["localEndpoints"], count);
        }
    }
}
