//! The HTTP side of the process: `/health`, `/ready` and `/metrics`,
//! each on the address its plugin names.
//!
//! Plugins contribute [`Endpoints`] entries keyed by listen address; every address
//! gets one small hyper server with exactly the paths registered for it
//! (CoreDNS runs health on :8080 and ready on :8181 as separate listeners, and
//! several server blocks may name the same address). Anything else is 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// Computes one HTTP answer: status and plain-text body.
pub type Handler = Arc<dyn Fn() -> (StatusCode, String) + Send + Sync>;

/// Paths served on each address.
#[derive(Default, Clone)]
pub struct Endpoints {
    by_addr: BTreeMap<SocketAddr, BTreeMap<&'static str, Handler>>,
}

impl Endpoints {
    /// Serve `path` on `addr` (a later registration of the same path wins).
    pub fn add(&mut self, addr: SocketAddr, path: &'static str, handler: Handler) {
        self.by_addr.entry(addr).or_default().insert(path, handler);
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

/// Errors while opening HTTP listeners.
#[derive(Debug, thiserror::Error)]
#[error("listen http {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

type Paths = BTreeMap<&'static str, Handler>;

/// The running HTTP listeners, kept across reloads: an address that stays
/// keeps its socket and only has its paths swapped.
#[derive(Default)]
pub struct Admin {
    running: BTreeMap<SocketAddr, RunningHttp>,
}

struct RunningHttp {
    /// Swapped by [`Admin::apply`]; read per request.
    paths: Arc<ArcSwap<Paths>>,
    local: SocketAddr,
    token: CancellationToken,
}

impl Admin {
    /// Serve exactly `endpoints`: bind new addresses first (a failure changes
    /// nothing), then swap paths of kept ones and stop removed ones.
    pub async fn apply(
        &mut self,
        endpoints: Endpoints,
        tasks: &TaskTracker,
        token: &CancellationToken,
    ) -> Result<(), BindError> {
        let mut fresh = Vec::new();
        for addr in endpoints.by_addr.keys() {
            if self.running.contains_key(addr) {
                continue;
            }
            let listener = TcpListener::bind(addr).await.map_err(|source| BindError {
                addr: *addr,
                source,
            })?;
            let local = listener.local_addr().map_err(|source| BindError {
                addr: *addr,
                source,
            })?;
            fresh.push((*addr, listener, local));
        }
        let mut wanted = endpoints.by_addr;
        self.running.retain(|addr, r| {
            let keep = wanted.contains_key(addr);
            if !keep {
                r.token.cancel();
            }
            keep
        });
        for (addr, r) in &self.running {
            if let Some(paths) = wanted.remove(addr) {
                r.paths.store(Arc::new(paths));
            }
        }
        for (addr, listener, local) in fresh {
            let paths = wanted.remove(&addr).unwrap_or_default();
            info!(addr = %local, paths = ?paths.keys().collect::<Vec<_>>(), "serving HTTP");
            let paths = Arc::new(ArcSwap::from_pointee(paths));
            let t = token.child_token();
            tasks.spawn(accept_loop(listener, paths.clone(), t.clone()));
            self.running.insert(
                addr,
                RunningHttp {
                    paths,
                    local,
                    token: t,
                },
            );
        }
        Ok(())
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.running.values().map(|r| r.local).collect()
    }
}

async fn accept_loop(listener: TcpListener, paths: Arc<ArcSwap<Paths>>, token: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    debug!(%error, "http accept");
                    continue;
                }
            },
        };
        let paths = paths.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let paths = paths.load_full();
            async move { Ok::<_, Infallible>(respond(&paths, req.uri().path())) }
        });
        let conn_token = token.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn_token.cancelled() => {}
                r = conn => if let Err(error) = r { debug!(%error, "http connection") },
            }
        });
    }
}

fn respond(paths: &BTreeMap<&'static str, Handler>, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match paths.get(path) {
        Some(h) => h(),
        None => (StatusCode::NOT_FOUND, "404 page not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
