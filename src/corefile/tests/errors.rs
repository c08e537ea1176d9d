//! Every error case with its exact `file:line:col: message`.

use std::path::Path;

use super::*;

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
