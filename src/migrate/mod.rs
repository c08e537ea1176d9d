//! `clusterdns migrate FILE`: the Corefile clusterdns should run in place of
//! an existing kube-dns or CoreDNS, with every construct that cannot be
//! carried over named with its line.
//!
//! ```text
//! text ──detect──▶ kube-dns ConfigMap (stubDomains, upstreamNameservers JSON) ──kubedns──┐
//!                  CoreDNS ConfigMap (data.Corefile) ──┐                                  ├─▶ Migration
//!                  Corefile ───────────────────────────┴──coredns (our parser + plugins)──┘
//! ```
//!
//! Invariant: [`migrate`] is pure (text in, text and notes out; no file system,
//! no environment). [`run`] is the only I/O: it reads the file, prints the
//! Corefile on stdout and the notes on stderr, and turns "behaves differently"
//! into the exit code.

mod coredns;
mod kubedns;
mod shell;

#[cfg(test)]
mod tests;

pub use shell::{EXIT_CHANGED, EXIT_INVALID, run};

/// The result of a migration: a Corefile clusterdns accepts, and what was not
/// carried over as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The Corefile for clusterdns.
    pub corefile: String,
    /// What was dropped, changed or assumed, in line order.
    pub notes: Vec<Note>,
}

impl Migration {
    /// Whether the result answers differently from the input (something was
    /// dropped or changed).
    pub fn changes_behaviour(&self) -> bool {
        self.notes.iter().any(|n| n.changes_behaviour)
    }
}

/// One construct of the input that is not carried over unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line of the input it is about; 0 for the whole input.
    pub line: u32,
    /// What happened and why.
    pub message: String,
    /// Whether the result behaves differently because of it.
    pub changes_behaviour: bool,
}

impl Note {
    /// A note about something dropped or changed.
    fn changed(line: u32, message: impl Into<String>) -> Self {
        Note {
            line,
            message: message.into(),
            changes_behaviour: true,
        }
    }

    /// A note that does not change what the result answers.
    fn info(line: u32, message: impl Into<String>) -> Self {
        Note {
            line,
            message: message.into(),
            changes_behaviour: false,
        }
    }
}

/// An input nothing can be made of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// It looks like a Kubernetes object but is not valid YAML or JSON.
    #[error("not valid YAML: {message}")]
    Yaml {
        /// Where the parser stopped (0 if unknown).
        line: u32,
        /// The parser's message.
        message: String,
    },
    /// A Kubernetes object, but not a ConfigMap.
    #[error(
        "a {kind}, not a ConfigMap: give the kube-dns ConfigMap (kubectl get cm kube-dns -n kube-system -o yaml), the coredns ConfigMap or a Corefile"
    )]
    NotConfigMap {
        /// Line of `kind:`.
        line: u32,
        /// The kind found.
        kind: String,
    },
    /// A `data` key whose value kube-dns would not take either.
    #[error("data.{key}: {why}")]
    Data {
        /// Line of the key.
        line: u32,
        /// The key (`stubDomains`, `upstreamNameservers`, ...).
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// A Corefile syntax error (or an `import`, which one file cannot resolve).
    #[error("{message}")]
    Corefile {
        /// Line of the offending token.
        line: u32,
        /// The parser's message.
        message: String,
    },
}

impl MigrateError {
    /// The input line the error is about (0: the whole input).
    pub fn line(&self) -> u32 {
        match self {
            MigrateError::Yaml { line, .. }
            | MigrateError::NotConfigMap { line, .. }
            | MigrateError::Data { line, .. }
            | MigrateError::Corefile { line, .. } => *line,
        }
    }
}

/// Translate `input` (a kube-dns ConfigMap, a CoreDNS ConfigMap or a Corefile;
/// `name` is how errors and notes name it) into the Corefile for clusterdns.
pub fn migrate(input: &str, name: &str) -> Result<Migration, MigrateError> {
    let mut m = if looks_like_object(input) {
        from_object(input, name)?
    } else {
        coredns::carry_over(input, name, 0)?
    };
    // A directive from a snippet imported twice is noted twice at the same line.
    m.notes.sort_by_key(|n| n.line);
    m.notes.dedup();
    Ok(m)
}

/// Whether `input` is a Kubernetes object (YAML with a top-level `apiVersion`,
/// `kind`, `metadata` or `data` key, or JSON) rather than a Corefile: a
/// Corefile's first word is a server block key, never one of these.
fn looks_like_object(input: &str) -> bool {
    let first = input
        .lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    first.is_some_and(|l| {
        l.starts_with('{')
            || l == "---"
            || ["apiVersion", "kind", "metadata", "data"]
                .iter()
                .any(|k| l.strip_prefix(k).is_some_and(yaml_colon))
    })
}

/// Whether `rest` (what follows a word) makes the word a YAML map key: a colon
/// then a space or the end (`data:53 {` is a Corefile key, zone `data`, port 53).
fn yaml_colon(rest: &str) -> bool {
    rest.strip_prefix(':')
        .is_some_and(|r| r.chars().next().is_none_or(char::is_whitespace))
}

/// A ConfigMap: CoreDNS's (a `Corefile` key) or kube-dns's.
fn from_object(input: &str, name: &str) -> Result<Migration, MigrateError> {
    let doc: serde_yaml::Value = serde_yaml::from_str(input).map_err(|e| MigrateError::Yaml {
        line: e
            .location()
            .map_or(0, |l| u32::try_from(l.line()).unwrap_or(u32::MAX)),
        message: e.to_string(),
    })?;
    let kind = doc.get("kind").and_then(serde_yaml::Value::as_str);
    if let Some(kind) = kind.filter(|k| *k != "ConfigMap") {
        return Err(MigrateError::NotConfigMap {
            line: key_line(input, "kind", false),
            kind: kind.to_string(),
        });
    }
    let empty = serde_yaml::Mapping::new();
    let data = match doc.get("data") {
        None | Some(serde_yaml::Value::Null) => &empty,
        Some(serde_yaml::Value::Mapping(m)) => m,
        Some(_) => {
            return Err(MigrateError::Data {
                line: key_line(input, "data", false),
                key: String::new(),
                why: "data must be a map of strings".into(),
            });
        }
    };
    match data.get("Corefile") {
        Some(v) => {
            let line = key_line(input, "Corefile", true);
            let text = v.as_str().ok_or_else(|| MigrateError::Data {
                line,
                key: "Corefile".into(),
                why: "must be a string".into(),
            })?;
            // A block scalar's first line is the line after the key.
            let offset = if block_scalar(input, line) { line } else { 0 };
            coredns::carry_over(text, name, offset)
        }
        None => kubedns::translate(input, data),
    }
}

/// Whether the key on 1-based `line` introduces a block scalar (`|`, `>`, `|-`, ...).
fn block_scalar(input: &str, line: u32) -> bool {
    let Some(text) = input.lines().nth((line as usize).saturating_sub(1)) else {
        return false;
    };
    let value = text.split_once(':').map_or("", |(_, v)| v.trim());
    value.starts_with('|') || value.starts_with('>')
}

/// The 1-based line where `key` is written as a map key (bare or quoted); with
/// `under_data`, the first such line after the `data` key. 0 when not found.
fn key_line(input: &str, key: &str, under_data: bool) -> u32 {
    let is_key = |line: &str, key: &str| {
        let t = line.trim_start();
        let t = t.strip_prefix(['"', '\'']).unwrap_or(t);
        t.strip_prefix(key).is_some_and(|r| {
            let r = r.strip_prefix(['"', '\'']).unwrap_or(r);
            r.trim_start().starts_with(':')
        })
    };
    let lines: Vec<&str> = input.lines().collect();
    let start = if under_data {
        lines
            .iter()
            .position(|l| is_key(l, "data"))
            .map_or(0, |i| i + 1)
    } else {
        0
    };
    lines
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, l)| is_key(l, key))
        .map_or(0, |(i, _)| u32::try_from(i + 1).unwrap_or(u32::MAX))
}
