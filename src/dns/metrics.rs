//! The server-level metrics CoreDNS's `prometheus` plugin records, under the
//! same names, labels and buckets so dashboards and alerts keep working.
//!
//! Recorded only for server blocks that have `prometheus` (as CoreDNS).

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Record, RecordType};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::shards::{Collect, Families, Labels, Sharded};
use crate::plugin::build::Family;

/// CoreDNS's size buckets (`plugin/metrics/vars`).
const SIZE_BUCKETS: &[f64] = &[
    0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3,
];

/// The `coredns_dns_*` families and friends.
#[derive(Clone, Debug)]
pub struct DnsMetrics {
    /// The per-query families, counted per thread and flushed on scrape.
    per_query: Arc<Sharded>,
    /// Queries whose handling panicked (answered SERVFAIL).
    pub panics: IntCounter,
    plugin_enabled: IntGaugeVec,
}

const SZV: &[&str] = &["server", "zone", "view"];

impl Family for DnsMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let ns =
            |name: &str, help: &str| Opts::new(name, help).namespace("coredns").subsystem("dns");
        let requests = IntCounterVec::new(
            ns(
                "requests_total",
                "Counter of DNS requests made per zone, protocol and family.",
            ),
            &["server", "zone", "view", "proto", "family", "type"],
        )?;
        let do_requests = IntCounterVec::new(
            ns(
                "do_requests_total",
                "Counter of DNS requests with DO bit set per zone.",
            ),
            SZV,
        )?;
        let responses = IntCounterVec::new(
            ns("responses_total", "Counter of response status codes."),
            &["server", "zone", "view", "rcode", "plugin"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Histogram of the time (in seconds) each request took per zone.",
            )
            .namespace("coredns")
            .subsystem("dns")
            .buckets(prometheus::exponential_buckets(0.00025, 2.0, 16)?),
            SZV,
        )?;
        let size = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help)
                    .namespace("coredns")
                    .subsystem("dns")
                    .buckets(SIZE_BUCKETS.to_vec()),
                &["server", "zone", "view", "proto"],
            )
        };
        let request_size = size(
            "request_size_bytes",
            "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
        )?;
        let response_size = size(
            "response_size_bytes",
            "Size of the returned response in bytes.",
        )?;
        let panics = IntCounter::with_opts(Opts::new(
            "coredns_panics_total",
            "A metrics that counts the number of panics.",
        ))?;
        let plugin_enabled = IntGaugeVec::new(
            Opts::new(
                "coredns_plugin_enabled",
                "A metric that indicates whether a plugin is enabled on per server and zone basis.",
            ),
            &["server", "zone", "view", "name"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "coredns_build_info",
                "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
            ),
            &["version", "revision", "goversion"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), "clusterdns", "rust"])
            .set(1);
        let per_query = Sharded::new(Families {
            requests,
            do_requests,
            responses,
            duration,
            request_size,
            response_size,
        });
        r.register(Box::new(Collect(Arc::clone(&per_query))))?;
        r.register(Box::new(panics.clone()))?;
        r.register(Box::new(plugin_enabled.clone()))?;
        r.register(Box::new(build_info))?;
        Ok(Self {
            per_query,
            panics,
            plugin_enabled,
        })
    }
}

/// The `view` label of blocks without a `view`: one shared empty string
/// (the per-thread buffers tell labels apart by address).
pub fn no_view() -> &'static Arc<str> {
    static NO_VIEW: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
    &NO_VIEW
}

/// One finished query, as the metrics see it.
pub struct Observation<'a> {
    /// `dns://:53`.
    pub server: &'a Arc<str>,
    /// The matched server-block zone, or `dropped`.
    pub zone: &'a Arc<str>,
    /// The block's `view` name (empty without one).
    pub view: &'a Arc<str>,
    /// `udp` / `tcp`.
    pub proto: &'static str,
    /// `1` IPv4, `2` IPv6.
    pub family: &'static str,
    /// Query type.
    pub qtype: RecordType,
    /// DO bit.
    pub dnssec_ok: bool,
    /// Advertised buffer (EDNS size, 512 without; 65535 for TCP).
    pub request_size: usize,
    /// Response bytes.
    pub response_size: usize,
    /// Response code.
    pub rcode: ResponseCode,
    /// Plugin that wrote the answer.
    pub plugin: &'static str,
    /// Time spent.
    pub elapsed: Duration,
}

impl DnsMetrics {
    /// Mark the plugins of a block (in `view`, empty without one) as enabled.
    pub fn enable(&self, server: &str, zone: &str, view: &str, plugins: &[&'static str]) {
        for p in plugins {
            self.plugin_enabled
                .with_label_values(&[server, zone, view, p])
                .set(1);
        }
    }

    /// Record one query (into this thread's buffer, [`super::shards`]).
    pub fn observe(&self, o: &Observation<'_>) {
        let labels = Labels {
            server: o.server,
            zone: o.zone,
            view: o.view,
            proto: o.proto,
            family: o.family,
            qtype: qtype_label(o.qtype),
            rcode: rcode_label(o.rcode),
            plugin: o.plugin,
            dnssec_ok: o.dnssec_ok,
        };
        self.per_query.record(&labels, |b| {
            b.duration.observe(o.elapsed.as_secs_f64());
            b.request_size.observe(o.request_size as f64);
            b.response_size.observe(o.response_size as f64);
        });
    }
}

/// CoreDNS's `type` label: the common types by name, anything else `other`.
fn qtype_label(t: RecordType) -> &'static str {
    use RecordType::*;
    match t {
        A => "A",
        AAAA => "AAAA",
        NS => "NS",
        CNAME => "CNAME",
        SOA => "SOA",
        PTR => "PTR",
        MX => "MX",
        TXT => "TXT",
        SRV => "SRV",
        ANY => "ANY",
        HINFO => "HINFO",
        NULL => "NULL",
        CAA => "CAA",
        AXFR => "AXFR",
        IXFR => "IXFR",
        DNSKEY => "DNSKEY",
        DS => "DS",
        NSEC => "NSEC",
        NSEC3 => "NSEC3",
        OPT => "OPT",
        SVCB => "SVCB",
        HTTPS => "HTTPS",
        _ => "other",
    }
}

/// CoreDNS's rcode label (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_label(rc: ResponseCode) -> &'static str {
    match rc {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}

/// Wire size of a response carrying these records (names uncompressed, so an
/// upper bound; exact for the header and question).
pub fn response_size(question: usize, sections: &[&[Record]]) -> usize {
    use hickory_proto::serialize::binary::BinEncodable;
    let records: usize = sections
        .iter()
        .flat_map(|s| s.iter())
        .map(|r| {
            let rdata = match r.record_type() {
                RecordType::A => 4,
                RecordType::AAAA => 16,
                _ => r.data.to_bytes().map(|b| b.len()).unwrap_or(0),
            };
            r.name.len() + 1 + 10 + rdata
        })
        .sum();
    12 + question + records
}
