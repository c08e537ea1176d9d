//! From a parsed Corefile to validated server configurations.
//!
//! Syntax errors come from [`crate::corefile`]; here every directive is handed
//! to its plugin's `parse` (found in [`crate::plugin::registry`], which also
//! says which directives may repeat), and the cross-directive rules are
//! checked: a directive at most once per server block, a zone at most once per port.
//! Errors are collected, not stopped at, so `clusterdns check` can list them all.
//! A [`Config`] can only be made by [`load`]/[`from_corefile`], so holding one
//! means it was validated.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use crate::corefile::{self, Corefile, CorefileError, Dispenser, ZoneAddr};
use crate::plugin::{self, PluginConfig};

/// One server block, validated.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Zones served, lower-case FQDNs.
    pub zones: Vec<Name>,
    /// The port.
    pub port: u16,
    /// The directives, parsed (in Corefile order; the chain sorts them).
    pub plugins: Vec<PluginConfig>,
}

impl ServerConfig {
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
        // Keys on different ports become different servers sharing the same plugins.
        let mut by_port: BTreeMap<u16, Vec<Name>> = BTreeMap::new();
        for (za, key) in addrs {
            let port = za.port.unwrap_or(default_port);
            let zone = match Name::from_ascii(&za.zone) {
                Ok(z) => z.to_lowercase(),
                Err(e) => {
                    errors.push(key.err(format!("bad zone '{}': {e}", za.zone)));
                    continue;
                }
            };
            if !seen_zones.insert((port, zone.clone())) {
                errors.push(key.err(format!(
                    "zone '{zone}' is defined more than once on port {port}"
                )));
                continue;
            }
            by_port.entry(port).or_default().push(zone);
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
        for (port, zones) in by_port {
            servers.push(ServerConfig {
                zones,
                port,
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
