//! The cluster the fuzz targets serve: the demo cluster of
//! `config/demo-cluster.yaml` plus a headless Service with 40 ready
//! endpoints (`big.default.svc`), large enough that a UDP answer without
//! EDNS must be truncated, and a LoadBalancer Service with external
//! addresses (`lb.default`) for `k8s_external`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::index::snapshot::SharedIndex;
use crate::index::{ClusterIndex, IndexUpdate, Kind, Object};
use crate::watch::manifests;

/// The demo cluster's manifests.
pub const DEMO: &str = include_str!("../../config/demo-cluster.yaml");

/// Ready endpoints of `big.default.svc`.
pub const BIG_ENDPOINTS: usize = 40;

/// A headless Service `big` in `default` with [`BIG_ENDPOINTS`] ready
/// endpoints (hostnames `big-N`, IPs 10.250.0.N) and two named ports.
pub fn big_headless() -> String {
    let mut y = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\n\
         spec:\n  clusterIP: None\n  ports:\n  - {name: http, protocol: TCP, port: 80}\n\
         \x20 - {name: dns, protocol: UDP, port: 53}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: big-x1\n  namespace: default\n\
         \x20 labels: {kubernetes.io/service-name: big}\naddressType: IPv4\n\
         ports:\n- {name: http, protocol: TCP, port: 8080}\n- {name: dns, protocol: UDP, port: 53}\n\
         endpoints:\n",
    );
    for i in 0..BIG_ENDPOINTS {
        let _ = writeln!(
            y,
            "- {{addresses: [10.250.0.{}], hostname: big-{i}, conditions: {{ready: true}}}}",
            i + 1
        );
    }
    y
}

/// A LoadBalancer Service `lb` in `default` with an external IP and two
/// LoadBalancer ingress IPs (one IPv6), for `k8s_external`'s answers.
pub const EXTERNAL: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: default}\n\
     spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.80\n  externalIPs: [192.0.2.80]\n\
     \x20 ports:\n  - {name: http, protocol: TCP, port: 80}\n\
     status:\n  loadBalancer:\n    ingress:\n    - {ip: 198.51.100.80}\n    - {ip: '2001:db8::80'}\n";

/// Every object of the fuzz cluster, as the manifests source reads them
/// (parsed once per process).
pub fn objects() -> Vec<Object> {
    static OBJECTS: OnceLock<Vec<Object>> = OnceLock::new();
    OBJECTS.get_or_init(load).clone()
}

fn load() -> Vec<Object> {
    let mut out = Vec::new();
    for (name, text) in [
        ("demo-cluster.yaml", DEMO.to_string()),
        ("big.yaml", big_headless()),
        ("external.yaml", EXTERNAL.to_string()),
    ] {
        match manifests::parse_text(Path::new(name), &text, manifests::Filters::default()) {
            Ok(objects) => out.extend(objects),
            Err(e) => panic!("fuzz harness: the fixture {name} does not load: {e}"),
        }
    }
    out
}

/// One `Reset` per kind (so every kind is synced), as a source's first list.
pub fn reset_all(objects: Vec<Object>) -> IndexUpdate {
    let kinds = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::Namespace,
    ];
    IndexUpdate::Batch(
        kinds
            .into_iter()
            .map(|kind| IndexUpdate::Reset {
                kind,
                objects: objects
                    .iter()
                    .filter(|o| o.kind() == kind)
                    .cloned()
                    .collect(),
            })
            .collect(),
    )
}

/// An index holding the fuzz cluster (built once per process, then cloned).
pub fn index() -> ClusterIndex {
    static INDEX: OnceLock<ClusterIndex> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let mut index = ClusterIndex::default();
            index.apply(reset_all(objects()));
            index
        })
        .clone()
}

/// A published index holding the fuzz cluster.
pub fn shared_index() -> Arc<SharedIndex> {
    SharedIndex::new(index())
}
