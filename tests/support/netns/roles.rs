//! Roles: helper processes written in Rust (the pods' serve_hostname, a UDP
//! client) that run as ignored tests of the current test binary, re-executed
//! inside a namespace, so `cargo test --test NAME` always builds them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::SERVE_HOSTNAME_PORT;

/// Environment variables of the roles.
pub(super) const ENV_ROLE_NAME: &str = "CLUSTERDNS_NETNS_ROLE_NAME";
pub(super) const ENV_ROLE_TCP: &str = "CLUSTERDNS_NETNS_ROLE_TCP";
pub(super) const ENV_ROLE_UDP: &str = "CLUSTERDNS_NETNS_ROLE_UDP";
pub(super) const ENV_ROLE_TARGET: &str = "CLUSTERDNS_NETNS_ROLE_TARGET";
pub(super) const ENV_ROLE_SOURCE_PORT: &str = "CLUSTERDNS_NETNS_ROLE_SOURCE_PORT";
pub(super) const ENV_ROLE_COUNT: &str = "CLUSTERDNS_NETNS_ROLE_COUNT";

/// Test path of the serve_hostname role defined by [`netns_roles!`].
pub const SERVE_HOSTNAME_ROLE: &str = "netns_roles::serve_hostname";
/// Test path of the UDP client role defined by [`netns_roles!`].
pub const UDP_ASK_ROLE: &str = "netns_roles::udp_ask";

/// How long a role process lives at most, whatever happens to the test.
const ROLE_MAX_LIFE: Duration = Duration::from_secs(600);
/// Bound on concurrent HTTP connections a serve_hostname handles.
const MAX_CONNECTIONS: usize = 64;

/// Defines the roles ([`SERVE_HOSTNAME_ROLE`], [`UDP_ASK_ROLE`]) as ignored
/// tests. Invoke once at the crate root of every test file that uses
/// [`super::Topology::serve_hostname`] or [`super::udp_ask`]: `support::netns::netns_roles!();`
#[allow(unused_macros)]
macro_rules! netns_roles {
    () => {
        mod netns_roles {
            #[test]
            #[ignore = "a helper process started by support::netns inside a pod namespace"]
            fn serve_hostname() {
                crate::support::netns::role_serve_hostname();
            }

            #[test]
            #[ignore = "a helper process started by support::netns::udp_ask inside a namespace"]
            fn udp_ask() {
                crate::support::netns::role_udp_ask();
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use netns_roles;

fn role_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn role_port(key: &str) -> Option<u16> {
    role_env(key).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v:?}: not a port"))
    })
}

/// Exit when our stdin closes (the test that spawned us died) or after
/// [`ROLE_MAX_LIFE`], whichever is first.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(ROLE_MAX_LIFE);
        std::process::exit(0);
    });
}

/// serve_hostname (the role of [`SERVE_HOSTNAME_ROLE`]): answers every HTTP
/// request on TCP `$ROLE_TCP` with `$ROLE_NAME`, and, if `$ROLE_UDP` is set,
/// every UDP datagram on that port with `$ROLE_NAME`. Runs until killed.
pub fn role_serve_hostname() {
    let Some(name) = role_env(ENV_ROLE_NAME) else {
        eprintln!(
            "\n!!! SKIPPED: a helper role, run by support::netns inside a pod namespace !!!\n"
        );
        return;
    };
    exit_with_parent();
    if let Some(port) = role_port(ENV_ROLE_UDP) {
        let socket =
            UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind UDP {port}: {e}"));
        let name = name.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(name.as_bytes(), from);
                }
            }
        });
    }
    let port = role_port(ENV_ROLE_TCP).unwrap_or(SERVE_HOSTNAME_PORT);
    let listener =
        TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind TCP {port}: {e}"));
    eprintln!("serve_hostname {name}: HTTP on {port}");
    static ACTIVE: AtomicUsize = AtomicUsize::new(0);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if ACTIVE.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closed without an answer
        }
        let name = name.clone();
        std::thread::spawn(move || {
            answer_http(conn, &name);
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Read one request head (at most 8 KiB, 2 s) and answer `name`, then close.
fn answer_http(mut conn: TcpStream, name: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
        name.len()
    );
}

/// The UDP client (the role of [`UDP_ASK_ROLE`]): prints `udp_ask reply <text>`
/// or `udp_ask timeout` per datagram.
pub fn role_udp_ask() {
    let Some(target) = role_env(ENV_ROLE_TARGET) else {
        eprintln!("\n!!! SKIPPED: a helper role, run by support::netns::udp_ask !!!\n");
        return;
    };
    exit_with_parent();
    let target: SocketAddr = target
        .parse()
        .unwrap_or_else(|_| panic!("{ENV_ROLE_TARGET}={target:?}: not an address"));
    let count: usize = role_env(ENV_ROLE_COUNT)
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let port = role_port(ENV_ROLE_SOURCE_PORT).unwrap_or(0);
    let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let mut buf = [0u8; 2048];
    for i in 0..count {
        socket
            .send_to(format!("ask {i}").as_bytes(), target)
            .unwrap_or_else(|e| panic!("send to {target}: {e}"));
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => println!("udp_ask reply {}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => println!("udp_ask timeout"),
        }
    }
}
