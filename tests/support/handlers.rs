//! Handlers for resource requests: list (selectors, pagination), watch, get,
//! create, replace, patch (merge and server-side apply), delete.
//!
//! Invariant: each handler takes the store lock once, so a request sees and
//! produces one consistent resourceVersion; every request leaves one line in the
//! request log (`LIST services`, `WATCH endpointslices rv=12`, `CREATE services default/web`).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Method, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::faults::Fault;
use super::http::{Body, Query, Shared, Target, error_response, json_response, lock, raw_response};
use super::selector::{FieldSelector, LabelSelector, Selectors};
use super::store::ApiError;
use super::watch::{self, WatchSpec};

fn selectors(query: &Query) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
    })
}

fn parse_rv(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {v:?}"))),
    }
}

fn describe(t: &Target) -> String {
    match (&t.namespace, &t.name) {
        (Some(ns), Some(name)) => format!("{} {ns}/{name}", t.rt.plural),
        (None, Some(name)) => format!("{} {name}", t.rt.plural),
        (Some(ns), None) => format!("{} ns={ns}", t.rt.plural),
        (None, None) => t.rt.plural.to_string(),
    }
}

/// Route one resource request to its handler.
pub fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    t: &Target,
    query: &Query,
    content_type: &str,
    body: &Bytes,
) -> Response<Body> {
    if *method == Method::GET
        && t.name.is_none()
        && let Some(resp) = injected(shared, t, query.flag("watch"))
    {
        return resp;
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && let Some(resp) = injected_write(shared, t, method)
    {
        return resp;
    }
    let result = match (method, &t.name) {
        (&Method::GET, None) if query.flag("watch") => return watch_request(shared, t, query),
        (&Method::GET, None) => {
            shared.log(format!("LIST {}", describe(t)));
            list(shared, t, query)
        }
        (&Method::GET, Some(name)) => {
            shared.log(format!("GET {}", describe(t)));
            let ns = t.namespace.as_deref().unwrap_or("");
            lock(&shared.store)
                .get(t.rt, ns, name)
                .map(|o| (200, o))
                .ok_or_else(|| not_found(t, name))
        }
        (&Method::POST, None) => {
            shared.log(format!("CREATE {}", describe(t)));
            parse_body(body, false).and_then(|obj| {
                let ns = t
                    .namespace
                    .clone()
                    .ok_or_else(|| ApiError::bad_request("a namespace is required"));
                let ns = if t.rt.namespaced { ns? } else { String::new() };
                lock(&shared.store).create(t.rt, &ns, obj).map(|o| (201, o))
            })
        }
        (&Method::PUT, Some(name)) => {
            shared.log(format!("REPLACE {}", describe(t)));
            let ns = t.namespace.as_deref().unwrap_or("");
            parse_body(body, false).and_then(|obj| {
                lock(&shared.store)
                    .replace(t.rt, ns, name, obj, true)
                    .map(|o| (200, o))
            })
        }
        (&Method::PATCH, Some(name)) => patch(shared, t, name, content_type, body),
        (&Method::DELETE, Some(name)) => {
            shared.log(format!("DELETE {}", describe(t)));
            let ns = t.namespace.as_deref().unwrap_or("");
            lock(&shared.store).delete(t.rt, ns, name).map(|o| (200, o))
        }
        (&Method::DELETE, None) => {
            shared.log(format!("DELETECOLLECTION {}", describe(t)));
            delete_collection(shared, t, query)
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
        )),
    };
    match result {
        Ok((code, obj)) => json_response(code, &obj),
        Err(e) => error_response(&e),
    }
}

fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{}.{} \"{name}\" not found", t.rt.plural, t.rt.group),
    )
}

/// The response of an armed request fault for a LIST or WATCH, if any.
fn injected(shared: &Shared, t: &Target, watch: bool) -> Option<Response<Body>> {
    let verb = if watch { "WATCH" } else { "LIST" };
    let fault = lock(&shared.faults).take(t.rt.plural, |f| match f {
        Fault::Status(_) => true,
        Fault::MalformedList => !watch,
        Fault::MalformedEvent | Fault::CutWatch | Fault::WriteStatus(_) => false,
    })?;
    match fault {
        Fault::Status(code) => {
            shared.log(format!("FAULT {code} {verb} {}", describe(t)));
            let reason = match code {
                401 => "Unauthorized",
                403 => "Forbidden",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                _ => "InternalError",
            };
            Some(error_response(&ApiError::new(
                code,
                reason,
                "injected fault",
            )))
        }
        _ => {
            shared.log(format!("FAULT MalformedList {}", describe(t)));
            Some(raw_response(
                br#"{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"#,
            ))
        }
    }
}

/// The response of an armed write fault (`Fault::WriteStatus`), if any.
fn injected_write(shared: &Shared, t: &Target, method: &Method) -> Option<Response<Body>> {
    let Some(Fault::WriteStatus(code)) =
        lock(&shared.faults).take(t.rt.plural, |f| matches!(f, Fault::WriteStatus(_)))
    else {
        return None;
    };
    shared.log(format!("FAULT {code} {method} {}", describe(t)));
    let (reason, message) = match code {
        409 => (
            "Conflict",
            "injected fault: the object has been modified; please apply your changes to the latest version and try again",
        ),
        503 => ("ServiceUnavailable", "injected fault"),
        _ => ("InternalError", "injected fault"),
    };
    Some(error_response(&ApiError::new(code, reason, message)))
}

fn parse_body(body: &Bytes, yaml: bool) -> Result<Value, ApiError> {
    let parsed = serde_json::from_slice::<Value>(body).or_else(|e| {
        if yaml {
            serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
        } else {
            Err(e.to_string())
        }
    });
    parsed.map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn patch(
    shared: &Shared,
    t: &Target,
    name: &str,
    content_type: &str,
    body: &Bytes,
) -> Result<(u16, Value), ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let apply = media == "application/apply-patch+yaml";
    shared.log(format!(
        "{} {}",
        if apply { "APPLY" } else { "PATCH" },
        describe(t)
    ));
    match media {
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/apply-patch+yaml" => {
            let patch = parse_body(body, apply)?;
            let mut store = lock(&shared.store);
            let existed = store.get(t.rt, ns, name).is_some();
            let obj = store.patch(t.rt, ns, name, patch, apply)?;
            Ok((if existed { 200 } else { 201 }, obj))
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {other}"),
        )),
    }
}

fn list_object(t: &Target, rv: u64, items: Vec<Value>, cont: Option<String>) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        // remainingItemCount is optional in the API; counting it would make
        // every page O(all objects).
        meta["continue"] = json!(c);
    }
    json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": meta, "items": items})
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let digits: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(digits?).ok()
}

fn key_of(obj: &Value) -> (String, String) {
    let meta = &obj["metadata"];
    let field = |f: &str| meta[f].as_str().unwrap_or("").to_string();
    (field("namespace"), field("name"))
}

/// LIST with selectors, `limit` and `continue` (token = hex of `rv|namespace|name`).
fn list(shared: &Shared, t: &Target, query: &Query) -> Result<(u16, Value), ApiError> {
    let sel = selectors(query)?;
    let limit: usize = match query.get("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
    };
    let store = lock(&shared.store);
    let requested = parse_rv(query.get("resourceVersion"))?;
    if query.get("resourceVersionMatch") == Some("Exact")
        && let Some(rv) = requested
        && rv < store.floor()
    {
        return Err(ApiError::expired(rv, store.floor()));
    }
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        None => (store.rv(), None),
        Some(token) => {
            let bad = || ApiError::bad_request("invalid continue token");
            let decoded = unhex(token).ok_or_else(bad)?;
            let mut parts = decoded.splitn(3, '|');
            let rv: u64 = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
            let ns = parts.next().ok_or_else(bad)?.to_string();
            let name = parts.next().ok_or_else(bad)?.to_string();
            if rv < store.floor() {
                return Err(ApiError::expired(rv, store.floor()));
            }
            (rv, Some((ns, name)))
        }
    };
    let want = if limit > 0 { limit + 1 } else { usize::MAX };
    let mut items: Vec<Value> = store
        .list_after(t.rt, t.namespace.as_deref(), after.as_ref())
        .filter(|o| sel.matches(o))
        .take(want)
        .cloned()
        .collect();
    drop(store);
    let mut cont = None;
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        if let Some(last) = items.last() {
            let (ns, name) = key_of(last);
            cont = Some(hex(&format!("{list_rv}|{ns}|{name}")));
        }
    }
    Ok((200, list_object(t, list_rv, items, cont)))
}

fn delete_collection(shared: &Shared, t: &Target, query: &Query) -> Result<(u16, Value), ApiError> {
    let sel = selectors(query)?;
    let mut store = lock(&shared.store);
    let victims: Vec<Value> = store
        .list(t.rt, t.namespace.as_deref())
        .into_iter()
        .filter(|o| sel.matches(o))
        .collect();
    let mut deleted = Vec::new();
    for v in victims {
        let (ns, name) = key_of(&v);
        deleted.push(store.delete(t.rt, &ns, &name)?);
    }
    Ok((200, list_object(t, store.rv(), deleted, None)))
}

fn stream_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed_unsync()
}

fn watch_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut resp = Response::new(stream_body(rx));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// WATCH: a chunked stream of events; an expired resourceVersion gets one ERROR event.
fn watch_request(shared: &Arc<Shared>, t: &Target, query: &Query) -> Response<Body> {
    let rv_param = query.get("resourceVersion").unwrap_or("");
    let initial = query.flag("sendInitialEvents");
    let mut line = format!("WATCH {}", describe(t));
    if !rv_param.is_empty() {
        line.push_str(&format!(" rv={rv_param}"));
    }
    if initial {
        line.push_str(" sendInitialEvents");
    }
    shared.log(line);
    let spec = match (selectors(query), parse_rv(Some(rv_param))) {
        (Ok(selectors), Ok(rv)) => (
            WatchSpec {
                rt: t.rt,
                namespace: t.namespace.clone(),
                selectors,
                bookmarks: query.flag("allowWatchBookmarks"),
                initial_events_end: initial,
                timeout: query
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs),
            },
            rv,
        ),
        (Err(e), _) | (_, Err(e)) => return error_response(&e),
    };
    let (spec, rv) = spec;
    let from = if initial { None } else { rv };
    let (tx, rx) = mpsc::channel(64);
    match lock(&shared.store).subscribe(t.rt, from) {
        Ok(sub) => {
            let cancel = [
                lock(&shared.watch_cancel).clone(),
                lock(&shared.conn_cancel).clone(),
            ];
            tokio::spawn(watch::run(shared.clone(), spec, sub, tx, cancel));
        }
        Err(e) => {
            // kube-rs relists only on a 410 ERROR *event*; an HTTP 410 here would
            // make its watcher retry the same resourceVersion forever.
            let _ = tx.try_send(watch::error_line(&e));
        }
    }
    watch_response(rx)
}
