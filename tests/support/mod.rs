//! Support code for integration tests that need a Kubernetes API server.
//!
//! `support::apiserver::ApiServer` is an in-process server that speaks the
//! list/watch protocol well enough for an unmodified kube-rs client, and can
//! inject API faults (`support::faults`). `support::netns` builds node, pod
//! and client network namespaces for end-to-end tests of the service proxy. Each test
//! binary uses a subset of it, hence the `dead_code` allowance.

#![allow(dead_code, unreachable_pub)]

pub mod apiserver;
pub mod faults;
pub mod fixtures;
mod handlers;
mod http;
pub mod netns;
pub mod resources;
mod selector;
pub mod store;
mod tls;
mod watch;
