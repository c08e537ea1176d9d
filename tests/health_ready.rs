//! `/health`, `/ready` and lameduck, through the real binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, eventually};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn demo_serves_health_and_ready_once_synced() {
    let srv = TestServer::demo();
    assert_eq!(
        srv.http_get(srv.health_port, "/health"),
        Some((200, "OK".to_string()))
    );
    assert_eq!(
        srv.http_get(srv.ready_port, "/ready"),
        Some((200, "OK".to_string()))
    );
    let (status, _) = srv.http_get(srv.health_port, "/nope").expect("answer");
    assert_eq!(status, 404);
}

#[test]
fn ready_is_503_naming_kubernetes_and_names_are_servfail_until_data_arrives() {
    let srv = TestServer::spawn(
        r#"
cluster.local:{PORT} {
    bind 127.0.0.1
    health 127.0.0.1:{HEALTH}
    ready 127.0.0.1:{READY}
    kubernetes {
        manifests later.yaml
        startup_timeout 1s
    }
}
"#,
        &[],
    );
    let health = eventually(Duration::from_secs(10), || {
        srv.http_get(srv.health_port, "/health")
    });
    assert_eq!(
        health,
        Some((200, "OK".to_string())),
        "alive while not ready"
    );
    assert_eq!(
        srv.http_get(srv.ready_port, "/ready"),
        Some((503, "kubernetes".to_string()))
    );
    let r = srv.udp("svc.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::ServFail,
        "never NXDOMAIN before sync"
    );

    common::write(
        &srv.path("later.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: default}\nspec: {clusterIP: 10.0.0.7}\n",
    );
    let ready = eventually(Duration::from_secs(10), || {
        srv.http_get(srv.ready_port, "/ready")
            .filter(|(s, _)| *s == 200)
    });
    assert!(ready.is_some(), "ready after the first complete load");
    let r = srv.udp("svc.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        common::lines(&r.answers),
        ["svc.default.svc.cluster.local. 5 IN A 10.0.0.7"]
    );
}

#[test]
fn sigterm_with_lameduck_keeps_answering_for_the_lameduck_period() {
    let yaml =
        std::fs::read_to_string(common::repo().join("config/demo-cluster.yaml")).expect("yaml");
    let mut srv = TestServer::start(
        r#"
.:{PORT} {
    bind 127.0.0.1
    health 127.0.0.1:{HEALTH} {
        lameduck 2s
    }
    ready 127.0.0.1:{READY}
    kubernetes cluster.local {
        manifests demo.yaml
    }
}
"#,
        &[("demo.yaml", &yaml)],
    );
    let kill = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let signalled = Instant::now();
    // Lameduck has begun once /ready says 503; from then until the 2 s are up
    // every query is still answered and /health stays OK.
    let lameduck = eventually(Duration::from_secs(2), || {
        (srv.http_get(srv.ready_port, "/ready").map(|(s, _)| s) == Some(503)).then_some(())
    });
    assert!(lameduck.is_some(), "ready turns 503 during lameduck");
    for _ in 0..10 {
        let r = srv.udp("nginx-service.default.svc.cluster.local.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    }
    assert_eq!(
        srv.http_get(srv.health_port, "/health").map(|(s, _)| s),
        Some(200),
        "health stays OK during lameduck"
    );
    let status = srv.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "exited only after lameduck"
    );
}
