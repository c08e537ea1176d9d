//! Fuzz target `request`: raw bytes as a DNS request → the whole request path, responses re-parsed strictly.
//! The body is `clusterdns::fuzzing::request::run`, shared with `tests/fuzz_replay.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clusterdns::fuzzing::request::run(data);
});
