//! Test builders shared by the module's table tests:
//! `svc("web").port(80).selector("app=web").build()`,
//! `pod("web-1").ready().ip("10.0.0.5").build()`.

use std::collections::BTreeMap;

use super::model::{ContainerPort, Family, Pod, Service, ServicePort, TargetPort};

pub(crate) struct SvcB(Service);

pub(crate) fn svc(name: &str) -> SvcB {
    SvcB(Service {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        uid: format!("uid-{name}"),
        labels: BTreeMap::new(),
        selector: None,
        ports: Vec::new(),
        families: vec![Family::V4],
        headless: false,
        publish_not_ready: false,
        prefer_close: false,
        created: None,
    })
}

impl SvcB {
    pub(crate) fn port(self, port: i32) -> Self {
        self.port_to("", port, TargetPort::Number(port))
    }
    pub(crate) fn port_to(mut self, name: &str, port: i32, target: TargetPort) -> Self {
        self.0.ports.push(ServicePort {
            name: name.to_owned(),
            port,
            target,
            protocol: "TCP".to_owned(),
            app_protocol: None,
        });
        self
    }
    pub(crate) fn selector(mut self, expr: &str) -> Self {
        let map = expr
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("k=v");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        self.0.selector = Some(map);
        self
    }
    pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
        self.0.labels.insert(k.to_owned(), v.to_owned());
        self
    }
    pub(crate) fn families(mut self, f: &[Family]) -> Self {
        self.0.families = f.to_vec();
        self
    }
    pub(crate) fn headless(mut self) -> Self {
        self.0.headless = true;
        self
    }
    pub(crate) fn publish_not_ready(mut self) -> Self {
        self.0.publish_not_ready = true;
        self
    }
    pub(crate) fn prefer_close(mut self) -> Self {
        self.0.prefer_close = true;
        self
    }
    pub(crate) fn build(self) -> Service {
        self.0
    }
}

pub(crate) struct PodB(Pod);

/// A pod labelled `app=web` in `default`, not ready, without IP.
pub(crate) fn pod(name: &str) -> PodB {
    PodB(Pod {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        uid: format!("uid-{name}"),
        labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
        ips: Vec::new(),
        ready: false,
        terminating: false,
        terminal: false,
        node_name: None,
        hostname: None,
        subdomain: None,
        container_ports: Vec::new(),
        ready_changed: None,
    })
}

impl PodB {
    pub(crate) fn ready(mut self) -> Self {
        self.0.ready = true;
        self
    }
    pub(crate) fn ip(mut self, ip: &str) -> Self {
        self.0.ips.push(ip.parse().expect("ip"));
        self
    }
    pub(crate) fn ns(mut self, ns: &str) -> Self {
        self.0.namespace = ns.to_owned();
        self
    }
    pub(crate) fn labels(mut self, expr: &str) -> Self {
        self.0.labels = expr
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("k=v");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        self
    }
    pub(crate) fn terminating(mut self) -> Self {
        self.0.terminating = true;
        self
    }
    pub(crate) fn terminal(mut self) -> Self {
        self.0.terminal = true;
        self
    }
    pub(crate) fn node(mut self, n: &str) -> Self {
        self.0.node_name = Some(n.to_owned());
        self
    }
    pub(crate) fn hostname(mut self, h: &str) -> Self {
        self.0.hostname = Some(h.to_owned());
        self
    }
    pub(crate) fn subdomain(mut self, s: &str) -> Self {
        self.0.subdomain = Some(s.to_owned());
        self
    }
    pub(crate) fn cport(mut self, name: &str, port: i32) -> Self {
        self.0.container_ports.push(ContainerPort {
            name: name.to_owned(),
            port,
            protocol: "TCP".to_owned(),
        });
        self
    }
    pub(crate) fn build(self) -> Pod {
        self.0
    }
}

/// `n` ready pods `web-000…` with IPs 10.0.{i/200}.{i%200+1}.
pub(crate) fn ready_pods(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            pod(&format!("web-{i:03}"))
                .ready()
                .ip(&format!("10.0.{}.{}", i / 200, i % 200 + 1))
                .build()
        })
        .collect()
}
