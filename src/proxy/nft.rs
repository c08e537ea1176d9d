//! Running `nft`: one `nft -f -` per transaction (nft applies a script
//! atomically: all of it or nothing), `nft list chains/sets/maps` to learn
//! what the kernel holds of our table, and the start-up checks that turn a missing
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

/// Start `cmd`; nft not installed is [`NftError::Missing`].
pub(super) fn spawn(cmd: &mut Command) -> Result<tokio::process::Child, NftError> {
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NftError::Missing,
        _ => NftError::Io(e),
    })
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
    let mut child = spawn(&mut cmd)?;
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

/// What the kernel holds of `inet <table>` (empty when it does not exist):
/// the names of its chains, sets and maps, from one `nft -t -f -` of
/// `list chains/sets/maps inet`, which carry neither rules nor elements.
/// (`nft -j list table` carries both: at 10k Services × 10 endpoints it took
/// 55 s and printed 105 MB of JSON, every `--sync-period`; see
/// benches/RESULTS.md.)
pub async fn existing(nft: &Tool, table: &str) -> Result<Existing, NftError> {
    let listing = run(
        nft,
        &["-t", "-f", "-"],
        Some("list chains inet\nlist sets inet\nlist maps inet\n"),
    )
    .await?;
    Ok(parse_listing(&listing, table))
}

/// The chain, set and map names of `table inet <table>` in nft's text
/// listing (`table inet T {` blocks holding `chain N {`, `set N {`,
/// `map N {` one tab in); other tables are ignored.
pub fn parse_listing(text: &str, table: &str) -> Existing {
    let mut out = Existing::default();
    let mut ours = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("table ") {
            ours = rest.split_whitespace().collect::<Vec<_>>() == ["inet", table, "{"];
            continue;
        }
        let Some(decl) = line.strip_prefix('\t') else {
            continue;
        };
        if !ours || decl.starts_with(char::is_whitespace) {
            continue;
        }
        let mut words = decl.split_whitespace();
        let (Some(kind), Some(name), Some("{")) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let name = name.trim_matches('"').to_owned();
        match kind {
            "chain" => out.chains.insert(name),
            "set" => out.sets.insert(name),
            "map" => out.maps.insert(name),
            _ => false,
        };
    }
    out
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
    fn existing_names_from_nft_listing() {
        // `nft -t -f -` of list chains/sets/maps inet, as nft 1.0.6 prints it.
        let text = "table inet clusterdns {\n\tchain ep4-abc/x__1.2.3.4/80 {\n\t}\n\
            \tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n}\n\
            table inet other {\n\tchain x {\n\t}\n}\n\
            table inet clusterdns {\n\tset aff4-1 {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t}\n}\n\
            table inet other {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}\n\
            table inet clusterdns {\n\tmap service-ips {\n\t\ttype ipv4_addr : verdict\n\t}\n}\n\
            table inet other {\n}\n";
        let e = parse_listing(text, "clusterdns");
        assert_eq!(
            e.chains.iter().collect::<Vec<_>>(),
            ["ep4-abc/x__1.2.3.4/80", "nat-output"]
        );
        assert_eq!(e.maps.iter().collect::<Vec<_>>(), ["service-ips"]);
        assert_eq!(e.sets.iter().collect::<Vec<_>>(), ["aff4-1"]);
        assert_eq!(parse_listing(text, "other").chains.len(), 1);
        assert_eq!(parse_listing(text, "absent"), Existing::default());
        assert_eq!(parse_listing("", "clusterdns"), Existing::default());
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
