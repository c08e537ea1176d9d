//! kube-dns's ConfigMap in Corefile terms, as kubeadm translated it when it
//! replaced kube-dns with CoreDNS: the main block is kubeadm's default Corefile
//! with `upstreamNameservers` in place of `/etc/resolv.conf` in `forward .`,
//! and each stub domain becomes its own server block forwarding to its servers.
//!
//! kube-dns reads three keys under `data`, each a JSON string:
//! `stubDomains` (`{"domain": ["IP[:PORT]", ...]}`), `upstreamNameservers`
//! (`["IP[:PORT]", ...]`) and `federations` (no longer meaningful: reported).
//! A nameserver that is a host name cannot be a `forward` target and is left
//! out, as kubeadm did, but reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::{MigrateError, Migration, Note, block_scalar, key_line};
use crate::corefile::{self, Pos, Token};

/// The keys kube-dns reads.
const STUB_DOMAINS: &str = "stubDomains";
const UPSTREAMS: &str = "upstreamNameservers";
const FEDERATIONS: &str = "federations";

/// Translate the `data` of a kube-dns ConfigMap (`input` is the whole text, for lines).
pub(super) fn translate(
    input: &str,
    data: &serde_yaml::Mapping,
) -> Result<Migration, MigrateError> {
    let mut notes = vec![Note::info(
        0,
        "the cluster domain is not in the kube-dns ConfigMap (kube-dns takes it from \
         --domain): cluster.local is assumed; edit the kubernetes line if yours differs",
    )];
    for key in data.keys() {
        let key = key.as_str().unwrap_or_default();
        if ![STUB_DOMAINS, UPSTREAMS, FEDERATIONS].contains(&key) {
            notes.push(Note::info(
                key_line(input, key, true),
                format!("data.{key}: not a kube-dns setting; ignored (kube-dns ignores it too)"),
            ));
        }
    }
    if let Some(text) = json_text(input, data, FEDERATIONS)? {
        notes.push(Note::changed(
            key_line(input, FEDERATIONS, true),
            format!(
                "data.{FEDERATIONS}: federations are not supported (Kubernetes federation v1 \
                 is gone, CoreDNS dropped its federation plugin): names under {} will not resolve",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        ));
    }
    let stubs = stub_domains(input, data, &mut notes)?;
    let upstreams = upstreams(input, data, &mut notes)?;
    let mut out = main_block(&upstreams);
    for (zone, servers) in &stubs {
        out.push('\n');
        out.push_str(&stub_block(zone, servers));
    }
    for problem in super::coredns::check(&out) {
        notes.push(Note::changed(
            0,
            format!("the translated Corefile fails clusterdns check: {problem}"),
        ));
    }
    Ok(Migration {
        corefile: out,
        notes,
    })
}

/// The JSON text of `data.key`, `None` when absent or blank.
fn json_text<'a>(
    input: &str,
    data: &'a serde_yaml::Mapping,
    key: &str,
) -> Result<Option<&'a str>, MigrateError> {
    match data.get(key) {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_yaml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(MigrateError::Data {
            line: key_line(input, key, true),
            key: key.into(),
            why: "must be a string holding JSON, as kube-dns reads it".into(),
        }),
    }
}

/// Decode `data.key` as JSON of type `T`; `what` says what kube-dns expects there.
fn decode<T: serde::de::DeserializeOwned>(
    input: &str,
    data: &serde_yaml::Mapping,
    key: &str,
    what: &str,
) -> Result<Option<T>, MigrateError> {
    let Some(text) = json_text(input, data, key)? else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| {
        let line = key_line(input, key, true);
        // In a block scalar the JSON starts on the line after the key.
        // (An end-of-input error sits after the final newline: clamp to the last line.)
        let line = if block_scalar(input, line) {
            let inside = e.line().clamp(1, text.lines().count().max(1));
            line + u32::try_from(inside).unwrap_or(0)
        } else {
            line
        };
        MigrateError::Data {
            line,
            key: key.into(),
            why: format!("not valid JSON for {what}: {e}"),
        }
    })
}

/// The stub domains: zone (without its trailing dot) → `forward` targets.
fn stub_domains(
    input: &str,
    data: &serde_yaml::Mapping,
    notes: &mut Vec<Note>,
) -> Result<BTreeMap<String, Vec<String>>, MigrateError> {
    let line = key_line(input, STUB_DOMAINS, true);
    let Some(raw) = decode::<BTreeMap<String, Vec<String>>>(
        input,
        data,
        STUB_DOMAINS,
        "a map of domain to nameserver list",
    )?
    else {
        return Ok(BTreeMap::new());
    };
    let mut stubs = BTreeMap::new();
    for (domain, servers) in raw {
        let at = format!("data.{STUB_DOMAINS}: \"{domain}\"");
        let line = value_line(input, line, &domain);
        let key = Token::new(domain.as_str(), Pos::new(Path::new("ConfigMap"), line, 1));
        let zone = match corefile::parse_key(&key).as_deref() {
            // kube-dns takes DNS names only: no port, no CIDR, not the root.
            Ok([z]) if z.port.is_none() && z.zone != "." && !domain.contains('/') => {
                z.zone.trim_end_matches('.').to_string()
            }
            _ => {
                notes.push(Note::changed(
                    line,
                    format!("{at}: not a domain name; this stub domain is dropped"),
                ));
                continue;
            }
        };
        if stubs.contains_key(&zone) {
            notes.push(Note::changed(
                line,
                format!("{at}: the same domain as another entry; this one is dropped"),
            ));
            continue;
        }
        if servers.is_empty() {
            notes.push(Note::info(
                line,
                format!("{at}: no nameservers, so nothing to forward; left out"),
            ));
            continue;
        }
        let targets = targets(input, &servers, &at, line, notes);
        if targets.is_empty() {
            notes.push(Note::changed(
                line,
                format!("{at}: no usable nameserver; this stub domain is dropped"),
            ));
            continue;
        }
        stubs.insert(zone, targets);
    }
    Ok(stubs)
}

/// The main block's `forward .` targets: `upstreamNameservers`, or `/etc/resolv.conf`.
fn upstreams(
    input: &str,
    data: &serde_yaml::Mapping,
    notes: &mut Vec<Note>,
) -> Result<Vec<String>, MigrateError> {
    let line = key_line(input, UPSTREAMS, true);
    let resolv = vec!["/etc/resolv.conf".to_string()];
    let Some(raw) = decode::<Vec<String>>(input, data, UPSTREAMS, "a list of nameservers")? else {
        return Ok(resolv);
    };
    if raw.is_empty() {
        return Ok(resolv);
    }
    let targets = targets(input, &raw, &format!("data.{UPSTREAMS}"), line, notes);
    if targets.is_empty() {
        notes.push(Note::changed(
            line,
            format!("data.{UPSTREAMS}: no usable nameserver; other names go to /etc/resolv.conf's"),
        ));
        return Ok(resolv);
    }
    Ok(targets)
}

/// The `forward` targets of kube-dns nameservers (`IP`, `IP:PORT`, `[IPv6]:PORT`);
/// a host name is left out with a note.
fn targets(
    input: &str,
    servers: &[String],
    at: &str,
    line: u32,
    notes: &mut Vec<Note>,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in servers {
        match nameserver(s) {
            Some(addr) => out.push(addr),
            None => notes.push(Note::changed(
                value_line(input, line, s),
                format!(
                    "{at}: nameserver \"{s}\" is not an IP address (forward takes addresses); \
                     left out"
                ),
            )),
        }
    }
    out
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT` as a `forward` target (the port only when not 53).
fn nameserver(s: &str) -> Option<String> {
    let s = s.trim();
    let addr = match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => SocketAddr::new(s.parse::<IpAddr>().ok()?, 53),
    };
    Some(match addr {
        SocketAddr::V4(v4) if v4.port() == 53 => v4.ip().to_string(),
        a => a.to_string(),
    })
}

/// kubeadm's default main block with `forward .` to `upstreams`.
fn main_block(upstreams: &[String]) -> String {
    format!(
        ".:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :9153
    forward . {} {{
        max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
",
        upstreams.join(" ")
    )
}

/// A stub domain's server block.
fn stub_block(zone: &str, servers: &[String]) -> String {
    let mut s = format!("{zone}:53 {{\n    errors\n    cache 30\n    forward .");
    for server in servers {
        let _ = write!(s, " {server}");
    }
    s.push_str("\n}\n");
    s
}

/// The first line from `from` on where `"text"` is written (a JSON string in
/// the key's value); `from` itself when not found (e.g. escaped in `-o json`).
fn value_line(input: &str, from: u32, text: &str) -> u32 {
    let quoted = format!("\"{text}\"");
    input
        .lines()
        .enumerate()
        .skip((from as usize).saturating_sub(1))
        .find(|(_, l)| l.contains(&quoted))
        .map_or(from, |(i, _)| u32::try_from(i + 1).unwrap_or(from))
}
