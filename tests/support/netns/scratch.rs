//! One bare network namespace of a test's or bench's own (no links, no
//! addresses: a kernel of its own for nftables), removed on drop — after
//! killing whatever still runs in it — also when the test panics.

use std::process::{Command, Stdio};

use super::topology::kill_processes_in;

/// A bare namespace named `<prefix>-<tag>-<pid>`.
pub struct Scratch(pub String);

impl Scratch {
    /// Create it (replacing a leftover of the same name from this pid).
    pub fn create(prefix: &str, tag: &str) -> Scratch {
        let name = format!("{prefix}-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(ok.success(), "ip netns add {name}");
        Scratch(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        kill_processes_in(&self.0);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}
