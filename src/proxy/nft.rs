//! Running `nft`: one `nft -f -` per transaction (nft applies a script
//! atomically: all of it or nothing), `nft -j list table` to learn what the
//! kernel holds of our table, and the start-up checks that turn a missing
//! `nft` or a missing CAP_NET_ADMIN into one clear error line instead of a
//! stream of failed syncs.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::ruleset::Existing;

/// Why an nft call failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` is not installed (or not in PATH).
    #[error("nft not found in PATH: install nftables (the proxy programs the kernel through it)")]
    Missing,
    /// The process may not change nftables.
    #[error(
        "nft: operation not permitted: the proxy needs CAP_NET_ADMIN (run as root or grant the capability)"
    )]
    NotPermitted,
    /// nft ran and refused the script.
    #[error("nft refused the transaction: {0}")]
    Failed(String),
    /// Spawning or talking to nft failed.
    #[error("running nft: {0}")]
    Io(#[from] std::io::Error),
    /// `nft -j` printed something that is not its JSON.
    #[error("reading nft's JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn classify(stderr: &str) -> NftError {
    if stderr.contains("Operation not permitted") {
        NftError::NotPermitted
    } else {
        NftError::Failed(stderr.trim().to_owned())
    }
}

/// How to run a tool: the program and leading arguments (`["nft"]`, or
/// `["ip", "netns", "exec", "ns1", "nft"]` in tests that program a network
/// namespace of their own from outside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool(pub Vec<String>);

impl Tool {
    /// The tool found in PATH.
    pub fn named(program: &str) -> Tool {
        Tool(vec![program.to_owned()])
    }

    /// The tool run inside network namespace `ns` via `ip netns exec`.
    pub fn in_netns(ns: &str, program: &str) -> Tool {
        Tool(
            ["ip", "netns", "exec", ns, program]
                .map(str::to_owned)
                .to_vec(),
        )
    }

    /// A command for this tool.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.0.first().map_or("nft", String::as_str));
        cmd.args(self.0.iter().skip(1));
        cmd
    }
}

async fn run(nft: &Tool, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
    let mut cmd = nft.command();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NftError::Missing,
        _ => NftError::Io(e),
    })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).await?;
        input.shutdown().await?;
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(classify(&String::from_utf8_lossy(&out.stderr)))
    }
}

/// Fails with [`NftError::Missing`] or [`NftError::NotPermitted`] when the
/// proxy cannot work at all.
pub async fn check(nft: &Tool) -> Result<(), NftError> {
    run(nft, &["list", "tables"], None).await.map(|_| ())
}

/// Apply `script` in one transaction.
pub async fn apply(nft: &Tool, script: &str) -> Result<(), NftError> {
    if script.is_empty() {
        return Ok(());
    }
    run(nft, &["-f", "-"], Some(script)).await.map(|_| ())
}

/// What the kernel holds of `inet <table>` (empty when it does not exist).
pub async fn existing(nft: &Tool, table: &str) -> Result<Existing, NftError> {
    match run(nft, &["-j", "list", "table", "inet", table], None).await {
        Ok(json) => Ok(parse_existing(&json)?),
        Err(NftError::Failed(e)) if e.contains("No such file or directory") => {
            Ok(Existing::default())
        }
        Err(e) => Err(e),
    }
}

/// The chain, set and map names in `nft -j list table` output.
pub fn parse_existing(json: &str) -> Result<Existing, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let mut out = Existing::default();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let name = |kind: &str| item[kind]["name"].as_str().map(str::to_owned);
        if let Some(n) = name("chain") {
            out.chains.insert(n);
        } else if let Some(n) = name("set") {
            out.sets.insert(n);
        } else if let Some(n) = name("map") {
            out.maps.insert(n);
        }
    }
    Ok(out)
}

/// `--cleanup`: delete `inet <table>` if it exists.
pub async fn delete_table(nft: &Tool, table: &str) -> Result<(), NftError> {
    match run(nft, &["delete", "table", "inet", table], None).await {
        Ok(_) => Ok(()),
        Err(NftError::Failed(e)) if e.contains("No such file or directory") => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_names_from_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "clusterdns", "handle": 1}},
            {"chain": {"family": "inet", "table": "clusterdns", "name": "services", "handle": 2}},
            {"map": {"family": "inet", "name": "service-ips", "table": "clusterdns", "type": ["ipv4_addr"], "handle": 3, "map": "verdict"}},
            {"set": {"family": "inet", "name": "aff4-1", "table": "clusterdns", "type": "ipv4_addr", "handle": 4}},
            {"rule": {"family": "inet", "table": "clusterdns", "chain": "services", "handle": 5, "expr": []}}]}"#;
        let e = parse_existing(json).expect("parse");
        assert_eq!(e.chains.into_iter().collect::<Vec<_>>(), ["services"]);
        assert_eq!(e.maps.into_iter().collect::<Vec<_>>(), ["service-ips"]);
        assert_eq!(e.sets.into_iter().collect::<Vec<_>>(), ["aff4-1"]);
    }

    #[test]
    fn permission_errors_are_recognised() {
        assert!(matches!(
            classify("netlink: Error: cache initialization failed: Operation not permitted"),
            NftError::NotPermitted
        ));
        assert!(matches!(
            classify("Error: syntax error"),
            NftError::Failed(_)
        ));
    }
}
