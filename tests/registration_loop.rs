//! The full registration loop (issue 9, acceptance): the endpoints controller
//! and the real clusterdns DNS server against one in-process test API server.
//! The test writes only a Namespace, a headless Service and Pods; the
//! controller turns them into EndpointSlices and the DNS server answers from
//! those: the headless A answer and the `_http._tcp` SRV answer (with its
//! glue) follow a pod being created, made unready and deleted, over real UDP.
//!
//! The request log names each request's client (the bearer token of its
//! kubeconfig): every EndpointSlice write comes from the controller, none
//! from the DNS server or anyone else. Every wait is a bounded poll.

mod common;
mod support;

use std::path::Path;
use std::time::Duration;

use clusterdns::endpointslice::controller::{self, Settings};
use common::{TestServer, eventually, lines};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::fixtures::{running_pod, selector_service};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const NAME: &str = "web.default.svc.cluster.local.";
const SRV_NAME: &str = "_http._tcp.web.default.svc.cluster.local.";
const MANAGED_BY: (&str, &str) = (
    "endpointslice.kubernetes.io/managed-by",
    "endpointslice-controller.clusterdns.io",
);
/// Bearer tokens: how the request log names the two clients.
const CONTROLLER: &str = "controller";
const DNS: &str = "dns";

fn headless_service() -> Value {
    let port = json!({"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"});
    selector_service(NS, "web", "web", "None", port)
}

/// A pod of `app=web` exposing containerPort `web` 8080; `hostname` also sets
/// `subdomain: web`, so its endpoint carries that hostname.
fn pod(name: &str, ip: &str, ready: bool, hostname: Option<&str>) -> Value {
    let port = json!({"name": "web", "containerPort": 8080, "protocol": "TCP"});
    let mut pod = running_pod(NS, name, "web", ip, ready, port);
    if let Some(h) = hostname {
        pod["spec"]["hostname"] = json!(h);
        pod["spec"]["subdomain"] = json!("web");
    }
    pod
}

/// The test API server and a runtime for the in-process controller, so the
/// test thread can block on DNS queries.
struct Cluster {
    rt: tokio::runtime::Runtime,
    server: ApiServer,
}

/// The controller running on the cluster's runtime, with its own token.
struct Controller {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), controller::RunError>>,
}

impl Cluster {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(ApiServer::start());
        Self { rt, server }
    }

    /// A kube client that presents `token`, through a kubeconfig as the binaries do.
    fn client(&self, dir: &Path, token: &str) -> kube::Client {
        let path = dir.join(format!("{token}.kubeconfig"));
        self.server.write_kubeconfig(&path, Some(token));
        self.rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("kubeconfig config");
            kube::Client::try_from(config).expect("client")
        })
    }

    fn start_controller(&self, dir: &Path) -> Controller {
        let client = self.client(dir, CONTROLLER);
        let shutdown = CancellationToken::new();
        let task = self.rt.spawn(controller::run(
            client,
            Settings::default(),
            None,
            shutdown.clone(),
        ));
        Controller { shutdown, task }
    }

    /// The DNS server, reaching the API through a kubeconfig with its own token.
    fn start_dns(&self, dir: &Path) -> TestServer {
        let kubeconfig = dir.join(format!("{DNS}.kubeconfig"));
        self.server.write_kubeconfig(&kubeconfig, Some(DNS));
        let corefile = format!(
            r#"
cluster.local:{{PORT}} {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        kubeconfig {}
    }}
}}
"#,
            kubeconfig.display()
        );
        TestServer::start(&corefile, &[])
    }

    fn stop(&self, c: Controller) {
        c.shutdown.cancel();
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(15), c.task).await })
            .expect("controller stops on shutdown")
            .expect("controller task")
            .expect("controller run");
    }
}

/// What the DNS server answers for the Service: sorted A addresses, sorted
/// SRV (port, target), and sorted glue (name, address).
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    a: Vec<String>,
    srv: Vec<(String, String)>,
    glue: Vec<(String, String)>,
}

/// The last `n` whitespace-separated fields of every line.
fn tails(m: &Message, additionals: bool, n: usize) -> Vec<Vec<String>> {
    let records = if additionals {
        &m.additionals
    } else {
        &m.answers
    };
    lines(records)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f[f.len().saturating_sub(n)..]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        })
        .collect()
}

fn answers(dns: &TestServer) -> Answers {
    let a = dns.udp(NAME, RecordType::A);
    let srv = dns.udp(SRV_NAME, RecordType::SRV);
    let ok = |m: &Message| m.metadata.response_code == ResponseCode::NoError;
    Answers {
        a: if ok(&a) {
            tails(&a, false, 1).into_iter().flatten().collect()
        } else {
            Vec::new()
        },
        srv: tails(&srv, false, 2)
            .into_iter()
            .map(|f| (f[0].clone(), f[1].clone()))
            .collect(),
        glue: lines(&srv.additionals)
            .iter()
            .filter(|l| l.contains(" IN A "))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].to_owned(), f[f.len() - 1].to_owned())
            })
            .collect(),
    }
}

/// The expected answers for ready endpoints (ip, SRV target label).
fn expect(ready: &[(&str, &str)]) -> Answers {
    let mut a: Vec<String> = ready.iter().map(|(ip, _)| (*ip).to_owned()).collect();
    let target = |label: &str| format!("{label}.web.default.svc.cluster.local.");
    let mut srv: Vec<_> = ready
        .iter()
        .map(|(_, l)| ("8080".to_owned(), target(l)))
        .collect();
    let mut glue: Vec<_> = ready
        .iter()
        .map(|(ip, l)| (target(l), (*ip).to_owned()))
        .collect();
    a.sort();
    srv.sort();
    glue.sort();
    Answers { a, srv, glue }
}

/// Poll (at most 15 s) until the DNS answers are `want`.
fn until_answers(dns: &TestServer, what: &str, want: &Answers) {
    let mut last = None;
    let reached = eventually(Duration::from_secs(15), || {
        let got = answers(dns);
        let done = got == *want;
        last = Some(got);
        done.then_some(())
    });
    assert!(
        reached.is_some(),
        "{what}: want {want:?}, last answer {last:?}"
    );
}

#[test]
fn pods_reach_headless_and_srv_answers_through_the_controller() {
    let cluster = Cluster::start();
    let server = &cluster.server;
    let dir = tempfile::tempdir().expect("tempdir");
    server.apply_json::<Namespace>(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    );
    server.apply_json::<Service>(headless_service());
    server.apply_json::<Pod>(pod("web-1", "10.244.2.1", true, Some("web-1")));
    server.apply_json::<Pod>(pod("web-2", "10.244.2.2", true, None));
    server.apply_json::<Pod>(pod("web-3", "10.244.2.3", false, None));

    let dns = cluster.start_dns(dir.path());
    // No slices yet: nobody has registered the pods.
    assert_eq!(answers(&dns), expect(&[]), "answers before the controller");
    let running = cluster.start_controller(dir.path());

    // The ready pods, web-1 by its hostname, web-2 by its dashed address.
    until_answers(
        &dns,
        "the two ready pods",
        &expect(&[("10.244.2.1", "web-1"), ("10.244.2.2", "10-244-2-2")]),
    );

    // A pod created.
    server.apply_json::<Pod>(pod("web-4", "10.244.2.4", true, None));
    until_answers(
        &dns,
        "web-4 created",
        &expect(&[
            ("10.244.2.1", "web-1"),
            ("10.244.2.2", "10-244-2-2"),
            ("10.244.2.4", "10-244-2-4"),
        ]),
    );

    // A pod made unready.
    server.apply_json::<Pod>(pod("web-2", "10.244.2.2", false, None));
    until_answers(
        &dns,
        "web-2 unready",
        &expect(&[("10.244.2.1", "web-1"), ("10.244.2.4", "10-244-2-4")]),
    );

    // A not-ready pod becoming ready.
    server.apply_json::<Pod>(pod("web-3", "10.244.2.3", true, None));
    until_answers(
        &dns,
        "web-3 ready",
        &expect(&[
            ("10.244.2.1", "web-1"),
            ("10.244.2.3", "10-244-2-3"),
            ("10.244.2.4", "10-244-2-4"),
        ]),
    );

    // A pod deleted.
    assert!(server.delete::<Pod>(NS, "web-1"));
    until_answers(
        &dns,
        "web-1 deleted",
        &expect(&[("10.244.2.3", "10-244-2-3"), ("10.244.2.4", "10-244-2-4")]),
    );

    // Every slice is the controller's, and only the controller wrote slices.
    let slices = server.list::<EndpointSlice>();
    assert!(!slices.is_empty());
    for s in &slices {
        assert_eq!(
            s["metadata"]["labels"][MANAGED_BY.0], MANAGED_BY.1,
            "a slice not managed by the controller: {s}"
        );
    }
    let log = server.request_log_by_client();
    let slice_writes: Vec<_> = log
        .iter()
        .filter(|l| {
            let mut f = l.line.split(' ');
            let verb = f.next().unwrap_or("");
            f.next() == Some("endpointslices")
                && [
                    "CREATE",
                    "REPLACE",
                    "PATCH",
                    "APPLY",
                    "DELETE",
                    "DELETECOLLECTION",
                ]
                .contains(&verb)
        })
        .collect();
    assert!(
        slice_writes.iter().any(|l| l.client == CONTROLLER),
        "the controller wrote no slice: {log:?}"
    );
    let others: Vec<_> = slice_writes
        .iter()
        .filter(|l| l.client != CONTROLLER)
        .collect();
    assert!(others.is_empty(), "slice writes by others: {others:?}");
    assert!(
        log.iter().any(|l| l.client == DNS),
        "the DNS server's requests are in the log"
    );

    cluster.stop(running);
}
