//! Fuzz target `manifests`: manifest YAML → the manifests source's parser → the index.
//! The body is `clusterdns::fuzzing::manifests::run`, shared with `tests/fuzz_replay.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clusterdns::fuzzing::manifests::run(data);
});
