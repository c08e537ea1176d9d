//! Replays every committed fuzz input — the minimized corpora in
//! `fuzz/corpus/<target>/` and the crash reproducers in
//! `fuzz/regressions/<target>/` — through the same target bodies the
//! cargo-fuzz targets run (`clusterdns::fuzzing`), so CI checks every input
//! ever found without running a timed fuzz. A body panics when a property
//! breaks; each failing file is named.
//!
//! The last tests check the harness itself: known inputs go the whole way
//! (a real answer, a real config, a real index), so a harness that silently
//! refused everything could not pass.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use clusterdns::fuzzing::{api_object, corefile, manifests, request};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the folder is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs every corpus and regression file of `target` through `body`; the
/// corpus must not be empty. Panics naming every input that broke a property.
fn replay(target: &str, body: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is empty: nothing would be replayed"
    );
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs break a property:\n{}",
        failed.join("\n")
    );
}

#[test]
fn request_corpus_and_regressions_replay_cleanly() {
    replay("request", |d| {
        request::run(d);
    });
}

#[test]
fn corefile_corpus_and_regressions_replay_cleanly() {
    replay("corefile", |d| {
        corefile::run(d);
    });
}

#[test]
fn api_object_corpus_and_regressions_replay_cleanly() {
    replay("api_object", |d| {
        api_object::run(d);
    });
}

#[test]
fn manifests_corpus_and_regressions_replay_cleanly() {
    replay("manifests", |d| {
        manifests::run(d);
    });
}

fn answered(o: &request::Outcome) -> &hickory_proto::op::Message {
    match o {
        request::Outcome::Answered(r) => &r.message,
        request::Outcome::Dropped => panic!("dropped"),
    }
}

#[test]
fn the_request_harness_answers_a_demo_service_from_the_index() {
    let q = request::query(
        9,
        "nginx-service.default.svc.cluster.local.",
        RecordType::A,
        None,
    );
    for o in request::run(&q) {
        let s = answered(&o);
        assert_eq!(s.metadata.response_code, ResponseCode::NoError);
        let ips: Vec<String> = s
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(ips, ["10.96.0.100"]);
    }
}

#[test]
fn the_request_harness_answers_external_addresses_through_k8s_external() {
    let q = request::query(11, "lb.default.ext.example.", RecordType::A, None);
    for o in request::run(&q) {
        let s = answered(&o);
        assert_eq!(s.metadata.response_code, ResponseCode::NoError);
        let mut ips: Vec<String> = s
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.to_string()),
                _ => None,
            })
            .collect();
        ips.sort(); // loadbalance rotates the answer
        assert_eq!(ips, ["192.0.2.80", "198.51.100.80"]);
    }
}

#[test]
fn the_request_harness_truncates_the_big_headless_service_over_udp_only() {
    let q = request::query(10, "big.default.svc.cluster.local.", RecordType::A, None);
    let [udp, tcp] = request::run(&q);
    let (udp, tcp) = (answered(&udp), answered(&tcp));
    assert!(udp.metadata.truncation);
    assert!(udp.answers.len() < 40);
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 40);
}

#[test]
fn the_corefile_harness_accepts_the_demo_corefile_and_refuses_a_typo() {
    let demo = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/Corefile"))
        .expect("config/Corefile");
    assert!(matches!(corefile::run(&demo), corefile::Outcome::Valid(c) if c.servers.len() == 1));
    match corefile::run(b".:53 {\n    kubernets cluster.local\n}\n") {
        corefile::Outcome::Invalid(errors) => {
            assert_eq!((errors[0].line, errors[0].col), (2, 5));
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn the_api_object_harness_indexes_and_answers_a_service() {
    let svc = br#"{"apiVersion":"v1","kind":"Service",
        "metadata":{"name":"Fuzzed","namespace":"default"},
        "spec":{"clusterIP":"10.96.7.7","ports":[{"name":"http","port":80}]}}"#;
    match api_object::run(svc) {
        api_object::Outcome::Applied { objects, records } => {
            assert_eq!(objects.len(), 1);
            // A, SRV, the port's SRV and the PTR answer; AAAA/ANY add SOA or more.
            assert!(records >= 4, "only {records} records");
        }
        other => panic!("not applied: {other:?}"),
    }
    assert!(matches!(
        api_object::run(br#"{"kind":"Service","metadata":{"name":"x"}}"#),
        api_object::Outcome::Refused(_)
    ));
}

#[test]
fn the_manifests_harness_loads_the_demo_cluster() {
    match manifests::run(clusterdns::fuzzing::cluster::DEMO.as_bytes()) {
        manifests::Outcome::Loaded(objects) => {
            let services = objects
                .iter()
                .filter(|o| matches!(o, clusterdns::index::Object::Service(_)))
                .count();
            assert_eq!(
                services, 6,
                "nginx-service, kubernetes, kube-dns, web, search, dual"
            );
        }
        other => panic!("not loaded: {other:?}"),
    }
}

#[test]
fn the_corefile_seeds_are_valid_configs() {
    for (label, text) in corefile::SEEDS {
        match corefile::run(text.as_bytes()) {
            corefile::Outcome::Valid(_) => {}
            other => panic!("seed {label}: {other:?}"),
        }
    }
}
