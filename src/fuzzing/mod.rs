//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_replay.rs`, which replays every committed corpus and
//! regression input through the same functions under `cargo test`.
//!
//! Each `run` takes arbitrary bytes, drives one input path of the server with
//! no sockets and no network, and panics when a property is broken (a
//! malformed response, a config accepted then failing to build, an object
//! that breaks the index). Everything else — bad input refused with an error
//! — is the expected outcome. Each returns a small summary so tests can check
//! that a known input really went the whole way.
//!
//! - [`request`]: wire bytes → parse → plugin chain over a populated index → encode, with
//!   every response re-parsed strictly ([`strict`]).
//! - [`corefile`]: Corefile text → parse → validate → build the plugins.
//! - [`api_object`]: Service / EndpointSlice / Endpoints / Pod / Namespace JSON → conversion →
//!   index apply, lookups and delete.
//! - [`manifests`]: manifest YAML → the manifests source's parser → index.
//!
//! Not part of the server's API: nothing in the server calls into this module.

pub mod api_object;
pub mod cluster;
pub mod corefile;
pub mod manifests;
pub mod request;
pub mod strict;

use std::future::Future;
use std::sync::OnceLock;

/// Runs `fut` to completion on one process-wide current-thread runtime
/// (plugins may spawn tasks or use timers; a fuzz input never waits on I/O).
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz harness: building a runtime: {e}"))
    })
    .block_on(fut)
}
