//! `prometheus`: the metrics endpoint.
//!
//! # Syntax
//! ```text
//! prometheus [ADDRESS]
//! ```
//! `GET /metrics` on ADDRESS (default `localhost:9153`, kubeadm writes `:9153`)
//! in Prometheus text format: every metric the process registered, under
//! CoreDNS's names where the meaning matches.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;
use prometheus::Registry;

use crate::admin;
use crate::corefile::{CorefileError, Dispenser};

/// The parsed `prometheus` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prometheus {
    /// Where `/metrics` is served.
    pub addr: SocketAddr,
}

/// Parse `prometheus`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<Prometheus, CorefileError> {
    let addr = match d.next_arg() {
        Some(t) => t.parse_socket_addr("prometheus address", 9153)?,
        None => SocketAddr::from(([127, 0, 0, 1], 9153)),
    };
    d.expect_end()?;
    if let Some(sub) = d.block().first() {
        return Err(sub.name.err("prometheus: takes no block"));
    }
    Ok(Prometheus { addr })
}

/// The `/metrics` handler over `registry`.
pub fn handler(registry: Registry) -> admin::Handler {
    Arc::new(move || (StatusCode::OK, crate::metrics::encode(&registry)))
}
