//! RBAC coverage derived from what the roles really do: each role runs
//! against its own test API server, whose request log names every call
//! (`LIST services`, `WATCH endpointslices`, `REPLACE leases kube-system/x`);
//! each call becomes the RBAC verb, group and resource it needs, and must be
//! allowed by the rules bound to the role's ServiceAccount in deploy/.
//! Nothing here lists permissions by hand.

use std::collections::BTreeSet;

use crate::support::resources::RESOURCES;

use super::Manifests;

/// One API call as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub verb: String,
    pub group: String,
    pub resource: String,
    /// `None` for a cluster-wide call (all namespaces or a cluster object).
    pub namespace: Option<String>,
}

/// The calls in a request log (fault lines and unknown verbs ignored).
pub fn requests(log: &[String]) -> BTreeSet<Request> {
    let mut out = BTreeSet::new();
    for line in log {
        let mut words = line.split_whitespace();
        let (Some(verb), Some(plural)) = (words.next(), words.next()) else {
            continue;
        };
        let verb = match verb {
            "LIST" => "list",
            "WATCH" => "watch",
            "GET" => "get",
            "CREATE" => "create",
            "REPLACE" => "update",
            "PATCH" | "APPLY" => "patch",
            "DELETE" => "delete",
            "DELETECOLLECTION" => "deletecollection",
            _ => continue,
        };
        let Some(rt) = RESOURCES.iter().find(|r| r.plural == plural) else {
            continue;
        };
        let namespace = words.next().and_then(|w| {
            w.strip_prefix("ns=")
                .map(str::to_owned)
                .or_else(|| w.split_once('/').map(|(ns, _)| ns.to_owned()))
        });
        out.insert(Request {
            verb: verb.into(),
            group: rt.group.into(),
            resource: rt.plural.into(),
            namespace,
        });
    }
    out
}

fn allows(rules: &[k8s_openapi::api::rbac::v1::PolicyRule], r: &Request) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
    };
    rules.iter().any(|rule| {
        has(&rule.api_groups, &r.group)
            && has(&rule.resources, &r.resource)
            && rule.verbs.iter().any(|v| *v == r.verb || v == "*")
    })
}

/// The calls of `requests` that the ServiceAccount `ns/name` may not make.
pub fn uncovered(m: &Manifests, ns: &str, name: &str, requests: &BTreeSet<Request>) -> Vec<String> {
    let bound = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == name && s.namespace.as_deref() == Some(ns)
        })
    };
    // Cluster-wide grants: ClusterRoles through ClusterRoleBindings.
    let cluster: Vec<_> = m
        .cluster_role_bindings
        .iter()
        .filter(|b| bound(&b.subjects) && b.role_ref.kind == "ClusterRole")
        .filter_map(|b| {
            m.cluster_roles
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(&b.role_ref.name))
        })
        .flat_map(|r| r.rules.clone().unwrap_or_default())
        .collect();
    // Namespaced grants: Roles through RoleBindings of the same namespace.
    let namespaced: Vec<(String, Vec<_>)> = m
        .role_bindings
        .iter()
        .filter(|b| bound(&b.subjects) && b.role_ref.kind == "Role")
        .filter_map(|b| {
            let bns = b.metadata.namespace.clone().unwrap_or_default();
            m.roles
                .iter()
                .find(|r| {
                    r.metadata.name.as_deref() == Some(&b.role_ref.name)
                        && r.metadata.namespace.as_deref() == Some(bns.as_str())
                })
                .map(|r| (bns, r.rules.clone().unwrap_or_default()))
        })
        .collect();
    requests
        .iter()
        .filter(|r| {
            let in_ns = namespaced.iter().any(|(bns, rules)| {
                r.namespace.as_deref() == Some(bns.as_str()) && allows(rules, r)
            });
            !(allows(&cluster, r) || in_ns)
        })
        .map(|r| {
            format!(
                "{ns}/{name} may not {} {}{} ({})",
                r.verb,
                if r.group.is_empty() {
                    String::new()
                } else {
                    format!("{}/", r.group)
                },
                r.resource,
                r.namespace
                    .as_deref()
                    .map_or("all namespaces".to_owned(), |n| format!("in {n}"))
            )
        })
        .collect()
}
