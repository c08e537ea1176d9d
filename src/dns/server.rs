//! Listeners: UDP and TCP sockets per server address, registered with hickory-server.
//!
//! All server blocks that share an address share its sockets (as in CoreDNS);
//! the [`Handler`] routes between them by zone. Binding ([`DnsListeners::prepare`])
//! is separate from switching ([`DnsListeners::commit`]): a port conflict is an
//! error before anything changes, at start-up and on reload alike, and a reload
//! keeps the sockets of addresses that stay (CoreDNS closes and reopens them).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::info;

use std::collections::BTreeMap;

use crate::dns::{Handler, Route};

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

/// Routes per listening address: what a configuration asks to serve.
pub type RouteTable = BTreeMap<SocketAddr, Vec<Route>>;

/// The DNS servers of the process, one per listening address, kept across
/// reloads: an address that stays in the configuration keeps its sockets and
/// only has its routing table swapped.
#[derive(Default)]
pub struct DnsListeners {
    /// Written only by [`DnsListeners::commit`].
    running: BTreeMap<SocketAddr, Running>,
}

struct Running {
    handler: Handler,
    /// hickory-server, for TCP.
    server: Server<Handler>,
    /// Stops this address's UDP loops.
    udp: CancellationToken,
    /// The bound address (the real port when 0 was asked for).
    local: SocketAddr,
}

/// A configuration's listeners, bound but not yet switched to.
pub struct Prepared {
    routes: RouteTable,
    fresh: BTreeMap<SocketAddr, (Vec<UdpSocket>, TcpListener, SocketAddr)>,
}

impl Prepared {
    /// The addresses of the sockets opened for this configuration.
    pub fn new_addrs(&self) -> Vec<SocketAddr> {
        self.fresh.values().map(|(_, _, a)| *a).collect()
    }
}

impl DnsListeners {
    /// Bind sockets for the addresses not served yet. Nothing changes for
    /// running listeners; a bind failure leaves everything as it was.
    pub fn prepare(&self, routes: RouteTable) -> Result<Prepared, Error> {
        let mut fresh = BTreeMap::new();
        for addr in routes.keys() {
            if self.running.contains_key(addr) {
                continue;
            }
            if let Some(bound) = bind_pair(*addr)? {
                fresh.insert(*addr, bound);
            }
        }
        Ok(Prepared { routes, fresh })
    }

    /// Switch to a prepared configuration: swap tables of kept listeners,
    /// start new ones, drain the ones no longer configured.
    pub fn commit(&mut self, prepared: Prepared) {
        let Prepared { mut routes, fresh } = prepared;
        let gone: Vec<SocketAddr> = self
            .running
            .keys()
            .filter(|a| !routes.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(mut r) = self.running.remove(&addr) {
                info!(addr = %r.local, "no longer serving DNS");
                r.udp.cancel();
                tokio::spawn(async move {
                    let _ = r.server.shutdown_gracefully().await;
                });
            }
        }
        for (addr, r) in &self.running {
            if let Some(rs) = routes.remove(addr) {
                r.handler.set(rs);
            }
        }
        for (addr, (udp, tcp, local)) in fresh {
            let handler = Handler::new(routes.remove(&addr).unwrap_or_default());
            let udp_token = CancellationToken::new();
            for socket in udp {
                tokio::spawn(super::udp::serve(
                    socket,
                    handler.clone(),
                    udp_token.clone(),
                ));
            }
            let mut server = Server::new(handler.clone());
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
            info!(addr = %local, "serving DNS on udp and tcp");
            self.running.insert(
                addr,
                Running {
                    handler,
                    server,
                    udp: udp_token,
                    local,
                },
            );
        }
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.running.values().map(|r| r.local).collect()
    }

    /// Stop accepting queries and wait for in-flight ones to finish.
    pub async fn shutdown(&mut self) {
        for (_, mut r) in std::mem::take(&mut self.running) {
            r.udp.cancel();
            if let Err(error) = r.server.shutdown_gracefully().await {
                tracing::warn!(%error, "dns server shutdown");
            }
        }
    }
}

/// Bind UDP and TCP on `addr` (TCP on the port UDP got, for port 0).
/// `None` for an IPv6 wildcard on a host without IPv6.
fn bind_pair(addr: SocketAddr) -> Result<Option<(Vec<UdpSocket>, TcpListener, SocketAddr)>, Error> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let udp = match super::udp::bind(addr, workers) {
        Ok(s) => s,
        Err(e) if is_v6_wildcard(addr) => {
            tracing::debug!(error = %e, "no IPv6 wildcard listener");
            return Ok(None);
        }
        Err(source) => {
            return Err(Error::Bind {
                proto: "udp",
                addr,
                source,
            });
        }
    };
    let first = udp.first().ok_or_else(|| Error::Bind {
        proto: "udp",
        addr,
        source: std::io::Error::other("no socket"),
    })?;
    let local = first.local_addr().map_err(|source| Error::Bind {
        proto: "udp",
        addr,
        source,
    })?;
    let tcp_addr = SocketAddr::new(addr.ip(), local.port());
    let tcp = bind_tcp(tcp_addr).map_err(|source| Error::Bind {
        proto: "tcp",
        addr: tcp_addr,
        source,
    })?;
    Ok(Some((udp, tcp, local)))
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

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket(addr, Type::STREAM)?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}
