//! Serving the health-check node ports (see [`super::healthcheck`] for what
//! they answer): one HTTP listener per port on every address, bound when a
//! Service asks for the port and closed when none does; the answers are
//! swapped in after every sync without rebinding.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::StatusCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::healthcheck::Check;
use crate::admin::{self, Admin};

/// The HTTP listeners of the health-check node ports, rebound when the set
/// of ports changes; the answers are swapped in after every sync.
pub(super) struct HealthPorts {
    http: Admin,
    tasks: TaskTracker,
    stop: CancellationToken,
    checks: Arc<ArcSwap<BTreeMap<u16, Check>>>,
    bound: Option<BTreeSet<u16>>,
}

impl HealthPorts {
    pub(super) fn new(stop: CancellationToken) -> HealthPorts {
        HealthPorts {
            http: Admin::default(),
            tasks: TaskTracker::new(),
            stop,
            checks: Arc::default(),
            bound: None,
        }
    }

    pub(super) async fn update(&mut self, checks: BTreeMap<u16, Check>) {
        let ports: BTreeSet<u16> = checks.keys().copied().collect();
        self.checks.store(Arc::new(checks));
        if self.bound.as_ref() == Some(&ports) {
            return;
        }
        let mut paths = admin::Endpoints::default();
        for &port in &ports {
            let addr = SocketAddr::from(([0, 0, 0, 0], port));
            for path in ["/", "/healthz"] {
                let checks = self.checks.clone();
                paths.add(
                    addr,
                    path,
                    Arc::new(move || match checks.load().get(&port) {
                        Some(c) => {
                            let (code, body) = c.answer();
                            (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body)
                        }
                        None => (StatusCode::NOT_FOUND, String::new()),
                    }),
                );
            }
        }
        match self.http.apply(paths, &self.tasks, &self.stop).await {
            Ok(()) => self.bound = Some(ports),
            Err(e) => tracing::warn!(error = %e, "health-check node ports (retried next sync)"),
        }
    }
}
