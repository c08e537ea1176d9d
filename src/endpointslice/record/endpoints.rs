//! A cached v1 Endpoints object: its metadata and a digest of its subsets
//! ([`super::super::endpoints::subsets_digest`]) — all
//! [`super::super::endpoints::plan_endpoints_by_digest`] compares. The
//! addresses themselves are what our slices already hold; keeping them again
//! for every Service was ~12 MB at 10,000 Services × 10 pods. Mirroring,
//! the one reader of a whole Endpoints (hand-made, of a selector-less
//! Service), fetches it from the API.

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::endpoints::subsets_digest;
use super::Shared;
use super::meta::Meta;

/// A cached Endpoints object; see the module doc.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointsRecord {
    meta: Meta,
    subsets: u128,
}

impl EndpointsRecord {
    /// The record of `ep`.
    pub fn new(ep: &Endpoints, shared: &mut Shared) -> EndpointsRecord {
        EndpointsRecord {
            meta: Meta::new(&ep.metadata, shared),
            subsets: subsets_digest(ep.subsets.as_deref().unwrap_or_default()),
        }
    }

    /// The metadata of the Endpoints `namespace/name` (as [`Meta::to_api`]
    /// keeps it) and the digest of its subsets.
    pub fn to_api(&self, namespace: &str, name: &str) -> (ObjectMeta, u128) {
        (self.meta.to_api(namespace, name), self.subsets)
    }

    /// The object's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::endpoints::{
        EndpointsWrite, plan_endpoints, plan_endpoints_by_digest,
    };
    use crate::endpointslice::fixtures::{pod, svc};

    #[test]
    fn a_record_plans_as_the_object_does() {
        let s = svc("web")
            .port(80)
            .selector("app=web")
            .label("team", "a")
            .build();
        let pods = vec![
            pod("web-0").ready().ip("10.0.0.1").node("n1").build(),
            pod("web-1").ip("10.0.0.2").node("n1").build(),
        ];
        let EndpointsWrite::Create(mut stored) =
            plan_endpoints(&s, &pods, None, Some("2026-12-01T10:00:00Z"))
        else {
            panic!("a create");
        };
        stored.metadata.resource_version = Some("7".into());
        stored.metadata.uid = Some("uid-ep".into());
        let rec = EndpointsRecord::new(&stored, &mut Shared::default());
        let (meta, digest) = rec.to_api("default", "web");
        assert_eq!(meta, stored.metadata);
        assert_eq!(rec.meta().resource_version(), Some("7"));
        let mut fewer = pods.clone();
        fewer.pop();
        let mut not_ready = pods.clone();
        not_ready[0].ready = false;
        for case in [pods, fewer, not_ready] {
            assert_eq!(
                plan_endpoints_by_digest(&s, &case, Some((&meta, digest)), None),
                plan_endpoints(&s, &case, Some(&stored), None)
            );
        }
    }
}
