//! `reload`: Corefile edits while a client queries continuously — zero failed
//! queries across the switch; a broken edit keeps the old configuration.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{TestServer, eventually, lines};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const CLUSTER: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.0.0.5}\n";

fn corefile(ttl: u32) -> String {
    format!(
        r#"
cluster.local:{{PORT}} {{
    bind 127.0.0.1
    prometheus 127.0.0.1:{{HEALTH}}
    reload 2s 1s
    kubernetes {{
        manifests cluster.yaml
        ttl {ttl}
    }}
}}
"#
    )
}

/// Rewrite the server's Corefile keeping the ports it was started with.
fn rewrite(srv: &TestServer, text: &str) {
    let text = text
        .replace("{PORT}", &srv.addr.port().to_string())
        .replace("{HEALTH}", &srv.health_port.to_string());
    common::write(&srv.path("Corefile"), &text);
}

#[test]
fn an_edit_switches_without_a_failed_query_and_a_broken_edit_keeps_serving() {
    let srv = TestServer::start(&corefile(5), &[("cluster.yaml", CLUSTER)]);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU32::new(0));
    let sent = Arc::new(AtomicU32::new(0));
    let looper = {
        let (stop, failures, sent, addr) = (stop.clone(), failures.clone(), sent.clone(), srv.addr);
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let m = common::udp(
                    addr,
                    &common::query("web.default.svc.cluster.local.", RecordType::A),
                );
                if m.metadata.response_code != ResponseCode::NoError || m.answers.len() != 1 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                sent.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };

    rewrite(&srv, &corefile(17));
    let switched = eventually(Duration::from_secs(15), || {
        let m = srv.udp("web.default.svc.cluster.local.", RecordType::A);
        (lines(&m.answers) == ["web.default.svc.cluster.local. 17 IN A 10.0.0.5"]).then_some(())
    });
    assert!(
        switched.is_some(),
        "the new ttl is served after the reload: {}",
        srv.log()
    );

    // A broken edit: unknown directive on line 5.
    rewrite(
        &srv,
        &corefile(17).replace("    reload 2s 1s\n", "    reload 2s 1s\n    frobnicate\n"),
    );
    let logged = eventually(Duration::from_secs(15), || {
        let log = srv.log();
        log.contains("Corefile:6:5").then_some(log)
    });
    assert!(logged.is_some(), "the error names file:line: {}", srv.log());
    // Keep querying after the rejected edit: 20 more answers, all good.
    let at_reject = sent.load(Ordering::Relaxed);
    let more = eventually(Duration::from_secs(10), || {
        (sent.load(Ordering::Relaxed) >= at_reject + 20).then_some(())
    });
    assert!(more.is_some(), "the query loop kept running");
    stop.store(true, Ordering::Relaxed);
    let queries = looper.join().expect("loop");

    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed queries across reloads ({queries} sent)"
    );
    assert!(queries > 100, "the loop ran: {queries}");
    let still = srv.udp("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&still.answers),
        ["web.default.svc.cluster.local. 17 IN A 10.0.0.5"]
    );
    let metrics = srv
        .http_get(srv.health_port, "/metrics")
        .expect("metrics")
        .1;
    assert!(
        metrics
            .lines()
            .any(|l| l == "coredns_reload_failed_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coredns_reload_version_info{hash=\"sha512\""),
        "{metrics}"
    );
}

mod support;

#[test]
fn a_reload_that_keeps_the_kubernetes_settings_keeps_the_watches_without_a_relist() {
    use k8s_openapi::api::core::v1::Service;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(support::apiserver::ApiServer::start());
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.0.0.5"}
    }))
    .expect("svc");
    api.apply(&svc);
    let text = |ttl: u32| {
        format!(
            "cluster.local:{{PORT}} {{\n    bind 127.0.0.1\n    reload 2s 1s\n    kubernetes {{\n        endpoint {}\n    }}\n    prometheus 127.0.0.1:{{HEALTH}}\n}}\n# {ttl}\n",
            api.url()
        )
    };
    let srv = TestServer::start(&text(1), &[]);
    let lists = || {
        api.request_log()
            .iter()
            .filter(|l| l.starts_with("LIST services") || l.contains("sendInitialEvents"))
            .count()
    };
    let before = lists();
    rewrite(
        &srv,
        &text(2).replace("    prometheus", "    whoami\n    prometheus"),
    );
    let reloaded = eventually(Duration::from_secs(15), || {
        srv.log()
            .contains("reload: new configuration serving")
            .then_some(())
    });
    assert!(reloaded.is_some(), "{}", srv.log());
    assert_eq!(lists(), before, "no relist: {:?}", api.request_log());
    let m = srv.udp("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&m.answers),
        ["web.default.svc.cluster.local. 5 IN A 10.0.0.5"]
    );
}
