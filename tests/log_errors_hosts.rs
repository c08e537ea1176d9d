//! The errors, log, hosts and any plugins in the real binary: query lines and
//! error lines land in the server's log, a hosts file edited while running is
//! picked up, ANY is answered with HINFO without reaching the rest of the chain.

mod common;

use std::time::Duration;

use common::{TestServer, eventually, lines, query, udp};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

const COREFILE: &str = r#"
fail.test:{PORT} {
    bind 127.0.0.1
    errors
    log
}
.:{PORT} {
    bind 127.0.0.1
    whoami
    hosts hosts.txt example.org {
        10.0.0.7 inline.example.org
        reload 200ms
    }
    any
    log . {
        class denial error
    }
    errors
}
"#;

fn start() -> TestServer {
    TestServer::start(COREFILE, &[("hosts.txt", "10.0.0.1 a.example.org\n")])
}

/// Wait (bounded) until the server's log contains `needle`.
fn wait_for_log(srv: &TestServer, needle: &str) -> String {
    eventually(Duration::from_secs(5), || {
        let log = srv.log();
        log.contains(needle).then_some(log)
    })
    .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{}", srv.log()))
}

#[test]
fn hosts_entries_are_served_and_a_file_edit_is_picked_up() {
    let srv = start();
    let reply = srv.udp("a.example.org.", RecordType::A);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(lines(&reply.answers), ["a.example.org. 3600 IN A 10.0.0.1"]);
    let reply = srv.udp("inline.example.org.", RecordType::A);
    assert_eq!(
        lines(&reply.answers),
        ["inline.example.org. 3600 IN A 10.0.0.7"]
    );
    let reply = srv.udp("1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&reply.answers),
        ["1.0.0.10.in-addr.arpa. 3600 IN PTR a.example.org."]
    );

    std::fs::write(
        srv.path("hosts.txt"),
        "10.0.0.2 a.example.org\n10.0.0.3 b.example.org\n",
    )
    .expect("edit hosts file");
    let picked_up = eventually(Duration::from_secs(5), || {
        let reply = srv.udp("a.example.org.", RecordType::A);
        (lines(&reply.answers) == ["a.example.org. 3600 IN A 10.0.0.2"]).then_some(())
    });
    assert!(picked_up.is_some(), "edit not picked up");
    let reply = srv.udp("b.example.org.", RecordType::A);
    assert_eq!(lines(&reply.answers), ["b.example.org. 3600 IN A 10.0.0.3"]);
    let reply = srv.udp("gone.example.org.", RecordType::A);
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn any_queries_get_the_rfc8482_hinfo_and_never_reach_whoami() {
    let srv = start();
    let reply = srv.udp("example.com.", RecordType::ANY);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1, "{reply:?}");
    let rr = &reply.answers[0];
    assert_eq!(rr.ttl, 8482);
    let RData::HINFO(h) = &rr.data else {
        panic!("not HINFO: {rr:?}");
    };
    assert_eq!(
        (&*h.cpu, &*h.os),
        (&b"ANY obsoleted"[..], &b"See RFC 8482"[..])
    );
    assert!(reply.additionals.is_empty(), "whoami ran: {reply:?}");
    // Other types still reach whoami.
    let reply = srv.udp("example.com.", RecordType::A);
    assert!(!reply.additionals.is_empty());
}

#[test]
fn denials_are_logged_in_the_common_format_and_successes_filtered_out() {
    let srv = start();
    let ok = query("a.example.org.", RecordType::A);
    assert_eq!(
        udp(srv.addr, &ok).metadata.response_code,
        ResponseCode::NoError
    );
    let nx = query("missing.example.org.", RecordType::A);
    assert_eq!(
        udp(srv.addr, &nx).metadata.response_code,
        ResponseCode::NXDomain
    );

    let line = format!(
        "INFO clusterdns::query: 127.0.0.1:{{port}} - {} \"A IN missing.example.org. udp 37 false 512\" NXDOMAIN qr,aa,rd 37 ",
        nx.metadata.id
    );
    let (head, tail) = line.split_once("{port}").expect("placeholder");
    let log = wait_for_log(&srv, tail);
    let logged = log.lines().find(|l| l.contains(tail)).expect("line");
    assert!(logged.contains(head), "{logged}");
    assert!(logged.ends_with('s'), "duration last: {logged}");
    assert!(
        !log.contains("a.example.org. udp"),
        "class denial error must not log a success:\n{log}"
    );
}

#[test]
fn chain_errors_are_logged_by_errors_and_by_log() {
    let srv = start();
    let reply = srv.udp("x.fail.test.", RecordType::AAAA);
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let log = wait_for_log(
        &srv,
        "ERROR clusterdns::plugin::errors: 2 x.fail.test. AAAA: no next plugin found",
    );
    let log = if log.contains("\"AAAA IN x.fail.test. udp") {
        log
    } else {
        wait_for_log(&srv, "\"AAAA IN x.fail.test. udp")
    };
    let logged = log
        .lines()
        .find(|l| l.contains("clusterdns::query") && l.contains("x.fail.test."))
        .expect("query line");
    assert!(logged.contains(" SERVFAIL qr,rd 29 "), "{logged}");
}
