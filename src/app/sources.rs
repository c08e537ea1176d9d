//! The kubernetes sources of the process: an index writer plus a manifests
//! reader or API watches per distinct source configuration.
//!
//! Sources are keyed by every setting that changes what they feed the index.
//! A reload whose kubernetes settings did not change gets the same index and
//! keeps its watches (no relist, no memory spike, no gap); a changed one gets a
//! fresh index that is filled beside the old before the switch. API clients
//! are shared between sources that use the same API access.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::index::snapshot::{self, SharedIndex};
use crate::index::{ClusterIndex, PodMode};
use crate::k8s::client::{self, ApiAccess};
use crate::plugin::kubernetes::{KubernetesConfig, Source};
use crate::watch::api::{self, WatchConfig};
use crate::watch::manifests::Manifests;
use crate::watch::metrics::WatchMetrics;

/// A source a configuration uses, with the index it feeds.
pub(super) struct SourceTask {
    key: String,
    cfg: KubernetesConfig,
    /// The index the kubernetes plugin reads.
    pub(super) index: Arc<SharedIndex>,
}

struct Running {
    index: Arc<SharedIndex>,
    token: CancellationToken,
}

/// The running sources and shared API clients.
pub(super) struct Sources {
    running: HashMap<String, Running>,
    clients: Vec<(String, Client)>,
    metrics: WatchMetrics,
}

/// Everything about a kubernetes directive that changes what its source feeds.
fn key(cfg: &KubernetesConfig) -> String {
    let mut namespaces: Vec<&str> = cfg
        .namespaces
        .iter()
        .flatten()
        .map(|n| n.as_ref())
        .collect();
    namespaces.sort_unstable();
    format!(
        "{:?}|{:?}|{:?}|{:?}|{}|{}|{}|{}|{}",
        cfg.source,
        cfg.labels.as_ref().map(|l| l.as_str()),
        cfg.namespace_labels,
        namespaces,
        cfg.noendpoints,
        cfg.pods == PodMode::Verified,
        cfg.endpoint_pod_names,
        cfg.zonal,
        !cfg.multicluster.is_empty()
    )
}

impl Sources {
    /// No sources yet.
    pub(super) fn new(metrics: WatchMetrics) -> Self {
        Self {
            running: HashMap::new(),
            clients: Vec::new(),
            metrics,
        }
    }

    /// The source for `cfg`: the running one with the same settings, one
    /// already planned in this configuration, or a new one.
    pub(super) fn task_for(&self, cfg: &KubernetesConfig, planned: &[SourceTask]) -> SourceTask {
        let key = key(cfg);
        let index = self
            .running
            .get(&key)
            .map(|r| r.index.clone())
            .or_else(|| {
                planned
                    .iter()
                    .find(|t| t.key == key)
                    .map(|t| t.index.clone())
            })
            .unwrap_or_else(|| {
                SharedIndex::new(if cfg.namespace_labels.is_some() {
                    ClusterIndex::namespace_filtered()
                } else {
                    ClusterIndex::default()
                })
            });
        SourceTask {
            key,
            cfg: cfg.clone(),
            index,
        }
    }

    /// Start the sources of `tasks` that are not running yet.
    pub(super) async fn start(
        &mut self,
        tasks: &[SourceTask],
        tracker: &TaskTracker,
        root: &CancellationToken,
    ) -> anyhow::Result<()> {
        for t in tasks {
            if self.running.contains_key(&t.key) {
                continue;
            }
            let token = root.child_token();
            self.spawn(t, tracker, &token).await?;
            self.running.insert(
                t.key.clone(),
                Running {
                    index: t.index.clone(),
                    token,
                },
            );
        }
        Ok(())
    }

    /// Stop the sources no configuration in `keep` uses.
    pub(super) fn retain(&mut self, keep: &[SourceTask]) {
        self.running.retain(|k, r| {
            let used = keep.iter().any(|t| &t.key == k);
            if !used {
                r.token.cancel();
            }
            used
        });
    }

    async fn spawn(
        &mut self,
        t: &SourceTask,
        tracker: &TaskTracker,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        let (tx, rx) = snapshot::channel();
        match &t.cfg.source {
            Source::Manifests(paths) => {
                let mut src = Manifests::new(paths.clone(), t.cfg.labels.clone());
                src.namespace_selector = match &t.cfg.namespace_labels {
                    // Validated when the Corefile was parsed.
                    Some(expr) => Some(
                        crate::k8s::selector::parse(expr)
                            .context("kubernetes: namespace_labels")?,
                    ),
                    None => None,
                };
                tracker.spawn(
                    src.run(tx, token.clone())
                        .instrument(tracing::info_span!("watch", source = "manifests")),
                );
            }
            Source::Api {
                endpoint,
                kubeconfig,
                tls,
                limits,
            } => {
                let access = ApiAccess {
                    endpoint: endpoint.clone(),
                    kubeconfig: kubeconfig.clone(),
                    tls: tls.clone(),
                    limits: *limits,
                };
                let client = self.client(&access).await?;
                let cfg = WatchConfig {
                    labels: t.cfg.labels.as_ref().map(|l| l.as_str().to_string()),
                    namespace_labels: t.cfg.namespace_labels.clone(),
                    namespaces: t.cfg.namespaces.clone(),
                    endpoints: !t.cfg.noendpoints,
                    pods: t.cfg.pods == PodMode::Verified,
                    pod_names: t.cfg.endpoint_pod_names,
                    zones: t.cfg.zonal,
                    multicluster: !t.cfg.multicluster.is_empty(),
                    backoff: crate::k8s::retry::Backoff::default(),
                };
                api::spawn(&client, &cfg, &tx, &self.metrics, tracker, token);
            }
        }
        tracker.spawn(
            snapshot::run_writer(t.index.clone(), rx, token.clone())
                .instrument(tracing::info_span!("index_writer")),
        );
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
