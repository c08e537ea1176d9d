//! `rewrite edns0` end to end: the real binary forwards to the in-process test
//! upstream (tests/common/upstream.rs), which records the EDNS0 options of
//! every query it receives; the options the rules set must be among them, the
//! client's own options kept (but the hop-by-hop cookie), and the client's
//! response must not echo them.

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{TestServer, eventually, query, udp, udp_raw, with_edns};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsOption;
use upstream::{EdnsOptions, Upstream};

/// Start `corefile` and wait until it answers a forwarded probe.
fn start(corefile: &str) -> TestServer {
    let mut srv = TestServer::spawn(corefile, &[]);
    let probe = query("wait-for-start.invalid.", RecordType::A)
        .to_vec()
        .expect("encode");
    let up = eventually(Duration::from_secs(20), || {
        if let Ok(Some(status)) = srv.child.try_wait() {
            panic!("clusterdns exited with {status}:\n{}", srv.log());
        }
        udp_raw(srv.addr, &probe, 300)
    });
    assert!(up.is_some(), "no DNS answer from {}", srv.addr);
    srv
}

fn server(up: &Upstream, rules: &str) -> TestServer {
    start(&format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n{rules}\n    forward . {}\n}}\n",
        up.to()
    ))
}

/// Ask `m` for `www.example.org. A` and check the forwarded answer came back.
fn ask_ok(addr: SocketAddr, m: &Message) -> Message {
    let reply = udp(addr, m);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1, "{:?}", reply.answers);
    reply
}

/// Every query the upstream saw for `name` carried exactly `want`.
fn assert_upstream_saw(up: &Upstream, name: &str, want: &EdnsOptions) {
    let seen = up.edns_options_for(name);
    assert!(!seen.is_empty(), "the upstream saw no query for {name}");
    for options in seen {
        assert_eq!(
            options.as_ref(),
            Some(want),
            "options of a query for {name}"
        );
    }
}

fn with_options(mut m: Message, options: &[(u16, &[u8])]) -> Message {
    let edns = m.edns.as_mut().expect("OPT");
    for (code, data) in options {
        edns.options_mut()
            .insert(EdnsOption::Unknown(*code, data.to_vec()));
    }
    m
}

/// Client Subnet of 127.0.0.1 (the test client's address) at /24.
const LOOPBACK_24: [u8; 7] = [0, 1, 24, 0, 127, 0, 0];
const COOKIE: u16 = 10;

#[test]
fn a_local_option_set_by_rewrite_reaches_the_upstream_with_or_without_client_opt() {
    let up = Upstream::start();
    let ip: IpAddr = "192.0.2.1".parse().expect("ip");
    up.answer("plain.example.org.", &[ip]);
    up.answer("opt.example.org.", &[ip]);
    up.answer("own.example.org.", &[ip]);
    let srv = server(&up, "    rewrite edns0 local set 0xffee abcd");

    // No OPT from the client: forward creates one for the option.
    let reply = ask_ok(srv.addr, &query("plain.example.org.", RecordType::A));
    assert!(reply.edns.is_none(), "no OPT asked, none answered");
    assert_upstream_saw(&up, "plain.example.org.", &vec![(0xffee, b"abcd".to_vec())]);

    // The client's OPT gains the option; the response does not echo it.
    let reply = ask_ok(
        srv.addr,
        &with_edns(query("opt.example.org.", RecordType::A), 1232),
    );
    let opt = reply.edns.expect("OPT answered");
    assert!(opt.options().as_ref().is_empty(), "{:?}", opt.options());
    assert_upstream_saw(&up, "opt.example.org.", &vec![(0xffee, b"abcd".to_vec())]);

    // The client's own 0xffee is replaced, its other options kept but the cookie.
    let m = with_options(
        with_edns(query("own.example.org.", RecordType::A), 1232),
        &[
            (0xffee, b"zz"),
            (COOKIE, &[1, 2, 3, 4, 5, 6, 7, 8]),
            (0xfff0, b"x"),
        ],
    );
    ask_ok(srv.addr, &m);
    assert_upstream_saw(
        &up,
        "own.example.org.",
        &vec![(0xffee, b"abcd".to_vec()), (0xfff0, b"x".to_vec())],
    );
}

#[test]
fn a_subnet_rule_sends_the_client_network_upstream() {
    let up = Upstream::start();
    let ip: IpAddr = "192.0.2.1".parse().expect("ip");
    up.answer("ecs.example.org.", &[ip]);
    up.answer("own-ecs.example.org.", &[ip]);
    let srv = server(
        &up,
        "    rewrite continue edns0 subnet set 24 56\n    rewrite edns0 local append 0xffee {protocol}",
    );

    ask_ok(srv.addr, &query("ecs.example.org.", RecordType::A));
    assert_upstream_saw(
        &up,
        "ecs.example.org.",
        &vec![(8, LOOPBACK_24.to_vec()), (0xffee, b"udp".to_vec())],
    );

    // A client's own subnet is replaced by its address at /24; append keeps
    // the client's 0xffee.
    let m = with_options(
        with_edns(query("own-ecs.example.org.", RecordType::A), 1232),
        &[(8, &[0, 1, 32, 0, 10, 9, 9, 9]), (0xffee, b"mine")],
    );
    ask_ok(srv.addr, &m);
    assert_upstream_saw(
        &up,
        "own-ecs.example.org.",
        &vec![(8, LOOPBACK_24.to_vec()), (0xffee, b"mine".to_vec())],
    );
}
