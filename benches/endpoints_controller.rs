//! Benchmark: `clusterdns endpoints-controller` (issue 9 acceptance) —
//! cold start to converged, one pod's readiness change → slice written, and
//! the controller's peak memory.
//!
//! For each size the in-process test API server is filled with N Services
//! (with selectors, over up to `EPC_NAMESPACES` namespaces), `EPC_PODS`
//! Running+Ready pods per Service (with IPs, a node, and the fields a real
//! kubelet-managed pod carries: managedFields, ownerReferences, volumes,
//! tolerations, container statuses — the controller caches whole pods, so
//! their size is what its memory is about) and one Node per 100 pods. Then
//! the release controller binary starts and we measure:
//!
//! 1. process start → converged: every Service has slices holding all its pods
//!    ready and an Endpoints object with all of them, judged from the server's
//!    own change notifications ([`support::apiserver::ApiServer::changes`]),
//!    stamped by a thread blocked on each channel (so the moment the server
//!    stored the object, to within a thread wake-up); plus the write requests
//!    of the request log (want: one slice and one Endpoints per Service);
//! 2. (at the size `EPC_LATENCY_SIZE`) `EPC_CHANGES` readiness flips, one at
//!    a time, each on another Service and pod: pod stored → slice stored and
//!    pod stored → Endpoints stored, both stamped the same way;
//! 3. VmHWM / VmRSS / RssAnon of the controller from /proc after it settles.
//!
//! Settings: `EPC_SIZES` (comma list of Service counts; default
//! `1000,10000`), `EPC_PODS` (default 10), `EPC_NAMESPACES` (default 100),
//! `EPC_LATENCY_SIZE` (default 1000), `EPC_CHANGES` (default 1000),
//! `EPC_GAP_MS` (pause after each change has landed, default 5),
//! `EPC_SETTLE_MS` (default 2000), `EPC_TIMEOUT_S` (give up converging,
//! default 600), `EPC_HOLD_MS` (keep the controller alive after measuring),
//! `EPC_WRAP` (a command to run the controller under, e.g. heaptrack).
//! Without `--bench` (under `cargo test --all-targets`) it runs 20 Services ×
//! 3 pods and asserts convergence, the exact endpoints of every Service, the
//! write count, and that readiness flips reach slices and Endpoints.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;
mod util;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use support::store::{Event, EventKind};
use util::{Api, ip_in, mean, mib, ms, percentile};

/// Cold start → converged target at 1,000 Services × 10 pods.
const TARGET_CONVERGE: Duration = Duration::from_secs(5);
/// p99 target of pod stored → slice stored.
const TARGET_P99: Duration = Duration::from_millis(50);
/// Peak RSS target at 10,000 Services × 10 pods, in kB.
const TARGET_RSS_KB: u64 = 100 * 1024;
/// Our managed-by label.
const MANAGED_BY: (&str, &str) = (
    "endpointslice.kubernetes.io/managed-by",
    "endpointslice-controller.clusterdns.io",
);
/// Pods per generated Node.
const PODS_PER_NODE: usize = 100;
/// Request-log verbs that write.
const WRITES: [&str; 5] = ["CREATE", "REPLACE", "PATCH", "APPLY", "DELETE"];

/// The generated cluster's shape.
#[derive(Clone, Copy)]
struct Shape {
    services: usize,
    pods: usize,
    namespaces: usize,
}

impl Shape {
    fn ns(&self, i: usize) -> String {
        format!("ns{}", i % self.namespaces)
    }
    fn svc(i: usize) -> String {
        format!("svc{i}")
    }
    fn pod_name(i: usize, k: usize) -> String {
        format!("svc{i}-7c9d8f6b5-p{k}")
    }
    fn pod_ip(&self, i: usize, k: usize) -> String {
        ip_in(128, i * self.pods + k)
    }
    fn node_of(&self, i: usize, k: usize) -> String {
        format!("node-{}", (i * self.pods + k) / PODS_PER_NODE)
    }
    fn nodes(&self) -> usize {
        (self.services * self.pods).div_ceil(PODS_PER_NODE)
    }
}

fn service(shape: Shape, i: usize) -> Value {
    let name = Shape::svc(i);
    json!({
        "metadata": {
            "name": name, "namespace": shape.ns(i),
            "labels": {"app": name, "team": "bench"},
            "annotations": {"meta.helm.sh/release-name": name},
        },
        "spec": {
            "selector": {"app": name},
            "type": "ClusterIP",
            "clusterIP": ip_in(96, i), "clusterIPs": [ip_in(96, i)],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        },
        "status": {"loadBalancer": {}},
    })
}

/// A pod as a Deployment's ReplicaSet and the kubelet leave it.
fn pod(shape: Shape, i: usize, k: usize, ready: bool) -> Value {
    let (ns, svc, name) = (shape.ns(i), Shape::svc(i), Shape::pod_name(i, k));
    let (ip, node) = (shape.pod_ip(i, k), shape.node_of(i, k));
    let host_ip = ip_in(0, (i * shape.pods + k) / PODS_PER_NODE);
    let status = if ready { "True" } else { "False" };
    let t = "2026-12-01T10:00:00Z";
    let cond = |type_: &str, s: &str| json!({"type": type_, "status": s, "lastProbeTime": null, "lastTransitionTime": t});
    json!({
        "metadata": {
            "name": name, "namespace": ns, "generateName": format!("{svc}-7c9d8f6b5-"),
            "labels": {"app": svc, "pod-template-hash": "7c9d8f6b5"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": t},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{svc}-7c9d8f6b5"),
                "uid": "5f0c3a9e-1b2d-4c5e-8f70-123456789abc", "controller": true, "blockOwnerDeletion": true
            }],
            "managedFields": [
                {
                    "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                    "time": t, "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                            "f:ownerReferences": {".": {}, "k:{\"uid\":\"5f0c3a9e-1b2d-4c5e-8f70-123456789abc\"}": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {},
                            "f:name": {}, "f:ports": {".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {},
                            "f:containerPort": {}, "f:name": {}, "f:protocol": {}}}, "f:resources": {".": {}, "f:requests": {".": {},
                            "f:cpu": {}, "f:memory": {}}}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                            "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                            "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}
                    }
                },
                {
                    "manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": t,
                    "fieldsType": "FieldsV1", "subresource": "status",
                    "fieldsV1": {"f:status": {"f:conditions": {
                        "k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                        "k:{\"type\":\"Initialized\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                        "k:{\"type\":\"PodReadyToStartContainers\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                        "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                        "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {},
                        "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{ip}\"}}"): {".": {}, "f:ip": {}}}, "f:startTime": {}}}
                }
            ]
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.example.com/team/app:1.2.3", "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PORT", "value": "8080"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
            }],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}],
            "nodeName": node, "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "serviceAccount": "default",
            "securityContext": {}, "schedulerName": "default-scheduler", "priority": 0,
            "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                cond("PodReadyToStartContainers", "True"), cond("Initialized", "True"),
                cond("Ready", status), cond("ContainersReady", status), cond("PodScheduled", "True"),
            ],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": t, "qosClass": "Burstable",
            "containerStatuses": [{
                "name": "app", "ready": ready, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": t}}, "lastState": {},
                "image": "registry.example.com/team/app:1.2.3",
                "imageID": "registry.example.com/team/app@sha256:3f1e5c0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d",
                "containerID": format!("containerd://{:064x}", i * shape.pods + k)
            }]
        }
    })
}

fn node(n: usize) -> Value {
    let zone = format!("zone-{}", n % 3);
    let ip = ip_in(0, n);
    let t = "2026-12-01T10:00:00Z";
    let cond = |type_: &str, s: &str, reason: &str| {
        json!({"type": type_, "status": s,
        "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": reason, "message": reason})
    };
    json!({
        "metadata": {
            "name": format!("node-{n}"),
            "labels": {
                "kubernetes.io/hostname": format!("node-{n}"), "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": "region-1", "node.kubernetes.io/instance-type": "m5.xlarge"
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
        },
        "spec": {"podCIDR": format!("10.244.{}.0/24", n % 256), "providerID": format!("aws:///{zone}/i-{n:017x}")},
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "110", "ephemeral-storage": "95Gi"},
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID"),
                cond("Ready", "True", "KubeletReady"),
            ],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": format!("node-{n}")}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0",
                "osImage": "Debian", "containerRuntimeVersion": "containerd://1.7.0", "kubeletVersion": "v1.34.0",
                "kubeProxyVersion": "v1.34.0", "operatingSystem": "linux", "architecture": "amd64"},
            "images": (0..5).map(|m| json!({"names": [format!("registry.example.com/team/app{m}:1.2.3")], "sizeBytes": 50_000_000 + m})).collect::<Vec<_>>()
        }
    })
}

/// Fill the API server; how long it took.
fn seed(api: &Api, shape: Shape) -> Duration {
    let t = Instant::now();
    for n in 0..shape.nodes() {
        api.server.apply_json::<Node>(node(n));
    }
    for n in 0..shape.namespaces {
        api.server.apply(&util::namespace(&format!("ns{n}")));
    }
    for i in 0..shape.services {
        api.server.apply_json::<Service>(service(shape, i));
        for k in 0..shape.pods {
            api.server.apply_json::<Pod>(pod(shape, i, k, true));
        }
    }
    t.elapsed()
}

/// Stored changes of pods, slices and Endpoints, each stamped on arrival by
/// a thread that waits on the server's channel (a few µs after the store).
struct Changes {
    rx: mpsc::Receiver<(Instant, Event)>,
}

impl Changes {
    fn subscribe(api: &Api, pods: bool) -> Self {
        let (tx, rx) = mpsc::channel();
        let mut chans = vec![
            api.server.changes::<EndpointSlice>(),
            api.server.changes::<Endpoints>(),
        ];
        if pods {
            chans.push(api.server.changes::<Pod>());
        }
        for mut ch in chans {
            let tx = tx.clone();
            // Ends when the server (holding the sender) is dropped or we stop listening.
            std::thread::spawn(move || {
                while let Some(ev) = ch.blocking_recv() {
                    if tx.send((Instant::now(), ev)).is_err() {
                        break;
                    }
                }
            });
        }
        Self { rx }
    }

    /// The next change, waiting until `deadline` at most.
    fn next(&self, deadline: Instant) -> Option<(Instant, Event)> {
        let left = deadline.checked_duration_since(Instant::now())?;
        self.rx.recv_timeout(left).ok()
    }
}

type SvcKey = (String, String);

fn ours(slice: &Value) -> bool {
    slice["metadata"]["labels"][MANAGED_BY.0] == MANAGED_BY.1
}

/// (namespace, name) of the Service a slice belongs to.
fn slice_service(slice: &Value) -> Option<SvcKey> {
    let ns = slice["metadata"]["namespace"].as_str()?;
    let svc = slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str()?;
    Some((ns.to_owned(), svc.to_owned()))
}

fn key_of(obj: &Value) -> SvcKey {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_owned(),
        m["name"].as_str().unwrap_or_default().to_owned(),
    )
}

fn ready_endpoints(slice: &Value) -> usize {
    slice["endpoints"].as_array().map_or(0, |e| {
        e.iter()
            .filter(|e| e["conditions"]["ready"] == true)
            .count()
    })
}

fn ready_addresses(ep: &Value) -> usize {
    ep["subsets"].as_array().map_or(0, |s| {
        s.iter()
            .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
            .sum()
    })
}

/// Per-Service progress towards "all pods ready in slices and Endpoints",
/// maintained incrementally from the change stream.
#[derive(Default)]
struct Convergence {
    want: usize,
    /// Ready endpoints per slice (namespace, slice name).
    slices: HashMap<SvcKey, usize>,
    /// (ready endpoints in slices, ready Endpoints addresses) per Service.
    per_svc: HashMap<SvcKey, (usize, usize)>,
    done: usize,
}

impl Convergence {
    fn ok(&self, svc: &SvcKey) -> bool {
        self.per_svc.get(svc) == Some(&(self.want, self.want))
    }

    fn apply(&mut self, ev: &Event) {
        let deleted = ev.kind == EventKind::Deleted;
        let svc = match ev.plural {
            "endpointslices" if ours(&ev.object) => match slice_service(&ev.object) {
                Some(svc) => svc,
                None => return,
            },
            "endpoints" => key_of(&ev.object),
            _ => return,
        };
        let before = self.ok(&svc);
        if ev.plural == "endpoints" {
            let n = if deleted {
                0
            } else {
                ready_addresses(&ev.object)
            };
            self.per_svc.entry(svc.clone()).or_default().1 = n;
        } else {
            let n = if deleted {
                0
            } else {
                ready_endpoints(&ev.object)
            };
            let old = self.slices.insert(key_of(&ev.object), n).unwrap_or(0);
            let st = self.per_svc.entry(svc.clone()).or_default();
            st.0 = st.0 + n - old;
        }
        match (before, self.ok(&svc)) {
            (false, true) => self.done += 1,
            (true, false) => self.done -= 1,
            _ => {}
        }
    }
}

/// The release (under `cargo bench`) controller binary against the server.
struct ControllerProc {
    child: Child,
    started: Instant,
    dir: tempfile::TempDir,
}

impl ControllerProc {
    fn spawn(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("controller.log")).expect("log");
        // `EPC_WRAP="heaptrack -o /tmp/epc"` runs it under a profiler (memory
        // figures are then the wrapper's).
        let wrap = std::env::var("EPC_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(env!("CARGO_BIN_EXE_clusterdns"));
                // Its own process group, so Drop ends the wrapped process too.
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_clusterdns")),
        };
        let metrics = format!("127.0.0.1:{}", common::free_port());
        cmd.args(["endpoints-controller", "--endpoint", url])
            .args(["--metrics-bind-address", &metrics])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let started = Instant::now();
        let child = cmd.spawn().expect("spawn the controller");
        Self {
            child,
            started,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    fn status_kb(&self, field: &str) -> u64 {
        util::proc_kb(&format!("/proc/{}/status", self.child.id()), field)
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the controller exited: {status}\n{}", self.log());
        }
    }
}

impl Drop for ControllerProc {
    fn drop(&mut self) {
        if std::env::var_os("EPC_WRAP").is_some() {
            // The wrapper's process group (see `spawn`): the controller under it.
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- controller log ---\n{}", self.log());
        }
    }
}

/// Write requests in the log, counted by verb and resource (`CREATE endpointslices`).
fn write_counts(api: &Api) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in api.server.request_log() {
        if WRITES.iter().any(|w| line.starts_with(w)) {
            let kind: String = line
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            *out.entry(kind).or_default() += 1;
        }
    }
    out
}

/// Every (sampled) Service's slices and Endpoints hold exactly its pods,
/// ready, on the right node and port.
fn verify(api: &Api, shape: Shape, step: usize) {
    let mut by_svc: HashMap<SvcKey, Vec<Value>> = HashMap::new();
    for s in api.server.list::<EndpointSlice>() {
        if ours(&s)
            && let Some(svc) = slice_service(&s)
        {
            by_svc.entry(svc).or_default().push(s);
        }
    }
    for i in (0..shape.services).step_by(step.max(1)) {
        let (ns, svc) = (shape.ns(i), Shape::svc(i));
        let want: BTreeSet<(String, String, String)> = (0..shape.pods)
            .map(|k| {
                (
                    shape.pod_ip(i, k),
                    Shape::pod_name(i, k),
                    shape.node_of(i, k),
                )
            })
            .collect();
        let slices = by_svc
            .get(&(ns.clone(), svc.clone()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            slices.len(),
            1,
            "{ns}/{svc}: one slice for {} pods",
            shape.pods
        );
        let s = &slices[0];
        assert_eq!(s["addressType"], "IPv4");
        assert_eq!(
            s["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            "{svc}"
        );
        let got: BTreeSet<_> = s["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .map(|e| {
                assert_eq!(
                    e["conditions"],
                    json!({"ready": true, "serving": true, "terminating": false}),
                    "{svc}"
                );
                (
                    e["addresses"][0].as_str().unwrap_or_default().to_owned(),
                    e["targetRef"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    e["nodeName"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(got, want, "{ns}/{svc} slice endpoints");
        let e = api.server.get::<Endpoints>(&ns, &svc).expect("Endpoints");
        let ips: BTreeSet<String> = e["subsets"][0]["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .map(|a| a["ip"].as_str().unwrap_or_default().to_owned())
            .collect();
        let want_ips: BTreeSet<String> = want.iter().map(|w| w.0.clone()).collect();
        assert_eq!(ips, want_ips, "{ns}/{svc} Endpoints addresses");
        assert_eq!(e["subsets"][0]["ports"][0]["port"], 8080, "{svc}");
    }
}

/// One size's cold start.
struct Cold {
    converged: Option<Duration>,
    done: usize,
    writes: BTreeMap<String, usize>,
    hwm_kb: u64,
    rss_kb: u64,
    anon_kb: u64,
}

fn cold_start(
    api: &Api,
    shape: Shape,
    changes: &Changes,
    settle: Duration,
    timeout: Duration,
) -> (ControllerProc, Cold) {
    api.server.clear_request_log();
    let mut conv = Convergence {
        want: shape.pods,
        ..Convergence::default()
    };
    let mut ctl = ControllerProc::spawn(&api.server.url());
    let deadline = ctl.started + timeout;
    let mut converged = None;
    while converged.is_none() && Instant::now() < deadline {
        ctl.assert_alive();
        let Some((at, ev)) =
            changes.next((Instant::now() + Duration::from_millis(200)).min(deadline))
        else {
            continue;
        };
        conv.apply(&ev);
        if conv.done == shape.services {
            converged = Some(at.duration_since(ctl.started));
        }
    }
    // Settle: late writes still count, and memory is read at rest.
    let until = Instant::now() + settle;
    while let Some((_, ev)) = changes.next(until) {
        conv.apply(&ev);
    }
    ctl.assert_alive();
    if converged.is_none() {
        let missing: Vec<String> = (0..shape.services)
            .map(|i| (shape.ns(i), Shape::svc(i)))
            .filter(|k| !conv.ok(k))
            .take(10)
            .map(|(ns, svc)| {
                format!(
                    "{ns}/{svc} {:?}",
                    conv.per_svc.get(&(ns.clone(), svc.clone()))
                )
            })
            .collect();
        println!("  not converged; some missing (slice ready, Endpoints ready): {missing:?}");
        if std::env::var_os("EPC_DEBUG").is_some() {
            println!("{:#?}", api.server.request_log());
        }
    }
    let cold = Cold {
        converged,
        done: conv.done,
        writes: write_counts(api),
        hwm_kb: ctl.status_kb("VmHWM"),
        rss_kb: ctl.status_kb("VmRSS"),
        anon_kb: ctl.status_kb("RssAnon"),
    };
    (ctl, cold)
}

/// Readiness flips: (pod → slice, pod → Endpoints) latencies and the writes they caused.
struct Flips {
    slice: Vec<Duration>,
    endpoints: Vec<Duration>,
    writes: BTreeMap<String, usize>,
}

/// The readiness the slice (or Endpoints) gives pod `ip`, if it lists it.
fn slice_readiness(slice: &Value, pod: &str) -> Option<bool> {
    slice["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["targetRef"]["name"] == pod)
        .map(|e| e["conditions"]["ready"] == true)
}

fn endpoints_readiness(ep: &Value, ip: &str) -> Option<bool> {
    let has = |field: &str| {
        ep["subsets"].as_array().is_some_and(|subsets| {
            subsets.iter().any(|s| {
                s[field]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["ip"] == ip))
            })
        })
    };
    match (has("addresses"), has("notReadyAddresses")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

fn flips(
    api: &Api,
    shape: Shape,
    changes: &Changes,
    n: usize,
    gap: Duration,
    ctl: &mut ControllerProc,
) -> Flips {
    api.server.clear_request_log();
    let mut ready = vec![true; shape.services * shape.pods];
    let (mut slice_lat, mut ep_lat) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for j in 0..n {
        // Each change on the next Service (and, on the next round, its next pod).
        let (i, k) = (j % shape.services, (j / shape.services) % shape.pods);
        let now_ready = !ready[i * shape.pods + k];
        ready[i * shape.pods + k] = now_ready;
        let (ns, svc, name, ip) = (
            shape.ns(i),
            Shape::svc(i),
            Shape::pod_name(i, k),
            shape.pod_ip(i, k),
        );
        let body = pod(shape, i, k, now_ready);
        api.server.apply_json::<Pod>(body);
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut pod_at, mut slice_at, mut ep_at) = (None, None, None);
        while pod_at.is_none() || slice_at.is_none() || ep_at.is_none() {
            let Some((at, ev)) = changes.next(deadline) else {
                ctl.assert_alive();
                panic!(
                    "change {j}: {ns}/{name} ready={now_ready} not reflected within 10 s \
                     (pod seen {}, slice {}, Endpoints {})",
                    pod_at.is_some(),
                    slice_at.is_some(),
                    ep_at.is_some()
                );
            };
            let same_svc = |e: &Event| e.object["metadata"]["namespace"] == ns.as_str();
            match ev.plural {
                "pods" if key_of(&ev.object) == (ns.clone(), name.clone()) => pod_at = Some(at),
                "endpointslices"
                    if same_svc(&ev)
                        && ours(&ev.object)
                        && slice_service(&ev.object).is_some_and(|s| s.1 == svc)
                        && slice_readiness(&ev.object, &name) == Some(now_ready) =>
                {
                    slice_at = Some(at);
                }
                "endpoints"
                    if key_of(&ev.object) == (ns.clone(), svc.clone())
                        && endpoints_readiness(&ev.object, &ip) == Some(now_ready) =>
                {
                    ep_at = Some(at);
                }
                _ => {}
            }
        }
        let (Some(p), Some(s), Some(e)) = (pod_at, slice_at, ep_at) else {
            unreachable!("the loop ends only with all three")
        };
        slice_lat.push(s.saturating_duration_since(p));
        ep_lat.push(e.saturating_duration_since(p));
        std::thread::sleep(gap);
    }
    // Late extra writes would show in the count.
    std::thread::sleep(gap.max(Duration::from_millis(200)));
    Flips {
        slice: slice_lat,
        endpoints: ep_lat,
        writes: write_counts(api),
    }
}

fn fmt_writes(w: &BTreeMap<String, usize>) -> String {
    if w.is_empty() {
        return "none".into();
    }
    w.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn total(w: &BTreeMap<String, usize>) -> usize {
    w.values().sum()
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

fn main() {
    let bench = util::bench_mode();
    let sizes: Vec<usize> = std::env::var("EPC_SIZES")
        .unwrap_or_else(|_| if bench { "1000,10000" } else { "20" }.to_string())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .expect("EPC_SIZES is a comma list of numbers")
        })
        .collect();
    let pods = util::env_usize("EPC_PODS", if bench { 10 } else { 3 }).max(1);
    let max_ns = util::env_usize("EPC_NAMESPACES", if bench { 100 } else { 4 }).max(1);
    let latency_size = util::env_usize("EPC_LATENCY_SIZE", if bench { 1000 } else { 20 });
    let n_changes = util::env_usize("EPC_CHANGES", if bench { 1000 } else { 12 });
    let gap = Duration::from_millis(util::env_usize("EPC_GAP_MS", 5) as u64);
    let settle = Duration::from_millis(util::env_usize(
        "EPC_SETTLE_MS",
        if bench { 2000 } else { 300 },
    ) as u64);
    let timeout =
        Duration::from_secs(util::env_usize("EPC_TIMEOUT_S", if bench { 600 } else { 120 }) as u64);
    let hold = util::env_usize("EPC_HOLD_MS", 0);

    let probe = Shape {
        services: 1,
        pods: 1,
        namespaces: 1,
    };
    let sizes_line = format!(
        "JSON bytes per object: pod {} B, Service {} B, Node {} B",
        json_len(&pod(probe, 0, 0, true)),
        json_len(&service(probe, 0)),
        json_len(&node(0)),
    );
    println!("{sizes_line}");

    let mut rows = Vec::new();
    let mut lat_rows = Vec::new();
    let mut verdicts = Vec::new();
    for services in sizes {
        let shape = Shape {
            services,
            pods,
            namespaces: max_ns.min(services).max(1),
        };
        println!(
            "endpoints_controller: {services} services × {pods} pods over {} namespaces, {} nodes",
            shape.namespaces,
            shape.nodes()
        );
        let api = Api::start();
        let seeded = seed(&api, shape);
        println!("  seeded in {} ms", ms(seeded));
        let measure_latency = services == latency_size && n_changes > 0;
        let changes = Changes::subscribe(&api, measure_latency);
        let (mut ctl, cold) = cold_start(&api, shape, &changes, settle, timeout);
        println!(
            "  converged {} ({} of {services} services), writes: {}; VmHWM {} MiB, VmRSS {} MiB, RssAnon {} MiB",
            cold.converged
                .map_or("NOT".into(), |d| format!("in {} ms", ms(d))),
            cold.done,
            fmt_writes(&cold.writes),
            mib(cold.hwm_kb),
            mib(cold.rss_kb),
            mib(cold.anon_kb),
        );
        if !bench {
            assert!(
                cold.converged.is_some(),
                "not converged: {} of {services} services",
                cold.done
            );
            verify(&api, shape, 1);
            let want: BTreeMap<String, usize> = [
                ("CREATE endpoints".to_string(), services),
                ("CREATE endpointslices".to_string(), services),
            ]
            .into();
            assert_eq!(
                cold.writes, want,
                "one slice and one Endpoints per Service, nothing else"
            );
        } else if cold.converged.is_some() {
            verify(&api, shape, (services / 50).max(1));
        }
        rows.push(format!(
            "| {services} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            services * pods,
            shape.namespaces,
            shape.nodes(),
            ms(seeded),
            cold.converged.map_or(
                format!(
                    "not converged in {} s ({} of {services})",
                    timeout.as_secs(),
                    cold.done
                ),
                ms
            ),
            total(&cold.writes),
            fmt_writes(&cold.writes),
            mib(cold.hwm_kb),
            mib(cold.rss_kb),
            mib(cold.anon_kb),
        ));
        if services == 1000 && pods == 10 && bench {
            verdicts.push(format!(
                "Cold start → converged at 1,000 Services × 10 pods (target ≤ 5 s): **{}** — {}; {} writes for 1,000 Services (want 2,000).",
                if cold.converged.is_some_and(|d| d <= TARGET_CONVERGE) { "met" } else { "not met" },
                cold.converged.map_or("not converged".into(), |d| format!("{} ms", ms(d))),
                total(&cold.writes),
            ));
        }
        if services == 10_000 && pods == 10 && bench {
            verdicts.push(format!(
                "Peak RSS at 10,000 Services × 10 pods (target ≤ 100 MB): **{}** — VmHWM {} MiB{}.",
                if cold.hwm_kb <= TARGET_RSS_KB {
                    "met"
                } else {
                    "not met"
                },
                mib(cold.hwm_kb),
                if cold.converged.is_some() {
                    ""
                } else {
                    " (measured before convergence)"
                },
            ));
        }
        if measure_latency && cold.converged.is_some() {
            let mut f = flips(&api, shape, &changes, n_changes, gap, &mut ctl);
            if !bench {
                let want: BTreeMap<String, usize> = [
                    ("REPLACE endpoints".to_string(), n_changes),
                    ("REPLACE endpointslices".to_string(), n_changes),
                ]
                .into();
                assert_eq!(
                    f.writes, want,
                    "one slice and one Endpoints write per readiness change"
                );
            }
            f.slice.sort();
            f.endpoints.sort();
            let line = |name: &str, v: &[Duration]| {
                format!(
                    "| {name} | {services} × {pods} | {} | {} | {} | {} | {} | {} |",
                    v.len(),
                    ms(percentile(v, 50.0)),
                    ms(percentile(v, 90.0)),
                    ms(percentile(v, 99.0)),
                    ms(v.last().copied().unwrap_or_default()),
                    ms(mean(v)),
                )
            };
            lat_rows.push(line("pod stored → slice stored", &f.slice));
            lat_rows.push(line("pod stored → Endpoints stored", &f.endpoints));
            println!(
                "  {}\n  {}",
                lat_rows[lat_rows.len() - 2],
                lat_rows[lat_rows.len() - 1]
            );
            println!("  writes during the flips: {}", fmt_writes(&f.writes));
            if bench && pods == 10 && services == 1000 {
                let p99 = percentile(&f.slice, 99.0);
                verdicts.push(format!(
                    "Readiness change → slice stored (target p99 ≤ 50 ms): **{}** — p50 {} ms, p99 {} ms over {} changes; {} writes for {} changes (want {}).",
                    if p99 <= TARGET_P99 { "met" } else { "not met" },
                    ms(percentile(&f.slice, 50.0)),
                    ms(p99),
                    f.slice.len(),
                    total(&f.writes),
                    f.slice.len(),
                    2 * f.slice.len(),
                ));
            }
        }
        if hold > 0 {
            println!("  controller pid {} held for {hold} ms", ctl.child.id());
            std::thread::sleep(Duration::from_millis(hold as u64));
        }
        drop(ctl);
    }
    let table = [
        "| services | pods | namespaces | nodes | seed ms | start→converged ms | writes | writes by kind | VmHWM MiB | VmRSS MiB | RssAnon MiB |".to_string(),
        "|---|---|---|---|---|---|---|---|---|---|---|".to_string(),
    ]
    .into_iter()
    .chain(rows)
    .collect::<Vec<_>>()
    .join("\n");
    let lat_table = [
        "| latency | cluster | changes | p50 ms | p90 ms | p99 ms | max ms | mean ms |".to_string(),
        "|---|---|---|---|---|---|---|---|".to_string(),
    ]
    .into_iter()
    .chain(lat_rows)
    .collect::<Vec<_>>()
    .join("\n");
    println!("\n{table}\n\n{lat_table}\n\n{}", verdicts.join("\n"));
    if !bench {
        return;
    }
    let body = format!(
        "## endpoints_controller\n\n\
         Command: `cargo bench --bench endpoints_controller` (also `EPC_SIZES`, `EPC_PODS`, \
         `EPC_NAMESPACES`, `EPC_LATENCY_SIZE`, `EPC_CHANGES`, `EPC_GAP_MS`, `EPC_SETTLE_MS`, \
         `EPC_TIMEOUT_S`, `EPC_HOLD_MS`).\n\n\
         Machine: {}. Date: {}.\n\n\
         Cluster: N Services (selector `app=svcN`, one port 80 → 8080) over up to {max_ns} \
         namespaces, {pods} Running+Ready pods each, shaped like kubelet-managed Deployment pods \
         (managedFields, ownerReference, projected token volume, tolerations, 5 conditions, a \
         container status), one Node per {PODS_PER_NODE} pods, in the in-process test API server. \
         {sizes_line}. The release controller binary (`clusterdns endpoints-controller --endpoint`) \
         starts after the server is filled. \"Converged\" is when the last Service has slices with \
         all its pods ready and an Endpoints object with all of them, timed by the server's own \
         change notifications (a thread blocked on the store's channel stamps each change, µs \
         after it is stored); writes are the write requests in the server's request log up to \
         {}s after convergence. Readiness latency: one pod's Ready condition flipped at a time \
         (change j: Service j mod N, each Service once per round), pod stored → the slice (or \
         Endpoints) showing the new readiness stored, same stamps; {}ms pause after each change \
         has landed. Memory from /proc/PID/status after the settle (VmHWM is the peak).\n\n\
         {table}\n\n{lat_table}\n\n{}\n",
        util::machine(),
        util::today(),
        settle.as_secs_f64(),
        gap.as_millis(),
        verdicts.join("\n\n"),
    );
    util::write_section("endpoints_controller", &body);
}
