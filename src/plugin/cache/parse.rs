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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    /// Parse `directive`, written from line 2 of a `.:53` block.
    fn parse_text(directive: &str) -> Result<CacheConfig, String> {
        let text = format!(".:53 {{\n{directive}\n}}\n");
        let cf = parse_str(&text, Path::new("Corefile"), &|_| None, &MemFs::new())
            .map_err(|e| e.to_string())?;
        parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn defaults_are_coredns_defaults() {
        let c = parse_text("cache").unwrap();
        assert_eq!(c, CacheConfig::default());
        assert_eq!(
            c.success,
            Tier {
                capacity: 9984,
                max_ttl: secs(3600),
                min_ttl: secs(5)
            }
        );
        assert_eq!(
            c.denial,
            Tier {
                capacity: 9984,
                max_ttl: secs(1800),
                min_ttl: secs(5)
            }
        );
        assert_eq!(
            (c.servfail, c.prefetch, c.serve_stale, c.keepttl),
            (secs(5), None, None, false)
        );
    }

    #[test]
    fn every_option_is_read_into_the_config() {
        let c = parse_text(
            "cache 30 Cluster.Local example.org. {\n success 5000 60 10\n denial 2500 20 1\n \
             prefetch 10 2m 25%\n serve_stale 30m verify\n servfail 10s\n \
             disable success cluster.local\n disable denial\n keepttl\n}",
        )
        .unwrap();
        assert_eq!(c.zones, [name("cluster.local."), name("example.org.")]);
        assert_eq!(
            c.success,
            Tier {
                capacity: 5000,
                max_ttl: secs(60),
                min_ttl: secs(10)
            }
        );
        assert_eq!(
            c.denial,
            Tier {
                capacity: 2500,
                max_ttl: secs(20),
                min_ttl: secs(1)
            }
        );
        assert_eq!(
            c.prefetch,
            Some(Prefetch {
                amount: 10,
                duration: secs(120),
                percentage: 25
            })
        );
        assert_eq!(
            c.serve_stale,
            Some(ServeStale {
                duration: secs(1800),
                mode: StaleMode::Verify
            })
        );
        assert_eq!(c.servfail, secs(10));
        assert_eq!(c.disable_success, [name("cluster.local.")]);
        assert_eq!(c.disable_denial, [Name::root()]);
        assert!(c.keepttl);
    }

    #[test]
    fn shorter_forms_take_their_defaults() {
        type Check = fn(&CacheConfig) -> bool;
        let cases: &[(&str, Check)] = &[
            ("cache 30", |c| {
                c.success.max_ttl == secs(30) && c.denial.max_ttl == secs(30) && c.zones.is_empty()
            }),
            ("cache example.org", |c| {
                c.zones == [name("example.org.")] && c.success.max_ttl == secs(3600)
            }),
            ("cache {\n success 100\n}", |c| {
                c.success.capacity == 100 && c.success.max_ttl == secs(3600)
            }),
            ("cache {\n prefetch 5\n}", |c| {
                c.prefetch
                    == Some(Prefetch {
                        amount: 5,
                        duration: secs(60),
                        percentage: 10,
                    })
            }),
            ("cache {\n prefetch 0\n}", |c| c.prefetch.is_none()),
            ("cache {\n serve_stale\n}", |c| {
                c.serve_stale
                    == Some(ServeStale {
                        duration: secs(3600),
                        mode: StaleMode::Immediate,
                    })
            }),
            ("cache {\n serve_stale 10m IMMEDIATE\n}", |c| {
                c.serve_stale
                    .is_some_and(|s| s.mode == StaleMode::Immediate)
            }),
            ("cache {\n servfail 0\n}", |c| c.servfail == Duration::ZERO),
            ("cache {\n servfail 5m\n}", |c| c.servfail == secs(300)),
            (
                "cache {\n disable success a.org b.org\n disable success c.org\n}",
                |c| c.disable_success.len() == 3,
            ),
        ];
        for (text, ok) in cases {
            let c = parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(ok(&c), "{text}: {c:?}");
        }
    }

    #[test]
    fn bad_lines_are_errors_at_the_offending_token() {
        let cases = [
            (
                "cache 0",
                "Corefile:2:7: cache: TTL can not be zero or negative: 0",
            ),
            (
                "cache -5",
                "Corefile:2:7: cache: TTL can not be zero or negative: -5",
            ),
            (
                "cache 99999999999",
                "Corefile:2:7: cache: TTL: 99999999999 is out of range 1..4294967295",
            ),
            (
                "cache 30 a..b",
                "Corefile:2:10: cache: invalid zone 'a..b': ",
            ),
            (
                "cache {\n success\n}",
                "Corefile:3:2: cache: success: missing argument: CAPACITY",
            ),
            (
                "cache {\n success x\n}",
                "Corefile:3:10: cache: success: CAPACITY: 'x' is not a number",
            ),
            (
                "cache {\n success 10 0\n}",
                "Corefile:3:13: cache: success: TTL can not be zero or negative: 0",
            ),
            (
                "cache {\n denial 10 5 -1\n}",
                "Corefile:3:14: cache: denial: min TTL can not be negative: -1",
            ),
            (
                "cache {\n denial 10 5 1 9\n}",
                "Corefile:3:16: cache: denial: unexpected argument '9'",
            ),
            (
                "cache {\n prefetch\n}",
                "Corefile:3:2: cache: prefetch: missing argument: AMOUNT",
            ),
            (
                "cache {\n prefetch -1\n}",
                "Corefile:3:11: cache: prefetch: prefetch amount should be positive: -1",
            ),
            (
                "cache {\n prefetch 1 soon\n}",
                "Corefile:3:13: cache: prefetch: DURATION: invalid duration 'soon' (use e.g. 30s, 1m30s, 500ms)",
            ),
            (
                "cache {\n prefetch 1 1m 20\n}",
                "Corefile:3:16: cache: prefetch: last character of percentage should be `%`, but is: '20'",
            ),
            (
                "cache {\n prefetch 1 1m 5%\n}",
                "Corefile:3:16: cache: prefetch: PERCENTAGE: 5 is out of range 10..90",
            ),
            (
                "cache {\n prefetch 1 1m 10% x\n}",
                "Corefile:3:20: cache: prefetch: unexpected argument 'x'",
            ),
            (
                "cache {\n serve_stale -1s\n}",
                "Corefile:3:14: cache: serve_stale: DURATION: duration '-1s' is negative",
            ),
            (
                "cache {\n serve_stale 1h later\n}",
                "Corefile:3:17: cache: serve_stale: invalid value for serve_stale refresh mode: 'later' (use immediate or verify)",
            ),
            (
                "cache {\n servfail\n}",
                "Corefile:3:2: cache: servfail: missing argument: DURATION",
            ),
            (
                "cache {\n servfail 6m\n}",
                "Corefile:3:11: cache: servfail: caching SERVFAIL responses over 5 minutes is not permitted",
            ),
            (
                "cache {\n servfail 1s 2s\n}",
                "Corefile:3:14: cache: servfail: unexpected argument '2s'",
            ),
            (
                "cache {\n disable\n}",
                "Corefile:3:2: cache: disable: missing argument: success|denial",
            ),
            (
                "cache {\n disable both\n}",
                "Corefile:3:10: cache: disable: cache type for disable must be success or denial, not 'both'",
            ),
            (
                "cache {\n keepttl 1\n}",
                "Corefile:3:10: cache: keepttl: unexpected argument '1'",
            ),
            (
                "cache {\n keepttls\n}",
                "Corefile:3:2: cache: unknown property 'keepttls'",
            ),
            (
                "cache {\n keepttl {\n }\n}",
                "Corefile:3:2: cache: keepttl: takes no block",
            ),
        ];
        for (text, want) in cases {
            let got = parse_text(text).expect_err(text);
            assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
        }
    }
}
