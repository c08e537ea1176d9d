//! `ApiServer`: the test-facing handle of the in-process Kubernetes API server.
//!
//! Tests drive cluster state directly (`apply`, `apply_json`, `delete`) or
//! through a real kube client (`client`), inject faults (`stop`/`restart`,
//! `compact`, `close_watches`, `set_latency`, `inject`) and assert on what
//! clients asked (`request_log`). Invariant: state survives `stop`/`restart`; the port does not
//! change; all traffic stays on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::faults::{Fault, Faults};
pub use super::http::Logged;
use super::http::{Shared, accept_loop, lock};
use super::resources::ResourceType;
use super::store::{Event, Store};
use super::tls::Tls;

/// An in-process Kubernetes API server on 127.0.0.1. Stops serving when dropped.
///
/// It runs on its own Tokio runtime (one worker thread), so it keeps answering
/// while the test's runtime is blocked in synchronous code (a blocking DNS query,
/// `std::thread::sleep`, waiting on a child process).
pub struct ApiServer {
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

fn rt_of<K: k8s_openapi::Resource>() -> &'static ResourceType {
    ResourceType::of::<K>().unwrap_or_else(|| {
        panic!(
            "the test API server does not serve {}/{}",
            K::API_VERSION,
            K::URL_PATH_SEGMENT
        )
    })
}

impl ApiServer {
    /// Start serving plain HTTP without authentication.
    pub async fn start() -> Self {
        Self::launch(None, None)
    }

    /// Start serving HTTPS (certificate from a CA generated now) that requires `Authorization: Bearer <token>`.
    pub async fn start_tls(token: &str) -> Self {
        let tls = Tls::generate().expect("generate test certificates");
        Self::launch(Some(tls), Some(token.to_string()))
    }

    fn launch(tls: Option<Tls>, token: Option<String>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-apiserver")
            .enable_all()
            .build()
            .expect("build the API server runtime");
        let listener = {
            let _in_runtime = runtime.enter();
            bind(0).expect("bind 127.0.0.1:0")
        };
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            log: Mutex::new(Vec::new()),
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
            latency: Mutex::new(Duration::ZERO),
            watch_cancel: Mutex::new(CancellationToken::new()),
            conn_cancel: Mutex::new(CancellationToken::new()),
            faults: Mutex::new(Faults::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            token,
            tls,
            addr,
        });
        let accept = runtime.spawn(accept_loop(shared.clone(), listener));
        Self {
            shared,
            accept: Mutex::new(Some(accept)),
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The CA certificate (PEM) in TLS mode.
    pub fn ca_pem(&self) -> Option<String> {
        self.shared.tls.as_ref().map(|t| t.ca_pem.clone())
    }

    /// Write a kubeconfig for this server: cluster, user and context all named
    /// `test`, default namespace `default`, the CA embedded in TLS mode.
    pub fn write_kubeconfig(&self, path: &Path, token: Option<&str>) {
        let ca = match &self.shared.tls {
            Some(tls) => format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(&tls.ca_pem)
            ),
            None => String::new(),
        };
        let user = match token {
            Some(t) => format!("\n    token: \"{t}\""),
            None => " {}".to_string(),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}{ca}\n\
             users:\n- name: test\n  user:{user}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    \
             user: test\n    namespace: default\ncurrent-context: test\n",
            url = self.url()
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// A kube client for this server, trusting its CA and sending its token.
    /// Must be called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        let uri = self.url().parse().expect("server URL is a valid URI");
        let mut config = kube::Config::new(uri);
        if let Some(tls) = &self.shared.tls {
            config.root_cert = Some(vec![tls.ca_der.clone()]);
        }
        if let Some(token) = &self.shared.token {
            let value = hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .expect("token is a header value");
            config.headers.push((hyper::header::AUTHORIZATION, value));
        }
        kube::Client::try_from(config).expect("build kube client")
    }

    /// Create or replace an object (ignoring resourceVersions), as stored. A namespaced
    /// object without a namespace goes to `default`. Watchers see ADDED or MODIFIED.
    pub fn apply<K: k8s_openapi::Resource + serde::Serialize>(&self, obj: &K) -> Value {
        self.apply_json::<K>(serde_json::to_value(obj).expect("serialize object"))
    }

    /// Create or replace an object given as raw JSON, stored as it is (server
    /// fields stamped): objects the typed structs would reject, or that no real
    /// API server would accept, for fault tests. Needs a string `metadata.name`.
    pub fn apply_json<K: k8s_openapi::Resource>(&self, value: Value) -> Value {
        let rt = rt_of::<K>();
        let ns = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        lock(&self.shared.store)
            .upsert(rt, &ns, value)
            .unwrap_or_else(|e| panic!("apply {}: {}", rt.plural, e.message))
    }

    /// Every later change of `K`, in commit order: each event is sent while the
    /// store lock is held, at the moment the change is stored (benchmarks stamp
    /// it on arrival to time the server-side effects of a change).
    pub fn changes<K: k8s_openapi::Resource>(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        let mut store = lock(&self.shared.store);
        let rv = store.rv();
        store
            .subscribe(rt_of::<K>(), Some(rv))
            .expect("subscribing at the current resourceVersion never expires")
            .rx
    }

    /// Arm `fault` for requests and watches of `K`, for `times` shots (`None`:
    /// until [`clear_faults`](Self::clear_faults)).
    pub fn inject<K: k8s_openapi::Resource>(&self, fault: Fault, times: Option<usize>) {
        lock(&self.shared.faults).arm(rt_of::<K>().plural, fault, times);
    }

    /// Disarm every fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Delete an object; false if there was none. `namespace` is ignored for cluster-scoped types.
    pub fn delete<K: k8s_openapi::Resource>(&self, namespace: &str, name: &str) -> bool {
        lock(&self.shared.store)
            .delete(rt_of::<K>(), namespace, name)
            .is_ok()
    }

    /// One stored object.
    pub fn get<K: k8s_openapi::Resource>(&self, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store).get(rt_of::<K>(), namespace, name)
    }

    /// One stored object, typed.
    pub fn get_as<K: k8s_openapi::Resource + serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        self.get::<K>(namespace, name)
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// Every stored object of a type, sorted by namespace and name.
    pub fn list<K: k8s_openapi::Resource>(&self) -> Vec<Value> {
        lock(&self.shared.store).list(rt_of::<K>(), None)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv()
    }

    /// Stop accepting connections and drop every open connection and watch
    /// (an API outage). State is kept.
    pub async fn stop(&self) {
        let handle = lock(&self.accept).take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
        let old = std::mem::take(&mut *lock(&self.shared.conn_cancel));
        old.cancel();
    }

    /// Listen again on the same port with the same state. No-op while running.
    pub async fn restart(&self) {
        let Some(runtime) = &self.runtime else { return };
        if lock(&self.accept).is_some() {
            return;
        }
        let port = self.shared.addr.port();
        let mut attempts = 0;
        let listener = loop {
            // Register the listener with the server's own runtime, not the caller's.
            let bound = {
                let _in_runtime = runtime.enter();
                bind(port)
            };
            match bound {
                Ok(l) => break l,
                Err(e) if attempts >= 50 => panic!("rebind 127.0.0.1:{port}: {e}"),
                Err(_) => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        *lock(&self.accept) = Some(runtime.spawn(accept_loop(self.shared.clone(), listener)));
    }

    /// Forget the event history: a watch resuming from any resourceVersion handed
    /// out so far gets a 410 Expired ERROR event; lists and new watches work.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
    }

    /// End every open watch stream cleanly; clients must watch again.
    pub fn close_watches(&self) {
        let old = std::mem::take(&mut *lock(&self.shared.watch_cancel));
        old.cancel();
    }

    /// Period of BOOKMARK events (default 1 s); applies from each watch's next bookmark.
    pub fn set_bookmark_interval(&self, d: Duration) {
        *lock(&self.shared.bookmark_interval) = d;
    }

    /// Delay every response by `d` (zero turns it off).
    pub fn set_latency(&self, d: Duration) {
        *lock(&self.shared.latency) = d;
    }

    /// One line per request so far: `LIST services`, `LIST services ns=default`,
    /// `WATCH endpointslices rv=12`, `WATCH services rv=0 sendInitialEvents`,
    /// `GET services default/web`, `CREATE`/`REPLACE`/`PATCH`/`APPLY`/`DELETE ...`,
    /// `DISCOVERY /api/v1`, `UNAUTHORIZED GET /api/v1/services`, and one line
    /// per injected fault: `FAULT 500 LIST services`, `FAULT MalformedList services`,
    /// `FAULT MalformedEvent services`, `FAULT CutWatch services`.
    pub fn request_log(&self) -> Vec<String> {
        lock(&self.shared.log)
            .iter()
            .map(|l| l.line.clone())
            .collect()
    }

    /// The request log with who sent each request and when: the client is the
    /// bearer token the request presented (empty without one). Give each
    /// process its own token in its kubeconfig
    /// ([`write_kubeconfig`](Self::write_kubeconfig)) to tell their requests
    /// apart; the server checks tokens only in TLS mode.
    pub fn request_log_by_client(&self) -> Vec<Logged> {
        lock(&self.shared.log).clone()
    }

    /// The most requests the server was handling at once (arrival to response
    /// headers, so an open watch stream does not count) since the last reset.
    pub fn max_concurrent_requests(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Start counting [`max_concurrent_requests`](Self::max_concurrent_requests) afresh.
    pub fn reset_max_concurrent_requests(&self) {
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// Empty the request log.
    pub fn clear_request_log(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(handle) = lock(&self.accept).take() {
            handle.abort();
        }
        lock(&self.shared.conn_cancel).cancel();
        if let Some(runtime) = self.runtime.take() {
            // Does not block, so dropping the server inside an async test is fine.
            runtime.shutdown_background();
        }
    }
}
