//! `whoami`: answers with the client's address and port — the smallest plugin,
//! and a handy end-to-end probe.
//!
//! # Syntax
//! ```text
//! whoami
//! ```
//! No arguments and no block (either is a startup error). As CoreDNS: the additional section carries an A or AAAA record
//! `<qname> IN A <client ip>` and an SRV `_<proto>.<qname> IN SRV 0 0 <client port> .`;
//! the answer section is empty. It answers every query that reaches it.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record};

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::{Answer, Query};
use crate::plugin::{Next, Plugin, Result};

/// Parse `whoami` (no arguments).
pub fn parse(d: &mut Dispenser<'_>) -> std::result::Result<(), CorefileError> {
    d.expect_end()?;
    d.expect_no_block()
}

/// The `whoami` plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Whoami;

#[async_trait::async_trait]
impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        "whoami"
    }

    async fn serve(&self, q: &Query, _next: Next<'_>) -> Result<Answer> {
        let mut answer = Answer::rcode(ResponseCode::NoError);
        answer.authoritative = true;
        let addr = match q.src.ip() {
            IpAddr::V4(ip) => RData::A(A(ip)),
            IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
        };
        answer
            .additionals
            .push(Record::from_rdata(q.name.clone(), 0, addr));
        let label = format!("_{}", q.transport.as_str());
        if let Ok(srv_name) =
            Name::from_labels([label.as_bytes()]).and_then(|l| l.append_domain(&q.name))
        {
            answer.additionals.push(Record::from_rdata(
                srv_name,
                0,
                RData::SRV(SRV::new(0, 0, q.src.port(), Name::root())),
            ));
        }
        Ok(answer)
    }
}

impl crate::plugin::BuildPlugin for Whoami {
    fn build(
        &self,
        ctx: &crate::plugin::build::BuildCtx<'_>,
    ) -> anyhow::Result<std::sync::Arc<dyn crate::plugin::Plugin>> {
        let _ = ctx;
        Ok(std::sync::Arc::new(*self))
    }
}
