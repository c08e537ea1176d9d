//! Parsing the `forward` directive with CoreDNS's option names, defaults and checks.
//!
//! Invariant: parsing does no I/O. A resolv.conf upstream is recorded as a path
//! (with its position) and read when the plugin is built, so `clusterdns check`
//! is pure and a missing file is a startup error naming file:line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use super::policy::Policy;
use crate::corefile::{CorefileError, Dispenser, Token};

/// At most this many upstreams (CoreDNS's limit).
pub const MAX_UPSTREAMS: usize = 15;

/// One `TO` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamSpec {
    /// `IP`, `IP:PORT`, `[IPv6]:PORT`, optionally with `dns://`.
    Addr(SocketAddr),
    /// A resolv.conf-style file whose `nameserver` lines are the upstreams.
    ResolvConf {
        /// The file, relative paths resolved from the Corefile's directory.
        path: PathBuf,
        /// Where it was written (`file:line:col`), for errors when reading it.
        at: String,
    },
}

/// The validated `forward` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// `FROM`, lower-case FQDN.
    pub from: Name,
    /// `TO...`.
    pub to: Vec<UpstreamSpec>,
    /// `except`: names not forwarded (lower-case FQDNs).
    pub except: Vec<Name>,
    /// `force_tcp`.
    pub force_tcp: bool,
    /// `prefer_udp`.
    pub prefer_udp: bool,
    /// `max_fails` (default 2; 0 disables health checking).
    pub max_fails: u32,
    /// `health_check` interval (default 0.5s).
    pub health_check: Duration,
    /// The health check's RD bit (`no_rec` clears it).
    pub health_check_rd: bool,
    /// The health check's query name (`domain FQDN`, default `.`).
    pub health_check_domain: Name,
    /// `policy` (default random).
    pub policy: Policy,
    /// `max_concurrent` (0: unlimited).
    pub max_concurrent: u32,
    /// `next RCODE...`: hand these answers to the next plugin.
    pub next: Vec<ResponseCode>,
    /// `failover RCODE...`: try another upstream on these answers.
    pub failover: Vec<ResponseCode>,
    /// `max_connect_attempts` (0: each upstream at most once per query).
    pub max_connect_attempts: u32,
    /// `failfast_all_unhealthy_upstreams`.
    pub failfast_all_unhealthy_upstreams: bool,
    /// Where the directive was written (`file:line:col`).
    pub at: String,
}

/// Parse `forward FROM TO... { ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<ForwardConfig, CorefileError> {
    let from_tok = d.expect_arg("FROM")?;
    let from = zone(d, from_tok)?;
    let to_toks = d.remaining();
    if to_toks.is_empty() {
        return Err(d.err_at(from_tok, "missing argument: TO"));
    }
    if to_toks.len() > MAX_UPSTREAMS {
        return Err(d.err_at(
            &to_toks[MAX_UPSTREAMS],
            format!("more than {MAX_UPSTREAMS} upstreams"),
        ));
    }
    let to = to_toks
        .iter()
        .map(|t| upstream(d, t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cfg = ForwardConfig {
        from,
        to,
        except: Vec::new(),
        force_tcp: false,
        prefer_udp: false,
        max_fails: 2,
        health_check: Duration::from_millis(500),
        health_check_rd: true,
        health_check_domain: Name::root(),
        policy: Policy::Random,
        max_concurrent: 0,
        next: Vec::new(),
        failover: Vec::new(),
        max_connect_attempts: 0,
        failfast_all_unhealthy_upstreams: false,
        at: d.directive().name.pos.to_string(),
    };
    for line in d.block() {
        let mut sd = d.sub(line);
        block_line(&mut cfg, line.name.as_str(), &mut sd).map_err(|e| match e {
            LineError::Unknown => d.unknown_property(line),
            LineError::At(e) => e,
        })?;
    }
    Ok(cfg)
}

/// CoreDNS options clusterdns refuses at start rather than accept and ignore.
const REFUSED: &[(&str, &str)] = &[
    (
        "tls",
        "DNS-over-TLS upstreams are not implemented; use plain dns:// upstreams",
    ),
    (
        "tls_servername",
        "DNS-over-TLS upstreams are not implemented; use plain dns:// upstreams",
    ),
    (
        "expire",
        "upstream connections are not pooled (one socket per exchange), so there is nothing \
         to expire; remove the line",
    ),
];

enum LineError {
    Unknown,
    At(CorefileError),
}

impl From<CorefileError> for LineError {
    fn from(e: CorefileError) -> Self {
        LineError::At(e)
    }
}

fn block_line(
    cfg: &mut ForwardConfig,
    name: &str,
    sd: &mut Dispenser<'_>,
) -> Result<(), LineError> {
    match name {
        "except" => {
            let names = sd.remaining();
            if names.is_empty() {
                // Everything is taken: this is the "missing argument" error.
                sd.expect_arg("IGNORED_NAMES")?;
            }
            for t in names {
                cfg.except.push(zone(sd, t)?);
            }
        }
        "force_tcp" => {
            sd.expect_end()?;
            cfg.force_tcp = true;
        }
        "prefer_udp" => {
            sd.expect_end()?;
            cfg.prefer_udp = true;
        }
        "failfast_all_unhealthy_upstreams" => {
            sd.expect_end()?;
            cfg.failfast_all_unhealthy_upstreams = true;
        }
        "max_fails" => {
            cfg.max_fails = number(sd)?;
        }
        "max_concurrent" => {
            cfg.max_concurrent = number(sd)?;
        }
        "max_connect_attempts" => {
            cfg.max_connect_attempts = number(sd)?;
        }
        "health_check" => {
            cfg.health_check = sd.expect_arg("DURATION")?.parse_duration(sd.prefix())?;
            while let Some(t) = sd.next_arg() {
                match t.as_str() {
                    "no_rec" => cfg.health_check_rd = false,
                    "domain" => {
                        let name = sd.expect_arg("FQDN")?;
                        cfg.health_check_domain = zone(sd, name)?;
                    }
                    other => {
                        return Err(sd
                            .err_at(t, format!("unknown option '{other}' (no_rec, domain FQDN)"))
                            .into());
                    }
                }
            }
        }
        "policy" => {
            let t = sd.expect_arg("random|round_robin|sequential")?;
            cfg.policy = match t.as_str() {
                "random" => Policy::Random,
                "round_robin" => Policy::RoundRobin,
                "sequential" => Policy::Sequential,
                other => {
                    return Err(sd
                        .err_at(
                            t,
                            format!("unknown policy '{other}' (random, round_robin, sequential)"),
                        )
                        .into());
                }
            };
            sd.expect_end()?;
        }
        "next" => cfg.next = rcodes(sd, false)?,
        "failover" => cfg.failover = rcodes(sd, true)?,
        _ => match REFUSED.iter().find(|(option, _)| *option == name) {
            Some((_, why)) => {
                return Err(sd.err(format!("not supported by clusterdns: {why}")).into());
            }
            None => return Err(LineError::Unknown),
        },
    }
    Ok(())
}

/// One non-negative integer argument and nothing after it.
fn number(sd: &mut Dispenser<'_>) -> Result<u32, CorefileError> {
    let n = sd
        .expect_arg("INTEGER")?
        .parse_u32(sd.prefix(), 0..=u32::MAX)?;
    sd.expect_end()?;
    Ok(n)
}

/// RCODE names as miekg/dns spells them (case-insensitive).
fn rcodes(sd: &mut Dispenser<'_>, failover: bool) -> Result<Vec<ResponseCode>, CorefileError> {
    let toks = sd.remaining();
    if toks.is_empty() {
        // Everything is taken: this is the "missing argument" error.
        sd.expect_arg("RCODE")?;
    }
    toks.iter()
        .map(|t| {
            let rc = rcode(t.as_str())
                .ok_or_else(|| sd.err_at(t, format!("'{}' is not a valid rcode", t.text)))?;
            if failover && rc == ResponseCode::NoError {
                return Err(sd.err_at(t, "NOERROR cannot be used in failover"));
            }
            Ok(rc)
        })
        .collect()
}

/// Response codes by their miekg/dns names (what CoreDNS accepts and prints).
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

/// A response code by its miekg/dns name, case-insensitive.
pub fn rcode(name: &str) -> Option<ResponseCode> {
    let upper = name.to_ascii_uppercase();
    RCODES
        .iter()
        .find(|(n, _)| *n == upper)
        .map(|&(_, code)| <ResponseCode as From<u16>>::from(code))
}

/// The miekg/dns name of a response code (CoreDNS's `rcode` metric label);
/// the number for codes without a name.
pub fn rcode_name(rc: ResponseCode) -> String {
    let code = (u16::from(rc.high()) << 4) | u16::from(rc.low());
    RCODES
        .iter()
        .find(|&&(_, c)| c == code)
        .map_or_else(|| code.to_string(), |(n, _)| (*n).to_string())
}

/// A zone or domain argument as a lower-case FQDN.
fn zone(d: &Dispenser<'_>, t: &Token) -> Result<Name, CorefileError> {
    let mut text = t.text.to_ascii_lowercase();
    if text.contains('/') {
        return Err(d.err_at(
            t,
            format!(
                "'{}': CIDR zones are not supported, write the reverse zone",
                t.text
            ),
        ));
    }
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).map_err(|e| d.err_at(t, format!("bad domain name '{}': {e}", t.text)))
}

/// A `TO` argument: an address (port 53 by default) or a resolv.conf path.
fn upstream(d: &Dispenser<'_>, t: &Token) -> Result<UpstreamSpec, CorefileError> {
    let text = t.as_str();
    if let Some((scheme, _)) = text.split_once("://")
        && scheme != "dns"
    {
        let why = if scheme == "tls" {
            "DNS-over-TLS (tls://) upstreams are not supported by clusterdns; use plain dns:// \
             upstreams"
                .to_string()
        } else {
            format!("'{scheme}' is not supported as a destination protocol")
        };
        return Err(d.err_at(t, why));
    }
    let bare = text.strip_prefix("dns://").unwrap_or(text);
    if let Some(addr) = address(bare) {
        return Ok(UpstreamSpec::Addr(addr));
    }
    if bare.contains('/') {
        let p = PathBuf::from(bare);
        let path = match (p.is_absolute(), t.pos.file.parent()) {
            (false, Some(dir)) => dir.join(p),
            _ => p,
        };
        return Ok(UpstreamSpec::ResolvConf {
            path,
            at: t.pos.to_string(),
        });
    }
    Err(d.err_at(
        t,
        format!("'{text}' is not an IP address, IP:PORT or a resolv.conf file path"),
    ))
}

/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; port 53 by default.
pub fn address(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().ok()
}
