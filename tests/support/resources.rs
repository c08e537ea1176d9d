//! The table of resource types the test API server serves, and the discovery
//! documents built from it.
//!
//! Invariant: every request path, every stored object and every discovery
//! document is resolved through [`RESOURCES`], so adding a row is all it takes
//! to serve a new type (list, watch, CRUD and discovery alike).

use serde_json::{Value, json};

/// One servable resource type: where it lives in the URL space and what it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version inside the group.
    pub version: &'static str,
    /// Lower-case plural used in URLs (`services`).
    pub plural: &'static str,
    /// Kind of one object (`Service`).
    pub kind: &'static str,
    /// Whether objects live inside a namespace.
    pub namespaced: bool,
}

/// Every type the server knows.
pub const RESOURCES: &[ResourceType] = &[
    core("services", "Service", true),
    core("endpoints", "Endpoints", true),
    core("pods", "Pod", true),
    core("namespaces", "Namespace", false),
    core("configmaps", "ConfigMap", true),
    core("nodes", "Node", false),
    ResourceType {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
    },
    // The MCS API's CRD (the kubernetes plugin's `multicluster` option).
    ResourceType {
        group: "multicluster.x-k8s.io",
        version: "v1alpha1",
        plural: "serviceimports",
        kind: "ServiceImport",
        namespaced: true,
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
    },
];

const fn core(plural: &'static str, kind: &'static str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: "",
        version: "v1",
        plural,
        kind,
        namespaced,
    }
}

impl ResourceType {
    /// `v1` or `group/version`, as written in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The type served at `group/version/plural`.
    pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The type of a k8s-openapi resource.
    pub fn of<K: k8s_openapi::Resource>() -> Option<&'static ResourceType> {
        Self::find(K::GROUP, K::VERSION, K::URL_PATH_SEGMENT)
    }
}

/// Body of `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-clusterdns-test",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Body of `/api` (the core group's versions).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_doc(group: &str) -> Value {
    let versions: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

fn group_versions(group: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        if !out.contains(&r.version) {
            out.push(r.version);
        }
    }
    out
}

/// Body of `/apis` (every named group).
pub fn group_list() -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    let groups: Vec<Value> = groups.into_iter().map(group_doc).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Body of `/apis/<group>`, if the group exists.
pub fn group(group: &str) -> Option<Value> {
    if group_versions(group).is_empty() {
        return None;
    }
    let mut doc = group_doc(group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// Body of `/api/v1` or `/apis/<group>/<version>`, if that group version exists.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let verbs = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": verbs
            })
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources
    }))
}
