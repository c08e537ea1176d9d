//! `dns64` tables: RFC 6052's embedding examples, parsing, and when answers
//! are synthesized, through a chain whose next plugin answers from a table.

use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record};

use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::dns::Transport;
use crate::plugin::Chain;
use crate::plugin::build::Families;

fn parse_line(text: &str) -> std::result::Result<Dns64Config, String> {
    let src = format!(". {{\n{text}\n}}\n");
    let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
    parse(&mut Dispenser::new(&c.blocks[0].directives[0])).map_err(|e| e.to_string())
}

#[test]
fn rfc_6052_examples_embed_192_0_2_33() {
    let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
    for (prefix, want) in [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
        ("64:ff9b::/96", "64:ff9b::c000:221"),
    ] {
        let got = embed(prefix.parse().unwrap(), v4);
        assert_eq!(got, want.parse::<Ipv6Addr>().unwrap(), "{prefix}");
    }
}

#[test]
fn prefixes_and_options_parse_as_coredns_documents() {
    let wk: Ipv6Net = WELL_KNOWN.parse().unwrap();
    assert_eq!(
        parse_line("dns64"),
        Ok(Dns64Config {
            prefix: wk,
            translate_all: false,
            allow_ipv4: false
        })
    );
    assert_eq!(
        parse_line("dns64 2001:db8::/32").unwrap().prefix,
        "2001:db8::/32".parse().unwrap()
    );
    let c = parse_line("dns64 {\n prefix 2001:db8:122:344::/64\n translate_all\n allow_ipv4\n}")
        .unwrap();
    assert_eq!(
        (c.prefix, c.translate_all, c.allow_ipv4),
        ("2001:db8:122:344::/64".parse().unwrap(), true, true)
    );
    for (text, want) in [
        (
            "dns64 10.0.0.0/8",
            "Corefile:2:7: dns64: '10.0.0.0/8' is not an IPv6 prefix",
        ),
        (
            "dns64 64:ff9b::/72",
            "Corefile:2:7: dns64: prefix length 72 is not one of",
        ),
        (
            "dns64 64:ff9b::1/96",
            "Corefile:2:7: dns64: '64:ff9b::1/96' has bits set",
        ),
        (
            "dns64 2001:db8:0:0:ff00::/96",
            "Corefile:2:7: dns64: bits 64 to 71",
        ),
        (
            "dns64 64:ff9b::/96 x",
            "Corefile:2:20: dns64: unexpected argument 'x'",
        ),
        (
            "dns64 {\n prefix\n}",
            "Corefile:3:2: dns64: prefix: missing argument: PREFIX",
        ),
        (
            "dns64 {\n translate_all yes\n}",
            "Corefile:3:16: dns64: translate_all: unexpected argument 'yes'",
        ),
        (
            "dns64 {\n nat64\n}",
            "Corefile:3:2: dns64: unknown property 'nat64'",
        ),
    ] {
        let e = parse_line(text).unwrap_err();
        assert!(e.starts_with(want), "{text}: {e}");
    }
}

/// Answers A and AAAA for names from fixed tables; NXDOMAIN for `nx.`.
struct Fixed;

fn rec(name: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, data)
}

#[async_trait::async_trait]
impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        "whoami"
    }
    async fn serve(&self, q: &Query, _next: Next<'_>) -> Result<Answer> {
        let name = q.lower.to_ascii();
        let mut a = Answer::rcode(ResponseCode::NoError);
        let soa = || {
            let soa = SOA::new(
                Name::from_ascii("example.").unwrap(),
                Name::from_ascii("h.example.").unwrap(),
                1,
                7200,
                1800,
                86400,
                30,
            );
            rec("example.", 300, RData::SOA(soa))
        };
        match (name.as_str(), q.qtype) {
            ("nx.example.", _) => a.rcode = ResponseCode::NXDomain,
            ("v4.example.", RecordType::A) => {
                a.answers = vec![rec("v4.example.", 120, RData::A(A::new(192, 0, 2, 33)))];
            }
            ("v4.example.", _) => a.authority = vec![soa()],
            ("alias.example.", RecordType::A) => {
                a.answers = vec![
                    rec(
                        "alias.example.",
                        60,
                        RData::CNAME(CNAME(Name::from_ascii("v4.example.").unwrap())),
                    ),
                    rec("v4.example.", 120, RData::A(A::new(192, 0, 2, 34))),
                ];
            }
            ("alias.example.", _) => {}
            ("dual.example.", RecordType::A) => {
                a.answers = vec![rec("dual.example.", 120, RData::A(A::new(192, 0, 2, 35)))];
            }
            ("dual.example.", _) => {
                a.answers = vec![rec(
                    "dual.example.",
                    120,
                    RData::AAAA(AAAA("2001:db8::35".parse().unwrap())),
                )];
            }
            _ => a.authority = vec![soa()],
        }
        Ok(a)
    }
}

async fn ask(cfg: &str, name: &str, qtype: RecordType, src: &str) -> Vec<String> {
    let families = Families::new(prometheus::Registry::new());
    let cfg = parse_line(cfg).unwrap();
    let dns64 = Dns64::new(cfg, "dns://:53", families.get::<Dns64Metrics>().unwrap());
    let chain = Chain::new(vec![Arc::new(dns64), Arc::new(Fixed)]);
    let q = Query::new(
        Name::from_ascii(name).unwrap(),
        qtype,
        src.parse().unwrap(),
        Transport::Udp,
    );
    let a = chain.serve(&q).await.unwrap();
    let mut out = vec![format!("{:?}", a.rcode)];
    out.extend(
        a.answers
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.data)),
    );
    out
}

#[tokio::test]
async fn aaaa_is_synthesized_only_when_rfc_6147_says() {
    let v6 = "[2001:db8::99]:5353";
    let v4 = "192.0.2.99:5353";
    let cases: &[(&str, &str, RecordType, &str, &[&str])] = &[
        // NODATA for AAAA with an A: synthesized, TTL capped by the SOA minimum (30).
        (
            "dns64",
            "v4.example.",
            RecordType::AAAA,
            v6,
            &["NoError", "v4.example. 30 64:ff9b::c000:221"],
        ),
        // The CNAME of the A answer is kept.
        (
            "dns64",
            "alias.example.",
            RecordType::AAAA,
            v6,
            &[
                "NoError",
                "alias.example. 60 v4.example.",
                "v4.example. 120 64:ff9b::c000:222",
            ],
        ),
        // Real AAAA records win, unless translate_all.
        (
            "dns64",
            "dual.example.",
            RecordType::AAAA,
            v6,
            &["NoError", "dual.example. 120 2001:db8::35"],
        ),
        (
            "dns64 {\n translate_all\n}",
            "dual.example.",
            RecordType::AAAA,
            v6,
            &["NoError", "dual.example. 120 64:ff9b::c000:223"],
        ),
        // IPv4 clients only with allow_ipv4.
        ("dns64", "v4.example.", RecordType::AAAA, v4, &["NoError"]),
        (
            "dns64 {\n allow_ipv4\n}",
            "v4.example.",
            RecordType::AAAA,
            v4,
            &["NoError", "v4.example. 30 64:ff9b::c000:221"],
        ),
        // NXDOMAIN, no A to translate, and other types pass unchanged.
        ("dns64", "nx.example.", RecordType::AAAA, v6, &["NXDomain"]),
        ("dns64", "none.example.", RecordType::AAAA, v6, &["NoError"]),
        (
            "dns64",
            "v4.example.",
            RecordType::A,
            v6,
            &["NoError", "v4.example. 120 192.0.2.33"],
        ),
        // Another prefix.
        (
            "dns64 2001:db8:122:344::/64",
            "v4.example.",
            RecordType::AAAA,
            v6,
            &["NoError", "v4.example. 30 2001:db8:122:344:c0:2:2100:0"],
        ),
    ];
    for (cfg, name, qtype, src, want) in cases {
        assert_eq!(
            ask(cfg, name, *qtype, src).await,
            *want,
            "{cfg} {name} {qtype} from {src}"
        );
    }
}

#[test]
fn only_aaaa_answers_are_kept_from_the_memo() {
    let families = Families::new(prometheus::Registry::new());
    let p = Dns64::new(
        parse_line("dns64").unwrap(),
        "dns://:53",
        families.get::<Dns64Metrics>().unwrap(),
    );
    let q = |qtype| {
        Query::new(
            Name::from_ascii("a.example.").unwrap(),
            qtype,
            "127.0.0.1:5353".parse().unwrap(),
            Transport::Udp,
        )
    };
    let a = Answer::rcode(ResponseCode::NoError);
    assert_eq!(p.memo_pass(&q(RecordType::A), &a), MemoPass::Quiet);
    assert_eq!(p.memo_pass(&q(RecordType::AAAA), &a), MemoPass::Block);
}
