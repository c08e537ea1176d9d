//! `ready`: readiness over HTTP for the plugins that report it.
//!
//! # Syntax
//! ```text
//! ready [ADDRESS] {
//!     monitor until-ready|continuously
//! }
//! ```
//! `GET /ready` on ADDRESS (default `:8181`) answers `200 OK` once every plugin
//! that reports readiness (today: kubernetes, once its data has synced) is
//! ready, and `503` with the comma-separated names of those that are not.
//! With `until-ready` (the default, as CoreDNS) a plugin that was ready once is
//! not asked again; `continuously` asks every time. During lameduck `/ready`
//! is 503 whatever the plugins say.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::StatusCode;

use crate::admin;
use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::Plugin;

/// How readiness is re-checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Monitor {
    /// Once every plugin was ready, stay ready (CoreDNS default).
    #[default]
    UntilReady,
    /// Ask the plugins on every request.
    Continuously,
}

/// The parsed `ready` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// Where `/ready` is served.
    pub addr: SocketAddr,
    /// Re-check policy.
    pub monitor: Monitor,
}

/// Parse `ready`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<Ready, CorefileError> {
    let addr = match d.next_arg() {
        Some(t) => t.parse_socket_addr("ready address", 8181)?,
        None => SocketAddr::from(([0, 0, 0, 0], 8181)),
    };
    d.expect_end()?;
    let mut monitor = Monitor::UntilReady;
    for sub in d.block() {
        let mut sd = Dispenser::new(sub);
        match sub.name.text.as_str() {
            "monitor" => {
                let t = sd.expect_arg("until-ready|continuously")?;
                monitor = match t.text.as_str() {
                    "until-ready" => Monitor::UntilReady,
                    "continuously" => Monitor::Continuously,
                    other => {
                        return Err(t.err(format!(
                            "ready: monitor: '{other}' is not one of until-ready, continuously"
                        )));
                    }
                };
                sd.expect_end()?;
            }
            other => return Err(sub.name.err(format!("ready: unknown property '{other}'"))),
        }
    }
    Ok(Ready { addr, monitor })
}

/// Shared readiness state: the plugins to ask and the lameduck switch.
pub struct Readiness {
    plugins: Vec<Arc<dyn Plugin>>,
    /// Set by the shutdown sequence when lameduck starts; read by `/ready`.
    draining: AtomicBool,
    /// Set once every plugin was ready (for `until-ready`).
    latched: AtomicBool,
}

impl Readiness {
    /// Readiness over these plugins (those that do not report are ignored).
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Arc<Self> {
        Arc::new(Self {
            plugins: plugins
                .into_iter()
                .filter(|p| p.ready().is_some())
                .collect(),
            draining: AtomicBool::new(false),
            latched: AtomicBool::new(false),
        })
    }

    /// Enter lameduck: `/ready` answers 503 from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Names of the plugins not ready yet (empty: ready).
    pub fn not_ready(&self, monitor: Monitor) -> Vec<&'static str> {
        if monitor == Monitor::UntilReady && self.latched.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut names: Vec<&'static str> = self
            .plugins
            .iter()
            .filter(|p| p.ready() == Some(false))
            .map(|p| p.name())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() && monitor == Monitor::UntilReady {
            self.latched.store(true, Ordering::Relaxed);
        }
        names
    }

    /// The `/ready` handler.
    pub fn handler(self: &Arc<Self>, monitor: Monitor) -> admin::Handler {
        let this = self.clone();
        Arc::new(move || {
            if this.draining.load(Ordering::Relaxed) {
                return (StatusCode::SERVICE_UNAVAILABLE, "lameduck".to_string());
            }
            let names = this.not_ready(monitor);
            if names.is_empty() {
                (StatusCode::OK, "OK".to_string())
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, names.join(","))
            }
        })
    }
}
