//! The plugin chain: one module per Corefile directive, run in CoreDNS's fixed order.
//!
//! Every directive is registered once, in [`registry::DIRECTIVES`] (name,
//! CoreDNS `plugin.cfg` position, parse function). A server block's directives
//! are parsed into [`PluginConfig`]s; chain plugins are built into a [`Chain`]
//! sorted by that table's order, never by the order they were written in.
//! A plugin answers a [`Query`] or hands it to [`Next`] — CoreDNS's
//! "fallthrough" as a type.

pub mod acl;
pub mod any;
pub mod autopath;
pub mod bind;
pub mod bufsize;
pub mod build;
pub mod cache;
pub mod chaos;
pub mod dns64;
pub mod errors;
pub mod forward;
pub mod header;
pub mod health;
pub mod hosts;
pub mod k8s_external;
pub mod kubernetes;
pub mod loadbalance;
pub mod local;
pub mod log;
pub mod loop_detect;
pub mod minimal;
pub mod nsid;
pub mod prometheus;
mod rdata;
pub mod ready;
pub mod registry;
pub mod reload;
pub mod rewrite;
pub mod template;
pub mod timeouts;
pub mod tls;
pub mod view;
pub mod whoami;

use std::sync::Arc;

use hickory_proto::op::ResponseCode;

use crate::dns::{Answer, Query};

pub use registry::{
    BuildPlugin, ChainConfig, DIRECTIVES, PluginConfig, add, compiled_in, order_of, parse,
    repeatable,
};

/// Why a plugin could not answer; the server turns it into an rcode.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The chain ended without a plugin answering (CoreDNS: "no next plugin found").
    #[error("no next plugin found")]
    NoNextPlugin,
    /// A plugin decided the response code (e.g. SERVFAIL while not synced).
    #[error("{0}")]
    Rcode(ResponseCode),
}

impl PluginError {
    /// The response code the client gets.
    pub fn rcode(&self) -> ResponseCode {
        match self {
            PluginError::NoNextPlugin => ResponseCode::ServFail,
            PluginError::Rcode(rc) => *rc,
        }
    }
}

/// Result of serving a query.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// One configured Corefile directive, ready to serve.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// The directive name.
    fn name(&self) -> &'static str;
    /// Answer, or hand the query to `next`.
    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer>;
    /// `Some(ready)` for plugins that report readiness (kubernetes); `None` otherwise.
    fn ready(&self) -> Option<bool> {
        None
    }
    /// For a writer that stamps its answers with [`Answer::memo`]: the
    /// generation of its data now. A memoized answer stays valid while this
    /// equals its stamp.
    fn memo_generation(&self) -> Option<u64> {
        None
    }
    /// For a plugin that handed `q` to the rest of the chain and passed
    /// `answer` (stamped by a later writer) back: may the same request bytes
    /// be answered from the memo without running this plugin again? The
    /// default, [`MemoPass::Block`], is always safe.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Block
    }
    /// Redo, for a memo hit, the per-query effects (counters) of a query
    /// this plugin passed through and answered [`MemoPass::Replay`] for.
    fn memo_replay(&self) {}
}

/// How a plugin that ran before an answer's writer affects its memo entry
/// ([`Plugin::memo_pass`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoPass {
    /// The plugin may act differently next time (randomness, time, the
    /// client's address, its own changing data, logging): never memoize.
    Block,
    /// What the plugin did to the query it passed on and to the answer it
    /// got back is a pure function of the request and of that answer, with
    /// no per-query effect (the memo keeps the final response bytes).
    Quiet,
    /// As `Quiet`, but with per-query counters that a memo hit must replay
    /// through [`Plugin::memo_replay`].
    Replay,
}

/// The rest of the chain after the current plugin.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    rest: &'a [Arc<dyn Plugin>],
}

impl<'a> Next<'a> {
    /// Serve the query with the next plugin, or fail with [`PluginError::NoNextPlugin`].
    pub async fn serve(self, q: &Query) -> Result<Answer> {
        match self.rest.split_first() {
            Some((plugin, rest)) => {
                let mut answer = plugin.serve(q, Next { rest }).await?;
                if answer.writer.is_empty() {
                    answer.writer = plugin.name();
                }
                Ok(answer)
            }
            None => Err(PluginError::NoNextPlugin),
        }
    }

    /// Whether any plugin follows.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// A server block's plugins in execution order.
#[derive(Clone, Default)]
pub struct Chain {
    plugins: Arc<[Arc<dyn Plugin>]>,
}

impl Chain {
    /// A chain of these plugins, sorted by CoreDNS's order ([`registry::DIRECTIVES`]).
    pub fn new(mut plugins: Vec<Arc<dyn Plugin>>) -> Self {
        plugins.sort_by_key(|p| order_of(p.name()).unwrap_or(usize::MAX));
        Self {
            plugins: plugins.into(),
        }
    }

    /// Serve a query from the first plugin.
    pub async fn serve(&self, q: &Query) -> Result<Answer> {
        Next {
            rest: &self.plugins,
        }
        .serve(q)
        .await
    }

    /// The plugins, in execution order.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// Names of plugins that report readiness and are not ready yet.
    pub fn not_ready(&self) -> Vec<&'static str> {
        self.plugins
            .iter()
            .filter(|p| p.ready() == Some(false))
            .map(|p| p.name())
            .collect()
    }
}
