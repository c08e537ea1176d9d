//! Decoding API objects one at a time, so one bad object cannot starve the rest.
//!
//! With a typed `Api<Service>`, kube-rs decodes a whole list page at once:
//! one Service the typed struct rejects (a port that is a string, a missing
//! required field) fails the page, the watcher retries with backoff, and every
//! other Service of the cluster waits for the bad one to be fixed. The watches
//! therefore ask for [`Lenient<K>`]: each item is first read as plain JSON and
//! then decoded into `K` on its own. An item that does not decode is kept as
//! [`Undecodable`], with what could be read of its metadata (namespace, name,
//! resourceVersion, so the watcher can still track it), and the source skips
//! it with one log line naming it.
//!
//! Cost: an item is held as a JSON tree and then as the typed object, one
//! item at a time; a page is never held twice over.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One API object of kind `K`, or why it could not be decoded.
#[derive(Clone, Debug)]
pub struct Lenient<K> {
    /// The object, or what is known about it.
    pub object: Result<K, Undecodable>,
}

/// An object that JSON-parses but does not fit its kind's schema.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// Namespace, name and resourceVersion, where they are strings.
    pub meta: ObjectMeta,
    /// The decoder's message.
    pub error: String,
}

impl Undecodable {
    /// `namespace/name` (or `name`, or `<unnamed>`) for log lines.
    pub fn describe(&self) -> String {
        let name = self.meta.name.as_deref().unwrap_or("<unnamed>");
        match self.meta.namespace.as_deref() {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        }
    }
}

/// What can be read of `metadata` without trusting its shape.
fn salvage_meta(v: &Value) -> ObjectMeta {
    let meta = &v["metadata"];
    let text = |field: &str| meta[field].as_str().map(str::to_string);
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        resource_version: text("resourceVersion"),
        ..ObjectMeta::default()
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only text that is not JSON at all fails here (and fails the page,
        // as it must: nothing after it can be trusted).
        let value = Value::deserialize(d)?;
        let meta = salvage_meta(&value);
        let object = K::deserialize(value).map_err(|e| Undecodable {
            meta,
            error: e.to_string(),
        });
        Ok(Lenient { object })
    }
}

/// The type-level half of `kube::Resource` (kind, group, version, plural)
/// for a wrapper around `$k`, which lists and watches as `$k` does.
macro_rules! resource_type_of {
    ($k:ident) => {
        fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::kind(dt)
        }

        fn group(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::group(dt)
        }

        fn version(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::version(dt)
        }

        fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::plural(dt)
        }
    };
}
pub(crate) use resource_type_of;

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    resource_type_of!(K);

    fn meta(&self) -> &ObjectMeta {
        match &self.object {
            Ok(k) => k.meta(),
            Err(u) => &u.meta,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.object {
            Ok(k) => k.meta_mut(),
            Err(u) => &mut u.meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kube::core::ObjectList;

    #[test]
    fn one_bad_item_does_not_fail_the_list() {
        let body = r#"{
            "kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [
                {"metadata": {"name": "good", "namespace": "a", "resourceVersion": "5"},
                 "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}},
                {"metadata": {"name": "bad", "namespace": "a", "resourceVersion": "6"},
                 "spec": {"ports": [{"port": "eighty"}]}},
                {"metadata": {"name": 12, "labels": "x"}, "spec": []}
            ]
        }"#;
        let list: ObjectList<Lenient<Service>> = serde_json::from_str(body).expect("list decodes");
        assert_eq!(list.items.len(), 3);
        let good = list.items[0].object.as_ref().expect("good decodes");
        assert_eq!(good.metadata.name.as_deref(), Some("good"));
        let bad = list.items[1]
            .object
            .as_ref()
            .expect_err("bad is undecodable");
        assert_eq!(bad.describe(), "a/bad");
        assert!(bad.error.contains("invalid type"), "{}", bad.error);
        assert_eq!(list.items[1].meta().resource_version.as_deref(), Some("6"));
        let worse = list.items[2]
            .object
            .as_ref()
            .expect_err("no usable metadata");
        assert_eq!(worse.describe(), "<unnamed>");
    }

    #[test]
    fn text_that_is_not_json_still_fails() {
        let body = r#"{"kind": "ServiceList", "items": [{"metadata": "#;
        assert!(serde_json::from_str::<ObjectList<Lenient<Service>>>(body).is_err());
    }

    #[test]
    fn the_resource_names_are_those_of_the_kind() {
        assert_eq!(Lenient::<Service>::plural(&()), "services");
        assert_eq!(Lenient::<Service>::kind(&()), "Service");
        assert_eq!(Lenient::<Service>::api_version(&()), "v1");
    }
}
