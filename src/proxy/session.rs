//! A long-lived `nft -i` for the proxy's small transactions. Starting nft
//! costs more than a one-endpoint change: at 10k Services each `nft -f -`
//! took ~17 ms (loading the program and its libraries, then reading the
//! table's objects), the same change written to a running `nft -i` well
//! under 1 ms (benches/RESULTS.md). nft runs each input line as one
//! transaction, so a script is sent as one line (its commands joined by
//! `;`) and applies all or nothing, as `nft -f -` does.
//!
//! nft says nothing on success, so every script is followed by a sentinel
//! line that fails with a known message: `list table inet cdns-sync-N`, a
//! table that never exists. Reading stderr up to the sentinel's echo tells
//! exactly which errors (if any) the script produced.
//!
//! Bounded: a reply is awaited for at most [`REPLY_TIMEOUT`]; on any
//! failure, or after [`MAX_TRANSACTIONS`] (nft keeps its input history in
//! memory), the process is killed and the next call starts another. Large
//! scripts (a full sync) go through a one-shot `nft -f -` instead.
//! `HOME` is pointed nowhere so nft writes no history file.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin};

use super::nft::{self, NftError, Tool};

/// How long one transaction may take before the session is given up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Transactions per `nft -i` process before it is replaced.
pub const MAX_TRANSACTIONS: u64 = 10_000;
/// Scripts longer than this go through `nft -f -`.
pub const MAX_LINE: usize = 1 << 20;

struct Running {
    child: Child,
    stdin: ChildStdin,
    stderr: Lines<BufReader<ChildStderr>>,
    transactions: u64,
}

/// See the module doc.
pub struct Session {
    tool: Tool,
    running: Option<Running>,
    /// Sentinels sent, so each is unique.
    sentinel: u64,
}

/// The errors a script produced, from the stderr lines read before its
/// sentinel's own error (`lines` ends with the sentinel's echo).
fn script_errors(lines: &[String]) -> Option<String> {
    // The sentinel's error is `Error: …` followed by the echoed command;
    // everything before that belongs to the script.
    let before = lines.len().saturating_sub(2);
    let text = lines[..before].join("\n");
    (!text.trim().is_empty()).then_some(text)
}

/// A script as one nft input line.
fn one_line(script: &str) -> String {
    script
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Session {
    /// A session that starts `tool` (with `-i`) on first use.
    pub fn new(tool: Tool) -> Session {
        Session {
            tool,
            running: None,
            sentinel: 0,
        }
    }

    fn start(&self) -> Result<Running, NftError> {
        let mut cmd = self.tool.command();
        cmd.arg("-i")
            .env("HOME", "/nonexistent")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = nft::spawn(&mut cmd)?;
        let (Some(stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err(NftError::Failed("nft -i without pipes".into()));
        };
        Ok(Running {
            child,
            stdin,
            stderr: BufReader::new(stderr).lines(),
            transactions: 0,
        })
    }

    /// Apply `script` in one transaction.
    pub async fn apply(&mut self, script: &str) -> Result<(), NftError> {
        if script.trim().is_empty() {
            return Ok(());
        }
        if script.len() > MAX_LINE {
            return nft::apply(&self.tool, script).await;
        }
        let mut running = match self.running.take() {
            Some(r) if r.transactions < MAX_TRANSACTIONS => r,
            old => {
                if let Some(mut r) = old {
                    r.child.kill().await.ok();
                }
                self.start()?
            }
        };
        self.sentinel += 1;
        let marker = format!("cdns-sync-{}", self.sentinel);
        let input = format!("{}\nlist table inet {marker}\n", one_line(script));
        let result = tokio::time::timeout(REPLY_TIMEOUT, async {
            running.stdin.write_all(input.as_bytes()).await?;
            running.stdin.flush().await?;
            let mut lines = Vec::new();
            loop {
                let Some(line) = running.stderr.next_line().await? else {
                    return Err(NftError::Failed(format!(
                        "nft -i exited: {}",
                        lines.join("\n")
                    )));
                };
                let done = line.contains(&marker);
                lines.push(line);
                if done {
                    // The caret line under the echoed sentinel.
                    running.stderr.next_line().await?;
                    return Ok(lines);
                }
            }
        })
        .await;
        match result {
            Ok(Ok(lines)) => {
                running.transactions += 1;
                let errors = script_errors(&lines);
                self.running = Some(running);
                match errors {
                    None => Ok(()),
                    Some(e) if e.contains("Operation not permitted") => Err(NftError::NotPermitted),
                    Some(e) => Err(NftError::Failed(e)),
                }
            }
            Ok(Err(e)) => {
                running.child.kill().await.ok();
                Err(e)
            }
            Err(_) => {
                running.child.kill().await.ok();
                Err(NftError::Failed(format!(
                    "nft -i gave no answer in {REPLY_TIMEOUT:?}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_is_one_line_of_commands() {
        let script = "add chain inet t c { type nat hook output priority -100 ; policy accept ; }\n\nadd rule inet t c accept\n";
        assert_eq!(
            one_line(script),
            "add chain inet t c { type nat hook output priority -100 ; policy accept ; }; add rule inet t c accept"
        );
    }

    #[test]
    fn only_lines_before_the_sentinel_are_the_scripts_errors() {
        let sentinel = [
            "Error: No such file or directory".to_owned(),
            "list table inet cdns-sync-3".to_owned(),
        ];
        assert_eq!(script_errors(&sentinel), None);
        let mut failed = vec![
            "Error: Could not process rule: No such file or directory".to_owned(),
            "delete element inet t m { 1.2.3.4 }".to_owned(),
            "                         ^^^^^^^".to_owned(),
        ];
        failed.extend(sentinel);
        let e = script_errors(&failed).expect("errors");
        assert!(e.starts_with("Error: Could not process rule") && e.ends_with("^^^^^^^"));
    }
}
