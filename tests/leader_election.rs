//! Lease-based leader election (`clusterdns::k8s::leader`) against the
//! in-process test API server: one leader at a time, takeover after a leader
//! dies without releasing, immediate handover on release, 409 Conflict means
//! not leader, and a leader that cannot reach the API steps down.
//!
//! Durations are short (lease 2s, renew deadline 1.5s, retry 0.2s). Every
//! check polls its condition with a generous bound; none asserts an upper
//! bound on how long something took.

mod support;

use std::time::Duration;

use clusterdns::k8s::leader::{self, ElectionConfig, Leadership};
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;
use support::apiserver::ApiServer;
use support::faults::Fault;
use tokio_util::sync::CancellationToken;

const NS: &str = "kube-system";
const NAME: &str = "clusterdns-endpoints-controller";
/// Bound for every poll: far above any lease/renew/retry period used here.
const PATIENCE: Duration = Duration::from_secs(20);

fn config(identity: &str) -> ElectionConfig {
    ElectionConfig {
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..ElectionConfig::new(NAME)
    }
}

struct Elector {
    identity: String,
    leadership: Leadership,
    shutdown: CancellationToken,
}

impl Elector {
    fn start(server: &ApiServer, config: ElectionConfig) -> Self {
        let shutdown = CancellationToken::new();
        let identity = config.identity.clone();
        let leadership =
            leader::spawn(server.client(), config, shutdown.clone()).expect("valid config");
        Self {
            identity,
            leadership,
            shutdown,
        }
    }

    fn is_leader(&self) -> bool {
        *self.leadership.is_leader.borrow()
    }
}

/// Poll `check` every 20 ms until it returns `Some`, for at most `limit`.
async fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holder(server: &ApiServer) -> Option<String> {
    server
        .get_as::<Lease>(NS, NAME)
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

fn transitions(server: &ApiServer) -> i32 {
    server
        .get_as::<Lease>(NS, NAME)
        .and_then(|l| l.spec)
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

async fn wait_leader(e: &Elector, server: &ApiServer) {
    poll(PATIENCE, || {
        (e.is_leader() && holder(server).as_deref() == Some(e.identity.as_str())).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{} never became leader; lease holder {:?}",
            e.identity,
            holder(server)
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_never_lead_at_once() {
    let server = ApiServer::start().await;
    let a = Elector::start(&server, config("a"));
    let b = Elector::start(&server, config("b"));

    let first = poll(PATIENCE, || match (a.is_leader(), b.is_leader()) {
        (true, false) => Some("a"),
        (false, true) => Some("b"),
        (true, true) => panic!("both electors are leader"),
        (false, false) => None,
    })
    .await
    .expect("one elector becomes leader");

    // Over several lease durations (many renewals), never both, and the
    // lease names the one that thinks it leads.
    let mut samples = 0;
    let watched = poll(PATIENCE, || {
        samples += 1;
        let done = samples >= 250;
        {
            let (la, lb) = (a.is_leader(), b.is_leader());
            assert!(!(la && lb), "both electors are leader");
            if la || lb {
                let who = if la { "a" } else { "b" };
                let h = holder(&server);
                // The holder can only be the leader (or briefly nobody).
                assert!(
                    h.is_none() || h.as_deref() == Some(who),
                    "{who} leads but the lease says {h:?}"
                );
            }
            done.then_some(())
        }
    })
    .await;
    assert!(watched.is_some(), "sampled {samples} times");
    // Leadership was stable: the first leader still leads (it renews).
    let still = if first == "a" { &a } else { &b };
    assert!(still.is_leader(), "{first} kept renewing");
    assert_eq!(holder(&server).as_deref(), Some(first));
    a.shutdown.cancel();
    b.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_after_its_lease_expires() {
    let server = ApiServer::start().await;
    let a = Elector::start(&server, config("a"));
    wait_leader(&a, &server).await;
    let b = Elector::start(&server, config("b"));
    // b reads a's lease again and again while a renews, and stays follower.
    server.clear_request_log();
    poll(PATIENCE, || {
        assert!(!b.is_leader(), "b must not lead while a renews");
        let reads = logged(&server, "GET leases");
        (reads >= 10).then_some(())
    })
    .await
    .expect("both read the lease repeatedly");
    assert!(!b.is_leader(), "b must not lead while a renews");
    assert_eq!(holder(&server).as_deref(), Some("a"));
    let before = transitions(&server);

    // SIGKILL: the task stops without releasing anything.
    a.leadership.task.abort();
    let _ = a.leadership.task.await;

    wait_leader(&b, &server).await;
    assert_eq!(holder(&server).as_deref(), Some("b"));
    assert!(
        transitions(&server) > before,
        "a takeover counts as a transition"
    );
    b.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_releases_and_the_other_takes_over() {
    let server = ApiServer::start().await;
    // A lease far longer than PATIENCE: b can only take over within the
    // poll bound if a releases the lease.
    let long = |id: &str| ElectionConfig {
        lease_duration: Duration::from_secs(120),
        renew_deadline: Duration::from_secs(60),
        ..config(id)
    };
    let a = Elector::start(&server, long("a"));
    wait_leader(&a, &server).await;
    let b = Elector::start(&server, long("b"));
    assert!(!b.is_leader());

    let a_leader = a.leadership.is_leader.clone();
    a.shutdown.cancel();
    poll(PATIENCE, || (!*a_leader.borrow()).then_some(()))
        .await
        .expect("a stops leading on shutdown");
    tokio::time::timeout(PATIENCE, a.leadership.task)
        .await
        .expect("a's elector ends after shutdown")
        .expect("a's elector did not panic");
    assert_ne!(
        holder(&server).as_deref(),
        Some("a"),
        "a released the lease"
    );

    wait_leader(&b, &server).await;
    b.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_on_write_is_not_leadership() {
    let server = ApiServer::start().await;
    // A released lease: the elector will try to take it with a replace.
    server.apply_json::<Lease>(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": 2, "leaseTransitions": 4}
    }));
    server.inject::<Lease>(Fault::WriteStatus(409), None);
    let a = Elector::start(&server, config("a"));

    poll(PATIENCE, || {
        assert!(!a.is_leader(), "a leads although every write conflicted");
        let conflicts = logged(&server, "FAULT 409 PUT leases");
        (conflicts >= 3).then_some(())
    })
    .await
    .expect("a retries the conflicting write");
    assert!(!a.is_leader());
    assert_eq!(holder(&server), None, "nobody holds the lease");

    server.clear_faults();
    wait_leader(&a, &server).await;
    assert_eq!(transitions(&server), 5);
    a.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_whose_renewals_conflict_steps_down() {
    let server = ApiServer::start().await;
    let a = Elector::start(&server, config("a"));
    wait_leader(&a, &server).await;
    server.inject::<Lease>(Fault::WriteStatus(409), None);
    poll(PATIENCE, || (!a.is_leader()).then_some(()))
        .await
        .expect("a steps down when it cannot renew within the deadline");
    server.clear_faults();
    wait_leader(&a, &server).await;
    a.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_the_api_is_unreachable() {
    let server = ApiServer::start().await;
    let a = Elector::start(&server, config("a"));
    wait_leader(&a, &server).await;

    server.stop().await;
    poll(PATIENCE, || (!a.is_leader()).then_some(()))
        .await
        .expect("a steps down after the renew deadline without the API");

    server.restart().await;
    wait_leader(&a, &server).await;
    a.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_the_api_hangs() {
    let server = ApiServer::start().await;
    let a = Elector::start(&server, config("a"));
    wait_leader(&a, &server).await;

    // Every answer now takes longer than the renew deadline.
    server.set_latency(Duration::from_secs(5));
    poll(PATIENCE, || (!a.is_leader()).then_some(()))
        .await
        .expect("a steps down when renewals hang past the deadline");
    server.set_latency(Duration::ZERO);
    a.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_at_once_when_another_holds_the_lease() {
    let server = ApiServer::start().await;
    let long = ElectionConfig {
        lease_duration: Duration::from_secs(120),
        renew_deadline: Duration::from_secs(60),
        ..config("a")
    };
    let a = Elector::start(&server, long);
    wait_leader(&a, &server).await;
    // Someone else (an operator, a split-brain peer) writes itself in.
    server.apply_json::<Lease>(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 120}
    }));
    // Well before the 60 s renew deadline: a steps down on its next read.
    poll(PATIENCE, || (!a.is_leader()).then_some(()))
        .await
        .expect("a steps down when the lease names someone else");
    assert_eq!(holder(&server).as_deref(), Some("intruder"));
    a.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_leadership_term_has_a_token_cancelled_when_it_ends() {
    let server = ApiServer::start().await;
    let mut a = Elector::start(&server, config("a"));
    let term = tokio::time::timeout(PATIENCE, a.leadership.next_term())
        .await
        .expect("a becomes leader")
        .expect("the elector runs");
    assert!(a.is_leader());
    assert!(!term.is_cancelled());

    server.stop().await;
    tokio::time::timeout(PATIENCE, term.cancelled())
        .await
        .expect("the term ends when a cannot renew");
    assert!(!a.is_leader());

    server.restart().await;
    let second = tokio::time::timeout(PATIENCE, a.leadership.next_term())
        .await
        .expect("a leads again")
        .expect("the elector runs");
    assert!(!second.is_cancelled());

    a.shutdown.cancel();
    tokio::time::timeout(PATIENCE, second.cancelled())
        .await
        .expect("shutdown ends the term");
    let after = tokio::time::timeout(PATIENCE, a.leadership.next_term())
        .await
        .expect("next_term returns once the elector has ended");
    assert!(after.is_none(), "no term after shutdown");
    assert_ne!(
        holder(&server).as_deref(),
        Some("a"),
        "released on shutdown"
    );
}

#[test]
fn bad_durations_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = ApiServer::start().await;
        let bad = ElectionConfig {
            renew_deadline: Duration::from_secs(3),
            ..config("a")
        };
        let err = leader::spawn(server.client(), bad, CancellationToken::new())
            .expect_err("renew deadline above lease duration");
        assert!(err.to_string().contains("renew deadline"), "{err}");
    });
}

/// How many lines of the test server's request log start with `prefix`.
fn logged(server: &ApiServer, prefix: &str) -> usize {
    server
        .request_log()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}
