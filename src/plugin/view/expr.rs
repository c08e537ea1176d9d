//! The expressions of `view NAME { expr EXPRESSION }`: the part of CoreDNS's
//! expression language (expr-lang, with CoreDNS's request functions) that
//! split-DNS routing uses, parsed once at start and evaluated per query.
//!
//! Pure: [`parse`] turns text into an [`Expr`] or an error saying where and
//! why; [`Expr::eval`] reads only the [`Facts`] of one query.
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

use std::net::IpAddr;

use ipnet::IpNet;
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

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
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

const FUNCS: &[(&str, Func, usize)] = &[
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

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Ident(String),
    Sym(&'static str),
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

fn err(at: usize, why: impl Into<String>) -> ParseError {
    ParseError {
        at,
        why: why.into(),
    }
}

const SYMBOLS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",",
];

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(err(start, "unterminated string")),
                    Some('\\') => {
                        let Some(&n) = chars.get(i + 1) else {
                            return Err(err(i, "unterminated string"));
                        };
                        s.push(n);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push((start, Tok::Str(s)));
        } else if c.is_ascii_digit() {
            let start = i;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse()
                .map_err(|_| err(start, format!("number {s} is too large")))?;
            out.push((start, Tok::Int(n)));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                i += 1;
            }
            out.push((start, Tok::Ident(chars[start..i].iter().collect())));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
                return Err(err(i, format!("unexpected character '{c}'")));
            };
            out.push((i, Tok::Sym(sym)));
            i += sym.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(a, _)| *a)
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(x)) if x == w)
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), ParseError> {
        if self.is_sym(s) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(self.at(), format!("expected '{s}'")))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.is_sym("||") || self.is_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.is_sym("&&") || self.is_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.is_sym("!") || self.is_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let left = self.value()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            Some(Tok::Ident(w)) => match w.as_str() {
                "contains" => Op::Contains,
                "startsWith" => Op::StartsWith,
                "endsWith" => Op::EndsWith,
                "in" => Op::In,
                "not" if matches!(self.toks.get(self.pos + 1), Some((_, Tok::Ident(w))) if w == "in") =>
                {
                    self.pos += 1;
                    Op::NotIn
                }
                "matches" => {
                    self.pos += 1;
                    let at = self.at();
                    let Some(Tok::Str(re)) = self.peek().cloned() else {
                        return Err(err(at, "matches needs a quoted regular expression"));
                    };
                    self.pos += 1;
                    let re = Regex::new(&re).map_err(|e| err(at, format!("bad regex: {e}")))?;
                    return Ok(Expr::Matches(Box::new(left), Box::new(re)));
                }
                _ => return Ok(left),
            },
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.value()?;
        Ok(Expr::Cmp(Box::new(left), op, Box::new(right)))
    }

    fn value(&mut self) -> Result<Expr, ParseError> {
        let at = self.at();
        let Some(tok) = self.peek().cloned() else {
            return Err(err(at, "expected a value"));
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Expr::Lit(LitValue::Str(s))),
            Tok::Int(n) => Ok(Expr::Lit(LitValue::Int(n))),
            Tok::Sym("(") => {
                let e = self.or()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("[") => {
                let mut items = Vec::new();
                while !self.is_sym("]") {
                    items.push(self.or()?);
                    if !self.is_sym("]") {
                        self.expect_sym(",")?;
                    }
                }
                self.pos += 1;
                Ok(Expr::List(items))
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                Ok(Expr::Lit(LitValue::Bool(w == "true")))
            }
            Tok::Ident(w) => {
                let Some(&(_, func, arity)) = FUNCS.iter().find(|(n, _, _)| *n == w) else {
                    let known: Vec<&str> = FUNCS.iter().map(|(n, _, _)| *n).collect();
                    return Err(err(
                        at,
                        format!(
                            "unknown function or word '{w}' (functions: {})",
                            known.join(", ")
                        ),
                    ));
                };
                self.expect_sym("(")?;
                let mut args = Vec::new();
                while !self.is_sym(")") {
                    args.push(self.or()?);
                    if !self.is_sym(")") {
                        self.expect_sym(",")?;
                    }
                }
                self.pos += 1;
                if args.len() != arity {
                    return Err(err(
                        at,
                        format!("{w}() takes {arity} argument(s), got {}", args.len()),
                    ));
                }
                Ok(Expr::Call(func, args))
            }
            Tok::Sym(s) => Err(err(at, format!("unexpected '{s}'"))),
        }
    }
}

/// Parse one expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.chars().count(),
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(err(p.at(), "unexpected text after the expression"));
    }
    Ok(e)
}

impl Expr {
    /// Whether the expression holds for `f` (a value that is not a boolean,
    /// or a type mismatch, is false: the view does not match).
    pub fn eval(&self, f: &Facts<'_>) -> bool {
        matches!(self.value(f), Some(Value::Bool(true)))
    }

    fn value(&self, f: &Facts<'_>) -> Option<Value> {
        Some(match self {
            Expr::Lit(LitValue::Str(s)) => Value::Str(s.clone()),
            Expr::Lit(LitValue::Int(n)) => Value::Int(*n),
            Expr::Lit(LitValue::Bool(b)) => Value::Bool(*b),
            Expr::List(items) => {
                Value::List(items.iter().map(|e| e.value(f)).collect::<Option<_>>()?)
            }
            Expr::Not(e) => Value::Bool(!e.eval(f)),
            Expr::And(a, b) => Value::Bool(a.eval(f) && b.eval(f)),
            Expr::Or(a, b) => Value::Bool(a.eval(f) || b.eval(f)),
            Expr::Matches(e, re) => match e.value(f)? {
                Value::Str(s) => Value::Bool(re.is_match(&s)),
                _ => return None,
            },
            Expr::Cmp(a, op, b) => Value::Bool(compare(&a.value(f)?, *op, &b.value(f)?)?),
            Expr::Call(func, args) => call(*func, args, f)?,
        })
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> Option<bool> {
    use Value::{Int, List, Str};
    Some(match (op, a, b) {
        (Op::Eq, _, _) => a == b,
        (Op::Ne, _, _) => a != b,
        (Op::Lt, Int(x), Int(y)) => x < y,
        (Op::Le, Int(x), Int(y)) => x <= y,
        (Op::Gt, Int(x), Int(y)) => x > y,
        (Op::Ge, Int(x), Int(y)) => x >= y,
        (Op::Contains, Str(x), Str(y)) => x.contains(y.as_str()),
        (Op::StartsWith, Str(x), Str(y)) => x.starts_with(y.as_str()),
        (Op::EndsWith, Str(x), Str(y)) => x.ends_with(y.as_str()),
        (Op::In, _, List(items)) => items.contains(a),
        (Op::NotIn, _, List(items)) => !items.contains(a),
        _ => return None,
    })
}

fn call(func: Func, args: &[Expr], f: &Facts<'_>) -> Option<Value> {
    Some(match func {
        Func::Name => Value::Str(f.name.to_string()),
        Func::Type => Value::Str(f.qtype.to_string()),
        Func::Class => Value::Str(f.class.to_string()),
        Func::Proto => Value::Str(f.proto.to_string()),
        Func::ClientIp => Value::Str(f.client_ip.to_string()),
        Func::ClientPort => Value::Int(i64::from(f.client_port)),
        Func::Id => Value::Int(i64::from(f.id)),
        Func::Do => Value::Bool(f.dnssec_ok),
        Func::Bufsize => Value::Int(i64::from(f.bufsize)),
        Func::InCidr => {
            let [ip, cidr] = args else { return None };
            let (Value::Str(ip), Value::Str(cidr)) = (ip.value(f)?, cidr.value(f)?) else {
                return None;
            };
            let ip: IpAddr = ip.parse().ok()?;
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            let net: IpNet = cidr.parse().ok()?;
            Value::Bool(net.contains(&ip))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ip: &str) -> Facts<'static> {
        Facts {
            name: "www.example.org.",
            qtype: "AAAA",
            class: "IN",
            proto: "udp",
            client_ip: ip.parse().unwrap(),
            client_port: 40000,
            id: 7,
            dnssec_ok: false,
            bufsize: 1232,
        }
    }

    #[test]
    fn coredns_documented_expressions_evaluate_as_documented() {
        let cases: &[(&str, &str, bool)] = &[
            ("incidr(client_ip(), '127.0.0.0/24')", "127.0.0.9", true),
            ("incidr(client_ip(), '127.0.0.0/24')", "192.168.1.1", false),
            ("incidr(client_ip(), '192.168.0.0/16')", "192.168.1.1", true),
            ("incidr(client_ip(), '2001:0DB8::/32')", "2001:db8::5", true),
            ("type() in ['A', 'AAAA']", "10.0.0.1", true),
            ("type() not in ['A', 'AAAA']", "10.0.0.1", false),
            ("name() matches '^.*\\.example\\.org\\.$'", "10.0.0.1", true),
            ("name() matches '^abc\\.'", "10.0.0.1", false),
            (
                "name() endsWith '.example.org.' && proto() == 'udp'",
                "10.0.0.1",
                true,
            ),
            (
                "!(client_port() > 1024) || bufsize() >= 1232",
                "10.0.0.1",
                true,
            ),
            ("do() or id() == 8", "10.0.0.1", false),
            (
                "class() == \"IN\" and name() startsWith 'www'",
                "10.0.0.1",
                true,
            ),
            ("name() contains 'example'", "10.0.0.1", true),
            ("'A' == 1", "10.0.0.1", false),
            ("client_port()", "10.0.0.1", false),
            ("incidr(client_ip(), '10.0.0.0/8')", "::ffff:10.1.1.1", true),
        ];
        for (text, ip, want) in cases {
            let e = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(e.eval(&facts(ip)), *want, "{text} for {ip}");
        }
    }

    #[test]
    fn errors_say_where_and_why() {
        let cases: &[(&str, usize, &str)] = &[
            ("client_ip() == '1", 15, "unterminated string"),
            (
                "metadata('x') == 'y'",
                0,
                "unknown function or word 'metadata'",
            ),
            (
                "incidr(client_ip())",
                0,
                "incidr() takes 2 argument(s), got 1",
            ),
            (
                "name() matches client_ip()",
                15,
                "matches needs a quoted regular expression",
            ),
            ("name() matches '('", 15, "bad regex"),
            (
                "name() == 'a' 'b'",
                14,
                "unexpected text after the expression",
            ),
            ("(name() == 'a'", 14, "expected ')'"),
            ("name() # 'a'", 7, "unexpected character '#'"),
            ("", 0, "expected a value"),
        ];
        for (text, at, why) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.at, *at, "{text}: {e}");
            assert!(e.why.contains(why), "{text}: {e}");
        }
    }
}
