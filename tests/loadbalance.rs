//! `loadbalance weighted` end to end: the real binary on a loopback port,
//! serving a hosts file's addresses reordered by a weight file, asked by the
//! real `dig`; then the weight file is edited and the new weights win; and a
//! broken weight file stops the server at start naming its line.

mod common;

use std::time::Duration;

use common::{TestServer, dig, dig_section as section, eventually, require};

const HOSTS: &str =
    "192.0.2.1 www.example.org\n192.0.2.2 www.example.org\n192.0.2.3 www.example.org\n";

fn weights(heavy: &str) -> String {
    format!("# the heavy one first, nearly always\nwww.example.org\n{heavy} 250\n")
}

/// How many of `n` dig answers put `ip` first; each answer must hold the
/// three addresses.
fn firsts(tool: &std::path::Path, srv: &TestServer, ip: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let out = dig(tool, srv, &["+notcp", "www.example.org", "A"]);
            let answers = section(&out, "ANSWER");
            assert_eq!(answers.len(), 3, "{out}");
            answers[0].ends_with(&format!(" IN A {ip}"))
        })
        .count()
}

#[test]
fn weighted_puts_the_heavy_address_first_and_follows_edits_of_the_file() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    hosts hosts.txt example.org\n    \
         loadbalance weighted weights.txt {\n        reload 100ms\n    }\n}\n",
        &[("hosts.txt", HOSTS), ("weights.txt", &weights("192.0.2.3"))],
    );
    // Weight 250 of 252: 20 of 20 expected; 15 leaves room for the odd miss
    // (fewer than 15 has a probability far below 1e-20).
    let n = firsts(&tool, &srv, "192.0.2.3", 20);
    assert!(n >= 15, "192.0.2.3 first in {n} of 20 answers");

    common::write(&srv.path("weights.txt"), &weights("192.0.2.1"));
    let moved = eventually(Duration::from_secs(20), || {
        (firsts(&tool, &srv, "192.0.2.1", 10) >= 8).then_some(())
    });
    assert!(
        moved.is_some(),
        "the edited weights were not applied; log:\n{}",
        srv.log()
    );

    // A broken edit keeps the last good weights (and is logged).
    common::write(&srv.path("weights.txt"), "www.example.org\n192.0.2.2 0\n");
    let logged = eventually(Duration::from_secs(20), || {
        srv.log()
            .contains("weights.txt:2: invalid weight '0'")
            .then_some(())
    });
    assert!(
        logged.is_some(),
        "broken edit not logged; log:\n{}",
        srv.log()
    );
    let n = firsts(&tool, &srv, "192.0.2.1", 20);
    assert!(n >= 15, "192.0.2.1 still first ({n} of 20)");
}

#[test]
fn a_broken_weight_file_stops_the_server_at_start_with_its_line() {
    let mut srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    loadbalance weighted weights.txt\n    whoami\n}\n",
        &[(
            "weights.txt",
            "www.example.org\n192.0.2.1 3\n192.0.2.2 300\n",
        )],
    );
    let status = eventually(Duration::from_secs(10), || {
        srv.child.try_wait().expect("try_wait")
    })
    .expect("clusterdns kept running with a broken weight file");
    assert_eq!(status.code(), Some(64), "log:\n{}", srv.log());
    let log = srv.log();
    assert!(
        log.contains("weights.txt:3: invalid weight '300' (use 1..255)"),
        "{log}"
    );
}
