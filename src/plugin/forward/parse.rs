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
    /// `tls://IP[:PORT]` (port 853 by default): DNS over TLS.
    Tls(SocketAddr),
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
    /// `tls [CERT KEY] [CA]`: client certificate and CA for `tls://` upstreams.
    pub tls: ClientTls,
    /// `tls_servername NAME`: the name `tls://` upstreams' certificates must carry.
    pub tls_servername: Option<String>,
    /// `expire`: how long an idle `tls://` connection stays open (default 10s).
    pub expire: Duration,
    /// Where the directive was written (`file:line:col`).
    pub at: String,
}

/// The `tls` line of a `forward` block (CoreDNS's 0 to 3 arguments): no
/// arguments verifies upstreams with the system's CAs, `CA` with that file;
/// `CERT KEY` adds a client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// `CERT KEY`: presented to the upstream.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// `CA`: verifies the upstream (the system's roots when `None`).
    pub ca: Option<PathBuf>,
}

/// The default `expire` (CoreDNS's).
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(10);

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
        tls: ClientTls::default(),
        tls_servername: None,
        expire: DEFAULT_EXPIRE,
        at: d.directive().name.pos.to_string(),
    };
    let has_tls = cfg.to.iter().any(|u| matches!(u, UpstreamSpec::Tls(_)));
    for line in d.block() {
        let mut sd = d.sub(line);
        let name = line.name.as_str();
        if !has_tls && TLS_ONLY.contains(&name) {
            return Err(sd.err(format!(
                "'{name}' applies to tls:// upstreams and this forward has none (plain \
                 upstreams use a fresh socket per exchange); remove the line or use tls://"
            )));
        }
        block_line(&mut cfg, name, &mut sd).map_err(|e| match e {
            LineError::Unknown => d.unknown_property(line),
            LineError::At(e) => e,
        })?;
    }
    Ok(cfg)
}

/// Options that only mean something for `tls://` upstreams: refused without
/// one rather than accepted and ignored.
const TLS_ONLY: &[&str] = &["tls", "tls_servername", "expire"];

/// `tls [CERT KEY] [CA]`, paths relative to the Corefile's directory.
fn client_tls(sd: &mut Dispenser<'_>) -> Result<ClientTls, CorefileError> {
    let args = sd.remaining();
    let path = |t: &Token| {
        let p = PathBuf::from(t.as_str());
        match (p.is_absolute(), t.pos.file.parent()) {
            (false, Some(dir)) => dir.join(p),
            _ => p,
        }
    };
    Ok(match args {
        [] => ClientTls::default(),
        [ca] => ClientTls {
            cert_key: None,
            ca: Some(path(ca)),
        },
        [cert, key] => ClientTls {
            cert_key: Some((path(cert), path(key))),
            ca: None,
        },
        [cert, key, ca] => ClientTls {
            cert_key: Some((path(cert), path(key))),
            ca: Some(path(ca)),
        },
        [_, _, _, extra, ..] => {
            return Err(sd.err_at(extra, "tls takes at most 3 arguments: [CERT KEY] [CA]"));
        }
    })
}

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
        "tls" => cfg.tls = client_tls(sd)?,
        "tls_servername" => {
            let t = sd.expect_arg("NAME")?;
            rustls::pki_types::ServerName::try_from(t.as_str())
                .map_err(|e| sd.err_at(t, format!("'{}' is not a server name: {e}", t.text)))?;
            cfg.tls_servername = Some(t.text.clone());
            sd.expect_end()?;
        }
        "expire" => {
            let t = sd.expect_arg("DURATION")?;
            cfg.expire = t.parse_duration(sd.prefix())?;
            if cfg.expire.is_zero() {
                return Err(sd.err_at(t, "expire must be more than 0").into());
            }
            sd.expect_end()?;
        }
        "next" => cfg.next = rcodes(sd, false)?,
        "failover" => cfg.failover = rcodes(sd, true)?,
        _ => return Err(LineError::Unknown),
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
    if let Some(rest) = text.strip_prefix("tls://") {
        return address_or(rest, 853).map(UpstreamSpec::Tls).ok_or_else(|| {
            d.err_at(
                t,
                format!("'{text}': a tls:// upstream is an IP address, IP:PORT or [IPv6]:PORT"),
            )
        });
    }
    if let Some((scheme, _)) = text.split_once("://")
        && scheme != "dns"
    {
        return Err(d.err_at(
            t,
            format!("'{scheme}' is not supported as a destination protocol (dns://, tls://)"),
        ));
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
    address_or(text, 53)
}

/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; port `default` when none is written.
fn address_or(text: &str, default: u16) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default));
    }
    text.parse::<SocketAddr>().ok()
}
