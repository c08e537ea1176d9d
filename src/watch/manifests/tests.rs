//! Loader tests on text fixtures and temp files, the demo cluster, and the
//! polling loop end to end (generous timeouts, no timing thresholds).

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::index::IndexUpdate;
use crate::index::model::{Port, Protocol, ServiceKind};
use crate::k8s::selector;

/// Loads `text` as the single file `name` of a fresh directory.
fn load_text(text: &str, selector: Option<&Selector>) -> Result<Vec<Object>, ManifestError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, text).expect("write");
    load(&[path], selector)
}

fn services(objects: &[Object]) -> Vec<&model::Service> {
    objects
        .iter()
        .filter_map(|o| {
            if let Object::Service(s) = o {
                Some(s)
            } else {
                None
            }
        })
        .collect()
}

fn slices(objects: &[Object]) -> Vec<&model::EndpointSlice> {
    objects
        .iter()
        .filter_map(|o| {
            if let Object::EndpointSlice(s) = o {
                Some(s)
            } else {
                None
            }
        })
        .collect()
}

/// `kind/namespace/name` of every object, in load order.
fn keys(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .map(|o| match o {
            Object::Namespace(n) => format!("Namespace/{}", n.name),
            Object::Service(s) => format!("Service/{}/{}", s.namespace, s.name),
            Object::EndpointSlice(s) => format!("EndpointSlice/{}/{}", s.namespace, s.name),
            Object::Pod(p) => format!("Pod/{}/{}", p.namespace, p.name),
            Object::ServiceImport(i) => format!("ServiceImport/{}/{}", i.namespace, i.name),
            Object::MultiClusterSlice(m) => {
                format!("MultiClusterSlice/{}/{}", m.slice.namespace, m.slice.name)
            }
        })
        .collect()
}

const MIXED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: a, labels: {team: x}}
spec: {clusterIP: 10.96.0.1}
---
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a-1, namespace: apps, labels: {team: x}}
    status: {phase: Running, podIP: 10.0.0.1}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: a, namespace: apps}
  - apiVersion: v1
    kind: Endpoints
    metadata: {name: a, labels: {team: y}}
    subsets: [{addresses: [{ip: 10.0.0.1}]}]
---
apiVersion: v1
kind: ServiceList
items:
  - metadata: {name: b, namespace: apps}
    spec: {clusterIP: None}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data: {Corefile: ".:53 {}"}
"#;

#[test]
fn multi_document_files_and_lists_are_both_read() {
    let objects = load_text(MIXED, None).expect("loads");
    assert_eq!(
        keys(&objects),
        [
            // Implied by the objects in them (no Namespace is written).
            "Namespace/apps",
            "Namespace/default",
            "Service/default/a",
            "Service/apps/b",
            "EndpointSlice/default/a-0",
            "Pod/apps/a-1",
        ]
    );
    assert_eq!(services(&objects)[1].kind, ServiceKind::Headless);
}

#[test]
fn other_kinds_are_skipped_without_error() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n\
                apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\
                apiVersion: v2\nkind: Service\nmetadata: {name: future}\n";
    assert_eq!(load_text(text, None).expect("loads"), vec![]);
}

#[test]
fn selector_filters_labelled_kinds_but_not_namespaces() {
    let sel = selector::parse("team=x").expect("selector");
    let objects = load_text(MIXED, Some(&sel)).expect("loads");
    // Service b (no labels) and Endpoints a (team=y) are filtered out; the
    // namespaces they live in still exist.
    assert_eq!(
        keys(&objects),
        [
            "Namespace/apps",
            "Namespace/default",
            "Service/default/a",
            "Pod/apps/a-1"
        ]
    );
}

#[test]
fn namespace_labels_keeps_only_written_namespaces_that_match() {
    // The cluster tests/namespace_labels.rs serves end to end.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/namespace_labels.yaml");
    let ns_sel = selector::parse("team=dns-tests").expect("selector");
    let filters = Filters {
        labels: None,
        namespace_labels: Some(&ns_sel),
    };
    let objects = load_filtered(std::slice::from_ref(&path), filters).expect("loads");
    // Services are all sent (the index hides those of missing namespaces);
    // namespaces are only the matching written one: not `default`, not the
    // implied `implied`.
    assert_eq!(
        keys(&objects),
        [
            "Namespace/tests",
            "Service/tests/web",
            "Service/default/other",
            "Service/implied/c"
        ]
    );
    // Without the option every namespace holding an object exists.
    let all = load(&[path], None).expect("loads");
    assert_eq!(
        keys(&all)
            .into_iter()
            .filter(|k| k.starts_with("Namespace/"))
            .collect::<Vec<_>>(),
        ["Namespace/tests", "Namespace/default", "Namespace/implied"]
    );
}

const LEGACY: &str = r#"
apiVersion: v1
kind: Endpoints
metadata: {name: both, namespace: ns}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 80}]}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy-only, namespace: ns}
subsets: [{addresses: [{ip: 10.0.0.2}], ports: [{port: 80}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: both-x1, namespace: ns, labels: {kubernetes.io/service-name: both}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
"#;

#[test]
fn legacy_endpoints_count_only_for_services_without_slices() {
    let objects = load_text(LEGACY, None).expect("loads");
    let got: Vec<(&str, &str)> = slices(&objects)
        .iter()
        .map(|s| (&*s.name, &*s.service))
        .collect();
    assert_eq!(got, [("both-x1", "both"), ("legacy-only-0", "legacy-only")]);
}

#[test]
fn a_later_duplicate_replaces_an_earlier_one() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.96.0.1}\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: S, namespace: default}\nspec: {clusterIP: 10.96.0.2}\n";
    let objects = load_text(text, None).expect("loads");
    let svcs = services(&objects);
    assert_eq!(svcs.len(), 1);
    assert_eq!(
        svcs[0].kind,
        ServiceKind::ClusterIp(vec!["10.96.0.2".parse().expect("ip")])
    );
}

#[test]
fn errors_name_the_file_line_column_and_document() {
    let cases: &[(&str, &str)] = &[
        // YAML syntax: the scanner's position.
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\nkind: [\n",
            ":7:1: document 2: did not find expected node content, while parsing a flow node",
        ),
        // A field of the wrong type: located by re-reading the document.
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\n\
             metadata: {name: s}\nspec:\n  ports:\n  - port: eighty\n",
            ":10:11: document 2: spec.ports[0].port: invalid type: string \"eighty\", expected i32",
        ),
        // Inside a List: the item is named (no line: the list was already parsed).
        (
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n\
             - apiVersion: v1\n  kind: Pod\n  metadata: {name: [p]}\n",
            ": document 1, item 2: invalid type: sequence, expected a string",
        ),
        (
            "just a string\n",
            ": document 1: a document must be a Kubernetes object (a mapping)",
        ),
        (
            "metadata: {name: x}\n",
            ": document 1: the object has no apiVersion or kind",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
            ": document 1: Service has no metadata.name",
        ),
    ];
    for (text, want) in cases {
        let err = load_text(text, None).expect_err(text).to_string();
        assert!(err.ends_with(want), "{text:?}\n got: {err}\nwant: …{want}");
        assert!(err.contains("cluster.yaml"), "{err}");
    }
}

#[test]
fn directories_read_yaml_yml_and_json_files_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
    std::fs::write(dir.path().join("b.yml"), ns("b")).expect("write");
    std::fs::write(dir.path().join("a.yaml"), ns("a")).expect("write");
    std::fs::write(
        dir.path().join("c.json"),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
    )
    .expect("write");
    std::fs::write(dir.path().join(".hidden.yaml"), ns("hidden")).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not: [yaml").expect("write");
    let objects = load(&[dir.path().to_path_buf()], None).expect("loads");
    assert_eq!(
        keys(&objects),
        ["Namespace/a", "Namespace/b", "Namespace/c"]
    );
}

#[test]
fn a_missing_path_is_a_read_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("gone.yaml");
    let err = load(std::slice::from_ref(&missing), None).expect_err("missing");
    assert!(matches!(err, ManifestError::Read { .. }));
    assert_eq!(err.path(), missing);
    assert!(err.to_string().starts_with(&missing.display().to_string()));
}

#[test]
fn the_demo_cluster_loads_with_the_documented_contents() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-cluster.yaml");
    let objects = load(&[path], None).expect("demo cluster loads");
    let count = |kind: Kind| objects.iter().filter(|o| o.kind() == kind).count();
    assert_eq!(count(Kind::Namespace), 3);
    assert_eq!(count(Kind::Service), 6);
    assert_eq!(count(Kind::EndpointSlice), 6);
    assert_eq!(count(Kind::Pod), 8);

    let svcs = services(&objects);
    let svc = |ns: &str, name: &str| {
        *svcs
            .iter()
            .find(|s| (&*s.namespace, &*s.name) == (ns, name))
            .expect("service present")
    };
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let nginx = svc("default", "nginx-service");
    assert_eq!(nginx.kind, ServiceKind::ClusterIp(vec![ip("10.96.0.100")]));
    assert_eq!(
        nginx.ports,
        [Port {
            name: "service-port".into(),
            protocol: Protocol::Tcp,
            port: 80
        }]
    );
    assert_eq!(svc("demo", "web").kind, ServiceKind::Headless);
    assert_eq!(
        svc("demo", "search").kind,
        ServiceKind::ExternalName("example.org.".into())
    );
    assert_eq!(
        svc("demo", "dual").kind,
        ServiceKind::ClusterIp(vec![ip("10.96.0.50"), ip("fd00:10:96::50")])
    );
    assert_eq!(svc("kube-system", "kube-dns").ports.len(), 3);

    let all_slices = slices(&objects);
    let of = |service: &'static str| all_slices.iter().filter(move |s| &*s.service == service);
    let nginx_eps: Vec<_> = of("nginx-service").flat_map(|s| &s.endpoints).collect();
    assert_eq!(nginx_eps.len(), 4);
    assert!(nginx_eps.iter().all(|e| e.ready));
    assert_eq!(
        of("nginx-service").next().expect("slice").ports[0].port,
        9376
    );
    let web: Vec<(Option<&str>, bool)> = of("web")
        .flat_map(|s| &s.endpoints)
        .map(|e| (e.hostname.as_deref(), e.ready))
        .collect();
    assert_eq!(
        web,
        [
            (Some("web-0"), true),
            (Some("web-1"), true),
            (Some("web-2"), false)
        ]
    );
    assert_eq!(of("dual").count(), 2);
}

// === the polling loop ===

const PATIENCE: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(600);

fn ns_doc(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n---\n"))
        .collect()
}

/// The namespaces of a Batch, checking it is the Resets of every kind in order.
fn namespaces_of(update: IndexUpdate) -> Vec<String> {
    let IndexUpdate::Batch(resets) = update else {
        panic!("expected a Batch, got {update:?}");
    };
    let kinds: Vec<Kind> = resets
        .iter()
        .map(|r| match r {
            IndexUpdate::Reset { kind, .. } => *kind,
            other => panic!("expected a Reset, got {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::Service,
            Kind::EndpointSlice,
            Kind::Pod,
            Kind::Namespace,
            Kind::ServiceImport,
            Kind::MultiClusterSlice
        ]
    );
    let Some(IndexUpdate::Reset { objects, .. }) = resets.into_iter().nth(3) else {
        panic!("four resets");
    };
    keys(&objects)
}

async fn next(rx: &mut mpsc::Receiver<IndexUpdate>) -> IndexUpdate {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("an update in time")
        .expect("the source is running")
}

async fn silent(rx: &mut mpsc::Receiver<IndexUpdate>) -> bool {
    tokio::time::timeout(QUIET, rx.recv()).await.is_err()
}

fn start(
    path: &Path,
) -> (
    mpsc::Receiver<IndexUpdate>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(4);
    let token = CancellationToken::new();
    let mut source = Manifests::new(vec![path.to_path_buf()], None);
    source.interval = Duration::from_millis(20);
    let handle = tokio::spawn(source.run(tx, token.clone()));
    (rx, token, handle)
}

#[tokio::test]
async fn run_sends_the_initial_state_then_each_change_and_skips_broken_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, ns_doc(&["a"])).expect("write");
    let (mut rx, token, handle) = start(&path);

    assert_eq!(namespaces_of(next(&mut rx).await), ["Namespace/a"]);
    assert!(silent(&mut rx).await, "no update while nothing changes");

    std::fs::write(&path, ns_doc(&["a", "b"])).expect("write");
    assert_eq!(
        namespaces_of(next(&mut rx).await),
        ["Namespace/a", "Namespace/b"]
    );

    std::fs::write(&path, "kind: [\n").expect("write");
    assert!(silent(&mut rx).await, "a broken file sends nothing");

    std::fs::write(&path, ns_doc(&["c"])).expect("write");
    assert_eq!(namespaces_of(next(&mut rx).await), ["Namespace/c"]);

    token.cancel();
    tokio::time::timeout(PATIENCE, handle)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}

#[tokio::test]
async fn run_waits_for_a_first_good_load_when_the_file_starts_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("later.yaml");
    let (mut rx, token, handle) = start(&path);
    assert!(silent(&mut rx).await, "nothing to send yet");

    std::fs::write(&path, ns_doc(&["late"])).expect("write");
    assert_eq!(namespaces_of(next(&mut rx).await), ["Namespace/late"]);

    token.cancel();
    tokio::time::timeout(PATIENCE, handle)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}

#[tokio::test]
async fn run_sees_files_added_to_a_watched_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.yaml"), ns_doc(&["a"])).expect("write");
    let (mut rx, token, handle) = start(dir.path());
    assert_eq!(namespaces_of(next(&mut rx).await), ["Namespace/a"]);

    std::fs::write(dir.path().join("b.yaml"), ns_doc(&["b"])).expect("write");
    assert_eq!(
        namespaces_of(next(&mut rx).await),
        ["Namespace/a", "Namespace/b"]
    );

    token.cancel();
    tokio::time::timeout(PATIENCE, handle)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}

#[test]
fn service_imports_and_imported_slices_are_read_for_multicluster() {
    let text = "\
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: myservice, namespace: test}
spec: {type: ClusterSetIP, ips: [10.42.42.42], ports: [{name: https, protocol: TCP, port: 443}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: headless-a
  namespace: test
  labels: {multicluster.kubernetes.io/service-name: headless, multicluster.kubernetes.io/source-cluster: clustera}
addressType: IPv4
endpoints: [{addresses: [10.3.0.100], hostname: my-pet-1}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImportList
items: [{metadata: {name: headless}, spec: {type: Headless}}]
";
    let objects = load_text(text, None).expect("loads");
    assert_eq!(
        keys(&objects),
        [
            "Namespace/default",
            "Namespace/test",
            "ServiceImport/test/myservice",
            "ServiceImport/default/headless",
            "MultiClusterSlice/test/headless-a",
        ]
    );
    // The imported slice is not one of this cluster's.
    assert!(slices(&objects).is_empty());
    let imported = objects.iter().find_map(|o| match o {
        Object::MultiClusterSlice(m) => Some(m),
        _ => None,
    });
    assert_eq!(imported.map(|m| &*m.cluster), Some("clustera"));
}
