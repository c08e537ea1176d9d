//! `log`: one line per query, in CoreDNS's query-log format — the only place
//! per-query logging happens (the hot path logs nothing without it).
//!
//! # Description
//! For a query under one of NAMES, the rest of the chain runs, then a line is
//! written when the response's class is selected. Lines go through `tracing`
//! at INFO level with target `clusterdns::query`, not straight to stdout as
//! CoreDNS does: they then share the process log (stderr, timestamps, one
//! writer, no interleaving with other lines) and `RUST_LOG=clusterdns::query=off`
//! (or `=info` under a quieter default) turns them off or on without a Corefile edit.
//! A line looks like CoreDNS's after its `[INFO]`:
//! ```text
//! INFO clusterdns::query: 127.0.0.1:50759 - 29008 "A IN example.org. udp 41 false 4096" NOERROR qr,rd,ra 68 0.000037990s
//! ```
//!
//! Invariant: the chain's result is returned unchanged, and at most one line
//! is written per query (by the first rule whose name matches).
//!
//! # Syntax
//! ```text
//! log [NAMES...] [FORMAT] {
//!     class CLASSES...
//!     minDuration [DURATION]
//! }
//! ```
//! * NAMES: zones whose queries are logged (default `.`). A single argument is
//!   always a name; with two or more, the last is FORMAT when it contains `{`.
//! * FORMAT: placeholders `{type} {name} {class} {proto} {remote} {local}
//!   {size} {port} {duration} {rcode} {rsize} {>rflags} {>bufsize} {>do} {>id}
//!   {>opcode} {/LABEL}`; `{common}` (the default) is
//!   `{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}`
//!   and `{combined}` appends ` "{>opcode}"`. Unknown placeholders stay as written.
//! * `class`: any of `all` (default), `success`, `denial` (NXDOMAIN, or NODATA:
//!   NOERROR without answers and with an SOA in the authority section or with
//!   no records at all), `error` (SERVFAIL, REFUSED, NOTIMP, FORMERR, ...).
//!   Repeated `class` lines add up.
//! * `minDuration`: also log responses slower than DURATION (default 100ms).
//!
//! Values that differ from CoreDNS's because we do not see the wire messages:
//! `{size}` and `{rsize}` are the encoded lengths of the request's question
//! (+ an empty OPT) and of the response's sections before any truncation;
//! `{local}` and `{/LABEL}` (no metadata plugin) are `-`; `{>rflags}` shows
//! `qr,aa,tc,rd,ra` only (no `ad`/`cd`). A NOERROR response with no
//! records at all is `denial` (CoreDNS calls it a success: it needs an SOA for
//! NODATA), and NXDOMAIN is always `denial` (CoreDNS: `error` without an SOA).
//!
//! # Examples
//! ```text
//! . {
//!     log . {combined} {
//!         class denial error
//!     }
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tokio::time::Instant;

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::dns::{Answer, Query, Transport};
use crate::plugin::{Next, Plugin, Result};

/// CoreDNS's Common Log Format.
pub const COMMON: &str = r#"{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}"#;
/// CoreDNS's Combined Log Format: Common plus the opcode.
pub const COMBINED: &str = r#"{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration} "{>opcode}""#;
/// `minDuration` without an argument.
const DEFAULT_MIN_DURATION: Duration = Duration::from_millis(100);
/// The `tracing` target of query lines.
pub const TARGET: &str = "clusterdns::query";

/// What a response is, for `class` filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// An answer (or a referral).
    Success,
    /// NXDOMAIN or NODATA.
    Denial,
    /// Any other rcode: SERVFAIL, REFUSED, NOTIMP, FORMERR, ...
    Error,
}

/// The classes a rule logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Classes {
    /// `all`: every response.
    pub all: bool,
    /// `success`.
    pub success: bool,
    /// `denial`.
    pub denial: bool,
    /// `error`.
    pub error: bool,
}

impl Classes {
    /// Whether a response of class `c` is logged.
    pub fn selects(&self, c: Class) -> bool {
        self.all
            || match c {
                Class::Success => self.success,
                Class::Denial => self.denial,
                Class::Error => self.error,
            }
    }
}

/// One part of a format: text, or a placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Type,
    Name,
    Class,
    Proto,
    Remote,
    Local,
    Size,
    Port,
    Duration,
    Rcode,
    Rsize,
    Rflags,
    Bufsize,
    Do,
    Id,
    Opcode,
    Metadata,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A parsed log format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pieces: Vec<Piece>,
}

impl Format {
    /// Parse a format string; unknown `{...}` stay literal text.
    pub fn new(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open..];
            let Some(close) = after.find('}') else {
                break;
            };
            // A later `{` before the `}` starts the placeholder: `{a {name}`.
            let start = after[..close].rfind('{').unwrap_or(0);
            lit.push_str(&after[..start]);
            let label = &after[start..=close];
            match field(label) {
                Some(f) => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field(f));
                }
                None => lit.push_str(label),
            }
            rest = &after[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Self { pieces }
    }

    /// The line for one query.
    pub fn render(&self, e: &Entry<'_>) -> String {
        let mut out = String::with_capacity(128);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => out.push_str(&value(*f, e)),
            }
        }
        out
    }
}

fn field(label: &str) -> Option<Field> {
    Some(match label {
        "{type}" => Field::Type,
        "{name}" => Field::Name,
        "{class}" => Field::Class,
        "{proto}" => Field::Proto,
        "{remote}" => Field::Remote,
        "{local}" => Field::Local,
        "{size}" => Field::Size,
        "{port}" => Field::Port,
        "{duration}" => Field::Duration,
        "{rcode}" => Field::Rcode,
        "{rsize}" => Field::Rsize,
        "{>rflags}" => Field::Rflags,
        "{>bufsize}" => Field::Bufsize,
        "{>do}" => Field::Do,
        "{>id}" => Field::Id,
        "{>opcode}" => Field::Opcode,
        l if l.starts_with("{/") && l.len() > 3 => Field::Metadata,
        _ => return None,
    })
}

/// Everything a log line is made of.
pub struct Entry<'a> {
    /// The query.
    pub q: &'a Query,
    /// The response (for a chain error: an empty one with its rcode).
    pub answer: &'a Answer,
    /// How long the rest of the chain took.
    pub duration: Duration,
}

fn value(f: Field, e: &Entry<'_>) -> String {
    let q = e.q;
    match f {
        Field::Type => type_name(q.qtype),
        Field::Name => q.lower.to_ascii(),
        Field::Class => class_name(q.qclass),
        Field::Proto => q.transport.as_str().to_string(),
        Field::Remote => match q.src.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        },
        Field::Local | Field::Metadata => "-".to_string(),
        Field::Size => request_size(q).to_string(),
        Field::Port => q.src.port().to_string(),
        Field::Duration => format!("{}s", e.duration.as_secs_f64()),
        Field::Rcode => rcode_name(e.answer.rcode),
        Field::Rsize => response_size(q, e.answer).to_string(),
        Field::Rflags => rflags(q, e.answer),
        Field::Bufsize => match (q.transport, q.edns_payload) {
            (Transport::Tcp, _) => "65535".to_string(),
            (Transport::Udp, p) => p.unwrap_or(512).max(512).to_string(),
        },
        Field::Do => q.dnssec_ok.to_string(),
        Field::Id => q.id.to_string(),
        Field::Opcode => "QUERY".to_string(),
    }
}

/// A type as Go's miekg/dns prints it (`TYPE65280` when unnamed).
fn type_name(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => t.to_string(),
    }
}

fn class_name(c: DNSClass) -> String {
    match c {
        DNSClass::Unknown(n) => format!("CLASS{n}"),
        c => c.to_string(),
    }
}

/// An rcode as CoreDNS prints it (`NOERROR`, `NXDOMAIN`, ...; a number when unnamed).
pub fn rcode_name(rc: ResponseCode) -> String {
    let n = u16::from(rc);
    let name = match n {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return n.to_string(),
    };
    name.to_string()
}

fn rflags(q: &Query, a: &Answer) -> String {
    let flags = [
        (true, "qr"),
        (a.authoritative, "aa"),
        (a.truncated, "tc"),
        (q.recursion_desired, "rd"),
        (a.recursion_available, "ra"),
    ];
    let set: Vec<&str> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect();
    set.join(",")
}

/// Bytes of the OPT record the request or response carries (no options).
const OPT_LEN: usize = 11;

/// Encoded length of the request: header, question, OPT when EDNS was used.
pub fn request_size(q: &Query) -> usize {
    encoded_len(q, None)
}

/// Encoded length of the response with name compression, before truncation.
pub fn response_size(q: &Query, a: &Answer) -> usize {
    encoded_len(q, Some(a))
}

fn encoded_len(q: &Query, a: Option<&Answer>) -> usize {
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    let mut question = hickory_proto::op::Query::query(q.name.clone(), q.qtype);
    question.set_query_class(q.qclass);
    let ok = enc.emit_vec(&[0; 12]).is_ok()
        && question.emit(&mut enc).is_ok()
        && a.is_none_or(|a| {
            [&a.answers, &a.authority, &a.additionals]
                .iter()
                .all(|s| enc.emit_all(s.iter()).is_ok())
        });
    let opt = if q.edns_payload.is_some() { OPT_LEN } else { 0 };
    if ok { buf.len() + opt } else { 12 + opt }
}

/// The class of a response.
pub fn classify(a: &Answer) -> Class {
    match a.rcode {
        ResponseCode::NoError if !a.answers.is_empty() => Class::Success,
        ResponseCode::NoError => {
            let soa = a
                .authority
                .iter()
                .any(|r| r.record_type() == RecordType::SOA);
            let bare = a.authority.is_empty() && a.additionals.is_empty();
            // NODATA: an SOA says so (CoreDNS's test), or nothing at all came
            // back (RFC 2308 type 3, e.g. hosts). Referrals and records only in
            // the additional section (whoami) are successes.
            if soa || bare {
                Class::Denial
            } else {
                Class::Success
            }
        }
        ResponseCode::NXDomain => Class::Denial,
        _ => Class::Error,
    }
}

/// One NAME of a `log` directive with its format and filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Queries at or under this name are logged by this rule.
    pub scope: Name,
    /// The line format.
    pub format: Arc<Format>,
    /// Which responses are logged.
    pub classes: Classes,
    /// Responses slower than this are logged whatever their class (0: off).
    pub min_duration: Duration,
}

/// The parsed `log` directive: one rule per NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Rules in the order written; the first matching one is used.
    pub rules: Vec<Rule>,
}

/// Parse `log`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<LogConfig, CorefileError> {
    let mut args = d.remaining();
    let mut format = COMMON;
    if args.len() >= 2
        && let Some(last) = args.last()
        && last.text.contains('{')
    {
        format = match last.text.as_str() {
            "{common}" => COMMON,
            "{combined}" => COMBINED,
            f => f,
        };
        args = &args[..args.len() - 1];
    }
    let scopes: Vec<Name> = if args.is_empty() {
        vec![Name::root()]
    } else {
        args.iter().map(|t| zone(d, t)).collect::<Result<_, _>>()?
    };
    let mut classes = Classes::default();
    let mut min_duration = Duration::ZERO;
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "class" => {
                sd.expect_arg("CLASSES")?;
                for t in &line.args {
                    match t.text.as_str() {
                        "all" => classes.all = true,
                        "success" => classes.success = true,
                        "denial" => classes.denial = true,
                        "error" => classes.error = true,
                        c => {
                            return Err(sd.err_at(
                                t,
                                format!("unknown class '{c}' (use all, denial, error or success)"),
                            ));
                        }
                    }
                }
            }
            "minDuration" => {
                min_duration = match sd.next_arg() {
                    Some(t) => t.parse_duration(&sd.what("DURATION"))?,
                    None => DEFAULT_MIN_DURATION,
                };
                sd.expect_end()?;
            }
            _ => return Err(d.unknown_property(line)),
        }
    }
    if classes == Classes::default() {
        classes.all = true;
    }
    let format = Arc::new(Format::new(format));
    Ok(LogConfig {
        rules: scopes
            .into_iter()
            .map(|scope| Rule {
                scope,
                format: Arc::clone(&format),
                classes,
                min_duration,
            })
            .collect(),
    })
}

fn zone(d: &Dispenser<'_>, t: &Token) -> std::result::Result<Name, CorefileError> {
    let mut text = t.text.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).map_err(|_| d.err_at(t, format!("bad name '{}'", t.text)))
}

/// The `log` plugin.
#[derive(Debug)]
pub struct Log {
    rules: Vec<Rule>,
}

impl Log {
    /// The plugin for `cfg`.
    pub fn new(cfg: &LogConfig) -> Self {
        Self {
            rules: cfg.rules.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Log {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let Some(rule) = self.rules.iter().find(|r| r.scope.zone_of(&q.lower)) else {
            return next.serve(q).await;
        };
        let start = Instant::now();
        let result = next.serve(q).await;
        let duration = start.elapsed();
        let failed;
        let answer = match &result {
            Ok(a) => a,
            Err(e) => {
                failed = Answer::rcode(e.rcode());
                &failed
            }
        };
        let slow = !rule.min_duration.is_zero() && duration > rule.min_duration;
        if rule.classes.selects(classify(answer)) || slow {
            let line = rule.format.render(&Entry {
                q,
                answer,
                duration,
            });
            tracing::info!(target: TARGET, "{line}");
        }
        result
    }
}

/// A `tracing` subscriber whose output tests can read.
impl crate::plugin::BuildPlugin for LogConfig {
    fn build(
        &self,
        ctx: &crate::plugin::build::BuildCtx<'_>,
    ) -> anyhow::Result<std::sync::Arc<dyn crate::plugin::Plugin>> {
        let _ = ctx;
        Ok(std::sync::Arc::new(Log::new(self)))
    }
}

#[cfg(test)]
pub(crate) mod capture {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing::subscriber::DefaultGuard;
    use tracing_subscriber::fmt::MakeWriter;

    /// The captured text.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Everything logged so far.
        pub(crate) fn text(&self) -> String {
            let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
            String::from_utf8_lossy(&buf).into_owned()
        }

        /// The logged lines.
        pub(crate) fn lines(&self) -> Vec<String> {
            self.text().lines().map(str::to_string).collect()
        }
    }

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
            buf.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Capture every event of this thread (`LEVEL target: message`, no time).
    pub(crate) fn capture() -> (Captured, DefaultGuard) {
        let c = Captured::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(c.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .finish();
        (c, tracing::subscriber::set_default(sub))
    }
}

#[cfg(test)]
mod tests;
