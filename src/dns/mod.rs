//! DNS transport: the only module that uses hickory-server.
//!
//! [`server`] binds UDP/TCP listeners, [`handler`] turns wire requests into
//! [`Query`]s for the plugin chain and [`Answer`]s back into wire responses.

pub mod handler;
pub mod metrics;
pub mod query;
pub mod server;
pub mod strict;
pub mod udp;
pub mod wire;

pub use handler::{Handler, Route};
pub use query::{Answer, Query, Transport};
