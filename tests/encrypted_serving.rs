//! `tls://` (DNS over TLS) and `https://` (DNS over HTTPS) server blocks
//! through the real binary, asked by real clients: BIND's `dig +tls` and
//! `dig +https` (POST and GET), verifying the server against a CA generated
//! for the test. Also: HTTP-level refusals, the metrics' `server`/`proto`
//! labels, and a reload presenting renewed certificate files.

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TestServer, dig_section, eventually, free_port, require};
use pki::Pki;

const NGINX: &str = "nginx-service.default.svc.cluster.local.";
const NGINX_A: &str = "nginx-service.default.svc.cluster.local. 30 IN A 10.96.0.100";

/// The Corefile: a tls:// block on `{PORT}`, an https:// block on `https`,
/// both over the demo cluster, with metrics and a 1 s reload check.
fn corefile(https: u16, comment: &str) -> String {
    format!(
        "# {comment}\n\
         tls://cluster.local:{{PORT}} {{\n    bind 127.0.0.1\n    tls cert.pem key.pem\n    \
         prometheus 127.0.0.1:{{METRICS}}\n    reload 2s 1s\n    \
         kubernetes cluster.local {{\n        manifests demo-cluster.yaml\n        ttl 30\n    }}\n}}\n\
         https://cluster.local:{https} {{\n    bind 127.0.0.1\n    tls cert.pem key.pem\n    \
         prometheus 127.0.0.1:{{METRICS}}\n    \
         kubernetes cluster.local {{\n        manifests demo-cluster.yaml\n        ttl 30\n    }}\n}}\n"
    )
}

/// Copy a generated certificate and key into the server's directory (a renewal).
fn install(pki: &Pki, dir: &Path) {
    std::fs::copy(&pki.cert, dir.join("cert.pem")).unwrap();
    std::fs::copy(&pki.key, dir.join("key.pem")).unwrap();
}

/// `dig` at 127.0.0.1:`port` with `args`, verifying the server with `ca` as
/// `dns.test`; stdout when dig succeeded.
fn try_dig(dig: &Path, port: u16, ca: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(dig)
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .arg(format!("+tls-ca={}", ca.display()))
        .arg("+tls-hostname=dns.test")
        .args(args)
        .output()
        .expect("run dig");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && stdout.contains("status: NOERROR")).then_some(stdout)
}

/// The answer section of the first NOERROR answer within 20 s.
fn dig_answer(srv: &TestServer, dig: &Path, port: u16, ca: &Path, args: &[&str]) -> Vec<String> {
    let out = eventually(Duration::from_secs(20), || try_dig(dig, port, ca, args))
        .unwrap_or_else(|| panic!("no answer to dig {args:?} on port {port}:\n{}", srv.log()));
    dig_section(&out, "ANSWER")
}

struct Served {
    srv: TestServer,
    https: u16,
    dir: tempfile::TempDir,
    pki: Pki,
}

fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("a"), &["dns.test"]);
    let yaml = std::fs::read_to_string(common::repo().join("config/demo-cluster.yaml")).unwrap();
    let cert = std::fs::read_to_string(&pki.cert).unwrap();
    let key = std::fs::read_to_string(&pki.key).unwrap();
    let https = free_port();
    let srv = TestServer::spawn(
        &corefile(https, "first"),
        &[
            ("demo-cluster.yaml", &yaml),
            ("cert.pem", &cert),
            ("key.pem", &key),
        ],
    );
    Served {
        srv,
        https,
        dir,
        pki,
    }
}

#[test]
fn dig_gets_cluster_answers_over_tls_and_https_verified_with_the_generated_ca() {
    let Some(dig) = require("dig") else { return };
    let s = serve();
    let port = s.srv.addr.port();
    assert_eq!(
        dig_answer(&s.srv, &dig, port, &s.pki.ca, &["+tls", NGINX, "A"]),
        [NGINX_A],
        "dig +tls"
    );
    assert_eq!(
        dig_answer(&s.srv, &dig, s.https, &s.pki.ca, &["+https", NGINX, "A"]),
        [NGINX_A],
        "dig +https (POST)"
    );
    assert_eq!(
        dig_answer(
            &s.srv,
            &dig,
            s.https,
            &s.pki.ca,
            &["+https-get", NGINX, "A"]
        ),
        [NGINX_A],
        "dig +https-get"
    );
    let srv = dig_answer(
        &s.srv,
        &dig,
        port,
        &s.pki.ca,
        &[
            "+tls",
            "_service-port._tcp.nginx-service.default.svc.cluster.local",
            "SRV",
        ],
    );
    assert_eq!(srv.len(), 1, "{srv:?}");

    // Another CA does not vouch for the server: dig refuses it.
    let other = Pki::generate(&s.dir.path().join("other"), &["dns.test"]);
    assert!(try_dig(&dig, port, &other.ca, &["+tls", NGINX, "A"]).is_none());
    assert!(try_dig(&dig, s.https, &other.ca, &["+https", NGINX, "A"]).is_none());

    // The same chain's metrics, labelled with the block's scheme and proto tcp.
    let (_, body) = s
        .srv
        .http_get(s.srv.metrics_port, "/metrics")
        .expect("metrics");
    for server in [format!("tls://:{port}"), format!("https://:{}", s.https)] {
        let line = body
            .lines()
            .find(|l| {
                l.starts_with("coredns_dns_requests_total{")
                    && l.contains(&format!("server=\"{server}\""))
                    && l.contains("proto=\"tcp\"")
                    && l.contains("type=\"A\"")
            })
            .unwrap_or_else(|| panic!("no A requests for {server}:\n{body}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1.0, "{line}");
    }
}

#[test]
fn a_reload_presents_the_renewed_certificate() {
    let Some(dig) = require("dig") else { return };
    let s = serve();
    let port = s.srv.addr.port();
    assert_eq!(
        dig_answer(&s.srv, &dig, port, &s.pki.ca, &["+tls", NGINX, "A"]),
        [NGINX_A]
    );
    let renewed = Pki::generate(&s.dir.path().join("b"), &["dns.test"]);
    install(&renewed, s.srv.dir.path());
    // Any edit of the Corefile makes `reload` re-read everything, certificates too.
    let text = corefile(s.https, "renewed")
        .replace("{PORT}", &port.to_string())
        .replace("{METRICS}", &s.srv.metrics_port.to_string());
    common::write(&s.srv.path("Corefile"), &text);
    assert_eq!(
        dig_answer(&s.srv, &dig, port, &renewed.ca, &["+tls", NGINX, "A"]),
        [NGINX_A],
        "the renewed certificate after the reload:\n{}",
        s.srv.log()
    );
    assert_eq!(
        dig_answer(&s.srv, &dig, s.https, &renewed.ca, &["+https", NGINX, "A"]),
        [NGINX_A]
    );
    assert!(
        try_dig(&dig, port, &s.pki.ca, &["+tls", NGINX, "A"]).is_none(),
        "the old certificate is no longer presented"
    );

    // A broken key fails the next reload, which keeps the running certificate.
    common::write(
        &s.srv.path("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nbroken\n",
    );
    common::write(
        &s.srv.path("Corefile"),
        &text.replace("# renewed", "# broken"),
    );
    let failed = eventually(Duration::from_secs(20), || {
        let (_, body) = s.srv.http_get(s.srv.metrics_port, "/metrics")?;
        body.lines()
            .any(|l| l == "coredns_reload_failed_total 1")
            .then_some(())
    });
    assert!(
        failed.is_some(),
        "the reload did not fail:\n{}",
        s.srv.log()
    );
    assert!(
        s.srv.log().contains("key.pem"),
        "the error names the file:\n{}",
        s.srv.log()
    );
    assert_eq!(
        dig_answer(&s.srv, &dig, port, &renewed.ca, &["+tls", NGINX, "A"]),
        [NGINX_A]
    );
}

/// One HTTP/1.1 request over TLS to 127.0.0.1:`port`; the response's status
/// code and body.
fn https_request(port: u16, ca: &Path, request: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let config = clusterdns::tls::client_config(None, Some(ca), &[b"http/1.1"]).unwrap();
    let name = rustls::pki_types::ServerName::try_from("dns.test").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).unwrap();
    let mut raw = Vec::new();
    // The server closes after answering (Connection: close); a TLS close
    // without close_notify still leaves the bytes read so far.
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => raw[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

#[test]
fn doh_refuses_what_is_not_a_dns_query_with_the_http_status() {
    let Some(dig) = require("dig") else { return };
    let s = serve();
    // Started once dig gets an answer.
    dig_answer(&s.srv, &dig, s.https, &s.pki.ca, &["+https", NGINX, "A"]);
    let req = |head: &str, body: &[u8]| {
        let mut r = head.replace('\n', "\r\n").into_bytes();
        r.extend_from_slice(body);
        https_request(s.https, &s.pki.ca, &r)
    };
    let get = |target: &str| {
        req(
            &format!("GET {target} HTTP/1.1\nHost: dns.test\nConnection: close\n\n"),
            b"",
        )
        .0
    };
    assert_eq!(get("/other"), 404);
    assert_eq!(get("/dns-query"), 400, "no dns parameter");
    assert_eq!(get("/dns-query?dns=%%%"), 400, "not base64url");
    // A GET with a real query (RFC 8484's example, www.example.com A):
    // answered by the chain; outside cluster.local that is REFUSED, as DNS.
    let (status, body) = req(
        "GET /dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB HTTP/1.1\n\
         Host: dns.test\nConnection: close\n\n",
        b"",
    );
    assert_eq!(status, 200);
    let m = hickory_proto::op::Message::from_vec(&body).expect("a DNS message");
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::Refused
    );
    let post = |ctype: &str, body: &[u8]| {
        req(
            &format!(
                "POST /dns-query HTTP/1.1\nHost: dns.test\nContent-Type: {ctype}\n\
                 Content-Length: {}\nConnection: close\n\n",
                body.len()
            ),
            body,
        )
        .0
    };
    let query = common::query(NGINX, hickory_proto::rr::RecordType::A)
        .to_vec()
        .unwrap();
    assert_eq!(post("text/plain", &query), 415);
    assert_eq!(
        post("application/dns-message", b"\x00\x01"),
        400,
        "too short for a header"
    );
    assert_eq!(post("application/dns-message", &query), 200);
    assert_eq!(
        req(
            "DELETE /dns-query HTTP/1.1\nHost: dns.test\nConnection: close\n\n",
            b""
        )
        .0,
        405
    );
}

#[test]
fn an_idle_doh_connection_is_closed_after_the_idle_timeout() {
    use std::io::{Read, Write};
    let Some(dig) = require("dig") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("a"), &["dns.test"]);
    let cert = std::fs::read_to_string(&pki.cert).unwrap();
    let key = std::fs::read_to_string(&pki.key).unwrap();
    let srv = TestServer::spawn(
        "https://.:{PORT} {\n    bind 127.0.0.1\n    tls cert.pem key.pem\n    \
         timeouts {\n        read 20s\n        idle 1s\n    }\n    whoami\n}\n",
        &[("cert.pem", &cert), ("key.pem", &key)],
    );
    let port = srv.addr.port();
    // Started once dig gets an answer.
    let up = eventually(Duration::from_secs(20), || {
        try_dig(&dig, port, &pki.ca, &["+https", "example.org", "A"])
    });
    assert!(up.is_some(), "no DoH answer:\n{}", srv.log());

    let config = clusterdns::tls::client_config(None, Some(&pki.ca), &[b"http/1.1"]).unwrap();
    let name = rustls::pki_types::ServerName::try_from("dns.test").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let q = common::query("example.org.", hickory_proto::rr::RecordType::A)
        .to_vec()
        .unwrap();
    let mut req = format!(
        "POST /dns-query HTTP/1.1\r\nHost: dns.test\r\nContent-Type: application/dns-message\r\n\
         Content-Length: {}\r\n\r\n",
        q.len()
    )
    .into_bytes();
    req.extend_from_slice(&q);
    tls.write_all(&req).unwrap();
    // The keep-alive response arrives; then, with nothing more asked, the
    // server ends the connection (EOF or a TLS close) before our 10 s read
    // timeout: `idle 1s` does it, not `read 20s` (hyper's wait for the next
    // request head), which would come after it.
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = loop {
        match tls.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break false;
            }
            // A reset or a close without close_notify also ends it.
            Err(_) => break true,
        }
    };
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        ended,
        "the idle connection was still open after {:?}",
        started.elapsed()
    );
}
