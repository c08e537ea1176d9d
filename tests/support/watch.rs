//! Watch streams: newline-delimited JSON watch events over a chunked response,
//! the way the Kubernetes API server sends them and kube-rs reads them.
//!
//! Invariants: a watcher sees its resource's events in resourceVersion order,
//! each once, filtered by namespace and selectors with the real server's
//! transitions (an object that starts matching is ADDED, one that stops matching
//! is DELETED); a BOOKMARK never carries a resourceVersion older than an event
//! already sent, nor newer than an event still to come. Armed event faults
//! (`support::faults`: a line that is not JSON, a stream cut mid-line) apply
//! to the next event sent, whichever watcher sends it.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::faults::Fault;
use super::http::{Shared, lock};
use super::resources::ResourceType;
use super::selector::Selectors;
use super::store::{ApiError, Event, EventKind, Subscription};

/// What one watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// The resource type watched.
    pub rt: &'static ResourceType,
    /// Only this namespace, for namespaced watch URLs.
    pub namespace: Option<String>,
    /// `labelSelector` and `fieldSelector`.
    pub selectors: Selectors,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial ADDED events with an
    /// `k8s.io/initial-events-end` bookmark.
    pub initial_events_end: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
}

impl WatchSpec {
    fn visible(&self, obj: &Value) -> bool {
        let in_ns = match &self.namespace {
            Some(ns) => obj["metadata"]["namespace"].as_str() == Some(ns.as_str()),
            None => true,
        };
        in_ns && self.selectors.matches(obj)
    }

    /// How this watcher sees an event, if at all: (type, object).
    fn view<'e>(&self, ev: &'e Event) -> Option<(&'static str, &'e Value)> {
        let old_visible = ev.old.as_ref().is_some_and(|o| self.visible(o));
        match ev.kind {
            EventKind::Added => self.visible(&ev.object).then_some(("ADDED", &ev.object)),
            EventKind::Modified => match (old_visible, self.visible(&ev.object)) {
                (true, true) => Some(("MODIFIED", &ev.object)),
                (false, true) => Some(("ADDED", &ev.object)),
                (true, false) => Some(("DELETED", &ev.object)),
                (false, false) => None,
            },
            EventKind::Deleted => {
                (old_visible || self.visible(&ev.object)).then_some(("DELETED", &ev.object))
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta}),
        )
    }
}

/// One watch event as a line of JSON.
pub fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// The single ERROR event a watch from an expired resourceVersion gets.
pub fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.status())
}

/// Send one event's line, with any armed event fault of this resource applied
/// first; false when the stream must end (client gone, or cut by a fault).
async fn emit(shared: &Shared, spec: &WatchSpec, tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> bool {
    let fault = lock(&shared.faults).take(spec.rt.plural, |f| {
        matches!(f, Fault::MalformedEvent | Fault::CutWatch)
    });
    match fault {
        Some(Fault::MalformedEvent) => {
            shared.log(format!("FAULT MalformedEvent {}", spec.rt.plural));
            let junk =
                Bytes::from_static(b"{\"type\": \"ADDED\", \"object\": {\"metadata\": ]]}\n");
            if tx.send(junk).await.is_err() {
                return false;
            }
        }
        Some(_) => {
            shared.log(format!("FAULT CutWatch {}", spec.rt.plural));
            let _ = tx.send(bytes.slice(..bytes.len() / 2)).await;
            return false;
        }
        None => {}
    }
    tx.send(bytes).await.is_ok()
}

/// Stream one watch into `tx` until the client goes away, the timeout passes,
/// `close_watches` / `stop` cancel it.
pub async fn run(
    shared: Arc<Shared>,
    spec: WatchSpec,
    mut sub: Subscription,
    tx: mpsc::Sender<Bytes>,
    cancel: [CancellationToken; 2],
) {
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let send_event = |ev: &Event| spec.view(ev).map(|(kind, obj)| line(kind, obj));
    for ev in &sub.initial {
        if let Some(bytes) = send_event(ev)
            && !emit(&shared, &spec, &tx, bytes).await
        {
            return;
        }
    }
    if spec.initial_events_end && tx.send(spec.bookmark(sub.rv, true)).await.is_err() {
        return;
    }
    let interval = || *lock(&shared.bookmark_interval);
    let mut next_bookmark = Instant::now() + interval();
    let far = Instant::now() + Duration::from_secs(86_400);
    loop {
        let bookmark_at = if spec.bookmarks { next_bookmark } else { far };
        tokio::select! {
            ev = sub.rx.recv() => {
                let Some(ev) = ev else { return };
                if let Some(bytes) = send_event(&ev) && !emit(&shared, &spec, &tx, bytes).await {
                    return;
                }
            }
            () = tokio::time::sleep_until(bookmark_at) => {
                // Under the store lock nothing new can be published, so after
                // draining, the bookmark's RV covers exactly what was sent.
                let (rv, pending) = {
                    let store = lock(&shared.store);
                    let mut pending = Vec::new();
                    while let Ok(ev) = sub.rx.try_recv() {
                        pending.push(ev);
                    }
                    (store.rv(), pending)
                };
                for ev in &pending {
                    if let Some(bytes) = send_event(ev) && !emit(&shared, &spec, &tx, bytes).await {
                        return;
                    }
                }
                if tx.send(spec.bookmark(rv, false)).await.is_err() {
                    return;
                }
                next_bookmark = Instant::now() + interval();
            }
            () = tokio::time::sleep_until(deadline.unwrap_or(far)) => return,
            () = cancel[0].cancelled() => return,
            () = cancel[1].cancelled() => return,
        }
    }
}
