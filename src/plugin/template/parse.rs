//! Parsing `template` with CoreDNS's option names (plugin/template/setup.go); templates
//! are compiled here so a bad placeholder is reported at its line and column.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use regex::Regex;

use super::text::{self, Text};
use crate::corefile::{CorefileError, Dispenser, Pos, Token};

/// Every `template` directive of one server block, in the order written.
#[derive(Clone, Debug, Default)]
pub struct TemplateConfig {
    /// The templates, tried in order.
    pub templates: Vec<TemplateDef>,
}

/// One `template` directive.
#[derive(Clone, Debug)]
pub struct TemplateDef {
    /// CLASS (ANY matches every class).
    pub class: DNSClass,
    /// TYPE (ANY matches every type).
    pub qtype: RecordType,
    /// ZONE...; empty means the server block's zones.
    pub zones: Vec<Name>,
    /// `match` regexes; `.*` when none is given.
    pub regex: Vec<Regex>,
    pub(crate) answer: Vec<Text>,
    pub(crate) additional: Vec<Text>,
    pub(crate) authority: Vec<Text>,
    /// `rcode` (default NOERROR).
    pub rcode: ResponseCode,
    /// `fallthrough [ZONE...]`: `None` off, `Some(empty)` every zone.
    pub fallthrough: Option<Vec<Name>>,
    /// `ederror CODE [REASON]`: an Extended DNS Error (RFC 8914) on the answer.
    pub ederror: Option<(u16, std::sync::Arc<str>)>,
    /// Where it was written (`file:line:col`).
    pub at: String,
}

/// A zone argument: lower-case, fully qualified.
pub(crate) fn zone_arg(d: &Dispenser<'_>, t: &Token) -> Result<Name, CorefileError> {
    let mut text = t.text.to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    Name::from_ascii(&text).map_err(|e| d.err_at(t, format!("bad zone '{}': {e}", t.text)))
}

/// Parse one `template` directive.
pub fn parse(d: &mut Dispenser<'_>) -> Result<TemplateDef, CorefileError> {
    let class_tok = d.expect_arg("CLASS")?;
    let class = match class_tok.text.to_ascii_uppercase().as_str() {
        "IN" => DNSClass::IN,
        "CH" => DNSClass::CH,
        "HS" => DNSClass::HS,
        "ANY" => DNSClass::ANY,
        "NONE" => DNSClass::NONE,
        _ => {
            return Err(d.err_at(
                class_tok,
                format!("invalid query class '{}'", class_tok.text),
            ));
        }
    };
    let type_tok = d.expect_arg("TYPE")?;
    let qtype = type_tok
        .text
        .to_ascii_uppercase()
        .parse::<RecordType>()
        .map_err(|_| d.err_at(type_tok, format!("invalid query type '{}'", type_tok.text)))?;
    let zones = d
        .remaining()
        .iter()
        .map(|t| zone_arg(d, t))
        .collect::<Result<Vec<_>, _>>()?;
    let p = &d.directive().name.pos;
    let mut def = TemplateDef {
        class,
        qtype,
        zones,
        regex: Vec::new(),
        answer: Vec::new(),
        additional: Vec::new(),
        authority: Vec::new(),
        rcode: ResponseCode::NoError,
        fallthrough: None,
        ederror: None,
        at: format!("{}:{}:{}", p.file.display(), p.line, p.col),
    };
    for line in d.block() {
        let mut sd = d.sub(line);
        match line.name.text.as_str() {
            "match" => {
                sd.expect_arg("REGEX")?;
                for t in &line.args {
                    let re = Regex::new(&t.text).map_err(|e| {
                        sd.err_at(t, format!("could not parse regex '{}': {e}", t.text))
                    })?;
                    def.regex.push(re);
                }
            }
            "answer" | "additional" | "authority" => {
                sd.expect_arg("RR")?;
                for t in &line.args {
                    let compiled = compile(&sd, t)?;
                    match line.name.text.as_str() {
                        "answer" => def.answer.push(compiled),
                        "additional" => def.additional.push(compiled),
                        _ => def.authority.push(compiled),
                    }
                }
            }
            "rcode" => {
                let t = sd.expect_arg("CODE")?;
                def.rcode =
                    rcode(t).ok_or_else(|| sd.err_at(t, format!("unknown rcode '{}'", t.text)))?;
                sd.next_arg();
                sd.expect_end()?;
            }
            "ederror" => {
                let t = sd.expect_arg("EXTENDED_ERROR_CODE")?;
                let code = t.parse_u32(&sd.what("EXTENDED_ERROR_CODE"), 0..=65535)?;
                let reason: Vec<&str> = sd.remaining().iter().map(|t| t.as_str()).collect();
                def.ederror = Some((
                    u16::try_from(code).unwrap_or(u16::MAX),
                    reason.join(" ").into(),
                ));
            }
            "fallthrough" => {
                let zones = line
                    .args
                    .iter()
                    .map(|t| zone_arg(&sd, t))
                    .collect::<Result<Vec<_>, _>>()?;
                def.fallthrough = Some(zones);
            }
            // Deprecated in CoreDNS and ignored there too.
            "upstream" => {}
            _ => return Err(d.unknown_property(line)),
        }
    }
    if def.regex.is_empty() {
        // Infallible: a constant, valid pattern.
        def.regex
            .push(Regex::new(".*").map_err(|e| d.err(e.to_string()))?);
    }
    Ok(def)
}

/// Compile a record template; errors point at the character in the Corefile.
fn compile(sd: &Dispenser<'_>, t: &Token) -> Result<Text, CorefileError> {
    text::compile(&t.text).map_err(|(offset, msg)| {
        let chars = t.text[..offset].chars().count();
        let col = t.pos.col + u32::from(t.quoted) + u32::try_from(chars).unwrap_or(0);
        let pos = Pos::new(t.pos.file.clone(), t.pos.line, col);
        CorefileError::at(&pos, format!("{}: {msg}", sd.prefix()))
    })
}

fn rcode(t: &Token) -> Option<ResponseCode> {
    Some(match t.text.as_str() {
        "NOERROR" => ResponseCode::NoError,
        "FORMERR" => ResponseCode::FormErr,
        "SERVFAIL" => ResponseCode::ServFail,
        "NXDOMAIN" => ResponseCode::NXDomain,
        "NOTIMP" => ResponseCode::NotImp,
        "REFUSED" => ResponseCode::Refused,
        "YXDOMAIN" => ResponseCode::YXDomain,
        "YXRRSET" => ResponseCode::YXRRSet,
        "NXRRSET" => ResponseCode::NXRRSet,
        "NOTAUTH" => ResponseCode::NotAuth,
        "NOTZONE" => ResponseCode::NotZone,
        _ => return None,
    })
}
