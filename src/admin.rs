//! The HTTP side of the process: `/health`, `/ready` (and `/metrics` later),
//! each on the address its plugin names.
//!
//! Plugins contribute [`Endpoint`]s keyed by listen address; every address
//! gets one small hyper server with exactly the paths registered for it
//! (CoreDNS runs health on :8080 and ready on :8181 as separate listeners, and
//! several server blocks may name the same address). Anything else is 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

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

/// Bind every address, then serve on `tasks` until `token` is cancelled.
/// Returns the bound addresses in the order of `endpoints`' addresses.
pub async fn serve(
    endpoints: Endpoints,
    tasks: &TaskTracker,
    token: CancellationToken,
) -> Result<Vec<SocketAddr>, BindError> {
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for (addr, paths) in endpoints.by_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| BindError { addr, source })?;
        info!(addr = %local, paths = ?paths.keys().collect::<Vec<_>>(), "serving HTTP");
        bound.push(local);
        listeners.push((listener, Arc::new(paths)));
    }
    for (listener, paths) in listeners {
        tasks.spawn(accept_loop(listener, paths, token.clone()));
    }
    Ok(bound)
}

async fn accept_loop(
    listener: TcpListener,
    paths: Arc<BTreeMap<&'static str, Handler>>,
    token: CancellationToken,
) {
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
            let paths = paths.clone();
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
