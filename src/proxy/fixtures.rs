//! Test builders for the proxy's pure parts:
//! `svc("web", "10.96.0.10").port("http", Protocol::Tcp, 80)`,
//! `slice("web", &[ep("10.244.1.2")], &[("http", Protocol::Tcp, 9376)])`.

use super::model::{Endpoint, Port, Protocol, Service, Slice, SlicePort};

pub(crate) fn svc(name: &str, ip: &str) -> Service {
    Service {
        namespace: "default".into(),
        name: name.into(),
        cluster_ips: vec![ip.parse().expect("ip")],
        external_ips: Vec::new(),
        lb_ips: Vec::new(),
        ports: Vec::new(),
        affinity: None,
        external_local: false,
        internal_local: false,
        health_check_node_port: None,
    }
}

impl Service {
    pub(crate) fn port(mut self, name: &str, protocol: Protocol, port: u16) -> Self {
        self.ports.push(Port {
            name: name.into(),
            protocol,
            port,
            node_port: None,
        });
        self
    }
    pub(crate) fn node_port(mut self, n: u16) -> Self {
        if let Some(p) = self.ports.last_mut() {
            p.node_port = Some(n);
        }
        self
    }
}

pub(crate) fn ep(ip: &str) -> Endpoint {
    Endpoint {
        ip: ip.parse().expect("ip"),
        ready: true,
        serving: true,
        terminating: false,
        node: Some("node-a".into()),
        zone_hints: None,
    }
}

impl Endpoint {
    pub(crate) fn on(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }
    pub(crate) fn unready(mut self) -> Self {
        self.ready = false;
        self.serving = false;
        self
    }
    pub(crate) fn terminating(mut self) -> Self {
        self.ready = false;
        self.serving = true;
        self.terminating = true;
        self
    }
    pub(crate) fn hint(mut self, zone: &str) -> Self {
        self.zone_hints
            .get_or_insert_with(Vec::new)
            .push(zone.into());
        self
    }
}

pub(crate) fn slice(
    service: &str,
    endpoints: &[Endpoint],
    ports: &[(&str, Protocol, u16)],
) -> Slice {
    Slice {
        namespace: "default".into(),
        service: service.into(),
        ipv6: endpoints.first().is_some_and(|e| e.ip.is_ipv6()),
        ports: ports
            .iter()
            .map(|(name, protocol, port)| SlicePort {
                name: (*name).into(),
                protocol: *protocol,
                port: *port,
            })
            .collect(),
        endpoints: endpoints.to_vec(),
        trigger_time: None,
    }
}
