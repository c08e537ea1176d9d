//! The syntax tree of a Corefile: server blocks of keys and directives, directives with
//! arguments and optional nested blocks, every token with the position it came from.
//!
//! Invariant: the tree holds text only (imports and snippets already spliced, environment
//! already substituted); meaning is given later by `config` and the plugins. Printing a tree
//! with [`Display`](fmt::Display) gives a Corefile that parses back into an equal tree
//! (equality compares token text, not positions) for every tree parsed from a source
//! without environment references. Substituted text can be beyond the grammar: it may
//! itself contain `{$X}`, or need quotes while holding `\"` or ending in a backslash, and
//! CoreDNS's quoting (only `\"` is an escape) has no way to write those.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a token starts: file, 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    /// The file the token was read from (the imported file for imported tokens).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters (a tab counts as one).
    pub col: u32,
}

impl Pos {
    /// A position in `file`.
    pub fn new(file: impl Into<Arc<Path>>, line: u32, col: u32) -> Self {
        Pos {
            file: file.into(),
            line,
            col,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One word of a Corefile.
///
/// Two tokens are equal when their text is: position and quoting are provenance, not
/// meaning (a quoted `"a"` and a bare `a` mean the same).
#[derive(Debug, Clone)]
pub struct Token {
    /// The text, without quotes, with `\"` unescaped and environment references substituted.
    pub text: String,
    /// Where the token starts.
    pub pos: Pos,
    /// Whether it was written in double quotes (a quoted `"{"` is text, not a brace).
    pub quoted: bool,
}

impl Token {
    /// A bare (unquoted) token.
    pub fn new(text: impl Into<String>, pos: Pos) -> Self {
        Token {
            text: text.into(),
            pos,
            quoted: false,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Token {}

/// One server block: `KEY... { DIRECTIVE... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    /// The keys (zones with optional scheme and port), split on spaces and commas.
    /// Interpret them with [`parse_key`](super::parse_key).
    pub keys: Vec<Token>,
    /// The directives in the order written (execution order is decided elsewhere).
    pub directives: Vec<Directive>,
}

/// One directive line: a name, arguments up to the end of the line, and an optional
/// `{ ... }` block of further directive lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The first word of the line (the plugin name at server-block level).
    pub name: Token,
    /// The other words of the line.
    pub args: Vec<Token>,
    /// The nested block; `Some(vec![])` for an empty `{ }`, `None` when there is none.
    pub block: Option<Vec<Directive>>,
}

/// A whole parsed Corefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corefile {
    /// Server blocks in file order (snippet definitions are not blocks).
    pub blocks: Vec<ServerBlock>,
    /// Every file read, the main file first, then each imported file once in the order
    /// first read: the input of the reload checksum.
    pub files: Vec<PathBuf>,
}

/// What a token is printed as; some positions give a bare word a special meaning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A server block key; `alone` when it is the block's only key.
    Key {
        alone: bool,
    },
    Name,
    Arg,
}

/// Whether `text` must be quoted to read back as one token with this text in `role`.
fn needs_quotes(text: &str, role: Role) -> bool {
    let Some(first) = text.chars().next() else {
        return true;
    };
    if first == '"' || text == "{" || text == "}" {
        return true;
    }
    if text.chars().any(|c| c.is_whitespace() || c == '#') {
        return true;
    }
    match role {
        // A lone `(name)` key would define a snippet.
        Role::Key { alone } => {
            text == "import"
                || text.contains(',')
                || (alone && text.starts_with('(') && text.ends_with(')'))
        }
        Role::Name => text == "import",
        Role::Arg => false,
    }
}

/// Writes `text` as a Corefile word, quoting it when needed.
///
/// Inside quotes only `\"` is an escape (CoreDNS keeps every other backslash), so a
/// backslash pair of the text is written as is and a lone quote as `\"`.
fn write_word(f: &mut fmt::Formatter<'_>, text: &str, role: Role) -> fmt::Result {
    if !needs_quotes(text, role) {
        return f.write_str(text);
    }
    // A key that only needs quotes for its leading `"` (a comma-split piece such as the
    // second of `a,"b`) is written after a comma, which key splitting drops again: quoting
    // could not hold every such text.
    if let (Role::Key { .. }, Some(rest)) = (role, text.strip_prefix('"'))
        && !needs_quotes(&format!("x{rest}"), role)
    {
        return write!(f, ",{text}");
    }
    f.write_str("\"")?;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                f.write_str("\\")?;
                if let Some(next) = chars.next() {
                    write!(f, "{next}")?;
                }
            }
            '"' => f.write_str("\\\"")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

fn write_directives(f: &mut fmt::Formatter<'_>, ds: &[Directive], depth: usize) -> fmt::Result {
    for d in ds {
        write!(f, "{:width$}", "", width = depth * 4)?;
        write_word(f, &d.name.text, Role::Name)?;
        for a in &d.args {
            f.write_str(" ")?;
            write_word(f, &a.text, Role::Arg)?;
        }
        if let Some(block) = &d.block {
            f.write_str(" {\n")?;
            write_directives(f, block, depth + 1)?;
            write!(f, "{:width$}}}", "", width = depth * 4)?;
        }
        f.write_str("\n")?;
    }
    Ok(())
}

impl fmt::Display for ServerBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let alone = self.keys.len() == 1;
            write_word(f, &k.text, Role::Key { alone })?;
        }
        f.write_str(" {\n")?;
        write_directives(f, &self.directives, 1)?;
        f.write_str("}\n")
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_directives(f, std::slice::from_ref(self), 0)
    }
}

impl fmt::Display for Corefile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A byte-order mark is skipped at the very start of a file only; keep it in a key.
        let first_key = self.blocks.first().and_then(|b| b.keys.first());
        if first_key.is_some_and(|k| k.text.starts_with('\u{feff}')) {
            f.write_str("\n")?;
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}
