//! Listeners: UDP and TCP sockets per server address, each served by our own
//! loops ([`super::udp`], [`super::tcp`]); a `tls://` address gets only the
//! TCP loop behind a TLS handshake, an `https://` address the DNS-over-HTTPS
//! server ([`super::https`]).
//!
//! A TLS address keeps its sockets across reloads like any other; its
//! certificate is swapped in with the routing table, so connections accepted
//! after a reload present the certificate the reload read. An address cannot
//! change transport on reload (its sockets are bound for one): that reload
//! fails and the running configuration stays.
//!
//! All server blocks that share an address share its sockets (as in CoreDNS);
//! the [`Handler`] routes between them by zone. Binding ([`DnsListeners::prepare`])
//! is separate from switching ([`DnsListeners::commit`]): a port conflict is an
//! error before anything changes, at start-up and on reload alike, and a reload
//! keeps the sockets of addresses that stay (CoreDNS closes and reopens them).
//!
//! Every loop and query in flight runs on one [`TaskTracker`]: stopping an
//! address cancels its loops (no new queries) while the queries already
//! received are still answered, and [`DnsListeners::shutdown`] waits for them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::dns::tcp::TcpLimits;
use crate::dns::{Handler, Route};

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
    /// A reload asks an address to change transport.
    #[error(
        "{addr} is served as {was}; it cannot switch to {now} on reload (restart to change it)"
    )]
    Transport {
        /// The address.
        addr: SocketAddr,
        /// Its transport now.
        was: &'static str,
        /// The one asked for.
        now: &'static str,
    },
}

/// How an address is served.
#[derive(Clone)]
pub enum Listen {
    /// Plain DNS over UDP and TCP.
    Dns,
    /// DNS over TLS (RFC 7858; TCP only), presenting this certificate.
    Tls(Arc<rustls::ServerConfig>),
    /// DNS over HTTPS (RFC 8484; TCP only), presenting this certificate.
    Https(Arc<rustls::ServerConfig>),
}

impl Listen {
    fn name(&self) -> &'static str {
        match self {
            Listen::Dns => "dns://",
            Listen::Tls(_) => "tls://",
            Listen::Https(_) => "https://",
        }
    }

    fn tls(&self) -> Option<&Arc<rustls::ServerConfig>> {
        match self {
            Listen::Dns => None,
            Listen::Tls(c) | Listen::Https(c) => Some(c),
        }
    }
}

/// The certificate a TLS listener presents, swapped on reload.
pub type TlsSwap = Arc<ArcSwap<rustls::ServerConfig>>;

/// Routes per listening address: what a configuration asks to serve.
pub type RouteTable = BTreeMap<SocketAddr, Vec<Route>>;

/// The DNS servers of the process, one per listening address, kept across
/// reloads: an address that stays in the configuration keeps its sockets and
/// only has its routing table swapped.
#[derive(Default)]
pub struct DnsListeners {
    /// Written only by [`DnsListeners::commit`].
    running: BTreeMap<SocketAddr, Running>,
    /// Every loop and every query in flight, of all addresses (also of
    /// addresses already retired, whose queries are still being answered).
    tasks: TaskTracker,
}

struct Running {
    handler: Handler,
    /// Its transport (`dns://`, `tls://`, `https://`).
    kind: &'static str,
    /// The certificate of a TLS listener.
    tls: Option<TlsSwap>,
    /// Stops this address's UDP and TCP loops (queries received still get answers).
    stop: CancellationToken,
    /// The bound address (the real port when 0 was asked for).
    local: SocketAddr,
}

/// A configuration's listeners, bound but not yet switched to.
pub struct Prepared {
    routes: RouteTable,
    tcp_limits: BTreeMap<SocketAddr, TcpLimits>,
    listen: BTreeMap<SocketAddr, Listen>,
    fresh: BTreeMap<SocketAddr, (Vec<UdpSocket>, TcpListener, SocketAddr)>,
}

impl Prepared {
    /// The addresses of the sockets opened for this configuration.
    pub fn new_addrs(&self) -> Vec<SocketAddr> {
        self.fresh.values().map(|(_, _, a)| *a).collect()
    }
}

/// Settings of a configuration's listeners beyond its routes.
#[derive(Default)]
pub struct ListenSettings {
    /// TCP limits per address (defaults for addresses not in it).
    pub tcp_limits: BTreeMap<SocketAddr, TcpLimits>,
    /// Transport per address (plain DNS for addresses not in it).
    pub listen: BTreeMap<SocketAddr, Listen>,
}

impl DnsListeners {
    /// Bind sockets for the addresses not served yet, as `settings.listen`
    /// says (UDP and TCP for plain DNS, TCP only for TLS and HTTPS); their TCP
    /// connections will be held to `settings.tcp_limits`. Nothing changes for
    /// running listeners (they keep the limits they started with); a bind
    /// failure, or a running address asked to change transport, leaves
    /// everything as it was.
    pub fn prepare(&self, routes: RouteTable, settings: ListenSettings) -> Result<Prepared, Error> {
        let ListenSettings { tcp_limits, listen } = settings;
        let mut fresh = BTreeMap::new();
        for addr in routes.keys() {
            let kind = listen.get(addr).unwrap_or(&Listen::Dns);
            if let Some(r) = self.running.get(addr) {
                if r.kind != kind.name() {
                    return Err(Error::Transport {
                        addr: *addr,
                        was: r.kind,
                        now: kind.name(),
                    });
                }
                continue;
            }
            let bound = match kind {
                Listen::Dns => bind_pair(*addr)?,
                Listen::Tls(_) | Listen::Https(_) => bind_stream(*addr)?,
            };
            if let Some(bound) = bound {
                fresh.insert(*addr, bound);
            }
        }
        Ok(Prepared {
            routes,
            tcp_limits,
            listen,
            fresh,
        })
    }

    /// Switch to a prepared configuration: swap tables of kept listeners,
    /// start new ones, drain the ones no longer configured.
    pub fn commit(&mut self, prepared: Prepared) {
        let Prepared {
            mut routes,
            tcp_limits,
            listen,
            fresh,
        } = prepared;
        let gone: Vec<SocketAddr> = self
            .running
            .keys()
            .filter(|a| !routes.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(r) = self.running.remove(&addr) {
                info!(addr = %r.local, "no longer serving DNS");
                r.stop.cancel();
            }
        }
        for (addr, r) in &self.running {
            if let Some(rs) = routes.remove(addr) {
                r.handler.set(rs);
            }
            if let (Some(swap), Some(config)) = (&r.tls, listen.get(addr).and_then(Listen::tls)) {
                swap.store(config.clone());
            }
        }
        for (addr, (udp, tcp, local)) in fresh {
            let handler = Handler::new(routes.remove(&addr).unwrap_or_default());
            let stop = CancellationToken::new();
            let kind = listen.get(&addr).cloned().unwrap_or(Listen::Dns);
            let limits = tcp_limits.get(&addr).copied().unwrap_or_default();
            let tls: Option<TlsSwap> = kind.tls().map(|c| Arc::new(ArcSwap::new(c.clone())));
            match (&kind, &tls) {
                (Listen::Https(_), Some(swap)) => {
                    self.tasks.spawn(super::https::serve(
                        tcp,
                        swap.clone(),
                        handler.clone(),
                        limits,
                        stop.clone(),
                        self.tasks.clone(),
                    ));
                    info!(addr = %local, "serving DNS over HTTPS");
                }
                _ => {
                    // The listener's memo budget, shared out among its workers.
                    let memo_budget = super::memo::BUDGET / udp.len().max(1);
                    for socket in udp {
                        self.tasks.spawn(super::udp::serve(
                            socket,
                            memo_budget,
                            handler.clone(),
                            stop.clone(),
                            self.tasks.clone(),
                        ));
                    }
                    self.tasks.spawn(super::tcp::serve(
                        tcp,
                        tls.clone(),
                        handler.clone(),
                        limits,
                        stop.clone(),
                        self.tasks.clone(),
                    ));
                    info!(addr = %local, transport = kind.name(), "serving DNS");
                }
            }
            self.running.insert(
                addr,
                Running {
                    handler,
                    kind: kind.name(),
                    tls,
                    stop,
                    local,
                },
            );
        }
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.running.values().map(|r| r.local).collect()
    }

    /// Stop accepting queries, then wait until every query already received
    /// has been answered (the caller bounds the wait).
    pub async fn shutdown(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.stop.cancel();
        }
        self.tasks.close();
        self.tasks.wait().await;
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

/// Bind only TCP on `addr` (TLS and HTTPS); `None` for an IPv6 wildcard on a
/// host without IPv6.
fn bind_stream(
    addr: SocketAddr,
) -> Result<Option<(Vec<UdpSocket>, TcpListener, SocketAddr)>, Error> {
    let tcp = match bind_tcp(addr) {
        Ok(t) => t,
        Err(e) if is_v6_wildcard(addr) => {
            tracing::debug!(error = %e, "no IPv6 wildcard listener");
            return Ok(None);
        }
        Err(source) => {
            return Err(Error::Bind {
                proto: "tcp",
                addr,
                source,
            });
        }
    };
    let local = tcp.local_addr().map_err(|source| Error::Bind {
        proto: "tcp",
        addr,
        source,
    })?;
    Ok(Some((Vec::new(), tcp, local)))
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
