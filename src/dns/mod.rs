//! DNS transport: sockets, the wire rules, and the hand-off to the plugin chain.
//!
//! One request path for both transports: [`udp`] and [`tcp`] each run their
//! own loops, and both go through [`wire`] (parse a request and apply the
//! protocol rules; encode the response within the transport's size limit)
//! and [`handler`] (route the [`Query`] to a server block's chain, get the
//! [`Answer`]). [`server`] binds and retires listeners across reloads and
//! drains them at shutdown. [`metrics`] records each query, into per-thread
//! [`shards`]. [`strict`] is an independent message checker for
//! tests and fuzzing. hickory-proto provides the wire types; no
//! hickory-server.

pub mod handler;
pub mod https;
pub mod memo;
pub mod metrics;
pub mod query;
pub mod server;
pub mod shards;
pub mod strict;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use handler::{AnswerMemo, Handler, Route};
pub use query::{Answer, Query, Transport};
