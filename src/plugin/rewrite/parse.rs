//! Parsing `rewrite` lines with CoreDNS's grammar (plugin/rewrite/setup.go, rule.go,
//! name.go): `rewrite [continue|stop] FIELD ARGS...`, or the block form whose lines are
//! read as one argument list.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RecordType};
use regex::Regex;

use crate::corefile::{CorefileError, Dispenser, Token};

/// All `rewrite` directives of one server block, in the order written.
#[derive(Clone, Debug, Default)]
pub struct RewriteConfig {
    /// The rules, tried in order.
    pub rules: Vec<Rule>,
}

/// What happens after a rule matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `stop` (the default): no later rule is tried.
    Stop,
    /// `continue`: later rules see the rewritten query.
    Continue,
}

/// One rewrite rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// `stop` or `continue`.
    pub mode: Mode,
    /// What it rewrites.
    pub kind: RuleKind,
    /// Where it was written (`file:line:col`), for startup errors.
    pub at: String,
}

/// The field a rule rewrites.
#[derive(Clone, Debug)]
pub enum RuleKind {
    /// `name`: the question name; `answers` map the response back.
    Name {
        /// How the name is matched and rewritten.
        matcher: NameMatch,
        /// Response rewrites, applied when the rule rewrote the question.
        answers: Vec<ResponseRule>,
    },
    /// `type FROM TO`.
    Type {
        /// Matched query type.
        from: RecordType,
        /// Replacement.
        to: RecordType,
    },
    /// `class FROM TO`.
    Class {
        /// Matched query class.
        from: DNSClass,
        /// Replacement.
        to: DNSClass,
    },
    /// `ttl [MATCH] NAME TTL`: response TTLs clamped into `min..=max`.
    Ttl {
        /// Which question names it applies to (only `from` is used).
        matcher: NameMatch,
        /// Lowest TTL.
        min: u32,
        /// Highest TTL.
        max: u32,
    },
    /// `cname [MATCH] FROM TO`: CNAME targets in the answer are rewritten and the new
    /// target looked up.
    Cname {
        /// Which targets, and their replacement.
        matcher: NameMatch,
    },
    /// `edns0 local|nsid|subnet ACTION ...`: an EDNS0 option of the request.
    Edns0(super::edns0::Edns0Rule),
    /// `rcode [MATCH] NAME FROM TO`: an answer with response code `from` to a matching
    /// question gets `to` instead.
    Rcode {
        /// Which question names it applies to (only `from` is used).
        matcher: NameMatch,
        /// Matched response code.
        from: ResponseCode,
        /// Replacement.
        to: ResponseCode,
    },
}

/// A name match and its replacement (CoreDNS's exact/prefix/suffix/substring/regex).
#[derive(Clone, Debug)]
pub enum NameMatch {
    /// The whole (lower-case, fully qualified) name equals `from`.
    Exact {
        /// Matched.
        from: String,
        /// Replacement.
        to: String,
    },
    /// The name starts with `from`.
    Prefix {
        /// Matched.
        from: String,
        /// Replacement.
        to: String,
    },
    /// The name ends with `from`.
    Suffix {
        /// Matched.
        from: String,
        /// Replacement.
        to: String,
    },
    /// The name contains `from` (every occurrence is replaced).
    Substring {
        /// Matched.
        from: String,
        /// Replacement.
        to: String,
    },
    /// The regex matches; `{N}` in `to` is group N.
    Regex {
        /// Pattern.
        re: Regex,
        /// Replacement template.
        to: String,
    },
}

/// Which names of the response a [`ResponseRule`] rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Owner names of the records (`answer name`, `answer auto`).
    Owner,
    /// Names inside record data: CNAME, NS, PTR, MX, SRV, SOA (`answer value`).
    Value,
}

/// A response rewrite of a `name` rule.
#[derive(Clone, Debug)]
pub struct ResponseRule {
    /// Owner names or record data.
    pub target: Target,
    /// The mapping.
    pub matcher: NameMatch,
}

/// Parse one `rewrite` directive into one rule.
pub fn parse(d: &mut Dispenser<'_>) -> Result<Rule, CorefileError> {
    let dir = d.directive();
    let mut args: Vec<&Token> = d.remaining().iter().collect();
    if args.len() < 2 {
        // The block form: its lines are one argument list (`rewrite stop { name ...; answer ... }`).
        for line in d.block() {
            args.push(&line.name);
            args.extend(line.args.iter());
        }
    } else if let Some(line) = d.block().first() {
        return Err(d.err_at(
            &line.name,
            "a rule given on the directive line takes no block",
        ));
    }
    let Some(first) = args.first() else {
        return Err(
            d.err("missing argument: FIELD (name, type, class, ttl, edns0, cname or rcode)")
        );
    };
    let (mode, rest) = match first.text.to_ascii_lowercase().as_str() {
        "continue" => (Mode::Continue, &args[1..]),
        "stop" => (Mode::Stop, &args[1..]),
        _ => (Mode::Stop, &args[..]),
    };
    let Some((field, rest)) = rest.split_first() else {
        return Err(d.err_at(
            first,
            format!("{} rule must begin with a rule type", first.text),
        ));
    };
    let kind = match field.text.to_ascii_lowercase().as_str() {
        "name" => parse_name(d, field, rest)?,
        "type" => {
            let [from, to] = exactly_two(d, field, rest)?;
            RuleKind::Type {
                from: record_type(d, from)?,
                to: record_type(d, to)?,
            }
        }
        "class" => {
            let [from, to] = exactly_two(d, field, rest)?;
            RuleKind::Class {
                from: class(d, from)?,
                to: class(d, to)?,
            }
        }
        "ttl" => parse_ttl(d, field, rest)?,
        "rcode" => parse_rcode(d, field, rest)?,
        "cname" => parse_cname(d, field, rest)?,
        "edns0" => super::edns0::parse_edns0(d, field, rest)?,
        "answer" => {
            return Err(d.err_at(field, "response rewrites must begin with a name rule"));
        }
        other => return Err(d.err_at(field, format!("invalid rule type '{other}'"))),
    };
    let p = &dir.name.pos;
    Ok(Rule {
        mode,
        kind,
        at: format!("{}:{}:{}", p.file.display(), p.line, p.col),
    })
}

fn exactly_two<'t>(
    d: &Dispenser<'_>,
    field: &Token,
    rest: &[&'t Token],
) -> Result<[&'t Token; 2], CorefileError> {
    match rest {
        [a, b] => Ok([a, b]),
        [_, _, extra, ..] => Err(d.err_at(extra, format!("unexpected argument '{}'", extra.text))),
        _ => Err(d.err_at(
            rest.last().copied().unwrap_or(field),
            format!("{} rules must have exactly two arguments", field.text),
        )),
    }
}

const MATCH_TYPES: &[&str] = &["exact", "prefix", "suffix", "substring", "regex"];

fn parse_name(
    d: &Dispenser<'_>,
    field: &Token,
    rest: &[&Token],
) -> Result<RuleKind, CorefileError> {
    let (kind, from, to, options) = match rest {
        [from, to] => ("exact".to_string(), *from, *to, &[][..]),
        [kind, from, to, options @ ..] => {
            let k = kind.text.to_ascii_lowercase();
            if !MATCH_TYPES.contains(&k.as_str()) {
                return Err(d.err_at(
                    kind,
                    format!(
                        "name: unknown match type '{}' (use {})",
                        kind.text,
                        MATCH_TYPES.join(", ")
                    ),
                ));
            }
            (k, *from, *to, options)
        }
        _ => {
            return Err(d.err_at(
                rest.last().copied().unwrap_or(field),
                "name: too few arguments (FROM TO)",
            ));
        }
    };
    let matcher = name_match(d, &kind, from, to)?;
    let (auto, mut answers) = parse_answers(d, options)?;
    let reverse = match &matcher {
        // Answers of exact rewrites are always mapped back (CoreDNS).
        NameMatch::Exact { from, to } => Some(NameMatch::Exact {
            from: to.clone(),
            to: from.clone(),
        }),
        _ if !auto => None,
        NameMatch::Prefix { from, to } => Some(NameMatch::Prefix {
            from: to.clone(),
            to: from.clone(),
        }),
        NameMatch::Suffix { from, to } => Some(NameMatch::Suffix {
            from: to.clone(),
            to: from.clone(),
        }),
        NameMatch::Substring { from, to } => Some(NameMatch::Substring {
            from: to.clone(),
            to: from.clone(),
        }),
        NameMatch::Regex { .. } => {
            return Err(d.err_at(
                options[0],
                "name: 'answer auto' cannot invert a regex; use 'answer name FROM TO'",
            ));
        }
    };
    if let Some(matcher) = reverse {
        answers.insert(
            0,
            ResponseRule {
                target: Target::Owner,
                matcher,
            },
        );
    }
    Ok(RuleKind::Name { matcher, answers })
}

/// `answer auto`, `answer name FROM TO`, `answer value FROM TO`, repeated; `answer` may be
/// left out after the first.
fn parse_answers(
    d: &Dispenser<'_>,
    options: &[&Token],
) -> Result<(bool, Vec<ResponseRule>), CorefileError> {
    let mut auto = false;
    let mut rules = Vec::new();
    let mut i = 0;
    while i < options.len() {
        let mut t = options[i];
        if t.text.eq_ignore_ascii_case("answer") {
            i += 1;
            t = options
                .get(i)
                .copied()
                .ok_or_else(|| d.err_at(t, "answer: missing auto, name or value"))?;
        } else if i == 0 {
            return Err(d.err_at(
                t,
                format!("unexpected argument '{}' (expected 'answer')", t.text),
            ));
        }
        let target = match t.text.to_ascii_lowercase().as_str() {
            "auto" => {
                auto = true;
                i += 1;
                continue;
            }
            "name" => Target::Owner,
            "value" => Target::Value,
            _ => {
                return Err(d.err_at(
                    t,
                    format!(
                        "answer: unknown response rewrite '{}' (use auto, name or value)",
                        t.text
                    ),
                ));
            }
        };
        let (Some(from), Some(to)) = (options.get(i + 1), options.get(i + 2)) else {
            return Err(d.err_at(
                options.last().copied().unwrap_or(t),
                format!("answer {}: missing argument: FROM TO", t.text),
            ));
        };
        rules.push(ResponseRule {
            target,
            matcher: regex_match(d, from, to)?,
        });
        i += 3;
    }
    Ok((auto, rules))
}

fn parse_ttl(d: &Dispenser<'_>, field: &Token, rest: &[&Token]) -> Result<RuleKind, CorefileError> {
    let (kind, from, ttl) = match rest {
        [from, ttl] => ("exact".to_string(), *from, *ttl),
        [kind, from, ttl] => {
            let k = kind.text.to_ascii_lowercase();
            if !MATCH_TYPES.contains(&k.as_str()) {
                return Err(d.err_at(
                    kind,
                    format!(
                        "ttl: unknown match type '{}' (use {})",
                        kind.text,
                        MATCH_TYPES.join(", ")
                    ),
                ));
            }
            (k, *from, *ttl)
        }
        [_, _, _, extra, ..] => {
            return Err(d.err_at(extra, format!("unexpected argument '{}'", extra.text)));
        }
        _ => {
            return Err(d.err_at(
                rest.last().copied().unwrap_or(field),
                "ttl: too few arguments (NAME TTL)",
            ));
        }
    };
    // The replacement is unused: only the question match matters.
    let matcher = name_match(d, &kind, from, from)?;
    let (min, max) = ttl_range(d, ttl)?;
    Ok(RuleKind::Ttl { matcher, min, max })
}

/// CoreDNS's cname rule: FROM/TO lower-cased; only `exact` ones are made fully
/// qualified (a prefix such as `www-` must stay as written to match).
fn parse_cname(
    d: &Dispenser<'_>,
    field: &Token,
    rest: &[&Token],
) -> Result<RuleKind, CorefileError> {
    let (kind, from, to) = match rest {
        [from, to] => ("exact".to_string(), *from, *to),
        [kind, from, to] => {
            let k = kind.text.to_ascii_lowercase();
            if !MATCH_TYPES.contains(&k.as_str()) {
                return Err(d.err_at(
                    kind,
                    format!(
                        "cname: unknown match type '{}' (use {})",
                        kind.text,
                        MATCH_TYPES.join(", ")
                    ),
                ));
            }
            (k, *from, *to)
        }
        [_, _, _, extra, ..] => {
            return Err(d.err_at(extra, format!("unexpected argument '{}'", extra.text)));
        }
        _ => {
            return Err(d.err_at(
                rest.last().copied().unwrap_or(field),
                "cname: too few arguments (FROM TO)",
            ));
        }
    };
    let (f, t) = (from.text.to_ascii_lowercase(), to.text.to_ascii_lowercase());
    let matcher = match kind.as_str() {
        "prefix" => NameMatch::Prefix { from: f, to: t },
        "suffix" => NameMatch::Suffix { from: f, to: t },
        "substring" => NameMatch::Substring { from: f, to: t },
        "regex" => regex_match(d, from, to)?,
        _ => NameMatch::Exact {
            from: normalize(&f),
            to: normalize(&t),
        },
    };
    Ok(RuleKind::Cname { matcher })
}

fn parse_rcode(
    d: &Dispenser<'_>,
    field: &Token,
    rest: &[&Token],
) -> Result<RuleKind, CorefileError> {
    let (kind, name, from, to) = match rest {
        [name, from, to] => ("exact".to_string(), *name, *from, *to),
        [kind, name, from, to] => {
            let k = kind.text.to_ascii_lowercase();
            if !MATCH_TYPES.contains(&k.as_str()) {
                return Err(d.err_at(
                    kind,
                    format!(
                        "rcode: unknown match type '{}' (use {})",
                        kind.text,
                        MATCH_TYPES.join(", ")
                    ),
                ));
            }
            (k, *name, *from, *to)
        }
        [_, _, _, _, extra, ..] => {
            return Err(d.err_at(extra, format!("unexpected argument '{}'", extra.text)));
        }
        _ => {
            return Err(d.err_at(
                rest.last().copied().unwrap_or(field),
                "rcode: too few arguments (NAME FROM TO)",
            ));
        }
    };
    // The replacement is unused: only the question match matters.
    let matcher = name_match(d, &kind, name, name)?;
    Ok(RuleKind::Rcode {
        matcher,
        from: response_code(d, from)?,
        to: response_code(d, to)?,
    })
}

/// A response code as CoreDNS's rcode rule takes it: a number up to 23 or a miekg/dns
/// name (`NOERROR`, `SERVFAIL`, `NXDOMAIN`, ...), case-insensitive.
fn response_code(d: &Dispenser<'_>, t: &Token) -> Result<ResponseCode, CorefileError> {
    let by_number = t
        .text
        .parse::<u16>()
        .ok()
        .filter(|n| *n <= 23)
        .map(<ResponseCode as From<u16>>::from);
    by_number
        .or_else(|| crate::plugin::forward::rcode(&t.text))
        .ok_or_else(|| {
            d.err_at(
                t,
                format!(
                    "rcode: invalid response code '{}' (a name such as NOERROR, SERVFAIL, NXDOMAIN, or 0-23)",
                    t.text
                ),
            )
        })
}

/// `N`, `MIN-MAX`, `MIN-` or `-MAX` (CoreDNS's ttl rule).
fn ttl_range(d: &Dispenser<'_>, t: &Token) -> Result<(u32, u32), CorefileError> {
    let what = d.what("ttl");
    let num = |s: &str| Token::new(s, t.pos.clone()).parse_u32(&what, 0..=i32::MAX as u32);
    let (min, max) = match t.text.split_once('-') {
        None => {
            let n = num(&t.text)?;
            (n, n)
        }
        Some(("", "")) => return Err(d.err_at(t, format!("ttl: invalid range '{}'", t.text))),
        Some((lo, hi)) => (
            if lo.is_empty() { 0 } else { num(lo)? },
            if hi.is_empty() {
                i32::MAX as u32
            } else {
                num(hi)?
            },
        ),
    };
    if min > max {
        return Err(d.err_at(t, format!("ttl: invalid range '{}': {min} > {max}", t.text)));
    }
    Ok((min, max))
}

/// CoreDNS's `plugin.Name(x).Normalize()`: lower-case, fully qualified.
fn normalize(s: &str) -> String {
    let mut s = s.to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

fn name_match(
    d: &Dispenser<'_>,
    kind: &str,
    from: &Token,
    to: &Token,
) -> Result<NameMatch, CorefileError> {
    let (f, t) = (normalize(&from.text), normalize(&to.text));
    Ok(match kind {
        "prefix" => NameMatch::Prefix { from: f, to: t },
        "suffix" => NameMatch::Suffix { from: f, to: t },
        "substring" => NameMatch::Substring { from: f, to: t },
        "regex" => regex_match(d, from, to)?,
        _ => NameMatch::Exact { from: f, to: t },
    })
}

fn regex_match(d: &Dispenser<'_>, from: &Token, to: &Token) -> Result<NameMatch, CorefileError> {
    let re = Regex::new(&from.text)
        .map_err(|e| d.err_at(from, format!("invalid regex '{}': {e}", from.text)))?;
    let groups = re.captures_len() - 1;
    let highest = (0..=100)
        .rev()
        .find(|n| to.text.contains(&format!("{{{n}}}")));
    if let Some(n) = highest.filter(|n| *n > groups) {
        return Err(d.err_at(
            to,
            format!(
                "'{}' uses group {{{n}}} but '{}' has {groups} group(s)",
                to.text, from.text
            ),
        ));
    }
    Ok(NameMatch::Regex {
        re,
        to: normalize(&to.text),
    })
}

fn record_type(d: &Dispenser<'_>, t: &Token) -> Result<RecordType, CorefileError> {
    t.text
        .to_ascii_uppercase()
        .parse::<RecordType>()
        .map_err(|_| d.err_at(t, format!("invalid record type '{}'", t.text)))
}

fn class(d: &Dispenser<'_>, t: &Token) -> Result<DNSClass, CorefileError> {
    match t.text.to_ascii_uppercase().as_str() {
        "IN" => Ok(DNSClass::IN),
        "CH" => Ok(DNSClass::CH),
        "HS" => Ok(DNSClass::HS),
        "ANY" => Ok(DNSClass::ANY),
        "NONE" => Ok(DNSClass::NONE),
        _ => Err(d.err_at(t, format!("invalid class '{}' (use IN, CH, HS)", t.text))),
    }
}
