//! Sources of cluster objects: they turn what they read into
//! [`IndexUpdate`](crate::index::IndexUpdate)s and never touch the index themselves.
//!
//! - [`convert`]: pure k8s-openapi → slim model conversion, shared by every source, so one
//!   object gives the same record whichever way it arrived; [`decoded`] applies it to each
//!   watched object while its list page is decoded.
//! - [`mcs`]: the Multi-Cluster Services API types the `multicluster` option watches.
//! - [`manifests`]: the `manifests PATH...` source: YAML/JSON files, re-read when they change.
//! - [`api`]: the live source: kube-rs watches (one task per kind) on the shared API
//!   client of [`crate::k8s`] (client, limits, per-object decoding, retry policy), and
//!   [`metrics`] counting restarts, relists and programming latency.
//!
//! Invariant: a source publishes a complete state per kind (a `Reset` or a `Replace`, or a `Batch` of them)
//! before anything partial, so the index never serves a half-read set.
//!
//! Both sources reuse [`convert`] for every object and send into the same
//! `mpsc::Sender<IndexUpdate>`; the API source passes the `labels` selector text to the
//! API server, the manifests source evaluates it with [`crate::k8s::selector`].

pub mod api;
pub mod convert;
pub mod decoded;
pub mod manifests;
pub mod mcs;
pub mod metrics;
