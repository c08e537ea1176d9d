//! `forward` through the real binary, against in-process test upstreams on
//! 127.0.0.1 (tests/common/upstream.rs): answers, TCP retry of truncated
//! answers, failover and health checks, max_concurrent under a burst, routing
//! (FROM, except, the kubernetes plugin's names), and the `loop` plugin taking
//! a looping upstream out instead of exiting.

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{TestServer, eventually, query, udp_raw, with_edns};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use upstream::Upstream;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// One UDP query with our own timeout; None when nothing came back.
fn ask(addr: SocketAddr, m: &Message, timeout: Duration) -> Option<Message> {
    let bytes = m.to_vec().expect("encode");
    let reply = udp_raw(addr, &bytes, timeout.as_millis() as u64)?;
    Message::from_vec(&reply).ok()
}

/// Start a server and wait until it answers anything (any rcode).
fn start(corefile: &str, files: &[(&str, &str)]) -> TestServer {
    let mut srv = TestServer::spawn(corefile, files);
    let probe = query("wait-for-start.invalid.", RecordType::A);
    let up = eventually(Duration::from_secs(20), || {
        if let Ok(Some(status)) = srv.child.try_wait() {
            panic!("clusterdns exited with {status}:\n{}", srv.log());
        }
        ask(srv.addr, &probe, Duration::from_millis(300))
    });
    assert!(up.is_some(), "no DNS answer from {}", srv.addr);
    srv
}

/// The value of the first /metrics line starting with `prefix`.
fn metric(srv: &TestServer, prefix: &str) -> Option<f64> {
    let (_, body) = srv.http_get(srv.health_port, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn a_records(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_test_upstream_answers_counts_truncates_and_drops_as_configured() {
    let up = Upstream::start();
    up.answer("www.example.org", &[ip("192.0.2.1")]);
    let m = ask(
        up.addr,
        &query("WWW.example.org.", RecordType::A),
        Duration::from_secs(2),
    )
    .expect("answer");
    assert_eq!(a_records(&m), [ip("192.0.2.1")]);
    assert!(m.metadata.recursion_available);
    let m = common::tcp(up.addr, &query("nope.example.org.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    up.set_truncate_udp(true);
    let m = ask(
        up.addr,
        &query("www.example.org.", RecordType::A),
        Duration::from_secs(2),
    )
    .expect("answer");
    assert!(m.metadata.truncation && m.answers.is_empty());
    up.rcode_all(Some(ResponseCode::Refused));
    let m = common::tcp(up.addr, &query("www.example.org.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    up.set_drop(true);
    assert!(
        ask(
            up.addr,
            &query("x.", RecordType::A),
            Duration::from_millis(300)
        )
        .is_none()
    );
    assert_eq!((up.udp_queries(), up.tcp_queries()), (3, 2));
    assert_eq!(up.queries_for("www.example.org."), 3);
}

#[test]
fn a_forwarded_answer_copies_the_upstream_reply_in_the_query_case() {
    let up = Upstream::start();
    up.answer("www.example.org.", &[ip("192.0.2.1"), ip("192.0.2.2")]);
    let srv = start(
        &format!(
            ".:{{PORT}} {{\n    bind 127.0.0.1\n    forward . {}\n}}\n",
            up.to()
        ),
        &[],
    );
    let m = srv.udp("WwW.ExAmple.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available, "RA copied");
    assert!(!m.metadata.authoritative);
    assert_eq!(a_records(&m), [ip("192.0.2.1"), ip("192.0.2.2")]);
    let want = Name::from_ascii("WwW.ExAmple.org.").unwrap();
    assert!(
        m.answers.iter().all(|r| r.name.eq_case(&want)),
        "{:?}",
        m.answers
    );
    let m = srv.udp("missing.example.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let tcp_before = up.tcp_queries();
    let m = srv.tcp("www.example.org.", RecordType::A);
    assert_eq!(a_records(&m).len(), 2);
    assert_eq!(
        up.tcp_queries(),
        tcp_before + 1,
        "a TCP client is forwarded over TCP"
    );
}

#[test]
fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let up = Upstream::start();
    let ips: Vec<IpAddr> = (1..=20).map(|i| ip(&format!("192.0.2.{i}"))).collect();
    up.answer("big.example.org.", &ips);
    let srv = start(
        &format!(
            ".:{{PORT}} {{\n    bind 127.0.0.1\n    forward . {}\n}}\n",
            up.to()
        ),
        &[],
    );
    up.set_truncate_udp(true);
    let tcp_before = up.tcp_queries();
    let m = common::udp(
        srv.addr,
        &with_edns(query("big.example.org.", RecordType::A), 4096),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.truncation);
    assert_eq!(a_records(&m), ips);
    assert_eq!(up.queries_for("big.example.org."), 2);
    assert_eq!(up.tcp_queries(), tcp_before + 1, "the retry went over TCP");
}

#[test]
fn failover_to_the_second_upstream_then_health_checks_bring_the_first_back() {
    let first = Upstream::start();
    let second = Upstream::start();
    for (u, addr) in [(&first, "192.0.2.1"), (&second, "192.0.2.2")] {
        for n in ["one.example.", "two.example.", "three.example."] {
            u.answer(n, &[ip(addr)]);
        }
    }
    let srv = start(
        &format!(
            ".:{{PORT}} {{
    bind 127.0.0.1
    prometheus 127.0.0.1:{{HEALTH}}
    forward . {} {} {{
        policy sequential
        health_check 100ms
        max_fails 2
    }}
}}
",
            first.to(),
            second.to()
        ),
        &[],
    );
    first.set_drop(true);
    let t = Instant::now();
    // A bound, not a speed check: the parallel overflow test in this file
    // can starve the machine, and one run waited more than 6 s here.
    let m = ask(
        srv.addr,
        &query("one.example.", RecordType::A),
        Duration::from_secs(15),
    )
    .expect("answered after failover");
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "waited for the read timeout"
    );
    assert_eq!(a_records(&m), [ip("192.0.2.2")], "answered by the second");
    assert_eq!(first.queries_for("one.example."), 1);

    // Health checks (every 100ms) mark the first down after 2 failures: skipped.
    let to = first.to();
    let failures =
        format!("coredns_proxy_healthcheck_failures_total{{proxy_name=\"forward\",to=\"{to}\"}}");
    let down = eventually(Duration::from_secs(5), || {
        metric(&srv, &failures).filter(|n| *n >= 2.0)
    });
    assert!(down.is_some(), "health checks failed and were counted");
    assert!(first.queries_for(".") >= 2, "checks ask `. IN NS`");
    let m = ask(
        srv.addr,
        &query("two.example.", RecordType::A),
        Duration::from_secs(6),
    )
    .expect("answer");
    assert_eq!(a_records(&m), [ip("192.0.2.2")]);
    assert_eq!(
        first.queries_for("two.example."),
        0,
        "the down upstream was skipped"
    );

    // It comes back: the next good check makes it first in line again.
    first.set_drop(false);
    let back = eventually(Duration::from_secs(5), || {
        let m = ask(
            srv.addr,
            &query("three.example.", RecordType::A),
            Duration::from_secs(3),
        )?;
        (a_records(&m) == [ip("192.0.2.1")]).then_some(())
    });
    assert!(back.is_some(), "the first upstream answers again");
}

#[test]
fn max_concurrent_overflow_is_refused_quickly_counted_and_memory_stays_bounded() {
    const QUERIES: usize = 5000;
    let up = Upstream::start();
    up.answer("burst.example.", &[ip("192.0.2.9")]);
    let srv = start(
        &format!(
            ".:{{PORT}} {{
    bind 127.0.0.1
    prometheus 127.0.0.1:{{HEALTH}}
    forward . {} {{
        max_concurrent 20
    }}
}}
",
            up.to()
        ),
        &[],
    );
    up.set_delay(Duration::from_millis(1500));
    let rss_before = rss_kib(srv.child.id());

    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let receiver = sock.try_clone().expect("clone");
    let collect = std::thread::spawn(move || {
        let mut got: HashMap<u16, ResponseCode> = HashMap::new();
        let mut buf = [0u8; 1500];
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_secs(4) {
            if let Ok(n) = receiver.recv(&mut buf) {
                if let Ok(m) = Message::from_vec(&buf[..n]) {
                    got.insert(m.metadata.id, m.metadata.response_code);
                }
                last = Instant::now();
            }
        }
        got
    });
    for i in 0..QUERIES {
        let mut m = query("burst.example.", RecordType::A);
        m.metadata.id = i as u16;
        sock.send_to(&m.to_vec().expect("encode"), srv.addr)
            .expect("send");
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let got = collect.join().expect("receiver");

    // "Quickly" without a clock: the upstream holds each of the 20 slots for
    // 1.5 s, so REFUSED answers that waited for a slot would come back 20 per
    // 1.5 s and the receiver (which stops after 4 s of silence) would see a few
    // hundred at most. Thousands mean they were answered without queueing.
    let refused = got
        .values()
        .filter(|rc| **rc == ResponseCode::Refused)
        .count();
    let answered = got
        .values()
        .filter(|rc| **rc == ResponseCode::NoError)
        .count();
    assert!(refused >= 4000, "refused {refused} of {QUERIES}");
    assert!(
        (1..=200).contains(&answered),
        "forwarded and answered: {answered}"
    );
    let rejects = metric(&srv, "coredns_forward_max_concurrent_rejects_total").expect("metric");
    assert!(
        rejects >= refused as f64 && rejects <= QUERIES as f64,
        "counted {rejects}, received {refused}"
    );
    assert!(
        up.queries_for("burst.example.") <= 200,
        "the overflow never reached the upstream"
    );
    let rss_after = rss_kib(srv.child.id());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn from_and_except_route_the_other_names_to_the_next_plugin() {
    let up = Upstream::start();
    for n in ["www.example.org.", "other.net.", "a.internal.example.org."] {
        up.answer(n, &[ip("192.0.2.5")]);
    }
    let srv = start(
        &format!(
            ".:{{PORT}} {{
    bind 127.0.0.1
    forward example.org {} {{
        except internal.example.org
    }}
    whoami
}}
",
            up.to()
        ),
        &[],
    );
    let m = srv.udp("www.example.org.", RecordType::A);
    assert_eq!(a_records(&m), [ip("192.0.2.5")]);
    for name in ["other.net.", "a.internal.example.org."] {
        let m = srv.udp(name, RecordType::A);
        assert!(m.answers.is_empty(), "{name}: whoami has no answer section");
        assert!(
            m.additionals
                .iter()
                .any(|r| matches!(r.data, RData::A(a) if a.0 == std::net::Ipv4Addr::LOCALHOST)),
            "{name}: whoami answered"
        );
        assert_eq!(up.queries_for(name), 0, "{name} was not forwarded");
    }
    assert_eq!(up.queries_for("www.example.org."), 1);
}

const CLUSTER: &str = ".:{PORT} {
    bind 127.0.0.1
    kubernetes cluster.local {
        manifests testns.yaml
        FALLTHROUGH
    }
    forward . UPSTREAM
}
";

#[test]
fn a_cluster_nxdomain_is_not_forwarded_without_fallthrough_and_is_with_it() {
    let yaml = std::fs::read_to_string(common::repo().join("tests/fixtures/testns.yaml"))
        .expect("fixture");
    let up = Upstream::start();
    up.answer("missing.testns.svc.cluster.local.", &[ip("192.0.2.66")]);
    up.answer("svc1.testns.svc.cluster.local.", &[ip("192.0.2.67")]);
    let corefile = |fallthrough: &str| {
        CLUSTER
            .replace("FALLTHROUGH", fallthrough)
            .replace("UPSTREAM", &up.to())
    };
    let srv = TestServer::start(&corefile(""), &[("testns.yaml", &yaml)]);
    let m = srv.udp("missing.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative, "the kubernetes plugin answered");
    let m = srv.udp("svc1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(a_records(&m), [ip("10.0.0.1")]);
    assert_eq!(up.queries_for("missing.testns.svc.cluster.local."), 0);
    assert_eq!(up.queries_for("svc1.testns.svc.cluster.local."), 0);
    drop(srv);

    let srv = TestServer::start(&corefile("fallthrough"), &[("testns.yaml", &yaml)]);
    let m = srv.udp("missing.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(a_records(&m), [ip("192.0.2.66")], "fell through to forward");
    assert_eq!(up.queries_for("missing.testns.svc.cluster.local."), 1);
    let m = srv.udp("svc1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        a_records(&m),
        [ip("10.0.0.1")],
        "existing names never fall through"
    );
}

fn fixture() -> String {
    std::fs::read_to_string(common::repo().join("tests/fixtures/testns.yaml")).expect("fixture")
}

/// A server with cluster names, `loop`, and `forward . TO`.
fn looping_block(port: &str, to: &str) -> String {
    format!(
        ".:{port} {{
    bind 127.0.0.1
    ready 127.0.0.1:{{READY}} {{
        monitor continuously
    }}
    prometheus 127.0.0.1:{{HEALTH}}
    kubernetes cluster.local {{
        manifests testns.yaml
    }}
    loop
    forward . {to}
}}
"
    )
}

const DETECTED: &str = "forwarding loop detected";

fn wait_for_log(srv: &TestServer, needle: &str) {
    let seen = eventually(Duration::from_secs(20), || {
        srv.log().contains(needle).then_some(())
    });
    assert!(seen.is_some(), "no '{needle}' in the log:\n{}", srv.log());
}

#[test]
fn a_forward_to_itself_is_detected_and_degrades_instead_of_exiting() {
    let port = common::free_port();
    let self_addr = format!("127.0.0.1:{port}");
    let mut srv = TestServer::spawn(
        &looping_block(&port.to_string(), &self_addr),
        &[("testns.yaml", &fixture())],
    );
    srv.addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_log(&srv, DETECTED);
    let log = srv.log();
    assert_eq!(log.matches(DETECTED).count(), 1, "logged once:\n{log}");
    let line = log.lines().find(|l| l.contains(DETECTED)).expect("line");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&self_addr), "names the upstream: {line}");
    assert!(line.contains("not 127.0.0.53"), "says the fix: {line}");
    assert!(
        srv.child.try_wait().expect("wait").is_none(),
        "still running"
    );

    let exchanges = |srv: &TestServer| -> f64 {
        let (_, body) = srv.http_get(srv.health_port, "/metrics").expect("metrics");
        body.lines()
            .filter(|l| l.starts_with("coredns_proxy_request_duration_seconds_count{"))
            .filter(|l| l.contains(&format!("to=\"{self_addr}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = exchanges(&srv);
    let m = srv.udp("www.example.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(exchanges(&srv), before, "no upstream was tried");
    let m = srv.udp("svc1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        a_records(&m),
        [ip("10.0.0.1")],
        "cluster names still answered"
    );
    assert_eq!(
        srv.http_get(srv.ready_port, "/ready"),
        Some((503, "loop".to_string()))
    );
    let detected = format!(
        "clusterdns_loop_detected_total{{server=\"dns://:{port}\",upstream=\"{self_addr}\"}}"
    );
    assert_eq!(metric(&srv, &detected), Some(1.0));
}

#[test]
fn a_looping_upstream_is_dropped_and_the_real_one_keeps_answering() {
    let up = Upstream::start();
    up.answer("www.example.org.", &[ip("192.0.2.8")]);
    let port = common::free_port();
    let to = format!("127.0.0.1:{port} {}", up.to());
    let mut srv = TestServer::spawn(
        &looping_block(&port.to_string(), &to),
        &[("testns.yaml", &fixture())],
    );
    srv.addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_log(&srv, DETECTED);
    for _ in 0..20 {
        let m = srv.udp("www.example.org.", RecordType::A);
        assert_eq!(a_records(&m), [ip("192.0.2.8")]);
    }
    assert_eq!(
        up.queries_for("www.example.org."),
        20,
        "every query went to the real one"
    );
    assert_eq!(
        srv.http_get(srv.ready_port, "/ready"),
        Some((503, "loop".to_string())),
        "a loop in the configuration is reported even when names resolve"
    );
}

#[test]
fn two_servers_forwarding_to_each_other_are_detected_by_the_one_that_starts_second() {
    let a_port = common::free_port();
    // B forwards to A's port before A runs. The test holds that port until B's
    // own loop probe has come through and been answered SERVFAIL, so B is done
    // probing (no loop yet) before A exists — otherwise, on a slow machine, B's
    // probe could still be retrying when A starts and B would detect first.
    let stand_in = UdpSocket::bind(("127.0.0.1", a_port)).expect("hold A's port");
    stand_in
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let b = TestServer::spawn(
        &format!(
            ".:{{PORT}} {{\n    bind 127.0.0.1\n    loop\n    forward . 127.0.0.1:{a_port}\n}}\n"
        ),
        &[],
    );
    let probed = eventually(Duration::from_secs(20), || {
        let mut buf = [0u8; 512];
        let (n, from) = stand_in.recv_from(&mut buf).ok()?;
        let q = Message::from_vec(&buf[..n]).ok()?;
        let mut reply =
            Message::error_msg(q.metadata.id, q.metadata.op_code, ResponseCode::ServFail);
        reply.add_queries(q.queries.clone());
        let _ = stand_in.send_to(&reply.to_vec().ok()?, from);
        (q.queries.first()?.query_type() == RecordType::HINFO).then_some(())
    });
    assert!(probed.is_some(), "B's loop probe reached A's port");
    drop(stand_in);
    let mut a = TestServer::spawn(
        &looping_block(&a_port.to_string(), &b.addr.to_string()),
        &[("testns.yaml", &fixture())],
    );
    a.addr = SocketAddr::from(([127, 0, 0, 1], a_port));
    wait_for_log(&a, DETECTED);
    let line = a
        .log()
        .lines()
        .find(|l| l.contains(DETECTED))
        .map(str::to_string);
    assert!(
        line.expect("line").contains(&b.addr.to_string()),
        "A names B"
    );
    for srv in [&a, &b] {
        let m = srv.udp("www.example.org.", RecordType::A);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::ServFail,
            "{}",
            srv.addr
        );
    }
    let m = a.udp("svc1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(a_records(&m), [ip("10.0.0.1")]);
    assert_eq!(
        a.http_get(a.ready_port, "/ready"),
        Some((503, "loop".to_string()))
    );
}
