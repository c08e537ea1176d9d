//! Sources of cluster objects: they turn what they read into
//! [`IndexUpdate`](crate::index::IndexUpdate)s and never touch the index themselves.
//!
//! - [`convert`]: pure k8s-openapi → slim model conversion, shared by every source, so one
//!   object gives the same record whichever way it arrived.
//! - [`selector`]: the `labels EXPR` label selector of the kubernetes plugin.
//! - [`manifests`]: the `manifests PATH...` source: YAML/JSON files, re-read when they change.
//! - [`api`]: the live source: kube-rs watches (one task per kind), with [`client`] building
//!   the shared API client (with the [`limit`]s of `apiserver_qps`/`_burst`/`_max_inflight`),
//!   [`lenient`] decoding each object on its own, [`retry`] deciding
//!   how long to wait after an error, and [`metrics`] counting restarts, relists and
//!   programming latency.
//!
//! Invariant: a source publishes a complete state per kind (a `Reset` or a `Replace`, or a `Batch` of them)
//! before anything partial, so the index never serves a half-read set.
//!
//! Both sources reuse [`convert`] for every object and send into the same
//! `mpsc::Sender<IndexUpdate>`; the API source passes the `labels` selector text to the
//! API server, the manifests source evaluates it with [`selector`].

pub mod api;
pub mod client;
pub mod convert;
pub mod lenient;
pub mod limit;
pub mod manifests;
pub mod metrics;
pub mod retry;
pub mod selector;
