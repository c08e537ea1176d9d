//! Kubernetes API access that every role shares (DNS server now; the
//! EndpointSlice controller and the service proxy next), owned by none of them.
//!
//! - [`client`]: the one kube-rs `Client` per configuration: in-cluster
//!   service account, kubeconfig, or a plain-HTTP endpoint for tests and demos;
//!   with the client-side [`limit`]s (`apiserver_qps`/`_burst`/`_max_inflight`).
//! - [`lenient`]: decoding each listed or watched object on its own, so one
//!   malformed object cannot fail a whole list.
//! - [`leader`]: Lease-based leader election (one active controller per cluster).
//! - [`object`]: the one error type of every role's object conversions.
//! - [`retry`]: the pure error → delay policy of a watch (410 Gone relists at
//!   once; real faults back off).
//! - [`selector`]: Kubernetes label selectors (parse and match).
//!
//! Nothing here knows about DNS records, EndpointSlice planning or nftables:
//! a role's own conversions of API objects live in the role (the DNS role's
//! in [`crate::watch::convert`]).

pub mod client;
pub mod leader;
pub mod lenient;
pub mod limit;
pub mod object;
pub mod retry;
pub mod selector;
