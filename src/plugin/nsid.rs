//! `nsid`: answers the EDNS Name Server Identifier option (RFC 5001), so a
//! client can tell which replica answered (CoreDNS's `nsid`).
//!
//! # Description
//! A query carrying an NSID option gets DATA back in the NSID option of the
//! response's OPT record; other queries are untouched. Queries without EDNS
//! cannot carry the option, so they never get it.
//!
//! # Syntax
//! ```text
//! nsid [DATA...]
//! ```
//! DATA (words joined by spaces) defaults to the host's name (the pod's name
//! in Kubernetes), read at start and at every reload. No block.
//!
//! # Examples
//! ```text
//! . {
//!     nsid dns-replica-1
//!     kubernetes cluster.local
//! }
//! ```
//! `dig +nsid @10.96.0.10 kubernetes.default.svc.cluster.local` shows
//! `; NSID: ... ("dns-replica-1")`.
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// Parse `nsid [DATA...]`: `None` for the host name (read when built).
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<NsidConfig, CorefileError> {
    let words: Vec<String> = d.remaining().iter().map(|t| t.text.clone()).collect();
    d.expect_no_block()?;
    Ok(NsidConfig {
        data: (!words.is_empty()).then(|| words.join(" ")),
    })
}

/// Parsed `nsid` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsidConfig {
    /// DATA, or `None` for the host name.
    pub data: Option<String>,
}

/// The `nsid` plugin.
#[derive(Clone, Debug)]
pub struct Nsid {
    data: Arc<[u8]>,
}

impl Nsid {
    /// The plugin answering `data`.
    pub fn new(data: &str) -> Self {
        Self {
            data: Arc::from(data.as_bytes()),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Nsid {
    fn name(&self) -> &'static str {
        "nsid"
    }

    /// Whether the option is added depends on the request's OPT (in the memo key).
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        let mut a = next.serve(q).await?;
        if q.nsid {
            a.extras_mut().nsid = Some(self.data.clone());
        }
        Ok(a)
    }
}

crate::plugin::build::build_plugin!(NsidConfig, |config, _ctx| {
    match &config.data {
        Some(data) => Nsid::new(data),
        None => Nsid::new(&crate::plugin::chaos::system_hostname()),
    }
});

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::corefile::{MemFs, parse_str};
    use crate::dns::Transport;
    use crate::plugin::Chain;
    use crate::plugin::build::Counter;

    fn parse_line(line: &str) -> std::result::Result<NsidConfig, String> {
        let src = format!(". {{\n    {line}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
        parse(&mut Dispenser::new(&c.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    #[test]
    fn data_is_the_words_or_the_host_name() {
        assert_eq!(parse_line("nsid"), Ok(NsidConfig { data: None }));
        assert_eq!(
            parse_line("nsid replica one"),
            Ok(NsidConfig {
                data: Some("replica one".into())
            })
        );
        let e = parse_line("nsid {\n x\n }").unwrap_err();
        assert!(e.starts_with("Corefile:2:5: nsid: takes no block"), "{e}");
    }

    #[tokio::test]
    async fn only_queries_asking_for_nsid_get_it() {
        let chain = Chain::new(vec![
            Arc::new(Nsid::new("replica-1")),
            Arc::new(Counter(Arc::new(AtomicUsize::new(0)))),
        ]);
        let mut q = Query::new(
            Name::from_ascii("a.example.").unwrap(),
            RecordType::A,
            "127.0.0.1:5353".parse().unwrap(),
            Transport::Udp,
        );
        let a = chain.serve(&q).await.unwrap();
        assert_eq!(a.extras, None);
        q.nsid = true;
        let a = chain.serve(&q).await.unwrap();
        assert_eq!(a.extras.unwrap().nsid.as_deref(), Some(&b"replica-1"[..]));
    }
}
