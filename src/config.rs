//! From a parsed Corefile to validated server configurations.
//!
//! Syntax errors come from [`crate::corefile`]; here every directive is handed
//! to its plugin's `parse` (found in [`crate::plugin::registry`], which also
//! says which directives may repeat), and the cross-directive rules are
//! checked: a directive at most once per server block, a zone at most once per port,
//! one transport per port, and a `tls` directive in every `tls://`/`https://` block.
//! Errors are collected, not stopped at, so `clusterdns check` can list them all.
//! A [`Config`] can only be made by [`load`]/[`from_corefile`], so holding one
//! means it was validated.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use crate::corefile::{self, Corefile, CorefileError, Dispenser, Transport, ZoneAddr};
use crate::plugin::{self, PluginConfig};

/// One server block, validated.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Zones served, lower-case FQDNs.
    pub zones: Vec<Name>,
    /// The port.
    pub port: u16,
    /// How clients reach it: plain DNS, DNS over TLS or DNS over HTTPS.
    pub transport: Transport,
    /// The directives, parsed (in Corefile order; the chain sorts them).
    pub plugins: Vec<PluginConfig>,
}

impl ServerConfig {
    /// The block's `view`, if any.
    pub fn view(&self) -> Option<&plugin::view::View> {
        self.plugins.iter().find_map(|p| match p {
            PluginConfig::View(v) => Some(v.as_ref()),
            _ => None,
        })
    }

    /// The block's `tls` directive, if any.
    pub fn tls(&self) -> Option<&plugin::tls::ServerTls> {
        self.plugins.iter().find_map(|p| match p {
            PluginConfig::Tls(t) => Some(t.as_ref()),
            _ => None,
        })
    }

    /// CoreDNS's `server` label: `dns://:53`, `tls://:853`, `https://:443`.
    pub fn label(&self) -> String {
        format!("{}://:{}", self.transport.scheme(), self.port)
    }

    /// The block's `bind` directive, if any.
    pub fn bind(&self) -> Option<&plugin::bind::Bind> {
        self.plugins.iter().find_map(|p| match p {
            PluginConfig::Bind(b) => Some(b),
            _ => None,
        })
    }
}

/// A whole validated Corefile.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server blocks, one per key group.
    pub servers: Vec<ServerConfig>,
    /// Every file that was read (the Corefile and its imports).
    pub files: Vec<PathBuf>,
}

impl Config {
    /// Server blocks grouped by port (the listeners to open).
    pub fn by_port(&self) -> BTreeMap<u16, Vec<&ServerConfig>> {
        let mut m: BTreeMap<u16, Vec<&ServerConfig>> = BTreeMap::new();
        for s in &self.servers {
            m.entry(s.port).or_default().push(s);
        }
        m
    }
}

/// Read, parse and validate the Corefile at `path`.
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    default_port: u16,
) -> Result<Config, Vec<CorefileError>> {
    let cf = corefile::parse_file(path, env).map_err(|e| vec![e])?;
    from_corefile(&cf, default_port)
}

/// Validate a parsed Corefile.
pub fn from_corefile(cf: &Corefile, default_port: u16) -> Result<Config, Vec<CorefileError>> {
    let mut errors = Vec::new();
    let mut servers = Vec::new();
    let mut seen_zones: HashSet<(u16, Name)> = HashSet::new();
    let mut port_transport: BTreeMap<u16, Transport> = BTreeMap::new();
    if cf.blocks.is_empty() {
        errors.push(CorefileError {
            // The main file, as `check -conf PATH` named it (fuzz: was always "Corefile").
            file: cf
                .files
                .first()
                .map_or_else(|| Path::new("Corefile").into(), |f| f.as_path().into()),
            line: 1,
            col: 1,
            message: "no server block found".into(),
        });
    }
    for block in &cf.blocks {
        let mut addrs: Vec<(ZoneAddr, &corefile::Token)> = Vec::new();
        for key in &block.keys {
            match corefile::parse_key(key) {
                Ok(zs) => addrs.extend(zs.into_iter().map(|z| (z, key))),
                Err(e) => errors.push(e),
            }
        }
        let mut plugins = Vec::new();
        let mut names: HashSet<&str> = HashSet::new();
        for d in &block.directives {
            if !names.insert(d.name.text.as_str()) && !plugin::repeatable(&d.name.text) {
                errors.push(d.name.err(format!(
                    "{}: this plugin can only be used once per server block",
                    d.name.text
                )));
                continue;
            }
            match plugin::parse(&mut Dispenser::new(d)) {
                Ok(p) => plugin::add(&mut plugins, p),
                Err(e) => errors.push(e),
            }
        }
        let has_tls = plugins.iter().any(|p| matches!(p, PluginConfig::Tls(_)));
        let has_view = plugins.iter().any(|p| matches!(p, PluginConfig::View(_)));
        // Keys on different ports become different servers sharing the same plugins.
        let mut by_port: BTreeMap<(Transport, u16), Vec<Name>> = BTreeMap::new();
        for (za, key) in addrs {
            let port = za.port.unwrap_or(za.transport.default_port(default_port));
            let transport = *port_transport.entry(port).or_insert(za.transport);
            if transport != za.transport {
                errors.push(key.err(format!(
                    "port {port} is already served as {}://, it cannot also serve {}://",
                    transport.scheme(),
                    za.transport.scheme()
                )));
                continue;
            }
            if transport != Transport::Dns && !has_tls {
                errors.push(key.err(format!(
                    "{}:// needs a certificate: add `tls CERT KEY` to the block",
                    transport.scheme()
                )));
                continue;
            }
            let zone = match Name::from_ascii(&za.zone) {
                Ok(z) => z.to_lowercase(),
                Err(e) => {
                    errors.push(key.err(format!("bad zone '{}': {e}", za.zone)));
                    continue;
                }
            };
            // Blocks with a `view` share their zone with others (split DNS);
            // at most one block per zone and port has none.
            if !has_view && !seen_zones.insert((port, zone.clone())) {
                errors.push(key.err(format!(
                    "zone '{zone}' is defined more than once on port {port}"
                )));
                continue;
            }
            by_port.entry((transport, port)).or_default().push(zone);
        }
        // A kubernetes directive without zones serves the block's: its
        // multicluster zones must be among them.
        let block_zones: Vec<Name> = by_port.values().flatten().cloned().collect();
        for p in &plugins {
            if let PluginConfig::Kubernetes(k) = p
                && k.zones.is_empty()
                && let Some(at) = &k.multicluster_at
                && let Err(e) =
                    plugin::kubernetes::check_multicluster_zones(&k.multicluster, &block_zones, at)
            {
                errors.push(e);
            }
        }
        for ((transport, port), zones) in by_port {
            servers.push(ServerConfig {
                zones,
                port,
                transport,
                plugins: plugins.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(Config {
            servers,
            files: cf.files.clone(),
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::{MemFs, parse_str};

    fn load_text(text: &str) -> Result<Config, String> {
        let cf = parse_str(text, Path::new("Corefile"), &|_| None, &MemFs::new())
            .map_err(|e| e.to_string())?;
        from_corefile(&cf, 53).map_err(|es| {
            es.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn each_transport_gets_its_default_port_and_server_label() {
        let c = load_text(
            ".:53 {\n whoami\n}\ntls://. {\n tls c.pem k.pem\n whoami\n}\n\
             https://cluster.local {\n tls c.pem k.pem\n whoami\n}\n",
        )
        .unwrap();
        let got: Vec<(Transport, u16, String, bool)> = c
            .servers
            .iter()
            .map(|s| (s.transport, s.port, s.label(), s.tls().is_some()))
            .collect();
        assert_eq!(
            got,
            [
                (Transport::Dns, 53, "dns://:53".to_string(), false),
                (Transport::Tls, 853, "tls://:853".to_string(), true),
                (Transport::Https, 443, "https://:443".to_string(), true),
            ]
        );
    }

    #[test]
    fn transport_rules_are_errors_at_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "tls://.:853 {\n whoami\n}\n",
                "Corefile:1:1: tls:// needs a certificate: add `tls CERT KEY` to the block",
            ),
            (
                "https://. {\n whoami\n}\n",
                "Corefile:1:1: https:// needs a certificate",
            ),
            (
                ".:8853 {\n whoami\n}\ntls://example.org:8853 {\n tls c k\n whoami\n}\n",
                "Corefile:4:1: port 8853 is already served as dns://, it cannot also serve tls://",
            ),
        ];
        for (text, want) in cases {
            let e = load_text(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        // Views let blocks share a zone and port; two blocks without one may not.
        let split = ". {\n view a {\n  expr type() == 'A'\n }\n whoami\n}\n\
                     . {\n view b {\n  expr type() == 'TXT'\n }\n whoami\n}\n. {\n whoami\n}\n";
        let c = load_text(split).unwrap();
        let views: Vec<Option<&str>> = c
            .servers
            .iter()
            .map(|s| s.view().map(|v| &*v.name))
            .collect();
        assert_eq!(views, [Some("a"), Some("b"), None]);
        let e = load_text(&format!("{split}. {{\n whoami\n}}\n")).unwrap_err();
        assert!(
            e.contains("Corefile:16:1: zone '.' is defined more than once on port 53"),
            "{e}"
        );
        // Blocks of one transport share a port, as plain blocks do.
        let c = load_text("tls://a.example:853 {\n tls c k\n whoami\n}\ntls://b.example {\n tls c k\n whoami\n}\n")
            .unwrap();
        assert_eq!(c.by_port()[&853].len(), 2);
    }
}
