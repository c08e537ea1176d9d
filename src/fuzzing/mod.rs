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
//!   every response re-parsed strictly ([`reparse`]).
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

use std::future::Future;
use std::sync::OnceLock;

use hickory_proto::op::Message;

use crate::dns::strict;

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

/// A response as two independent decoders see it.
#[derive(Clone, Debug)]
pub struct Reparsed {
    /// The strict walker's view ([`strict::check`]): counts match the records, no trailing bytes.
    pub summary: strict::Summary,
    /// hickory's decoding of the same bytes (OPT moved into `edns`), for the content.
    pub message: Message,
}

/// Re-parses an encoded message strictly; panics (the fuzz finding) when
/// the walker refuses it or the two decoders disagree on what it holds.
pub fn reparse(bytes: &[u8]) -> Reparsed {
    let summary = strict::check(bytes).unwrap_or_else(|e| panic!("malformed message: {e}"));
    let message = Message::from_vec(bytes)
        .unwrap_or_else(|e| panic!("strictly valid but hickory cannot decode it: {e}"));
    let counted = [
        summary.questions,
        summary.answers,
        summary.authority,
        summary.additional,
    ];
    let decoded = [
        message.queries.len(),
        message.answers.len(),
        message.authorities.len(),
        message.additionals.len() + usize::from(message.edns.is_some()),
    ];
    assert_eq!(
        counted.map(usize::from),
        decoded,
        "the two decoders count different records"
    );
    assert_eq!(
        summary.edns_payload,
        message.edns.as_ref().map(|e| e.max_payload())
    );
    Reparsed { summary, message }
}
