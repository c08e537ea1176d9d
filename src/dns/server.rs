//! Listeners: UDP and TCP sockets per server address, registered with hickory-server.
//!
//! All server blocks that share a port share its sockets (as in CoreDNS); the
//! [`Handler`] routes between them by zone. Sockets are bound before anything
//! is spawned so that a port conflict is a startup error, not a log line.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use crate::dns::Handler;

/// How long an idle TCP connection is kept open.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-connection outgoing response buffer (messages, not bytes).
const TCP_RESPONSE_BUFFER: usize = 32;

/// Errors while opening listeners.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket could not be bound.
    #[error("listen {proto} {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One listening address and the handler for it.
pub struct Listener {
    /// Address to bind (UDP and TCP).
    pub addr: SocketAddr,
    /// Routes queries to server blocks.
    pub handler: Handler,
}

fn is_v6_wildcard(addr: SocketAddr) -> bool {
    addr.is_ipv6() && addr.ip().is_unspecified()
}

/// A socket for `addr`; IPv6 sockets are v6-only so that the IPv4 and IPv6
/// wildcards can both be bound (and sources stay plain IPv4 addresses).
fn socket(addr: SocketAddr, ty: Type) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if ty == Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(socket(addr, Type::DGRAM)?.into())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket(addr, Type::STREAM)?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// Bind every listener (UDP + TCP); nothing is answered until [`Bound::serve`].
pub fn bind(listeners: Vec<Listener>) -> Result<Bound, Error> {
    let mut sockets = Vec::new();
    let mut addrs = Vec::new();
    for l in listeners {
        let udp = match bind_udp(l.addr) {
            Ok(s) => s,
            // The IPv6 wildcard is best effort: hosts without IPv6 serve IPv4 only.
            Err(e) if is_v6_wildcard(l.addr) => {
                tracing::debug!(error = %e, "no IPv6 wildcard listener");
                continue;
            }
            Err(source) => {
                return Err(Error::Bind {
                    proto: "udp",
                    addr: l.addr,
                    source,
                });
            }
        };
        let udp_addr = udp.local_addr().map_err(|source| Error::Bind {
            proto: "udp",
            addr: l.addr,
            source,
        })?;
        // Port 0 (tests) means: TCP on the port UDP got.
        let tcp_addr = SocketAddr::new(l.addr.ip(), udp_addr.port());
        let tcp = bind_tcp(tcp_addr).map_err(|source| Error::Bind {
            proto: "tcp",
            addr: tcp_addr,
            source,
        })?;
        sockets.push((udp, tcp, l.handler));
        addrs.push(udp_addr);
    }
    Ok(Bound { sockets, addrs })
}

/// Sockets bound but not yet answering: binding early makes a port conflict a
/// startup error, serving later lets start-up wait for data first.
pub struct Bound {
    sockets: Vec<(UdpSocket, TcpListener, Handler)>,
    addrs: Vec<SocketAddr>,
}

impl Bound {
    /// The bound addresses (the real port when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Start answering on every socket.
    pub fn serve(self) -> DnsServers {
        let mut servers = Vec::new();
        for (udp, tcp, handler) in self.sockets {
            let mut server = Server::new(handler);
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
            servers.push(server);
        }
        for a in &self.addrs {
            info!(addr = %a, "serving DNS on udp and tcp");
        }
        DnsServers {
            servers,
            addrs: self.addrs,
        }
    }
}

/// The running DNS servers.
pub struct DnsServers {
    servers: Vec<Server<Handler>>,
    addrs: Vec<SocketAddr>,
}

impl DnsServers {
    /// The bound addresses (the real port when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stop accepting queries and wait for in-flight ones to finish.
    pub async fn shutdown(mut self) {
        for s in &mut self.servers {
            if let Err(error) = s.shutdown_gracefully().await {
                tracing::warn!(%error, "dns server shutdown");
            }
        }
    }
}
