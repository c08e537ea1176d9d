//! Clients for tests: `curl` in a namespace (many URLs, one process), an
//! in-process HTTP GET, and a UDP client with a fixed source port.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use super::exec::{exec, run_inside};
use super::roles::{ENV_ROLE_COUNT, ENV_ROLE_SOURCE_PORT, ENV_ROLE_TARGET, UDP_ASK_ROLE};

/// One `curl` in `ns` fetching every URL in turn (a new connection each: the
/// server closes), `--max-time 2 --connect-timeout 1` per transfer. Per URL:
/// Ok(body) on HTTP 200, else Err(why).
pub fn curl(ns: &str, urls: &[String]) -> Vec<Result<String, String>> {
    let mut args = vec![
        "-sS",
        "--max-time",
        "2",
        "--connect-timeout",
        "1",
        "-w",
        "\t%{http_code}\t%{exitcode}\n",
    ];
    args.extend(urls.iter().map(String::as_str));
    let out = exec(ns, "curl", &args);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut results: Vec<Result<String, String>> = text
        .lines()
        .map(|line| {
            let mut f = line.rsplitn(3, '\t');
            let exit = f.next().unwrap_or_default();
            let code = f.next().unwrap_or_default();
            let body = f.next().unwrap_or_default();
            match (code, exit) {
                ("200", "0") => Ok(body.to_string()),
                _ => Err(format!("http {code}, curl exit {exit} {body}")),
            }
        })
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    results.resize(urls.len(), Err(format!("no result from curl: {stderr}")));
    results
}

/// The same URL `n` times with one curl in `ns`.
pub fn curl_repeat(ns: &str, url: &str, n: usize) -> Vec<Result<String, String>> {
    curl(ns, &vec![url.to_string(); n])
}

/// How often each body was answered; failures under the key "(failed)".
pub fn tally(results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        let key = r.clone().unwrap_or_else(|_| "(failed)".into());
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// HTTP GET `/` from this process (e.g. an inner test in the node namespace):
/// the body on status 200. A new connection, 1 s to connect, 2 s to answer.
pub fn http_get_body(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    match head.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_string()),
        other => Err(format!("status {other:?}")),
    }
}

/// From namespace `ns`, send `count` datagrams to `target` from one socket
/// (bound to `source_port`, or any port if None), waiting up to 1 s for each
/// reply: the reply text, or None for no reply. One process, so one source
/// port; call again with the same port for "the same client later".
pub fn udp_ask(
    ns: &str,
    target: SocketAddrV4,
    source_port: Option<u16>,
    count: usize,
) -> Vec<Option<String>> {
    let mut env = vec![
        (ENV_ROLE_TARGET.to_string(), target.to_string()),
        (ENV_ROLE_COUNT.to_string(), count.to_string()),
    ];
    if let Some(port) = source_port {
        env.push((ENV_ROLE_SOURCE_PORT.to_string(), port.to_string()));
    }
    let limit = Duration::from_secs(5) + Duration::from_secs(2) * u32::try_from(count).unwrap_or(0);
    let inside = run_inside(ns, UDP_ASK_ROLE, &env, limit);
    assert!(
        inside.passed(),
        "udp_ask in {ns} failed ({:?}):\n{}",
        inside.status,
        inside.output
    );
    inside
        .output
        .lines()
        .filter_map(|l| {
            // libtest's "test NAME ... " may precede the first line.
            if let Some((_, text)) = l.split_once("udp_ask reply ") {
                Some(Some(text.to_string()))
            } else {
                l.ends_with("udp_ask timeout").then_some(None)
            }
        })
        .collect()
}
