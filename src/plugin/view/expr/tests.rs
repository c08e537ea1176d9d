//! Expression tables: CoreDNS's documented view expressions, and errors with their offsets.

use super::*;

fn facts(ip: &str) -> Facts<'static> {
    Facts {
        name: "www.example.org.",
        qtype: "AAAA",
        class: "IN",
        proto: "udp",
        client_ip: ip.parse().unwrap(),
        client_port: 40000,
        id: 7,
        dnssec_ok: false,
        bufsize: 1232,
    }
}

#[test]
fn coredns_documented_expressions_evaluate_as_documented() {
    let cases: &[(&str, &str, bool)] = &[
        ("incidr(client_ip(), '127.0.0.0/24')", "127.0.0.9", true),
        ("incidr(client_ip(), '127.0.0.0/24')", "192.168.1.1", false),
        ("incidr(client_ip(), '192.168.0.0/16')", "192.168.1.1", true),
        ("incidr(client_ip(), '2001:0DB8::/32')", "2001:db8::5", true),
        ("type() in ['A', 'AAAA']", "10.0.0.1", true),
        ("type() not in ['A', 'AAAA']", "10.0.0.1", false),
        ("name() matches '^.*\\.example\\.org\\.$'", "10.0.0.1", true),
        ("name() matches '^abc\\.'", "10.0.0.1", false),
        (
            "name() endsWith '.example.org.' && proto() == 'udp'",
            "10.0.0.1",
            true,
        ),
        (
            "!(client_port() > 1024) || bufsize() >= 1232",
            "10.0.0.1",
            true,
        ),
        ("do() or id() == 8", "10.0.0.1", false),
        (
            "class() == \"IN\" and name() startsWith 'www'",
            "10.0.0.1",
            true,
        ),
        ("name() contains 'example'", "10.0.0.1", true),
        ("'A' == 1", "10.0.0.1", false),
        ("client_port()", "10.0.0.1", false),
        ("incidr(client_ip(), '10.0.0.0/8')", "::ffff:10.1.1.1", true),
    ];
    for (text, ip, want) in cases {
        let e = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(e.eval(&facts(ip)), *want, "{text} for {ip}");
    }
}

#[test]
fn errors_say_where_and_why() {
    let cases: &[(&str, usize, &str)] = &[
        ("client_ip() == '1", 15, "unterminated string"),
        (
            "metadata('x') == 'y'",
            0,
            "unknown function or word 'metadata'",
        ),
        (
            "incidr(client_ip())",
            0,
            "incidr() takes 2 argument(s), got 1",
        ),
        (
            "name() matches client_ip()",
            15,
            "matches needs a quoted regular expression",
        ),
        ("name() matches '('", 15, "bad regex"),
        (
            "name() == 'a' 'b'",
            14,
            "unexpected text after the expression",
        ),
        ("(name() == 'a'", 14, "expected ')'"),
        ("name() # 'a'", 7, "unexpected character '#'"),
        ("", 0, "expected a value"),
    ];
    for (text, at, why) in cases {
        let e = parse(text).unwrap_err();
        assert_eq!(e.at, *at, "{text}: {e}");
        assert!(e.why.contains(why), "{text}: {e}");
    }
}

proptest::proptest! {
    /// Whatever the text, parsing returns an expression or an error, and an
    /// expression evaluates to true or false: a Corefile cannot make a view
    /// panic at start or per query.
    #[test]
    fn any_text_parses_or_errs_and_evaluates_without_panicking(
        text in "[a-z_()',. \\[\\]!=<>&|0-9'\"\\\\^$*+?-]{0,60}"
    ) {
        if let Ok(e) = parse(&text) {
            let _ = e.eval(&facts("10.0.0.1"));
            let _ = e.eval(&facts("2001:db8::1"));
        }
    }

    /// Well-formed comparisons built from the grammar always parse.
    #[test]
    fn generated_comparisons_parse(
        func in proptest::sample::select(vec!["name()", "type()", "class()", "proto()", "client_ip()"]),
        op in proptest::sample::select(vec!["==", "!=", "startsWith", "endsWith", "contains"]),
        lit in "[a-zA-Z0-9.]{0,12}",
        neg in proptest::bool::ANY,
    ) {
        let text = format!("{}{func} {op} '{lit}'", if neg { "!" } else { "" });
        proptest::prop_assert!(parse(&text).is_ok(), "{}", text);
    }
}
