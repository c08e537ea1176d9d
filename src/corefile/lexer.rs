//! Splits one file's text into tokens with positions, as CoreDNS's Caddyfile lexer does.
//!
//! Rules (CoreDNS/Caddy v1): tokens are separated by whitespace; a token that starts with
//! `"` runs to the next unescaped `"` and may span lines; inside quotes `\"` is the only
//! escape and every other backslash is kept; `#` outside quotes starts a comment to the end
//! of the line, even in the middle of a word; a leading byte-order mark is skipped.
//! `{$NAME}`, `{$NAME:default}` and `{%NAME%}` are substituted in every token (quoted too).
//!
//! Invariant: braces and the `import` keyword are recognised on the raw, unquoted text,
//! before substitution, so neither quoting nor an environment value can change structure.

use std::path::Path;
use std::sync::Arc;

use super::ast::{Pos, Token};
use super::error::{CorefileError, Result};

/// What a token means to the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any word (including quoted `"{"`).
    Word,
    /// A bare `{`.
    Open,
    /// A bare `}`.
    Close,
    /// A bare `import` (a keyword only where a directive or server block may start).
    Import,
}

/// A token as the parser sees it.
#[derive(Debug, Clone)]
pub(crate) struct Lexed {
    pub(crate) tok: Token,
    pub(crate) kind: Kind,
    /// A line break (outside quotes) separates it from the previous token of its file,
    /// or it is the first token of the file.
    pub(crate) newline: bool,
}

/// Lexes `src`, read from `file`, substituting environment references through `env`.
pub(crate) fn lex(
    src: &str,
    file: &Arc<Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Lexed>> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    let (mut line, mut col) = (1u32, 1u32);
    let mut newline = true;
    // Whitespace and comments between tokens, then one token.
    while let Some(&c) = chars.peek() {
        if c == '\n' {
            chars.next();
            line = line.saturating_add(1);
            col = 1;
            newline = true;
            continue;
        }
        if c.is_whitespace() {
            chars.next();
            col = col.saturating_add(1);
            continue;
        }
        if c == '#' {
            while chars.peek().is_some_and(|&c| c != '\n') {
                chars.next();
                col = col.saturating_add(1);
            }
            continue;
        }
        let pos = Pos::new(file.clone(), line, col);
        let mut text = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
            col = col.saturating_add(1);
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\n' {
                    line = line.saturating_add(1);
                    col = 1;
                } else {
                    col = col.saturating_add(1);
                }
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('"') => {
                            col = col.saturating_add(1);
                            text.push('"');
                        }
                        Some(n) => {
                            if n == '\n' {
                                line = line.saturating_add(1);
                                col = 1;
                            } else {
                                col = col.saturating_add(1);
                            }
                            text.push('\\');
                            text.push(n);
                        }
                        None => text.push('\\'),
                    },
                    c => text.push(c),
                }
            }
            if !closed {
                return Err(CorefileError::at(&pos, "unterminated quoted string"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '#' {
                    break;
                }
                text.push(c);
                chars.next();
                col = col.saturating_add(1);
            }
        }
        let kind = match (quoted, text.as_str()) {
            (false, "{") => Kind::Open,
            (false, "}") => Kind::Close,
            (false, "import") => Kind::Import,
            _ => Kind::Word,
        };
        let text = substitute_env(&text, env);
        out.push(Lexed {
            tok: Token { text, pos, quoted },
            kind,
            newline,
        });
        newline = false;
    }
    Ok(out)
}

/// Checks that the bare braces of one file pair up, so an imported file can never close a
/// block it did not open.
pub(crate) fn check_balanced(toks: &[Lexed]) -> Result<()> {
    let mut open: Vec<&Pos> = Vec::new();
    for l in toks {
        match l.kind {
            Kind::Open => open.push(&l.tok.pos),
            Kind::Close => {
                if open.pop().is_none() {
                    return Err(CorefileError::at(
                        &l.tok.pos,
                        "unexpected '}' without a matching '{'",
                    ));
                }
            }
            Kind::Word | Kind::Import => {}
        }
    }
    match open.pop() {
        Some(pos) => Err(unterminated(pos)),
        None => Ok(()),
    }
}

/// The error for a block opened at `pos` and never closed.
pub(crate) fn unterminated(pos: &Pos) -> CorefileError {
    CorefileError::at(pos, "unterminated block: this '{' is never closed")
}

/// Replaces `{$NAME}`, `{$NAME:default}` and `{%NAME%}` in one left-to-right pass (a
/// substituted value is never scanned again). An unset variable without default becomes
/// the empty string, as in CoreDNS; a reference without a closing brace is kept as text.
pub(crate) fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !text.contains("{$") && !text.contains("{%") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (open, close) = if after.starts_with("{$") {
            ("{$", "}")
        } else if after.starts_with("{%") {
            ("{%", "%}")
        } else {
            out.push('{');
            rest = &after[1..];
            continue;
        };
        let body = &after[open.len()..];
        match body.find(close) {
            Some(end) if end > 0 => {
                let inner = &body[..end];
                let (name, default) = match (open, inner.split_once(':')) {
                    ("{$", Some((name, default))) => (name, Some(default)),
                    _ => (inner, None),
                };
                let value = env(name).or_else(|| default.map(str::to_string));
                out.push_str(&value.unwrap_or_default());
                rest = &body[end + close.len()..];
            }
            _ => {
                out.push_str(open);
                rest = body;
            }
        }
    }
    out.push_str(rest);
    out
}
