//! `template`: answers built from the query name by regex and record templates.
//!
//! # Description
//! As CoreDNS's *template*: every `template` directive of a server block is one template
//! of a single plugin instance, tried in the order written. A template applies when its
//! zone, class and type match; its first matching regex wins and the answer is rendered
//! from its `answer`/`additional`/`authority` records (authoritative, `rcode` default
//! NOERROR). A template whose zone matches but no regex does answers SERVFAIL, unless
//! `fallthrough` (for the query's zone) hands it to the next template, then the next
//! plugin. A CNAME answer to an A/AAAA query is followed through the rest of the chain.
//!
//! Records are Go-template-like text with our own substitution (no Go template engine):
//! `{{ .Name }}`, `{{ .Zone }}`, `{{ .Class }}`, `{{ .Type }}`, `{{ .Remote }}`,
//! `{{ .Regex }}`, `{{ .Match N }}` / `{{ index .Match N }}`, `{{ .Group.NAME }}` /
//! `{{ index .Group "NAME" }}` and `{{ parseInt FIELD BASE BITS }}`. Any other placeholder
//! is a startup error at its position. Invariant: everything that can be checked
//! without a query is checked at parse time.
//!
//! # Syntax
//! ```text
//! template CLASS TYPE [ZONE...] {
//!     match REGEX...
//!     answer RR
//!     additional RR
//!     authority RR
//!     rcode CODE
//!     ederror EXTENDED_ERROR_CODE [REASON]
//!     fallthrough [ZONE...]
//! }
//! ```
//! `ederror` adds an Extended DNS Error option (RFC 8914: the code, 0–65535,
//! and REASON as its text) to the response's OPT record, for queries that
//! sent EDNS (dig shows `; EDE: 15 (Blocked): (REASON)`). `upstream` is
//! allowed so old Corefiles load, as in CoreDNS, where it has had no effect
//! since its deprecation.
//!
//! # Examples
//! ```text
//! template IN A example {
//!     match ^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)-(?P<c>[0-9]+)-(?P<d>[0-9]+)[.]example[.]$
//!     answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
//!     fallthrough
//! }
//! ```
//!
//! # Metrics
//! `coredns_template_matches_total{server, zone, view, class, type}`,
//! `coredns_template_template_failures_total{server, zone, view, class, type, section, template}`,
//! `coredns_template_rr_failures_total{server, zone, view, class, type, section, template}`.

mod parse;
#[cfg(test)]
mod tests;
mod text;

pub(crate) use parse::zone_arg;
pub use parse::{TemplateConfig, TemplateDef, parse};

use std::collections::HashMap;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use prometheus::{IntCounterVec, Opts, Registry};

use crate::dns::{Answer, Query};
use crate::plugin::build::{BuildCtx, Family};
use crate::plugin::{Next, Plugin, PluginError, Result};

/// The template plugin's metric handles.
#[derive(Clone)]
pub struct TemplateMetrics {
    matches: IntCounterVec,
    template_failures: IntCounterVec,
    rr_failures: IntCounterVec,
}

impl Family for TemplateMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let labels = [
            "server", "zone", "view", "class", "type", "section", "template",
        ];
        let matches = IntCounterVec::new(
            Opts::new(
                "coredns_template_matches_total",
                "Counter of template regex matches.",
            ),
            &labels[..5],
        )?;
        let template_failures = IntCounterVec::new(
            Opts::new(
                "coredns_template_template_failures_total",
                "Counter of go template failures.",
            ),
            &labels,
        )?;
        let rr_failures = IntCounterVec::new(
            Opts::new(
                "coredns_template_rr_failures_total",
                "Counter of mis-templated RRs.",
            ),
            &labels,
        )?;
        r.register(Box::new(matches.clone()))?;
        r.register(Box::new(template_failures.clone()))?;
        r.register(Box::new(rr_failures.clone()))?;
        Ok(Self {
            matches,
            template_failures,
            rr_failures,
        })
    }
}

/// The running plugin.
pub struct Template {
    /// Union of the templates' zones.
    zones: Vec<Name>,
    templates: Vec<Compiled>,
    server: String,
    metrics: TemplateMetrics,
}

struct Compiled {
    def: TemplateDef,
    zones: Vec<Name>,
}

impl Template {
    /// Build the plugin; templates without zones take the server block's.
    pub fn new(cfg: &TemplateConfig, ctx: &BuildCtx<'_>) -> anyhow::Result<Self> {
        let mut zones = Vec::new();
        let mut templates = Vec::new();
        for t in &cfg.templates {
            let own = if t.zones.is_empty() {
                ctx.zones.to_vec()
            } else {
                t.zones.clone()
            };
            zones.extend(own.iter().cloned());
            templates.push(Compiled {
                def: t.clone(),
                zones: own,
            });
        }
        Ok(Self {
            zones,
            templates,
            server: ctx.server.to_string(),
            metrics: ctx.families.get::<TemplateMetrics>()?,
        })
    }
}

/// The longest of `zones` that contains `name`, as text.
fn matching_zone<'a>(zones: &'a [Name], name: &Name) -> Option<&'a Name> {
    zones
        .iter()
        .filter(|z| z.zone_of(name))
        .max_by_key(|z| z.num_labels())
}

enum Outcome {
    /// Zone, class or type do not apply: next template.
    Skip,
    /// Zone applies, no regex matched: SERVFAIL unless fallthrough.
    NoMatch,
    /// Render with this data.
    Hit(Owned),
}

struct Owned {
    zone: String,
    class: String,
    qtype: String,
    regex: String,
    matches: Vec<String>,
    groups: HashMap<String, String>,
}

impl Compiled {
    fn check(&self, q: &Query, name: &str) -> Outcome {
        let Some(zone) = matching_zone(&self.zones, &q.lower) else {
            return Outcome::Skip;
        };
        let d = &self.def;
        if d.class != DNSClass::ANY && q.qclass != DNSClass::ANY && q.qclass != d.class {
            return Outcome::Skip;
        }
        if d.qtype != RecordType::ANY && q.qtype != RecordType::ANY && q.qtype != d.qtype {
            return Outcome::Skip;
        }
        for re in &d.regex {
            let Some(caps) = re.captures(name) else {
                continue;
            };
            let matches: Vec<String> = caps
                .iter()
                .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                .collect();
            let mut groups: HashMap<String, String> = matches
                .iter()
                .enumerate()
                .map(|(i, m)| (i.to_string(), m.clone()))
                .collect();
            for (i, n) in re.capture_names().enumerate() {
                if let (Some(n), Some(m)) = (n, matches.get(i)) {
                    groups.insert(n.to_string(), m.clone());
                }
            }
            let class = if q.qclass == DNSClass::ANY {
                d.class
            } else {
                q.qclass
            };
            let qtype = if q.qtype == RecordType::ANY {
                d.qtype
            } else {
                q.qtype
            };
            return Outcome::Hit(Owned {
                zone: zone.to_ascii(),
                class: class.to_string(),
                qtype: qtype.to_string(),
                regex: re.as_str().to_string(),
                matches,
                groups,
            });
        }
        Outcome::NoMatch
    }

    fn falls_through(&self, name: &Name) -> bool {
        match &self.def.fallthrough {
            None => false,
            Some(zones) => zones.is_empty() || zones.iter().any(|z| z.zone_of(name)),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Template {
    fn name(&self) -> &'static str {
        "template"
    }

    async fn serve(&self, q: &Query, next: Next<'_>) -> Result<Answer> {
        if matching_zone(&self.zones, &q.lower).is_none() {
            return next.serve(q).await;
        }
        let name = q.lower.to_ascii();
        let remote = q.src.ip().to_string();
        for t in &self.templates {
            let hit = match t.check(q, &name) {
                Outcome::Skip => continue,
                Outcome::NoMatch if t.falls_through(&q.lower) => continue,
                Outcome::NoMatch => return Err(PluginError::Rcode(ResponseCode::ServFail)),
                Outcome::Hit(h) => h,
            };
            self.metrics
                .matches
                .with_label_values(&[&self.server, &hit.zone, "", &hit.class, &hit.qtype])
                .inc();
            if t.def.rcode == ResponseCode::ServFail {
                return Err(PluginError::Rcode(ResponseCode::ServFail));
            }
            let data = text::Data {
                name: &name,
                zone: &hit.zone,
                class: &hit.class,
                qtype: &hit.qtype,
                remote: &remote,
                regex: &hit.regex,
                matches: &hit.matches,
                groups: &hit.groups,
            };
            let mut answer = Answer::rcode(t.def.rcode);
            answer.authoritative = true;
            if let Some(ede) = &t.def.ederror {
                answer.extras_mut().ede = Some(ede.clone());
            }
            let render = |section: &str, texts: &[text::Text]| -> Result<Vec<Record>> {
                texts
                    .iter()
                    .map(|tx| self.render(section, tx, &data, &hit))
                    .collect()
            };
            answer.answers = render("answer", &t.def.answer)?;
            answer.additionals = render("additional", &t.def.additional)?;
            answer.authority = render("authority", &t.def.authority)?;
            if matches!(q.qtype, RecordType::A | RecordType::AAAA) && !next.is_empty() {
                let targets: Vec<Name> = answer
                    .answers
                    .iter()
                    .filter_map(|rr| match &rr.data {
                        RData::CNAME(c) => Some(c.0.clone()),
                        _ => None,
                    })
                    .collect();
                for target in targets {
                    let mut sub = q.clone();
                    sub.lower = target.to_lowercase();
                    sub.name = target;
                    if let Ok(up) = next.serve(&sub).await {
                        answer.truncated |= up.truncated;
                        answer.answers.extend(up.answers);
                    }
                }
            }
            return Ok(answer);
        }
        next.serve(q).await
    }
}

impl Template {
    fn render(
        &self,
        section: &str,
        tx: &text::Text,
        data: &text::Data<'_>,
        hit: &Owned,
    ) -> Result<Record> {
        let labels = [
            self.server.as_str(),
            &hit.zone,
            "",
            &hit.class,
            &hit.qtype,
            section,
            &tx.source,
        ];
        let rendered = tx.render(data).map_err(|error| {
            tracing::warn!(%error, template = %tx.source, "template: rendering failed");
            self.metrics
                .template_failures
                .with_label_values(&labels)
                .inc();
            PluginError::Rcode(ResponseCode::ServFail)
        })?;
        text::parse_rr(&rendered).map_err(|error| {
            tracing::warn!(%error, record = %rendered, "template: not a valid record");
            self.metrics.rr_failures.with_label_values(&labels).inc();
            PluginError::Rcode(ResponseCode::ServFail)
        })
    }
}

crate::plugin::build::build_plugin!(
    TemplateConfig,
    |config, ctx| Template::new(config, ctx)?,
    join templates
);
