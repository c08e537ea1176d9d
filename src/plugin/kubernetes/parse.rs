//! Parsing the `kubernetes` directive with CoreDNS's option names and defaults.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::index::PodMode;

/// Where the cluster state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The Kubernetes API (in-cluster by default, or `endpoint` / `kubeconfig`).
    Api {
        /// `endpoint URL`.
        endpoint: Option<String>,
        /// `kubeconfig PATH [CONTEXT]`.
        kubeconfig: Option<(PathBuf, Option<String>)>,
        /// `tls CERT KEY CACERT`.
        tls: Option<[PathBuf; 3]>,
    },
    /// `manifests PATH...` (ours): YAML files or directories, re-read on change.
    Manifests(Vec<PathBuf>),
}

/// The validated `kubernetes` directive.
#[derive(Clone, Debug)]
pub struct KubernetesConfig {
    /// Zones from the arguments; empty means "the server block's zones".
    pub zones: Vec<Name>,
    /// Where objects come from.
    pub source: Source,
    /// `namespaces`.
    pub namespaces: Option<HashSet<Box<str>>>,
    /// `namespace_labels` (validated; applied by both sources, see the plugin docs).
    pub namespace_labels: Option<String>,
    /// `labels` selector, validated.
    pub labels: Option<crate::watch::selector::Selector>,
    /// `pods`.
    pub pods: PodMode,
    /// `endpoint_pod_names`.
    pub endpoint_pod_names: bool,
    /// `ttl` (0–3600, default 5).
    pub ttl: u32,
    /// `noendpoints`.
    pub noendpoints: bool,
    /// `fallthrough [ZONES]`: `None` off, `Some(empty)` every zone.
    pub fallthrough: Option<Vec<Name>>,
    /// `ignore empty_service`.
    pub ignore_empty_service: bool,
    /// `startup_timeout` (default 5s).
    pub startup_timeout: Duration,
}

/// Parse the directive.
pub fn parse(d: &mut Dispenser<'_>) -> Result<KubernetesConfig, CorefileError> {
    let mut cfg = KubernetesConfig {
        zones: d.remaining().iter().map(zone).collect::<Result<_, _>>()?,
        source: Source::Api {
            endpoint: None,
            kubeconfig: None,
            tls: None,
        },
        namespaces: None,
        namespace_labels: None,
        labels: None,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        ttl: 5,
        noendpoints: false,
        fallthrough: None,
        ignore_empty_service: false,
        startup_timeout: Duration::from_secs(5),
    };
    let mut manifests: Vec<PathBuf> = Vec::new();
    let (mut endpoint, mut kubeconfig, mut tls) = (None, None, None);
    for sub in d.block() {
        let mut sd = Dispenser::new(sub);
        let prop = sub.name.text.as_str();
        match prop {
            "endpoint" => {
                let url = sd.expect_arg("URL")?;
                if !(url.text.starts_with("http://") || url.text.starts_with("https://")) {
                    return Err(url.err("kubernetes: endpoint must be an http:// or https:// URL"));
                }
                endpoint = Some(url.text.clone());
                let _ = sd.remaining(); // CoreDNS: extra endpoints are deprecated and ignored
            }
            "tls" => {
                let c = sd.expect_arg("CERT")?;
                let k = sd.expect_arg("KEY")?;
                let ca = sd.expect_arg("CACERT")?;
                sd.expect_end()?;
                tls = Some([path(c), path(k), path(ca)]);
            }
            "kubeconfig" => {
                let p = sd.expect_arg("PATH")?;
                let ctx = sd.next_arg().map(|t| t.text.clone());
                sd.expect_end()?;
                kubeconfig = Some((path(p), ctx));
            }
            "manifests" => {
                let first = sd.expect_arg("PATH")?;
                manifests.push(path(first));
                manifests.extend(sd.remaining().iter().map(path));
            }
            "namespaces" => {
                let first = sd.expect_arg("namespace")?;
                let mut set: HashSet<Box<str>> = HashSet::new();
                set.insert(first.text.to_ascii_lowercase().into());
                set.extend(
                    sd.remaining()
                        .iter()
                        .map(|t| t.text.to_ascii_lowercase().into()),
                );
                cfg.namespaces = Some(set);
            }
            "namespace_labels" => {
                let t = sd.expect_arg("label selector")?;
                let expr = join(t, sd.remaining());
                crate::watch::selector::parse(&expr)
                    .map_err(|e| t.err(format!("kubernetes: namespace_labels: {e}")))?;
                cfg.namespace_labels = Some(expr);
            }
            "labels" => {
                let t = sd.expect_arg("label selector")?;
                let expr = join(t, sd.remaining());
                let sel = crate::watch::selector::parse(&expr)
                    .map_err(|e| t.err(format!("kubernetes: labels: {e}")))?;
                cfg.labels = Some(sel);
            }
            "pods" => {
                let t = sd.expect_arg("disabled|insecure|verified")?;
                cfg.pods = match t.text.as_str() {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    other => {
                        return Err(t.err(format!(
                            "kubernetes: pods: '{other}' is not one of disabled, insecure, verified"
                        )));
                    }
                };
                sd.expect_end()?;
            }
            "endpoint_pod_names" => {
                sd.expect_end()?;
                cfg.endpoint_pod_names = true;
            }
            "ttl" => {
                cfg.ttl = sd
                    .expect_arg("TTL")?
                    .parse_u32("kubernetes: ttl", 0..=3600)?;
                sd.expect_end()?;
            }
            "noendpoints" => {
                sd.expect_end()?;
                cfg.noendpoints = true;
            }
            "fallthrough" => {
                cfg.fallthrough = Some(sd.remaining().iter().map(zone).collect::<Result<_, _>>()?);
            }
            "ignore" => {
                let t = sd.expect_arg("empty_service")?;
                if t.text != "empty_service" {
                    return Err(t.err(format!(
                        "kubernetes: ignore: unknown value '{}' (only empty_service)",
                        t.text
                    )));
                }
                sd.expect_end()?;
                cfg.ignore_empty_service = true;
            }
            "startup_timeout" => {
                cfg.startup_timeout = sd
                    .expect_arg("duration")?
                    .parse_duration("kubernetes: startup_timeout")?;
                sd.expect_end()?;
            }
            "apiserver_qps" | "apiserver_burst" | "apiserver_max_inflight" => {
                sd.expect_arg("number")?
                    .parse_u32(&format!("kubernetes: {prop}"), 0..=u32::MAX)?;
                sd.expect_end()?;
            }
            "multicluster" | "zonal" | "resyncperiod" | "upstream" => {
                return Err(sub.name.err(format!(
                    "kubernetes: option '{prop}' is not supported by clusterdns"
                )));
            }
            other => {
                return Err(sub
                    .name
                    .err(format!("kubernetes: unknown property '{other}'")));
            }
        }
    }
    if cfg.namespaces.is_some() && cfg.namespace_labels.is_some() {
        return Err(d.err("kubernetes: namespaces and namespace_labels cannot both be set"));
    }
    if !manifests.is_empty() {
        if endpoint.is_some() || kubeconfig.is_some() || tls.is_some() {
            return Err(
                d.err("kubernetes: manifests cannot be combined with endpoint, kubeconfig or tls")
            );
        }
        cfg.source = Source::Manifests(manifests);
    } else {
        cfg.source = Source::Api {
            endpoint,
            kubeconfig,
            tls,
        };
    }
    Ok(cfg)
}

/// A zone argument as a lower-case FQDN.
fn zone(t: &Token) -> Result<Name, CorefileError> {
    let mut text = t.text.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).map_err(|e| t.err(format!("kubernetes: bad zone '{}': {e}", t.text)))
}

/// A path argument, relative to the directory of the file it was written in.
fn path(t: &Token) -> PathBuf {
    let p = PathBuf::from(&t.text);
    if p.is_absolute() {
        return p;
    }
    match t.pos.file.parent() {
        Some(dir) => dir.join(p),
        None => p,
    }
}

/// Selectors may be written with spaces (`app in (a, b)`): rejoin the tokens.
fn join(first: &Token, rest: &[Token]) -> String {
    std::iter::once(first)
        .chain(rest)
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
