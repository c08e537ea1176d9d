//! The cursor every plugin's `parse()` reads one directive with (CoreDNS's
//! `caddy.Controller`, mini-redis's `Parse`): arguments one by one, then the block.
//!
//! Invariant: every error it makes starts with the directive's name (`kubernetes: ...`,
//! or `kubernetes: pods: ...` for a line of its block read through [`Dispenser::sub`]) and
//! sits at the token it is about.

use super::ast::{Directive, Token};
use super::error::{CorefileError, Result};

/// A cursor over one directive's arguments.
#[derive(Debug, Clone)]
pub struct Dispenser<'a> {
    d: &'a Directive,
    next: usize,
    prefix: String,
}

impl<'a> Dispenser<'a> {
    /// A cursor at the first argument of `d`; errors are prefixed by `d`'s name.
    pub fn new(d: &'a Directive) -> Self {
        Dispenser {
            d,
            next: 0,
            prefix: d.name.text.clone(),
        }
    }

    /// A cursor for `d`, a line of this directive's block; its errors are prefixed by both
    /// names (`kubernetes: pods: ...`).
    pub fn sub(&self, d: &'a Directive) -> Dispenser<'a> {
        Dispenser {
            d,
            next: 0,
            prefix: format!("{}: {}", self.prefix, d.name.text),
        }
    }

    /// The directive being read.
    pub fn directive(&self) -> &'a Directive {
        self.d
    }

    /// The prefix of this cursor's error messages (`kubernetes`, `kubernetes: pods`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The next argument, if any.
    pub fn next_arg(&mut self) -> Option<&'a Token> {
        let t = self.d.args.get(self.next)?;
        self.next += 1;
        Some(t)
    }

    /// The next argument, or `<name>: missing argument: <what>` at the last token of the
    /// line.
    pub fn expect_arg(&mut self, what: &str) -> Result<&'a Token> {
        match self.next_arg() {
            Some(t) => Ok(t),
            None => {
                let last = self.d.args.last().unwrap_or(&self.d.name);
                Err(self.err_at(last, format!("missing argument: {what}")))
            }
        }
    }

    /// Takes all remaining arguments.
    pub fn remaining(&mut self) -> &'a [Token] {
        let d = self.d;
        let rest = d.args.get(self.next..).unwrap_or(&[]);
        self.next = d.args.len();
        rest
    }

    /// Errors with `<name>: unexpected argument 'x'` at the first argument not yet taken.
    pub fn expect_end(&self) -> Result<()> {
        match self.d.args.get(self.next) {
            Some(t) => Err(self.err_at(t, format!("unexpected argument '{}'", t.text))),
            None => Ok(()),
        }
    }

    /// Errors with `<name>: takes no block` when the directive has a `{ }` block.
    pub fn expect_no_block(&self) -> Result<()> {
        match &self.d.block {
            Some(_) => Err(self.err("takes no block")),
            None => Ok(()),
        }
    }

    /// The lines of the directive's block; empty when it has none.
    pub fn block(&self) -> &'a [Directive] {
        self.d.block.as_deref().unwrap_or(&[])
    }

    /// `<name>: <msg>` at the directive name.
    pub fn err(&self, msg: impl Into<String>) -> CorefileError {
        self.err_at(&self.d.name, msg)
    }

    /// `<name>: <msg>` at `tok`.
    pub fn err_at(&self, tok: &Token, msg: impl Into<String>) -> CorefileError {
        tok.err(format!("{}: {}", self.prefix, msg.into()))
    }

    /// `<name>: unknown property 'x'` at the name of `line`, a line of the block.
    pub fn unknown_property(&self, line: &Directive) -> CorefileError {
        self.err_at(&line.name, format!("unknown property '{}'", line.name.text))
    }

    /// `what` prefixed for [`Token::parse_u32`] and friends: `<name>: <what>`.
    pub fn what(&self, what: &str) -> String {
        format!("{}: {what}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    fn kubernetes() -> Directive {
        let src = ".:53 {\n  errors\n  kubernetes cluster.local in-addr.arpa {\n    pods insecure\n    ttl\n    podz verified\n  }\n}";
        let c = parse_str(src, Path::new("config/Corefile"), &|_| None, &MemFs::new()).unwrap();
        c.blocks[0].directives[1].clone()
    }

    #[test]
    fn arguments_are_taken_in_order_and_extra_ones_are_reported_where_they_stand() {
        let k = kubernetes();
        let mut d = Dispenser::new(&k);
        assert_eq!(d.directive().name.text, "kubernetes");
        assert_eq!(d.next_arg().map(Token::as_str), Some("cluster.local"));
        let e = d.expect_end().unwrap_err();
        assert_eq!(
            e.to_string(),
            "config/Corefile:3:28: kubernetes: unexpected argument 'in-addr.arpa'"
        );
        assert_eq!(d.remaining().len(), 1);
        assert!(d.remaining().is_empty());
        assert_eq!(d.next_arg(), None);
        assert!(d.expect_end().is_ok());
        let e = d.expect_arg("zone").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config/Corefile:3:28: kubernetes: missing argument: zone"
        );
    }

    #[test]
    fn block_lines_get_sub_cursors_whose_errors_name_both_directives() {
        let k = kubernetes();
        let d = Dispenser::new(&k);
        let names: Vec<&str> = d.block().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["pods", "ttl", "podz"]);
        let mut ttl = d.sub(&d.block()[1]);
        let e = ttl.expect_arg("seconds").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config/Corefile:5:5: kubernetes: ttl: missing argument: seconds"
        );
        let e = d.unknown_property(&d.block()[2]);
        assert_eq!(
            e.to_string(),
            "config/Corefile:6:5: kubernetes: unknown property 'podz'"
        );
        assert_eq!(
            d.err("no zones").to_string(),
            "config/Corefile:3:3: kubernetes: no zones"
        );
        assert_eq!(d.what("ttl"), "kubernetes: ttl");
        assert_eq!(
            d.expect_no_block().unwrap_err().message,
            "kubernetes: takes no block"
        );
        let pods = d.sub(&d.block()[0]);
        assert!(pods.block().is_empty());
        assert!(pods.expect_no_block().is_ok());
        assert_eq!(pods.prefix(), "kubernetes: pods");
    }
}
