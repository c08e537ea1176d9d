//! `rewrite edns0` rules: set, replace, append or unset an EDNS0 option of the
//! request (CoreDNS's `EDNS0_LOCAL`, `EDNS0_NSID` and `EDNS0_SUBNET`).
//!
//! The rules only change [`Query::edns_options`] (and [`Query::nsid`]), which
//! `forward` writes into its upstream query; parsing and applying are pure.
//!
//! A match is an option with the rule's code (local: CODE, nsid: 3, subnet: 8).
//! `set` replaces the first match's data or adds the option, `replace` only
//! replaces, `append` only adds when there is no match (as CoreDNS documents
//! it), `unset` removes every match and always counts as a rewrite. A rule that
//! neither replaced nor added did not rewrite (`stop` does not end the list).

use std::net::IpAddr;

use super::parse::RuleKind;
use crate::corefile::{CorefileError, Dispenser, Token};
use crate::dns::Query;

/// What a rule does to the matching option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Replace the first match, or add the option.
    Set,
    /// Replace the first match only.
    Replace,
    /// Add the option only when there is no match.
    Append,
    /// Remove every match.
    Unset,
}

/// The option a rule writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edns0Option {
    /// `local CODE DATA`: any option code with fixed or per-query data.
    Local {
        /// The option code.
        code: u16,
        /// Its data.
        data: LocalData,
    },
    /// `nsid`: an empty NSID option (RFC 5001), asking the server to identify itself.
    Nsid,
    /// `subnet V4BITS V6BITS`: Client Subnet (RFC 7871) from the client's address.
    Subnet {
        /// Source prefix length for IPv4 clients.
        v4: u8,
        /// Source prefix length for IPv6 clients.
        v6: u8,
    },
}

/// The data of a `local` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalData {
    /// Text, or hex after `0x`.
    Bytes(Box<[u8]>),
    /// One of CoreDNS's variables, computed per query.
    Var(Variable),
}

/// The `local` data variables whose value a [`Query`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable {
    /// `{qname}`: the question name as text, fully qualified, in the client's case.
    Qname,
    /// `{qtype}`: the query type, 2 octets.
    Qtype,
    /// `{client_ip}`: 4 octets for IPv4 (also IPv4-mapped) clients, else 16.
    ClientIp,
    /// `{client_port}`: 2 octets.
    ClientPort,
    /// `{protocol}`: `udp` or `tcp`.
    Protocol,
}

/// One `edns0` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns0Rule {
    /// What it does.
    pub action: Action,
    /// To which option.
    pub option: Edns0Option,
    /// `revert`: the client never sees the rewritten options in its response.
    /// That holds for every rule here, with or without it (the response's OPT
    /// is written from the client's own request), so it needs no work.
    pub revert: bool,
}

/// The option code of NSID (RFC 5001).
const NSID: u16 = 3;
/// The option code of Client Subnet (RFC 7871).
const SUBNET: u16 = 8;

impl Edns0Rule {
    fn code(&self) -> u16 {
        match self.option {
            Edns0Option::Local { code, .. } => code,
            Edns0Option::Nsid => NSID,
            Edns0Option::Subnet { .. } => SUBNET,
        }
    }

    /// The option's data for this query.
    fn data(&self, q: &Query) -> Box<[u8]> {
        match &self.option {
            Edns0Option::Local {
                data: LocalData::Bytes(b),
                ..
            } => b.clone(),
            Edns0Option::Local {
                data: LocalData::Var(v),
                ..
            } => variable(*v, q),
            Edns0Option::Nsid => Box::default(),
            Edns0Option::Subnet { v4, v6 } => client_subnet(q.src.ip(), *v4, *v6),
        }
    }

    /// Apply the rule to `q`'s options; whether it rewrote them.
    pub fn apply(&self, q: &mut Query) -> bool {
        let code = self.code();
        let data = (self.action != Action::Unset).then(|| self.data(q));
        let options = q.edns_options.get_or_insert_with(Box::default);
        let done = match (self.action, data) {
            (Action::Unset, _) | (_, None) => {
                options.retain(|(c, _)| *c != code);
                true
            }
            (action, Some(data)) => match options.iter_mut().find(|(c, _)| *c == code) {
                Some(found) if matches!(action, Action::Set | Action::Replace) => {
                    found.1 = data;
                    true
                }
                None if matches!(action, Action::Set | Action::Append) => {
                    options.push((code, data));
                    true
                }
                _ => false,
            },
        };
        if code == NSID {
            q.nsid = options.iter().any(|(c, _)| *c == NSID);
        }
        if options.is_empty() {
            q.edns_options = None;
        }
        done
    }
}

fn variable(v: Variable, q: &Query) -> Box<[u8]> {
    match v {
        Variable::Qname => q.name.to_ascii().into_bytes().into(),
        Variable::Qtype => u16::from(q.qtype).to_be_bytes().into(),
        Variable::ClientIp => match q.src.ip().to_canonical() {
            IpAddr::V4(a) => a.octets().into(),
            IpAddr::V6(a) => a.octets().into(),
        },
        Variable::ClientPort => q.src.port().to_be_bytes().into(),
        Variable::Protocol => q.transport.as_str().as_bytes().into(),
    }
}

/// The Client Subnet option data (RFC 7871 section 6): family, source prefix,
/// scope 0, and the address cut to the prefix, in as many octets as it needs.
pub fn client_subnet(ip: IpAddr, v4_bits: u8, v6_bits: u8) -> Box<[u8]> {
    let (family, bits, octets): (u16, u8, Vec<u8>) = match ip.to_canonical() {
        IpAddr::V4(a) => (1, v4_bits.min(32), a.octets().to_vec()),
        IpAddr::V6(a) => (2, v6_bits.min(128), a.octets().to_vec()),
    };
    let len = usize::from(bits).div_ceil(8);
    let mut data = Vec::with_capacity(4 + len);
    data.extend_from_slice(&family.to_be_bytes());
    data.extend_from_slice(&[bits, 0]);
    data.extend(octets.iter().take(len).enumerate().map(|(i, o)| {
        // Bits of this octet inside the prefix.
        let keep = usize::from(bits).saturating_sub(i * 8).min(8);
        let mask = u8::MAX.checked_shl(8 - keep as u32).unwrap_or(0);
        o & mask
    }));
    data.into_boxed_slice()
}

const ACTIONS: &str = "set, replace, append or unset";

/// `edns0 local|nsid|subnet ACTION ARGS... [revert]` (the tokens after `edns0`).
pub(super) fn parse_edns0(
    d: &Dispenser<'_>,
    field: &Token,
    rest: &[&Token],
) -> Result<RuleKind, CorefileError> {
    let [kind, action_tok, args @ ..] = rest else {
        return Err(d.err_at(
            rest.last().copied().unwrap_or(field),
            "edns0: too few arguments (local|nsid|subnet ACTION ...)",
        ));
    };
    let action = match action_tok.text.to_ascii_lowercase().as_str() {
        "set" => Action::Set,
        "replace" => Action::Replace,
        "append" => Action::Append,
        "unset" => Action::Unset,
        _ => {
            return Err(d.err_at(
                action_tok,
                format!(
                    "edns0: invalid action '{}' (use {ACTIONS})",
                    action_tok.text
                ),
            ));
        }
    };
    let (args, revert) = match args.split_last() {
        Some((last, before)) if action != Action::Unset && last.text == "revert" => (before, true),
        _ => (args, false),
    };
    let kind_name = kind.text.to_ascii_lowercase();
    let want: &[&str] = match (kind_name.as_str(), action) {
        ("local", Action::Unset) => &["CODE"],
        ("local", _) => &["CODE", "DATA"],
        ("nsid", _) | ("subnet", Action::Unset) => &[],
        ("subnet", _) => &["V4BITMASK", "V6BITMASK"],
        _ => {
            return Err(d.err_at(
                kind,
                format!(
                    "edns0: invalid rule type '{}' (use local, nsid or subnet)",
                    kind.text
                ),
            ));
        }
    };
    if args.len() != want.len() {
        // The first extra argument, or the last one given when some are missing.
        let at = args
            .get(want.len())
            .or(args.last())
            .copied()
            .unwrap_or(action_tok);
        let takes = if want.is_empty() {
            "no arguments".to_string()
        } else {
            want.join(" ")
        };
        return Err(d.err_at(
            at,
            format!("edns0 {kind_name} {}: takes {takes}", action_name(action)),
        ));
    }
    let option = match (kind_name.as_str(), args) {
        ("local", [code, rest @ ..]) => Edns0Option::Local {
            code: option_code(d, code)?,
            data: match rest {
                [data] => local_data(d, data)?,
                _ => LocalData::Bytes(Box::default()),
            },
        },
        ("subnet", [v4, v6]) => Edns0Option::Subnet {
            v4: prefix_len(d, v4, 32)?,
            v6: prefix_len(d, v6, 128)?,
        },
        ("subnet", _) => Edns0Option::Subnet { v4: 0, v6: 0 },
        _ => Edns0Option::Nsid,
    };
    Ok(RuleKind::Edns0(Edns0Rule {
        action,
        option,
        revert,
    }))
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Set => "set",
        Action::Replace => "replace",
        Action::Append => "append",
        Action::Unset => "unset",
    }
}

/// An unsigned number as Go's `strconv.ParseUint(s, 0, ..)` reads it: `0x` hex,
/// `0o` or a leading `0` octal, `0b` binary, else decimal.
fn go_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn option_code(d: &Dispenser<'_>, t: &Token) -> Result<u16, CorefileError> {
    go_uint(&t.text)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            d.err_at(
                t,
                format!(
                    "edns0 local: invalid option code '{}' (0-65535, e.g. 0xffee)",
                    t.text
                ),
            )
        })
}

fn prefix_len(d: &Dispenser<'_>, t: &Token, max: u8) -> Result<u8, CorefileError> {
    go_uint(&t.text)
        .filter(|n| *n <= u64::from(max))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| {
            d.err_at(
                t,
                format!(
                    "edns0 subnet: invalid IPv{} bit mask length '{}' (0-{max})",
                    if max == 32 { 4 } else { 6 },
                    t.text
                ),
            )
        })
}

/// Text, hex after `0x`, or a `{variable}`.
fn local_data(d: &Dispenser<'_>, t: &Token) -> Result<LocalData, CorefileError> {
    let s = t.text.as_str();
    if s.starts_with('{') && s.ends_with('}') {
        let var = match s {
            "{qname}" => Variable::Qname,
            "{qtype}" => Variable::Qtype,
            "{client_ip}" => Variable::ClientIp,
            "{client_port}" => Variable::ClientPort,
            "{protocol}" => Variable::Protocol,
            "{server_ip}" | "{server_port}" => {
                return Err(d.err_at(
                    t,
                    format!(
                        "edns0 local: {s} is not supported by clusterdns: plugins do not see \
                         the address a query arrived at"
                    ),
                ));
            }
            _ if s[1..s.len() - 1].contains('/') => {
                return Err(d.err_at(
                    t,
                    format!(
                        "edns0 local: metadata label {s} is not supported by clusterdns: \
                         there is no metadata plugin"
                    ),
                ));
            }
            _ => {
                return Err(d.err_at(
                    t,
                    format!(
                        "edns0 local: unsupported variable {s} (use {{qname}}, {{qtype}}, \
                         {{client_ip}}, {{client_port}} or {{protocol}})"
                    ),
                ));
            }
        };
        return Ok(LocalData::Var(var));
    }
    let bytes = match s.strip_prefix("0x") {
        Some(hex) => decode_hex(hex).ok_or_else(|| {
            d.err_at(
                t,
                format!(
                    "edns0 local: invalid hex data '{s}' (an even number of hex digits after 0x)"
                ),
            )
        })?,
        None => s.as_bytes().to_vec(),
    };
    Ok(LocalData::Bytes(bytes.into_boxed_slice()))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}
