//! Two real `clusterdns endpoints-controller --leader-elect` processes against
//! one in-process test API server (issue 9, acceptance): only the Lease
//! holder writes EndpointSlices and Endpoints, and when the holder is
//! SIGKILLed (no release) the other takes the Lease once it has expired and
//! writes the next change.
//!
//! Writers are told apart by the test API server's request log: each process
//! gets its own kubeconfig whose bearer token names it, and its own
//! `HOSTNAME`, which prefixes its Lease holderIdentity. The takeover time is
//! measured and printed, not asserted: every wait is a bounded poll, and the
//! only time comparison asserted is the safety property that the Lease was
//! taken no earlier than its last renewal plus its duration.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::{ApiServer, Logged};
use support::fixtures::{poll_until, running_pod, selector_service};

const NS: &str = "default";
const LEASE_NS: &str = "kube-system";
const LEASE_NAME: &str = "clusterdns-endpoints-controller";
const LEASE_DURATION: Duration = Duration::from_secs(3);
const RETRY_PERIOD: Duration = Duration::from_millis(500);

fn pod(name: &str, ip: &str, ready: bool) -> Value {
    running_pod(NS, name, "web", ip, ready, json!({"containerPort": 8080}))
}

fn service() -> Value {
    let port = json!({"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080});
    selector_service(NS, "web", "web", "10.96.0.60", port)
}

/// (ip, ready) of every endpoint of the Service's slices, sorted.
fn slice_endpoints(server: &ApiServer) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = server
        .list::<EndpointSlice>()
        .iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or_default().to_owned(),
                e["conditions"]["ready"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

fn ready(ips: &[(&str, bool)]) -> Vec<(String, bool)> {
    ips.iter().map(|(ip, r)| ((*ip).to_owned(), *r)).collect()
}

/// A write to an EndpointSlice or Endpoints object.
fn is_endpoint_write(line: &str) -> bool {
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let resource = rest.split(' ').next().unwrap_or("");
    [
        "CREATE",
        "REPLACE",
        "PATCH",
        "APPLY",
        "DELETE",
        "DELETECOLLECTION",
    ]
    .contains(&verb)
        && ["endpointslices", "endpoints"].contains(&resource)
}

/// One `endpoints-controller --leader-elect` process, killed on drop (a
/// failing test leaves no process behind); its stderr is printed if the test
/// panics.
struct Controller {
    /// Its bearer token in the request log and the prefix of its Lease identity.
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Controller {
    fn spawn(server: &ApiServer, dir: &Path, name: &'static str) -> Self {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        server.write_kubeconfig(&kubeconfig, Some(name));
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_clusterdns"))
            .arg("endpoints-controller")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            // Both on one machine: any free port for /metrics, not 10257 twice.
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .args(["--leader-elect", "--leader-elect-lease-duration", "3s"])
            .args(["--leader-elect-renew-deadline", "2s"])
            .args(["--leader-elect-retry-period", "500ms"])
            // The Lease identity is "$HOSTNAME_<random>".
            .env("HOSTNAME", name)
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start clusterdns endpoints-controller");
        Self { name, child, log }
    }

    /// Whether the Lease holderIdentity `holder` is this process's.
    fn holds(&self, holder: &str) -> bool {
        holder
            .strip_prefix(self.name)
            .is_some_and(|rest| rest.starts_with('_'))
    }

    /// SIGKILL and reap: gone without releasing anything.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the controller");
        self.child.wait().expect("reap the controller");
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} stderr ---\n{text}", self.name);
        }
    }
}

fn lease(server: &ApiServer) -> Option<Lease> {
    server.get_as::<Lease>(LEASE_NS, LEASE_NAME)
}

fn holder(server: &ApiServer) -> Option<String> {
    lease(server)
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// The endpoint writes in `log` sent by `who`.
fn endpoint_writes<'a>(log: &'a [Logged], who: &str) -> Vec<&'a Logged> {
    log.iter()
        .filter(|l| l.client == who && is_endpoint_write(&l.line))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_writes_and_a_killed_holder_is_replaced() {
    let server = ApiServer::start().await;
    for (i, ip) in ["10.244.1.1", "10.244.1.2", "10.244.1.3"]
        .iter()
        .enumerate()
    {
        server.apply_json::<Pod>(pod(&format!("web-{}", i + 1), ip, true));
    }
    server.apply_json::<Service>(service());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = Controller::spawn(&server, dir.path(), "ctrl-a");
    let mut b = Controller::spawn(&server, dir.path(), "ctrl-b");

    // One of them takes the Lease and writes the slice and Endpoints.
    poll_until("a holder, its slice and Endpoints", || {
        holder(&server).is_some()
            && slice_endpoints(&server)
                == ready(&[
                    ("10.244.1.1", true),
                    ("10.244.1.2", true),
                    ("10.244.1.3", true),
                ])
            && server.get::<Endpoints>(NS, "web").is_some()
    })
    .await;
    let first = holder(&server).expect("holder");
    let (leader, follower) = if a.holds(&first) {
        (&mut a, &mut b)
    } else {
        assert!(b.holds(&first), "the Lease names neither process: {first}");
        (&mut b, &mut a)
    };

    // A change while both run, and the follower is seen electing all along.
    server.apply_json::<Pod>(pod("web-2", "10.244.1.2", false));
    poll_until("web-2 not ready in the slice", || {
        slice_endpoints(&server)
            == ready(&[
                ("10.244.1.1", true),
                ("10.244.1.2", false),
                ("10.244.1.3", true),
            ])
    })
    .await;
    let base = server.request_log_by_client().len();
    poll_until("the follower reads the Lease 3 more times", || {
        server.request_log_by_client()[base..]
            .iter()
            .filter(|l| l.client == follower.name && l.line.starts_with("GET leases"))
            .count()
            >= 3
    })
    .await;

    // Only the holder wrote; the Lease never changed hands.
    let log = server.request_log_by_client();
    let by_leader = endpoint_writes(&log, leader.name);
    assert!(
        by_leader.len() >= 3,
        "the holder wrote the slice, the Endpoints and the change: {by_leader:?}"
    );
    let by_follower = endpoint_writes(&log, follower.name);
    assert!(
        by_follower.is_empty(),
        "the follower wrote: {by_follower:?}"
    );
    let strangers: Vec<_> = log
        .iter()
        .filter(|l| l.client != leader.name && l.client != follower.name)
        .collect();
    assert!(
        strangers.is_empty(),
        "requests from no controller: {strangers:?}"
    );
    let held = lease(&server).and_then(|l| l.spec).expect("Lease spec");
    assert_eq!(held.holder_identity.as_deref(), Some(first.as_str()));
    assert_eq!(held.lease_transitions, Some(0), "the Lease changed hands");

    // SIGKILL the holder: no release. The Lease it renewed last stays as it was.
    leader.kill();
    let dead = Instant::now();
    let last = lease(&server).and_then(|l| l.spec).expect("Lease spec");
    assert_eq!(
        last.holder_identity.as_deref(),
        Some(first.as_str()),
        "the dead holder still holds the Lease (nothing released it)"
    );
    let last_renew = last.renew_time.expect("renewTime").0;

    // The next change: a fourth pod.
    server.apply_json::<Pod>(pod("web-4", "10.244.1.4", true));
    poll_until("web-4 written by the new holder", || {
        slice_endpoints(&server)
            == ready(&[
                ("10.244.1.1", true),
                ("10.244.1.2", false),
                ("10.244.1.3", true),
                ("10.244.1.4", true),
            ])
    })
    .await;
    poll_until("web-4 in the Endpoints", || {
        server.get::<Endpoints>(NS, "web").is_some_and(|e| {
            e["subsets"][0]["addresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["ip"] == "10.244.1.4"))
        })
    })
    .await;

    let log = server.request_log_by_client();
    let after: Vec<&Logged> = log.iter().filter(|l| l.at > dead).collect();
    let from_dead: Vec<_> = after.iter().filter(|l| l.client == leader.name).collect();
    assert!(from_dead.is_empty(), "the killed holder: {from_dead:?}");
    let writes = endpoint_writes(&log, follower.name);
    assert!(
        writes.iter().all(|w| w.at > dead),
        "the follower wrote before the holder died: {writes:?}"
    );
    let first_write = writes.first().expect("the new holder wrote the change");
    let took = log
        .iter()
        .find(|l| l.client == follower.name && l.at > dead && l.line.starts_with("REPLACE leases"))
        .expect("the follower took the Lease over");
    assert!(
        took.at <= first_write.at,
        "the new holder wrote before taking the Lease: took {took:?}, wrote {first_write:?}"
    );

    // The Lease is the follower's now, taken no earlier than it expired.
    let now = lease(&server).and_then(|l| l.spec).expect("Lease spec");
    let new_holder = now.holder_identity.clone().unwrap_or_default();
    assert!(follower.holds(&new_holder), "holder now {new_holder}");
    assert_eq!(now.lease_transitions, Some(1));
    let acquired = now.acquire_time.expect("acquireTime").0;
    let waited = acquired.duration_since(last_renew);
    assert!(
        waited >= k8s_openapi::jiff::SignedDuration::try_from(LEASE_DURATION).expect("duration"),
        "Lease taken {waited:?} after its last renewal, before its {LEASE_DURATION:?} ran out"
    );

    eprintln!(
        "takeover: Lease taken {:?} and first write {:?} after SIGKILL \
         (lease duration {LEASE_DURATION:?} + retry period {RETRY_PERIOD:?} = {:?}); \
         Lease acquired {waited:?} after the dead holder's last renewal",
        took.at - dead,
        first_write.at - dead,
        LEASE_DURATION + RETRY_PERIOD,
    );
}
