//! Fuzz target: raw bytes → the whole request path of the UDP loop
//! ([`wire::parse`] → [`Handler::answer`] over the plugin chain → [`wire::encode`]),
//! once as UDP and once as TCP (the TCP size limit), with every response
//! re-parsed by [`super::reparse`] (the strict walker and hickory's decoder).
//!
//! The chain is built from [`COREFILE`] like the app builds it (no sockets,
//! no upstreams): `kubernetes` over the fuzz cluster ([`super::cluster`]),
//! `k8s_external` over the same index, `autopath`, `rewrite`, `template`,
//! `hosts` (inline entries only), `any`, `loadbalance` and `whoami` as the
//! catch-all.
//!
//! Properties checked on every response:
//! - it re-parses strictly: counts equal the records present, no trailing bytes;
//! - it fits the limit: the client's EDNS size clamped to 512..=4096 (512 without
//!   EDNS) over UDP, 65535 over TCP;
//! - ID and opcode echo the request, QR is set, the question is echoed with its case;
//! - OPT is present exactly when the request had one;
//! - TC is set exactly when records were left out (or a plugin passed TC on), and
//!   what is kept is a prefix of each section;
//! - a packet is dropped only when it has no header or is a response.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::Query as Question;
use hickory_proto::op::{Edns, Message, MessageType, OpCode};
use hickory_proto::rr::{Name, RecordType};
use tokio_util::sync::CancellationToken;

use super::{Reparsed, reparse};
use crate::config::{self, Config};
use crate::corefile::{self, MemFs};
use crate::dns::metrics::DnsMetrics;
use crate::dns::wire::{self, Parsed};
use crate::dns::{Answer, Handler, Route, Transport};
use crate::index::snapshot::SharedIndex;
use crate::plugin::build::{BlockShared, BuildCtx, Families};
use crate::plugin::kubernetes::Kubernetes;
use crate::plugin::{Chain, Plugin, PluginConfig};

/// The server the request target talks to. `manifests` is not read: the
/// harness fills the kubernetes plugin's index itself.
pub const COREFILE: &str = r#"
.:53 {
    any
    loadbalance
    rewrite name exact db.example.com nginx-service.default.svc.cluster.local
    rewrite stop {
        name regex (.*)\.corp\.example\. {1}.default.svc.cluster.local.
        answer name (.*)\.default\.svc\.cluster\.local\. {1}.corp.example.
    }
    autopath @kubernetes
    template IN A example.org {
        match "^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)-(?P<c>[0-9]+)-(?P<d>[0-9]+)[.]example[.]org[.]$"
        answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        fallthrough
    }
    template IN TXT example.org {
        answer "{{ .Name }} 60 IN TXT \"{{ .Type }} {{ .Class }}\""
    }
    hosts /dev/null example.net 10.in-addr.arpa {
        10.1.1.1 a.example.net
        fd00::1 a.example.net
        10.1.1.2 b.example.net alias.example.net
        10.1.1.3 *.w.example.net
        fallthrough
    }
    k8s_external ext.example {
        headless
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests cluster.yaml
        pods verified
        endpoint_pod_names
        ttl 30
        fallthrough in-addr.arpa ip6.arpa
    }
    whoami
}
"#;

/// The client address every fuzz query comes from: the demo's `web-0` pod,
/// so `autopath @kubernetes` finds its namespace.
pub const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 10)), 40000);

/// What one transport did with the input.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// No response (no header, or a response packet).
    Dropped,
    /// A response, strictly re-parsed.
    Answered(Box<Reparsed>),
}

/// Runs `data` through the request path over UDP, then TCP, checking every
/// response; returns what each transport answered.
pub fn run(data: &[u8]) -> [Outcome; 2] {
    let handler = handler();
    [Transport::Udp, Transport::Tcp].map(|t| one(handler, data, t))
}

fn one(handler: &Handler, data: &[u8], transport: Transport) -> Outcome {
    let mut out = Vec::new();
    match wire::parse(data, CLIENT, transport) {
        Parsed::Drop => {
            let is_query_header = data.len() >= 12 && data[2] & 0x80 == 0;
            assert!(!is_query_header, "a query with a whole header was dropped");
            Outcome::Dropped
        }
        Parsed::Reject { header, rcode } => {
            let h = wire::encode_reject(&header, rcode, &mut out)
                .unwrap_or_else(|| panic!("{transport:?}: no {rcode} response could be encoded"));
            let r = checked(&out, 512, transport);
            let m = &r.message;
            assert_eq!(
                m.metadata, h.metadata,
                "the returned header is the one encoded"
            );
            assert_eq!(
                (m.metadata.id, m.metadata.response_code),
                (header.id, rcode)
            );
            assert_eq!(r.summary.len, out.len());
            assert!(m.queries.is_empty() && m.answers.is_empty() && m.edns.is_none());
            Outcome::Answered(Box::new(r))
        }
        Parsed::Query(req) => {
            let answer = super::block_on(handler.answer(&req.query));
            let h = wire::encode(&req, &answer, transport, &mut out)
                .unwrap_or_else(|| panic!("{transport:?}: no response for {}", req.query.name));
            let edns = req.message.edns.as_ref().map(wire::response_edns);
            let limit = match transport {
                Transport::Udp => edns.as_ref().map_or(512, Edns::max_payload),
                Transport::Tcp => u16::MAX,
            };
            let r = checked(&out, limit, transport);
            let m = &r.message.metadata;
            assert_eq!(*m, h.metadata, "the returned header is the one encoded");
            assert_eq!(m.id, req.message.metadata.id);
            assert_eq!(m.op_code, OpCode::Query);
            assert_eq!(
                r.message.queries, req.message.queries,
                "the question is echoed"
            );
            assert_eq!(
                r.message.edns.as_ref().map(Edns::max_payload),
                edns.as_ref().map(Edns::max_payload),
                "OPT in the response iff in the request ({})",
                req.query.name
            );
            assert_eq!(
                m.response_code, answer.rcode,
                "the answer could not be encoded"
            );
            check_truncation(&r, &answer);
            Outcome::Answered(Box::new(r))
        }
    }
}

/// A response re-parsed strictly; it must fit `limit`.
fn checked(bytes: &[u8], limit: u16, transport: Transport) -> Reparsed {
    assert!(
        bytes.len() <= usize::from(limit),
        "{transport:?}: {} bytes exceed the limit {limit}",
        bytes.len()
    );
    let r = reparse(bytes);
    assert_eq!(r.message.metadata.message_type, MessageType::Response);
    r
}

/// TC is set exactly when something was left out (or the plugin said so),
/// and what is kept of each section is its beginning.
fn check_truncation(r: &Reparsed, answer: &Answer) {
    let m = &r.message;
    let kept = [&m.answers, &m.authorities, &m.additionals];
    let full = [&answer.answers, &answer.authority, &answer.additionals];
    let mut dropped = false;
    for (kept, all) in kept.into_iter().zip(full) {
        assert!(kept.len() <= all.len(), "more records than the answer had");
        assert_eq!(
            kept[..],
            all[..kept.len()],
            "a section is not a prefix of the answer"
        );
        dropped |= kept.len() < all.len();
    }
    assert_eq!(
        m.metadata.truncation,
        dropped || answer.truncated,
        "TC must be set exactly when records were dropped"
    );
}

/// The handler over [`COREFILE`], built once per process.
pub fn handler() -> &'static Handler {
    static HANDLER: OnceLock<Handler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let families = Families::new(prometheus::Registry::new());
        super::block_on(async {
            build_handler(COREFILE, super::cluster::shared_index(), &families)
        })
    })
}

fn config(corefile: &str) -> Config {
    let no_env = |_: &str| None;
    let cf = corefile::parse_str(corefile, Path::new("Corefile"), &no_env, &MemFs::new())
        .unwrap_or_else(|e| panic!("harness Corefile: {e}"));
    config::from_corefile(&cf, 53).unwrap_or_else(|e| panic!("harness Corefile: {e:?}"))
}

/// The handler the app's plan would build for `corefile`, minus listeners
/// and sources: its chain plugins, the request metrics (in `families`) for
/// blocks with `prometheus`, and every `kubernetes` plugin answering from
/// `index`. Needs a tokio runtime (some plugins spawn background tasks).
/// Shared with the memo tests.
pub fn build_handler(corefile: &str, index: Arc<SharedIndex>, families: &Families) -> Handler {
    let cfg = config(corefile);
    let token = CancellationToken::new();
    let mut routes = Vec::new();
    for server in &cfg.servers {
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        let mut kubernetes = None;
        for p in &server.plugins {
            if let PluginConfig::Kubernetes(k) = p {
                let k8s = Arc::new(Kubernetes::new(k, &server.zones, Vec::new(), index.clone()));
                plugins.push(k8s.clone());
                kubernetes = Some(k8s);
            }
        }
        let shared = BlockShared::default();
        let ctx = BuildCtx {
            families,
            server: "dns://:53",
            zones: &server.zones,
            token: &token,
            kubernetes: kubernetes.as_ref(),
            listen: &[],
            shared: &shared,
        };
        for p in &server.plugins {
            if let PluginConfig::Chain(c) = p {
                let built = c
                    .build(&ctx)
                    .unwrap_or_else(|e| panic!("fuzz harness: building {}: {e:#}", c.name()));
                plugins.push(built);
            }
        }
        routes.push(Route {
            view: None,
            zones: server.zones.clone(),
            chain: Chain::new(plugins),
            server: "dns://:53".into(),
            metrics: server
                .plugins
                .iter()
                .any(|p| matches!(p, PluginConfig::Prometheus(_)))
                .then(|| families.get::<DnsMetrics>().expect("request metrics")),
        });
    }
    Handler::new(routes)
}

/// A stub resolver's query for `name`/`qtype`, with EDNS of `payload` when given.
pub fn query(id: u16, name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("seed name {name}: {e}"));
    m.add_query(Question::query(name, qtype));
    if let Some(size) = payload {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec()
        .unwrap_or_else(|e| panic!("encoding a seed query: {e}"))
}

/// Seed queries: every name the fuzz cluster and the other plugins answer,
/// in several types, with and without EDNS, some in mixed case.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    use RecordType::{A, AAAA, ANY, CNAME, NS, PTR, SOA, SRV, TXT};
    let names: &[(&str, &[RecordType])] = &[
        (
            "nginx-service.default.svc.cluster.local.",
            &[A, AAAA, ANY, TXT],
        ),
        (
            "_service-port._tcp.nginx-service.default.svc.cluster.local.",
            &[SRV],
        ),
        ("NGINX-Service.Default.SVC.cluster.LOCAL.", &[A]),
        ("big.default.svc.cluster.local.", &[A, SRV, AAAA]),
        ("_http._tcp.big.default.svc.cluster.local.", &[SRV]),
        ("big-7.big.default.svc.cluster.local.", &[A]),
        ("web.demo.svc.cluster.local.", &[A, SRV]),
        ("web-0.web.demo.svc.cluster.local.", &[A]),
        ("search.demo.svc.cluster.local.", &[A, CNAME]),
        ("dual.demo.svc.cluster.local.", &[A, AAAA]),
        ("10-244-1-10.demo.pod.cluster.local.", &[A]),
        ("kube-dns.kube-system.svc.cluster.local.", &[A, SRV]),
        ("cluster.local.", &[SOA, NS]),
        ("ns.dns.cluster.local.", &[A]),
        ("nothere.default.svc.cluster.local.", &[A]),
        ("100.0.96.10.in-addr.arpa.", &[PTR]),
        ("10.1.244.10.in-addr.arpa.", &[PTR]),
        ("1.0.250.10.in-addr.arpa.", &[PTR]),
        ("nginx-service.demo.svc.cluster.local.", &[A]),
        ("nginx-service.", &[A]),
        ("db.example.com.", &[A]),
        ("nginx-service.corp.example.", &[A]),
        ("ip-10-1-2-3.example.org.", &[A]),
        ("anything.example.org.", &[TXT]),
        ("a.example.net.", &[A, AAAA]),
        ("x.w.example.net.", &[A]),
        ("1.1.1.10.in-addr.arpa.", &[PTR]),
        ("elsewhere.test.", &[A, ANY]),
    ];
    let mut out = Vec::new();
    let mut id = 1u16;
    for (name, types) in names {
        for qtype in *types {
            for payload in [None, Some(1232)] {
                let label = format!(
                    "{}-{qtype}-{}",
                    name.trim_end_matches('.'),
                    payload.map_or(0, |p| p)
                );
                out.push((label, query(id, name, *qtype, payload)));
                id = id.wrapping_add(1);
            }
        }
    }
    for payload in [512, 4096, 65535] {
        let label = format!("big-A-{payload}");
        out.push((
            label,
            query(id, "big.default.svc.cluster.local.", A, Some(payload)),
        ));
    }
    out
}
