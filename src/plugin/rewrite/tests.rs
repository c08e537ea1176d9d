//! Parse and serve tables for `rewrite`; `Fake` and `block` are shared with the
//! template and autopath tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, CNAME, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;
use crate::corefile::{Directive, MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::{Chain, PluginConfig};

/// The directives of `.:53 { <src> }`; the first line of `src` is line 2.
pub(crate) fn block(src: &str) -> Vec<Directive> {
    let text = format!(".:53 {{\n{src}\n}}\n");
    let c = parse_str(&text, Path::new("Corefile"), &|_| None, &MemFs::new()).expect("corefile");
    c.blocks[0].directives.clone()
}

type Respond = Box<dyn Fn(&Query) -> Result<Answer> + Send + Sync>;

/// A plugin after the one under test: records the questions it sees and answers with `f`.
pub(crate) struct Fake {
    pub(crate) seen: Mutex<Vec<(String, RecordType, DNSClass)>>,
    pub(crate) f: Respond,
}

impl Fake {
    pub(crate) fn new(f: impl Fn(&Query) -> Result<Answer> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            f: Box::new(f),
        })
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl Plugin for Fake {
    fn name(&self) -> &'static str {
        // Sorted after rewrite, autopath and template by the chain.
        "kubernetes"
    }

    async fn serve(&self, q: &Query, _next: Next<'_>) -> Result<Answer> {
        self.seen
            .lock()
            .unwrap()
            .push((q.name.to_ascii(), q.qtype, q.qclass));
        (self.f)(q)
    }
}

pub(crate) fn query(name: &str, qtype: RecordType, src: &str) -> Query {
    let src: SocketAddr = src.parse().unwrap();
    Query::new(Name::from_ascii(name).unwrap(), qtype, src, Transport::Udp)
}

/// Text of records, `name ttl type data`.
pub(crate) fn lines(rrs: &[Record]) -> Vec<String> {
    rrs.iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

fn rules(src: &str) -> RewriteConfig {
    let mut cfg = RewriteConfig::default();
    for d in block(src) {
        let rule = parse(&mut crate::corefile::Dispenser::new(&d)).expect("rule");
        cfg.rules.push(rule);
    }
    cfg
}

/// Answers A for any name: one A record at the asked name, and an SRV whose target is
/// the asked name.
fn echo(q: &Query) -> Result<Answer> {
    let mut a = Answer::rcode(ResponseCode::NoError);
    a.answers.push(Record::from_rdata(
        q.name.clone(),
        30,
        RData::A(A::new(10, 0, 0, 1)),
    ));
    a.additionals.push(Record::from_rdata(
        q.name.clone(),
        30,
        RData::SRV(SRV::new(0, 0, 80, q.name.clone())),
    ));
    Ok(a)
}

async fn run(
    src: &str,
    qname: &str,
    qtype: RecordType,
) -> (Vec<String>, Result<Answer>, Arc<Fake>) {
    let fake = Fake::new(echo);
    let rw = Arc::new(Rewrite::new(&rules(src)));
    let chain = Chain::new(vec![fake.clone(), rw]);
    let res = chain.serve(&query(qname, qtype, "10.1.1.1:5353")).await;
    (fake.names(), res, fake)
}

#[test]
fn good_lines_parse_into_rules_with_coredns_defaults() {
    let cfg = rules(
        "rewrite name a.example. b.example.\n\
         rewrite continue name suffix .corp .svc.cluster.local answer auto\n\
         rewrite stop type ANY HINFO\n\
         rewrite class CH IN\n\
         rewrite ttl regex (.*)\\.example 15-30\n\
         rewrite stop {\n name regex (.*)\\.x\\. {1}.y.\n answer name (.*)\\.y\\. {1}.x.\n }",
    );
    let r = &cfg.rules;
    assert_eq!(r.len(), 6);
    assert_eq!(r[0].mode, Mode::Stop);
    assert_eq!(r[0].at, "Corefile:2:1");
    assert!(
        matches!(&r[0].kind, RuleKind::Name { matcher: NameMatch::Exact { from, to }, answers }
        if from == "a.example." && to == "b.example." && answers.len() == 1)
    );
    assert_eq!(r[1].mode, Mode::Continue);
    assert!(
        matches!(&r[1].kind, RuleKind::Name { matcher: NameMatch::Suffix { from, .. }, answers }
        if from == ".corp." && matches!(&answers[0].matcher, NameMatch::Suffix { from, to } if from == ".svc.cluster.local." && to == ".corp."))
    );
    assert!(matches!(
        r[2].kind,
        RuleKind::Type {
            from: RecordType::ANY,
            to: RecordType::HINFO
        }
    ));
    assert!(matches!(
        r[3].kind,
        RuleKind::Class {
            from: DNSClass::CH,
            to: DNSClass::IN
        }
    ));
    assert!(matches!(
        r[4].kind,
        RuleKind::Ttl {
            min: 15,
            max: 30,
            ..
        }
    ));
    assert!(
        matches!(&r[5].kind, RuleKind::Name { matcher: NameMatch::Regex { .. }, answers }
        if answers.len() == 1 && answers[0].target == Target::Owner)
    );
}

#[test]
fn rcode_lines_take_names_or_numbers_and_an_optional_match_type() {
    let cfg = rules(
        "rewrite rcode a.example ServFail NOERROR\n\
         rewrite continue rcode regex (.*)\\.coredns\\.rocks 2 0\n\
         rewrite rcode suffix .x. nxdomain 5\n\
         rewrite stop {\n rcode prefix api. 23 BADCOOKIE\n }",
    );
    let r = &cfg.rules;
    assert!(matches!(
        &r[0].kind,
        RuleKind::Rcode { matcher: NameMatch::Exact { from, .. }, from: ResponseCode::ServFail, to: ResponseCode::NoError }
        if from == "a.example."
    ));
    assert_eq!(r[1].mode, Mode::Continue);
    assert!(matches!(
        &r[1].kind,
        RuleKind::Rcode { matcher: NameMatch::Regex { re, .. }, from: ResponseCode::ServFail, to: ResponseCode::NoError }
        if re.as_str() == "(.*)\\.coredns\\.rocks"
    ));
    assert!(matches!(
        &r[2].kind,
        RuleKind::Rcode { matcher: NameMatch::Suffix { from, .. }, from: ResponseCode::NXDomain, to: ResponseCode::Refused }
        if from == ".x."
    ));
    assert!(matches!(
        &r[3].kind,
        RuleKind::Rcode { matcher: NameMatch::Prefix { from, .. }, from: ResponseCode::BADCOOKIE, to: ResponseCode::BADCOOKIE }
        if from == "api."
    ));
}

#[test]
fn cname_lines_qualify_only_exact_names() {
    let cfg = rules(
        "rewrite cname A.example B.example\n\
         rewrite continue cname prefix WWW- web-\n\
         rewrite cname suffix .cdn.example.net. .other.cdn.com.\n\
         rewrite cname substring .old. .new.\n\
         rewrite cname regex (.*)\\.cdn\\.example\\.net\\. {1}.other.cdn.com",
    );
    let r = &cfg.rules;
    let matcher = |i: usize| match &r[i].kind {
        RuleKind::Cname { matcher } => matcher.clone(),
        k => panic!("rule {i} is {k:?}"),
    };
    assert!(
        matches!(matcher(0), NameMatch::Exact { from, to } if from == "a.example." && to == "b.example.")
    );
    assert_eq!(r[1].mode, Mode::Continue);
    assert!(matches!(matcher(1), NameMatch::Prefix { from, to } if from == "www-" && to == "web-"));
    assert!(
        matches!(matcher(2), NameMatch::Suffix { from, to } if from == ".cdn.example.net." && to == ".other.cdn.com.")
    );
    assert!(
        matches!(matcher(3), NameMatch::Substring { from, to } if from == ".old." && to == ".new.")
    );
    assert_eq!(
        matcher(4).apply("app.cdn.example.net.").as_deref(),
        Some("app.other.cdn.com.")
    );
}

#[test]
fn bad_lines_are_errors_at_the_offending_token() {
    let cases = [
        (
            "rewrite",
            "Corefile:2:1: rewrite: missing argument: FIELD (name, type, class, ttl, edns0, cname or rcode)",
        ),
        (
            "rewrite stop",
            "Corefile:2:9: rewrite: stop rule must begin with a rule type",
        ),
        (
            "rewrite nmae a b",
            "Corefile:2:9: rewrite: invalid rule type 'nmae'",
        ),
        (
            "rewrite type A",
            "Corefile:2:14: rewrite: type rules must have exactly two arguments",
        ),
        (
            "rewrite type A B",
            "Corefile:2:16: rewrite: invalid record type 'B'",
        ),
        (
            "rewrite class IN XX",
            "Corefile:2:18: rewrite: invalid class 'XX' (use IN, CH, HS)",
        ),
        (
            "rewrite name fuzzy a b",
            "Corefile:2:14: rewrite: name: unknown match type 'fuzzy' (use exact, prefix, suffix, substring, regex)",
        ),
        (
            "rewrite name regex ([a b",
            "Corefile:2:20: rewrite: invalid regex '([a': regex parse error:\n    ([a\n     ^\nerror: unclosed character class",
        ),
        (
            "rewrite name regex (a) {2}.x",
            "Corefile:2:24: rewrite: '{2}.x' uses group {2} but '(a)' has 1 group(s)",
        ),
        (
            "rewrite name regex (a) b answer auto",
            "Corefile:2:26: rewrite: name: 'answer auto' cannot invert a regex; use 'answer name FROM TO'",
        ),
        (
            "rewrite name suffix a b answer nope",
            "Corefile:2:32: rewrite: answer: unknown response rewrite 'nope' (use auto, name or value)",
        ),
        (
            "rewrite name suffix a b extra",
            "Corefile:2:25: rewrite: unexpected argument 'extra' (expected 'answer')",
        ),
        (
            "rewrite name regex (a) b answer name x",
            "Corefile:2:38: rewrite: answer name: missing argument: FROM TO",
        ),
        (
            "rewrite answer name a b",
            "Corefile:2:9: rewrite: response rewrites must begin with a name rule",
        ),
        (
            "rewrite ttl a 10-5",
            "Corefile:2:15: rewrite: ttl: invalid range '10-5': 10 > 5",
        ),
        (
            "rewrite ttl a x",
            "Corefile:2:15: rewrite: ttl: 'x' is not a number",
        ),
        (
            "rewrite continue cname a.x.",
            "Corefile:2:24: rewrite: cname: too few arguments (FROM TO)",
        ),
        (
            "rewrite cname fuzzy a.x. b.x.",
            "Corefile:2:15: rewrite: cname: unknown match type 'fuzzy' (use exact, prefix, suffix, substring, regex)",
        ),
        (
            "rewrite cname exact a.x. b.x. c.x.",
            "Corefile:2:31: rewrite: unexpected argument 'c.x.'",
        ),
        (
            "rewrite cname regex (a)\\.x {2}.y",
            "Corefile:2:28: rewrite: '{2}.y' uses group {2} but '(a)\\.x' has 1 group(s)",
        ),
        (
            "rewrite rcode a.x. SERVFAIL",
            "Corefile:2:20: rewrite: rcode: too few arguments (NAME FROM TO)",
        ),
        (
            "rewrite rcode fuzzy a.x. SERVFAIL NOERROR",
            "Corefile:2:15: rewrite: rcode: unknown match type 'fuzzy' (use exact, prefix, suffix, substring, regex)",
        ),
        (
            "rewrite rcode exact a.x. SERVFAIL NOERROR extra",
            "Corefile:2:43: rewrite: unexpected argument 'extra'",
        ),
        (
            "rewrite rcode a.x. OOPS NOERROR",
            "Corefile:2:20: rewrite: rcode: invalid response code 'OOPS' (a name such as NOERROR, SERVFAIL, NXDOMAIN, or 0-23)",
        ),
        (
            "rewrite rcode a.x. 2 24",
            "Corefile:2:22: rewrite: rcode: invalid response code '24' (a name such as NOERROR, SERVFAIL, NXDOMAIN, or 0-23)",
        ),
        (
            "rewrite rcode regex (a.x 2 0",
            "Corefile:2:21: rewrite: invalid regex '(a.x': regex parse error:\n    (a.x\n    ^\nerror: unclosed group",
        ),
        (
            "rewrite name a b {\n x\n}",
            "Corefile:3:2: rewrite: a rule given on the directive line takes no block",
        ),
    ];
    for (src, want) in cases {
        let d = &block(src)[0];
        let e = parse(&mut crate::corefile::Dispenser::new(d)).unwrap_err();
        assert_eq!(e.to_string(), want, "{src}");
    }
}

#[test]
fn several_rewrite_directives_form_one_plugin_in_corefile_order() {
    let text = ".:53 {\n rewrite name a.x. b.x.\n whoami\n rewrite name c.x. d.x.\n template IN A x {\n }\n template IN AAAA y {\n }\n}\n";
    let cf = parse_str(text, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let cfg = crate::config::from_corefile(&cf, 53).expect("valid");
    let plugins = &cfg.servers[0].plugins;
    assert_eq!(plugins.len(), 3);
    let PluginConfig::Chain(c) = &plugins[0] else {
        panic!("first is rewrite")
    };
    let r = c
        .config()
        .as_any()
        .downcast_ref::<RewriteConfig>()
        .expect("rewrite");
    assert_eq!(
        r.rules.iter().map(|r| r.at.as_str()).collect::<Vec<_>>(),
        ["Corefile:2:2", "Corefile:4:2"]
    );
    let PluginConfig::Chain(c) = &plugins[2] else {
        panic!("third is template")
    };
    let t = c
        .config()
        .as_any()
        .downcast_ref::<crate::plugin::template::TemplateConfig>()
        .expect("template");
    assert_eq!(t.templates.len(), 2);
    let dup = ".:53 {\n whoami\n whoami\n}\n";
    let cf = parse_str(dup, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    let e = crate::config::from_corefile(&cf, 53).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "Corefile:3:2: whoami: this plugin can only be used once per server block"
    );
}

#[tokio::test]
async fn exact_rewrites_the_question_and_maps_the_answer_back() {
    let (seen, res, _) = run(
        "rewrite name Db.Example.com mysql.default.svc",
        "db.example.COM.",
        RecordType::A,
    )
    .await;
    assert_eq!(seen, ["mysql.default.svc."]);
    let a = res.unwrap();
    assert_eq!(lines(&a.answers), ["db.example.com. 30 A 10.0.0.1"]);
    // Only owner names are mapped back by an exact rule.
    assert_eq!(
        lines(&a.additionals),
        ["db.example.com. 30 SRV 0 0 80 mysql.default.svc."]
    );
}

#[tokio::test]
async fn names_that_do_not_match_pass_unchanged() {
    let (seen, res, _) = run(
        "rewrite name a.example. b.example.",
        "c.example.",
        RecordType::A,
    )
    .await;
    assert_eq!(seen, ["c.example."]);
    assert_eq!(lines(&res.unwrap().answers), ["c.example. 30 A 10.0.0.1"]);
}

#[tokio::test]
async fn match_types_rewrite_as_coredns_does() {
    let cases = [
        (
            "rewrite name prefix api. internal-api.",
            "api.example.org.",
            "internal-api.example.org.",
        ),
        (
            "rewrite name suffix .schmoogle.com. .google.com.",
            "www.schmoogle.com.",
            "www.google.com.",
        ),
        (
            "rewrite name substring service.us-west-1.example.org service.us-west-1.consul",
            "ftp.service.us-west-1.example.org.",
            "ftp.service.us-west-1.consul.",
        ),
        (
            "rewrite name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul",
            "ftp-us-west-1.example.org.",
            "ftp.service.us-west-1.consul.",
        ),
    ];
    for (src, q, want) in cases {
        let (seen, res, _) = run(src, q, RecordType::A).await;
        assert_eq!(seen, [want], "{src}");
        // Without an answer rule the answer keeps the rewritten name.
        assert_eq!(
            lines(&res.unwrap().answers),
            [format!("{want} 30 A 10.0.0.1")],
            "{src}"
        );
    }
}

#[tokio::test]
async fn answer_auto_inverts_suffix_prefix_and_substring_rules() {
    let cases = [
        (
            "rewrite name suffix .corp. .svc.cluster.local. answer auto",
            "db.corp.",
        ),
        (
            "rewrite name prefix old- new- answer auto",
            "old-x.example.",
        ),
        ("rewrite name substring .a. .b. answer auto", "x.a.example."),
    ];
    for (src, q) in cases {
        let (_, res, _) = run(src, q, RecordType::A).await;
        assert_eq!(
            lines(&res.unwrap().answers),
            [format!("{q} 30 A 10.0.0.1")],
            "{src}"
        );
    }
}

#[tokio::test]
async fn regex_answer_name_and_value_rules_map_names_and_data_back() {
    let src = "rewrite stop {\n name regex (.*)\\.corp\\. {1}.default.svc.\n answer name (.*)\\.default\\.svc\\. {1}.corp.\n answer value (.*)\\.default\\.svc\\. {1}.corp.\n}";
    let (seen, res, _) = run(src, "web.corp.", RecordType::A).await;
    assert_eq!(seen, ["web.default.svc."]);
    let a = res.unwrap();
    assert_eq!(lines(&a.answers), ["web.corp. 30 A 10.0.0.1"]);
    assert_eq!(lines(&a.additionals), ["web.corp. 30 SRV 0 0 80 web.corp."]);
}

#[tokio::test]
async fn continue_lets_later_rules_see_the_rewritten_name_and_stop_ends_the_list() {
    let src = "rewrite continue name a.x. b.x.\nrewrite name b.x. c.x.\nrewrite name c.x. d.x.";
    let (seen, res, _) = run(src, "a.x.", RecordType::A).await;
    assert_eq!(seen, ["c.x."]);
    // Both exact rules map back, last first: c -> b -> a.
    assert_eq!(lines(&res.unwrap().answers), ["a.x. 30 A 10.0.0.1"]);
}

#[tokio::test]
async fn type_class_and_ttl_rules_rewrite_the_query_and_response() {
    let (_, _, fake) = run("rewrite type ANY HINFO", "x.example.", RecordType::ANY).await;
    assert_eq!(fake.seen.lock().unwrap()[0].1, RecordType::HINFO);
    let fake = Fake::new(echo);
    let rw = Arc::new(Rewrite::new(&rules("rewrite class CH IN")));
    let chain = Chain::new(vec![fake.clone(), rw]);
    let mut q = query("x.example.", RecordType::A, "10.1.1.1:53");
    q.qclass = DNSClass::CH;
    chain.serve(&q).await.unwrap();
    assert_eq!(fake.seen.lock().unwrap()[0].2, DNSClass::IN);
    let (_, res, _) = run(
        "rewrite ttl suffix .example. 100-200",
        "x.example.",
        RecordType::A,
    )
    .await;
    assert_eq!(lines(&res.unwrap().answers), ["x.example. 100 A 10.0.0.1"]);
    let (_, res, _) = run("rewrite ttl x.example. 7", "x.example.", RecordType::A).await;
    assert_eq!(lines(&res.unwrap().answers), ["x.example. 7 A 10.0.0.1"]);
}

#[tokio::test]
async fn an_invalid_name_after_rewrite_is_servfail() {
    let long = "a".repeat(70);
    let src = format!("rewrite name regex (.*) {long}.{{1}}");
    let (seen, res, _) = run(&src, "x.example.", RecordType::A).await;
    assert!(seen.is_empty());
    assert_eq!(res.unwrap_err().rcode(), ResponseCode::ServFail);
}

#[tokio::test]
async fn cname_records_from_next_are_left_alone_without_value_rules() {
    let fake = Fake::new(|q| {
        let mut a = Answer::rcode(ResponseCode::NoError);
        a.answers.push(Record::from_rdata(
            q.name.clone(),
            5,
            RData::CNAME(CNAME(q.name.clone())),
        ));
        Ok(a)
    });
    let rw = Arc::new(Rewrite::new(&rules("rewrite name a.x. b.x.")));
    let chain = Chain::new(vec![fake, rw]);
    let a = chain
        .serve(&query("a.x.", RecordType::A, "10.1.1.1:53"))
        .await
        .unwrap();
    assert_eq!(lines(&a.answers), ["a.x. 5 CNAME b.x."]);
}

/// Answers every question with an empty answer of `rcode`, or with one A record when
/// `rcode` is NOERROR.
fn fixed(rcode: ResponseCode) -> impl Fn(&Query) -> Result<Answer> + Send + Sync {
    move |q| {
        if rcode == ResponseCode::NoError {
            return echo(q);
        }
        Ok(Answer::rcode(rcode))
    }
}

async fn run_with(
    src: &str,
    qname: &str,
    f: impl Fn(&Query) -> Result<Answer> + Send + Sync + 'static,
) -> Result<Answer> {
    let fake = Fake::new(f);
    let rw = Arc::new(Rewrite::new(&rules(src)));
    let chain = Chain::new(vec![fake, rw]);
    chain
        .serve(&query(qname, RecordType::A, "10.1.1.1:5353"))
        .await
}

#[tokio::test]
async fn rcode_rules_change_the_answer_code_of_matching_names_only() {
    let servfail = || fixed(ResponseCode::ServFail);
    let src = "rewrite rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR";
    let a = run_with(src, "www.coredns.rocks.", servfail())
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.answers.is_empty());
    // Another name keeps its code; so does another code.
    let a = run_with(src, "www.example.", servfail()).await.unwrap();
    assert_eq!(a.rcode, ResponseCode::ServFail);
    let a = run_with(src, "www.coredns.rocks.", fixed(ResponseCode::NXDomain))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    // Records are kept as they are; numbers work as names do.
    let a = run_with(
        "rewrite rcode suffix .x. 0 3",
        "a.x.",
        fixed(ResponseCode::NoError),
    )
    .await
    .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_eq!(lines(&a.answers), ["a.x. 30 A 10.0.0.1"]);
}

#[tokio::test]
async fn rcode_rules_see_the_rewritten_name_and_run_last_rule_first() {
    // The name rule runs first, so the rcode rule matches the rewritten name.
    let src = "rewrite continue name a.x. b.x.\nrewrite rcode b.x. NXDOMAIN REFUSED";
    let a = run_with(src, "a.x.", fixed(ResponseCode::NXDomain))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::Refused);
    // Two rcode rules: the later one rewrites first, then the earlier sees its result.
    let src = "rewrite continue rcode a.x. SERVFAIL NXDOMAIN\nrewrite rcode a.x. NOTIMP SERVFAIL";
    let a = run_with(src, "a.x.", fixed(ResponseCode::NotImp))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    // `stop` (the default) ends the list before the second rule.
    let src = "rewrite rcode a.x. SERVFAIL NXDOMAIN\nrewrite rcode a.x. NOTIMP SERVFAIL";
    let a = run_with(src, "a.x.", fixed(ResponseCode::NotImp))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NotImp);
}

#[tokio::test]
async fn rcode_rules_leave_errors_of_the_chain_alone_as_coredns_does() {
    // CoreDNS's server writes a failed chain's code itself, past rewrite's writer.
    let e = run_with("rewrite rcode a.x. SERVFAIL NOERROR", "a.x.", |_| {
        Err(PluginError::Rcode(ResponseCode::ServFail))
    })
    .await
    .unwrap_err();
    assert_eq!(e.rcode(), ResponseCode::ServFail);
}

fn cname(owner: &str, target: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(owner).unwrap(),
        200,
        RData::CNAME(CNAME(Name::from_ascii(target).unwrap())),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        Name::from_ascii(owner).unwrap(),
        60,
        RData::A(A::new(ip[0], ip[1], ip[2], ip[3])),
    )
}

/// CoreDNS's README example: `my-app.com.` is a CNAME chain into a CDN; the other CDN
/// answers the rewritten target (truncated, to see the TC bit carried over).
fn cdn(q: &Query) -> Result<Answer> {
    let mut ans = Answer::rcode(ResponseCode::NoError);
    match q.lower.to_ascii().as_str() {
        "my-app.com." => {
            ans.answers = vec![
                cname("my-app.com.", "my-app.example."),
                cname("my-app.example.", "my-app.com.cdn.example.net."),
                a("my-app.com.cdn.example.net.", [192, 0, 2, 1]),
            ];
        }
        "my-app.com.other.cdn.com." => {
            ans.answers = vec![a("my-app.com.other.cdn.com.", [198, 51, 100, 7])];
            ans.truncated = true;
        }
        "broken.example." => ans.answers = vec![cname("broken.example.", "gone.example.")],
        "gone.other.cdn.com." => return Err(PluginError::Rcode(ResponseCode::ServFail)),
        _ => ans.rcode = ResponseCode::NXDomain,
    }
    Ok(ans)
}

async fn run_cname(src: &str, qname: &str) -> (Vec<String>, Answer) {
    let fake = Fake::new(cdn);
    let rw = Arc::new(Rewrite::new(&rules(src)));
    let chain = Chain::new(vec![fake.clone(), rw]);
    let a = chain
        .serve(&query(qname, RecordType::A, "10.1.1.1:5353"))
        .await
        .expect("answer");
    (fake.names(), a)
}

#[tokio::test]
async fn cname_rules_rewrite_the_target_and_replace_the_rest_of_the_chain() {
    let src = "rewrite cname regex (.*)\\.cdn\\.example\\.net\\. {1}.other.cdn.com.";
    let (seen, a) = run_cname(src, "my-app.com.").await;
    assert_eq!(seen, ["my-app.com.", "my-app.com.other.cdn.com."]);
    assert_eq!(
        lines(&a.answers),
        [
            "my-app.com. 200 CNAME my-app.example.",
            "my-app.example. 200 CNAME my-app.com.other.cdn.com.",
            "my-app.com.other.cdn.com. 60 A 198.51.100.7",
        ]
    );
    assert!(a.truncated, "the lookup's TC bit is carried over");
    assert_eq!(a.rcode, ResponseCode::NoError);
    // Every match type finds the same target.
    for src in [
        "rewrite cname my-app.com.cdn.example.net my-app.com.other.cdn.com",
        "rewrite cname suffix .cdn.example.net. .other.cdn.com.",
        "rewrite cname prefix my-app.com.cdn.example.net my-app.com.other.cdn.com",
        "rewrite cname substring .cdn.example.net. .other.cdn.com.",
    ] {
        let (seen, a) = run_cname(src, "my-app.com.").await;
        assert_eq!(seen, ["my-app.com.", "my-app.com.other.cdn.com."], "{src}");
        assert_eq!(
            lines(&a.answers)[1],
            "my-app.example. 200 CNAME my-app.com.other.cdn.com.",
            "{src}"
        );
    }
}

#[tokio::test]
async fn cname_rules_leave_answers_without_a_matching_target_or_a_failed_lookup_alone() {
    let src = "rewrite cname suffix .cdn.example.net. .other.cdn.com.";
    // No CNAME target matches: one query, the answer as it was.
    let (seen, a) = run_cname("rewrite cname suffix .nowhere. .other.", "my-app.com.").await;
    assert_eq!(seen, ["my-app.com."]);
    assert_eq!(a.answers.len(), 3);
    assert!(!a.truncated);
    // The lookup of the new target fails: the original chain is kept.
    let (seen, a) = run_cname(
        "rewrite cname suffix .example. .other.cdn.com.",
        "broken.example.",
    )
    .await;
    assert_eq!(seen, ["broken.example.", "gone.other.cdn.com."]);
    assert_eq!(
        lines(&a.answers),
        ["broken.example. 200 CNAME gone.example."]
    );
    // A name without CNAMEs is passed through untouched.
    let (seen, a) = run_cname(src, "other.example.").await;
    assert_eq!(seen, ["other.example."]);
    assert_eq!(a.rcode, ResponseCode::NXDomain);
}

#[tokio::test]
async fn a_cname_rule_matches_every_query_so_stop_ends_the_list_there() {
    // As CoreDNS: the cname rule "rewrites" every request, so with `stop` (the default)
    // the name rule after it never runs, and with `continue` it does.
    let (seen, _) = run_cname(
        "rewrite cname suffix .cdn.example.net. .other.cdn.com.\nrewrite name a.x. my-app.com.",
        "a.x.",
    )
    .await;
    assert_eq!(seen, ["a.x."]);
    let (seen, a) = run_cname(
        "rewrite continue cname suffix .cdn.example.net. .other.cdn.com.\nrewrite name a.x. my-app.com.",
        "a.x.",
    )
    .await;
    assert_eq!(seen, ["my-app.com.", "my-app.com.other.cdn.com."]);
    // The exact name rule maps the owner back; the looked-up records keep theirs.
    assert_eq!(
        lines(&a.answers),
        [
            "a.x. 200 CNAME my-app.example.",
            "my-app.example. 200 CNAME my-app.com.other.cdn.com.",
            "my-app.com.other.cdn.com. 60 A 198.51.100.7",
        ]
    );
}
