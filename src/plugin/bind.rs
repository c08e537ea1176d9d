//! `bind`: which local addresses a server block listens on.
//!
//! # Syntax
//! ```text
//! bind ADDRESS|INTERFACE ...
//! bind ADDRESS|INTERFACE ... {
//!     except ADDRESS|INTERFACE ...
//! }
//! ```
//! An interface name stands for all of its addresses. Without `bind` a server
//! listens on every address (the wildcard), as CoreDNS does. `bind` has no
//! query-time behaviour; the server reads it when it opens sockets.

use std::net::IpAddr;

use crate::corefile::{CorefileError, Dispenser, Token};

/// The parsed `bind` directive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bind {
    /// Addresses or interface names to listen on.
    pub targets: Vec<BindTarget>,
    /// Addresses or interfaces taken back out (`except`).
    pub except: Vec<BindTarget>,
}

/// An address or an interface name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindTarget {
    /// A literal IP address.
    Addr(IpAddr),
    /// A network interface, resolved to its addresses when the server starts.
    Interface(String),
}

/// Parse `bind` (CoreDNS: at least one address or interface).
pub fn parse(d: &mut Dispenser<'_>) -> Result<Bind, CorefileError> {
    let first = d.expect_arg("address or interface")?;
    let mut bind = Bind {
        targets: vec![target(first)],
        except: Vec::new(),
    };
    bind.targets.extend(d.remaining().iter().map(target));
    for sub in d.block() {
        match sub.name.text.as_str() {
            "except" => {
                let mut sd = Dispenser::new(sub);
                let first = sd.expect_arg("address or interface")?;
                bind.except.push(target(first));
                bind.except.extend(sd.remaining().iter().map(target));
            }
            other => {
                return Err(sub.name.err(format!("bind: unknown property '{other}'")));
            }
        }
    }
    Ok(bind)
}

fn target(t: &Token) -> BindTarget {
    // IPv6 with a zone (`fe80::1%eth0`) is accepted by CoreDNS; we keep the address part.
    let text = t.text.split('%').next().unwrap_or_default();
    match text.parse::<IpAddr>() {
        Ok(ip) => BindTarget::Addr(ip),
        Err(_) => BindTarget::Interface(t.text.clone()),
    }
}

/// Error while resolving `bind` targets to addresses.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The interface list could not be read.
    #[error("bind: listing network interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
    /// No interface of that name exists, and it is not an address.
    #[error("bind: '{0}' is neither an IP address nor a network interface")]
    NoSuchInterface(String),
    /// Everything was excepted away.
    #[error("bind: no address left to listen on after 'except'")]
    Empty,
}

impl Bind {
    /// The concrete addresses to listen on.
    pub fn resolve(&self) -> Result<Vec<IpAddr>, ResolveError> {
        let ifaces = if self
            .targets
            .iter()
            .chain(&self.except)
            .any(|t| matches!(t, BindTarget::Interface(_)))
        {
            if_addrs::get_if_addrs().map_err(ResolveError::Interfaces)?
        } else {
            Vec::new()
        };
        let expand = |targets: &[BindTarget]| -> Result<Vec<IpAddr>, ResolveError> {
            let mut out = Vec::new();
            for t in targets {
                match t {
                    BindTarget::Addr(ip) => out.push(*ip),
                    BindTarget::Interface(name) => {
                        let before = out.len();
                        out.extend(ifaces.iter().filter(|i| &i.name == name).map(|i| i.ip()));
                        if out.len() == before {
                            return Err(ResolveError::NoSuchInterface(name.clone()));
                        }
                    }
                }
            }
            Ok(out)
        };
        let except = expand(&self.except)?;
        let mut addrs: Vec<IpAddr> = expand(&self.targets)?
            .into_iter()
            .filter(|ip| !except.contains(ip))
            .collect();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(ResolveError::Empty);
        }
        Ok(addrs)
    }
}
