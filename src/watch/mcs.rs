//! The Multi-Cluster Services API objects the `multicluster` option watches,
//! typed just far enough for DNS.
//!
//! k8s-openapi has no MCS types (they are CRDs, `multicluster.x-k8s.io`), so
//! [`ServiceImport`] is declared here with only the fields DNS answers from
//! (`spec.type`, `spec.ips`, `spec.ports`); unknown fields are ignored when
//! decoding. [`MultiClusterSlice`] is a plain discovery.k8s.io/v1
//! EndpointSlice under its own Rust type, so the watch on the slices an MCS
//! implementation imports (label `multicluster.kubernetes.io/service-name`)
//! converts them as imported endpoints rather than as this cluster's.

use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use serde::{Deserialize, Serialize};

/// `multicluster.x-k8s.io/v1alpha1` `ServiceImport`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServiceImport {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The import's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceImportSpec>,
}

/// `ServiceImport.spec`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServiceImportSpec {
    /// `ClusterSetIP` (the default) or `Headless`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The clusterset IPs (one per family) of a ClusterSetIP import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The ports of the exported service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServiceImportPort>,
}

/// One of `ServiceImport.spec.ports`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServiceImportPort {
    /// Port name (SRV `_name`), absent for an unnamed port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port number.
    pub port: i32,
}

impl Resource for ServiceImport {
    const API_VERSION: &'static str = "multicluster.x-k8s.io/v1alpha1";
    const GROUP: &'static str = "multicluster.x-k8s.io";
    const KIND: &'static str = "ServiceImport";
    const VERSION: &'static str = "v1alpha1";
    const URL_PATH_SEGMENT: &'static str = "serviceimports";
    type Scope = NamespaceResourceScope;
}

impl Metadata for ServiceImport {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An EndpointSlice watched as an imported one (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct MultiClusterSlice(pub discovery::EndpointSlice);

impl Resource for MultiClusterSlice {
    const API_VERSION: &'static str = discovery::EndpointSlice::API_VERSION;
    const GROUP: &'static str = discovery::EndpointSlice::GROUP;
    const KIND: &'static str = discovery::EndpointSlice::KIND;
    const VERSION: &'static str = discovery::EndpointSlice::VERSION;
    const URL_PATH_SEGMENT: &'static str = discovery::EndpointSlice::URL_PATH_SEGMENT;
    type Scope = NamespaceResourceScope;
}

impl Metadata for MultiClusterSlice {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}
