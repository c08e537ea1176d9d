//! Builds the [`Corefile`] tree from tokens, splicing `import`s and snippets in as it goes.
//!
//! Imports are expanded at token level, as in CoreDNS: the imported tokens replace the
//! `import` line, wherever a server block or a directive may start. They are kept as a
//! stack of frames, each with the chain of imports that led to it; an import of something
//! already on its own chain is a cycle, reported with the chain.
//!
//! Invariant: the parser never recurses or loops without bound on any input: block nesting,
//! import depth, the number of imports and the number of tokens read are all capped.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::SourceFs;
use super::ast::{Corefile, Directive, Pos, ServerBlock, Token};
use super::error::{CorefileError, Result};
use super::lexer::{Kind, Lexed, check_balanced, lex, unterminated};

/// Deepest allowed `{ }` nesting inside a server block.
const MAX_NESTING: usize = 64;
/// Deepest allowed chain of imports (file or snippet).
const MAX_IMPORT_DEPTH: usize = 32;
/// Most imports expanded in one parse (CoreDNS caps snippet expansions at 1000 too).
const MAX_IMPORTS: usize = 1000;
/// Most tokens read in one parse, imports included.
const MAX_TOKENS: usize = 1_000_000;

/// What an import frame came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    File(PathBuf),
    Snippet(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Snippet(s) => write!(f, "snippet ({s})"),
        }
    }
}

/// The imports that led to a frame, innermost first.
#[derive(Debug)]
struct Chain {
    origin: Origin,
    parent: Option<Rc<Chain>>,
    depth: usize,
}

impl Chain {
    fn contains(&self, o: &Origin) -> bool {
        let mut c = Some(self);
        while let Some(link) = c {
            if &link.origin == o {
                return true;
            }
            c = link.parent.as_deref();
        }
        false
    }

    /// "a → b → c", outermost first.
    fn describe(&self, last: &Origin) -> String {
        let mut names = vec![last.to_string()];
        let mut c = Some(self);
        while let Some(link) = c {
            names.push(link.origin.to_string());
            c = link.parent.as_deref();
        }
        names.reverse();
        names.join(" → ")
    }
}

struct Frame {
    toks: Rc<[Lexed]>,
    pos: usize,
    chain: Rc<Chain>,
}

/// A defined snippet: its body tokens and where it was defined.
struct Snippet {
    toks: Rc<[Lexed]>,
    at: Pos,
}

pub(crate) struct Parser<'a> {
    frames: Vec<Frame>,
    snippets: HashMap<String, Snippet>,
    env: &'a dyn Fn(&str) -> Option<String>,
    fs: &'a dyn SourceFs,
    files: Vec<PathBuf>,
    imports: usize,
    read: usize,
    /// Position of the last token read, for errors at the end of input.
    last_pos: Pos,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(
        src: &str,
        file: &Path,
        env: &'a dyn Fn(&str) -> Option<String>,
        fs: &'a dyn SourceFs,
    ) -> Result<Self> {
        let file = normalize(file);
        let arc: Arc<Path> = Arc::from(file.as_path());
        let toks = lex(src, &arc, env)?;
        check_balanced(&toks)?;
        let chain = Rc::new(Chain {
            origin: Origin::File(file.clone()),
            parent: None,
            depth: 0,
        });
        Ok(Parser {
            frames: vec![Frame {
                toks: toks.into(),
                pos: 0,
                chain,
            }],
            snippets: HashMap::new(),
            env,
            fs,
            files: vec![file],
            imports: 0,
            read: 0,
            last_pos: Pos::new(arc, 1, 1),
        })
    }

    // === token stream ===

    fn drop_finished(&mut self) {
        while self.frames.last().is_some_and(|f| f.pos >= f.toks.len()) {
            self.frames.pop();
        }
    }

    fn peek(&mut self) -> Option<&Lexed> {
        self.drop_finished();
        let f = self.frames.last()?;
        f.toks.get(f.pos)
    }

    /// Kind of the next token and whether it starts a line (the first token of an imported
    /// frame always does).
    fn peek_kind(&mut self) -> Option<(Kind, bool)> {
        self.drop_finished();
        let f = self.frames.last()?;
        let l = f.toks.get(f.pos)?;
        Some((l.kind, l.newline || f.pos == 0))
    }

    fn next(&mut self) -> Result<Option<(Lexed, Rc<Chain>)>> {
        self.drop_finished();
        let Some(f) = self.frames.last_mut() else {
            return Ok(None);
        };
        let Some(l) = f.toks.get(f.pos).cloned() else {
            return Ok(None);
        };
        f.pos += 1;
        self.read += 1;
        self.last_pos = l.tok.pos.clone();
        if self.read > MAX_TOKENS {
            return Err(CorefileError::at(
                &l.tok.pos,
                format!("more than {MAX_TOKENS} tokens after expanding imports"),
            ));
        }
        Ok(Some((l, f.chain.clone())))
    }

    /// Position of the next token, or of the last one read at the end of input.
    fn peek_pos(&mut self) -> Pos {
        match self.peek() {
            Some(l) => l.tok.pos.clone(),
            None => self.last_pos.clone(),
        }
    }

    fn next_tok(&mut self) -> Result<Option<Lexed>> {
        Ok(self.next()?.map(|(l, _)| l))
    }

    // === grammar ===

    pub(crate) fn parse(mut self) -> Result<Corefile> {
        let mut blocks = Vec::new();
        while let Some((kind, _)) = self.peek_kind() {
            match kind {
                Kind::Import => self.import()?,
                Kind::Close => return Err(self.unexpected_close()),
                Kind::Open => {
                    return Err(CorefileError::at(
                        &self.peek_pos(),
                        "server block has no keys: expected a zone such as '.:53' before '{'",
                    ));
                }
                Kind::Word => {
                    if let Some(block) = self.server_block()? {
                        blocks.push(block);
                    }
                }
            }
        }
        Ok(Corefile {
            blocks,
            files: self.files,
        })
    }

    /// One server block or snippet definition (which gives `None`).
    fn server_block(&mut self) -> Result<Option<ServerBlock>> {
        let first = self.peek_pos();
        let keys = self.keys()?;
        if keys.is_empty() {
            // Every key was empty (`""`, or an unset `{$VAR}`); CoreDNS would silently
            // drop the block.
            return Err(CorefileError::at(
                &first,
                "server block has no keys: every key is empty",
            ));
        }
        let snippet = match keys.as_slice() {
            [k] if !k.quoted && k.text.len() >= 2 && k.text.starts_with('(') => {
                k.text.strip_suffix(')').map(|n| (n[1..].to_string(), k))
            }
            _ => None,
        };
        if let Some((name, key)) = snippet {
            let Some((Kind::Open, _)) = self.peek_kind() else {
                return Err(key.err(format!("snippet ({name}) needs a {{ }} block")));
            };
            self.define_snippet(name, key.pos.clone())?;
            return Ok(None);
        }
        let directives = match self.peek_kind() {
            Some((Kind::Open, _)) => {
                let open = self.next_tok()?.map(|l| l.tok.pos);
                self.directives(open.as_ref(), 1)?
            }
            // Braces are optional when the file holds a single server block (as in
            // CoreDNS): everything up to the end of the file belongs to it.
            _ => self.directives(None, 1)?,
        };
        Ok(Some(ServerBlock { keys, directives }))
    }

    /// The keys of a server block: words up to the end of the line, split on commas (bare
    /// words only); a trailing comma continues the list on the next line. Empty keys are
    /// dropped, as CoreDNS does.
    fn keys(&mut self) -> Result<Vec<Token>> {
        let mut keys = Vec::new();
        let mut expecting = false;
        let mut first = true;
        loop {
            let next = self.peek_kind();
            let stop = match next {
                None => true,
                Some((Kind::Open | Kind::Close, _)) => true,
                Some((_, starts_line)) => !first && starts_line && !expecting,
            };
            if stop {
                if expecting {
                    return Err(CorefileError::at(
                        &self.peek_pos(),
                        "expected another server block key after ','",
                    ));
                }
                return Ok(keys);
            }
            let Some(l) = self.next_tok()? else {
                return Ok(keys);
            };
            first = false;
            if l.tok.quoted {
                if !l.tok.text.is_empty() {
                    keys.push(l.tok);
                }
                expecting = false;
                continue;
            }
            expecting = l.tok.text.ends_with(',');
            let mut offset = 0u32;
            for piece in l.tok.text.split(',') {
                if !piece.is_empty() {
                    let mut pos = l.tok.pos.clone();
                    pos.col = pos.col.saturating_add(offset);
                    keys.push(Token::new(piece, pos));
                }
                let len = u32::try_from(piece.chars().count()).unwrap_or(u32::MAX);
                offset = offset.saturating_add(len).saturating_add(1);
            }
        }
    }

    /// Directive lines up to the `}` closing the block opened at `open`, or up to the end
    /// of input when there is no brace.
    fn directives(&mut self, open: Option<&Pos>, depth: usize) -> Result<Vec<Directive>> {
        if let Some(pos) = open
            && depth > MAX_NESTING
        {
            return Err(CorefileError::at(
                pos,
                format!("blocks nested deeper than {MAX_NESTING} levels"),
            ));
        }
        let mut out = Vec::new();
        loop {
            let Some((kind, _)) = self.peek_kind() else {
                return match open {
                    Some(pos) => Err(unterminated(pos)),
                    None => Ok(out),
                };
            };
            match kind {
                Kind::Close => {
                    if open.is_none() {
                        return Err(self.unexpected_close());
                    }
                    self.next()?;
                    return Ok(out);
                }
                Kind::Import => self.import()?,
                Kind::Open => {
                    return Err(CorefileError::at(
                        &self.peek_pos(),
                        "unexpected '{': a block must follow a directive name on its line",
                    ));
                }
                Kind::Word => {
                    if let Some(l) = self.next_tok()? {
                        out.push(self.directive(l.tok, depth)?);
                    }
                }
            }
        }
    }

    /// One directive: name, arguments to the end of the line, optional block.
    fn directive(&mut self, name: Token, depth: usize) -> Result<Directive> {
        let mut args = Vec::new();
        let mut block = None;
        while let Some((kind, starts_line)) = self.peek_kind() {
            if starts_line || kind == Kind::Close {
                break;
            }
            let Some(l) = self.next_tok()? else { break };
            if kind == Kind::Open {
                block = Some(self.directives(Some(&l.tok.pos), depth + 1)?);
                if let Some((k, false)) = self.peek_kind()
                    && k != Kind::Close
                {
                    return Err(CorefileError::at(
                        &self.peek_pos(),
                        "unexpected token after '}': start a new line",
                    ));
                }
                break;
            }
            args.push(l.tok);
        }
        Ok(Directive { name, args, block })
    }

    fn unexpected_close(&mut self) -> CorefileError {
        CorefileError::at(&self.peek_pos(), "unexpected '}' without a matching '{'")
    }

    // === snippets and imports ===

    /// Stores the body of `(name) { ... }` unexpanded; the `{` is the next token.
    fn define_snippet(&mut self, name: String, at: Pos) -> Result<()> {
        let open = match self.next_tok()? {
            Some(l) => l.tok.pos,
            None => at.clone(),
        };
        if let Some(prev) = self.snippets.get(&name) {
            return Err(CorefileError::at(
                &at,
                format!("snippet ({name}) is already defined at {}", prev.at),
            ));
        }
        let mut body = Vec::new();
        let mut depth = 0usize;
        loop {
            let Some(l) = self.next_tok()? else {
                return Err(unterminated(&open));
            };
            match l.kind {
                Kind::Open => depth += 1,
                Kind::Close if depth == 0 => break,
                Kind::Close => depth -= 1,
                Kind::Word | Kind::Import => {}
            }
            body.push(l);
        }
        self.snippets.insert(
            name,
            Snippet {
                toks: body.into(),
                at,
            },
        );
        Ok(())
    }

    /// Replaces `import PATTERN` (the next tokens) by the snippet or files it names.
    fn import(&mut self) -> Result<()> {
        let Some((kw, chain)) = self.next()? else {
            return Ok(());
        };
        let kw = kw.tok;
        let mut args = Vec::new();
        while let Some((kind, starts_line)) = self.peek_kind() {
            if starts_line || kind == Kind::Close {
                break;
            }
            if let Some(l) = self.next_tok()? {
                if kind == Kind::Open {
                    return Err(l.tok.err("import: unexpected '{'"));
                }
                args.push(l.tok);
            }
        }
        let [pattern] = args.as_slice() else {
            return Err(kw.err(format!(
                "import: expected exactly one argument (a file, glob or snippet name), got {}",
                args.len()
            )));
        };
        if pattern.text.is_empty() {
            return Err(pattern.err("import: empty file name"));
        }
        self.imports += 1;
        if self.imports > MAX_IMPORTS {
            return Err(kw.err(format!(
                "import: more than {MAX_IMPORTS} imports expanded; is an import repeated in a loop?"
            )));
        }
        if let Some(s) = self.snippets.get(&pattern.text) {
            let toks = s.toks.clone();
            let child = self.child_chain(&kw, &chain, Origin::Snippet(pattern.text.clone()))?;
            self.frames.push(Frame {
                toks,
                pos: 0,
                chain: child,
            });
            return Ok(());
        }
        let base = pattern.pos.file.parent().unwrap_or(Path::new(""));
        let path = normalize(&base.join(&pattern.text));
        let matches = if pattern.text.contains(['*', '?', '[']) {
            let mut m = self
                .fs
                .glob(&path)
                .map_err(|e| pattern.err(format!("import: bad pattern {}: {e}", path.display())))?;
            m.sort();
            if m.is_empty() {
                tracing::warn!(pattern = %path.display(), "no files match import pattern");
            }
            m
        } else {
            vec![path.clone()]
        };
        let mut frames = Vec::with_capacity(matches.len());
        for m in matches {
            let m = normalize(&m);
            let child = self.child_chain(&kw, &chain, Origin::File(m.clone()))?;
            let src = self.fs.read(&m).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    if pattern.text.contains('/') {
                        pattern.err(format!("import: file {} not found", m.display()))
                    } else {
                        pattern.err(format!(
                            "import: '{}' is neither a snippet defined above nor a file ({} not found)",
                            pattern.text,
                            m.display()
                        ))
                    }
                } else {
                    pattern.err(format!("import: cannot read {}: {e}", m.display()))
                }
            })?;
            let toks = lex(&src, &Arc::from(m.as_path()), self.env)?;
            check_balanced(&toks)?;
            if !self.files.contains(&m) {
                self.files.push(m);
            }
            frames.push(Frame {
                toks: toks.into(),
                pos: 0,
                chain: child,
            });
        }
        // A stack: push the last file first so the first is read first.
        self.frames.extend(frames.into_iter().rev());
        Ok(())
    }

    fn child_chain(&self, kw: &Token, chain: &Rc<Chain>, origin: Origin) -> Result<Rc<Chain>> {
        if chain.contains(&origin) {
            return Err(kw.err(format!("import cycle: {}", chain.describe(&origin))));
        }
        if chain.depth >= MAX_IMPORT_DEPTH {
            return Err(kw.err(format!(
                "import: nested deeper than {MAX_IMPORT_DEPTH} levels"
            )));
        }
        Ok(Rc::new(Chain {
            origin,
            parent: Some(chain.clone()),
            depth: chain.depth + 1,
        }))
    }
}

/// Removes `.` and resolves `..` lexically (no file system access), so one file has one
/// name for cycle detection and for the checksum list.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}
