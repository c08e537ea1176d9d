//! Reading deploy/ for the manifest tests: every document parsed into its
//! k8s-openapi type (an unknown kind or a field the type rejects fails the
//! test), plus the cross-reference checks (`checks`) and the RBAC coverage
//! derived from the API requests the roles really make (`rbac`).

#![allow(unreachable_pub)]

pub mod checks;
pub mod rbac;

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

/// Every object in deploy/, typed.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub deployments: Vec<Deployment>,
    pub daemonsets: Vec<DaemonSet>,
    pub services: Vec<Service>,
    pub config_maps: Vec<ConfigMap>,
    pub service_accounts: Vec<ServiceAccount>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub pdbs: Vec<PodDisruptionBudget>,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn typed<T: serde::de::DeserializeOwned>(doc: serde_yaml::Value, file: &Path) -> T {
    serde_yaml::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The files kustomization.yaml lists, in order.
pub fn kustomization_resources() -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("kustomization.yaml")).expect("kustomization");
    let v: serde_yaml::Value = serde_yaml::from_str(&text).expect("kustomization yaml");
    v["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_owned())
        .collect()
}

/// Parse every resource of the kustomization.
pub fn load() -> Manifests {
    let mut m = Manifests::default();
    for name in kustomization_resources() {
        let path = dir().join(&name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc = serde_yaml::Value::deserialize(doc).expect("yaml");
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            match kind.as_str() {
                "Deployment" => m.deployments.push(typed(doc, &path)),
                "DaemonSet" => m.daemonsets.push(typed(doc, &path)),
                "Service" => m.services.push(typed(doc, &path)),
                "ConfigMap" => m.config_maps.push(typed(doc, &path)),
                "ServiceAccount" => m.service_accounts.push(typed(doc, &path)),
                "ClusterRole" => m.cluster_roles.push(typed(doc, &path)),
                "ClusterRoleBinding" => m.cluster_role_bindings.push(typed(doc, &path)),
                "Role" => m.roles.push(typed(doc, &path)),
                "RoleBinding" => m.role_bindings.push(typed(doc, &path)),
                "PodDisruptionBudget" => m.pdbs.push(typed(doc, &path)),
                other => panic!("{name}: unexpected kind {other:?}"),
            }
        }
    }
    m
}

use serde::Deserialize as _;
