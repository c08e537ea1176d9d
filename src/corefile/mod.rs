//! The Corefile grammar (CoreDNS's Caddyfile dialect): text in, a tree of server blocks
//! and directives out, with `import`, snippets and `{$ENV}` already resolved.
//!
//! ```text
//! src ──lexer──▶ tokens (pos, quoted) ──parser (+ imports via SourceFs)──▶ Corefile tree
//!                                                   plugins read directives ◀── Dispenser
//! ```
//!
//! Invariant: this layer is syntax only and does no I/O of its own; imported files are
//! read through [`SourceFs`] and the environment through a function, so tests inject both.
//! Every error carries `file:line:col` of the token it is about.

mod ast;
mod dispenser;
mod error;
mod lexer;
mod parser;
mod value;
mod zone;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use ast::{Corefile, Directive, Pos, ServerBlock, Token};
pub use dispenser::Dispenser;
pub use error::{CorefileError, Result};
pub use value::go_duration;
pub use zone::{Transport, ZoneAddr, parse_key};

/// Where imported files come from.
pub trait SourceFs {
    /// The whole text of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// The files matching the glob `pattern` (`*`, `?`, `[...]`), in any order.
    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl SourceFs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let pattern = pattern.to_str().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "pattern is not valid UTF-8")
        })?;
        let paths = glob::glob(pattern)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        paths.map(|p| p.map_err(io::Error::from)).collect()
    }
}

/// An in-memory file system, for tests of code that parses Corefiles with imports.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    files: BTreeMap<PathBuf, String>,
}

impl MemFs {
    /// An empty file system.
    pub fn new() -> Self {
        MemFs::default()
    }

    /// Adds (or replaces) a file.
    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }
}

impl SourceFs for MemFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let pattern = pattern.to_str().unwrap_or_default();
        let pattern = glob::Pattern::new(pattern)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // As on a real file system, `*` does not cross a `/`.
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        Ok(self
            .files
            .keys()
            .filter(|p| pattern.matches_path_with(p, options))
            .cloned()
            .collect())
    }
}

/// Parses Corefile text `src` as if read from `file` (imports are relative to its
/// directory), reading imports through `fs` and environment references through `env`.
pub fn parse_str(
    src: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    fs: &dyn SourceFs,
) -> Result<Corefile> {
    parser::Parser::new(src, file, env, fs)?.parse()
}

/// Reads and parses the Corefile at `path` from the real file system.
pub fn parse_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile> {
    let src = RealFs
        .read(path)
        .map_err(|e| CorefileError::file(path, format!("cannot read Corefile: {e}")))?;
    parse_str(&src, path, env, &RealFs)
}

/// The process environment, for `parse_*`'s `env` argument.
pub fn real_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
