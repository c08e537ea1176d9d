//! The test API server (tests/support) outside the test harness: it serves
//! the Kubernetes list/watch protocol on 127.0.0.1 for the objects of a YAML
//! file, writes a kubeconfig for it, and runs until Ctrl-C — so the roles can
//! be tried by hand without a cluster:
//!
//! ```sh
//! cargo run --example apiserver -- config/seed.yaml /tmp/kubeconfig &
//! cargo run -- endpoints-controller --kubeconfig /tmp/kubeconfig
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;
use support::apiserver::ApiServer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [objects, kubeconfig] = args.as_slice() else {
        eprintln!("usage: apiserver OBJECTS.yaml KUBECONFIG-TO-WRITE");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(objects).unwrap_or_else(|e| {
        eprintln!("{objects}: {e}");
        std::process::exit(1);
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(ApiServer::start());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = match serde_json::Value::deserialize(doc) {
            Ok(v) if !v.is_null() => v,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("{objects}: {e}");
                std::process::exit(1);
            }
        };
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Service" => server.apply_json::<Service>(value),
            "Pod" => server.apply_json::<Pod>(value),
            "Endpoints" => server.apply_json::<Endpoints>(value),
            "EndpointSlice" => server.apply_json::<EndpointSlice>(value),
            "Namespace" => server.apply_json::<Namespace>(value),
            "Node" => server.apply_json::<Node>(value),
            "ConfigMap" => server.apply_json::<ConfigMap>(value),
            "Lease" => server.apply_json::<Lease>(value),
            other => {
                eprintln!("{objects}: kind {other:?} is not served");
                std::process::exit(1);
            }
        };
    }
    server.write_kubeconfig(std::path::Path::new(kubeconfig), None);
    println!(
        "serving {} (kubeconfig {kubeconfig}); Ctrl-C stops",
        server.url()
    );
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}
