//! Table tests of the grammar: trees, imports and snippets, errors with their exact
//! positions, and the print → parse round trip.

use std::path::{Path, PathBuf};

use super::*;

mod errors;
mod imports;

const FILE: &str = "/cfg/Corefile";

fn no_env(_: &str) -> Option<String> {
    None
}

fn test_env(name: &str) -> Option<String> {
    match name {
        "ZONE" => Some("cluster.local".into()),
        "PORT" => Some("1053".into()),
        "SPACED" => Some("a b".into()),
        "BRACE" => Some("{".into()),
        _ => None,
    }
}

fn parse_with(src: &str, fs: &MemFs) -> Result<Corefile> {
    parse_str(src, Path::new(FILE), &no_env, fs)
}

fn parse(src: &str) -> Result<Corefile> {
    parse_with(src, &MemFs::new())
}

fn tok(text: &str) -> Token {
    Token::new(text, Pos::new(Path::new(FILE), 0, 0))
}

fn d(name: &str, args: &[&str], block: Option<Vec<Directive>>) -> Directive {
    Directive {
        name: tok(name),
        args: args.iter().map(|a| tok(a)).collect(),
        block,
    }
}

fn block(keys: &[&str], directives: Vec<Directive>) -> ServerBlock {
    ServerBlock {
        keys: keys.iter().map(|k| tok(k)).collect(),
        directives,
    }
}

const KUBEADM: &str = "\
.:53 {
    errors
    health { lameduck 5s }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf { max_concurrent 1000 }
    cache 30
    loop
    reload
    loadbalance
}
";

#[test]
fn kubeadm_corefile_parses_into_the_expected_tree() {
    let c = parse(KUBEADM).unwrap();
    let expected = vec![block(
        &[".:53"],
        vec![
            d("errors", &[], None),
            d("health", &[], Some(vec![d("lameduck", &["5s"], None)])),
            d("ready", &[], None),
            d(
                "kubernetes",
                &["cluster.local", "in-addr.arpa", "ip6.arpa"],
                Some(vec![
                    d("pods", &["insecure"], None),
                    d("fallthrough", &["in-addr.arpa", "ip6.arpa"], None),
                    d("ttl", &["30"], None),
                ]),
            ),
            d("prometheus", &[":9153"], None),
            d(
                "forward",
                &[".", "/etc/resolv.conf"],
                Some(vec![d("max_concurrent", &["1000"], None)]),
            ),
            d("cache", &["30"], None),
            d("loop", &[], None),
            d("reload", &[], None),
            d("loadbalance", &[], None),
        ],
    )];
    assert_eq!(c.blocks, expected);
    assert_eq!(c.files, vec![PathBuf::from(FILE)]);
    let kube = &c.blocks[0].directives[3];
    assert_eq!((kube.name.pos.line, kube.name.pos.col), (5, 5));
    let pods = &kube.block.as_ref().unwrap()[0];
    assert_eq!((pods.args[0].pos.line, pods.args[0].pos.col), (6, 13));
    assert_eq!(&*pods.name.pos.file, Path::new(FILE));
}

/// (source, expected tree) for inputs that must parse.
fn tree_cases() -> Vec<(&'static str, Vec<ServerBlock>)> {
    vec![
        (
            "example.org:1053 cluster.local {\n whoami\n}\n.:53 {\n log\n}\n",
            vec![
                block(
                    &["example.org:1053", "cluster.local"],
                    vec![d("whoami", &[], None)],
                ),
                block(&[".:53"], vec![d("log", &[], None)]),
            ],
        ),
        // Commas separate keys; a trailing comma continues the list on the next line.
        (
            "a.org, b.org,\n  c.org,d.org {\n}\n",
            vec![block(&["a.org", "b.org", "c.org", "d.org"], vec![])],
        ),
        ("dns://.:53 {\n}\n", vec![block(&["dns://.:53"], vec![])]),
        (
            "10.0.0.0/24 [::1]:53 {\n}",
            vec![block(&["10.0.0.0/24", "[::1]:53"], vec![])],
        ),
        // One server block may omit its braces (Caddy v1, as CoreDNS uses it).
        (
            ".:53\nwhoami\nlog stdout\n",
            vec![block(
                &[".:53"],
                vec![d("whoami", &[], None), d("log", &["stdout"], None)],
            )],
        ),
        ("example.org", vec![block(&["example.org"], vec![])]),
        // The opening brace may stand on its own line.
        (
            ".:53\n{\n whoami\n}",
            vec![block(&[".:53"], vec![d("whoami", &[], None)])],
        ),
        // A whole server block on one line; a block closed together with its parent.
        (
            ".:53 { whoami }\nb.org { health { lameduck 5s } }",
            vec![
                block(&[".:53"], vec![d("whoami", &[], None)]),
                block(
                    &["b.org"],
                    vec![d("health", &[], Some(vec![d("lameduck", &["5s"], None)]))],
                ),
            ],
        ),
        (
            ".:53 {\n a x {\n  b y {\n   c z\n  }\n  e {\n  }\n }\n}",
            vec![block(
                &[".:53"],
                vec![d(
                    "a",
                    &["x"],
                    Some(vec![
                        d("b", &["y"], Some(vec![d("c", &["z"], None)])),
                        d("e", &[], Some(vec![])),
                    ]),
                )],
            )],
        ),
        // Quotes: spaces, \" escapes, other backslashes kept (CoreDNS), braces as text.
        (
            r#".:53 {
 rewrite "a b" "say \"hi\"" "x\.y\\z" "{" "}" ""
}"#,
            vec![block(
                &[".:53"],
                vec![d(
                    "rewrite",
                    &["a b", "say \"hi\"", r"x\.y\\z", "{", "}", ""],
                    None,
                )],
            )],
        ),
        // A quoted token spans lines; words after it on its closing line are arguments.
        (
            ".:53 {\n answer \"one\ntwo\" three\n log\n}",
            vec![block(
                &[".:53"],
                vec![
                    d("answer", &["one\ntwo", "three"], None),
                    d("log", &[], None),
                ],
            )],
        ),
        // Comments: whole line, end of line, mid-word; not inside quotes.
        (
            "# header\n.:53 { # open\n log foo#bar baz\n errors \"#not\" # end\n}\n# tail",
            vec![block(
                &[".:53"],
                vec![d("log", &["foo"], None), d("errors", &["#not"], None)],
            )],
        ),
        // Go-template text in quotes is untouched.
        (
            ".:53 {\n template IN A {\n  answer \"{{ .Name }} 60 IN A 127.0.0.1\"\n }\n}",
            vec![block(
                &[".:53"],
                vec![d(
                    "template",
                    &["IN", "A"],
                    Some(vec![d("answer", &["{{ .Name }} 60 IN A 127.0.0.1"], None)]),
                )],
            )],
        ),
        // CRLF line endings and a byte-order mark.
        (
            "\u{feff}.:53 {\r\n  log\r\n  errors\r\n}\r\n",
            vec![block(
                &[".:53"],
                vec![d("log", &[], None), d("errors", &[], None)],
            )],
        ),
        ("", vec![]),
        ("# only a comment\n\n", vec![]),
        // Snippets: defined at top level, spliced where imported, at any level.
        (
            "(common) {\n errors\n log\n}\n(kube) {\n pods insecure\n}\n.:53 {\n import common\n kubernetes cluster.local {\n  import kube\n  ttl 5\n }\n}\nimport common",
            vec![
                block(
                    &[".:53"],
                    vec![
                        d("errors", &[], None),
                        d("log", &[], None),
                        d(
                            "kubernetes",
                            &["cluster.local"],
                            Some(vec![d("pods", &["insecure"], None), d("ttl", &["5"], None)]),
                        ),
                    ],
                ),
                // At top level a snippet's first word starts a server block.
                block(&["errors"], vec![d("log", &[], None)]),
            ],
        ),
        // A snippet may import another one, and be imported inside a one-line block.
        (
            "(a) {\n whoami\n}\n(b) { import a\n log }\n.:53 { import b }",
            vec![block(
                &[".:53"],
                vec![d("whoami", &[], None), d("log", &[], None)],
            )],
        ),
    ]
}

#[test]
fn every_tree_case_parses_into_its_expected_tree() {
    for (src, expected) in tree_cases() {
        let c = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(c.blocks, expected, "source: {src:?}");
    }
}

#[test]
fn printing_then_parsing_gives_the_same_tree() {
    let mut sources: Vec<&str> = tree_cases().into_iter().map(|(s, _)| s).collect();
    sources.push(KUBEADM);
    sources.push("\"(x)\" {\n \"import\" \"a,b\" \"\\\\\" x\\\n}");
    sources.push("\"import\" {\n}\n\"{\" \"\u{feff}\" {\n \"}\" \"#\"\n}");
    sources.push("\u{feff}\u{feff}a.org (x) (a\\\"b) {\n}\n\"(y)\" {\n}");
    sources.push("a.org,\"\\ {\n}");
    for src in sources {
        let first = parse(src).unwrap();
        let printed = first.to_string();
        let second = parse(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
        assert_eq!(first.blocks, second.blocks, "printed:\n{printed}");
    }
}

#[test]
fn printing_uses_canonical_indentation_and_quotes_only_when_needed() {
    let c = parse(".:53 { health { lameduck 5s } }\nb.org,c.org\n{\nlog \"a b\" \"{\"\n}").unwrap();
    assert_eq!(
        c.to_string(),
        ".:53 {\n    health {\n        lameduck 5s\n    }\n}\n\nb.org c.org {\n    log \"a b\" \"{\"\n}\n"
    );
}

/// A tiny deterministic generator (xorshift) of token soup, to shake the printer and the
/// error paths without a fuzzer.
#[test]
fn random_token_soup_never_panics_and_round_trips_when_it_parses() {
    const WORDS: &[&str] = &[
        "a", "b.org", " ", " ", "\n", "\n", "{", "}", "\"", "\\", "#", ",", "(s)", "import", "é",
        "\t", "\r", "\u{feff}", ":53",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut src = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 1 + (state % 24) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            src.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        }
        let Ok(first) = parse(&src) else { continue };
        parsed += 1;
        let printed = first.to_string();
        let second = parse(&printed).unwrap_or_else(|e| panic!("{src:?} → {printed:?}: {e}"));
        assert_eq!(first.blocks, second.blocks, "{src:?} → {printed:?}");
    }
    assert!(parsed > 100, "only {parsed} inputs parsed");
}

#[test]
fn environment_references_are_substituted_with_defaults_and_missing_ones_are_empty() {
    let src = "{$ZONE}:{$PORT} {%ZONE%} {\n log {$NOPE} x{$NOPE}y {$NOPE:def} {$PORT:9} \"in {$ZONE} quotes\" {$SPACED} {$BRACE} {$} {$ZONE\n}";
    let c = parse_str(src, Path::new(FILE), &test_env, &MemFs::new()).unwrap();
    let b = &c.blocks[0];
    let keys: Vec<&str> = b.keys.iter().map(Token::as_str).collect();
    assert_eq!(keys, ["cluster.local:1053", "cluster.local"]);
    let args: Vec<&str> = b.directives[0].args.iter().map(Token::as_str).collect();
    assert_eq!(
        args,
        [
            "",
            "xy",
            "def",
            "1053",
            "in cluster.local quotes",
            "a b",
            "{",
            "{$}",
            "{$ZONE"
        ]
    );
    // An environment value never opens a block: the line above has no nested block.
    assert_eq!(b.directives[0].block, None);
}
