//! Kubernetes label selectors, as the `labels EXPR` option of the kubernetes
//! plugin writes them: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
//! `a` (exists), `!a` (does not exist), joined by commas (all must hold).
//!
//! CoreDNS turns the expression into a `metav1.LabelSelector`, so only the
//! operators that type can express are accepted: the set-based `>`/`<` of
//! `kubectl -l` are an error here. Keys and values are checked with the API
//! server's rules, so an expression this module accepts is also one the API
//! server accepts as a list/watch `labelSelector` ([`Selector::as_str`]).
//! Invariant: a parsed [`Selector`] is valid; matching cannot fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Why a selector expression was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The parser found something other than what the grammar allows here.
    #[error("label selector: expected {expected} at offset {offset}, found {found}")]
    Unexpected {
        /// What the grammar allows at this point.
        expected: &'static str,
        /// Byte offset in the expression.
        offset: usize,
        /// What is there instead (quoted token or "end of input").
        found: String,
    },
    /// A key that is not a valid label key (`[prefix/]name`).
    #[error("label selector: invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as written.
        key: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A value that is not a valid label value.
    #[error("label selector: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The value as written.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// `in ()` or `notin ()`.
    #[error("label selector: `{key} {op} ()` needs at least one value")]
    EmptySet {
        /// The key of the requirement.
        key: String,
        /// `in` or `notin`.
        op: &'static str,
    },
}

/// A parsed label selector: a conjunction of requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The expression as written (trimmed), for the API's `labelSelector`.
    source: Box<str>,
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
}

impl Selector {
    /// Whether `labels` satisfy every requirement. The empty selector matches
    /// everything; `!=` and `notin` also match a missing label, as in Kubernetes.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match &r.op {
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
                Op::Equals(v) => value == Some(v),
                Op::NotEquals(v) => value != Some(v),
                Op::In(set) => value.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
            }
        })
    }

    /// The expression as written (trimmed of surrounding blanks).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        parse(s)
    }
}

/// Parses a label-selector expression. An empty (or blank) expression is the
/// selector that matches everything, as in Kubernetes.
pub fn parse(expr: &str) -> Result<Selector, SelectorError> {
    let mut p = Parser {
        tokens: lex(expr),
        pos: 0,
        len: expr.len(),
    };
    let mut requirements = Vec::new();
    if !p.tokens.is_empty() {
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some((_, Tok::Comma)) => {}
                Some((offset, tok)) => return Err(unexpected("`,` or end of input", offset, tok)),
            }
        }
    }
    Ok(Selector {
        source: expr.trim().into(),
        requirements,
    })
}

// === lexer ===

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Open,
    Close,
    Comma,
    /// `<`, `>` or any other character the grammar has no use for.
    Other(char),
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::Word(w) => return write!(f, "{w:?}"),
            Tok::Other(c) => return write!(f, "{:?}", c.to_string()),
            Tok::Bang => "\"!\"",
            Tok::Eq => "\"=\"",
            Tok::DoubleEq => "\"==\"",
            Tok::NotEq => "\"!=\"",
            Tok::Open => "\"(\"",
            Tok::Close => "\")\"",
            Tok::Comma => "\",\"",
        };
        f.write_str(s)
    }
}

fn lex(s: &str) -> Vec<(usize, Tok<'_>)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let followed_by_eq = chars.peek().is_some_and(|&(_, n)| n == '=');
        let tok = match c {
            c if c.is_whitespace() => continue,
            '!' if followed_by_eq => {
                chars.next();
                Tok::NotEq
            }
            '=' if followed_by_eq => {
                chars.next();
                Tok::DoubleEq
            }
            '!' => Tok::Bang,
            '=' => Tok::Eq,
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            c if is_word_char(c) => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, n)) = chars.peek() {
                    if !is_word_char(n) {
                        break;
                    }
                    end = j + n.len_utf8();
                    chars.next();
                }
                Tok::Word(&s[i..end])
            }
            c => Tok::Other(c),
        };
        out.push((i, tok));
    }
    out
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>')
}

// === parser ===

struct Parser<'a> {
    tokens: Vec<(usize, Tok<'a>)>,
    pos: usize,
    /// Offset reported for "end of input".
    len: usize,
}

fn unexpected(expected: &'static str, offset: usize, tok: Tok<'_>) -> SelectorError {
    SelectorError::Unexpected {
        expected,
        offset,
        found: tok.to_string(),
    }
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Option<(usize, Tok<'a>)> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += usize::from(t.is_some());
        t
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn expect_word(&mut self, expected: &'static str) -> Result<&'a str, SelectorError> {
        match self.next() {
            Some((_, Tok::Word(w))) => Ok(w),
            Some((offset, tok)) => Err(unexpected(expected, offset, tok)),
            None => Err(self.end(expected)),
        }
    }

    fn end(&self, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected {
            expected,
            offset: self.len,
            found: "end of input".into(),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Tok::Bang) {
            self.pos += 1;
            let key = key(self.expect_word("a label key")?)?;
            return Ok(Requirement {
                key,
                op: Op::NotExists,
            });
        }
        let key = key(self.expect_word("a label key or `!`")?)?;
        let op = match self.peek() {
            None | Some(Tok::Comma) => Op::Exists,
            Some(Tok::Eq | Tok::DoubleEq) => {
                self.pos += 1;
                Op::Equals(self.single_value()?)
            }
            Some(Tok::NotEq) => {
                self.pos += 1;
                Op::NotEquals(self.single_value()?)
            }
            Some(Tok::Word("in")) => {
                self.pos += 1;
                Op::In(self.value_set(&key, "in")?)
            }
            Some(Tok::Word("notin")) => {
                self.pos += 1;
                Op::NotIn(self.value_set(&key, "notin")?)
            }
            Some(_) => {
                let (offset, tok) = self.tokens[self.pos].clone();
                return Err(unexpected(
                    "`=`, `==`, `!=`, `in`, `notin`, `,` or end of input",
                    offset,
                    tok,
                ));
            }
        };
        Ok(Requirement { key, op })
    }

    /// The value after `=`, `==` or `!=`; may be empty (`a=` matches `a: ""`).
    fn single_value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            None | Some(Tok::Comma) => Ok(String::new()),
            Some(Tok::Word(_)) => value(self.expect_word("a label value")?),
            Some(_) => {
                let (offset, tok) = self.tokens[self.pos].clone();
                Err(unexpected("a label value", offset, tok))
            }
        }
    }

    /// `( v1, v2, ... )`; a value between commas may be empty, the set may not.
    fn value_set(
        &mut self,
        key: &str,
        op: &'static str,
    ) -> Result<BTreeSet<String>, SelectorError> {
        match self.next() {
            Some((_, Tok::Open)) => {}
            Some((offset, tok)) => return Err(unexpected("`(`", offset, tok)),
            None => return Err(self.end("`(`")),
        }
        if self.peek() == Some(&Tok::Close) {
            return Err(SelectorError::EmptySet {
                key: key.to_owned(),
                op,
            });
        }
        let mut set = BTreeSet::new();
        loop {
            let v = match self.peek() {
                Some(Tok::Word(_)) => value(self.expect_word("a label value")?)?,
                _ => String::new(),
            };
            set.insert(v);
            match self.next() {
                Some((_, Tok::Comma)) => {}
                Some((_, Tok::Close)) => return Ok(set),
                Some((offset, tok)) => return Err(unexpected("`,` or `)`", offset, tok)),
                None => return Err(self.end("`,` or `)`")),
            }
        }
    }
}

// === validation (the API server's rules) ===

/// A DNS-1123 subdomain part of a key or a qualified name: alphanumerics at
/// both ends, `-`, `_`, `.` inside (the label-name rule, which is the looser one).
fn name_ok(s: &str, max: usize) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err("empty name");
    }
    if bytes.len() > max {
        return Err("too long");
    }
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    if !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return Err("must start and end with a letter or digit");
    }
    if !bytes
        .iter()
        .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("only letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

fn prefix_ok(s: &str) -> Result<(), &'static str> {
    if s.len() > 253 {
        return Err("prefix longer than 253 characters");
    }
    let ok = s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    });
    if ok {
        Ok(())
    } else {
        Err("prefix must be a lower-case DNS subdomain")
    }
}

fn key(k: &str) -> Result<String, SelectorError> {
    let checked = match k.split_once('/') {
        Some((prefix, name)) => prefix_ok(prefix).and_then(|()| name_ok(name, 63)),
        None => name_ok(k, 63),
    };
    checked
        .map(|()| k.to_owned())
        .map_err(|reason| SelectorError::InvalidKey {
            key: k.to_owned(),
            reason,
        })
}

fn value(v: &str) -> Result<String, SelectorError> {
    name_ok(v, 63)
        .map(|()| v.to_owned())
        .map_err(|reason| SelectorError::InvalidValue {
            value: v.to_owned(),
            reason,
        })
}

#[cfg(test)]
mod tests;
