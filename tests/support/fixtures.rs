//! Builders and stream helpers shared by tests that run against the test API
//! server: small objects, and bounded waits on kube watch / watcher streams.
//!
//! Invariant: every wait is bounded by `WAIT`; a stalled stream fails the test
//! instead of hanging it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use tokio::time::timeout;

/// How long a test waits for any one thing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A Service with a ClusterIP of 10.96.0.10 and the given labels.
pub fn service(ns: &str, name: &str, labels: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A ConfigMap holding `k: value`.
pub fn config_map(ns: &str, name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), value.to_string())])),
        ..Default::default()
    }
}

/// The names of some objects, in order.
pub fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

/// The next item of a stream, failing the test after `WAIT`.
pub async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    timeout(WAIT, stream.next())
        .await
        .expect("stream stalled")
        .expect("stream ended")
}

/// A short description of a watcher event: `Init`, `InitApply(web)`, `Apply(web)`, ...
pub fn describe<K: kube::Resource>(ev: &Result<Event<K>, watcher::Error>) -> String {
    let name = |o: &K| o.meta().name.clone().unwrap_or_default();
    match ev {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(o)) => format!("InitApply({})", name(o)),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(o)) => format!("Apply({})", name(o)),
        Ok(Event::Delete(o)) => format!("Delete({})", name(o)),
        Err(e) => format!("Err({e})"),
    }
}

/// Collect described watcher events until `last` shows up (errors included).
pub async fn until<S, K>(stream: &mut S, last: &str) -> Vec<String>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
    K: kube::Resource,
{
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some(last) {
        seen.push(describe(&next(stream).await));
        assert!(seen.len() < 50, "never saw {last}: {seen:?}");
    }
    seen
}

/// An empty IPv4 EndpointSlice.
pub fn slice(ns: &str, name: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Vec::new(),
        ports: None,
    }
}

/// Poll `f` every 20 ms until it holds; fail the test naming `what` if it
/// does not within 15 s (generous: the machine may be busy, and no test
/// judges how fast it holds).
pub async fn poll_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Running pod in `ns` labelled `app=<app>` on node-a, with one container
/// exposing `port` (a containerPort object), Ready or not.
pub fn running_pod(
    ns: &str,
    name: &str,
    app: &str,
    ip: &str,
    ready: bool,
    port: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": app, "image": app, "ports": [port]}]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
        }
    })
}

/// A Service in `ns` selecting `app=<app>`, with ClusterIP `cluster_ip`
/// (`None` for headless) in IPv4 and the one TCP port `port` (a
/// ServicePort object).
pub fn selector_service(
    ns: &str,
    name: &str,
    app: &str,
    cluster_ip: &str,
    port: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"app": app},
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "ports": [port]
        }
    })
}
