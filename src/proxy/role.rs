//! `clusterdns proxy`: flags → checks → API client → the sync loop, with
//! `/metrics` on `--metrics-bind-address` and `/healthz` on
//! `--healthz-bind-address`, until SIGTERM/SIGINT. `--cleanup` deletes our
//! table and exits. A missing `nft` or a missing CAP_NET_ADMIN is one error
//! line and a non-zero exit before anything else happens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::Metrics;
use super::nft::{self, NftError, Tool};
use super::render::Options;
use super::shell::{self, Health, NodePortFlag, Settings};
use crate::admin::{self, Admin, BindError};
use crate::cli::ProxyArgs;
use crate::k8s::client::{self, ApiAccess, ClientError};
use crate::shutdown::Signals;

/// Our table's name (family `inet`).
pub const TABLE: &str = "clusterdns";
/// How long the sync loop may take to stop after a signal.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why the role could not start.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// nft is missing or not permitted, or `--cleanup` failed.
    #[error("{0}")]
    Nft(#[from] NftError),
    /// A flag value is invalid.
    #[error("{0}")]
    Flag(String),
    /// The API client could not be configured.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The metrics could not be registered.
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// An HTTP address could not be bound.
    #[error("{0}")]
    Bind(#[from] BindError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

fn cidrs(flag: &str, value: &str) -> Result<Vec<IpNet>, RoleError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|_| RoleError::Flag(format!("{flag}: {s:?} is not a CIDR")))
        })
        .collect()
}

/// `--nodeport-addresses` as the shell understands it.
pub fn nodeport_flag(value: Option<&str>) -> Result<NodePortFlag, RoleError> {
    match value.map(str::trim) {
        None | Some("") => Ok(NodePortFlag::AllLocal),
        Some("primary") => Ok(NodePortFlag::Primary),
        Some(v) => Ok(NodePortFlag::Cidrs(cidrs("--nodeport-addresses", v)?)),
    }
}

/// This machine's host name, lower-cased (kube-proxy's default node name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}

fn text(status: StatusCode, body: String) -> (StatusCode, String) {
    (status, body)
}

/// Run until SIGTERM or SIGINT (or, with `--cleanup`, delete the table).
pub async fn run(args: &ProxyArgs) -> Result<(), RoleError> {
    if args.cleanup {
        nft::delete_table(&Tool::named("nft"), TABLE).await?;
        tracing::info!(table = TABLE, "removed the proxy's nftables table");
        return Ok(());
    }
    nft::check(&Tool::named("nft")).await?;
    let mut signals = Signals::install().map_err(RoleError::Signals)?;
    let node = args.hostname_override.clone().unwrap_or_else(host_name);
    if node.is_empty() {
        return Err(RoleError::Flag(
            "no node name: set --hostname-override".to_owned(),
        ));
    }
    let registry = crate::metrics::registry();
    let settings = Settings {
        node,
        opts: Options {
            table: TABLE.to_owned(),
            cluster_cidrs: cidrs("--cluster-cidr", args.cluster_cidr.as_deref().unwrap_or(""))?,
            masquerade_all: args.masquerade_all,
            ..Options::default()
        },
        nodeports: nodeport_flag(args.nodeport_addresses.as_deref())?,
        sync_period: args.sync_period,
        min_sync_period: args.min_sync_period,
        metrics: Metrics::register(&registry)?,
        nft: Tool::named("nft"),
        conntrack: Tool::named("conntrack"),
    };
    let access = ApiAccess {
        endpoint: args.endpoint.clone(),
        kubeconfig: args.kubeconfig.clone().map(|p: PathBuf| (p, None)),
        ..ApiAccess::default()
    };
    let client = client::client(&access).await?;
    let health = Arc::new(Health::new(args.sync_period));

    let root = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut paths = admin::Endpoints::default();
    paths.add(
        args.metrics_bind_address,
        "/metrics",
        Arc::new(move || text(StatusCode::OK, crate::metrics::encode(&registry))),
    );
    let h = health.clone();
    paths.add(
        args.healthz_bind_address,
        "/healthz",
        Arc::new(move || {
            let (age, ok) = h.status();
            let body = format!("last successful sync {:.1}s ago\n", age.as_secs_f64());
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, body)
        }),
    );
    let mut http = Admin::default();
    http.apply(paths, &tasks, &root).await?;
    for addr in http.local_addrs() {
        tracing::info!(%addr, "proxy HTTP listening");
    }

    tracing::info!(node = %settings.node, table = TABLE, "proxy starting");
    let mut task = tokio::spawn(shell::run(client, settings, health, root.clone()));
    tokio::select! {
        res = &mut task => {
            if let Err(e) = res {
                tracing::error!(error = %e, "proxy task failed");
            }
            return Ok(());
        }
        () = signals.recv(&root) => {}
    }
    root.cancel();
    if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
        tracing::warn!("proxy did not stop within {STOP_GRACE:?}");
    }
    Ok(())
}
