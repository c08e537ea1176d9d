//! `bufsize`: caps the UDP payload size clients advertise (CoreDNS's
//! `bufsize`), so that answers stay under a size that does not fragment on
//! the path (DNS Flag Day 2020 recommends 1232 bytes).
//!
//! # Description
//! A query whose EDNS UDP size is larger than SIZE is handled as if it had
//! said SIZE: the rest of the chain (and `forward`'s upstream query) sees
//! SIZE, the response is truncated to fit SIZE and its OPT record advertises
//! SIZE. Queries without EDNS, or with a smaller size, are untouched.
//!
//! # Syntax
//! ```text
//! bufsize [SIZE]
//! ```
//! SIZE is 512..=4096, default 1232. No block.
//!
//! # Examples
//! ```text
//! . {
//!     bufsize 1220
//!     forward . 172.31.0.10
//! }
//! ```
//!
//! # Metrics
//! None. # Ready: does not report readiness.

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{MemoPass, Next, Plugin, Result};

/// The default size (CoreDNS's, the DNS Flag Day 2020 value).
pub const DEFAULT: u16 = 1232;

/// Parse `bufsize [SIZE]`.
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<BufSize, CorefileError> {
    let size = match d.next_arg() {
        None => DEFAULT,
        Some(t) => {
            let n = t.parse_u32(&d.what("SIZE"), 512..=4096)?;
            u16::try_from(n).map_err(|_| d.err_at(t, "SIZE must be 512..=4096"))?
        }
    };
    d.expect_end()?;
    d.expect_no_block()?;
    Ok(BufSize { size })
}

/// The `bufsize` plugin (its settings are the plugin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufSize {
    /// The largest UDP payload size passed on.
    pub size: u16,
}

#[async_trait::async_trait]
impl Plugin for BufSize {
    fn name(&self) -> &'static str {
        "bufsize"
    }

    /// The cap depends only on the request's OPT size, which is in the memo key.
    fn memo_pass(&self, _q: &Query, _answer: &Answer) -> MemoPass {
        MemoPass::Quiet
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        if q.edns_payload.is_none_or(|p| p <= self.size) {
            return next.serve(q).await;
        }
        let mut capped = q.clone();
        capped.edns_payload = Some(self.size);
        let mut a = next.serve(&capped).await?;
        a.extras_mut().udp_size = Some(self.size);
        Ok(a)
    }
}

crate::plugin::build::build_plugin!(BufSize, |config, _ctx| *config);

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::corefile::{MemFs, parse_str};
    use crate::dns::Transport;
    use crate::plugin::Chain;

    /// Answers NXDOMAIN and records the EDNS size each query reached it with.
    struct Sizes(Arc<std::sync::Mutex<Vec<Option<u16>>>>);

    #[async_trait::async_trait]
    impl Plugin for Sizes {
        fn name(&self) -> &'static str {
            "whoami"
        }
        async fn serve(&self, q: &Query, _next: Next<'_>) -> Result<Answer> {
            self.0.lock().unwrap().push(q.edns_payload);
            Ok(Answer::rcode(hickory_proto::op::ResponseCode::NXDomain))
        }
    }

    fn parse_line(line: &str) -> std::result::Result<BufSize, String> {
        let src = format!(". {{\n    {line}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new()).unwrap();
        parse(&mut Dispenser::new(&c.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    #[test]
    fn size_defaults_to_1232_and_must_be_512_to_4096() {
        assert_eq!(parse_line("bufsize"), Ok(BufSize { size: 1232 }));
        assert_eq!(parse_line("bufsize 512"), Ok(BufSize { size: 512 }));
        assert_eq!(parse_line("bufsize 4096"), Ok(BufSize { size: 4096 }));
        for (line, want) in [
            ("bufsize 511", "Corefile:2:13: bufsize: SIZE"),
            ("bufsize 4097", "Corefile:2:13: bufsize: SIZE"),
            ("bufsize big", "Corefile:2:13: bufsize: SIZE"),
            (
                "bufsize 1232 1",
                "Corefile:2:18: bufsize: unexpected argument '1'",
            ),
            ("bufsize {\n x\n }", "Corefile:2:5: bufsize: takes no block"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.starts_with(want), "{line}: {e}");
        }
    }

    #[tokio::test]
    async fn larger_sizes_are_capped_for_the_chain_and_the_response() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let chain = Chain::new(vec![
            Arc::new(BufSize { size: 1232 }),
            Arc::new(Sizes(seen.clone())),
        ]);
        let mut q = Query::new(
            Name::from_ascii("a.example.").unwrap(),
            RecordType::A,
            "127.0.0.1:5353".parse().unwrap(),
            Transport::Udp,
        );
        for (advertised, passed, extra) in [
            (None, None, None),
            (Some(512), Some(512), None),
            (Some(1232), Some(1232), None),
            (Some(4096), Some(1232), Some(1232)),
        ] {
            q.edns_payload = advertised;
            let a = chain.serve(&q).await.unwrap();
            assert_eq!(
                seen.lock().unwrap().pop().unwrap(),
                passed,
                "{advertised:?}"
            );
            assert_eq!(a.extras.and_then(|e| e.udp_size), extra, "{advertised:?}");
        }
    }
}
