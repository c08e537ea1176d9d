//! The object store behind the test API server: objects as JSON, one global
//! resourceVersion, an event history for watches and the live subscribers.
//!
//! Invariants: the resourceVersion only grows; every mutation gets the next
//! resourceVersion, is appended to the history and pushed to every subscriber
//! of its resource while the store lock is held, so a subscriber that took a
//! snapshot under the same lock sees every later event exactly once and in order.
//! A watch may resume from any resourceVersion at or above `floor`; older ones are
//! expired (410 Gone).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::resources::ResourceType;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed.
    Deleted,
}

/// One mutation, as recorded in the history and sent to subscribers.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the mutation.
    pub rv: u64,
    /// The resource type's plural.
    pub plural: &'static str,
    /// Added, modified or deleted.
    pub kind: EventKind,
    /// The object after the change (for a deletion: the last state, stamped with the deletion RV).
    pub object: Value,
    /// The object before the change, for modifications and deletions.
    pub old: Option<Value>,
}

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 Expired, as a watch or a continue token from before the compaction gets.
    pub fn expired(rv: u64, floor: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {rv} ({floor})"),
        )
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code
        })
    }
}

type Key = (&'static str, String, String);

/// A live subscription of one watch.
pub struct Subscription {
    /// Events to send first: history replay, or synthetic ADDED for the current objects.
    pub initial: Vec<Event>,
    /// The resourceVersion at the moment of subscribing.
    pub rv: u64,
    /// Live events after `rv`.
    pub rx: mpsc::UnboundedReceiver<Event>,
}

/// The whole cluster state. Lives behind a mutex in the server.
#[derive(Default)]
pub struct Store {
    rv: u64,
    floor: u64,
    uids: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Event>,
    subscribers: Vec<(&'static str, mpsc::UnboundedSender<Event>)>,
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The current time as RFC 3339 with second precision, like `creationTimestamp`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The object without `metadata` and `status`: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{}.{} \"{name}\" not found", rt.plural, rt.group),
    )
}

/// The resourceVersion in `metadata`, if any.
pub fn object_rv(obj: &Value) -> Option<&str> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

impl Store {
    /// The current (latest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Oldest resourceVersion a watch may still resume from.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Forget the history: every resourceVersion handed out so far expires.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.floor = self.rv;
        self.history.clear();
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        let ns = if rt.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        (rt.plural, ns, name.to_string())
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.objects.get(&Self::key(rt, ns, name)).cloned()
    }

    /// All objects of a type, optionally in one namespace, sorted by namespace then name.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((p, n, _), _)| {
                *p == rt.plural && ns.is_none_or(|want| !rt.namespaced || n == want)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Objects of `rt` in key order (namespace, name), starting after `after`:
    /// one page costs O(page), not O(all objects), like the real API server.
    pub fn list_after<'a>(
        &'a self,
        rt: &'a ResourceType,
        ns: Option<&'a str>,
        after: Option<&(String, String)>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some((n, m)) => Bound::Excluded((rt.plural, n.clone(), m.clone())),
            None => Bound::Included((rt.plural, String::new(), String::new())),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |((p, _, _), _)| *p == rt.plural)
            .filter(move |((_, n, _), _)| ns.is_none_or(|want| !rt.namespaced || n == want))
            .map(|(_, v)| v)
    }

    fn record(&mut self, rt: &ResourceType, kind: EventKind, object: Value, old: Option<Value>) {
        let ev = Event {
            rv: self.rv,
            plural: rt.plural,
            kind,
            object,
            old,
        };
        self.subscribers
            .retain(|(plural, tx)| *plural != rt.plural || tx.send(ev.clone()).is_ok());
        self.history.push(ev);
    }

    /// Fill in what the server owns: apiVersion, kind, namespace, resourceVersion,
    /// uid, creationTimestamp, generation.
    fn stamp(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        old: Option<&Value>,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("object must be a JSON object"));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        self.rv += 1;
        let meta = &mut obj["metadata"];
        if rt.namespaced {
            meta["namespace"] = json!(ns);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["resourceVersion"] = json!(self.rv.to_string());
        match old {
            Some(old) => {
                meta["uid"] = old["metadata"]["uid"].clone();
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = spec_part(old) != spec_part(&obj);
                obj["metadata"]["generation"] = json!(generation + i64::from(changed));
            }
            None => {
                self.uids += 1;
                meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
                meta["creationTimestamp"] = json!(now_rfc3339());
                meta["generation"] = json!(1);
            }
        }
        Ok(obj)
    }

    fn name_of(obj: &Value) -> Result<String, ApiError> {
        match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => Ok(n.to_string()),
            _ => Err(ApiError::new(
                422,
                "Invalid",
                "metadata.name: Required value: name is required",
            )),
        }
    }

    fn check_namespace(rt: &ResourceType, ns: &str, obj: &Value) -> Result<(), ApiError> {
        match obj["metadata"]["namespace"].as_str() {
            Some(body_ns) if rt.namespaced && !body_ns.is_empty() && body_ns != ns => {
                Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )))
            }
            _ => Ok(()),
        }
    }

    /// POST: create a new object; 409 AlreadyExists if the name is taken.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        Self::check_namespace(rt, ns, &obj)?;
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = obj["metadata"]["generateName"].as_str()
        {
            obj["metadata"]["name"] = json!(format!("{prefix}{:05x}", self.uids + 1));
        }
        let name = Self::name_of(&obj)?;
        let key = Self::key(rt, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{}.{} \"{name}\" already exists", rt.plural, rt.group),
            ));
        }
        let obj = self.stamp(rt, ns, obj, None)?;
        self.objects.insert(key, obj.clone());
        self.record(rt, EventKind::Added, obj.clone(), None);
        Ok(obj)
    }

    /// PUT: replace an existing object. With `check_rv`, a `metadata.resourceVersion`
    /// in the body that is not the stored one is a 409 Conflict.
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        check_rv: bool,
    ) -> Result<Value, ApiError> {
        Self::check_namespace(rt, ns, &obj)?;
        if Self::name_of(&obj)? != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object does not match the name on the URL ({name})"
            )));
        }
        let key = Self::key(rt, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(rt, name))?;
        if check_rv
            && let Some(want) = object_rv(&obj)
            && Some(want) != object_rv(&old)
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.plural, rt.group
                ),
            ));
        }
        let obj = self.stamp(rt, ns, obj, Some(&old))?;
        self.objects.insert(key, obj.clone());
        self.record(rt, EventKind::Modified, obj.clone(), Some(old));
        Ok(obj)
    }

    /// Create or replace without looking at resourceVersions (the test-facing `apply`).
    pub fn upsert(&mut self, rt: &ResourceType, ns: &str, obj: Value) -> Result<Value, ApiError> {
        let name = Self::name_of(&obj)?;
        if self.get(rt, ns, &name).is_some() {
            self.replace(rt, ns, &name, obj, false)
        } else {
            self.create(rt, ns, obj)
        }
    }

    /// PATCH as a JSON merge patch (RFC 7386). `create` makes a missing object
    /// from the patch (server-side apply); otherwise a missing object is 404.
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch: Value,
        create: bool,
    ) -> Result<Value, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::bad_request("patch must be a JSON object"));
        }
        match self.get(rt, ns, name) {
            Some(mut current) => {
                merge_patch(&mut current, &patch);
                let check = object_rv(&patch).is_some();
                if !check && let Some(meta) = current["metadata"].as_object_mut() {
                    meta.remove("resourceVersion");
                }
                self.replace(rt, ns, name, current, check)
            }
            None if create => {
                let mut obj = patch;
                obj["metadata"]["name"] = json!(name);
                if let Some(meta) = obj["metadata"].as_object_mut() {
                    meta.remove("resourceVersion");
                }
                self.create(rt, ns, obj)
            }
            None => Err(not_found(rt, name)),
        }
    }

    /// DELETE: remove and return the object, stamped with the deletion's resourceVersion.
    pub fn delete(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let old = self
            .objects
            .remove(&Self::key(rt, ns, name))
            .ok_or_else(|| not_found(rt, name))?;
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(rt, EventKind::Deleted, gone.clone(), Some(old));
        Ok(gone)
    }

    /// Start a watch on a resource type.
    ///
    /// `from = None` (or `Some(0)`) starts "now" with synthetic ADDED events for every
    /// current object; `Some(rv)` replays the history after `rv`, or is expired when `rv`
    /// is older than the last compaction.
    pub fn subscribe(
        &mut self,
        rt: &ResourceType,
        from: Option<u64>,
    ) -> Result<Subscription, ApiError> {
        let initial = match from {
            None | Some(0) => self
                .list(rt, None)
                .into_iter()
                .map(|object| Event {
                    rv: object_rv(&object)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(self.rv),
                    plural: rt.plural,
                    kind: EventKind::Added,
                    object,
                    old: None,
                })
                .collect(),
            Some(rv) if rv < self.floor => return Err(ApiError::expired(rv, self.floor)),
            Some(rv) => self
                .history
                .iter()
                .filter(|e| e.rv > rv && e.plural == rt.plural)
                .cloned()
                .collect(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push((rt.plural, tx));
        Ok(Subscription {
            initial,
            rv: self.rv,
            rx,
        })
    }
}

/// Apply an RFC 7386 JSON merge patch in place: objects merge recursively,
/// `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(target_map) = target.as_object_mut() {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}
