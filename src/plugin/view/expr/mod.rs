//! The expressions of `view NAME { expr EXPRESSION }`: the part of CoreDNS's
//! expression language (expr-lang, with CoreDNS's request functions) that
//! split-DNS routing uses, parsed once at start and evaluated per query.
//!
//! Pure: [`parse`] turns text into an [`Expr`] or an error saying where and
//! why (`parse.rs`); [`Expr::eval`] reads only the [`Facts`] of one query
//! (`eval.rs`).
//!
//! Grammar (lowest precedence first):
//! ```text
//! or      := and (("||" | "or") and)*
//! and     := not (("&&" | "and") not)*
//! not     := ("!" | "not") not | cmp
//! cmp     := value (OP value)?      OP: == != < <= > >= matches contains
//!                                       startsWith endsWith in, not in
//! value   := 'str' | "str" | INT | true | false | [value, ...] | (or)
//!          | FUNC "(" (or ("," or)*)? ")"
//! ```
//! Functions: `name()`, `type()`, `class()`, `proto()`, `client_ip()`,
//! `client_port()`, `id()`, `do()`, `bufsize()` (the request's), and
//! `incidr(IP, CIDR)`. `matches` takes a literal regular expression (checked
//! at parse). Anything else is an error at start, never a silent false.

mod eval;
mod parse;

pub use parse::parse;

use std::net::IpAddr;

use regex::Regex;

/// What an expression can see of one query.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The query name as sent, with its trailing dot.
    pub name: &'a str,
    /// `A`, `AAAA`, ...
    pub qtype: &'a str,
    /// `IN`, `CH`, ...
    pub class: &'a str,
    /// `udp` or `tcp`.
    pub proto: &'a str,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The client's port.
    pub client_port: u16,
    /// The message ID.
    pub id: u16,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The EDNS UDP size (512 without EDNS).
    pub bufsize: u16,
}

/// A parsed expression.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A literal.
    Lit(LitValue),
    /// A list literal.
    List(Vec<Expr>),
    /// A function of the query.
    Call(Func, Vec<Expr>),
    /// `!x`.
    Not(Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a OP b`.
    Cmp(Box<Expr>, Op, Box<Expr>),
    /// `a matches 'regex'`.
    Matches(Box<Expr>, Box<Regex>),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum LitValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// The query functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// `name()`.
    Name,
    /// `type()`.
    Type,
    /// `class()`.
    Class,
    /// `proto()`.
    Proto,
    /// `client_ip()`.
    ClientIp,
    /// `client_port()`.
    ClientPort,
    /// `id()`.
    Id,
    /// `do()`.
    Do,
    /// `bufsize()`.
    Bufsize,
    /// `incidr(ip, cidr)`.
    InCidr,
}

pub(crate) const FUNCS: &[(&str, Func, usize)] = &[
    ("name", Func::Name, 0),
    ("type", Func::Type, 0),
    ("class", Func::Class, 0),
    ("proto", Func::Proto, 0),
    ("client_ip", Func::ClientIp, 0),
    ("client_port", Func::ClientPort, 0),
    ("id", Func::Id, 0),
    ("do", Func::Do, 0),
    ("bufsize", Func::Bufsize, 0),
    ("incidr", Func::InCidr, 2),
];

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `contains`.
    Contains,
    /// `startsWith`.
    StartsWith,
    /// `endsWith`.
    EndsWith,
    /// `in`.
    In,
    /// `not in`.
    NotIn,
}

/// A parse error: the character offset in the expression and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {at}: {why}")]
pub struct ParseError {
    /// 0-based character offset.
    pub at: usize,
    /// What is wrong.
    pub why: String,
}

pub(crate) fn err(at: usize, why: impl Into<String>) -> ParseError {
    ParseError {
        at,
        why: why.into(),
    }
}

#[cfg(test)]
mod tests;
