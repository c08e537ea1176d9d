//! A cached Service: [`model::Service`] without its name and namespace (the
//! cache's key holds them), label set and selector as sorted boxed pairs.
//! Also what maps a pod to the Services selecting it.

use k8s_openapi::jiff::Timestamp;

use super::super::model::{self, Family, ServicePort};
use super::{Labels, Pair, Shared, Uid, selector_matches};

/// A cached Service; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    uid: Uid,
    labels: Labels,
    selector: Option<Labels>,
    ports: Box<[ServicePort]>,
    families: Box<[Family]>,
    created: Option<Timestamp>,
    headless: bool,
    publish_not_ready: bool,
    prefer_close: bool,
}

impl ServiceRecord {
    /// The record of `svc`.
    pub fn new(svc: &model::Service, shared: &mut Shared) -> ServiceRecord {
        ServiceRecord {
            uid: Uid::new(&svc.uid),
            labels: shared.labels(&svc.labels),
            selector: svc.selector.as_ref().map(|s| shared.labels(s)),
            ports: svc.ports.as_slice().into(),
            families: svc.families.as_slice().into(),
            created: svc.created,
            headless: svc.headless,
            publish_not_ready: svc.publish_not_ready,
            prefer_close: svc.prefer_close,
        }
    }

    /// The model Service `namespace/name` this record was made from.
    pub fn to_model(&self, namespace: &str, name: &str) -> model::Service {
        let map = |pairs: &Labels| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        model::Service {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: self.uid.to_string(),
            labels: map(&self.labels),
            selector: self.selector.as_ref().map(map),
            ports: self.ports.to_vec(),
            families: self.families.to_vec(),
            headless: self.headless,
            publish_not_ready: self.publish_not_ready,
            prefer_close: self.prefer_close,
            created: self.created,
        }
    }

    /// Whether the Service has a non-empty selector that labels `labels`
    /// (sorted by key) match. An empty selector selects no pod here, as the
    /// controller's pod → Service mapping always did.
    pub fn selects_labels(&self, labels: &[Pair]) -> bool {
        self.selector.as_ref().is_some_and(|sel| {
            !sel.is_empty() && selector_matches(sel.iter().map(|(k, v)| (&**k, &**v)), labels)
        })
    }

    /// Like [`ServiceRecord::selects_labels`], with labels as a lookup.
    pub fn selects(&self, has: &dyn Fn(&str, &str) -> bool) -> bool {
        self.selector
            .as_ref()
            .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| has(k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::fixtures::svc;
    use crate::endpointslice::model::TargetPort;

    #[test]
    fn services_round_trip() {
        let mut created = svc("dated").port(80).build();
        created.created = Some("2026-12-01T10:00:00Z".parse().expect("time"));
        created.uid = "5f0c3a9e-1b2d-4c5e-8f70-123456789abc".to_owned();
        let cases = [
            svc("plain").build(),
            svc("web")
                .port(80)
                .port_to("metrics", 9090, TargetPort::Name("m".into()))
                .selector("app=web,tier=front")
                .label("team", "a")
                .families(&[Family::V6, Family::V4])
                .headless()
                .publish_not_ready()
                .prefer_close()
                .build(),
            svc("empty-selector").selector("").build(),
            created,
        ];
        let mut shared = Shared::default();
        for s in cases {
            let rec = ServiceRecord::new(&s, &mut shared);
            assert_eq!(rec.to_model(&s.namespace, &s.name), s, "{}", s.name);
        }
    }

    #[test]
    fn selecting_needs_every_selector_label() {
        let mut shared = Shared::default();
        let web = ServiceRecord::new(
            &svc("web").selector("app=web,tier=front").build(),
            &mut shared,
        );
        let empty = ServiceRecord::new(&svc("e").selector("").build(), &mut shared);
        let none = ServiceRecord::new(&svc("n").build(), &mut shared);
        let labels = |expr: &str| -> Vec<Pair> {
            let mut v: Vec<Pair> = expr
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    (k.into(), v.into())
                })
                .collect();
            v.sort();
            v
        };
        let cases = [
            ("app=web,tier=front", true),
            ("app=web,tier=front,x=y", true),
            ("app=web", false),
            ("app=db,tier=front", false),
            ("", false),
        ];
        for (expr, want) in cases {
            let l = labels(expr);
            assert_eq!(web.selects_labels(&l), want, "{expr}");
            let has = |k: &str, v: &str| super::super::label(&l, k) == Some(v);
            assert_eq!(web.selects(&has), want, "{expr} as a lookup");
            assert!(!empty.selects_labels(&l) && !none.selects_labels(&l) && !none.selects(&has));
        }
    }
}
