//! Writing a [`Plan`] and an [`EndpointsWrite`] to the API, and remembering
//! what was written so the next sync does not plan from a cache that has not
//! yet seen our own writes (which would create a second slice for the same
//! endpoints). Conflicts (409) are returned to the caller, whose retry
//! re-plans from a fresher cache: a replace or delete always carries the
//! resourceVersion it was planned from.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};

use super::endpoints::EndpointsWrite;
use super::plan::Plan;

/// The kind of object a write touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// An EndpointSlice.
    Slice,
    /// The v1 Endpoints object.
    Endpoints,
}

impl Object {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Slice => "endpointslice",
            Object::Endpoints => "endpoints",
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// POST.
    Create,
    /// PUT.
    Update,
    /// DELETE.
    Delete,
}

impl Change {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Delete => "delete",
        }
    }
}

/// The outcome of our last writes for one Service: object name → the
/// resourceVersion the API returned (`None` = we deleted it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Slices we created, replaced or deleted.
    pub slices: BTreeMap<String, Option<String>>,
    /// The Endpoints object, if we wrote it.
    pub endpoints: Option<String>,
    /// Every write, in order (for the changes metric).
    pub changes: Vec<(Object, Change)>,
}

impl Written {
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty() && self.endpoints.is_none()
    }
}

/// Has the cache caught up with a write that returned `ours`? Resource
/// versions are compared numerically when both are numbers (etcd's and the
/// test server's are), otherwise only equality counts.
pub fn caught_up(cached: Option<&str>, ours: Option<&str>) -> bool {
    match (cached, ours) {
        (None, None) => true,
        (Some(_), None) | (None, Some(_)) => false,
        (Some(c), Some(o)) => match (c.parse::<u64>(), o.parse::<u64>()) {
            (Ok(c), Ok(o)) => c >= o,
            _ => c == o,
        },
    }
}

/// True when `cache_rv(name)` shows every write in `written`.
pub fn cache_fresh(
    written: &Written,
    slice_rv: impl Fn(&str) -> Option<String>,
    endpoints_rv: Option<String>,
) -> bool {
    let slices = written
        .slices
        .iter()
        .all(|(name, ours)| caught_up(slice_rv(name).as_deref(), ours.as_deref()));
    let endpoints = written
        .endpoints
        .as_deref()
        .is_none_or(|ours| caught_up(endpoints_rv.as_deref(), Some(ours)));
    slices && endpoints
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Write a slice plan in `ns`: creates, then updates, then deletes (a
/// missing slice on delete is already what we want). Stops at the first
/// error; what was written so far is in `written`.
pub async fn apply_plan(
    client: &Client,
    ns: &str,
    plan: &Plan,
    written: &mut Written,
) -> Result<(), kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    for slice in &plan.create {
        let made = api.create(&pp, slice).await?;
        written
            .slices
            .insert(made.name_any(), made.resource_version());
        written.changes.push((Object::Slice, Change::Create));
    }
    for slice in &plan.update {
        let made = api.replace(&slice.name_any(), &pp, slice).await?;
        written
            .slices
            .insert(made.name_any(), made.resource_version());
        written.changes.push((Object::Slice, Change::Update));
    }
    for slice in &plan.delete {
        delete_tolerant(&api, &slice.name_any()).await?;
        written.slices.insert(slice.name_any(), None);
        written.changes.push((Object::Slice, Change::Delete));
    }
    Ok(())
}

/// Write the Endpoints change, if any.
pub async fn apply_endpoints(
    client: &Client,
    ns: &str,
    write: &EndpointsWrite,
    written: &mut Written,
) -> Result<(), kube::Error> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let (made, change) = match write {
        EndpointsWrite::Nothing => return Ok(()),
        EndpointsWrite::Create(e) => (api.create(&pp, e).await?, Change::Create),
        EndpointsWrite::Update(e) => (api.replace(&e.name_any(), &pp, e).await?, Change::Update),
    };
    written.endpoints = made.resource_version();
    written.changes.push((Object::Endpoints, change));
    Ok(())
}

/// Delete a Service's leftovers: the named slices and its Endpoints.
pub async fn delete_all(
    client: &Client,
    ns: &str,
    slices: &[String],
    endpoints: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    for name in slices {
        delete_tolerant(&api, name).await?;
    }
    if let Some(name) = endpoints {
        let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
        delete_tolerant(&api, name).await?;
    }
    Ok(())
}

async fn delete_tolerant<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_table() {
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, None, true),
            (Some("5"), None, false),
            (None, Some("5"), false),
            (Some("5"), Some("5"), true),
            (Some("6"), Some("5"), true),
            (Some("4"), Some("5"), false),
            (Some("abc"), Some("abc"), true),
            (Some("abd"), Some("abc"), false),
        ];
        for &(cached, ours, want) in cases {
            assert_eq!(caught_up(cached, ours), want, "{cached:?} vs {ours:?}");
        }
    }

    #[test]
    fn cache_fresh_needs_every_write_seen() {
        let mut w = Written::default();
        w.slices.insert("a".into(), Some("7".into()));
        w.slices.insert("b".into(), None);
        w.endpoints = Some("8".into());
        let rv = |a: Option<&str>, b: Option<&str>| {
            let (a, b) = (a.map(str::to_owned), b.map(str::to_owned));
            move |n: &str| if n == "a" { a.clone() } else { b.clone() }
        };
        assert!(cache_fresh(&w, rv(Some("7"), None), Some("8".into())));
        assert!(!cache_fresh(&w, rv(Some("6"), None), Some("8".into())));
        assert!(!cache_fresh(&w, rv(Some("7"), Some("3")), Some("8".into())));
        assert!(!cache_fresh(&w, rv(Some("7"), None), None));
        assert!(cache_fresh(&Written::default(), rv(None, Some("1")), None));
    }
}
