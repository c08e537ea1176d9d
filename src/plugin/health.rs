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
