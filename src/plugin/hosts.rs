//! `hosts`: serves A, AAAA and PTR records from an `/etc/hosts`-style file and
//! entries written inline in the Corefile, re-reading the file while running.
//!
//! # Description
//! Each line is `IP_address canonical_hostname [aliases...]` (hosts(5); `#`
//! starts a comment, an IPv6 zone `%eth0` is ignored). A name may start with a
//! `*` label: `*.example.com` matches exactly one label below `example.com`
//! (not the apex, not two labels) unless that name has entries of its own.
//! Names outside ZONES are ignored. Unless `no_reverse`, every address also
//! answers PTR for its names (wildcards excepted), whatever ZONES say.
//!
//! Answers are authoritative. In ZONES, a name without entries is NXDOMAIN,
//! or goes to the next plugin under `fallthrough`; a name with entries but not
//! of the asked type is NODATA (with `fallthrough_unsupported` too, types
//! other than A/AAAA/PTR go to the next plugin). PTR queries without a match
//! always go to the next plugin, as do other queries outside ZONES.
//!
//! Invariant: a query sees one whole table (file + inline) — the table is
//! swapped atomically — and a file that cannot be read never empties it: the
//! last good entries keep being served (and the failure is logged once).
//!
//! # Syntax
//! ```text
//! hosts [FILE [ZONES...]] {
//!     [INLINE]
//!     ttl SECONDS
//!     no_reverse
//!     reload DURATION
//!     fallthrough [ZONES...]
//!     fallthrough_unsupported
//! }
//! ```
//! * FILE: default `/etc/hosts`; a relative path is relative to the directory
//!   of the Corefile it is written in (CoreDNS: to `root` or the working
//!   directory). A missing file is a warning; inline entries are still served.
//! * ZONES: default the server block's zones.
//! * INLINE: lines `IP NAME...` in the block, added to the file's entries. A
//!   block line that is neither an option nor starts with an IP is an error
//!   (CoreDNS silently ignores it).
//! * `ttl`: 1..65535, default 3600. `reload`: how often the file is checked
//!   (modification time and size), default 5s, `0` disables.
//!
//! # Examples
//! ```text
//! . {
//!     hosts example.hosts example.org {
//!         10.0.0.1 db.example.org
//!         fallthrough
//!     }
//!     forward . /etc/resolv.conf
//! }
//! ```
//!
//! # Metrics
//! `coredns_hosts_entries` (gauge: addresses in the table, forward and reverse)
//! and `coredns_hosts_reload_timestamp_seconds` (gauge: last successful read).
//!
//! # Ready
//! Does not report readiness.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::{Gauge, IntGauge, Opts, Registry};
use tokio_util::sync::CancellationToken;

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::dns::{Answer, Query};
use crate::plugin::build::{BuildCtx, Family};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// Default TTL of the records (CoreDNS: one hour).
pub const DEFAULT_TTL: u32 = 3600;
/// Default interval between file checks.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(5);

/// One `IP NAME...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLine {
    /// The address.
    pub ip: IpAddr,
    /// Lower-case fully qualified names.
    pub names: Vec<Name>,
}

/// The parsed `hosts` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsConfig {
    /// The hosts file.
    pub path: PathBuf,
    /// Zones it answers for; empty: the server block's zones.
    pub zones: Vec<Name>,
    /// Entries written in the Corefile.
    pub inline: Vec<HostLine>,
    /// TTL of every record.
    pub ttl: u32,
    /// Generate PTR records.
    pub reverse: bool,
    /// Interval between file checks; zero disables them.
    pub reload: Duration,
    /// `None`: off; `Some(empty)`: every zone.
    pub fallthrough: Option<Vec<Name>>,
    /// Also fall through for types hosts cannot answer.
    pub fallthrough_unsupported: bool,
}

/// Parse `hosts`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<HostsConfig, CorefileError> {
    let mut cfg = HostsConfig {
        path: PathBuf::from("/etc/hosts"),
        zones: Vec::new(),
        inline: Vec::new(),
        ttl: DEFAULT_TTL,
        reverse: true,
        reload: DEFAULT_RELOAD,
        fallthrough: None,
        fallthrough_unsupported: false,
    };
    if let Some(file) = d.next_arg() {
        cfg.path = relative_to_corefile(file);
    }
    for t in d.remaining() {
        cfg.zones.push(zone(d, t)?);
    }
    let mut unsupported_at = None;
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "fallthrough" => {
                let zones = sd.remaining().iter().map(|t| zone(&sd, t));
                cfg.fallthrough = Some(zones.collect::<std::result::Result<_, _>>()?);
            }
            "fallthrough_unsupported" => {
                sd.expect_end()?;
                cfg.fallthrough_unsupported = true;
                unsupported_at = Some(line);
            }
            "no_reverse" => {
                sd.expect_end()?;
                cfg.reverse = false;
            }
            "ttl" => {
                cfg.ttl = sd
                    .expect_arg("SECONDS")?
                    .parse_u32(&sd.what("SECONDS"), 1..=65535)?;
                sd.expect_end()?;
            }
            "reload" => {
                cfg.reload = sd
                    .expect_arg("DURATION")?
                    .parse_duration(&sd.what("DURATION"))?;
                sd.expect_end()?;
            }
            first => match parse_ip(first) {
                Some(ip) => {
                    if line.args.is_empty() {
                        return Err(d.err_at(&line.name, "inline entry without a name"));
                    }
                    let names = line.args.iter().map(|t| zone(d, t));
                    let names = names.collect::<std::result::Result<_, _>>()?;
                    cfg.inline.push(HostLine { ip, names });
                }
                None => return Err(d.unknown_property(line)),
            },
        }
    }
    if let Some(line) = unsupported_at
        && cfg.fallthrough.is_none()
    {
        return Err(d.err_at(&line.name, "fallthrough_unsupported requires fallthrough"));
    }
    Ok(cfg)
}

fn relative_to_corefile(t: &Token) -> PathBuf {
    let p = PathBuf::from(&t.text);
    match t.pos.file.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    }
}

/// A lower-case FQDN from a token, or an error at it.
fn zone(d: &Dispenser<'_>, t: &Token) -> std::result::Result<Name, CorefileError> {
    to_name(&t.text).ok_or_else(|| d.err_at(t, format!("bad name '{}'", t.text)))
}

fn to_name(text: &str) -> Option<Name> {
    let mut text = text.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).ok()
}

/// An address as hosts files write it (an IPv6 zone `%if` is dropped).
fn parse_ip(text: &str) -> Option<IpAddr> {
    let addr = text.split_once('%').map_or(text, |(a, _)| a);
    addr.parse().ok()
}

/// Parse hosts-file text into lines (bad lines are skipped, as hosts(5) readers do).
pub fn parse_text(text: &str) -> Vec<HostLine> {
    text.lines()
        .filter_map(|line| {
            let line = line.split_once('#').map_or(line, |(l, _)| l);
            let mut fields = line.split_whitespace();
            let ip = parse_ip(fields.next()?)?;
            let names: Vec<Name> = fields.filter_map(to_name).collect();
            (!names.is_empty()).then_some(HostLine { ip, names })
        })
        .collect()
}

/// The lookup table built from the file and the inline entries.
#[derive(Debug, Default)]
pub struct Table {
    v4: HashMap<Name, Vec<Ipv4Addr>>,
    v6: HashMap<Name, Vec<Ipv6Addr>>,
    by_addr: HashMap<IpAddr, Vec<Name>>,
}

impl Table {
    /// A table of `lines` keeping only names in `zones`, with PTRs if `reverse`.
    pub fn build<'a>(
        lines: impl IntoIterator<Item = &'a HostLine>,
        zones: &[Name],
        reverse: bool,
    ) -> Self {
        let mut t = Table::default();
        for line in lines {
            for name in line
                .names
                .iter()
                .filter(|n| zones.iter().any(|z| z.zone_of(n)))
            {
                let added = match line.ip {
                    IpAddr::V4(ip) => push_new(t.v4.entry(name.clone()).or_default(), ip),
                    IpAddr::V6(ip) => push_new(t.v6.entry(name.clone()).or_default(), ip),
                };
                if added && reverse && !name.is_wildcard() {
                    push_new(t.by_addr.entry(line.ip).or_default(), name.clone());
                }
            }
        }
        t
    }

    /// IPv4 addresses of `name` (lower-case).
    pub fn a(&self, name: &Name) -> &[Ipv4Addr] {
        lookup(&self.v4, name)
    }

    /// IPv6 addresses of `name` (lower-case).
    pub fn aaaa(&self, name: &Name) -> &[Ipv6Addr] {
        lookup(&self.v6, name)
    }

    /// Names of `ip`.
    pub fn ptr(&self, ip: IpAddr) -> &[Name] {
        self.by_addr.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// Addresses held, forward and reverse (CoreDNS's `coredns_hosts_entries`).
    pub fn len(&self) -> usize {
        let n4: usize = self.v4.values().map(Vec::len).sum();
        let n6: usize = self.v6.values().map(Vec::len).sum();
        let nr: usize = self.by_addr.values().map(Vec::len).sum();
        n4 + n6 + nr
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, x: T) -> bool {
    if v.contains(&x) {
        return false;
    }
    v.push(x);
    true
}

/// Exact entries first, then the wildcard one label up.
fn lookup<'t, T>(map: &'t HashMap<Name, Vec<T>>, name: &Name) -> &'t [T] {
    if let Some(v) = map.get(name) {
        return v;
    }
    if map.is_empty() || name.num_labels() == 0 {
        return &[];
    }
    Name::from_ascii("*")
        .and_then(|star| star.append_domain(&name.base_name()))
        .ok()
        .and_then(|w| map.get(&w))
        .map_or(&[], Vec::as_slice)
}

/// CoreDNS's hosts metrics.
#[derive(Clone)]
pub struct HostsMetrics {
    entries: IntGauge,
    reload_timestamp: Gauge,
}

impl Family for HostsMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let entries = IntGauge::with_opts(
            Opts::new(
                "entries",
                "The combined number of entries in hosts and Corefile.",
            )
            .namespace("coredns")
            .subsystem("hosts"),
        )?;
        let reload_timestamp = Gauge::with_opts(
            Opts::new(
                "reload_timestamp_seconds",
                "The timestamp of the last reload of hosts file.",
            )
            .namespace("coredns")
            .subsystem("hosts"),
        )?;
        r.register(Box::new(entries.clone()))?;
        r.register(Box::new(reload_timestamp.clone()))?;
        Ok(Self {
            entries,
            reload_timestamp,
        })
    }
}

/// What the file looked like when last read.
#[derive(Debug, Default)]
struct FileState {
    stamp: Option<(Option<SystemTime>, u64)>,
    failing: bool,
}

/// The table and what keeps it current; shared with the reload task.
struct Source {
    path: PathBuf,
    inline: Vec<HostLine>,
    zones: Vec<Name>,
    reverse: bool,
    table: ArcSwap<Table>,
    file: Mutex<FileState>,
    metrics: Option<HostsMetrics>,
}

impl Source {
    /// Re-read the file if its modification time or size changed; on failure
    /// keep the table and log (once until it is readable again).
    fn refresh(&self) {
        let mut st = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let read = std::fs::metadata(&self.path).and_then(|m| {
            let stamp = (m.modified().ok(), m.len());
            if st.stamp == Some(stamp) {
                return Ok(None);
            }
            std::fs::read_to_string(&self.path).map(|text| Some((stamp, text)))
        });
        match read {
            Ok(None) => {}
            Ok(Some((stamp, text))) => {
                let lines = parse_text(&text);
                let table =
                    Table::build(lines.iter().chain(&self.inline), &self.zones, self.reverse);
                tracing::debug!(path = %self.path.display(), entries = table.len(), "hosts: parsed");
                self.publish(table);
                if st.failing {
                    tracing::info!(path = %self.path.display(), "hosts: file readable again");
                }
                *st = FileState {
                    stamp: Some(stamp),
                    failing: false,
                };
            }
            Err(e) => {
                if !st.failing {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        "hosts: cannot read the hosts file; keeping the previous entries"
                    );
                }
                st.failing = true;
            }
        }
    }

    fn publish(&self, table: Table) {
        if let Some(m) = &self.metrics {
            m.entries
                .set(i64::try_from(table.len()).unwrap_or(i64::MAX));
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            m.reload_timestamp.set(now.as_secs_f64());
        }
        self.table.store(Arc::new(table));
    }
}

/// The `hosts` plugin.
pub struct Hosts {
    source: Arc<Source>,
    zones: Vec<Name>,
    ttl: u32,
    fallthrough: Option<Vec<Name>>,
    fallthrough_unsupported: bool,
}

impl Hosts {
    /// Build from `cfg` in a server block with `block_zones`: reads the file
    /// now and, if `reload` is set and a tokio runtime runs, re-reads it until
    /// `token` is cancelled.
    pub fn new(
        cfg: &HostsConfig,
        block_zones: &[Name],
        metrics: Option<HostsMetrics>,
        token: &CancellationToken,
    ) -> Self {
        let zones = if cfg.zones.is_empty() {
            block_zones.to_vec()
        } else {
            cfg.zones.clone()
        };
        let source = Arc::new(Source {
            path: cfg.path.clone(),
            inline: cfg.inline.clone(),
            zones: zones.clone(),
            reverse: cfg.reverse,
            table: ArcSwap::from_pointee(Table::build(&cfg.inline, &zones, cfg.reverse)),
            file: Mutex::new(FileState::default()),
            metrics,
        });
        source.refresh();
        if !cfg.reload.is_zero()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (src, token, every) = (Arc::clone(&source), token.clone(), cfg.reload);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await; // the first tick is immediate: the file was just read
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        _ = tick.tick() => src.refresh(),
                    }
                }
            });
        }
        Self {
            source,
            zones,
            ttl: cfg.ttl,
            fallthrough: cfg.fallthrough.clone(),
            fallthrough_unsupported: cfg.fallthrough_unsupported,
        }
    }

    /// Build from `cfg` with the context's zones, metrics and token.
    pub fn build(cfg: &HostsConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let metrics = ctx.families.get::<HostsMetrics>()?;
        Ok(Self::new(cfg, ctx.zones, Some(metrics), ctx.token))
    }

    fn falls_through(&self, name: &Name) -> bool {
        match &self.fallthrough {
            None => false,
            Some(zones) => zones.is_empty() || zones.iter().any(|z| z.zone_of(name)),
        }
    }

    fn reply(&self, rcode: ResponseCode, answers: Vec<Record>) -> Answer {
        let mut a = Answer::rcode(rcode);
        a.authoritative = true;
        a.answers = answers;
        a
    }
}

/// The address a full reverse name (`4.3.2.1.in-addr.arpa.`) stands for.
fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

#[async_trait::async_trait]
impl Plugin for Hosts {
    fn name(&self) -> &'static str {
        "hosts"
    }

    /// Outside its zones (and not a PTR) it never looks at its table, which
    /// a reload of the hosts file may change.
    fn memo_pass(&self, q: &Query, _answer: &Answer) -> MemoPass {
        if q.qtype != RecordType::PTR && !self.zones.iter().any(|z| z.zone_of(&q.lower)) {
            MemoPass::Quiet
        } else {
            MemoPass::Block
        }
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let name = &q.lower;
        let in_zone = self.zones.iter().any(|z| z.zone_of(name));
        if !in_zone && q.qtype != RecordType::PTR {
            return next.serve(q).await;
        }
        let table = self.source.table.load();
        let rr = |data: RData| Record::from_rdata(q.name.clone(), self.ttl, data);
        let answers: Vec<Record> = match q.qtype {
            RecordType::PTR => {
                let names = reverse_ip(name).map_or(&[][..], |ip| table.ptr(ip));
                if names.is_empty() {
                    return next.serve(q).await;
                }
                names
                    .iter()
                    .map(|n| rr(RData::PTR(PTR(n.clone()))))
                    .collect()
            }
            RecordType::A => table
                .a(name)
                .iter()
                .map(|ip| rr(RData::A(A(*ip))))
                .collect(),
            RecordType::AAAA => table
                .aaaa(name)
                .iter()
                .map(|ip| rr(RData::AAAA(AAAA(*ip))))
                .collect(),
            _ => Vec::new(),
        };
        if answers.is_empty() {
            let exists = !table.a(name).is_empty() || !table.aaaa(name).is_empty();
            let unsupported = !matches!(q.qtype, RecordType::A | RecordType::AAAA);
            if !exists && self.falls_through(name)
                || exists && unsupported && self.fallthrough_unsupported && self.falls_through(name)
            {
                return next.serve(q).await;
            }
            if !exists {
                return Ok(self.reply(ResponseCode::NXDomain, Vec::new()));
            }
        }
        Ok(self.reply(ResponseCode::NoError, answers))
    }
}

#[cfg(test)]
mod tests;

crate::plugin::build::build_plugin!(HostsConfig, |config, ctx| Hosts::build(config, ctx)?);
