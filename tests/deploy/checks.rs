//! Cross-reference checks of deploy/, each returning the problems it finds
//! (empty = fine), so the negative tests can break a manifest in memory and
//! see the exact problem reported.

use std::collections::BTreeMap;

use clusterdns::corefile::{Corefile, parse_key};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Manifests;

/// (kind/name, namespace, pod template, selector labels) of every workload.
fn workloads(m: &Manifests) -> Vec<(String, String, PodTemplateSpec, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for d in &m.deployments {
        let spec = d.spec.clone().unwrap_or_default();
        out.push((
            format!("Deployment/{}", d.metadata.name.clone().unwrap_or_default()),
            d.metadata.namespace.clone().unwrap_or_default(),
            spec.template,
            spec.selector.match_labels.unwrap_or_default(),
        ));
    }
    for d in &m.daemonsets {
        let spec = d.spec.clone().unwrap_or_default();
        out.push((
            format!("DaemonSet/{}", d.metadata.name.clone().unwrap_or_default()),
            d.metadata.namespace.clone().unwrap_or_default(),
            spec.template,
            spec.selector.match_labels.unwrap_or_default(),
        ));
    }
    out
}

fn labels(t: &PodTemplateSpec) -> BTreeMap<String, String> {
    t.metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Workload selectors match their pods; Services and PDBs select some pods.
pub fn selectors(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let all = workloads(m);
    for (name, _, template, selector) in &all {
        if !selects(selector, &labels(template)) {
            problems.push(format!(
                "{name}: selector {selector:?} does not match its pod labels"
            ));
        }
    }
    let selected = |ns: &str, sel: &BTreeMap<String, String>| {
        all.iter()
            .any(|(_, wns, t, _)| wns == ns && selects(sel, &labels(t)))
    };
    for s in &m.services {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let sel = s
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if !selected(&ns, &sel) {
            problems.push(format!(
                "Service {ns}/{}: selector {sel:?} selects no pods",
                s.metadata.name.clone().unwrap_or_default()
            ));
        }
    }
    for p in &m.pdbs {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let sel = p
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        if !selected(&ns, &sel) {
            problems.push(format!(
                "PodDisruptionBudget {ns}: selector {sel:?} selects no pods"
            ));
        }
    }
    problems
}

/// ServiceAccounts named by workloads and bindings exist, and so do the
/// roles the bindings name.
pub fn accounts(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let sa_exists = |ns: &str, name: &str| {
        m.service_accounts.iter().any(|sa| {
            sa.metadata.namespace.as_deref() == Some(ns)
                && sa.metadata.name.as_deref() == Some(name)
        })
    };
    for (name, ns, t, _) in workloads(m) {
        let sa = t
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        if !sa_exists(&ns, &sa) {
            problems.push(format!("{name}: ServiceAccount {ns}/{sa} is not defined"));
        }
    }
    let subjects = m
        .cluster_role_bindings
        .iter()
        .map(|b| (b.subjects.clone().unwrap_or_default(), &b.role_ref))
        .chain(
            m.role_bindings
                .iter()
                .map(|b| (b.subjects.clone().unwrap_or_default(), &b.role_ref)),
        );
    for (subjects, role_ref) in subjects {
        for s in subjects.iter().filter(|s| s.kind == "ServiceAccount") {
            let ns = s.namespace.clone().unwrap_or_default();
            if !sa_exists(&ns, &s.name) {
                problems.push(format!(
                    "binding to undefined ServiceAccount {ns}/{}",
                    s.name
                ));
            }
        }
        let found = match role_ref.kind.as_str() {
            "ClusterRole" => m
                .cluster_roles
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(&role_ref.name)),
            _ => m
                .roles
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(&role_ref.name)),
        };
        if !found {
            problems.push(format!(
                "binding to undefined {} {}",
                role_ref.kind, role_ref.name
            ));
        }
    }
    problems
}

/// The container port a probe or Service targetPort names (number or name).
fn resolve(c: &Container, port: &IntOrString) -> Option<(i32, String)> {
    c.ports.iter().flatten().find_map(|p| {
        let hit = match port {
            IntOrString::Int(n) => p.container_port == *n,
            IntOrString::String(s) => p.name.as_deref() == Some(s.as_str()),
        };
        hit.then(|| {
            (
                p.container_port,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            )
        })
    })
}

fn port_of(addr: &str, default: i32) -> i32 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(default)
}

/// The DNS Deployment (pods `k8s-app: kube-dns`) runs the Corefile of its
/// ConfigMap, and its ports, probes and Service agree with that Corefile.
pub fn dns_wiring(m: &Manifests, corefile: &Corefile) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, _, template, _)) = workloads(m)
        .into_iter()
        .find(|(_, _, t, _)| labels(t).get("k8s-app").map(String::as_str) == Some("kube-dns"))
    else {
        return vec!["no workload with pods labelled k8s-app=kube-dns".into()];
    };
    let spec = template.spec.clone().unwrap_or_default();
    let Some(c) = spec.containers.first() else {
        return vec!["DNS pod has no container".into()];
    };
    // -conf PATH is the ConfigMap's Corefile as mounted.
    let args = c.args.clone().unwrap_or_default();
    let conf = args
        .iter()
        .position(|a| a == "-conf")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_default();
    let mounted = c.volume_mounts.iter().flatten().find_map(|vm| {
        let vol = spec.volumes.iter().flatten().find(|v| v.name == vm.name)?;
        let cm = vol.config_map.as_ref()?;
        let item = cm.items.iter().flatten().find(|i| i.key == "Corefile")?;
        Some((format!("{}/{}", vm.mount_path, item.path), cm.name.clone()))
    });
    match mounted {
        Some((path, cm)) if path == conf => {
            let has = m.config_maps.iter().any(|c| {
                c.metadata.name.as_deref() == Some(cm.as_str())
                    && c.data.as_ref().is_some_and(|d| d.contains_key("Corefile"))
            });
            if !has {
                problems.push(format!("ConfigMap {cm} with a Corefile key is not defined"));
            }
        }
        other => problems.push(format!(
            "-conf {conf:?} is not the mounted Corefile ({other:?})"
        )),
    }
    // DNS ports of every server block, UDP and TCP.
    for block in &corefile.blocks {
        for key in &block.keys {
            for zone in parse_key(key).unwrap_or_default() {
                let port = i32::from(zone.port.unwrap_or(53));
                for proto in ["UDP", "TCP"] {
                    let ok = c.ports.iter().flatten().any(|p| {
                        p.container_port == port && p.protocol.as_deref().unwrap_or("TCP") == proto
                    });
                    if !ok {
                        problems.push(format!("no container port {port}/{proto} for {}", key.text));
                    }
                }
            }
        }
    }
    // Probes and metrics where the plugins serve them.
    let directive = |name: &str| {
        corefile
            .blocks
            .iter()
            .flat_map(|b| &b.directives)
            .find(|d| d.name.text == name)
    };
    let probe_port = |probe: Option<&k8s_openapi::api::core::v1::Probe>, path: &str| {
        let get = probe.and_then(|p| p.http_get.as_ref())?;
        (get.path.as_deref() == Some(path)).then(|| resolve(c, &get.port).map(|(p, _)| p))?
    };
    if let Some(d) = directive("health") {
        let want = port_of(d.args.first().map_or(":8080", |a| a.text.as_str()), 8080);
        if probe_port(c.liveness_probe.as_ref(), "/health") != Some(want) {
            problems.push(format!("liveness probe is not GET /health on {want}"));
        }
    }
    if let Some(d) = directive("ready") {
        let want = port_of(d.args.first().map_or(":8181", |a| a.text.as_str()), 8181);
        if probe_port(c.readiness_probe.as_ref(), "/ready") != Some(want) {
            problems.push(format!("readiness probe is not GET /ready on {want}"));
        }
    }
    if let Some(d) = directive("prometheus") {
        let want = port_of(d.args.first().map_or(":9153", |a| a.text.as_str()), 9153);
        if resolve(c, &IntOrString::Int(want)).is_none() {
            problems.push(format!("no container port {want} for prometheus"));
        }
    }
    // The kube-dns Service: CoreDNS's port names, each reaching a container port.
    let Some(svc) = m
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("kube-dns"))
    else {
        problems.push("no Service kube-dns".into());
        return problems;
    };
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    for (name, port, proto) in [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
    ] {
        let Some(p) = ports.iter().find(|p| p.name.as_deref() == Some(name)) else {
            problems.push(format!("Service kube-dns has no port named {name}"));
            continue;
        };
        let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
        let proto_ok = p.protocol.as_deref().unwrap_or("TCP") == proto;
        match resolve(c, &target) {
            Some((n, cp)) if p.port == port && proto_ok && cp == proto && n == port => {}
            other => problems.push(format!(
                "Service port {name} ({}/{:?} → {target:?}) does not reach container port {port}/{proto}: {other:?}",
                p.port, p.protocol
            )),
        }
    }
    problems
}

/// The DNS pod is locked down as the issue asks: non-root, read-only root,
/// only NET_BIND_SERVICE, no privilege escalation, seccomp RuntimeDefault.
pub fn dns_hardening(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(d) = m
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("coredns"))
    else {
        return vec!["no Deployment coredns".into()];
    };
    let pod = d
        .spec
        .clone()
        .unwrap_or_default()
        .template
        .spec
        .unwrap_or_default();
    let psc = pod.security_context.clone().unwrap_or_default();
    if psc.run_as_non_root != Some(true) {
        problems.push("runAsNonRoot is not true".into());
    }
    if psc.seccomp_profile.map(|s| s.type_) != Some("RuntimeDefault".into()) {
        problems.push("seccomp profile is not RuntimeDefault".into());
    }
    if pod.priority_class_name.as_deref() != Some("system-cluster-critical") {
        problems.push("priorityClassName is not system-cluster-critical".into());
    }
    for c in &pod.containers {
        let sc = c.security_context.clone().unwrap_or_default();
        if sc.read_only_root_filesystem != Some(true) {
            problems.push(format!("{}: root filesystem writable", c.name));
        }
        if sc.allow_privilege_escalation != Some(false) {
            problems.push(format!("{}: privilege escalation allowed", c.name));
        }
        let caps = sc.capabilities.unwrap_or_default();
        if caps.add.unwrap_or_default() != ["NET_BIND_SERVICE"]
            || caps.drop.unwrap_or_default() != ["ALL"]
        {
            problems.push(format!(
                "{}: capabilities are not exactly NET_BIND_SERVICE",
                c.name
            ));
        }
        if c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_none()
        {
            problems.push(format!("{}: no memory limit", c.name));
        }
    }
    problems
}
