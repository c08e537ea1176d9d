//! Parsing the `kubernetes` directive with CoreDNS's option names and defaults.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::index::PodMode;
use crate::k8s::limit::ApiLimits;

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
        /// `apiserver_qps`, `apiserver_burst`, `apiserver_max_inflight`.
        limits: ApiLimits,
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
    pub labels: Option<crate::k8s::selector::Selector>,
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
    /// `multicluster ZONES...`: the zones (lower-case FQDNs, each one of the
    /// plugin's zones) answered from ServiceImports; empty when not set.
    pub multicluster: Vec<Name>,
    /// Where `multicluster` was written (errors found later point at it).
    pub multicluster_at: Option<Token>,
    /// `zonal`: zone-scoped names for headless services.
    pub zonal: bool,
}

/// Parse the directive.
pub fn parse(d: &mut Dispenser<'_>) -> Result<KubernetesConfig, CorefileError> {
    let mut cfg = KubernetesConfig {
        zones: d.remaining().iter().map(zone).collect::<Result<_, _>>()?,
        source: Source::Api {
            endpoint: None,
            kubeconfig: None,
            tls: None,
            limits: ApiLimits::default(),
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
        multicluster: Vec::new(),
        multicluster_at: None,
        zonal: false,
    };
    let mut manifests: Vec<PathBuf> = Vec::new();
    let (mut endpoint, mut kubeconfig, mut tls) = (None, None, None);
    let mut limits = ApiLimits::default();
    let (mut mc_token, mut zonal_token): (Option<Token>, Option<Token>) = (None, None);
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
                crate::k8s::selector::parse(&expr)
                    .map_err(|e| t.err(format!("kubernetes: namespace_labels: {e}")))?;
                cfg.namespace_labels = Some(expr);
            }
            "labels" => {
                let t = sd.expect_arg("label selector")?;
                let expr = join(t, sd.remaining());
                let sel = crate::k8s::selector::parse(&expr)
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
            "apiserver_qps" => {
                let t = sd.expect_arg("QPS")?;
                sd.expect_end()?;
                limits.qps = Some(qps(t)?);
            }
            "apiserver_burst" | "apiserver_max_inflight" => {
                let n = sd
                    .expect_arg("number")?
                    .parse_u32(&format!("kubernetes: {prop}"), 0..=u32::MAX)?;
                sd.expect_end()?;
                if prop == "apiserver_burst" {
                    limits.burst = Some(n);
                } else {
                    limits.max_inflight = Some(n);
                }
            }
            "multicluster" => {
                // CoreDNS accepts a bare `multicluster` (no zones) and then
                // does nothing; an option we accept always works, so it needs
                // a zone here.
                let zones = sd.remaining();
                if zones.is_empty() {
                    return Err(sub.name.err(
                        "kubernetes: multicluster needs at least one ZONE (CoreDNS accepts none and then ignores the option)",
                    ));
                }
                for t in zones {
                    cfg.multicluster.push(zone(t)?);
                }
                mc_token = Some(sub.name.clone());
            }
            "zonal" => {
                sd.expect_end()?;
                cfg.zonal = true;
                zonal_token = Some(sub.name.clone());
            }
            "resyncperiod" | "upstream" => {
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
    if let Some(t) = &zonal_token
        && cfg.noendpoints
    {
        return Err(t.err(
            "kubernetes: zonal needs the endpoints (its answers come from them): remove noendpoints",
        ));
    }
    if let Some(t) = &mc_token
        && !cfg.zones.is_empty()
    {
        check_multicluster_zones(&cfg.multicluster, &cfg.zones, t)?;
    }
    cfg.multicluster_at = mc_token;
    if cfg.namespaces.is_some() && cfg.namespace_labels.is_some() {
        return Err(d.err("kubernetes: namespaces and namespace_labels cannot both be set"));
    }
    if !manifests.is_empty() {
        if endpoint.is_some()
            || kubeconfig.is_some()
            || tls.is_some()
            || limits != ApiLimits::default()
        {
            return Err(d.err(
                "kubernetes: manifests cannot be combined with endpoint, kubeconfig, tls or apiserver_* options",
            ));
        }
        cfg.source = Source::Manifests(manifests);
    } else {
        cfg.source = Source::Api {
            endpoint,
            kubeconfig,
            tls,
            limits,
        };
    }
    Ok(cfg)
}

/// Every `multicluster` zone must be one of the plugin's `zones` (its own or,
/// when it names none, the server block's): the plugin must be authoritative
/// for it, or its names would never reach the plugin.
pub fn check_multicluster_zones(
    multicluster: &[Name],
    zones: &[Name],
    at: &Token,
) -> Result<(), CorefileError> {
    match multicluster.iter().find(|z| !zones.contains(z)) {
        Some(z) => Err(at.err(format!(
            "kubernetes: multicluster zone {z} is not one of the plugin's zones; the plugin must be authoritative for it"
        ))),
        None => Ok(()),
    }
}

/// `apiserver_qps`: a decimal number ≥ 0, as CoreDNS (0 means not set).
fn qps(t: &Token) -> Result<f32, CorefileError> {
    match t.text.parse::<f32>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        Ok(_) => Err(t.err(format!(
            "kubernetes: apiserver_qps must be a finite number >= 0, not {}",
            t.text
        ))),
        Err(_) => Err(t.err(format!(
            "kubernetes: apiserver_qps: '{}' is not a number",
            t.text
        ))),
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    fn parse_block(body: &str) -> Result<KubernetesConfig, CorefileError> {
        let src = format!(". {{\n    kubernetes cluster.local {{\n{body}\n    }}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new())
            .expect("corefile syntax");
        let dir = c.blocks[0].directives[0].clone();
        parse(&mut Dispenser::new(&dir))
    }

    fn limits(body: &str) -> ApiLimits {
        match parse_block(body).expect(body).source {
            Source::Api { limits, .. } => limits,
            Source::Manifests(_) => panic!("{body}: not the API source"),
        }
    }

    #[test]
    fn apiserver_limits_are_parsed_as_coredns_writes_them() {
        let cases: &[(&str, ApiLimits)] = &[
            ("", ApiLimits::default()),
            (
                "apiserver_qps 50.0\napiserver_burst 100\napiserver_max_inflight 25",
                ApiLimits {
                    qps: Some(50.0),
                    burst: Some(100),
                    max_inflight: Some(25),
                },
            ),
            (
                "apiserver_qps 0.5",
                ApiLimits {
                    qps: Some(0.5),
                    ..ApiLimits::default()
                },
            ),
            (
                "apiserver_burst 0",
                ApiLimits {
                    burst: Some(0),
                    ..ApiLimits::default()
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(limits(body), *want, "{body}");
        }
    }

    #[test]
    fn multicluster_and_zonal_are_parsed_and_checked() {
        let zones = |body: &str| -> (Vec<String>, bool) {
            let cfg = parse_block(body).expect(body);
            let mc = cfg.multicluster.iter().map(|z| z.to_ascii()).collect();
            (mc, cfg.zonal)
        };
        assert_eq!(zones(""), (vec![], false));
        assert_eq!(
            zones("multicluster Cluster.Local"),
            (vec!["cluster.local.".to_string()], false)
        );
        assert_eq!(zones("zonal"), (vec![], true));
        let refused: &[(&str, &str)] = &[
            (
                "multicluster clusterset.local",
                "multicluster zone clusterset.local. is not one of the plugin's zones",
            ),
            ("multicluster", "multicluster needs at least one ZONE"),
            ("zonal\nnoendpoints", "zonal needs the endpoints"),
            ("zonal now", "Corefile"),
        ];
        for (body, want) in refused {
            let err = parse_block(body).map(|_| ()).expect_err(body).to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn bad_apiserver_limits_are_refused_at_their_token() {
        let cases: &[(&str, &str)] = &[
            (
                "apiserver_qps -10",
                "apiserver_qps must be a finite number >= 0",
            ),
            (
                "apiserver_qps NaN",
                "apiserver_qps must be a finite number >= 0",
            ),
            (
                "apiserver_qps fast",
                "apiserver_qps: 'fast' is not a number",
            ),
            (
                "apiserver_burst -5",
                "apiserver_burst: '-5' is not a number",
            ),
            (
                "apiserver_max_inflight 2.5",
                "apiserver_max_inflight: '2.5' is not a number",
            ),
            ("apiserver_burst 1 2", "Corefile"),
            ("manifests a.yaml\napiserver_qps 5", "cannot be combined"),
        ];
        for (body, want) in cases {
            let err = parse_block(body).map(|_| ()).expect_err(body).to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
