//! Writes the seed inputs of every target into `fuzz/corpus/<target>/`
//! (`seed-*` files), from the repository's own material:
//! - request: wire queries for every name the fuzz cluster and plugins answer;
//! - corefile: `config/Corefile*` and the harness's Corefiles (every plugin, imports, env);
//! - api_object: each object of the demo cluster and test fixture, as JSON;
//! - manifests: the demo cluster, the test fixture, the big headless service.
//!
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::path::{Path, PathBuf};

use clusterdns::fuzzing::{cluster, corefile, request};
use serde::Deserialize;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write(target: &str, label: &str, data: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("seed-{safe}"));
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every object of a manifest text (List items unpacked), as JSON.
fn objects_as_json(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc).unwrap_or_else(|e| panic!("yaml: {e}"));
        let items = match value.get("items").and_then(|i| i.as_array()) {
            Some(items) => items.clone(),
            None => vec![value],
        };
        for item in items {
            let kind = item["kind"].as_str().unwrap_or("none").to_string();
            let name = item["metadata"]["name"]
                .as_str()
                .unwrap_or("none")
                .to_string();
            let json = serde_json::to_vec(&item).unwrap_or_else(|e| panic!("json: {e}"));
            out.push((format!("{kind}-{name}"), json));
        }
    }
    out
}

fn main() {
    for (label, bytes) in request::seeds() {
        write("request", &label, &bytes);
    }

    write(
        "corefile",
        "config-Corefile",
        read("config/Corefile").as_bytes(),
    );
    write(
        "corefile",
        "config-Corefile.kubeadm",
        read("config/Corefile.kubeadm").as_bytes(),
    );
    write("corefile", "request-target", request::COREFILE.as_bytes());
    for (label, text) in corefile::SEEDS {
        write("corefile", label, text.as_bytes());
    }

    let demo = cluster::DEMO;
    let fixture = read("tests/fixtures/testns.yaml");
    let big = cluster::big_headless();
    for (label, text) in [
        ("demo", demo),
        ("testns", fixture.as_str()),
        ("big", big.as_str()),
    ] {
        write("manifests", label, text.as_bytes());
        for (name, json) in objects_as_json(text) {
            write("api_object", &format!("{label}-{name}"), &json);
        }
    }
    let endpoints = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "legacy", "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": "10.1.0.1", "hostname": "a",
                           "targetRef": {"kind": "Pod", "name": "legacy-a"}}],
            "notReadyAddresses": [{"ip": "fd00::1"}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
        }]
    });
    write(
        "api_object",
        "legacy-endpoints",
        endpoints.to_string().as_bytes(),
    );
}
