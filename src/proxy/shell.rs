//! The I/O shell of `clusterdns proxy`: reflector stores of Services,
//! EndpointSlices and this Node; every watch event is recorded (which
//! Service it touched, [`super::changes`]) and wakes the sync loop. A sync
//! after ordinary changes re-renders only the touched Services and writes
//! the difference as one `nft` transaction (`sync::partial`); at
//! start, after a relist or a Node change, and every `--sync-period` (and
//! after any failure) the table is rendered from all the stores, the
//! periodic one rewriting it from what the kernel holds to repair drift
//! (`sync::full`). Syncs are at least `--min-sync-period` apart
//! (changes arriving meanwhile are batched). After each sync, stale UDP
//! conntrack entries are deleted and the health-check node ports of
//! `externalTrafficPolicy: Local` Services are (re)bound. Rules stay in
//! place when the proxy stops, so traffic keeps flowing across restarts, as
//! with kube-proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node as ApiNode, Service as ApiService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::changes::Changes;
use super::health_ports::HealthPorts;
use super::metrics::Metrics;
use super::model::{self, Slice};
use super::nft::Tool;
use super::render::Options;
use super::select::Node;
use super::sync::{self, State};

/// The zone label of Nodes.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// `--nodeport-addresses`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NodePortFlag {
    /// Unset: every local address but loopback.
    #[default]
    AllLocal,
    /// `primary`: the Node's InternalIPs.
    Primary,
    /// CIDRs: the local addresses inside them.
    Cidrs(Vec<IpNet>),
}

/// The knobs of the shell.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name (`--hostname-override` or the host name).
    pub node: String,
    /// Render options (table, cluster CIDRs, masquerade-all).
    pub opts: Options,
    /// `--nodeport-addresses`.
    pub nodeports: NodePortFlag,
    /// `--sync-period`: the full resync interval.
    pub sync_period: Duration,
    /// `--min-sync-period`: the least time between two syncs.
    pub min_sync_period: Duration,
    /// Where the proxy counts what it does.
    pub metrics: Metrics,
    /// How to run `nft`.
    pub nft: Tool,
    /// How to run `conntrack`.
    pub conntrack: Tool,
}

/// What `/healthz` reports: healthy while the last successful sync is
/// younger than twice the sync period (counting from start before the first).
#[derive(Debug)]
pub struct Health {
    window: Duration,
    last_ok: Mutex<Instant>,
}

impl Health {
    /// A fresh health record; `sync_period` sets the window.
    pub fn new(sync_period: Duration) -> Health {
        Health {
            window: sync_period.saturating_mul(2),
            last_ok: Mutex::new(Instant::now()),
        }
    }

    fn synced(&self) {
        *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Time since the last successful sync, and whether that is healthy.
    pub fn status(&self) -> (Duration, bool) {
        let age = self
            .last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        (age, age <= self.window)
    }
}

fn wc() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

/// Drive `stream` (keeping its store fed): tell `on_event` about every
/// event (after the reflector stored it) and wake `notify`.
fn drive<S, K>(
    stream: S,
    on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
    notify: Arc<Notify>,
    stop: CancellationToken,
) where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    K: Send,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                item = stream.next() => match item {
                    None => return,
                    Some(Ok(event)) => {
                        on_event(&event);
                        notify.notify_one();
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "proxy watch"),
                },
            }
        }
    });
}

/// The Service (`namespace/name`) a slice belongs to, by its label.
fn owner(slice: &EndpointSlice) -> Option<String> {
    let svc = slice.labels().get(model::SERVICE_NAME_LABEL)?;
    Some(format!("{}/{svc}", slice.namespace().unwrap_or_default()))
}

/// Record a watch event in `changes`: `one` for an object stored or
/// deleted, everything for a relist.
fn record<K>(
    changes: &Mutex<Changes>,
    event: &watcher::Event<K>,
    one: impl FnOnce(&mut Changes, &K, bool),
) {
    let mut c = changes.lock().unwrap_or_else(|p| p.into_inner());
    match event {
        watcher::Event::Apply(obj) => one(&mut c, obj, false),
        watcher::Event::Delete(obj) => one(&mut c, obj, true),
        watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone => {
            c.everything()
        }
    }
}

pub(super) struct Stores {
    services: Store<ApiService>,
    slices: Store<EndpointSlice>,
    nodes: Store<ApiNode>,
}

impl Stores {
    async fn ready(&self) -> bool {
        self.services.wait_until_ready().await.is_ok()
            && self.slices.wait_until_ready().await.is_ok()
            && self.nodes.wait_until_ready().await.is_ok()
    }
}

pub(super) fn local_addresses(cidrs: &[IpNet]) -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| cidrs.iter().any(|c| c.contains(ip)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing local addresses for --nodeport-addresses");
            Vec::new()
        }
    }
}

/// Everything a full sync needs from the stores.
pub(super) struct Snapshot {
    pub(super) services: Vec<Arc<model::Service>>,
    pub(super) slices: Vec<Arc<Slice>>,
    /// Slices converted for this sync (new or changed since the last one),
    /// by `namespace/name`: the ones whose trigger time may have moved.
    pub(super) fresh_slices: Vec<(String, Arc<Slice>)>,
    /// Every slice's `namespace/name`, when asked for (full syncs: to
    /// forget deleted slices' trigger times).
    pub(super) live_slice_keys: Option<std::collections::HashSet<String>>,
    pub(super) node: Node,
    pub(super) primary: Vec<IpAddr>,
}

/// API objects converted to the proxy's models, kept between syncs. A
/// reflector store keeps an unchanged object in the same `Arc` and puts a
/// changed one in a new `Arc`, so the memo is keyed by that pointer (and
/// holds the `Arc`, so no other object can take the address while it is
/// remembered): a sync converts (and warns about a bad object) only what a
/// watch event replaced, and the rest costs a hash lookup. At 10k Services
/// converting everything cost ~37 ms per sync, and keying by
/// `namespace/name` strings still ~10 ms.
struct Memo<K, T> {
    by_ptr: HashMap<usize, (Arc<K>, Option<Arc<T>>)>,
}

impl<K, T> Memo<K, T> {
    fn new() -> Self {
        Memo {
            by_ptr: HashMap::new(),
        }
    }

    /// The models of `objects` (those that convert), and the objects
    /// converted now (not remembered) with their models.
    #[allow(clippy::type_complexity)]
    fn convert(
        &mut self,
        objects: Vec<Arc<K>>,
        mut convert: impl FnMut(&K) -> Option<T>,
    ) -> (Vec<Arc<T>>, Vec<(Arc<K>, Arc<T>)>) {
        let mut next = HashMap::with_capacity(objects.len());
        let mut models = Vec::with_capacity(objects.len());
        let mut fresh = Vec::new();
        for obj in objects {
            let ptr = Arc::as_ptr(&obj) as usize;
            let model = match self.by_ptr.remove(&ptr) {
                Some((_, model)) => model,
                None => {
                    let model = convert(&obj).map(Arc::new);
                    if let Some(m) = &model {
                        fresh.push((Arc::clone(&obj), Arc::clone(m)));
                    }
                    model
                }
            };
            models.extend(model.iter().cloned());
            next.insert(ptr, (obj, model));
        }
        self.by_ptr = next;
        (models, fresh)
    }
}

fn snapshot(
    stores: &Stores,
    node_name: &str,
    services_memo: &mut Memo<ApiService, model::Service>,
    slices_memo: &mut Memo<EndpointSlice, Slice>,
    with_keys: bool,
) -> Snapshot {
    let (mut services, _) =
        services_memo.convert(
            stores.services.state(),
            |s| match model::Service::from_api(s) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "service left out of the proxy rules");
                    None
                }
            },
        );
    // A stable order, whatever the store's.
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let api_slices = stores.slices.state();
    let live_slice_keys =
        with_keys.then(|| api_slices.iter().map(|s| object_key(s.as_ref())).collect());
    let (slices, fresh) = slices_memo.convert(api_slices, |s| match Slice::from_api(s) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "endpointslice left out of the proxy rules");
            None
        }
    });
    let fresh_slices = fresh
        .into_iter()
        .map(|(api, model)| (object_key(api.as_ref()), model))
        .collect();
    let api_node = stores
        .nodes
        .state()
        .into_iter()
        .find(|n| n.name_any() == node_name);
    let zone = api_node
        .as_ref()
        .and_then(|n| n.labels().get(ZONE_LABEL).cloned());
    let primary = api_node
        .as_ref()
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    Snapshot {
        services,
        slices,
        fresh_slices,
        live_slice_keys,
        node: Node {
            name: node_name.to_owned(),
            zone,
        },
        primary,
    }
}

/// `namespace/name` of an API object.
fn object_key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Watch and sync until `stop`. Fails only when nft cannot run at all.
pub async fn run(client: Client, settings: Settings, health: Arc<Health>, stop: CancellationToken) {
    let notify = Arc::new(Notify::new());
    let changes = Arc::new(Mutex::new(Changes::new()));
    let (svc_r, svc_w) = reflector::store();
    let (slice_r, slice_w) = reflector::store();
    let (node_r, node_w) = reflector::store();
    let watch_stop = stop.child_token();
    let c = Arc::clone(&changes);
    drive(
        watcher(Api::<ApiService>::all(client.clone()), wc())
            .default_backoff()
            .reflect(svc_w),
        move |e: &watcher::Event<ApiService>| {
            record(&c, e, |c, s, _| c.service(object_key(s)));
        },
        notify.clone(),
        watch_stop.clone(),
    );
    let c = Arc::clone(&changes);
    drive(
        watcher(Api::<EndpointSlice>::all(client.clone()), wc())
            .default_backoff()
            .reflect(slice_w),
        move |e: &watcher::Event<EndpointSlice>| {
            record(&c, e, |c, s, deleted| {
                if deleted {
                    c.slice_deleted(&object_key(s));
                } else {
                    c.slice(object_key(s), owner(s));
                }
            });
        },
        notify.clone(),
        watch_stop.clone(),
    );
    let c = Arc::clone(&changes);
    drive(
        watcher(
            Api::<ApiNode>::all(client),
            wc().fields(&format!("metadata.name={}", settings.node)),
        )
        .default_backoff()
        .reflect(node_w),
        move |_: &watcher::Event<ApiNode>| {
            c.lock().unwrap_or_else(|p| p.into_inner()).everything();
        },
        notify.clone(),
        watch_stop.clone(),
    );
    let stores = Stores {
        services: svc_r,
        slices: slice_r,
        nodes: node_r,
    };
    tokio::select! {
        () = stop.cancelled() => return,
        ok = stores.ready() => if !ok { return },
    }
    let mut state = State::default();
    let mut health_ports = HealthPorts::new(watch_stop.clone());
    let (mut services_memo, mut slices_memo) = (Memo::new(), Memo::new());
    let mut last_start: Option<Instant> = None;
    loop {
        if let Some(at) = last_start {
            // Rate limit, then wait for a change or the resync.
            let earliest = at + settings.min_sync_period;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(earliest.into()) => {}
            }
            let resync = state.last_full + settings.sync_period;
            if state.written.is_some() {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = notify.notified() => {}
                    () = tokio::time::sleep_until(resync.into()) => {}
                }
            }
        }
        let taken = changes.lock().unwrap_or_else(|p| p.into_inner()).take();
        let full_due = state.written.is_none() || state.last_full.elapsed() >= settings.sync_period;
        if !(taken.all || full_due) && taken.services.is_empty() {
            continue;
        }
        last_start = Some(Instant::now());
        let result = if taken.all || full_due {
            {
                // The slice index from the store, under the lock the watch
                // tasks record events with: no event falls between.
                let mut c = changes.lock().unwrap_or_else(|p| p.into_inner());
                c.reindex(
                    stores
                        .slices
                        .state()
                        .iter()
                        .map(|s| (object_key(s.as_ref()), owner(s))),
                );
            }
            let snap = snapshot(
                &stores,
                &settings.node,
                &mut services_memo,
                &mut slices_memo,
                full_due,
            );
            sync::full(&settings, snap, &mut state).await
        } else {
            sync::partial(
                &settings,
                (&stores.services, &stores.slices),
                &changes,
                taken.services,
                &mut state,
            )
            .await
        };
        match result {
            Ok(checks) => {
                health.synced();
                health_ports.update(checks).await;
            }
            Err(e) => {
                settings.metrics.errors.inc();
                tracing::warn!(error = %e, "nftables sync failed; the next one is a full sync");
                state.written = None;
            }
        }
    }
    watch_stop.cancel();
}

#[cfg(test)]
mod tests {
    use super::{Health, Memo};
    use k8s_openapi::api::core::v1::Service;
    use std::cell::Cell;
    use std::sync::Arc;

    fn svc(name: &str, rv: &str) -> Arc<Service> {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("default".into());
        s.metadata.resource_version = Some(rv.into());
        Arc::new(s)
    }

    #[test]
    fn memo_converts_only_objects_the_store_replaced() {
        let calls = Cell::new(0);
        let conv = |s: &Service| {
            calls.set(calls.get() + 1);
            s.metadata.resource_version.clone()
        };
        let (a, b1) = (svc("a", "1"), svc("b", "1"));
        let mut memo = Memo::new();
        let (got, fresh) = memo.convert(vec![a.clone(), b1.clone()], conv);
        assert_eq!((got.len(), fresh.len(), calls.get()), (2, 2, 2));
        // The store replaced b (a watch event); a is the same Arc.
        let b2 = svc("b", "2");
        let (got, fresh) = memo.convert(vec![a.clone(), b2.clone()], conv);
        assert_eq!(calls.get(), 3, "only b again");
        assert!(got.iter().any(|m| m.as_str() == "2") && got.len() == 2);
        assert_eq!(fresh.len(), 1);
        assert!(Arc::ptr_eq(&fresh[0].0, &b2));
        // a deleted: forgotten; b kept without converting.
        let (got, fresh) = memo.convert(vec![b2.clone()], conv);
        assert_eq!((calls.get(), got.len(), fresh.len()), (3, 1, 0));
        // An object that does not convert is remembered too (warned once).
        let conv_none = |_: &Service| {
            calls.set(calls.get() + 1);
            None::<String>
        };
        let c = svc("c", "1");
        let mut memo = Memo::new();
        let _ = memo.convert(vec![c.clone()], conv_none);
        let (got, _) = memo.convert(vec![c.clone()], conv_none);
        assert_eq!((calls.get(), got.len()), (4, 0));
    }

    use std::time::Duration;

    #[test]
    fn health_goes_stale_after_two_sync_periods_and_recovers_on_a_sync() {
        let h = Health::new(Duration::from_millis(20));
        assert!(h.status().1, "healthy at start");
        std::thread::sleep(Duration::from_millis(60));
        let (age, ok) = h.status();
        assert!(!ok, "stale after {age:?}");
        h.synced();
        assert!(h.status().1, "healthy after a sync");
    }
}
