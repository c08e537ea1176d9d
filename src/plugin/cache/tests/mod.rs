//! Serve tables for the cache with a fake next plugin and a paused clock;
//! the background refresh paths (prefetch, serve_stale) are in `refresh.rs`,
//! the parse table in `parse.rs`.

mod parse;
mod refresh;

use crate::plugin::build::TestCtx;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::corefile::{Dispenser, MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::build::Families;
use crate::plugin::{Chain, PluginError};

/// A next plugin that answers what it is told and counts its calls.
struct Fake {
    name: &'static str,
    calls: AtomicUsize,
    reply: Mutex<std::result::Result<Answer, ResponseCode>>,
}

impl Fake {
    fn new(name: &'static str, reply: Answer) -> Arc<Self> {
        Arc::new(Self {
            name,
            calls: AtomicUsize::new(0),
            reply: Mutex::new(Ok(reply)),
        })
    }
    fn set(&self, reply: std::result::Result<Answer, ResponseCode>) {
        *self.reply.lock().unwrap() = reply;
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Plugin for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.reply
            .lock()
            .unwrap()
            .clone()
            .map_err(PluginError::Rcode)
    }
}

struct Setup {
    chain: Chain,
    cache: Arc<Cache>,
    fake: Arc<Fake>,
    families: Families,
    token: CancellationToken,
}

/// `directive` (a `cache` line, maybe with a block) in front of a fake next plugin.
fn setup(directive: &str, fake: Arc<Fake>) -> Setup {
    let text = format!(".:53 {{\n{directive}\n}}\n");
    let cf = parse_str(&text, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let cfg = parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).unwrap();
    let families = Families::new(Registry::new());
    let t = TestCtx::new(&families, &["."]);
    let token = t.token.clone();
    let cache = Arc::new(Cache::new(&cfg, &t.ctx()).unwrap());
    let chain = Chain::new(vec![cache.clone(), fake.clone()]);
    Setup {
        chain,
        cache,
        fake,
        families,
        token,
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn query(qname: &str, qtype: RecordType) -> Query {
    let src: SocketAddr = "10.1.2.3:5353".parse().unwrap();
    Query::new(name(qname), qtype, src, Transport::Udp)
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::A(A::from(std::net::Ipv4Addr::from(ip))),
    )
}

fn positive(owner: &str, ttl: u32) -> Answer {
    let mut ans = Answer::rcode(ResponseCode::NoError);
    ans.answers.push(a(owner, ttl, [192, 0, 2, 1]));
    ans
}

fn soa(ttl: u32, minimum: u32) -> Record {
    let data = SOA::new(
        name("ns.example.org."),
        name("admin.example.org."),
        1,
        7200,
        1800,
        86400,
        minimum,
    );
    Record::from_rdata(name("example.org."), ttl, RData::SOA(data))
}

fn denial(rcode: ResponseCode, soa_ttl: u32, minimum: u32) -> Answer {
    let mut ans = Answer::rcode(rcode);
    ans.authority.push(soa(soa_ttl, minimum));
    ans
}

/// The TTLs of every record of the answer.
fn ttls(a: &Answer) -> Vec<u32> {
    a.answers
        .iter()
        .chain(&a.authority)
        .chain(&a.additionals)
        .map(|r| r.ttl)
        .collect()
}

async fn ask(s: &Setup, qname: &str) -> Answer {
    s.chain.serve(&query(qname, RecordType::A)).await.unwrap()
}

async fn advance(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
}

/// Let spawned refresh tasks run to completion.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn metric(s: &Setup, prefix: &str) -> Vec<String> {
    crate::metrics::encode(s.families.registry())
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_second_query_is_answered_from_the_cache_with_the_ttl_counting_down() {
    let s = setup("cache 30", Fake::new("fake", positive("example.org.", 300)));
    let first = ask(&s, "example.org.").await;
    assert_eq!(
        ttls(&first),
        [30],
        "the first answer already shows the capped TTL"
    );
    assert_eq!(first.writer, "fake");
    advance(10).await;
    let second = ask(&s, "example.org.").await;
    assert_eq!(ttls(&second), [20]);
    assert_eq!(second.writer, "cache");
    assert_eq!(second.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
    assert_eq!(s.fake.calls(), 1);
    advance(19).await;
    assert_eq!(ttls(&ask(&s, "example.org.").await), [1]);
    advance(1).await;
    let expired = ask(&s, "example.org.").await;
    assert_eq!(s.fake.calls(), 2, "expired after exactly 30 s");
    assert_eq!(ttls(&expired), [30]);
}

#[tokio::test(start_paused = true)]
async fn ttls_are_capped_by_ttl_and_raised_to_minttl() {
    let cases: &[(&str, u32, u32)] = &[
        ("cache", 300, 300),
        ("cache", 7200, 3600),
        ("cache 30", 2, 5),
        ("cache {\n success 10000 60 20\n}", 2, 20),
        ("cache {\n success 10000 60 20\n}", 600, 60),
        ("cache {\n success 10000 60 0\n}", 2, 2),
        ("cache {\n success 10000 10 30\n}", 100, 10),
    ];
    for (directive, record_ttl, want) in cases {
        let s = setup(
            directive,
            Fake::new("fake", positive("example.org.", *record_ttl)),
        );
        assert_eq!(
            ttls(&ask(&s, "example.org.").await),
            [*want],
            "{directive} / {record_ttl}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn denials_are_cached_for_the_soa_minimum_and_separately_from_success() {
    for rcode in [ResponseCode::NXDomain, ResponseCode::NoError] {
        let s = setup("cache", Fake::new("fake", denial(rcode, 60, 10)));
        let first = ask(&s, "nope.example.org.").await;
        assert_eq!(first.rcode, rcode);
        assert_eq!(ttls(&first), [10], "min(SOA TTL 60, MINIMUM 10)");
        advance(9).await;
        let hit = ask(&s, "nope.example.org.").await;
        assert_eq!((hit.rcode, ttls(&hit)), (rcode, vec![1]));
        assert_eq!(s.fake.calls(), 1);
        advance(1).await;
        ask(&s, "nope.example.org.").await;
        assert_eq!(s.fake.calls(), 2);
        s.cache.sync();
        let entries = metric(&s, "coredns_cache_entries");
        assert!(
            entries
                .iter()
                .any(|l| l.contains("type=\"denial\"") && l.ends_with(" 1")),
            "{entries:?}"
        );
        assert!(
            entries
                .iter()
                .any(|l| l.contains("type=\"success\"") && l.ends_with(" 0")),
            "{entries:?}"
        );
    }
    // The SOA's own TTL bounds it too, and `denial CAP TTL` caps it.
    let s = setup(
        "cache {\n denial 100 3\n}",
        Fake::new("fake", denial(ResponseCode::NXDomain, 60, 30)),
    );
    assert_eq!(ttls(&ask(&s, "nope.example.org.").await), [3]);
}

#[tokio::test(start_paused = true)]
async fn servfail_is_cached_for_five_seconds_by_default_and_not_at_all_with_zero() {
    let s = setup(
        "cache",
        Fake::new("fake", Answer::rcode(ResponseCode::ServFail)),
    );
    ask(&s, "down.example.org.").await;
    advance(4).await;
    assert_eq!(
        ask(&s, "down.example.org.").await.rcode,
        ResponseCode::ServFail
    );
    assert_eq!(s.fake.calls(), 1);
    advance(1).await;
    ask(&s, "down.example.org.").await;
    assert_eq!(s.fake.calls(), 2);

    let s = setup(
        "cache {\n servfail 0\n}",
        Fake::new("fake", Answer::rcode(ResponseCode::ServFail)),
    );
    ask(&s, "down.example.org.").await;
    ask(&s, "down.example.org.").await;
    assert_eq!(s.fake.calls(), 2);
    // An error from the chain (not an answer) is never cached.
    let s = setup("cache", Fake::new("fake", positive("x.", 1)));
    s.fake.set(Err(ResponseCode::ServFail));
    assert!(
        s.chain
            .serve(&query("err.example.org.", RecordType::A))
            .await
            .is_err()
    );
    assert!(
        s.chain
            .serve(&query("err.example.org.", RecordType::A))
            .await
            .is_err()
    );
    assert_eq!(s.fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn keepttl_serves_the_stored_ttl_until_expiry() {
    let s = setup(
        "cache 30 {\n keepttl\n}",
        Fake::new("fake", positive("example.org.", 300)),
    );
    ask(&s, "example.org.").await;
    advance(29).await;
    assert_eq!(ttls(&ask(&s, "example.org.").await), [30]);
    advance(1).await;
    ask(&s, "example.org.").await;
    assert_eq!(s.fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn truncated_refused_and_zone_transfer_answers_are_not_cached() {
    let mut truncated = positive("example.org.", 300);
    truncated.truncated = true;
    let s = setup("cache", Fake::new("fake", truncated));
    ask(&s, "example.org.").await;
    ask(&s, "example.org.").await;
    assert_eq!(s.fake.calls(), 2);

    let s = setup(
        "cache",
        Fake::new("fake", Answer::rcode(ResponseCode::Refused)),
    );
    ask(&s, "example.org.").await;
    ask(&s, "example.org.").await;
    assert_eq!(s.fake.calls(), 2);

    let s = setup("cache", Fake::new("fake", positive("example.org.", 300)));
    for _ in 0..2 {
        s.chain
            .serve(&query("example.org.", RecordType::AXFR))
            .await
            .unwrap();
    }
    assert_eq!(s.fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn hits_take_the_spelling_of_the_asking_query_and_the_key_ignores_case() {
    let s = setup("cache", Fake::new("fake", positive("ExAmple.org.", 300)));
    ask(&s, "ExAmple.org.").await;
    let hit = ask(&s, "eXAMPLE.ORG.").await;
    assert_eq!(s.fake.calls(), 1);
    assert_eq!(hit.answers[0].name.to_ascii(), "eXAMPLE.ORG.");
}

#[tokio::test(start_paused = true)]
async fn qtype_and_the_do_bit_are_part_of_the_key() {
    let s = setup("cache", Fake::new("fake", positive("example.org.", 300)));
    s.chain
        .serve(&query("example.org.", RecordType::A))
        .await
        .unwrap();
    s.chain
        .serve(&query("example.org.", RecordType::TXT))
        .await
        .unwrap();
    let mut with_do = query("example.org.", RecordType::A);
    with_do.dnssec_ok = true;
    s.chain.serve(&with_do).await.unwrap();
    assert_eq!(s.fake.calls(), 3);
    s.chain.serve(&with_do).await.unwrap();
    assert_eq!(s.fake.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn capacity_bounds_the_entries_and_evictions_are_counted() {
    // Below 1024 CoreDNS still keeps 256 shards × 4.
    assert_eq!(effective_capacity(0), 1024);
    assert_eq!(effective_capacity(2000), 1792);
    assert_eq!(effective_capacity(9984), 9984);
    let s = setup(
        "cache {\n success 1024\n}",
        Fake::new("fake", positive("x.example.org.", 300)),
    );
    for i in 0..1500 {
        ask(&s, &format!("n{i}.example.org.")).await;
        if i % 100 == 0 {
            s.cache.sync();
        }
    }
    s.cache.sync();
    let n = s.cache.inner.success.entry_count();
    assert!(n <= 1024 && n > 500, "{n} entries");
    let evicted = metric(&s, "coredns_cache_evictions_total");
    let count: u64 = evicted
        .iter()
        .find(|l| l.contains("type=\"success\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(count >= 1500 - 1024, "{evicted:?}");
}

#[tokio::test(start_paused = true)]
async fn disable_turns_off_one_cache_for_some_zones() {
    let s = setup(
        "cache {\n disable success example.org\n}",
        Fake::new("fake", positive("a.example.org.", 300)),
    );
    ask(&s, "a.example.org.").await;
    ask(&s, "a.example.org.").await;
    assert_eq!(s.fake.calls(), 2, "success disabled for example.org");
    ask(&s, "a.example.net.").await;
    ask(&s, "a.example.net.").await;
    assert_eq!(s.fake.calls(), 3, "other zones still cached");
    s.fake.set(Ok(denial(ResponseCode::NXDomain, 60, 60)));
    ask(&s, "b.example.org.").await;
    ask(&s, "b.example.org.").await;
    assert_eq!(s.fake.calls(), 4, "denial still cached for example.org");

    let s = setup(
        "cache {\n disable denial\n}",
        Fake::new("fake", denial(ResponseCode::NXDomain, 60, 60)),
    );
    ask(&s, "b.example.org.").await;
    ask(&s, "b.example.org.").await;
    assert_eq!(s.fake.calls(), 2, "denial disabled everywhere");
}

#[tokio::test(start_paused = true)]
async fn kubernetes_answers_are_never_cached_and_pass_untouched() {
    let s = setup(
        "cache 30",
        Fake::new("kubernetes", positive("svc.ns.svc.cluster.local.", 5)),
    );
    let first = ask(&s, "svc.ns.svc.cluster.local.").await;
    assert_eq!((ttls(&first), first.writer), (vec![5], "kubernetes"));
    s.fake.set(Ok(positive("svc.ns.svc.cluster.local.", 7)));
    let second = ask(&s, "svc.ns.svc.cluster.local.").await;
    assert_eq!(ttls(&second), [7], "the index's current answer");
    assert_eq!(s.fake.calls(), 2);
    s.fake.set(Ok(denial(ResponseCode::NXDomain, 5, 5)));
    ask(&s, "gone.ns.svc.cluster.local.").await;
    ask(&s, "gone.ns.svc.cluster.local.").await;
    assert_eq!(s.fake.calls(), 4);
    s.cache.sync();
    assert!(
        metric(&s, "coredns_cache_entries")
            .iter()
            .all(|l| l.ends_with(" 0"))
    );
}

#[tokio::test(start_paused = true)]
async fn whoami_answers_are_cached_like_any_other_plugins() {
    let s = setup("cache", Fake::new("fake", positive("x.", 1)));
    let chain = Chain::new(vec![
        s.cache.clone(),
        Arc::new(crate::plugin::whoami::Whoami),
    ]);
    let first = chain
        .serve(&query("who.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(first.writer, "whoami");
    let mut other = query("who.example.", RecordType::A);
    other.src = "10.9.9.9:1000".parse().unwrap();
    let second = chain.serve(&other).await.unwrap();
    assert_eq!(second.writer, "cache");
    assert_eq!(
        second.additionals, first.additionals,
        "the first client's address, from the cache"
    );
    assert_eq!(ttls(&second), [5, 5], "TTL 0 raised to MINTTL 5");
}

#[tokio::test(start_paused = true)]
async fn names_outside_the_cache_zones_pass_through_uncounted() {
    let s = setup(
        "cache 30 example.org",
        Fake::new("fake", positive("a.example.net.", 300)),
    );
    ask(&s, "a.example.net.").await;
    ask(&s, "a.example.net.").await;
    assert_eq!(s.fake.calls(), 2);
    assert_eq!(
        metric(&s, "coredns_cache_requests_total"),
        [r#"coredns_cache_requests_total{server="dns://:53",view="",zones="example.org."} 0"#]
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_carry_coredns_names_and_labels() {
    let s = setup("cache 30", Fake::new("fake", positive("example.org.", 300)));
    ask(&s, "example.org.").await;
    ask(&s, "example.org.").await;
    s.cache.sync();
    let want = [
        r#"coredns_cache_entries{server="dns://:53",type="denial",view="",zones="."} 0"#,
        r#"coredns_cache_entries{server="dns://:53",type="success",view="",zones="."} 1"#,
        r#"coredns_cache_hits_total{server="dns://:53",type="denial",view="",zones="."} 0"#,
        r#"coredns_cache_hits_total{server="dns://:53",type="success",view="",zones="."} 1"#,
        r#"coredns_cache_misses_total{server="dns://:53",view="",zones="."} 1"#,
        r#"coredns_cache_requests_total{server="dns://:53",view="",zones="."} 2"#,
    ];
    let text = crate::metrics::encode(s.families.registry());
    for line in want {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(text.contains("# TYPE coredns_cache_evictions_total counter"));
}
