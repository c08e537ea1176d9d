//! The endpoints controller (`clusterdns::endpointslice::controller`)
//! against the in-process test API server, which has no garbage collector:
//! the seed example (4 ready `app=nginx` pods behind `nginx-service`,
//! port 80 → targetPort 9376) gives one EndpointSlice and one Endpoints;
//! readiness, pod deletion, a new pod and Service deletion follow; a quiet
//! cluster sees no writes. The real binary, pointed at the server by a
//! kubeconfig, writes only while it holds the Lease and exits 0 on SIGTERM,
//! releasing it. Every check polls its condition with a bound.

mod common;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clusterdns::endpointslice::controller::{self, Settings};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::faults::Fault;
use support::fixtures::{poll_until, running_pod, selector_service};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const MANAGED_BY: &str =
    "endpointslice.kubernetes.io/managed-by=endpointslice-controller.clusterdns.io";

fn pod(name: &str, ip: &str, ready: bool) -> Value {
    running_pod(NS, name, "nginx", ip, ready, json!({"containerPort": 80}))
}

fn service() -> Value {
    let port = json!({"name": "service-port", "protocol": "TCP", "port": 80, "targetPort": 9376});
    selector_service(NS, "nginx-service", "nginx", "10.96.0.50", port)
}

/// Our slices for nginx-service, as stored.
fn slices(server: &ApiServer) -> Vec<Value> {
    server
        .list::<EndpointSlice>()
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "nginx-service")
        .filter(|s| {
            let (k, v) = MANAGED_BY.split_once('=').expect("label");
            s["metadata"]["labels"][k] == v
        })
        .collect()
}

/// (ip, ready, serving, terminating, nodeName, targetRef name) of every endpoint, sorted.
fn endpoints_of(slice: &Value) -> Vec<(String, bool, bool, bool, String, String)> {
    let mut out: Vec<_> = slice["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or_default().to_owned(),
                e["conditions"]["ready"].as_bool().unwrap_or(false),
                e["conditions"]["serving"].as_bool().unwrap_or(false),
                e["conditions"]["terminating"].as_bool().unwrap_or(true),
                e["nodeName"].as_str().unwrap_or_default().to_owned(),
                e["targetRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn ep(ip: &str, name: &str, ready: bool) -> (String, bool, bool, bool, String, String) {
    (ip.into(), ready, ready, false, "node-a".into(), name.into())
}

/// Sorted IPs of `subsets[0].<field>` of the stored Endpoints.
fn endpoints_ips(server: &ApiServer, field: &str) -> Vec<String> {
    let Some(e) = server.get::<Endpoints>(NS, "nginx-service") else {
        return Vec::new();
    };
    let mut ips: Vec<String> = e["subsets"][0][field]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| a["ip"].as_str().unwrap_or_default().to_owned())
        .collect();
    ips.sort();
    ips
}

fn writes(server: &ApiServer) -> Vec<String> {
    server
        .request_log()
        .into_iter()
        .filter(|l| {
            ["CREATE", "REPLACE", "PATCH", "APPLY", "DELETE"]
                .iter()
                .any(|w| l.starts_with(w))
        })
        .collect()
}

fn ips(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("10.244.0.{i}")).collect()
}

/// A controller running in-process against the test API server.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), controller::RunError>>,
}

impl Running {
    fn start(server: &ApiServer) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(controller::run(
            server.client(),
            Settings::default(),
            None,
            shutdown.clone(),
        ));
        Self { shutdown, task }
    }

    /// Cancel and wait (bounded) for a clean stop.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("controller stops on shutdown")
            .expect("controller task")
            .expect("controller run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_example_follows_pods_and_service_lifecycle() {
    let server = ApiServer::start().await;
    for i in 1..=4 {
        server.apply_json::<Pod>(pod(&format!("nginx-{i}"), &format!("10.244.0.{i}"), true));
    }
    server.apply_json::<Service>(service());
    let running = Running::start(&server);

    // One slice, the 4 pods on port 9376, all conditions, targetRef and nodeName.
    let want: Vec<_> = (1..=4)
        .map(|i| ep(&format!("10.244.0.{i}"), &format!("nginx-{i}"), true))
        .collect();
    poll_until("one slice with the 4 ready pods", || {
        let s = slices(&server);
        s.len() == 1 && endpoints_of(&s[0]) == want
    })
    .await;
    let slice = slices(&server).remove(0);
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "service-port", "port": 9376, "protocol": "TCP"}])
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(
        slice["metadata"]["ownerReferences"][0]["name"],
        "nginx-service"
    );
    poll_until("Endpoints with the 4 pods", || {
        endpoints_ips(&server, "addresses") == ips(4)
    })
    .await;
    let e = server
        .get::<Endpoints>(NS, "nginx-service")
        .expect("Endpoints");
    assert_eq!(e["subsets"][0]["ports"][0]["port"], 9376);
    assert_eq!(e["subsets"][0]["ports"][0]["name"], "service-port");
    assert_eq!(e["subsets"][0]["addresses"][0]["nodeName"], "node-a");
    assert_eq!(e["subsets"][0]["addresses"][0]["targetRef"]["kind"], "Pod");

    // Quiet: a change no plan cares about (a pod annotation) makes no write.
    server.clear_request_log();
    let mut touched = pod("nginx-1", "10.244.0.1", true);
    touched["metadata"]["annotations"] = json!({"unrelated": "yes"});
    server.apply_json::<Pod>(touched);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        writes(&server),
        Vec::<String>::new(),
        "writes on a quiet cluster"
    );

    // nginx-2 loses Ready.
    server.apply_json::<Pod>(pod("nginx-2", "10.244.0.2", false));
    poll_until("nginx-2 not ready in the slice", || {
        let s = slices(&server);
        s.len() == 1 && endpoints_of(&s[0]).contains(&ep("10.244.0.2", "nginx-2", false))
    })
    .await;
    poll_until("nginx-2 in notReadyAddresses", || {
        endpoints_ips(&server, "notReadyAddresses") == vec!["10.244.0.2".to_owned()]
            && endpoints_ips(&server, "addresses") == vec!["10.244.0.1", "10.244.0.3", "10.244.0.4"]
    })
    .await;

    // nginx-3 is deleted.
    assert!(server.delete::<Pod>(NS, "nginx-3"));
    poll_until("nginx-3 gone from the slice and Endpoints", || {
        let s = slices(&server);
        s.len() == 1
            && !endpoints_of(&s[0]).iter().any(|e| e.5 == "nginx-3")
            && endpoints_ips(&server, "addresses") == vec!["10.244.0.1", "10.244.0.4"]
    })
    .await;

    // A fifth pod appears.
    server.apply_json::<Pod>(pod("nginx-5", "10.244.0.5", true));
    poll_until("nginx-5 in the slice and Endpoints", || {
        let s = slices(&server);
        s.len() == 1
            && endpoints_of(&s[0]).contains(&ep("10.244.0.5", "nginx-5", true))
            && endpoints_ips(&server, "addresses") == vec!["10.244.0.1", "10.244.0.4", "10.244.0.5"]
    })
    .await;

    // The Service is deleted: its slices and Endpoints go too.
    assert!(server.delete::<Service>(NS, "nginx-service"));
    poll_until("slices and Endpoints deleted with the Service", || {
        slices(&server).is_empty() && server.get::<Endpoints>(NS, "nginx-service").is_none()
    })
    .await;

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_service_deleted_while_down_are_removed_at_start() {
    let server = ApiServer::start().await;
    server.apply_json::<Pod>(pod("nginx-1", "10.244.0.1", true));
    server.apply_json::<Service>(service());
    let running = Running::start(&server);
    poll_until("slice written", || slices(&server).len() == 1).await;
    poll_until("Endpoints written", || {
        endpoints_ips(&server, "addresses") == ips(1)
    })
    .await;
    running.stop().await;

    // Deleted while no controller runs; a new one cleans up from its caches.
    assert!(server.delete::<Service>(NS, "nginx-service"));
    let running = Running::start(&server);
    poll_until("leftover slice and Endpoints deleted", || {
        slices(&server).is_empty() && server.get::<Endpoints>(NS, "nginx-service").is_none()
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_writes_are_retried_until_the_slice_is_right() {
    let server = ApiServer::start().await;
    for i in 1..=2 {
        server.apply_json::<Pod>(pod(&format!("nginx-{i}"), &format!("10.244.0.{i}"), true));
    }
    server.apply_json::<Service>(service());
    let running = Running::start(&server);
    poll_until("slice with 2 pods", || {
        let s = slices(&server);
        s.len() == 1 && endpoints_of(&s[0]).len() == 2
    })
    .await;

    // The next 3 slice writes lose an optimistic-concurrency race.
    server.clear_request_log();
    server.inject::<EndpointSlice>(Fault::WriteStatus(409), Some(3));
    server.apply_json::<Pod>(pod("nginx-2", "10.244.0.2", false));
    poll_until("nginx-2 not ready after the conflicts", || {
        let s = slices(&server);
        s.len() == 1 && endpoints_of(&s[0]).contains(&ep("10.244.0.2", "nginx-2", false))
    })
    .await;
    let faults = server
        .request_log()
        .iter()
        .filter(|l| l.starts_with("FAULT 409"))
        .count();
    assert_eq!(faults, 3, "log: {:?}", server.request_log());
    assert_eq!(slices(&server).len(), 1, "a retry made a second slice");

    running.stop().await;
}

/// The binary, killed on drop if the test fails before it exits.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lease_holder(server: &ApiServer) -> Option<String> {
    server
        .get::<Lease>("kube-system", "clusterdns-endpoints-controller")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_writes_only_while_leading_and_releases_the_lease_on_sigterm() {
    let server = ApiServer::start().await;
    server.apply_json::<Pod>(pod("nginx-1", "10.244.0.1", true));
    server.apply_json::<Service>(service());
    // Another holds the Lease for an hour.
    server.apply_json::<Lease>(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "clusterdns-endpoints-controller", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": "other",
            "leaseDurationSeconds": 3600,
            "acquireTime": "2030-01-01T00:00:00.000000Z",
            "renewTime": "2030-01-01T00:00:00.000000Z",
            "leaseTransitions": 0
        }
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, None);
    let metrics_addr: std::net::SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let child = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .arg("endpoints-controller")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--metrics-bind-address", &metrics_addr.to_string()])
        .args(["--leader-elect", "--leader-elect-lease-duration", "2s"])
        .args(["--leader-elect-renew-deadline", "1500ms"])
        .args(["--leader-elect-retry-period", "200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start clusterdns");
    let mut proc = Proc(child);

    // Follower: it has read the foreign Lease several times and written nothing.
    poll_until("the elector read the Lease 3 times", || {
        server
            .request_log()
            .iter()
            .filter(|l| l.contains("leases") && l.starts_with("GET"))
            .count()
            >= 3
    })
    .await;
    assert_eq!(
        writes(&server),
        Vec::<String>::new(),
        "wrote while not leading"
    );
    assert!(slices(&server).is_empty());
    let scrape = || {
        common::http_get(metrics_addr, "/metrics")
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let follower = scrape();
    assert!(
        follower.contains("clusterdns_endpointslice_leader 0"),
        "{follower}"
    );
    assert_eq!(
        common::http_get(metrics_addr, "/healthz"),
        Some((200, "ok".to_owned()))
    );

    // The other holder releases it: ours, then the slice and Endpoints appear.
    let mut released = server
        .get::<Lease>("kube-system", "clusterdns-endpoints-controller")
        .expect("lease");
    released["spec"]["holderIdentity"] = Value::Null;
    released["spec"]["leaseDurationSeconds"] = json!(1);
    server.apply_json::<Lease>(released);
    poll_until("leader with its slice and Endpoints", || {
        lease_holder(&server).is_some_and(|h| h != "other")
            && slices(&server).len() == 1
            && endpoints_ips(&server, "addresses") == ips(1)
    })
    .await;
    // The writes are counted once each, and the desired endpoint shows.
    let leader = scrape();
    for line in [
        "clusterdns_endpointslice_leader 1",
        "clusterdns_endpointslice_endpoints_desired 1",
        "clusterdns_endpointslice_changes_total{object=\"endpointslice\",operation=\"create\"} 1",
        "clusterdns_endpointslice_changes_total{object=\"endpoints\",operation=\"create\"} 1",
    ] {
        assert!(
            leader.lines().any(|l| l == line),
            "no {line:?} in\n{leader}"
        );
    }
    assert!(
        !leader.contains("clusterdns_endpointslice_syncs_total{result=\"success\"} 0"),
        "{leader}"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(proc.0.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = proc.0.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
    assert_eq!(lease_holder(&server), None, "Lease not released");
}

const TRIGGER: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_carry_the_trigger_time_of_the_change() {
    let server = ApiServer::start().await;
    server.apply_json::<Pod>(pod("nginx-1", "10.244.0.1", true));
    server.apply_json::<Service>(service());
    let created =
        server.get::<Service>(NS, "nginx-service").expect("svc")["metadata"]["creationTimestamp"]
            .clone();
    let running = Running::start(&server);

    // First sync of the Service: its creation time, on both objects.
    poll_until("slice and Endpoints written", || {
        slices(&server).len() == 1 && endpoints_ips(&server, "addresses") == ips(1)
    })
    .await;
    assert_eq!(
        slices(&server)[0]["metadata"]["annotations"][TRIGGER],
        created
    );
    let e = server
        .get::<Endpoints>(NS, "nginx-service")
        .expect("Endpoints");
    assert_eq!(e["metadata"]["annotations"][TRIGGER], created);

    // A pod turns unready at a known time: that time is published.
    let mut unready = pod("nginx-1", "10.244.0.1", false);
    unready["status"]["conditions"][0]["lastTransitionTime"] = json!("2030-01-02T03:04:05Z");
    server.apply_json::<Pod>(unready);
    poll_until(
        "the readiness change's time on the slice and Endpoints",
        || {
            let s = slices(&server);
            let e = server.get::<Endpoints>(NS, "nginx-service");
            s.len() == 1
                && s[0]["metadata"]["annotations"][TRIGGER] == "2030-01-02T03:04:05Z"
                && e.is_some_and(|e| {
                    e["metadata"]["annotations"][TRIGGER] == "2030-01-02T03:04:05Z"
                })
        },
    )
    .await;
    running.stop().await;
}

const MIRROR_MANAGED_BY: &str = "endpointslicemirroring-controller.clusterdns.io";

/// Mirrored slices of `db`: (ip, ready) sorted, per slice.
fn mirrored(server: &ApiServer) -> Vec<Vec<(String, bool)>> {
    server
        .list::<EndpointSlice>()
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "db")
        .filter(|s| {
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == MIRROR_MANAGED_BY
        })
        .map(|s| {
            let mut eps: Vec<(String, bool)> = s["endpoints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let ip = e["addresses"][0].as_str().unwrap_or_default().to_owned();
                    (ip, e["conditions"]["ready"] == true)
                })
                .collect();
            eps.sort();
            eps
        })
        .collect()
}

fn db_endpoints(ready: &[&str], not_ready: &[&str]) -> Value {
    let addrs = |ips: &[&str]| ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>();
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "db", "namespace": NS, "labels": {"team": "data"}},
        "subsets": [{
            "addresses": addrs(ready),
            "notReadyAddresses": addrs(not_ready),
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_endpoints_of_a_selectorless_service_are_mirrored() {
    let server = ApiServer::start().await;
    server.apply_json::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": NS},
        "spec": {"clusterIP": "10.96.0.60", "ports": [{"name": "pg", "port": 5432}]}
    }));
    server.apply_json::<Endpoints>(db_endpoints(&["192.0.2.10"], &["192.0.2.11"]));
    let running = Running::start(&server);

    poll_until("one mirrored slice with both addresses", || {
        mirrored(&server)
            == vec![vec![
                ("192.0.2.10".to_owned(), true),
                ("192.0.2.11".to_owned(), false),
            ]]
    })
    .await;
    let slice = server
        .list::<EndpointSlice>()
        .into_iter()
        .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "db")
        .expect("slice");
    assert_eq!(slice["ports"][0]["port"], 5432);
    assert_eq!(slice["metadata"]["labels"]["team"], "data");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Endpoints");

    // An address added by hand is mirrored; the controller never writes the
    // hand-made Endpoints itself.
    server.apply_json::<Endpoints>(db_endpoints(&["192.0.2.10", "192.0.2.12"], &[]));
    poll_until("the new address mirrored", || {
        mirrored(&server)
            == vec![vec![
                ("192.0.2.10".to_owned(), true),
                ("192.0.2.12".to_owned(), true),
            ]]
    })
    .await;
    let endpoints_writes: Vec<String> = writes(&server)
        .into_iter()
        .filter(|l| l.contains(" endpoints "))
        .collect();
    assert_eq!(
        endpoints_writes,
        Vec::<String>::new(),
        "wrote the hand-made Endpoints"
    );

    // Giving the Service a selector ends the mirroring.
    server.apply_json::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": NS},
        "spec": {"clusterIP": "10.96.0.60", "selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]}
    }));
    poll_until("mirrored slices removed", || mirrored(&server).is_empty()).await;
    running.stop().await;
}

#[test]
fn a_busy_metrics_address_is_one_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(["endpoints-controller", "--endpoint", "http://127.0.0.1:9"])
        .args(["--metrics-bind-address", &addr])
        .output()
        .expect("run clusterdns");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("--metrics-bind-address") && stderr.contains(&addr),
        "stderr: {stderr}"
    );
}
