//! Wiring: a validated [`Config`] becomes running listeners, plugin chains,
//! HTTP endpoints and kubernetes sources — at start and at every reload.
//!
//! Each configuration is a *generation*: `plan::plan` builds it
//! without opening sockets, then [`App::start`]/[`App::reload`] bind what is
//! new, start new sources, wait (bounded) for their data, and only then switch
//! listeners to it and retire the previous generation. A failure at any step
//! before the switch leaves the running generation untouched.

mod plan;
mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::admin::Admin;
use crate::config::{self, Config};
use crate::dns::server::DnsListeners;
use crate::plugin::build::Families;
use crate::plugin::health::{self, HealthMetrics};
use crate::plugin::ready::{Monitor, Readiness};
use crate::plugin::reload::{self, Reload, ReloadMetrics};
use crate::shutdown::Signals;
use crate::watch::metrics::WatchMetrics;

use sources::Sources;

/// Where the Corefile comes from, for reloads.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    /// The Corefile path.
    pub path: PathBuf,
    /// `-dns.port`.
    pub default_port: u16,
}

/// The running server.
pub struct App {
    families: Families,
    dns: DnsListeners,
    admin: Admin,
    sources: Sources,
    /// Readiness of the current generation (for lameduck).
    readiness: Arc<Readiness>,
    lameduck: Duration,
    reload: Option<Reload>,
    /// Cancelled when the current generation is replaced.
    generation: CancellationToken,
    /// SHA-512 of the running Corefile and its imports.
    checksum: String,
    /// The running Corefile and its imports (what `checksum` covers).
    files: Vec<PathBuf>,
    reload_metrics: ReloadMetrics,
    tasks: TaskTracker,
    root: CancellationToken,
}

impl App {
    /// Start the first generation: bind, start sources, wait (at most
    /// `startup_timeout`) for their data, then answer DNS.
    ///
    /// Like CoreDNS, serving waits up to `startup_timeout` (default 5 s) for
    /// the first complete list; if the data has not arrived by then, DNS
    /// starts anyway: cluster names the index cannot vouch for get SERVFAIL
    /// (never NXDOMAIN) and `/ready` stays 503 until the data arrives.
    pub async fn start(
        cfg: &Config,
        families: Families,
        root: CancellationToken,
    ) -> anyhow::Result<Self> {
        let reload_metrics = families.get::<ReloadMetrics>()?;
        let sources = Sources::new(families.get::<WatchMetrics>()?);
        let generation = root.child_token();
        let plan = plan::plan(cfg, &families, &sources, &generation)?;
        let mut app = Self {
            families,
            dns: DnsListeners::default(),
            admin: Admin::default(),
            sources,
            readiness: plan.readiness.clone(),
            lameduck: plan.lameduck,
            reload: plan.reload,
            generation,
            checksum: reload::checksum(&cfg.files),
            files: cfg.files.clone(),
            reload_metrics,
            tasks: TaskTracker::new(),
            root,
        };
        app.reload_metrics.set_version(&app.checksum);
        let generation = app.generation.clone();
        app.switch(plan, &generation).await?;
        Ok(app)
    }

    /// Bind what is new, start sources, wait for data, switch.
    async fn switch(
        &mut self,
        plan: plan::Plan,
        generation: &CancellationToken,
    ) -> anyhow::Result<()> {
        let prepared = self
            .dns
            .prepare(plan.routes, plan.listen)
            .context("opening DNS listeners")?;
        self.admin
            .apply(plan.endpoints, &self.tasks, &self.root)
            .await?;
        self.sources
            .start(&plan.sources, &self.tasks, &self.root)
            .await?;
        let health = self.families.get::<HealthMetrics>()?;
        for addr in &plan.health_addrs {
            self.tasks.spawn(health::self_check(
                *addr,
                health.clone(),
                generation.clone(),
            ));
        }
        wait_for_data(&plan.readiness, plan.startup_timeout).await;
        self.dns.commit(prepared);
        self.sources.retain(&plan.sources);
        self.readiness = plan.readiness;
        self.lameduck = plan.lameduck;
        self.reload = plan.reload;
        Ok(())
    }

    /// Re-read the Corefile if its checksum changed and switch to it. A
    /// broken or unstartable Corefile is logged and counted; the running
    /// configuration keeps serving.
    pub async fn reload(&mut self, source: &ConfigSource) {
        let sum = if self.files.is_empty() {
            reload::checksum(std::slice::from_ref(&source.path))
        } else {
            reload::checksum(&self.files)
        };
        if sum == self.checksum {
            return;
        }
        let cfg = match config::load(
            &source.path,
            &crate::corefile::real_env,
            source.default_port,
        ) {
            Ok(cfg) => cfg,
            Err(errors) => {
                for e in &errors {
                    error!(error = %e, "reload: invalid Corefile; keeping the running configuration");
                }
                self.reload_failed(sum);
                return;
            }
        };
        let generation = self.root.child_token();
        let result = match plan::plan(&cfg, &self.families, &self.sources, &generation) {
            Ok(plan) => self.switch(plan, &generation).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                std::mem::replace(&mut self.generation, generation).cancel();
                self.checksum = reload::checksum(&cfg.files);
                self.reload_metrics.set_version(&self.checksum);
                self.files = cfg.files;
                info!(path = %source.path.display(), "reload: new configuration serving");
            }
            Err(e) => {
                generation.cancel();
                error!(error = %format!("{e:#}"), "reload: keeping the running configuration");
                self.reload_failed(sum);
            }
        }
    }

    fn reload_failed(&mut self, sum: String) {
        self.reload_metrics.failed.inc();
        // Do not retry the same broken content every interval.
        self.checksum = sum;
    }
}

impl App {
    /// Serve until SIGTERM/SIGINT arrives on `signals`, checking the
    /// Corefile every `reload` interval when the configuration has `reload`;
    /// then shut down. A signal that arrives during a reload is kept by
    /// `signals` and acted on as soon as the reload has finished (a reload is
    /// bounded by the startup timeout and never left half-switched).
    pub async fn run(mut self, source: ConfigSource, grace: Duration, mut signals: Signals) {
        let mut seed = u64::from(std::process::id());
        loop {
            let wait = self.reload.map(|r| {
                // xorshift: jitter only needs to differ between replicas and checks.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                r.next_wait(seed)
            });
            let tick = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = signals.recv(&self.root) => break,
                () = tick => self.reload(&source).await,
            }
        }
        self.shutdown(grace).await;
    }

    /// The bound DNS addresses.
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        self.dns.local_addrs()
    }

    /// The bound HTTP (health/ready/metrics) addresses.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.admin.local_addrs()
    }

    /// Lameduck first (keep answering, `/ready` 503); then stop accepting
    /// DNS queries and answer every query already received (those waiting on
    /// an upstream included); only then stop sources, plugins' background
    /// tasks and the HTTP endpoints. The drain and the stop share one
    /// deadline, `grace`, counted from the end of lameduck.
    pub async fn shutdown(mut self, grace: Duration) {
        if !self.lameduck.is_zero() {
            info!(lameduck = ?self.lameduck, "going into lameduck mode");
            self.readiness.drain();
            tokio::time::sleep(self.lameduck).await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, self.dns.shutdown())
            .await
            .is_err()
        {
            warn!(
                ?grace,
                "shutdown grace period expired with DNS queries in flight"
            );
        }
        self.root.cancel();
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(?grace, "shutdown grace period expired");
        }
    }
}

/// Wait until every readiness-reporting plugin is ready, at most `limit`.
async fn wait_for_data(readiness: &Readiness, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let waiting = readiness.not_ready(Monitor::Continuously);
        if waiting.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            if !limit.is_zero() {
                warn!(
                    plugins = ?waiting,
                    ?limit,
                    "no complete data yet; serving DNS anyway (SERVFAIL for unknown cluster names until synced)"
                );
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
