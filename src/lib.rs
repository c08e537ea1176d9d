//! clusterdns: Kubernetes cluster DNS, a CoreDNS drop-in, and the endpoints
//! controller (`clusterdns endpoints-controller`: EndpointSlices and Endpoints
//! from Services and Pods, leader-elected), and the nftables service proxy
//! (`clusterdns proxy`: kube-proxy's nftables mode).
//!
//! # Layout
//!
//! ```text
//!  manifests / API watch ──▶ watch ──IndexUpdate──▶ index (pure) ──snapshot──┐
//!                                                                            ▼
//!  UDP/TCP ──▶ dns (own loops)      ──Query──▶ plugin chain ──▶ kubernetes ──▶ lookup
//!                                                    └──▶ other plugins (Corefile order table)
//! ```
//!
//! - [`corefile`]: the Corefile grammar (lexer, imports, snippets, env); syntax only, no I/O but reading files.
//! - [`config`]: a parsed Corefile turned into validated server configs, each directive parsed by its plugin.
//! - [`dns`]: UDP and TCP loops on one wire path: request → [`dns::Query`] → response.
//! - [`plugin`]: one module per Corefile directive and the fixed execution order.
//! - [`index`]: the pure cluster index and every Kubernetes DNS record rule.
//! - [`watch`]: sources that turn cluster objects into index updates: kube-rs watches and manifest files.
//! - [`endpointslice`]: the endpoints controller: pure planners (slices, Endpoints, mirroring)
//!   and the kube-runtime shell that applies them ([`endpointslice::role`] wires the subcommand).
//! - [`proxy`]: the nftables service proxy: pure endpoint selection, ruleset rendering and
//!   diffing, and the shell that runs `nft`.
//! - DNS, the controller and the proxy share only [`k8s`]; none imports another.
//! - [`k8s`]: what every role shares for the Kubernetes API (client, limits, lenient decoding,
//!   retry policy, label selectors, Lease leader election); it depends on no role.
//! - [`cli`], [`telemetry`], [`pidfile`]: the binary's command line, logging and pid file;
//!   [`metrics`]: the Prometheus registry every subsystem registers into.
//! - [`migrate`]: `clusterdns migrate`, a kube-dns ConfigMap or CoreDNS Corefile into ours (pure, plus a thin I/O shell).
//! - [`tls`]: certificates, keys and CAs from PEM files, for DNS over TLS/HTTPS (client and server).
//! - [`admin`]: the HTTP endpoints (`/health`, `/ready`) plugins register.
//! - [`app`]: wiring of the above into a running server; [`shutdown`]: signals.
//! - [`fuzzing`]: the bodies of the `fuzz/` targets, shared with `tests/fuzz_replay.rs`.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod corefile;
pub mod dns;
pub mod endpointslice;
pub mod fuzzing;
pub mod index;
pub mod k8s;
pub mod metrics;
pub mod migrate;
pub mod pidfile;
pub mod plugin;
pub mod proxy;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod watch;
