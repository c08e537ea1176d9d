//! `apiserver_qps` / `apiserver_burst` / `apiserver_max_inflight` applied to
//! the real API client (`k8s::client::client`), judged by what the test API
//! server saw: how many requests it handled at once, and which requests
//! arrived relative to others. No wall-clock thresholds; the exact spacing of
//! a token bucket is tested on Tokio's paused clock in `k8s::limit`.

mod common;
mod support;

use std::time::Duration;

use clusterdns::k8s::client::{self, ApiAccess};
use clusterdns::k8s::limit::ApiLimits;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::{ListParams, WatchParams};
use support::apiserver::ApiServer;
use support::fixtures::poll_until;

async fn client_for(server: &ApiServer, limits: ApiLimits) -> kube::Client {
    let access = ApiAccess {
        endpoint: Some(server.url()),
        limits,
        ..ApiAccess::default()
    };
    client::client(&access).await.expect("client")
}

/// Send `n` service lists at once through `client`; all must succeed.
async fn concurrent_lists(client: &kube::Client, n: usize) {
    let lists = (0..n).map(|_| {
        let api: Api<Service> = Api::all(client.clone());
        async move { api.list(&ListParams::default()).await }
    });
    for result in futures::future::join_all(lists).await {
        result.expect("list");
    }
}

fn count(server: &ApiServer, prefix: &str) -> usize {
    server
        .request_log()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// The Corefile's options reach the binary's client: with
/// `apiserver_max_inflight 1` its watches list one kind at a time.
#[test]
fn the_corefile_options_limit_the_servers_own_watches() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(ApiServer::start());
    server.set_latency(Duration::from_millis(30));
    let corefile = format!(
        r#"
cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        endpoint {}
        apiserver_qps 100
        apiserver_burst 100
        apiserver_max_inflight 1
    }}
}}
"#,
        server.url()
    );
    let _dns = common::TestServer::start(&corefile, &[]);
    for kind in ["services", "endpointslices", "namespaces"] {
        assert!(
            count(&server, &format!("LIST {kind}")) >= 1,
            "{kind} listed: {:?}",
            server.request_log()
        );
    }
    assert_eq!(server.max_concurrent_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_caps_the_requests_the_api_server_handles_at_once() {
    let server = ApiServer::start().await;
    server.set_latency(Duration::from_millis(50));

    // Without a limit, eight lists overlap at the server.
    let free = client_for(&server, ApiLimits::default()).await;
    concurrent_lists(&free, 8).await;
    assert!(
        server.max_concurrent_requests() > 1,
        "the unlimited client never overlapped requests"
    );

    for cap in [1_u32, 2] {
        server.reset_max_concurrent_requests();
        let limited = client_for(
            &server,
            ApiLimits {
                max_inflight: Some(cap),
                ..ApiLimits::default()
            },
        )
        .await;
        concurrent_lists(&limited, 8).await;
        let seen = server.max_concurrent_requests();
        assert!(
            (1..=cap as usize).contains(&seen),
            "max_inflight {cap}: the server handled {seen} at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_watch_does_not_hold_an_inflight_slot() {
    let server = ApiServer::start().await;
    let limited = client_for(
        &server,
        ApiLimits {
            max_inflight: Some(1),
            ..ApiLimits::default()
        },
    )
    .await;
    let api: Api<Service> = Api::all(limited.clone());
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    // With the watch stream open, other requests still go out.
    let list = tokio::time::timeout(Duration::from_secs(15), api.list(&ListParams::default()))
        .await
        .expect("a list while a watch is open")
        .expect("list");
    assert!(list.items.is_empty());
    // And the watch still delivers.
    server.apply(
        &serde_json::from_value::<Service>(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.1"}
        }))
        .expect("svc"),
    );
    let event = tokio::time::timeout(Duration::from_secs(15), stream.next())
        .await
        .expect("an event");
    assert!(
        matches!(event, Some(Ok(kube::api::WatchEvent::Added(_)))),
        "{event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qps_and_burst_hold_requests_beyond_the_burst() {
    let server = ApiServer::start().await;
    // A burst of 2, then one token per 1000 s: the third request waits.
    let throttled = client_for(
        &server,
        ApiLimits {
            qps: Some(0.001),
            burst: Some(2),
            max_inflight: None,
        },
    )
    .await;
    let pending = tokio::spawn(async move { concurrent_lists(&throttled, 3).await });
    poll_until("the burst's two lists", || {
        count(&server, "LIST services") == 2
    })
    .await;

    // An unthrottled client's sequential requests all get through meanwhile,
    // and the throttled third request still has not.
    let free = client_for(&server, ApiLimits::default()).await;
    let namespaces: Api<Namespace> = Api::all(free);
    for _ in 0..5 {
        namespaces.list(&ListParams::default()).await.expect("list");
    }
    assert_eq!(count(&server, "LIST namespaces"), 5);
    assert_eq!(
        count(&server, "LIST services"),
        2,
        "{:?}",
        server.request_log()
    );
    pending.abort();
}
