//! Text to [`Expr`]: a lexer and a recursive-descent parser for the grammar
//! in the module doc; regular expressions are compiled here, once.

use regex::Regex;

use super::{Expr, FUNCS, LitValue, Op, ParseError, err};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Ident(String),
    Sym(&'static str),
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
