//! The command line: CoreDNS's single-dash flags (`-conf`, `-dns.port`, ...),
//! double dashes accepted too, plus our subcommands.
//!
//! clap only knows single-character short flags, so multi-character flags
//! written with one dash are rewritten to two dashes before parsing.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Kubernetes cluster DNS, a drop-in for CoreDNS.
#[derive(Debug, Parser)]
#[command(name = "clusterdns", disable_version_flag = true)]
pub struct Cli {
    /// Server options (the default role).
    #[command(flatten)]
    pub server: ServerArgs,
    /// A role other than the DNS server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags of the DNS server role, named as CoreDNS names them.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Corefile to load.
    #[arg(
        long = "conf",
        value_name = "FILE",
        default_value = "Corefile",
        global = true
    )]
    pub conf: PathBuf,
    /// Default port for server blocks that do not name one.
    #[arg(long = "dns.port", value_name = "PORT", default_value_t = 53)]
    pub dns_port: u16,
    /// Write the process id to this file.
    #[arg(long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// List the plugins compiled in and exit.
    #[arg(long = "plugins")]
    pub plugins: bool,
    /// Quiet mode: no startup banner.
    #[arg(long = "quiet")]
    pub quiet: bool,
    /// Print the version and exit.
    #[arg(long = "version")]
    pub version: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a Corefile: print every problem as file:line:col: message; exit 1 if any.
    Check,
}

/// Rewrite `-conf` to `--conf` (and `-conf=x` to `--conf=x`); leave `-h`, `--x` and values alone.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s.len() > 2 && s.starts_with('-') && !s.starts_with("--") => {
                let name = s[1..].split('=').next().unwrap_or_default();
                if name.chars().all(|c| c.is_ascii_alphabetic() || c == '.') {
                    OsString::from(format!("-{s}"))
                } else {
                    a
                }
            }
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::parse_from(normalize(args.iter().map(OsString::from)))
    }

    #[test]
    fn single_dash_flags_are_accepted_as_coredns_spells_them() {
        let cli = parse(&[
            "clusterdns",
            "-conf",
            "/etc/coredns/Corefile",
            "-dns.port",
            "1053",
        ]);
        assert_eq!(cli.server.conf, PathBuf::from("/etc/coredns/Corefile"));
        assert_eq!(cli.server.dns_port, 1053);
        assert!(cli.command.is_none());
    }

    #[test]
    fn double_dash_and_equals_forms_work_too() {
        let cli = parse(&["clusterdns", "--conf=/x", "-pidfile=/run/p", "-quiet"]);
        assert_eq!(cli.server.conf, PathBuf::from("/x"));
        assert_eq!(cli.server.pidfile, Some(PathBuf::from("/run/p")));
        assert!(cli.server.quiet);
    }

    #[test]
    fn check_takes_conf_after_the_subcommand() {
        let cli = parse(&["clusterdns", "check", "-conf", "a/Corefile"]);
        assert!(matches!(cli.command, Some(Command::Check)));
        assert_eq!(cli.server.conf, PathBuf::from("a/Corefile"));
    }

    #[test]
    fn negative_numbers_and_short_flags_are_not_rewritten() {
        let out = normalize(["-h", "-1", "--x"].map(OsString::from));
        assert_eq!(out, ["-h", "-1", "--x"].map(OsString::from));
    }
}
