//! Fuzz target `api_object`: one API object as JSON → conversion → the index.
//! The body is `clusterdns::fuzzing::api_object::run`, shared with `tests/fuzz_replay.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clusterdns::fuzzing::api_object::run(data);
});
