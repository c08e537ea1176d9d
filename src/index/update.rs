//! The only way the index changes: a stream of [`IndexUpdate`]s.
//!
//! Sources (the manifests reader and the kube-rs watches) translate what they
//! see into these updates; the index applies them without I/O. A relist
//! arrives as one [`IndexUpdate::Reset`] (manifests) or
//! [`IndexUpdate::Replace`] (API watches) per kind, built completely by the
//! source before it is sent, so the index never holds a half-listed kind.

use super::model::{EndpointSlice, MultiClusterSlice, Namespace, Pod, Service, ServiceImport};
use super::relist::Relist;

/// The kinds of object the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice (and legacy v1 Endpoints).
    EndpointSlice,
    /// v1 Pod.
    Pod,
    /// v1 Namespace.
    Namespace,
    /// multicluster.x-k8s.io/v1alpha1 ServiceImport (`multicluster` only).
    ServiceImport,
    /// An EndpointSlice labelled `multicluster.kubernetes.io/service-name`
    /// (`multicluster` only).
    MultiClusterSlice,
}

/// One object, already converted to its slim form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A Service.
    Service(Service),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// A Pod.
    Pod(Pod),
    /// A Namespace.
    Namespace(Namespace),
    /// A ServiceImport.
    ServiceImport(ServiceImport),
    /// A multicluster EndpointSlice.
    MultiClusterSlice(MultiClusterSlice),
}

impl Object {
    /// The kind of this object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Pod(_) => Kind::Pod,
            Object::Namespace(_) => Kind::Namespace,
            Object::ServiceImport(_) => Kind::ServiceImport,
            Object::MultiClusterSlice(_) => Kind::MultiClusterSlice,
        }
    }
}

/// A change to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexUpdate {
    /// Create or replace one object (keyed by kind, namespace and name).
    Apply(Object),
    /// Remove one object; unknown keys are ignored.
    Delete {
        /// The object's kind.
        kind: Kind,
        /// Namespace (empty for Namespaces).
        namespace: Box<str>,
        /// Name.
        name: Box<str>,
    },
    /// Replace every object of `kind` with `objects` (a complete relist);
    /// also marks that kind as synced.
    Reset {
        /// The kind being replaced.
        kind: Kind,
        /// The complete new set of that kind.
        objects: Vec<Object>,
    },
    /// Replace every object of the relist's kind with it, like `Reset`, from
    /// a set already built in the index's form (see [`Relist`]).
    Replace(Box<Relist>),
    /// Several updates that must become visible together.
    Batch(Vec<IndexUpdate>),
}
