//! Self-tests of the in-process test API server (`tests/support`), driven by the
//! real kube client and kube-runtime watcher, so that the server is known to
//! speak the protocol before other tests lean on it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use support::apiserver::ApiServer;
use support::fixtures::{WAIT, config_map, names, next, service, slice, until};
use tokio::time::timeout;

async fn list_names(api: &Api<Service>, lp: &ListParams) -> Vec<String> {
    names(&api.list(lp).await.expect("list").items)
}

#[tokio::test]
async fn create_get_and_list_with_label_and_field_selectors() {
    let server = ApiServer::start().await;
    let api: Api<Service> = Api::namespaced(server.client(), "default");
    for (name, labels) in [
        ("web", vec![("app", "web"), ("tier", "front")]),
        ("db", vec![("app", "db"), ("tier", "back")]),
        ("canary", vec![("app", "web"), ("canary", "yes")]),
    ] {
        api.create(&PostParams::default(), &service("default", name, &labels))
            .await
            .expect("create");
    }
    server.apply(&service("other", "web", &[("app", "web")]));

    let got = api.get("web").await.expect("get");
    assert_eq!(got.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(got.metadata.generation, Some(1));
    assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());
    assert_eq!(got.metadata.resource_version.as_deref(), Some("1"));

    let all = ListParams::default();
    assert_eq!(list_names(&api, &all).await, ["canary", "db", "web"]);
    assert_eq!(
        list_names(&api, &all.clone().labels("app=web")).await,
        ["canary", "web"]
    );
    assert_eq!(
        list_names(&api, &all.clone().labels("app==web,!canary")).await,
        ["web"]
    );
    assert_eq!(
        list_names(&api, &all.clone().labels("tier!=back")).await,
        ["canary", "web"]
    );
    assert_eq!(
        list_names(&api, &all.clone().labels("app in (db, web),canary")).await,
        ["canary"]
    );
    assert_eq!(
        list_names(&api, &all.clone().labels("app notin (web)")).await,
        ["db"]
    );
    assert_eq!(
        list_names(&api, &all.clone().labels("tier")).await,
        ["db", "web"]
    );
    assert_eq!(
        list_names(&api, &all.clone().fields("metadata.name=db")).await,
        ["db"]
    );
    assert_eq!(
        list_names(&api, &all.clone().fields("metadata.name!=db")).await,
        ["canary", "web"]
    );

    let everywhere: Api<Service> = Api::all(server.client());
    let list = everywhere
        .list(&all.clone().fields("metadata.namespace=other"))
        .await
        .expect("list all");
    assert_eq!(names(&list.items), ["web"]);
    assert_eq!(list.metadata.resource_version.as_deref(), Some("4"));
    assert_eq!(
        everywhere.list(&all).await.expect("list all").items.len(),
        4
    );
    assert!(
        server
            .request_log()
            .contains(&"LIST services ns=default".to_string())
    );
}

#[tokio::test]
async fn list_pages_through_limit_and_continue_tokens() {
    let server = ApiServer::start().await;
    for i in 0..5 {
        server.apply(&config_map("default", &format!("cm-{i}"), "v"));
    }
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut lp = ListParams::default().limit(2);
    let mut pages = Vec::new();
    loop {
        let page = api.list(&lp).await.expect("page");
        assert_eq!(page.metadata.resource_version.as_deref(), Some("5"));
        pages.push(names(&page.items));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
        // Changes between pages do not move the list's resourceVersion.
        server.apply(&config_map("default", "zz-late", "v"));
    }
    assert_eq!(
        pages,
        [
            vec!["cm-0", "cm-1"],
            vec!["cm-2", "cm-3"],
            vec!["cm-4", "zz-late"]
        ]
    );
}

#[tokio::test]
async fn conflicts_and_missing_objects_are_status_errors() {
    let server = ApiServer::start().await;
    let api: Api<Service> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &service("default", "web", &[]))
        .await
        .expect("create");

    let dup = api
        .create(&PostParams::default(), &service("default", "web", &[]))
        .await;
    assert!(
        matches!(dup, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists")
    );

    let mut fresh = created.clone();
    fresh.metadata.labels = Some(BTreeMap::from([("v".into(), "2".into())]));
    let replaced = api
        .replace("web", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    assert_eq!(replaced.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(replaced.metadata.generation, Some(1), "labels are not spec");

    let stale = api.replace("web", &PostParams::default(), &created).await;
    assert!(matches!(stale, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict"));

    let missing = api.get("nope").await;
    assert!(matches!(missing, Err(kube::Error::Api(s)) if s.code == 404 && s.reason == "NotFound"));
    let missing = api
        .patch(
            "nope",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({})),
        )
        .await;
    assert!(matches!(missing, Err(kube::Error::Api(s)) if s.code == 404));

    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"clusterIP": "10.96.0.99"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        patched.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("10.96.0.99")
    );
    assert_eq!(patched.metadata.generation, Some(2));

    let applied = api
        .patch(
            "new",
            &PatchParams::apply("test"),
            &Patch::Apply(service("default", "new", &[("a", "b")])),
        )
        .await
        .expect("server-side apply creates");
    assert_eq!(
        applied.metadata.labels,
        Some(BTreeMap::from([("a".into(), "b".into())]))
    );

    api.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(server.get::<Service>("default", "web").is_none());
    let again = api.delete("web", &DeleteParams::default()).await;
    assert!(matches!(again, Err(kube::Error::Api(s)) if s.code == 404));
}

#[tokio::test]
async fn watch_delivers_added_modified_deleted_in_order() {
    let server = ApiServer::start().await;
    server.apply(&service("default", "old", &[]));
    let api: Api<Service> = Api::namespaced(server.client(), "default");
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();

    server.apply(&service("default", "web", &[]));
    server.apply(&service("default", "web", &[("v", "2")]));
    server.apply(&service("elsewhere", "web", &[]));
    assert!(server.delete::<Service>("default", "web"));

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream).await.expect("event") {
            WatchEvent::Added(s) => seen.push(format!(
                "ADDED {}",
                s.metadata.resource_version.unwrap_or_default()
            )),
            WatchEvent::Modified(s) => seen.push(format!(
                "MODIFIED {}",
                s.metadata.resource_version.unwrap_or_default()
            )),
            WatchEvent::Deleted(s) => seen.push(format!(
                "DELETED {}",
                s.metadata.resource_version.unwrap_or_default()
            )),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED 2", "MODIFIED 3", "DELETED 5"]);
    assert!(
        server
            .request_log()
            .contains(&"WATCH services ns=default rv=1".to_string())
    );
}

#[tokio::test]
async fn watch_with_selector_sees_objects_leave_and_enter_the_selection() {
    let server = ApiServer::start().await;
    let api: Api<Service> = Api::all(server.client());
    let wp = WatchParams::default().labels("app=web").disable_bookmarks();
    let mut stream = api.watch(&wp, "1").await.expect("watch").boxed();
    server.apply(&service("default", "a", &[("app", "web")]));
    server.apply(&service("default", "a", &[("app", "db")]));
    server.apply(&service("default", "b", &[("app", "db")]));
    server.apply(&service("default", "b", &[("app", "web")]));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = match next(&mut stream).await.expect("event") {
            WatchEvent::Added(s) => format!("ADDED {}", s.metadata.name.unwrap_or_default()),
            WatchEvent::Modified(s) => format!("MODIFIED {}", s.metadata.name.unwrap_or_default()),
            WatchEvent::Deleted(s) => format!("DELETED {}", s.metadata.name.unwrap_or_default()),
            other => panic!("unexpected {other:?}"),
        };
        seen.push(line);
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "ADDED b"]);
}

#[tokio::test]
async fn expired_watch_gets_a_410_error_event_and_bookmarks_follow_the_interval() {
    let server = ApiServer::start().await;
    server.apply(&service("default", "web", &[]));
    server.compact();
    let api: Api<Service> = Api::all(server.client());
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .expect("watch")
        .boxed();
    match next(&mut stream).await.expect("event") {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    assert!(
        timeout(WAIT, stream.next())
            .await
            .expect("stream closes")
            .is_none()
    );

    server.set_bookmark_interval(Duration::from_millis(100));
    let rv = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    server.apply(&service("default", "web", &[("v", "2")]));
    assert!(matches!(
        next(&mut stream).await,
        Ok(WatchEvent::Modified(_))
    ));
    match next(&mut stream).await.expect("event") {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata.resource_version,
            server.resource_version().to_string()
        ),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_lists_then_watches_and_relists_after_compaction() {
    let server = ApiServer::start().await;
    server.apply(&service("default", "a", &[]));
    server.apply(&service("default", "b", &[]));
    let api: Api<Service> = Api::all(server.client());
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    assert_eq!(
        until(&mut stream, "InitDone").await,
        ["Init", "InitApply(a)", "InitApply(b)", "InitDone"]
    );

    server.apply(&service("default", "c", &[]));
    assert!(server.delete::<Service>("default", "a"));
    assert_eq!(
        until(&mut stream, "Delete(a)").await,
        ["Apply(c)", "Delete(a)"]
    );

    server.compact();
    server.close_watches();
    let seen = until(&mut stream, "InitDone").await;
    assert_eq!(
        &seen[seen.len() - 4..],
        ["Init", "InitApply(b)", "InitApply(c)", "InitDone"],
        "{seen:?}"
    );
    let lists = server
        .request_log()
        .iter()
        .filter(|l| l.starts_with("LIST services"))
        .count();
    assert_eq!(lists, 2, "{:?}", server.request_log());

    server.apply(&service("default", "d", &[]));
    assert_eq!(until(&mut stream, "Apply(d)").await, ["Apply(d)"]);
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_live_ones() {
    let server = ApiServer::start().await;
    server.apply(&service("default", "a", &[]));
    let api: Api<Service> = Api::all(server.client());
    let config = watcher::Config::default().streaming_lists();
    let mut stream = watcher(api, config).default_backoff().boxed();
    assert_eq!(
        until(&mut stream, "InitDone").await,
        ["Init", "InitApply(a)", "InitDone"]
    );
    server.apply(&service("default", "b", &[]));
    assert_eq!(until(&mut stream, "Apply(b)").await, ["Apply(b)"]);
    assert!(
        server
            .request_log()
            .contains(&"WATCH services rv=0 sendInitialEvents".to_string())
    );
    assert!(!server.request_log().iter().any(|l| l.starts_with("LIST")));
}

#[tokio::test]
async fn watcher_recovers_after_the_server_stops_and_restarts() {
    let server = ApiServer::start().await;
    server.apply(&service("default", "a", &[]));
    let api: Api<EndpointSlice> = Api::all(server.client());
    let mut slices = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    assert_eq!(until(&mut slices, "InitDone").await, ["Init", "InitDone"]);
    let services: Api<Service> = Api::all(server.client());
    let mut stream = watcher(services, watcher::Config::default())
        .default_backoff()
        .boxed();
    assert_eq!(
        until(&mut stream, "InitDone").await,
        ["Init", "InitApply(a)", "InitDone"]
    );

    server.stop().await;
    let down: Api<Service> = Api::all(server.client());
    let refused = timeout(WAIT, down.list(&ListParams::default())).await;
    assert!(matches!(refused, Ok(Err(_))), "requests fail while stopped");
    server.apply(&service("default", "b", &[]));
    server.apply(&slice("default", "b-1"));
    let outage = timeout(Duration::from_millis(300), stream.next()).await;
    assert!(
        !matches!(outage, Ok(Some(Ok(Event::Apply(_))))),
        "no events while stopped"
    );
    let watches_before = watch_count(&server);
    server.restart().await;
    let seen = until(&mut stream, "Apply(b)").await;
    assert!(
        seen.iter().all(|s| s.starts_with("Err") || s == "Apply(b)"),
        "{seen:?}"
    );
    // The slice watcher was idle during the outage; its dropped stream resumes too.
    let seen = until(&mut slices, "Apply(b-1)").await;
    assert!(
        seen.iter()
            .all(|s| s.starts_with("Err") || s == "Apply(b-1)"),
        "{seen:?}"
    );
    assert!(watch_count(&server) >= watches_before + 2);
}

fn watch_count(server: &ApiServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|l| l.starts_with("WATCH"))
        .count()
}

#[tokio::test]
async fn watch_timeout_ends_the_stream_and_latency_delays_responses() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::all(server.client());
    let started = std::time::Instant::now();
    let wp = WatchParams::default().timeout(1).disable_bookmarks();
    let mut stream = api.watch(&wp, "0").await.expect("watch").boxed();
    assert!(timeout(WAIT, stream.next()).await.expect("ends").is_none());
    assert!(started.elapsed() >= Duration::from_millis(900));

    server.set_latency(Duration::from_millis(300));
    let started = std::time::Instant::now();
    api.list(&ListParams::default()).await.expect("list");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn tls_with_the_right_token_works_through_a_kubeconfig_and_a_wrong_one_is_401() {
    let server = ApiServer::start_tls("s3cret").await;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    server.apply(&service("default", "web", &[]));
    let dir = tempfile::tempdir().expect("tempdir");

    let good = dir.path().join("good.kubeconfig");
    server.write_kubeconfig(&good, Some("s3cret"));
    let kubeconfig = kube::config::Kubeconfig::read_from(&good).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).expect("client");
    let api: Api<Service> = Api::default_namespaced(client);
    assert_eq!(list_names(&api, &ListParams::default()).await, ["web"]);

    let bad = dir.path().join("bad.kubeconfig");
    server.write_kubeconfig(&bad, Some("wrong"));
    let kubeconfig = kube::config::Kubeconfig::read_from(&bad).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let api: Api<Service> =
        Api::default_namespaced(kube::Client::try_from(config).expect("client"));
    let denied = api.list(&ListParams::default()).await;
    assert!(
        matches!(denied, Err(kube::Error::Api(s)) if s.code == 401 && s.reason == "Unauthorized")
    );

    let via_helper: Api<Service> = Api::default_namespaced(server.client());
    assert_eq!(
        list_names(&via_helper, &ListParams::default()).await,
        ["web"]
    );
    assert!(
        server
            .request_log()
            .iter()
            .any(|l| l.starts_with("UNAUTHORIZED GET /api/v1/namespaces/default/services"))
    );
}

#[tokio::test]
async fn discovery_finds_every_served_group() {
    let server = ApiServer::start().await;
    let discovery = kube::Discovery::new(server.client())
        .run()
        .await
        .expect("discovery");
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for want in ["", "discovery.k8s.io", "coordination.k8s.io"] {
        assert!(
            groups.iter().any(|g| g == want),
            "{want:?} missing from {groups:?}"
        );
    }
    let (slices, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.plural == "endpointslices")
        .expect("endpointslices discovered");
    assert_eq!(slices.kind, "EndpointSlice");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
}

#[tokio::test]
async fn server_answers_while_the_test_thread_blocks() {
    use std::io::{Read, Write};
    let server = ApiServer::start().await;
    server.apply(&config_map("default", "cm", "v"));
    // Plain blocking I/O on the test's only runtime thread: the server must not need it.
    let mut tcp = std::net::TcpStream::connect(server.addr()).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    tcp.write_all(b"GET /api/v1/namespaces/default/configmaps/cm HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""resourceVersion":"1""#), "{reply}");
}
