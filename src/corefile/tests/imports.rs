//! Imports of files and globs through an in-memory file system.

use std::path::PathBuf;

use super::*;

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
