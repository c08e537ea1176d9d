//! `-pidfile`: write the process id at start, remove the file at exit.

use std::path::{Path, PathBuf};

/// A written pid file, removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: Option<PathBuf>,
}

impl PidFile {
    /// Write `std::process::id()` to `path`; a failure is logged, not fatal (as CoreDNS).
    pub fn create(path: &Path) -> Self {
        match std::fs::write(path, format!("{}\n", std::process::id())) {
            Ok(()) => Self {
                path: Some(path.to_path_buf()),
            },
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "writing pidfile");
                Self { path: None }
            }
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
