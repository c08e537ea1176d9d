//! Live cluster state: kube-rs watches on Services, EndpointSlices, Namespaces,
//! (for `pods verified`) Pods and (for `multicluster`) ServiceImports and
//! imported EndpointSlices, turned into index updates.
//!
//! One task per kind. Each object is converted to its slim record on arrival
//! and dropped; no store of API objects is kept. The kube-rs watcher's
//! `Init` / `InitApply`… / `InitDone` sequence (start, 410 Gone, reconnect) is
//! built here into an [`index::Relist`](crate::index::Relist) (the index's own
//! compact form, one object at a time as the pages arrive, so no second copy of
//! the listed kind is ever held) and sent as a single `Replace` at `InitDone`, so the index swaps
//! from the complete old set to the complete new set in one publish: a query
//! never sees a half-listed kind and never gets a spurious NXDOMAIN.
//!
//! Errors follow [`retry`](crate::k8s::retry): a 410 Gone relists at once; any
//! other error (API unreachable, 5xx, 401) waits a capped exponential backoff
//! (800 ms doubling to 30 s, jittered; [`WatchConfig::backoff`]), and the index
//! keeps serving what it had meanwhile.
//!
//! Objects are decoded one at a time ([`Lenient`](crate::k8s::lenient::Lenient))
//! and converted as their page is decoded ([`Decoded`]): an object that does not fit
//! its kind, or that conversion rejects, is skipped with one warning naming it
//! (and forgotten, if it replaced a good one), while every other object of the
//! list or watch goes on being answered.

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::SystemTime;

use futures::StreamExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::convert::MC_SERVICE_NAME_LABEL;
use super::decoded::{Convert, Decoded, Skip, describe};
use super::mcs::{MultiClusterSlice, ServiceImport};
use super::metrics::WatchMetrics;
use crate::index::{IndexUpdate, Kind, Object, Relist};
use crate::k8s::retry::{Backoff, Failure, Retry, jittered};

/// Pods that can never be answered are not listed at all (as CoreDNS).
const POD_FIELD_SELECTOR: &str =
    "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown";
/// Objects per list page. kube-rs defaults to 500; a page is held twice
/// while it is decoded (the response body and the decoded objects, see
/// [`Decoded`]), so smaller pages lower the peak memory of a relist at the
/// cost of more round trips (each one a request for `apiserver_qps`).
const LIST_PAGE: u32 = 200;
/// The EndpointSlice annotation the programming-latency SLI is measured from.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// What to watch, from the kubernetes plugin's options.
#[derive(Clone, Debug, Default)]
pub struct WatchConfig {
    /// `labels`: selector for Services, EndpointSlices and Pods.
    pub labels: Option<String>,
    /// `namespace_labels`: selector for Namespaces.
    pub namespace_labels: Option<String>,
    /// `namespaces`: objects elsewhere are dropped before they reach the index.
    pub namespaces: Option<HashSet<Box<str>>>,
    /// Watch EndpointSlices (false with `noendpoints`).
    pub endpoints: bool,
    /// Watch Pods (`pods verified`).
    pub pods: bool,
    /// Keep endpoints' pod names (`endpoint_pod_names`); otherwise they are
    /// dropped on arrival — one string less per endpoint in memory.
    pub pod_names: bool,
    /// Keep endpoints' topology zones (`zonal`); otherwise they are dropped
    /// on arrival.
    pub zones: bool,
    /// Watch ServiceImports and the EndpointSlices labelled
    /// `multicluster.kubernetes.io/service-name` (`multicluster`); without
    /// the option neither is listed at all.
    pub multicluster: bool,
    /// The backoff after a failed request (not after a 410 Gone).
    pub backoff: Backoff,
}

/// Start one watch task per kind on `tasks`; they stop when `token` is cancelled.
pub fn spawn(
    client: &Client,
    cfg: &WatchConfig,
    tx: &mpsc::Sender<IndexUpdate>,
    metrics: &WatchMetrics,
    tasks: &TaskTracker,
    token: &CancellationToken,
) {
    let labels = |c: watcher::Config| match &cfg.labels {
        Some(l) => c.labels(l),
        None => c,
    };
    let base = watcher::Config::default().page_size(LIST_PAGE);
    let start = |kind: Kind, fut: futures::future::BoxFuture<'static, ()>| {
        tasks.spawn(fut.instrument(info_span!("watch", kind = ?kind)));
    };
    let ctx = |kind| Ctx {
        kind,
        tx: tx.clone(),
        metrics: metrics.clone(),
        namespaces: cfg.namespaces.clone(),
        backoff: cfg.backoff,
        token: token.child_token(),
    };
    start(
        Kind::Service,
        Box::pin(run(
            Api::<Decoded<core::Service>>::all(client.clone()),
            labels(base.clone()),
            ctx(Kind::Service),
            |o| o,
        )),
    );
    let (pod_names, zones) = (cfg.pod_names, cfg.zones);
    if cfg.endpoints {
        start(
            Kind::EndpointSlice,
            Box::pin(run(
                Api::<Decoded<discovery::EndpointSlice>>::all(client.clone()),
                labels(base.clone()),
                ctx(Kind::EndpointSlice),
                move |mut o| {
                    if let Object::EndpointSlice(s) = &mut o {
                        slim_endpoints(s, pod_names, zones);
                    }
                    o
                },
            )),
        );
    }
    if cfg.multicluster {
        start(
            Kind::ServiceImport,
            Box::pin(run(
                Api::<Decoded<ServiceImport>>::all(client.clone()),
                labels(base.clone()),
                ctx(Kind::ServiceImport),
                |o| o,
            )),
        );
        if cfg.endpoints {
            // Only the slices an MCS implementation imported (CoreDNS's selector).
            let selector = match &cfg.labels {
                Some(l) => format!("{l},{MC_SERVICE_NAME_LABEL}"),
                None => MC_SERVICE_NAME_LABEL.to_string(),
            };
            start(
                Kind::MultiClusterSlice,
                Box::pin(run(
                    Api::<Decoded<MultiClusterSlice>>::all(client.clone()),
                    base.clone().labels(&selector),
                    ctx(Kind::MultiClusterSlice),
                    move |mut o| {
                        if let Object::MultiClusterSlice(s) = &mut o {
                            // Zonal names are not defined in multicluster zones.
                            slim_endpoints(&mut s.slice, pod_names, false);
                        }
                        o
                    },
                )),
            );
        }
    }
    let ns_cfg = match &cfg.namespace_labels {
        Some(l) => base.clone().labels(l),
        None => base.clone(),
    };
    start(
        Kind::Namespace,
        Box::pin(run(
            Api::<Decoded<core::Namespace>>::all(client.clone()),
            ns_cfg,
            ctx(Kind::Namespace),
            |o| o,
        )),
    );
    if cfg.pods {
        start(
            Kind::Pod,
            Box::pin(run(
                Api::<Decoded<core::Pod>>::all(client.clone()),
                labels(base).fields(POD_FIELD_SELECTOR),
                ctx(Kind::Pod),
                |o| o,
            )),
        );
    }
}

/// What one watch task needs besides its API and conversion.
struct Ctx {
    kind: Kind,
    tx: mpsc::Sender<IndexUpdate>,
    metrics: WatchMetrics,
    namespaces: Option<HashSet<Box<str>>>,
    backoff: Backoff,
    token: CancellationToken,
}

impl Ctx {
    fn kind_label(&self) -> &'static str {
        match self.kind {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::ServiceImport => "ServiceImport",
            Kind::MultiClusterSlice => "MultiClusterEndpointSlice",
        }
    }

    /// Whether the `namespaces` option lets objects of `ns` in.
    fn exposed(&self, ns: &str) -> bool {
        self.kind == Kind::Namespace
            || self
                .namespaces
                .as_ref()
                .is_none_or(|set| set.contains(ns.to_ascii_lowercase().as_str()))
    }

    async fn send(&self, u: IndexUpdate) -> bool {
        self.tx.send(u).await.is_ok()
    }
}

/// The watch loop of one kind; `adjust` applies the options to each record.
async fn run<K, F>(api: Api<Decoded<K>>, cfg: watcher::Config, ctx: Ctx, adjust: F)
where
    K: Convert + Clone + Debug + Send + Sync + 'static,
    F: Fn(Object) -> Object,
{
    let mut stream = watcher::watcher(api, cfg).boxed();
    let mut retry = Retry::new(ctx.backoff);
    // The list in progress; `Some` between Init and InitDone.
    let mut listing: Option<Relist> = None;
    let kind = ctx.kind_label();
    loop {
        let event = tokio::select! {
            _ = ctx.token.cancelled() => return,
            e = stream.next() => match e {
                Some(e) => e,
                None => return,
            },
        };
        let update = match event {
            Ok(Event::Init) => {
                debug!("list started");
                listing = Some(Relist::new(ctx.kind));
                continue;
            }
            Ok(Event::InitApply(obj)) => {
                if let (Some(buf), true) = (listing.as_mut(), ctx.exposed(&namespace(&obj)))
                    && let Some(o) = record(obj, kind)
                {
                    buf.put(adjust(o));
                }
                continue;
            }
            Ok(Event::InitDone) => {
                retry.on_progress();
                let relist = listing.take().unwrap_or_else(|| Relist::new(ctx.kind));
                info!(objects = relist.len(), "list complete");
                ctx.metrics.relists.with_label_values(&[kind]).inc();
                IndexUpdate::Replace(Box::new(relist))
            }
            Ok(Event::Apply(obj)) => {
                retry.on_progress();
                if !ctx.exposed(&namespace(&obj)) {
                    continue;
                }
                ctx.metrics.events.with_label_values(&[kind, "apply"]).inc();
                observe_programming(&ctx, &obj);
                let gone = delete(ctx.kind, &obj);
                match record(obj, kind) {
                    Some(o) => IndexUpdate::Apply(adjust(o)),
                    // No longer answerable (a slice lost its service label, a pod
                    // finished, the object no longer decodes): forget what we had
                    // under this key.
                    None => gone,
                }
            }
            Ok(Event::Delete(obj)) => {
                retry.on_progress();
                ctx.metrics
                    .events
                    .with_label_values(&[kind, "delete"])
                    .inc();
                delete(ctx.kind, &obj)
            }
            Err(error) => {
                // The last known state keeps serving; the watcher itself has
                // already moved to a relist (410) or a retry of the same step.
                ctx.metrics.restarts.with_label_values(&[kind]).inc();
                let delay = jittered(retry.on_failure(Failure::of(&error)), fastrand::f64());
                if delay.is_zero() {
                    info!(%error, "watch expired; relisting now, serving the last known state meanwhile");
                } else {
                    warn!(%error, ?delay, "watch failed; serving the last known state and retrying after a backoff");
                }
                tokio::select! {
                    _ = ctx.token.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        if !ctx.send(update).await {
            return;
        }
    }
}

/// Drops what the options do not need from each endpoint of a slice.
fn slim_endpoints(s: &mut crate::index::model::EndpointSlice, pod_names: bool, zones: bool) {
    for e in &mut s.endpoints {
        if !pod_names {
            e.pod_name = None;
        }
        if !zones {
            e.zone = None;
        }
    }
}

fn namespace<K: Resource>(obj: &K) -> String {
    obj.meta().namespace.clone().unwrap_or_default()
}

/// The object's record, or `None` (with one warning naming it) when it does
/// not decode or convert.
fn record<K: Convert>(obj: Decoded<K>, kind: &str) -> Option<Object> {
    let Decoded { meta, record, .. } = obj;
    let skip = match record {
        Ok(o) => return o,
        Err(skip) => skip,
    };
    let object = describe(&meta);
    match skip {
        Skip::Undecodable(error) => {
            warn!(kind, object, %error, "object skipped: it does not decode");
            None
        }
        Skip::Unusable(error) => {
            warn!(kind, object, %error, "object skipped: DNS cannot use it");
            None
        }
    }
}

fn delete<K: Resource>(kind: Kind, obj: &K) -> IndexUpdate {
    IndexUpdate::Delete {
        kind,
        namespace: obj
            .meta()
            .namespace
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .into(),
        name: obj
            .meta()
            .name
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .into(),
    }
}

/// Record the DNS programming latency of an EndpointSlice change, as CoreDNS does.
fn observe_programming<K: Resource>(ctx: &Ctx, obj: &K) {
    if ctx.kind != Kind::EndpointSlice {
        return;
    }
    let Some(trigger) = obj.annotations().get(TRIGGER_TIME) else {
        return;
    };
    let Ok(at) = parse_rfc3339(trigger) else {
        return;
    };
    let Ok(elapsed) = SystemTime::now().duration_since(at) else {
        return;
    };
    let labels = obj.labels();
    let headless = labels.contains_key("service.kubernetes.io/headless");
    let managed = labels
        .get("endpointslice.kubernetes.io/managed-by")
        .is_some_and(|m| m == "endpointslice-controller.k8s.io");
    let service_kind = match (headless, managed) {
        (false, _) => "cluster_ip",
        (true, true) => "headless_with_selector",
        (true, false) => "headless_without_selector",
    };
    ctx.metrics
        .programming
        .with_label_values(&[service_kind])
        .observe(elapsed.as_secs_f64());
}

/// RFC 3339 (as the annotation is written, `2026-11-27T14:30:00.123456789Z`) to a time.
fn parse_rfc3339(s: &str) -> Result<SystemTime, ()> {
    let t: k8s_openapi::jiff::Timestamp = s.parse().map_err(|_| ())?;
    Ok(SystemTime::from(t))
}
