//! `forward . tls://…` through the real binary against an in-process
//! DNS-over-TLS upstream on 127.0.0.1 (tests/common/upstream.rs) with a
//! generated CA: answers, one persistent connection for many queries (counted
//! at the upstream and in the conn-cache metrics), `expire`, and refusal of an
//! upstream whose certificate does not carry the expected name.

mod common;
#[path = "common/pki.rs"]
mod pki;
#[path = "common/upstream.rs"]
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, eventually, query, udp_raw};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use pki::Pki;
use upstream::Upstream;

/// A DoT upstream presenting a certificate for `names`, signed by a fresh CA
/// written into `dir` (the CA file is `dir/ca.pem`).
fn dot_upstream(dir: &std::path::Path, names: &[&str]) -> (Upstream, Pki) {
    let pki = Pki::generate(dir, names);
    let config = clusterdns::tls::server_config(
        &pki.cert,
        &pki.key,
        None,
        clusterdns::tls::ClientAuth::NoCert,
        &[],
    )
    .expect("server tls config");
    let up = Upstream::start_tls(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    up.answer("www.example.org.", &["192.0.2.7".parse().unwrap()]);
    (up, pki)
}

/// The forward block lines verifying the upstream with `ca` as `dns.test`, then `more`.
fn verify_as_dns_test(ca: &std::path::Path, more: &str) -> String {
    format!(
        "        tls {}\n        tls_servername dns.test\n{more}",
        ca.display()
    )
}

/// Start clusterdns forwarding `.` to `tls://up` with `block` lines, and
/// wait until it answers anything.
fn start(up: &Upstream, block: &str) -> TestServer {
    let corefile = format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{{METRICS}}\n    \
         forward . tls://{} {{\n{block}\n    }}\n}}\n",
        up.addr
    );
    let mut srv = TestServer::spawn(&corefile, &[]);
    let probe = query("start.invalid.", RecordType::A);
    let up = eventually(Duration::from_secs(20), || {
        if let Ok(Some(status)) = srv.child.try_wait() {
            panic!("clusterdns exited with {status}:\n{}", srv.log());
        }
        ask(srv.addr, &probe)
    });
    assert!(up.is_some(), "no DNS answer from {}", srv.addr);
    srv
}

fn ask(addr: SocketAddr, m: &Message) -> Option<Message> {
    let reply = udp_raw(addr, &m.to_vec().expect("encode"), 3000)?;
    Message::from_vec(&reply).ok()
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

/// The sum of the /metrics samples of `family` whose labels contain `label`.
fn metric(srv: &TestServer, family: &str, label: &str) -> f64 {
    let (_, body) = srv.http_get(srv.metrics_port, "/metrics").expect("metrics");
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_hundred_queries_share_one_verified_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (up, pki) = dot_upstream(dir.path(), &["dns.test"]);
    let srv = start(&up, &verify_as_dns_test(&pki.ca, ""));
    let before = up.connections();
    for i in 0..100 {
        let m = ask(srv.addr, &query("www.example.org.", RecordType::A))
            .unwrap_or_else(|| panic!("query {i}: no answer\n{}", srv.log()));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "query {i}");
        assert_eq!(a_records(&m), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }
    let m = ask(srv.addr, &query("missing.example.org.", RecordType::A)).expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(up.tcp_queries() >= 101);
    assert_eq!(
        up.connections(),
        1,
        "one TLS connection for every query (before the loop: {before})"
    );
    let to = format!("to=\"{}\"", up.addr);
    let hits = metric(&srv, "coredns_proxy_conn_cache_hits_total", &to);
    let misses = metric(&srv, "coredns_proxy_conn_cache_misses_total", &to);
    assert_eq!(misses, 1.0, "one dial");
    assert_eq!(
        hits + misses,
        up.tcp_queries() as f64,
        "one count per query"
    );
    assert!(
        metric(
            &srv,
            "coredns_proxy_conn_cache_hits_total",
            "proto=\"tcp-tls\""
        ) >= 100.0,
        "proto label"
    );
    assert_eq!(
        metric(&srv, "coredns_forward_conn_cache_misses_total", &to),
        1.0,
        "the pre-1.11 name counts too"
    );
}

#[test]
fn concurrent_queries_are_pipelined_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (up, pki) = dot_upstream(dir.path(), &["dns.test"]);
    let srv = start(&up, &verify_as_dns_test(&pki.ca, ""));
    let addr = srv.addr;
    let answers: Vec<Option<Message>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..20)
            .map(|_| s.spawn(move || ask(addr, &query("www.example.org.", RecordType::A))))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for m in &answers {
        let m = m.as_ref().expect("an answer");
        assert_eq!(a_records(m), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }
    assert_eq!(up.connections(), 1, "a burst shares one handshake");
}

#[test]
fn without_tls_servername_the_certificate_must_name_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let (up, pki) = dot_upstream(dir.path(), &["127.0.0.1"]);
    let srv = start(&up, &format!("        tls {}", pki.ca.display()));
    let m = ask(srv.addr, &query("www.example.org.", RecordType::A)).expect("answer");
    assert_eq!(a_records(&m), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
}

#[test]
fn an_upstream_whose_certificate_does_not_match_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (up, pki) = dot_upstream(dir.path(), &["other.test"]);
    let srv = start(&up, &verify_as_dns_test(&pki.ca, ""));
    let m = ask(srv.addr, &query("www.example.org.", RecordType::A)).expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(up.connections() >= 1, "the handshake was tried");
    assert_eq!(
        up.tcp_queries(),
        0,
        "no query crossed an unverified connection"
    );

    // A certificate from another CA is refused the same way.
    let other = Pki::generate(&dir.path().join("other"), &["dns.test"]);
    let srv = start(&up, &verify_as_dns_test(&other.ca, ""));
    let m = ask(srv.addr, &query("www.example.org.", RecordType::A)).expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(up.tcp_queries(), 0);
}

#[test]
fn an_idle_connection_closes_after_expire_and_the_next_query_dials_again() {
    let dir = tempfile::tempdir().unwrap();
    let (up, pki) = dot_upstream(dir.path(), &["dns.test"]);
    let srv = start(&up, &verify_as_dns_test(&pki.ca, "        expire 1s"));
    let m = ask(srv.addr, &query("www.example.org.", RecordType::A)).expect("answer");
    assert_eq!(a_records(&m).len(), 1);
    let closed = eventually(Duration::from_secs(10), || {
        (up.closed_connections() == 1).then_some(())
    });
    assert!(closed.is_some(), "the idle connection was not closed");
    let m = ask(srv.addr, &query("www.example.org.", RecordType::A)).expect("answer");
    assert_eq!(a_records(&m).len(), 1);
    assert_eq!(up.connections(), 2, "a new connection after expire");
    let to = format!("to=\"{}\"", up.addr);
    assert_eq!(
        metric(&srv, "coredns_proxy_conn_cache_misses_total", &to),
        2.0
    );
}
