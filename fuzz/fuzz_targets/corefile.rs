//! Fuzz target `corefile`: Corefile text → parse + validate (what `clusterdns check` does).
//! The body is `clusterdns::fuzzing::corefile::run`, shared with `tests/fuzz_replay.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clusterdns::fuzzing::corefile::run(data);
});
