//! The one error type of the Corefile layer.
//!
//! Invariant: every error names the file, line and column (1-based) of the token it is
//! about, so a user can jump straight to it; the file is the imported file when the token
//! came from one. Only errors about a whole file (it cannot be read) carry line 0, and
//! then print as `file: message`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::ast::Pos;

/// A syntax or value error in a Corefile, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorefileError {
    /// The file the offending token was read from.
    pub file: Arc<Path>,
    /// 1-based line; 0 when the error is about the whole file.
    pub line: u32,
    /// 1-based column, counted in characters; 0 when the error is about the whole file.
    pub col: u32,
    /// What is wrong, prefixed by the plugin name where one is involved (`kubernetes: ...`).
    pub message: String,
}

impl CorefileError {
    /// An error at `pos`.
    pub fn at(pos: &Pos, message: impl Into<String>) -> Self {
        CorefileError {
            file: pos.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    /// An error about a whole file (line and column 0), e.g. when it cannot be read.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        CorefileError {
            file: Arc::from(file),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for CorefileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for CorefileError {}

/// Result alias of this layer.
pub type Result<T, E = CorefileError> = std::result::Result<T, E>;
