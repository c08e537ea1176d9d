//! A cached Pod: [`model::Pod`] without its name and namespace (the cache's
//! key holds them) and with shared label sets, port lists and node names —
//! about a tenth of the model's size.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use super::super::model::{self, ContainerPort, Service};
use super::{Ips, Labels, Pair, Shared, Uid, selector_matches};

/// `spec.hostname` and `spec.subdomain`, rarely set, so boxed together.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostNames {
    hostname: Option<Box<str>>,
    subdomain: Option<Box<str>>,
}

/// What the pods of one template share: labels and container ports, one
/// shared copy referred to by a thin pointer.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Template {
    labels: Labels,
    ports: Arc<[ContainerPort]>,
}

/// `lastTransitionTime` of `Ready` as seconds and nanoseconds (a
/// `Option<Timestamp>` takes 24 bytes; at 100,000 pods every byte of the
/// record is 100 KB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Time {
    second: i64,
    nanosecond: i32,
}

/// Flag bits of a record.
const READY: u8 = 1;
const TERMINATING: u8 = 2;
const TERMINAL: u8 = 4;
const HAS_TIME: u8 = 8;

/// A cached Pod; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    uid: Uid,
    template: Arc<Template>,
    ips: Ips,
    node_name: Option<Arc<str>>,
    names: Option<Box<HostNames>>,
    ready_changed: Time,
    flags: u8,
}

impl PodRecord {
    /// The record of `pod`.
    pub fn new(pod: &model::Pod, tables: &mut Shared) -> PodRecord {
        let names = (pod.hostname.is_some() || pod.subdomain.is_some()).then(|| {
            Box::new(HostNames {
                hostname: pod.hostname.as_deref().map(Into::into),
                subdomain: pod.subdomain.as_deref().map(Into::into),
            })
        });
        let template = Template {
            labels: tables.labels(&pod.labels),
            ports: tables.ports.intern(&pod.container_ports),
        };
        let time = pod.ready_changed.map(|t| Time {
            second: t.as_second(),
            nanosecond: t.subsec_nanosecond(),
        });
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        PodRecord {
            uid: Uid::new(&pod.uid),
            template: tables.templates.intern_owned(template),
            ips: Ips::new(&pod.ips),
            node_name: tables.string(pod.node_name.as_deref()),
            names,
            ready_changed: time.unwrap_or(Time {
                second: 0,
                nanosecond: 0,
            }),
            flags: flag(pod.ready, READY)
                | flag(pod.terminating, TERMINATING)
                | flag(pod.terminal, TERMINAL)
                | flag(time.is_some(), HAS_TIME),
        }
    }

    fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// The model pod `namespace/name` this record was made from.
    pub fn to_model(&self, namespace: &str, name: &str) -> model::Pod {
        let names = self.names.as_deref();
        let t = self.ready_changed;
        model::Pod {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: self.uid.to_string(),
            labels: self
                .template
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ips: self.ips.as_slice().to_vec(),
            ready: self.has(READY),
            terminating: self.has(TERMINATING),
            terminal: self.has(TERMINAL),
            node_name: self.node_name.as_deref().map(str::to_owned),
            hostname: names.and_then(|n| n.hostname.as_deref().map(str::to_owned)),
            subdomain: names.and_then(|n| n.subdomain.as_deref().map(str::to_owned)),
            container_ports: self.template.ports.to_vec(),
            // Made from a valid timestamp's own parts: always valid again.
            ready_changed: self
                .has(HAS_TIME)
                .then(|| Timestamp::new(t.second, t.nanosecond).ok())
                .flatten(),
        }
    }

    /// The pod's labels, sorted by key.
    pub fn labels(&self) -> &[Pair] {
        &self.template.labels
    }

    /// `spec.nodeName`.
    pub fn node_name(&self) -> Option<&str> {
        self.node_name.as_deref()
    }

    /// [`super::super::plan::selects`] for a pod of the Service's namespace.
    pub fn selected_by(&self, svc: &Service) -> bool {
        let Some(selector) = &svc.selector else {
            return false;
        };
        let pairs = selector.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        selector_matches(pairs, &self.template.labels)
            && !self.ips.as_slice().is_empty()
            && !self.has(TERMINAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::fixtures::{pod, svc};
    use crate::endpointslice::plan::selects;

    fn pods() -> Vec<model::Pod> {
        let mut dated = pod("web-3").ready().ip("10.0.0.3").build();
        dated.ready_changed = Some("2026-12-01T10:00:00.5Z".parse().expect("time"));
        dated.uid = "5f0c3a9e-1b2d-4c5e-8f70-123456789abc".to_owned();
        vec![
            pod("web-0").build(),
            pod("web-1").ready().ip("10.0.0.1").node("n1").build(),
            pod("web-2")
                .ip("fd00::2")
                .ip("10.0.0.2")
                .terminating()
                .hostname("h")
                .subdomain("web")
                .cport("http", 8080)
                .cport("", 9090)
                .labels("app=web,tier=front")
                .build(),
            dated,
            {
                let mut old = pod("web-5").ip("10.0.0.5").build();
                old.ready_changed = Some("1969-12-31T23:59:59.25Z".parse().expect("time"));
                old
            },
            pod("web-4")
                .ip("10.0.0.4")
                .terminal()
                .subdomain("only")
                .build(),
            pod("db-1").ns("other").labels("").ip("10.0.1.1").build(),
        ]
    }

    #[test]
    fn records_round_trip_to_the_same_model() {
        let mut tables = Shared::default();
        for p in pods() {
            let rec = PodRecord::new(&p, &mut tables);
            assert_eq!(rec.to_model(&p.namespace, &p.name), p, "{}", p.name);
        }
    }

    #[test]
    fn equal_parts_are_shared() {
        let mut tables = Shared::default();
        let a = PodRecord::new(&pod("a").cport("http", 80).node("n").build(), &mut tables);
        let b = PodRecord::new(&pod("b").cport("http", 80).node("n").build(), &mut tables);
        assert!(Arc::ptr_eq(&a.template, &b.template));
        assert!(
            a.node_name
                .as_ref()
                .zip(b.node_name.as_ref())
                .is_some_and(|(x, y)| Arc::ptr_eq(x, y))
        );
    }

    #[test]
    fn selected_by_agrees_with_the_planner() {
        let mut tables = Shared::default();
        let services = [
            svc("web").selector("app=web").build(),
            svc("front").selector("app=web,tier=front").build(),
            svc("none").build(),
            svc("all").selector("").build(),
        ];
        for p in pods().into_iter().filter(|p| p.namespace == "default") {
            let rec = PodRecord::new(&p, &mut tables);
            for s in &services {
                assert_eq!(
                    rec.selected_by(s),
                    selects(s, &p),
                    "{} by {}",
                    p.name,
                    s.name
                );
            }
        }
    }
}
