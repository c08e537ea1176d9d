//! Starting the sources that feed each kubernetes plugin's index: an index
//! writer per plugin, then the manifests reader or the API watches.
//!
//! API clients are shared: kubernetes blocks that name the same API access
//! get one kube-rs `Client` (one connection pool) between them.

use std::sync::Arc;

use anyhow::Context;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::index::PodMode;
use crate::index::snapshot::{self, SharedIndex};
use crate::plugin::kubernetes::{KubernetesConfig, Source};
use crate::watch::api::{self, WatchConfig};
use crate::watch::client::{self, ApiAccess};
use crate::watch::manifests::Manifests;
use crate::watch::metrics::WatchMetrics;

/// A source of cluster state to start, with the index it feeds.
pub(super) struct SourceTask {
    pub(super) cfg: KubernetesConfig,
    pub(super) index: Arc<SharedIndex>,
}

/// Starts sources, reusing one API client per distinct access configuration.
pub(super) struct Starter<'a> {
    pub(super) tasks: &'a TaskTracker,
    pub(super) token: &'a CancellationToken,
    pub(super) metrics: WatchMetrics,
    clients: Vec<(String, Client)>,
}

impl<'a> Starter<'a> {
    pub(super) fn new(
        tasks: &'a TaskTracker,
        token: &'a CancellationToken,
        metrics: WatchMetrics,
    ) -> Self {
        Self {
            tasks,
            token,
            metrics,
            clients: Vec::new(),
        }
    }

    /// Spawn the index writer and the source for one kubernetes plugin.
    pub(super) async fn start(&mut self, s: SourceTask) -> anyhow::Result<()> {
        let (tx, rx) = snapshot::channel();
        self.tasks.spawn(
            snapshot::run_writer(s.index, rx, self.token.child_token())
                .instrument(tracing::info_span!("index_writer")),
        );
        match &s.cfg.source {
            Source::Manifests(paths) => {
                let src = Manifests::new(paths.clone(), s.cfg.labels.clone());
                self.tasks.spawn(
                    src.run(tx, self.token.child_token())
                        .instrument(tracing::info_span!("watch", source = "manifests")),
                );
            }
            Source::Api {
                endpoint,
                kubeconfig,
                tls,
            } => {
                let access = ApiAccess {
                    endpoint: endpoint.clone(),
                    kubeconfig: kubeconfig.clone(),
                    tls: tls.clone(),
                };
                let client = self.client(&access).await?;
                let cfg = WatchConfig {
                    labels: s.cfg.labels.as_ref().map(|l| l.as_str().to_string()),
                    namespace_labels: s.cfg.namespace_labels.clone(),
                    namespaces: s.cfg.namespaces.clone(),
                    endpoints: !s.cfg.noendpoints,
                    pods: s.cfg.pods == PodMode::Verified,
                };
                api::spawn(&client, &cfg, &tx, &self.metrics, self.tasks, self.token);
            }
        }
        Ok(())
    }

    async fn client(&mut self, access: &ApiAccess) -> anyhow::Result<Client> {
        let key = format!("{access:?}");
        if let Some((_, c)) = self.clients.iter().find(|(k, _)| *k == key) {
            return Ok(c.clone());
        }
        let c = client::client(access)
            .await
            .context("kubernetes: connecting to the API")?;
        self.clients.push((key, c.clone()));
        Ok(c)
    }
}
