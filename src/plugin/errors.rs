//! `errors`: logs the errors the rest of the chain returns, optionally consolidated.
//!
//! # Description
//! Runs the rest of the chain; when it fails (a [`PluginError`]: a plugin
//! decided an rcode such as SERVFAIL, or no plugin answered) the error is
//! logged through `tracing` at ERROR level as CoreDNS does:
//! `<rcode number> <qname> <qtype>: <error>`, e.g. `2 example.org. A: no next plugin found`.
//! Answers that carry a failing rcode but are not errors (an upstream's
//! SERVFAIL relayed by `forward`) are not logged, as in CoreDNS. The error is
//! returned unchanged: this plugin never alters a response.
//!
//! Invariant: the result of the chain passes through untouched; every error is
//! either logged at once or counted by exactly one `consolidate` pattern (the
//! first that matches), and every count is reported when its period ends or
//! when the configuration is replaced (`ctx.token`), so no error is lost.
//!
//! # Syntax
//! ```text
//! errors [stdout] {
//!     consolidate DURATION REGEXP [LEVEL] [show_first]
//! }
//! ```
//! * `consolidate`: errors whose message matches REGEXP (at most 10000
//!   characters, `regex` crate syntax) are counted; DURATION after the first one,
//!   `N errors like '<REGEXP>' occurred in last <DURATION>` is logged at LEVEL
//!   (`warning`, `error`, `info` or `debug`; default `error` as in CoreDNS's
//!   setup code). With `show_first` the first error of a period is logged at
//!   once (at LEVEL) and the summary only appears when more than one occurred.
//!   Several `consolidate` lines may be given; the first matching one counts.
//! * `stacktrace` (CoreDNS: log a stack trace with each recovered panic) is
//!   refused at start: clusterdns does not produce one per query. A panicking
//!   query task is reported by Rust's panic hook; `RUST_BACKTRACE=1` adds the
//!   backtrace, for the whole process.
//!
//! Durations are printed as Go prints them (`30s`, `5m0s`), like CoreDNS.
//!
//! # Examples
//! ```text
//! . {
//!     errors {
//!         consolidate 5m ".* i/o timeout$" warning
//!         consolidate 30s "^Failed to .+" error show_first
//!     }
//!     forward . 8.8.8.8
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use regex::Regex;
use tokio_util::sync::CancellationToken;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, PluginError, Result};

/// Longest REGEXP `consolidate` accepts (CoreDNS's limit).
const MAX_REGEXP: usize = 10_000;

/// The level a consolidated summary is logged at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warning`.
    Warning,
    /// `error` (the default).
    Error,
}

/// One `consolidate DURATION REGEXP [LEVEL] [show_first]` line.
#[derive(Clone, Debug)]
pub struct Consolidate {
    /// How long errors are counted before the summary.
    pub period: Duration,
    /// Which error messages are counted.
    pub regex: Regex,
    /// The level of the summary (and of the first error with `show_first`).
    pub level: Level,
    /// Log the first error of a period immediately.
    pub show_first: bool,
}

/// The parsed `errors` directive.
#[derive(Clone, Debug, Default)]
pub struct ErrorsConfig {
    /// `consolidate` lines, in the order written.
    pub consolidate: Vec<Consolidate>,
}

/// Parse `errors`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<ErrorsConfig, CorefileError> {
    if let Some(t) = d.next_arg()
        && t.text != "stdout"
    {
        return Err(d.err_at(t, format!("invalid log file: {}", t.text)));
    }
    d.expect_end()?;
    let mut cfg = ErrorsConfig::default();
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "stacktrace" => {
                return Err(sd.err(
                    "not supported by clusterdns: a panicking query is logged by Rust's panic \
                     hook; set RUST_BACKTRACE=1 for backtraces (process-wide)",
                ));
            }
            "consolidate" => cfg.consolidate.push(parse_consolidate(&mut sd)?),
            _ => return Err(d.unknown_property(line)),
        }
    }
    Ok(cfg)
}

fn parse_consolidate(sd: &mut Dispenser<'_>) -> std::result::Result<Consolidate, CorefileError> {
    let period = sd
        .expect_arg("DURATION")?
        .parse_duration(&sd.what("DURATION"))?;
    let re = sd.expect_arg("REGEXP")?;
    if re.text.len() > MAX_REGEXP {
        return Err(sd.err_at(re, format!("REGEXP longer than {MAX_REGEXP} characters")));
    }
    let regex = Regex::new(&re.text).map_err(|e| sd.err_at(re, format!("bad REGEXP: {e}")))?;
    let mut c = Consolidate {
        period,
        regex,
        level: Level::Error,
        show_first: false,
    };
    let mut level_seen = false;
    while let Some(t) = sd.next_arg() {
        match t.text.as_str() {
            "show_first" if !c.show_first => c.show_first = true,
            lvl if !level_seen && !c.show_first => {
                c.level = match lvl {
                    "warning" => Level::Warning,
                    "error" => Level::Error,
                    "info" => Level::Info,
                    "debug" => Level::Debug,
                    _ => {
                        return Err(sd.err_at(
                            t,
                            format!(
                                "unknown log level '{lvl}' (use warning, error, info or debug)"
                            ),
                        ));
                    }
                };
                level_seen = true;
            }
            _ => return Err(sd.err_at(t, format!("unexpected argument '{}'", t.text))),
        }
    }
    Ok(c)
}

/// A `consolidate` pattern and its running count.
#[derive(Debug)]
struct Pattern {
    cfg: Consolidate,
    count: AtomicU32,
}

impl Pattern {
    /// Log and reset the count of the period that just ended.
    fn flush(&self) {
        let n = self.count.swap(0, Ordering::SeqCst);
        if n > 1 || (n == 1 && !self.cfg.show_first) {
            emit(self.cfg.level, &summary(n, &self.cfg));
        }
    }
}

/// The `errors` plugin.
#[derive(Debug)]
pub struct Errors {
    patterns: Vec<Arc<Pattern>>,
    token: CancellationToken,
}

impl Errors {
    /// The plugin for `cfg`; pending counts are flushed when `token` is cancelled.
    pub fn new(cfg: &ErrorsConfig, token: CancellationToken) -> Self {
        let patterns = cfg
            .consolidate
            .iter()
            .map(|c| {
                Arc::new(Pattern {
                    cfg: c.clone(),
                    count: AtomicU32::new(0),
                })
            })
            .collect();
        Self { patterns, token }
    }

    /// Log `err` for `q` now or count it under its consolidation pattern.
    fn report(&self, q: &Query, err: &PluginError) {
        let msg = err.to_string();
        let line = error_line(q, err);
        let Some(p) = self.patterns.iter().find(|p| p.cfg.regex.is_match(&msg)) else {
            emit(Level::Error, &line);
            return;
        };
        if p.count.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        // First error of a period: show it if asked, and end the period later.
        if p.cfg.show_first {
            emit(p.cfg.level, &line);
        }
        let (p, token) = (Arc::clone(p), self.token.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(p.cfg.period) => {}
                () = token.cancelled() => {}
            }
            p.flush();
        });
    }
}

/// CoreDNS's error line: `<rcode number> <qname> <qtype>: <error>`.
pub fn error_line(q: &Query, err: &PluginError) -> String {
    format!(
        "{} {} {}: {}",
        u16::from(err.rcode()),
        q.lower.to_ascii(),
        q.qtype,
        err
    )
}

/// CoreDNS's summary: `N errors like '<regexp>' occurred in last <duration>`.
pub fn summary(n: u32, c: &Consolidate) -> String {
    format!(
        "{n} errors like '{}' occurred in last {}",
        c.regex.as_str(),
        go_duration(c.period)
    )
}

fn emit(level: Level, msg: &str) {
    match level {
        Level::Debug => tracing::debug!("{msg}"),
        Level::Info => tracing::info!("{msg}"),
        Level::Warning => tracing::warn!("{msg}"),
        Level::Error => tracing::error!("{msg}"),
    }
}

/// A duration as Go's `time.Duration.String` prints it: `0s`, `500ms`, `1.5s`, `5m0s`, `1h0m0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let n = d.as_nanos();
    match n {
        0 => "0s".to_string(),
        1..=999 => format!("{n}ns"),
        1_000..=999_999 => with_fraction(n, 1_000, "µs"),
        1_000_000..=999_999_999 => with_fraction(n, 1_000_000, "ms"),
        _ => {
            let secs = n / 1_000_000_000;
            let (h, m) = (secs / 3600, (secs % 3600) / 60);
            let mut out = String::new();
            if h > 0 {
                let _ = write!(out, "{h}h");
            }
            if h > 0 || m > 0 {
                let _ = write!(out, "{m}m");
            }
            let s = n % 60_000_000_000;
            out.push_str(&with_fraction(s, 1_000_000_000, "s"));
            out
        }
    }
}

/// `n / unit` with the remainder as a decimal fraction without trailing zeros.
fn with_fraction(n: u128, unit: u128, suffix: &str) -> String {
    let (whole, rem) = (n / unit, n % unit);
    if rem == 0 {
        return format!("{whole}{suffix}");
    }
    let width = unit.ilog10() as usize;
    let frac = format!("{rem:0width$}");
    format!("{whole}.{}{suffix}", frac.trim_end_matches('0'))
}

#[async_trait::async_trait]
impl Plugin for Errors {
    fn name(&self) -> &'static str {
        "errors"
    }

    /// An answer (not an error) passes through without a trace.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let result = next.serve(q).await;
        if let Err(err) = &result {
            self.report(q, err);
        }
        result
    }
}

#[cfg(test)]
mod tests;

crate::plugin::build::build_plugin!(ErrorsConfig, |config, ctx| Errors::new(
    config,
    ctx.token.clone()
));
