//! Table tests of the grammar: trees, imports and snippets, errors with their exact
//! positions, and the print → parse round trip.

use std::path::{Path, PathBuf};

use super::*;

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

// === imports ===

fn fs() -> MemFs {
    MemFs::new()
        .with("/cfg/common.conf", "errors\nlog")
        .with("/cfg/conf.d/b.conf", "b.org {\n whoami\n}")
        .with("/cfg/conf.d/a.conf", "a.org {\n import ../common.conf\n}")
        .with("/cfg/conf.d/notes.txt", "not a corefile {")
        .with("/etc/shared/kube.conf", "pods insecure\nttl 30")
}

#[test]
fn import_of_a_file_splices_its_directives_and_names_it_in_positions() {
    let c = parse_with(".:53 {\n import common.conf\n cache 30\n}", &fs()).unwrap();
    assert_eq!(
        c.blocks,
        vec![block(
            &[".:53"],
            vec![
                d("errors", &[], None),
                d("log", &[], None),
                d("cache", &["30"], None)
            ]
        )]
    );
    let log = &c.blocks[0].directives[1].name.pos;
    assert_eq!(log.to_string(), "/cfg/common.conf:2:1");
    assert_eq!(
        c.files,
        vec![PathBuf::from(FILE), PathBuf::from("/cfg/common.conf")]
    );
}

#[test]
fn import_of_a_glob_reads_matching_files_in_name_order_relative_to_each_importer() {
    let c = parse_with("import conf.d/*.conf\n", &fs()).unwrap();
    assert_eq!(
        c.blocks,
        vec![
            block(
                &["a.org"],
                vec![d("errors", &[], None), d("log", &[], None)]
            ),
            block(&["b.org"], vec![d("whoami", &[], None)]),
        ]
    );
    let files: Vec<&str> = c.files.iter().map(|p| p.to_str().unwrap()).collect();
    // Matches are read before they are parsed, so a.conf's own import comes last.
    assert_eq!(
        files,
        [
            FILE,
            "/cfg/conf.d/a.conf",
            "/cfg/conf.d/b.conf",
            "/cfg/common.conf"
        ]
    );
}

#[test]
fn import_of_a_glob_matching_nothing_is_not_an_error() {
    let c = parse_with("import none/*.conf\n.:53 {\n import none/*\n}", &fs()).unwrap();
    assert_eq!(c.blocks, vec![block(&[".:53"], vec![])]);
}

#[test]
fn import_of_an_absolute_path_inside_a_directive_block() {
    let src = ".:53 {\n kubernetes cluster.local {\n  import /etc/shared/kube.conf\n }\n}";
    let c = parse_with(src, &fs()).unwrap();
    let kube = &c.blocks[0].directives[0];
    assert_eq!(
        kube.block,
        Some(vec![
            d("pods", &["insecure"], None),
            d("ttl", &["30"], None)
        ])
    );
}

#[test]
fn a_file_imported_twice_is_listed_once() {
    let c = parse_with(
        "a.org {\n import common.conf\n}\nb.org {\n import ./common.conf\n}",
        &fs(),
    )
    .unwrap();
    assert_eq!(c.blocks.len(), 2);
    assert_eq!(c.blocks[1].directives.len(), 2);
    assert_eq!(c.files.len(), 2);
}

#[test]
fn snippet_tokens_keep_the_position_of_their_definition() {
    let c = parse("(s) {\n  log\n}\n.:53 {\n import s\n}").unwrap();
    assert_eq!(
        c.blocks[0].directives[0].name.pos.to_string(),
        "/cfg/Corefile:2:3"
    );
}

// === errors ===

/// (source, `file:line:col: message`) for inputs that must fail.
const ERROR_CASES: &[(&str, &str)] = &[
    (
        ".:53 {\n whoami\n",
        "/cfg/Corefile:1:6: unterminated block: this '{' is never closed",
    ),
    (
        ".:53 {\n kubernetes cluster.local {\n  pods insecure\n",
        "/cfg/Corefile:2:27: unterminated block: this '{' is never closed",
    ),
    (
        ".:53 {\n}\n}\n",
        "/cfg/Corefile:3:1: unexpected '}' without a matching '{'",
    ),
    (
        ".:53 {\n forward . \"8.8.8.8\n}\n",
        "/cfg/Corefile:2:12: unterminated quoted string",
    ),
    (
        "{\n whoami\n}",
        "/cfg/Corefile:1:1: server block has no keys: expected a zone such as '.:53' before '{'",
    ),
    (
        "a.org, {\n}",
        "/cfg/Corefile:1:8: expected another server block key after ','",
    ),
    (
        "a.org,",
        "/cfg/Corefile:1:1: expected another server block key after ','",
    ),
    (
        ".:53 {\n import nope\n}",
        "/cfg/Corefile:2:9: import: 'nope' is neither a snippet defined above nor a file (/cfg/nope not found)",
    ),
    // A snippet must be defined before it is used.
    (
        ".:53 {\n import s\n}\n(s) {\n log\n}",
        "/cfg/Corefile:2:9: import: 's' is neither a snippet defined above nor a file (/cfg/s not found)",
    ),
    (
        "import conf/x.conf",
        "/cfg/Corefile:1:8: import: file /cfg/conf/x.conf not found",
    ),
    (
        ".:53 {\n import a b\n}",
        "/cfg/Corefile:2:2: import: expected exactly one argument (a file, glob or snippet name), got 2",
    ),
    (
        ".:53 {\n import\n}",
        "/cfg/Corefile:2:2: import: expected exactly one argument (a file, glob or snippet name), got 0",
    ),
    (
        "(s) {\n import s\n}\n.:53 {\n import s\n}",
        "/cfg/Corefile:2:2: import cycle: /cfg/Corefile → snippet (s) → snippet (s)",
    ),
    (
        "(s) {\n log\n}\n(s) {\n errors\n}",
        "/cfg/Corefile:4:1: snippet (s) is already defined at /cfg/Corefile:1:1",
    ),
    (
        "(s)\n.:53 {\n}",
        "/cfg/Corefile:1:1: snippet (s) needs a { } block",
    ),
    (
        ".:53 {\n health { lameduck 5s } extra\n}",
        "/cfg/Corefile:2:25: unexpected token after '}': start a new line",
    ),
    (
        ".:53 {\n {\n }\n}",
        "/cfg/Corefile:2:2: unexpected '{': a block must follow a directive name on its line",
    ),
    (
        "a.org\nlog\n}",
        "/cfg/Corefile:3:1: unexpected '}' without a matching '{'",
    ),
    (
        "\"\" {$UNSET} {\n}",
        "/cfg/Corefile:1:1: server block has no keys: every key is empty",
    ),
];

#[test]
fn every_error_case_reports_its_exact_position_and_message() {
    for (src, expected) in ERROR_CASES {
        match parse(src) {
            Ok(c) => panic!("{src:?} parsed: {c:?}"),
            Err(e) => assert_eq!(e.to_string(), *expected, "source: {src:?}"),
        }
    }
}

#[test]
fn import_cycle_between_files_names_the_chain_at_the_closing_import() {
    let fs = MemFs::new()
        .with("/cfg/a.conf", "log\nimport sub/b.conf")
        .with("/cfg/sub/b.conf", "\n  import ../a.conf");
    let e = parse_with(".:53 {\n import a.conf\n}", &fs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/cfg/sub/b.conf:2:3: import cycle: /cfg/Corefile → /cfg/a.conf → /cfg/sub/b.conf → /cfg/a.conf"
    );
}

#[test]
fn unbalanced_braces_in_an_imported_file_are_reported_in_that_file() {
    let fs = MemFs::new()
        .with("/cfg/close.conf", "log\n}\n")
        .with("/cfg/open.conf", "log {\n");
    let e = parse_with(".:53 {\n import close.conf\n}", &fs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/cfg/close.conf:2:1: unexpected '}' without a matching '{'"
    );
    let e = parse_with(".:53 {\n import open.conf\n}", &fs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/cfg/open.conf:1:5: unterminated block: this '{' is never closed"
    );
}

#[test]
fn blocks_nested_too_deep_are_an_error_not_a_stack_overflow() {
    let src = format!(".:53 {{\n{}{}", "a {\n".repeat(100), "}\n".repeat(101));
    let e = parse(&src).unwrap_err();
    assert_eq!(e.line, 65);
    assert!(e.message.contains("nested deeper than 64"), "{e}");
}

#[test]
fn snippet_imports_that_double_at_each_level_hit_the_expansion_cap() {
    let mut src = String::from("(s0) {\n log\n}\n");
    for i in 1..=12 {
        src.push_str(&format!(
            "(s{i}) {{\n import s{p}\n import s{p}\n}}\n",
            p = i - 1
        ));
    }
    src.push_str(".:53 {\n import s12\n}");
    let e = parse(&src).unwrap_err();
    assert!(e.message.contains("more than 1000 imports"), "{e}");
}

#[test]
fn error_display_is_file_line_col_message_and_whole_file_errors_omit_the_position() {
    let e = CorefileError::at(
        &Pos::new(Path::new("config/Corefile"), 7, 5),
        "kubernetes: x",
    );
    assert_eq!(e.to_string(), "config/Corefile:7:5: kubernetes: x");
    let e = parse_file(Path::new("/nonexistent/clusterdns/Corefile"), &no_env).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/clusterdns/Corefile: cannot read Corefile:"),
        "{e}"
    );
}

#[test]
fn parse_file_reads_imports_from_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Corefile"),
        ".:53 {\n import extra/*.conf\n}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("extra")).unwrap();
    std::fs::write(dir.path().join("extra/1.conf"), "log\n").unwrap();
    let c = parse_file(&dir.path().join("Corefile"), &no_env).unwrap();
    assert_eq!(c.blocks, vec![block(&[".:53"], vec![d("log", &[], None)])]);
    assert_eq!(c.files.len(), 2);
    assert!(c.files[1].ends_with("extra/1.conf"));
}
