//! One sync of the proxy's table, in either of two ways, and what follows
//! every sync (metrics, programming latency, conntrack cleanup):
//!
//! - `full`: from a snapshot of every store ([`super::shell`]), through
//!   [`Table::next`] — at start, every `--sync-period` (a full script that
//!   repairs drift), after a failure, and after a relist or a Node change
//!   (then only the difference is written);
//! - `partial`: only the Services the watch events named
//!   ([`super::changes`]), through [`Table::update`] in place, written to a
//!   running `nft -i` ([`super::session`]) — the usual sync after an
//!   endpoint change, whose cost does not grow with the number of Services.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Service as ApiService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};

use super::changes::Changes;
use super::conntrack;
use super::healthcheck::{self, Check};
use super::model::{self, Slice};
use super::nft::{self, NftError};
use super::render::{NodePortAddresses, UdpFlows};
use super::select::Node;
use super::session::Session;
use super::shell::{NodePortFlag, Settings, Snapshot, local_addresses};
use super::table::{Change, Table};

/// The sync loop's memory between syncs.
pub struct State {
    /// What the kernel holds, as we last wrote it (`None`: unknown, full sync next).
    pub written: Option<Table>,
    /// When the last full script was written.
    pub last_full: Instant,
    /// The node as the last full sync saw it (a Node change makes the next
    /// sync a full one).
    node: Node,
    /// Trigger time last seen per slice, for the programming-latency metric.
    triggers: HashMap<String, String>,
    conntrack_missing_logged: bool,
    /// The running `nft -i` partial syncs write to (started on first use).
    session: Option<Session>,
}

impl Default for State {
    /// Nothing written yet.
    fn default() -> Self {
        State {
            written: None,
            last_full: Instant::now(),
            node: Node::default(),
            triggers: HashMap::new(),
            conntrack_missing_logged: false,
            session: None,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// A full sync from `snap`; on success, what the health-check node ports
/// answer now.
pub(super) async fn full(
    settings: &Settings,
    snap: Snapshot,
    state: &mut State,
) -> Result<BTreeMap<u16, Check>, NftError> {
    let started = Instant::now();
    let mut opts = settings.opts.clone();
    opts.nodeport_addresses = match &settings.nodeports {
        NodePortFlag::AllLocal => NodePortAddresses::AllLocal,
        NodePortFlag::Primary if snap.primary.is_empty() => NodePortAddresses::AllLocal,
        NodePortFlag::Primary => NodePortAddresses::Ips(snap.primary.clone()),
        NodePortFlag::Cidrs(cidrs) => NodePortAddresses::Ips(local_addresses(cidrs)),
    };
    let grouped = model::group(snap.slices.iter().cloned());
    let next = Table::next(
        state.written.as_ref(),
        &snap.services,
        &grouped,
        &snap.node,
        &opts,
    );
    let due = state.last_full.elapsed() >= settings.sync_period;
    let partial = match &state.written {
        Some(old) if !due => old.diff_script(&next),
        _ => None,
    };
    let full = partial.is_none();
    let script = match partial {
        Some(script) => script,
        None => next
            .assemble()
            .ruleset
            .full_script(&nft::existing(&settings.nft, &opts.table).await?),
    };
    nft::apply(&settings.nft, &script).await?;
    let udp = state
        .written
        .as_ref()
        .map(|old| old.udp_changes(&next))
        .unwrap_or_default();
    let first = state.written.is_none() && state.triggers.is_empty();
    if let Some(live) = &snap.live_slice_keys {
        state.triggers.retain(|k, _| live.contains(k));
    }
    state.node = snap.node;
    state.written = Some(next);
    after(
        settings,
        state,
        Done {
            full,
            started,
            fresh: &snap.fresh_slices,
            first,
            udp,
        },
    )
    .await;
    Ok(checks(state))
}

/// A sync of only `services` (keys), read from the stores and the slice
/// index in `changes`; the table must have been written.
pub(super) async fn partial(
    settings: &Settings,
    stores: (&Store<ApiService>, &Store<EndpointSlice>),
    changes: &Mutex<Changes>,
    services: BTreeSet<String>,
    state: &mut State,
) -> Result<BTreeMap<u16, Check>, NftError> {
    let started = Instant::now();
    let mut list: Vec<Change> = Vec::with_capacity(services.len());
    let mut fresh = Vec::new();
    for key in services {
        let Some((ns, name)) = key.split_once('/') else {
            continue;
        };
        let service = stores
            .0
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|s| match model::Service::from_api(&s) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "service left out of the proxy rules");
                    None
                }
            });
        let slice_keys: Vec<String> = changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slices_of(&key)
            .cloned()
            .collect();
        let mut slices = Vec::new();
        for sk in slice_keys {
            let Some((sns, sname)) = sk.split_once('/') else {
                continue;
            };
            let Some(api) = stores.1.get(&ObjectRef::new(sname).within(sns)) else {
                continue;
            };
            match Slice::from_api(&api) {
                Ok(Some(s)) if s.namespace == ns && s.service == name => {
                    let s = Arc::new(s);
                    fresh.push((sk, Arc::clone(&s)));
                    slices.push(s);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "endpointslice left out of the proxy rules"),
            }
        }
        list.push((key, service.map(|s| (Arc::new(s), slices))));
    }
    let node = state.node.clone();
    let Some(table) = state.written.as_mut() else {
        return Err(NftError::Failed("partial sync before a full one".into()));
    };
    let up = table.update(list, &node);
    if !up.script.is_empty() {
        state
            .session
            .get_or_insert_with(|| Session::new(settings.nft.clone()))
            .apply(&up.script)
            .await?;
    }
    after(
        settings,
        state,
        Done {
            full: false,
            started,
            fresh: &fresh,
            first: false,
            udp: (up.udp_before, up.udp_after),
        },
    )
    .await;
    Ok(checks(state))
}

/// What the health-check node ports answer for the written table.
fn checks(state: &State) -> BTreeMap<u16, Check> {
    state
        .written
        .as_ref()
        .map(|t| healthcheck::ports(t.services(), &state.node))
        .unwrap_or_default()
}

/// What a sync that was written hands to [`after`].
struct Done<'a> {
    full: bool,
    started: Instant,
    /// Slices converted for this sync (their trigger times may have moved).
    fresh: &'a [(String, Arc<Slice>)],
    /// The first sync: trigger times are recorded, not measured.
    first: bool,
    /// UDP flows of the changed Services, before and after.
    udp: (UdpFlows, UdpFlows),
}

/// Metrics, programming latency and conntrack cleanup after a sync.
async fn after(settings: &Settings, state: &mut State, done: Done<'_>) {
    let m = &settings.metrics;
    m.sync_duration
        .observe(done.started.elapsed().as_secs_f64());
    m.last_sync.set(unix_now());
    m.syncs
        .with_label_values(&[if done.full { "full" } else { "partial" }])
        .inc();
    let size = state.written.as_ref().map(Table::size).unwrap_or_default();
    for (what, n) in [
        ("chains", size.chains),
        ("rules", size.rules),
        ("elements", size.elements),
    ] {
        m.objects.with_label_values(&[what]).set(n as i64);
    }
    if done.full {
        state.last_full = Instant::now();
    }

    // Programming latency of slices whose trigger time moved (not for what
    // was already there when the proxy started).
    for (key, slice) in done.fresh {
        let Some(t) = &slice.trigger_time else {
            continue;
        };
        if state.triggers.get(key) == Some(t) {
            continue;
        }
        state.triggers.insert(key.clone(), t.clone());
        if done.first {
            continue;
        }
        if let Ok(ts) = t.parse::<k8s_openapi::jiff::Timestamp>() {
            let secs = unix_now() - ts.as_millisecond() as f64 / 1000.0;
            if secs >= 0.0 {
                m.programming.observe(secs);
            }
        }
    }

    let flushes = conntrack::stale(&done.udp.0, &done.udp.1);
    if flushes.is_empty() {
        return;
    }
    let failed = conntrack::delete(&settings.conntrack, &flushes).await;
    let ok = flushes.len() - failed.len();
    m.conntrack.with_label_values(&["ok"]).inc_by(ok as u64);
    m.conntrack
        .with_label_values(&["error"])
        .inc_by(failed.len() as u64);
    for (f, e) in failed {
        if e.contains("No such file") || e.contains("not found") {
            if !state.conntrack_missing_logged {
                tracing::warn!("conntrack tool missing: stale UDP flows are not deleted");
                state.conntrack_missing_logged = true;
            }
        } else {
            tracing::warn!(flush = ?f, error = %e, "deleting stale UDP conntrack entries");
        }
    }
}
