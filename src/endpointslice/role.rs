//! `clusterdns endpoints-controller`: turns the command-line flags into an
//! API client, leader-election settings and controller settings, runs the
//! controller, serves `/metrics` and `/healthz` on `--metrics-bind-address`,
//! and stops it cleanly on SIGTERM/SIGINT (releasing the Lease when leading).
//! Kept out of `main.rs` so the binary stays a dispatcher.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::controller::{self, RunError, Settings};
use super::metrics::Metrics;
use crate::admin::{self, Admin, BindError};
use crate::cli::EndpointsControllerArgs;
use crate::k8s::client::{self, ApiAccess, ClientError};
use crate::k8s::leader::{ElectionConfig, LeaderError};
use crate::shutdown::Signals;

/// The Lease this role elects with, in `kube-system`.
pub const LEASE_NAME: &str = "clusterdns-endpoints-controller";
/// How long the controller may take to stop after a signal.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why the role could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The API client could not be configured.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The leader election flags are inconsistent.
    #[error("{0}")]
    Leader(#[from] LeaderError),
    /// The controller stopped with an error.
    #[error("{0}")]
    Run(#[from] RunError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The metrics could not be registered.
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// `--metrics-bind-address` could not be bound.
    #[error("--metrics-bind-address: {0}")]
    Bind(#[from] BindError),
}

/// Serve `/metrics` (the controller's registry) and `/healthz` on `addr`
/// until `stop`; the returned [`Admin`] owns the listener.
async fn serve_http(
    addr: SocketAddr,
    registry: prometheus::Registry,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Result<Admin, BindError> {
    let mut paths = admin::Endpoints::default();
    paths.add(
        addr,
        "/metrics",
        Arc::new(move || (StatusCode::OK, crate::metrics::encode(&registry))),
    );
    paths.add(
        addr,
        "/healthz",
        Arc::new(|| (StatusCode::OK, "ok".to_owned())),
    );
    let mut http = Admin::default();
    http.apply(paths, tasks, stop).await?;
    Ok(http)
}

/// The leader-election settings the flags ask for (`None` without `--leader-elect`).
pub fn election(args: &EndpointsControllerArgs) -> Result<Option<ElectionConfig>, LeaderError> {
    if !args.leader_elect {
        return Ok(None);
    }
    let config = ElectionConfig {
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
        ..ElectionConfig::new(LEASE_NAME)
    };
    config.validate()?;
    Ok(Some(config))
}

/// Run until SIGTERM or SIGINT.
pub async fn run(args: &EndpointsControllerArgs) -> Result<(), RoleError> {
    let mut signals = Signals::install().map_err(RoleError::Signals)?;
    let election = election(args)?;
    let access = ApiAccess {
        endpoint: args.endpoint.clone(),
        kubeconfig: args.kubeconfig.clone().map(|p: PathBuf| (p, None)),
        ..ApiAccess::default()
    };
    let client = client::client(&access).await?;
    let registry = crate::metrics::registry();
    let settings = Settings {
        concurrency: args.concurrent_syncs,
        max_endpoints_per_slice: usize::from(args.max_endpoints_per_slice),
        metrics: Metrics::register(&registry)?,
    };
    let root = CancellationToken::new();
    let http_tasks = TaskTracker::new();
    let _http = serve_http(args.metrics_bind_address, registry, &http_tasks, &root).await?;
    let mut task = tokio::spawn(controller::run(client, settings, election, root.clone()));
    tokio::select! {
        res = &mut task => {
            return match res {
                Ok(r) => r.map_err(RoleError::from),
                Err(e) => {
                    tracing::error!(error = %e, "endpoints controller task failed");
                    Ok(())
                }
            };
        }
        () = signals.recv(&root) => {}
    }
    root.cancel();
    match tokio::time::timeout(STOP_GRACE, task).await {
        Ok(Ok(r)) => r.map_err(RoleError::from),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "endpoints controller task failed");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("endpoints controller did not stop within {STOP_GRACE:?}");
            Ok(())
        }
    }
}
