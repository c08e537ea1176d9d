//! A CoreDNS Corefile carried over: parsed with our parser and checked with the
//! same plugin parsers `clusterdns check` uses, so whatever we accept stays
//! as written and whatever we refuse is named and dropped.
//!
//! What is dropped, smallest first: a line of a directive's block (an option,
//! e.g. `stacktrace` in an `errors` block), else the whole directive (a plugin we do not ship,
//! an `https://` forward upstream), and a server block key we cannot serve
//! (`grpc://.:443`), with its block when no key is left. When nothing is dropped the input is
//! returned byte for byte; otherwise the tree is printed again (comments and
//! layout are then lost, which is noted).

use std::collections::HashSet;
use std::path::Path;

use super::{MigrateError, Migration, Note};
use crate::config;
use crate::corefile::{self, Corefile, CorefileError, Directive, Dispenser, MemFs, ServerBlock};
use crate::plugin;

/// Carry the Corefile `input` over; `offset` is added to every line (the line
/// before the Corefile's first, when it sits in a ConfigMap).
pub(super) fn carry_over(input: &str, name: &str, offset: u32) -> Result<Migration, MigrateError> {
    // Environment references are kept as written: they are substituted when
    // clusterdns starts, not now.
    let keep_env = |var: &str| Some(format!("{{${var}}}"));
    let cf =
        corefile::parse_str(input, Path::new(name), &keep_env, &MemFs::new()).map_err(|e| {
            MigrateError::Corefile {
                line: e.line + offset,
                message: if e.message.contains("import") {
                    format!(
                        "{} (migrate reads one file: paste imported files in)",
                        e.message
                    )
                } else {
                    e.message
                },
            }
        })?;
    let mut notes = Vec::new();
    let blocks: Vec<ServerBlock> = cf
        .blocks
        .iter()
        .filter_map(|b| block(b, &mut notes))
        .collect();
    let dropped = notes.iter().any(|n| n.changes_behaviour);
    let out = Corefile {
        blocks,
        files: cf.files.clone(),
    };
    for e in config::from_corefile(&out, 53).err().unwrap_or_default() {
        if !notes.iter().any(|n| n.line == e.line) {
            notes.push(Note::changed(
                e.line,
                format!("{} (clusterdns check refuses the result)", e.message),
            ));
        }
    }
    let corefile = if dropped {
        if input.contains('#') {
            notes.push(Note::info(
                0,
                "the Corefile is printed again without what was dropped: comments and layout \
                 are not kept",
            ));
        }
        if input.contains("{%") || env_default(input) {
            notes.push(Note::changed(
                0,
                "environment references are printed again as {$NAME}: a default \
                 ({$NAME:default}) is not kept",
            ));
        }
        out.to_string()
    } else {
        input.to_string()
    };
    for n in &mut notes {
        if n.line > 0 {
            n.line += offset;
        }
    }
    Ok(Migration { corefile, notes })
}

/// The block with what we cannot serve dropped; `None` when no key is left.
fn block(b: &ServerBlock, notes: &mut Vec<Note>) -> Option<ServerBlock> {
    let mut keys = Vec::new();
    for k in &b.keys {
        match corefile::parse_key(k) {
            Ok(_) => keys.push(k.clone()),
            Err(e) if k.text.contains("{$") => {
                notes.push(Note::info(
                    e.line,
                    format!(
                        "key '{}' kept as written; it uses an environment reference, so it is \
                         checked only when clusterdns starts",
                        k.text
                    ),
                ));
                keys.push(k.clone());
            }
            Err(e) => notes.push(Note::changed(
                e.line,
                format!("{} (key dropped)", e.message),
            )),
        }
    }
    if keys.is_empty() {
        let line = b.keys.first().map_or(0, |k| k.pos.line);
        notes.push(Note::changed(
            line,
            "no key of this server block can be served: the whole block is dropped",
        ));
        return None;
    }
    let mut seen = HashSet::new();
    let mut directives = Vec::new();
    for d in &b.directives {
        let name = d.name.text.as_str();
        if !seen.insert(name) && !plugin::repeatable(name) {
            notes.push(Note::changed(
                d.name.pos.line,
                format!("{name}: only once per server block (CoreDNS refuses this too); dropped"),
            ));
            continue;
        }
        if let Some(kept) = directive(d, notes) {
            directives.push(kept);
        }
    }
    Some(ServerBlock { keys, directives })
}

/// The directive as our plugin accepts it, lines of its block dropped as
/// needed; `None` when the directive itself is refused.
fn directive(d: &Directive, notes: &mut Vec<Note>) -> Option<Directive> {
    let mut d = d.clone();
    // Each round drops one block line or ends.
    for _ in 0..=d.block.as_ref().map_or(0, Vec::len) {
        let Err(e) = plugin::parse(&mut Dispenser::new(&d)) else {
            return Some(d);
        };
        if mentions_env(&d) {
            notes.push(Note::info(
                d.name.pos.line,
                format!(
                    "{}: kept as written; it uses an environment reference, so it is checked \
                     only when clusterdns starts (here: {})",
                    d.name.text, e.message
                ),
            ));
            return Some(d);
        }
        match block_line_of(&d, &e) {
            Some(i) => {
                if let Some(lines) = d.block.as_mut() {
                    lines.remove(i);
                }
                notes.push(Note::changed(
                    e.line,
                    format!("{} (line dropped)", e.message),
                ));
            }
            None => {
                notes.push(Note::changed(
                    e.line,
                    format!("{} (directive dropped)", e.message),
                ));
                return None;
            }
        }
    }
    None
}

/// The index of the block line of `d` holding the token `e` is about.
fn block_line_of(d: &Directive, e: &CorefileError) -> Option<usize> {
    d.block
        .as_ref()?
        .iter()
        .position(|line| holds(line, e.line, e.col))
}

/// Whether a token of `d` (its block included) starts at `line:col`.
fn holds(d: &Directive, line: u32, col: u32) -> bool {
    let at = |t: &corefile::Token| t.pos.line == line && t.pos.col == col;
    at(&d.name)
        || d.args.iter().any(at)
        || d.block
            .iter()
            .flatten()
            .any(|inner| holds(inner, line, col))
}

/// Whether a token of `d` holds an environment reference (kept as `{$NAME}`).
fn mentions_env(d: &Directive) -> bool {
    let env = |t: &corefile::Token| t.text.contains("{$");
    env(&d.name) || d.args.iter().any(env) || d.block.iter().flatten().any(mentions_env)
}

/// Problems `clusterdns check` finds in `corefile` (empty: it passes).
pub(super) fn check(corefile: &str) -> Vec<String> {
    match corefile::parse_str(corefile, Path::new("Corefile"), &|_| None, &MemFs::new()) {
        Ok(cf) => config::from_corefile(&cf, 53)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
        Err(e) => vec![e.to_string()],
    }
}

/// Whether `text` has an environment reference with a default (`{$NAME:default}`).
fn env_default(text: &str) -> bool {
    text.split("{$").skip(1).any(|rest| {
        rest.split('}')
            .next()
            .is_some_and(|inner| inner.contains(':'))
    })
}
