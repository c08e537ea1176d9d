//! `view`: routes a query to this server block only when the block's
//! expressions hold for it (CoreDNS's `view`), for split DNS: the same zone
//! answered differently by client network, query type or name.
//!
//! # Description
//! Server blocks for the same zone and port are allowed when all but one of
//! them have a `view` (two blocks without one is still an error). A query is
//! routed, as always, to the blocks of the longest matching zone; among
//! those, blocks are tried in Corefile order and the first whose view holds
//! takes the query; a block without `view` always holds (so it belongs last,
//! as in CoreDNS). All `expr` lines of a view must hold. The view's NAME is
//! the `view` label of the block's `coredns_dns_*` metrics.
//!
//! A listener with any view block keeps no answer memo: the memo is keyed by
//! the request bytes, and a view may depend on the client.
//!
//! # Syntax
//! ```text
//! view NAME {
//!     expr EXPRESSION
//! }
//! ```
//! EXPRESSION: see [`expr`] (CoreDNS's functions `incidr`, `client_ip`,
//! `name`, `type`, ... and expr-lang's operators). Quote strings with single
//! quotes: the Corefile removes double quotes.
//!
//! # Examples
//! ```text
//! . {
//!     view internal {
//!         expr incidr(client_ip(), '10.0.0.0/8')
//!     }
//!     hosts { 10.1.1.1 test }
//! }
//! . {
//!     hosts { 192.0.2.1 test }
//! }
//! ```

pub mod expr;

use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::dns::Query;

/// A parsed `view` directive.
#[derive(Clone, Debug)]
pub struct View {
    /// NAME (the metrics' `view` label).
    pub name: Arc<str>,
    /// The `expr` lines; all must hold.
    pub exprs: Vec<expr::Expr>,
}

impl View {
    /// Whether the query of `facts` belongs to this view.
    pub fn holds(&self, facts: &QueryFacts<'_>) -> bool {
        let f = facts.facts();
        self.exprs.iter().all(|e| e.eval(&f))
    }
}

/// What view expressions read of one query, its texts made once however
/// many views the query is tried against.
pub struct QueryFacts<'q> {
    q: &'q Query,
    name: String,
    qtype: String,
    class: String,
}

impl<'q> QueryFacts<'q> {
    /// The facts of `q`.
    pub fn of(q: &'q Query) -> Self {
        Self {
            q,
            name: q.name.to_ascii(),
            qtype: q.qtype.to_string(),
            class: q.qclass.to_string(),
        }
    }

    fn facts(&self) -> expr::Facts<'_> {
        let q = self.q;
        expr::Facts {
            name: &self.name,
            qtype: &self.qtype,
            class: &self.class,
            proto: q.transport.as_str(),
            client_ip: q.src.ip(),
            client_port: q.src.port(),
            id: q.id,
            dnssec_ok: q.dnssec_ok,
            bufsize: q.edns_payload.unwrap_or(512),
        }
    }
}

/// Parse `view NAME { expr EXPRESSION ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<View, CorefileError> {
    let name = d.expect_arg("NAME")?.text.clone();
    d.expect_end()?;
    if d.block().is_empty() {
        return Err(d.err("a view needs at least one `expr EXPRESSION` line"));
    }
    let mut exprs = Vec::new();
    for line in d.block() {
        let sd = d.sub(line);
        if line.name.as_str() != "expr" {
            return Err(d.unknown_property(line));
        }
        if line.args.is_empty() {
            return Err(sd.err("missing argument: EXPRESSION"));
        }
        // The expression is the line's words joined by single spaces; an
        // error's character offset is mapped back to the word holding it.
        let mut text = String::new();
        let mut starts = Vec::new();
        for t in &line.args {
            if !text.is_empty() {
                text.push(' ');
            }
            starts.push(text.chars().count());
            text.push_str(&t.text);
        }
        let e = expr::parse(&text).map_err(|e| {
            let word = starts.iter().rposition(|&s| s <= e.at).unwrap_or(0);
            sd.err_at(&line.args[word], e.to_string())
        })?;
        exprs.push(e);
    }
    Ok(View {
        name: name.into(),
        exprs,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::corefile::{MemFs, parse_str};
    use crate::dns::Transport;

    fn parse_text(body: &str) -> Result<View, String> {
        let src = format!(". {{\n{body}\n}}\n");
        let c = parse_str(&src, Path::new("Corefile"), &|_| None, &MemFs::new())
            .map_err(|e| e.to_string())?;
        parse(&mut Dispenser::new(&c.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    #[test]
    fn all_expr_lines_must_hold() {
        let v = parse_text(
            "view internal {\n expr incidr(client_ip(), '10.0.0.0/8')\n expr type() == 'A'\n}",
        )
        .unwrap();
        assert_eq!(&*v.name, "internal");
        let q = |src: &str, qtype| {
            Query::new(
                Name::from_ascii("test.").unwrap(),
                qtype,
                format!("{src}:5353").parse().unwrap(),
                Transport::Udp,
            )
        };
        let holds = |q: Query| v.holds(&QueryFacts::of(&q));
        assert!(holds(q("10.1.2.3", RecordType::A)));
        assert!(!holds(q("10.1.2.3", RecordType::AAAA)));
        assert!(!holds(q("192.0.2.1", RecordType::A)));
    }

    #[test]
    fn errors_point_at_the_word() {
        let cases: &[(&str, &str)] = &[
            ("view", "Corefile:2:1: view: missing argument: NAME"),
            ("view v", "Corefile:2:1: view: a view needs at least one"),
            (
                "view v {\n exp x\n}",
                "Corefile:3:2: view: unknown property 'exp'",
            ),
            (
                "view v {\n expr\n}",
                "Corefile:3:2: view: expr: missing argument: EXPRESSION",
            ),
            (
                "view v {\n expr incidr(client_ip(), '10.0.0.0/8') && server_ip() == 'x'\n}",
                "Corefile:3:44: view: expr: at character 37: unknown function or word 'server_ip'",
            ),
        ];
        for (body, want) in cases {
            let e = parse_text(body).unwrap_err();
            assert!(e.starts_with(want), "{body}: {e}");
        }
    }
}
