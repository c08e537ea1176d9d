//! `health`: liveness over HTTP, and the lameduck delay at shutdown.
//!
//! # Syntax
//! ```text
//! health [ADDRESS] {
//!     lameduck DURATION
//! }
//! ```
//! `GET /health` on ADDRESS (default `:8080`) answers `200 OK` while the process
//! runs. With `lameduck`, a SIGTERM first keeps DNS and `/health` answering for
//! DURATION (while `/ready` turns 503 so no new traffic is sent), then shuts
//! down — a rolling update drops no query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;

use crate::admin;
use crate::corefile::{CorefileError, Dispenser};

/// The parsed `health` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Where `/health` is served.
    pub addr: SocketAddr,
    /// How long to keep serving after a shutdown signal.
    pub lameduck: Duration,
}

/// Parse `health`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<Health, CorefileError> {
    let addr = match d.next_arg() {
        Some(t) => t.parse_socket_addr("health address", 8080)?,
        None => SocketAddr::from(([0, 0, 0, 0], 8080)),
    };
    d.expect_end()?;
    let mut lameduck = Duration::ZERO;
    for sub in d.block() {
        let mut sd = Dispenser::new(sub);
        match sub.name.text.as_str() {
            "lameduck" => {
                lameduck = sd
                    .expect_arg("duration")?
                    .parse_duration("health: lameduck")?;
                sd.expect_end()?;
            }
            other => return Err(sub.name.err(format!("health: unknown property '{other}'"))),
        }
    }
    Ok(Health { addr, lameduck })
}

/// The `/health` handler: alive means the process can answer this.
pub fn handler() -> admin::Handler {
    Arc::new(|| (StatusCode::OK, "OK".to_string()))
}

/// `coredns_health_request_duration_seconds` and
/// `coredns_health_request_failures_total`: CoreDNS's health plugin queries its
/// own `/health` once a second; the duration tells an overloaded process.
#[derive(Clone, Debug)]
pub struct HealthMetrics {
    duration: prometheus::Histogram,
    failures: prometheus::IntCounter,
}

impl crate::plugin::build::Family for HealthMetrics {
    fn register(r: &prometheus::Registry) -> prometheus::Result<Self> {
        let duration = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "coredns_health_request_duration_seconds",
                "Histogram of the time (in seconds) each request took.",
            )
            .buckets(prometheus::exponential_buckets(0.00025, 10.0, 5)?),
        )?;
        let failures = prometheus::IntCounter::with_opts(prometheus::Opts::new(
            "coredns_health_request_failures_total",
            "The number of times the health check failed.",
        ))?;
        r.register(Box::new(duration.clone()))?;
        r.register(Box::new(failures.clone()))?;
        Ok(Self { duration, failures })
    }
}

/// Query our own `/health` at `addr` every second until `token` is cancelled,
/// recording how long it took (or that it failed).
pub async fn self_check(
    addr: SocketAddr,
    metrics: HealthMetrics,
    token: tokio_util::sync::CancellationToken,
) {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let started = std::time::Instant::now();
        let ok = tokio::time::timeout(Duration::from_secs(5), check(target))
            .await
            .unwrap_or(Ok(false))
            .unwrap_or(false);
        metrics.duration.observe(started.elapsed().as_secs_f64());
        if !ok {
            metrics.failures.inc();
        }
    }
}

async fn check(target: SocketAddr) -> std::io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(target).await?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(128);
    s.read_to_end(&mut buf).await?;
    Ok(buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200"))
}
