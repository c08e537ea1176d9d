//! Watched objects converted to the index's records while their list page is
//! decoded, so a page is never held as full API objects.
//!
//! kube-rs's watcher decodes a whole list page (200 objects) and hands the
//! objects out one at a time, so the page stays alive as typed k8s-openapi
//! objects until the last one is handed out. At 10k Services / 150k endpoints
//! a page of EndpointSlices held that way was ~1.4 MB of short-lived
//! allocations at the moment of peak memory (heaptrack), interleaved with the
//! relist being built. A [`Decoded<K>`] is what the watcher holds instead:
//! the item is read as [`Lenient<K>`] (one bad object still cannot fail the
//! page), converted at once with [`convert`], and only the record plus the
//! few metadata fields the watch reads are kept.
//!
//! Invariant: a `Decoded<K>` carries exactly what the source would have
//! computed from the full object: the same record or the same reason to skip
//! it, and the name, namespace and resourceVersion the watcher and deletes
//! need.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::convert::{self, ConvertError};
use crate::index::Object;
use crate::k8s::lenient::Lenient;

/// Labels kept from an object's metadata (the programming-latency metric reads them).
const KEPT_LABELS: [&str; 2] = [
    "service.kubernetes.io/headless",
    "endpointslice.kubernetes.io/managed-by",
];
/// Annotations kept from an object's metadata.
const KEPT_ANNOTATIONS: [&str; 1] = ["endpoints.kubernetes.io/last-change-trigger-time"];

/// A watched kind and its conversion into an index record.
pub trait Convert: Resource<DynamicType = ()> + DeserializeOwned {
    /// The record, `Ok(None)` when DNS has no use for the object.
    fn record(&self) -> convert::Result<Option<Object>>;
}

impl Convert for core::Service {
    fn record(&self) -> convert::Result<Option<Object>> {
        convert::service(self).map(|s| Some(Object::Service(s)))
    }
}

impl Convert for discovery::EndpointSlice {
    fn record(&self) -> convert::Result<Option<Object>> {
        convert::endpoint_slice(self).map(|s| s.map(Object::EndpointSlice))
    }
}

impl Convert for super::mcs::ServiceImport {
    fn record(&self) -> convert::Result<Option<Object>> {
        convert::service_import(self).map(|i| Some(Object::ServiceImport(i)))
    }
}

impl Convert for super::mcs::MultiClusterSlice {
    fn record(&self) -> convert::Result<Option<Object>> {
        convert::multicluster_slice(&self.0).map(|s| s.map(Object::MultiClusterSlice))
    }
}

impl Convert for core::Namespace {
    fn record(&self) -> convert::Result<Option<Object>> {
        convert::namespace(self).map(|n| Some(Object::Namespace(n)))
    }
}

impl Convert for core::Pod {
    fn record(&self) -> convert::Result<Option<Object>> {
        convert::pod(self).map(|p| p.map(Object::Pod))
    }
}

/// Why an object gives no record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It does not fit its kind's schema (the decoder's message).
    Undecodable(String),
    /// It decodes, but conversion rejects it.
    Unusable(ConvertError),
}

/// One watched object of kind `K`, already converted (see the module docs).
#[derive(Clone, Debug)]
pub struct Decoded<K> {
    /// Name, namespace, resourceVersion, and only the labels and annotations
    /// the watch reads.
    pub meta: ObjectMeta,
    /// The record (`None`: DNS has no use for it), or why there is none.
    pub record: Result<Option<Object>, Skip>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Convert> Decoded<K> {
    /// Converts a decoded item.
    pub fn new(item: Lenient<K>) -> Self {
        let (meta, record) = match item.object {
            Ok(k) => (slim(k.meta()), k.record().map_err(Skip::Unusable)),
            Err(bad) => (bad.meta, Err(Skip::Undecodable(bad.error))),
        };
        Decoded {
            meta,
            record,
            kind: PhantomData,
        }
    }

    /// `namespace/name` (or `name`, or `<unnamed>`) for log lines.
    pub fn describe(&self) -> String {
        describe(&self.meta)
    }
}

/// `namespace/name` (or `name`, or `<unnamed>`) of an object, for log lines.
pub fn describe(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The metadata fields a watch reads.
fn slim(meta: &ObjectMeta) -> ObjectMeta {
    let keep = |map: &Option<BTreeMap<String, String>>, keys: &[&str]| {
        let kept: BTreeMap<String, String> = map
            .iter()
            .flatten()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(kept)
    };
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        resource_version: meta.resource_version.clone(),
        labels: keep(&meta.labels, &KEPT_LABELS),
        annotations: keep(&meta.annotations, &KEPT_ANNOTATIONS),
        ..ObjectMeta::default()
    }
}

impl<'de, K: Convert> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Lenient::<K>::deserialize(d).map(Decoded::new)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    crate::k8s::lenient::resource_type_of!(K);

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests;
