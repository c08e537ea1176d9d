//! The parse table: every option, good and bad, with exact positions.

use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::corefile::{Dispenser, MemFs, parse_str};
use crate::plugin::cache::parse::*;

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
