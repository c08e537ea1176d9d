//! The small subset of Go templates that CoreDNS's *template* plugin is used with, and
//! the RFC 1035 text form of one resource record.
//!
//! Invariant: a template is compiled once at parse time; every `{{ ... }}` is one of the
//! known placeholders, so rendering can only fail on data (a `.Match` index past the
//! groups, a `parseInt` of a non-number), never on syntax.

use std::collections::HashMap;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// A value a placeholder reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// `.Name`: the query name, lower-case.
    Name,
    /// `.Zone`: the matched zone.
    Zone,
    /// `.Class`.
    Class,
    /// `.Type`.
    Type,
    /// `.Remote`: the client IP.
    Remote,
    /// `.Regex`: the regex that matched.
    Regex,
    /// `.Match N` / `index .Match N`.
    Match(usize),
    /// `.Group.NAME` / `index .Group "NAME"`.
    Group(String),
}

/// One piece of a compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Text copied as is.
    Lit(String),
    /// A placeholder.
    Field(Field),
    /// `parseInt FIELD BASE BITS` (Go's `strconv.ParseUint`).
    ParseInt(Field, u32, u32),
}

/// A compiled template: its source (the metrics' `template` label) and its pieces.
#[derive(Clone, Debug)]
pub(crate) struct Text {
    pub(crate) source: String,
    segs: Vec<Seg>,
}

/// The data a template is rendered with.
pub(crate) struct Data<'a> {
    pub(crate) name: &'a str,
    pub(crate) zone: &'a str,
    pub(crate) class: &'a str,
    pub(crate) qtype: &'a str,
    pub(crate) remote: &'a str,
    pub(crate) regex: &'a str,
    pub(crate) matches: &'a [String],
    pub(crate) groups: &'a HashMap<String, String>,
}

const SUPPORTED: &str = ".Name, .Zone, .Class, .Type, .Remote, .Regex, .Match N, index .Match N, \
                         .Group.NAME, index .Group \"NAME\", parseInt FIELD BASE BITS";

/// Compile `src`; an error is (byte offset in `src`, message).
pub(crate) fn compile(src: &str) -> Result<Text, (usize, String)> {
    let mut segs = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segs.push(Seg::Lit(rest[..open].to_string()));
        }
        let inner_start = open + 2;
        let Some(close) = rest[inner_start..].find("}}") else {
            return Err((offset + open, "unclosed '{{'".to_string()));
        };
        let inner = &rest[inner_start..inner_start + close];
        let seg = placeholder(inner).ok_or_else(|| {
            (
                offset + open,
                format!("unknown placeholder '{{{{{inner}}}}}' (supported: {SUPPORTED})"),
            )
        })?;
        segs.push(seg);
        let consumed = inner_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        segs.push(Seg::Lit(rest.to_string()));
    }
    Ok(Text {
        source: src.to_string(),
        segs,
    })
}

fn placeholder(inner: &str) -> Option<Seg> {
    let words: Vec<&str> = inner.split_whitespace().collect();
    match words.as_slice() {
        ["parseInt", field @ .., base, bits] => {
            let f = field_of(field)?;
            let base: u32 = base
                .parse()
                .ok()
                .filter(|b| (2..=36).contains(b) || *b == 0)?;
            let bits: u32 = bits.parse().ok().filter(|b| (1..=64).contains(b))?;
            Some(Seg::ParseInt(f, base, bits))
        }
        words => field_of(words).map(Seg::Field),
    }
}

fn field_of(words: &[&str]) -> Option<Field> {
    Some(match words {
        [".Name"] => Field::Name,
        [".Zone"] => Field::Zone,
        [".Class"] => Field::Class,
        [".Type"] => Field::Type,
        [".Remote"] => Field::Remote,
        [".Regex"] => Field::Regex,
        [".Match", n] | ["index", ".Match", n] => Field::Match(n.parse().ok()?),
        ["index", ".Group", key] => {
            let key = key.strip_prefix('"')?.strip_suffix('"')?;
            Field::Group(key.to_string())
        }
        [g] => {
            let key = g.strip_prefix(".Group.")?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            Field::Group(key.to_string())
        }
        _ => return None,
    })
}

impl Text {
    /// Render with `data`; an error says which placeholder had no value.
    pub(crate) fn render(&self, data: &Data<'_>) -> Result<String, String> {
        let mut out = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Field(f) => out.push_str(value(f, data)?),
                Seg::ParseInt(f, base, bits) => {
                    let v = value(f, data)?;
                    let n = parse_uint(v, *base, *bits).ok_or_else(|| {
                        format!("parseInt: '{v}' is not a {bits}-bit number in base {base}")
                    })?;
                    out.push_str(&n.to_string());
                }
            }
        }
        Ok(out)
    }
}

fn value<'a>(f: &Field, data: &Data<'a>) -> Result<&'a str, String> {
    Ok(match f {
        Field::Name => data.name,
        Field::Zone => data.zone,
        Field::Class => data.class,
        Field::Type => data.qtype,
        Field::Remote => data.remote,
        Field::Regex => data.regex,
        Field::Match(i) => data.matches.get(*i).map(String::as_str).ok_or_else(|| {
            format!(
                "index out of range: {i} (the regex has {} matches)",
                data.matches.len()
            )
        })?,
        // Go: a missing key of a map[string]string renders as "".
        Field::Group(k) => data.groups.get(k).map_or("", String::as_str),
    })
}

/// Go's `strconv.ParseUint(s, base, bits)` (base 0: prefix decides).
fn parse_uint(s: &str, base: u32, bits: u32) -> Option<u64> {
    let (digits, radix) = if base == 0 {
        if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            (h, 16)
        } else if let Some(b) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
            (b, 2)
        } else if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
            (o, 8)
        } else if s.len() > 1 && s.starts_with('0') {
            (&s[1..], 8)
        } else {
            (s, 10)
        }
    } else {
        (s, base)
    };
    if digits.is_empty() || digits.starts_with('+') {
        return None;
    }
    let n = u64::from_str_radix(digits, radix).ok()?;
    (bits == 64 || n < (1u64 << bits)).then_some(n)
}

/// Parse one record in zone-file form: `NAME [TTL] [CLASS] TYPE RDATA` (TTL and class in
/// either order; TTL defaults to 3600 and class to IN, as miekg/dns's `NewRR`). Relative
/// names are taken as fully qualified, as there is no `$ORIGIN`.
pub(crate) fn parse_rr(text: &str) -> Result<Record, String> {
    let mut rest = text.trim_start();
    let next_word = |rest: &mut &str| -> Option<String> {
        let s = rest.trim_start();
        if s.is_empty() {
            return None;
        }
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        let w = s[..end].to_string();
        *rest = &s[end..];
        Some(w)
    };
    let owner = next_word(&mut rest).ok_or("empty record")?;
    let name = fqdn(&owner)?;
    let (mut ttl, mut class, mut rtype) = (None, None, None);
    while rtype.is_none() {
        let w = next_word(&mut rest).ok_or_else(|| format!("'{text}': missing record type"))?;
        if ttl.is_none() && !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) {
            ttl = Some(w.parse::<u32>().map_err(|_| format!("'{w}': bad TTL"))?);
        } else if class.is_none()
            && let Some(c) = class_of(&w)
        {
            class = Some(c);
        } else {
            let t = w
                .to_ascii_uppercase()
                .parse::<RecordType>()
                .map_err(|_| format!("'{w}': unknown record type"))?;
            rtype = Some(t);
        }
    }
    let rtype = rtype.ok_or("missing record type")?;
    let mut data = RData::try_from_str(rtype, rest.trim())
        .map_err(|e| format!("'{}': bad {rtype} data: {e}", rest.trim()))?;
    qualify(&mut data);
    let mut rr = Record::from_rdata(name, ttl.unwrap_or(3600), data);
    rr.dns_class = class.unwrap_or(DNSClass::IN);
    Ok(rr)
}

fn class_of(w: &str) -> Option<DNSClass> {
    match w.to_ascii_uppercase().as_str() {
        "IN" => Some(DNSClass::IN),
        "CH" => Some(DNSClass::CH),
        "HS" => Some(DNSClass::HS),
        "ANY" => Some(DNSClass::ANY),
        "NONE" => Some(DNSClass::NONE),
        _ => None,
    }
}

fn fqdn(s: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(s).map_err(|e| format!("'{s}': bad name: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

/// Names in record data are absolute (no `$ORIGIN` to append).
fn qualify(data: &mut RData) {
    crate::plugin::rdata::for_each_name_mut(data, |n: &mut Name| {
        n.set_fqdn(true);
    });
}
