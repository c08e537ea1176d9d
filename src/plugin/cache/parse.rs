//! `cache` directive → [`CacheConfig`], with CoreDNS's defaults and limits
//! (`plugin/cache/setup.go`).
//!
//! Invariant: every value the runtime relies on is checked here (TTL > 0,
//! MINTTL ≥ 0, prefetch percentage in 10..=90, `servfail` ≤ 5m), so the
//! plugin itself has no failure path at build time.

use std::time::Duration;

use hickory_proto::rr::Name;

use crate::corefile::{CorefileError, Dispenser, Token};

/// CoreDNS's default capacity per cache (256 shards × 39).
pub(super) const DEFAULT_CAPACITY: u64 = 9984;
/// Default maximum TTL of positive answers (1h).
pub(super) const MAX_SUCCESS_TTL: Duration = Duration::from_secs(3600);
/// Default maximum TTL of denial answers (30m).
pub(super) const MAX_DENIAL_TTL: Duration = Duration::from_secs(1800);
/// Default minimum TTL of both caches, and the default `servfail` duration.
pub(super) const MIN_TTL: Duration = Duration::from_secs(5);
/// RFC 2308 §7.1: SERVFAIL may not be cached longer than this.
const MAX_SERVFAIL: Duration = Duration::from_secs(300);

/// Capacity and TTL bounds of one of the two caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Entries kept before evicting (`CAPACITY`, as written).
    pub capacity: u64,
    /// TTLs are capped at this (`TTL`).
    pub max_ttl: Duration,
    /// TTLs are raised to this (`MINTTL`).
    pub min_ttl: Duration,
}

/// `prefetch AMOUNT [DURATION] [PERCENTAGE%]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefetch {
    /// Hits (with no gap of `duration` or more between them) that make an entry popular.
    pub amount: u32,
    /// The longest gap between hits that keeps the count going (default 1m).
    pub duration: Duration,
    /// Refresh once only this percentage of the TTL remains (default 10).
    pub percentage: u32,
}

/// When a stale entry is refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleMode {
    /// Answer stale at once, refresh in the background (CoreDNS default).
    Immediate,
    /// Ask the rest of the chain first; answer stale only if that fails.
    Verify,
}

/// `serve_stale [DURATION] [REFRESH_MODE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeStale {
    /// How long after expiry an entry may still be served (default 1h).
    pub duration: Duration,
    /// When to refresh.
    pub mode: StaleMode,
}

/// The parsed `cache` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Zones cached; empty means the server block's zones.
    pub zones: Vec<Name>,
    /// Positive answers (NOERROR with data, delegations).
    pub success: Tier,
    /// Denial of existence (NXDOMAIN, NODATA) and SERVFAIL.
    pub denial: Tier,
    /// How long SERVFAIL answers are cached; zero disables.
    pub servfail: Duration,
    /// `prefetch`, if configured with AMOUNT > 0.
    pub prefetch: Option<Prefetch>,
    /// `serve_stale`, if configured.
    pub serve_stale: Option<ServeStale>,
    /// `disable success ZONES`: positive answers under these zones are not stored.
    pub disable_success: Vec<Name>,
    /// `disable denial ZONES`: negative answers under these zones are not stored.
    pub disable_denial: Vec<Name>,
    /// `keepttl`: serve the TTL the entry was stored with instead of the remaining one.
    pub keepttl: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            success: Tier {
                capacity: DEFAULT_CAPACITY,
                max_ttl: MAX_SUCCESS_TTL,
                min_ttl: MIN_TTL,
            },
            denial: Tier {
                capacity: DEFAULT_CAPACITY,
                max_ttl: MAX_DENIAL_TTL,
                min_ttl: MIN_TTL,
            },
            servfail: MIN_TTL,
            prefetch: None,
            serve_stale: None,
            disable_success: Vec::new(),
            disable_denial: Vec::new(),
            keepttl: false,
        }
    }
}

/// Parse `cache [TTL] [ZONES...] { ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<CacheConfig, CorefileError> {
    let mut cfg = CacheConfig::default();
    let mut args = d.remaining();
    if let Some(first) = args.first()
        && looks_like_int(&first.text)
    {
        let ttl = ttl_secs(d, first, "TTL")?;
        cfg.success.max_ttl = ttl;
        cfg.denial.max_ttl = ttl;
        args = &args[1..];
    }
    cfg.zones = args.iter().map(|t| zone(d, t)).collect::<Result<_, _>>()?;
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "success" => cfg.success = tier(&mut sd, cfg.success)?,
            "denial" => cfg.denial = tier(&mut sd, cfg.denial)?,
            "prefetch" => cfg.prefetch = prefetch(&mut sd)?,
            "serve_stale" => cfg.serve_stale = Some(serve_stale(&mut sd)?),
            "servfail" => {
                let t = sd.expect_arg("DURATION")?;
                let dur = t.parse_duration(&sd.what("DURATION"))?;
                if dur > MAX_SERVFAIL {
                    return Err(sd.err_at(
                        t,
                        "caching SERVFAIL responses over 5 minutes is not permitted",
                    ));
                }
                cfg.servfail = dur;
                sd.expect_end()?;
            }
            "disable" => {
                let t = sd.expect_arg("success|denial")?;
                let rest = sd.remaining();
                let mut zones: Vec<Name> = rest
                    .iter()
                    .map(|z| zone(&sd, z))
                    .collect::<Result<_, _>>()?;
                if zones.is_empty() {
                    zones.push(Name::root());
                }
                match t.text.as_str() {
                    "success" => cfg.disable_success.extend(zones),
                    "denial" => cfg.disable_denial.extend(zones),
                    other => {
                        return Err(sd.err_at(
                            t,
                            format!(
                                "cache type for disable must be success or denial, not '{other}'"
                            ),
                        ));
                    }
                }
            }
            "keepttl" => {
                sd.expect_end()?;
                cfg.keepttl = true;
            }
            _ => return Err(d.unknown_property(line)),
        }
        sd.expect_no_block()?;
    }
    Ok(cfg)
}

/// `success|denial CAPACITY [TTL] [MINTTL]`.
fn tier(sd: &mut Dispenser<'_>, mut tier: Tier) -> Result<Tier, CorefileError> {
    let cap = sd.expect_arg("CAPACITY")?;
    tier.capacity = u64::from(cap.parse_u32(&sd.what("CAPACITY"), 0..=u32::MAX)?);
    if let Some(t) = sd.next_arg() {
        tier.max_ttl = ttl_secs(sd, t, "TTL")?;
    }
    if let Some(t) = sd.next_arg() {
        if t.text.starts_with('-') && looks_like_int(&t.text) {
            return Err(sd.err_at(t, format!("min TTL can not be negative: {}", t.text)));
        }
        tier.min_ttl =
            Duration::from_secs(u64::from(t.parse_u32(&sd.what("MINTTL"), 0..=u32::MAX)?));
    }
    sd.expect_end()?;
    Ok(tier)
}

fn prefetch(sd: &mut Dispenser<'_>) -> Result<Option<Prefetch>, CorefileError> {
    let t = sd.expect_arg("AMOUNT")?;
    if t.text.starts_with('-') && looks_like_int(&t.text) {
        return Err(sd.err_at(t, format!("prefetch amount should be positive: {}", t.text)));
    }
    let amount = t.parse_u32(&sd.what("AMOUNT"), 0..=u32::MAX)?;
    let mut p = Prefetch {
        amount,
        duration: Duration::from_secs(60),
        percentage: 10,
    };
    if let Some(t) = sd.next_arg() {
        p.duration = t.parse_duration(&sd.what("DURATION"))?;
    }
    if let Some(t) = sd.next_arg() {
        let Some(num) = t.text.strip_suffix('%') else {
            return Err(sd.err_at(
                t,
                format!(
                    "last character of percentage should be `%`, but is: '{}'",
                    t.text
                ),
            ));
        };
        let num_tok = Token::new(num, t.pos.clone());
        p.percentage = num_tok.parse_u32(&sd.what("PERCENTAGE"), 10..=90)?;
    }
    sd.expect_end()?;
    Ok((amount > 0).then_some(p))
}

fn serve_stale(sd: &mut Dispenser<'_>) -> Result<ServeStale, CorefileError> {
    let mut s = ServeStale {
        duration: Duration::from_secs(3600),
        mode: StaleMode::Immediate,
    };
    if let Some(t) = sd.next_arg() {
        s.duration = t.parse_duration(&sd.what("DURATION"))?;
    }
    if let Some(t) = sd.next_arg() {
        s.mode = match t.text.to_ascii_lowercase().as_str() {
            "immediate" => StaleMode::Immediate,
            "verify" => StaleMode::Verify,
            _ => {
                return Err(sd.err_at(
                    t,
                    format!("invalid value for serve_stale refresh mode: '{}' (use immediate or verify)", t.text),
                ));
            }
        };
    }
    sd.expect_end()?;
    Ok(s)
}

/// Whether CoreDNS's `strconv.Atoi` would read this as a number (sign allowed).
fn looks_like_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A TTL in seconds that must be positive (CoreDNS reserves 0 and below).
fn ttl_secs(d: &Dispenser<'_>, t: &Token, what: &str) -> Result<Duration, CorefileError> {
    if t.text.starts_with('-') || t.text.trim_start_matches('+').bytes().all(|b| b == b'0') {
        return Err(d.err_at(t, format!("{what} can not be zero or negative: {}", t.text)));
    }
    Ok(Duration::from_secs(u64::from(
        t.parse_u32(&d.what(what), 1..=u32::MAX)?,
    )))
}

/// A zone argument as a lower-case FQDN.
fn zone(d: &Dispenser<'_>, t: &Token) -> Result<Name, CorefileError> {
    let mut text = t.text.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).map_err(|e| d.err_at(t, format!("invalid zone '{}': {e}", t.text)))
}
