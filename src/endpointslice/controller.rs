//! The I/O shell of `clusterdns endpoints-controller`: kube-runtime's
//! `Controller` on Services, re-triggered by the Pods, EndpointSlices,
//! Endpoints and Nodes that concern them. Every watched object is cached as
//! a compact record ([`super::record`]) in a cache grouped the way a sync
//! reads it ([`super::grouped`]); the Controller's own store keeps only the
//! Services' identities. One sync turns its Service's records back into the
//! planners' inputs, calls the pure planners ([`super::plan::plan`],
//! [`super::endpoints::plan_endpoints_by_digest`]) and writes the difference
//! — nothing when the plan is empty, so a quiet cluster sees no writes. A
//! Service without a selector gets its hand-made Endpoints (fetched whole)
//! mirrored into slices ([`super::mirror::plan_mirror`]) in the same sync.
//! A Service that is gone has its slices and Endpoints deleted here (no
//! garbage collector is assumed). With leader election, the controller runs
//! only for the length of a leadership term. Every write carries the
//! `last-change-trigger-time` of [`super::trigger`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::apply::{self, Change, Object, Written};
use super::endpoints::plan_endpoints_by_digest;
use super::grouped::{Filing, Grouped};
use super::metrics::Metrics;
use super::mirror::{MIRROR_MANAGED_BY, plan_mirror};
use super::model::{self, NodeZones};
use super::plan::{
    self, MANAGED_BY, MANAGED_BY_LABEL, PlanOptions, SERVICE_NAME_LABEL, TRIGGER_TIME_ANNOTATION,
};
use super::record::endpoints::EndpointsRecord;
use super::record::pod::PodRecord;
use super::record::{self, SharedTables, service::ServiceRecord, slice::SliceRecord};
use super::trigger::{self, TriggerTimes};
use crate::k8s::leader::{self, ElectionConfig, LeaderError};

/// The knobs of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--concurrent-service-endpoint-syncs`: Services synced at once.
    pub concurrency: u16,
    /// `--max-endpoints-per-slice`.
    pub max_endpoints_per_slice: usize,
    /// Where the controller counts what it does.
    pub metrics: Metrics,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 5,
            max_endpoints_per_slice: plan::DEFAULT_MAX_ENDPOINTS_PER_SLICE,
            metrics: Metrics::default(),
        }
    }
}

/// How long a sync waits for the stores to show our own writes before it
/// plans anyway: someone else may have deleted or replaced what we wrote, in
/// which case the stores never will.
const TRUST_WRITES_FOR: Duration = Duration::from_secs(10);

/// What the store that triggers syncs keeps of a Service: its identity only
/// (a k8s-openapi `Service`, even emptied, is ~0.8 KB; what a sync reads is
/// in [`ServiceRecord`]s).
type SvcMeta = PartialObjectMeta<Service>;
/// A Service's key in the controller.
type SvcRef = ObjectRef<SvcMeta>;

/// A Service event as the identity [`SvcMeta`] the store keeps.
fn identity_event(ev: watcher::Event<Service>) -> watcher::Event<SvcMeta> {
    use watcher::Event;
    let identity = |mut svc: Service| {
        model::service_identity(&mut svc);
        let mut meta = svc.metadata.into_response_partial::<Service>();
        meta.types = None;
        meta
    };
    match ev {
        Event::Init => Event::Init,
        Event::InitApply(s) => Event::InitApply(identity(s)),
        Event::InitDone => Event::InitDone,
        Event::Apply(s) => Event::Apply(identity(s)),
        Event::Delete(s) => Event::Delete(identity(s)),
    }
}

/// Why a sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A write or delete failed (409 Conflict included: the retry re-plans
    /// from the refreshed cache).
    #[error("writing to the API: {0}")]
    Api(#[from] kube::Error),
    /// A store's writer is gone (the controller is stopping).
    #[error("a cache stopped before it was ready")]
    CacheGone,
}

/// Why the controller could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The leader election settings are invalid.
    #[error("leader election: {0}")]
    Leader(#[from] LeaderError),
}

struct Ctx {
    client: Client,
    services: Store<SvcMeta>,
    /// Pods by namespace, as compact records.
    pods: Shared<PodRecord>,
    /// Our slices (both managed-by values) by `namespace/service`.
    slices: Shared<SliceRecord>,
    /// What a sync reads of each Service (the store above keeps only
    /// their identity), by namespace; also maps a pod to its Services.
    /// `Err`: the Service cannot be understood, and why.
    service_records: Shared<Result<ServiceRecord, String>>,
    /// Endpoints by namespace.
    endpoints: Shared<EndpointsRecord>,
    /// Node name → zone, for nodes that have one.
    nodes: Shared<Arc<str>>,
    opts: PlanOptions,
    /// Our last writes per Service and when they were made, until the
    /// stores show them (or [`TRUST_WRITES_FOR`] has passed).
    written: Mutex<HashMap<SvcRef, (Instant, Written)>>,
    /// Consecutive failures per Service, for the retry backoff.
    failures: Mutex<HashMap<SvcRef, u32>>,
    /// The trigger times seen at each Service's last successful sync.
    triggers: Mutex<TriggerTimes>,
    metrics: Metrics,
    /// Set once every store has synced. A store's `wait_until_ready` wakes
    /// only its latest waiter (one oneshot waker), so concurrent syncs must
    /// not wait on it directly: they queue here and all wake.
    synced: tokio::sync::OnceCell<()>,
}

/// A grouped cache shared by the watch streams (writers) and the syncs,
/// with a flag that turns true on its first complete list.
struct Shared<T> {
    cache: Arc<RwLock<Grouped<T>>>,
    ready: watch::Receiver<bool>,
}

impl<T> Shared<T> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Grouped<T>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A [`Shared`] cache and the event handler that feeds it.
fn shared<K, F>(mut filing: F) -> (Shared<F::Value>, impl FnMut(&watcher::Event<K>))
where
    F: Filing<K>,
{
    let cache = Arc::new(RwLock::new(Grouped::default()));
    let (tx, rx) = watch::channel(false);
    let writer = cache.clone();
    let feed = move |ev: &watcher::Event<K>| {
        let mut g = writer.write().unwrap_or_else(|p| p.into_inner());
        g.apply(&mut filing, ev);
        if g.ready() && !*tx.borrow() {
            tx.send_replace(true);
        }
    };
    (Shared { cache, ready: rx }, feed)
}

fn ns_name<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

fn lock(shared: &SharedTables) -> std::sync::MutexGuard<'_, record::Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The name part of a `namespace/name` id.
fn name_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, name)| name)
}

/// Pods by namespace, as [`PodRecord`]s (pods that do not convert are left out).
struct PodFiling {
    shared: SharedTables,
}
impl Filing<Pod> for PodFiling {
    type Value = PodRecord;
    fn group(&self, pod: &Pod) -> Option<String> {
        pod.namespace()
    }
    fn id(&self, pod: &Pod) -> String {
        ns_name(pod)
    }
    fn convert(&mut self, pod: &Pod) -> Option<PodRecord> {
        let model = model::Pod::from_api(pod).ok()?;
        Some(PodRecord::new(&model, &mut lock(&self.shared)))
    }
    fn stable_group(&self) -> bool {
        true
    }
}

/// Slices by `namespace/service`, as [`SliceRecord`]s.
struct SliceFiling {
    shared: SharedTables,
}
impl Filing<EndpointSlice> for SliceFiling {
    type Value = SliceRecord;
    fn group(&self, s: &EndpointSlice) -> Option<String> {
        let svc = s.labels().get(SERVICE_NAME_LABEL)?;
        Some(format!("{}/{svc}", s.namespace()?))
    }
    fn id(&self, s: &EndpointSlice) -> String {
        ns_name(s)
    }
    fn convert(&mut self, s: &EndpointSlice) -> Option<SliceRecord> {
        Some(SliceRecord::new(
            s,
            &s.namespace()?,
            &mut lock(&self.shared),
        ))
    }
}

/// Endpoints by namespace, as [`EndpointsRecord`]s.
struct EndpointsFiling {
    shared: SharedTables,
}
impl Filing<Endpoints> for EndpointsFiling {
    type Value = EndpointsRecord;
    fn group(&self, e: &Endpoints) -> Option<String> {
        e.namespace()
    }
    fn id(&self, e: &Endpoints) -> String {
        ns_name(e)
    }
    fn convert(&mut self, e: &Endpoints) -> Option<EndpointsRecord> {
        Some(EndpointsRecord::new(e, &mut lock(&self.shared)))
    }
    fn stable_group(&self) -> bool {
        true
    }
}

/// The one group of [`NodeFiling`].
const NODES: &str = "";

/// Node name → zone (nodes without a zone label are not kept).
struct NodeFiling {
    shared: SharedTables,
}
impl Filing<Node> for NodeFiling {
    type Value = Arc<str>;
    fn group(&self, _: &Node) -> Option<String> {
        Some(NODES.to_owned())
    }
    fn id(&self, node: &Node) -> String {
        node.name_any()
    }
    fn convert(&mut self, node: &Node) -> Option<Arc<str>> {
        let (_, zone) = model::node_zone(node)?;
        Some(lock(&self.shared).strings.intern(&zone))
    }
    fn stable_group(&self) -> bool {
        true
    }
}

/// Services by namespace, as [`ServiceRecord`]s (or why not).
struct ServiceFiling {
    shared: SharedTables,
}
impl Filing<Service> for ServiceFiling {
    type Value = Result<ServiceRecord, String>;
    fn group(&self, svc: &Service) -> Option<String> {
        svc.namespace()
    }
    fn id(&self, svc: &Service) -> String {
        ns_name(svc)
    }
    fn convert(&mut self, svc: &Service) -> Option<Self::Value> {
        Some(
            model::Service::from_api(svc)
                .map(|m| ServiceRecord::new(&m, &mut lock(&self.shared)))
                .map_err(|e| e.to_string()),
        )
    }
    fn stable_group(&self) -> bool {
        true
    }
}

/// Run until `shutdown`; with `election`, only write while leading.
pub async fn run(
    client: Client,
    settings: Settings,
    election: Option<ElectionConfig>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let metrics = settings.metrics.clone();
    let Some(election) = election else {
        metrics.leader.set(1);
        run_term(client, settings, shutdown).await;
        metrics.leader.set(0);
        return Ok(());
    };
    let mut leadership = leader::spawn(client.clone(), election, shutdown.clone())?;
    while let Some(term) = leadership.next_term().await {
        metrics.leader.set(1);
        run_term(client.clone(), settings.clone(), term).await;
        metrics.leader.set(0);
        metrics.clear_desired();
        if shutdown.is_cancelled() {
            break;
        }
    }
    // The elector releases the lease once `shutdown` is cancelled.
    let _ = leadership.task.await;
    Ok(())
}

/// Objects per list page. kube-rs lists 500 by default; a page of Pods is
/// held fully decoded (before [`model::strip_pod`]) together with its
/// response body, ~15 MB at 500 pods as the kubelet leaves them, which at
/// 10k Services × 10 pods is a good part of the controller's peak memory.
const LIST_PAGE: u32 = 100;

fn wc() -> watcher::Config {
    watcher::Config::default()
        .any_semantic()
        .page_size(LIST_PAGE)
}

/// One controller lifetime (a leadership term, or the whole run): fresh
/// caches, so nothing carries over from a term in which another wrote.
async fn run_term(client: Client, settings: Settings, stop: CancellationToken) {
    let (svc_reader, svc_writer) = reflector::store();
    // One table of shared strings and label sets for every cache.
    let tables = SharedTables::default();
    let (pods_cache, mut feed_pods) = shared(PodFiling {
        shared: tables.clone(),
    });
    let (slices_cache, mut feed_slices) = shared(SliceFiling {
        shared: tables.clone(),
    });
    let (service_records, mut feed_services) = shared(ServiceFiling {
        shared: tables.clone(),
    });
    let (ep_cache, mut feed_endpoints) = shared(EndpointsFiling {
        shared: tables.clone(),
    });
    let (node_zones, mut feed_nodes) = shared(NodeFiling {
        shared: tables.clone(),
    });
    let (gone_tx, gone_rx) = mpsc::unbounded::<SvcRef>();

    // Records first, then the store (of identities only) that triggers syncs.
    let services = watcher(Api::<Service>::all(client.clone()), wc())
        .default_backoff()
        .inspect_ok(move |ev| feed_services(ev))
        .map_ok(identity_event)
        .reflect(svc_writer)
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(svc) = ev {
                let _ = gone_tx.unbounded_send(ObjectRef::from_obj(svc));
            }
        })
        .applied_objects();
    let pods = watcher(Api::<Pod>::all(client.clone()), wc())
        .default_backoff()
        .modify(model::strip_pod)
        .inspect_ok(move |ev| feed_pods(ev))
        .touched_objects();
    let slices = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        wc().labels(&format!(
            "{MANAGED_BY_LABEL} in ({MANAGED_BY},{MIRROR_MANAGED_BY})"
        )),
    )
    .default_backoff()
    .modify(model::strip_managed_fields)
    .inspect_ok(move |ev| feed_slices(ev))
    .touched_objects();
    let endpoints = watcher(Api::<Endpoints>::all(client.clone()), wc())
        .default_backoff()
        .modify(model::strip_managed_fields)
        .inspect_ok(move |ev| feed_endpoints(ev))
        .touched_objects();
    let nodes = watcher(Api::<Node>::all(client.clone()), wc())
        .default_backoff()
        .modify(model::strip_node)
        .inspect_ok(move |ev| feed_nodes(ev))
        .applied_objects()
        .predicate_filter(predicates::labels, PredicateConfig::default());

    let ctx = Arc::new(Ctx {
        client,
        services: svc_reader.clone(),
        pods: pods_cache,
        slices: slices_cache,
        service_records,
        endpoints: ep_cache,
        nodes: node_zones,
        opts: PlanOptions {
            max_endpoints_per_slice: settings.max_endpoints_per_slice,
            ..PlanOptions::default()
        },
        written: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        triggers: Mutex::new(TriggerTimes::default()),
        metrics: settings.metrics.clone(),
        synced: tokio::sync::OnceCell::new(),
    });

    let (for_pods, for_nodes) = (ctx.clone(), ctx.clone());
    let done = ctx.clone();
    // Cleanups run beside the controller stream, never inside its `for_each`:
    // they wait for the stores, which only fill while that stream is polled.
    let cleanups = TaskTracker::new();
    let (tracker, term) = (cleanups.clone(), stop.clone());
    Controller::for_stream(services, svc_reader)
        .with_config(controller::Config::default().concurrency(settings.concurrency.max(1)))
        .watches_stream(pods, move |pod: Pod| {
            let labels = pod.labels();
            let has = |k: &str, v: &str| labels.get(k).is_some_and(|l| l == v);
            services_selecting(&for_pods, &pod.namespace().unwrap_or_default(), &has)
        })
        .watches_stream(slices, |slice: EndpointSlice| {
            let name = slice.labels().get(SERVICE_NAME_LABEL).cloned();
            let ns = slice.namespace().unwrap_or_default();
            name.map(|n| ObjectRef::new(&n).within(&ns))
        })
        .watches_stream(endpoints, |ep: Endpoints| {
            Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default()))
        })
        .watches_stream(nodes, move |node: Node| {
            let name = node.name_any();
            let pods = for_nodes.pods.read();
            pods.all()
                .filter(|(_, p)| p.node_name() == Some(name.as_str()))
                .flat_map(|(id, p)| {
                    let ns = id.split_once('/').map_or("", |(ns, _)| ns);
                    let has = |k: &str, v: &str| record::label(p.labels(), k) == Some(v);
                    services_selecting(&for_nodes, ns, &has)
                })
                .collect::<Vec<_>>()
        })
        .reconcile_on(gone_rx)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            match res {
                Ok(_) => {}
                Err(controller::Error::ObjectNotFound(r)) => {
                    let key = SvcRef::new(&r.name)
                        .within(r.namespace.as_deref().unwrap_or_default());
                    let (done, term) = (done.clone(), term.clone());
                    tracker.spawn(async move {
                        tokio::select! {
                            () = term.cancelled() => {}
                            res = cleanup(&done, &key) => if let Err(e) = res {
                                tracing::warn!(service = %key, error = %e, "deleting a gone Service's endpoints");
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "endpoints sync"),
            }
            std::future::ready(())
        })
        .await;
    cleanups.close();
    cleanups.wait().await;
}

/// The Services in namespace `ns` whose selector matches labels for which
/// `has(key, value)` holds.
fn services_selecting(ctx: &Ctx, ns: &str, has: &dyn Fn(&str, &str) -> bool) -> Vec<SvcRef> {
    ctx.service_records.read().scan(ns, |id, rec| {
        let rec = rec.as_ref().ok()?;
        rec.selects(has)
            .then(|| ObjectRef::new(name_of(id)).within(ns))
    })
}

async fn ready(ctx: &Ctx) -> Result<(), SyncError> {
    let gone = |_| SyncError::CacheGone;
    let all = || async {
        ctx.services.wait_until_ready().await.map_err(gone)?;
        for mut flag in [
            ctx.pods.ready.clone(),
            ctx.slices.ready.clone(),
            ctx.service_records.ready.clone(),
            ctx.endpoints.ready.clone(),
            ctx.nodes.ready.clone(),
        ] {
            flag.wait_for(|r| *r)
                .await
                .map_err(|_| SyncError::CacheGone)?;
        }
        Ok(())
    };
    ctx.synced.get_or_try_init(all).await.map(|_| ())
}

fn slice_rv(ctx: &Ctx, ns: &str, name: &str) -> Option<String> {
    let slice = ctx.slices.read().get(&format!("{ns}/{name}"))?;
    slice.meta().resource_version().map(str::to_owned)
}

fn endpoints_rv(ctx: &Ctx, ns: &str, name: &str) -> Option<String> {
    let ep = ctx.endpoints.read().get_in(ns, &format!("{ns}/{name}"))?;
    ep.meta().resource_version().map(str::to_owned)
}

/// True when the stores show our last writes for `key` (and forgets them).
fn cache_caught_up(ctx: &Ctx, key: &SvcRef) -> bool {
    let ns = key.namespace.clone().unwrap_or_default();
    let mut written = ctx.written.lock().unwrap_or_else(|p| p.into_inner());
    let Some((at, w)) = written.get(key) else {
        return true;
    };
    let fresh = at.elapsed() > TRUST_WRITES_FOR
        || apply::cache_fresh(
            w,
            |name| slice_rv(ctx, &ns, name),
            endpoints_rv(ctx, &ns, &key.name),
        );
    if fresh {
        written.remove(key);
    }
    fresh
}

async fn reconcile(svc: Arc<SvcMeta>, ctx: Arc<Ctx>) -> Result<Action, SyncError> {
    ready(&ctx).await?;
    let key = ObjectRef::from_obj(svc.as_ref());
    if !cache_caught_up(&ctx, &key) {
        // Our own writes are on their way into the stores; their watch
        // events trigger the next sync (the requeue is only a backstop).
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let ns = key.namespace.clone().unwrap_or_default();
    let entry = ctx
        .service_records
        .read()
        .get_in(&ns, &format!("{ns}/{}", key.name));
    let model_svc = match entry.as_deref() {
        // Deleted meanwhile: the delete brings the cleanup.
        None => return Ok(Action::await_change()),
        Some(Ok(rec)) => rec.to_model(&ns, &key.name),
        Some(Err(e)) => {
            tracing::warn!(service = %key, error = %e, "cannot sync this Service");
            ctx.metrics.errors.with_label_values(&["invalid"]).inc();
            return Ok(Action::await_change());
        }
    };
    let started = Instant::now();
    let result = sync(&ctx, &key, &model_svc).await;
    ctx.metrics
        .sync_duration
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "success" } else { "error" };
    ctx.metrics.syncs.with_label_values(&[outcome]).inc();
    result?;
    ctx.failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    Ok(Action::await_change())
}

/// Plan and write one Service: its slices from pods (selector) or mirrored
/// from its Endpoints (no selector), and its Endpoints (selector only).
async fn sync(ctx: &Ctx, key: &SvcRef, svc: &model::Service) -> Result<(), SyncError> {
    let ns = svc.namespace.clone();
    // Only the pods this Service selects (its namespace's, from the cache).
    let pods: Vec<model::Pod> = ctx.pods.read().scan(&ns, |id, p| {
        p.selected_by(svc).then(|| p.to_model(&ns, name_of(id)))
    });
    // The zones of these pods' nodes (all the planner looks up).
    let zones: NodeZones = {
        let nodes = ctx.nodes.read();
        pods.iter()
            .filter_map(|p| p.node_name.as_deref())
            .filter_map(|n| Some((n.to_owned(), nodes.get_in(NODES, n)?.to_string())))
            .collect()
    };
    let existing: Vec<EndpointSlice> = ctx
        .slices
        .read()
        .scan(&format!("{ns}/{}", svc.name), |id, s| {
            Some(s.to_api(&ns, name_of(id)))
        });
    let current_ep = ctx
        .endpoints
        .read()
        .get_in(&ns, &format!("{ns}/{}", svc.name))
        .map(|e| e.to_api(&ns, &svc.name));
    // Mirroring reads hand-made Endpoints whole; the cache keeps only a
    // digest of their subsets, so a selector-less Service's is fetched.
    let hand_made = match (&svc.selector, &current_ep) {
        (None, Some(_)) => {
            Api::<Endpoints>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&svc.name)
                .await?
        }
        _ => None,
    };

    let (trigger_time, observation) = ctx
        .triggers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(svc, pods.iter().filter(|p| plan::selects(svc, p)));
    let trigger_time = trigger_time.map(trigger::format);
    let opts = PlanOptions {
        trigger_time: trigger_time.clone(),
        ..ctx.opts.clone()
    };
    let mut slice_plan = plan::plan(svc, &pods, &zones, &existing, &opts);
    // Hand-made Endpoints carry their own trigger time, which mirroring keeps.
    let mirror_opts = PlanOptions {
        trigger_time: hand_made
            .as_ref()
            .and_then(|e| e.annotations().get(TRIGGER_TIME_ANNOTATION).cloned()),
        ..PlanOptions::mirroring(&ctx.opts)
    };
    match plan_mirror(svc, hand_made.as_ref(), &existing, &mirror_opts) {
        Ok(m) => slice_plan.merge(m),
        Err(e) => {
            tracing::warn!(service = %key, error = %e, "cannot mirror this Service's Endpoints")
        }
    }
    let ep_write = plan_endpoints_by_digest(
        svc,
        &pods,
        current_ep.as_ref().map(|(meta, digest)| (meta, *digest)),
        trigger_time.as_deref(),
    );
    let desired = slice_plan.endpoints_after(&existing, &[MANAGED_BY, MIRROR_MANAGED_BY]);

    let mut written = Written::default();
    let result = async {
        apply::apply_plan(&ctx.client, &ns, &slice_plan, &mut written).await?;
        apply::apply_endpoints(&ctx.client, &ns, &ep_write, &mut written).await
    }
    .await;
    ctx.metrics.record_changes(&written.changes);
    if !written.is_empty() {
        ctx.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (Instant::now(), written));
    }
    result?;
    ctx.triggers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .commit(observation);
    ctx.metrics.set_desired(&ns, &svc.name, Some(desired));
    Ok(())
}

/// Retry after 100 ms, doubling per consecutive failure up to 30 s.
fn error_policy(svc: Arc<SvcMeta>, err: &SyncError, ctx: Arc<Ctx>) -> Action {
    let key = ObjectRef::from_obj(svc.as_ref());
    let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let n = failures.entry(key.clone()).or_insert(0);
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    let reason = match err {
        SyncError::Api(kube::Error::Api(s)) if s.code == 409 => "conflict",
        SyncError::Api(_) => "api",
        SyncError::CacheGone => "cache",
    };
    ctx.metrics.errors.with_label_values(&[reason]).inc();
    tracing::warn!(service = %key, error = %err, retry_in = ?delay, "endpoints sync failed");
    Action::requeue(delay)
}

/// The retry delay after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.saturating_sub(1).min(20));
    Duration::from_millis(ms.min(30_000))
}

/// The Service `key` is gone: delete our slices for it and its Endpoints.
/// Only once the Service cache is synced and still lacks it (it may have
/// been re-created meanwhile).
async fn cleanup(ctx: &Ctx, key: &SvcRef) -> Result<(), SyncError> {
    ready(ctx).await?;
    if ctx.services.get(key).is_some() {
        return Ok(());
    }
    let ns = key.namespace.clone().unwrap_or_default();
    let slices: Vec<String> = ctx
        .slices
        .read()
        .scan(&format!("{ns}/{}", key.name), |id, s| {
            let by = s.meta().label(MANAGED_BY_LABEL);
            (by == Some(MANAGED_BY) || by == Some(MIRROR_MANAGED_BY))
                .then(|| name_of(id).to_owned())
        });
    let endpoints = ctx
        .endpoints
        .read()
        .get_in(&ns, &format!("{ns}/{}", key.name))
        .map(|_| key.name.clone());
    ctx.triggers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .forget(&ns, &key.name);
    ctx.metrics.set_desired(&ns, &key.name, None);
    if slices.is_empty() && endpoints.is_none() {
        return Ok(());
    }
    let mut last = None;
    for attempt in 1..=5 {
        match apply::delete_all(&ctx.client, &ns, &slices, endpoints.as_deref()).await {
            Ok(()) => {
                let mut changes = vec![(Object::Slice, Change::Delete); slices.len()];
                changes.extend(
                    endpoints
                        .iter()
                        .map(|_| (Object::Endpoints, Change::Delete)),
                );
                ctx.metrics.record_changes(&changes);
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
    Err(last.map_or(SyncError::CacheGone, SyncError::Api))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_and_caps() {
        let cases = [
            (0, 100),
            (1, 100),
            (2, 200),
            (3, 400),
            (9, 25_600),
            (10, 30_000),
            (u32::MAX, 30_000),
        ];
        for (n, ms) in cases {
            assert_eq!(backoff(n), Duration::from_millis(ms), "after {n} failures");
        }
    }
}
