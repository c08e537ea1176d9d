//! Parse and serve tables for `template`, and the placeholder language.

use crate::plugin::build::TestCtx;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::Registry;

use super::*;
use crate::corefile::Dispenser;
use crate::plugin::build::Families;
use crate::plugin::rewrite::tests::{Fake, block, lines, query};
use crate::plugin::{Chain, PluginError};

fn defs(src: &str) -> TemplateConfig {
    let mut cfg = TemplateConfig::default();
    for d in block(src) {
        cfg.templates
            .push(parse(&mut Dispenser::new(&d)).expect("template"));
    }
    cfg
}

fn upstream(q: &Query) -> Result<Answer> {
    let mut a = Answer::rcode(ResponseCode::NoError);
    a.answers.push(Record::from_rdata(
        q.name.clone(),
        20,
        RData::A(A::new(192, 0, 2, 1)),
    ));
    Ok(a)
}

fn build(src: &str, families: &Families) -> (Chain, Arc<Fake>) {
    let tc = TestCtx::new(families, &["."]);
    let t = Arc::new(Template::new(&defs(src), &tc.ctx()).expect("instantiate"));
    let fake = Fake::new(upstream);
    (Chain::new(vec![fake.clone(), t]), fake)
}

async fn ask(src: &str, qname: &str, qtype: RecordType) -> Result<Answer> {
    let families = Families::new(Registry::new());
    let (chain, _) = build(src, &families);
    chain.serve(&query(qname, qtype, "10.9.8.7:5353")).await
}

const IP_A: &str = r#"template IN A example {
  match "^ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$"
  answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
  fallthrough
}"#;

#[tokio::test]
async fn ederror_puts_its_code_and_reason_on_the_answer() {
    let src =
        "template IN A blocked.example {\n  rcode NXDOMAIN\n  ederror 15 \"ads are\" blocked\n}";
    let a = ask(src, "x.blocked.example.", RecordType::A).await.unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    let ede = a.extras.and_then(|e| e.ede).expect("an EDE");
    assert_eq!((ede.0, &*ede.1), (15, "ads are blocked"));
    let plain = ask(IP_A, "ip-10-1-2-3.example.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(plain.extras, None);
}

#[tokio::test]
async fn a_regex_zone_is_answered_from_named_groups() {
    let a = ask(IP_A, "ip-10-1-2-3.example.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative);
    assert_eq!(lines(&a.answers), ["ip-10-1-2-3.example. 60 A 10.1.2.3"]);
    assert_eq!(a.writer, "template");
}

#[tokio::test]
async fn fallthrough_hands_unmatched_names_and_other_types_to_the_next_plugin() {
    let a = ask(IP_A, "www.example.", RecordType::A).await.unwrap();
    assert_eq!(lines(&a.answers), ["www.example. 20 A 192.0.2.1"]);
    let a = ask(IP_A, "ip-10-1-2-3.example.", RecordType::MX)
        .await
        .unwrap();
    assert_eq!(a.writer, "kubernetes");
    let a = ask(IP_A, "other.org.", RecordType::A).await.unwrap();
    assert_eq!(a.writer, "kubernetes");
}

#[tokio::test]
async fn without_fallthrough_an_unmatched_name_in_the_zone_is_servfail() {
    let src =
        "template IN A example {\n match ^x[.]example[.]$\n answer \"{{ .Name }} 60 A 1.1.1.1\"\n}";
    let e = ask(src, "y.example.", RecordType::A).await.unwrap_err();
    assert!(matches!(e, PluginError::Rcode(ResponseCode::ServFail)));
    let a = ask(src, "y.org.", RecordType::A).await.unwrap();
    assert_eq!(a.writer, "kubernetes");
}

#[tokio::test]
async fn placeholders_render_zone_class_type_match_remote_and_parse_int() {
    let src = r#"template ANY ANY example {
  match "^ip0a(?P<b>[a-f0-9]{2})[.](sub)[.]example[.]$"
  answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ index .Match 2 | }}.1"
}"#;
    // `|` pipelines are not in the subset: a parse error.
    let d = &block(src)[0];
    let e = parse(&mut Dispenser::new(d)).unwrap_err();
    assert_eq!(e.line, 4);
    let src = r#"template ANY ANY example {
  match "^ip0a(?P<b>[a-f0-9]{2})[.](sub)[.]example[.]$"
  answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ .Match 2 | len }}.1"
}"#;
    assert!(parse(&mut Dispenser::new(&block(src)[0])).is_err());
    let src = r#"template ANY ANY example {
  match "^ip0a(?P<b>[a-f0-9]{2})[.](sub)[.]example[.]$"
  answer "{{ .Name }} 60 IN TXT \"{{ .Zone }} {{ .Class }} {{ .Type }} {{ index .Match 2 }} {{ .Remote }} {{ parseInt .Group.b 16 8 }} {{ .Group.nope }}.\""
}"#;
    let a = ask(src, "ip0aff.sub.example.", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(
        lines(&a.answers),
        ["ip0aff.sub.example. 60 TXT example. IN TXT sub 10.9.8.7 255 ."]
    );
}

#[tokio::test]
async fn rcode_authority_and_additional_sections_are_filled() {
    let src = r#"template IN ANY invalid {
  rcode NXDOMAIN
  authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
  additional "ns.invalid 60 A 192.0.2.53"
}"#;
    let a = ask(src, "foo.invalid.", RecordType::A).await.unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert!(a.answers.is_empty());
    assert_eq!(
        lines(&a.authority),
        ["invalid. 60 SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"]
    );
    assert_eq!(lines(&a.additionals), ["ns.invalid. 60 A 192.0.2.53"]);
    let e = ask(
        "template ANY ANY {\n rcode SERVFAIL\n}",
        "x.",
        RecordType::A,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PluginError::Rcode(ResponseCode::ServFail)));
}

#[tokio::test]
async fn a_cname_answer_to_an_a_query_is_followed_through_the_next_plugin() {
    let src = "template IN ANY foogle.com {\n match \"^foogle\\.com\\.$\"\n answer \"foogle.com 60 IN CNAME google.com\"\n}";
    let families = Families::new(Registry::new());
    let (chain, fake) = build(src, &families);
    let a = chain
        .serve(&query("foogle.com.", RecordType::A, "10.0.0.1:53"))
        .await
        .unwrap();
    assert_eq!(
        lines(&a.answers),
        [
            "foogle.com. 60 CNAME google.com.",
            "google.com. 20 A 192.0.2.1"
        ]
    );
    assert_eq!(fake.names(), ["google.com."]);
}

#[tokio::test]
async fn templates_are_tried_in_order_and_metrics_count_matches_and_failures() {
    let src = "template IN A example {\n match ^a[.]\n answer \"{{ .Name }} 5 A 1.1.1.1\"\n fallthrough\n}\n\
               template IN A example {\n match ^(b)[.]\n answer \"{{ .Match 5 }} 5 A 2.2.2.2\"\n fallthrough\n}\n\
               template IN A example {\n match ^c[.]\n answer \"{{ .Name }} 5 A not-an-ip\"\n}";
    let families = Families::new(Registry::new());
    let (chain, _) = build(src, &families);
    let q = |n: &str| query(n, RecordType::A, "10.0.0.1:53");
    let a = chain.serve(&q("a.example.")).await.unwrap();
    assert_eq!(lines(&a.answers), ["a.example. 5 A 1.1.1.1"]);
    let e = chain.serve(&q("b.example.")).await.unwrap_err();
    assert_eq!(e.rcode(), ResponseCode::ServFail);
    let e = chain.serve(&q("c.example.")).await.unwrap_err();
    assert_eq!(e.rcode(), ResponseCode::ServFail);
    let m = families.get::<TemplateMetrics>().unwrap();
    let labels = ["dns://:53", "example.", "", "IN", "A"];
    assert_eq!(m.matches.with_label_values(&labels).get(), 3);
    let fail = |v: &IntCounterVec, t: &str| {
        v.with_label_values(&["dns://:53", "example.", "", "IN", "A", "answer", t])
            .get()
    };
    assert_eq!(fail(&m.template_failures, "{{ .Match 5 }} 5 A 2.2.2.2"), 1);
    assert_eq!(fail(&m.rr_failures, "{{ .Name }} 5 A not-an-ip"), 1);
}

#[test]
fn bad_template_lines_are_errors_at_their_position() {
    let cases = [
        (
            "template",
            "Corefile:2:1: template: missing argument: CLASS",
        ),
        (
            "template IN",
            "Corefile:2:10: template: missing argument: TYPE",
        ),
        (
            "template XX A",
            "Corefile:2:10: template: invalid query class 'XX'",
        ),
        (
            "template IN AX",
            "Corefile:2:13: template: invalid query type 'AX'",
        ),
        (
            "template IN A {\n  match ([a\n}",
            "Corefile:3:9: template: match: could not parse regex '([a': regex parse error:\n    ([a\n     ^\nerror: unclosed character class",
        ),
        (
            "template IN A {\n  answer \"{{ .Name }} 60 IN A {{ .Nope }}\"\n}",
            "Corefile:3:31: template: answer: unknown placeholder '{{ .Nope }}' (supported: .Name, .Zone, .Class, .Type, .Remote, .Regex, .Match N, index .Match N, .Group.NAME, index .Group \"NAME\", parseInt FIELD BASE BITS)",
        ),
        (
            "template IN A {\n  additional {{.Name\n}",
            "Corefile:3:14: template: additional: unclosed '{{'",
        ),
        (
            "template IN A {\n  rcode NOPE\n}",
            "Corefile:3:9: template: rcode: unknown rcode 'NOPE'",
        ),
        (
            "template IN A {\n  answer\n}",
            "Corefile:3:3: template: answer: missing argument: RR",
        ),
        (
            "template IN A {\n  ederror\n}",
            "Corefile:3:3: template: ederror: missing argument: EXTENDED_ERROR_CODE",
        ),
        (
            "template IN A {\n  ederror 65536\n}",
            "Corefile:3:11: template: ederror: EXTENDED_ERROR_CODE: 65536 is out of range 0..65535",
        ),
        (
            "template IN A {\n  anwser x\n}",
            "Corefile:3:3: template: unknown property 'anwser'",
        ),
    ];
    for (src, want) in cases {
        let d = &block(src)[0];
        let e = parse(&mut Dispenser::new(d)).unwrap_err();
        assert_eq!(e.to_string(), want, "{src}");
    }
}

#[test]
fn good_lines_keep_coredns_defaults() {
    let t = &defs("template IN A example.org Other.Net {\n fallthrough in-addr.arpa\n upstream\n}")
        .templates[0];
    assert_eq!(
        t.zones,
        [
            Name::from_ascii("example.org.").unwrap(),
            Name::from_ascii("other.net.").unwrap()
        ]
    );
    assert_eq!(t.regex[0].as_str(), ".*");
    assert_eq!(t.rcode, ResponseCode::NoError);
    assert_eq!(
        t.fallthrough,
        Some(vec![Name::from_ascii("in-addr.arpa.").unwrap()])
    );
}
