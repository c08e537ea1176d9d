//! Sources of cluster objects: they turn what they read into
//! [`IndexUpdate`](crate::index::IndexUpdate)s and never touch the index themselves.
//!
//! - [`convert`]: pure k8s-openapi → slim model conversion, shared by every source, so one
//!   object gives the same record whichever way it arrived.
//! - [`selector`]: the `labels EXPR` label selector of the kubernetes plugin.
//! - [`manifests`]: the `manifests PATH...` source: YAML/JSON files, re-read when they change.
//!
//! Invariant: a source publishes a complete state per kind (a `Reset`, or a `Batch` of them)
//! before anything partial, so the index never serves a half-read set.
//!
//! The seam for the next source: the kube-rs watchers will live beside `manifests` (one task
//! per kind, Init/InitApply/InitDone buffered into a `Reset`), reuse [`convert`] for every
//! object and [`selector::Selector::as_str`] as the list/watch label selector, and send into
//! the same `mpsc::Sender<IndexUpdate>`.

pub mod convert;
pub mod manifests;
pub mod selector;
