//! The command line: CoreDNS's single-dash flags (`-conf`, `-dns.port`, ...),
//! double dashes accepted too, plus our subcommands.
//!
//! clap only knows single-character short flags, so multi-character flags
//! written with one dash are rewritten to two dashes before parsing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Run the EndpointSlice and Endpoints controller (kube-controller-manager's role).
    EndpointsController(EndpointsControllerArgs),
    /// Run the nftables service proxy (kube-proxy's role).
    Proxy(ProxyArgs),
    /// Print the Corefile to run in place of a kube-dns ConfigMap or a CoreDNS Corefile;
    /// what cannot be carried over goes to stderr as FILE:LINE: message; exit 1 if the
    /// result behaves differently, 64 if the input cannot be read.
    Migrate {
        /// The kube-dns ConfigMap (YAML or JSON), the coredns ConfigMap, or a Corefile.
        file: PathBuf,
    },
}

/// Flags of `clusterdns proxy`, named as kube-proxy names them.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// kubeconfig file; without it (and without --endpoint), KUBECONFIG or the in-cluster config.
    #[arg(long = "kubeconfig", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// API server URL (e.g. http://127.0.0.1:8080), used when no --kubeconfig is given.
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoint: Option<String>,
    /// This node's name, instead of the host name.
    #[arg(long = "hostname-override", value_name = "NAME")]
    pub hostname_override: Option<String>,
    /// Pod CIDRs (comma-separated): traffic to a ClusterIP from outside them is masqueraded.
    #[arg(long = "cluster-cidr", value_name = "CIDRS")]
    pub cluster_cidr: Option<String>,
    /// Where NodePorts answer: CIDRs (comma-separated) or `primary`; unset: every local address.
    #[arg(long = "nodeport-addresses", value_name = "CIDRS")]
    pub nodeport_addresses: Option<String>,
    /// Masquerade all traffic sent to Service IPs.
    #[arg(long = "masquerade-all")]
    pub masquerade_all: bool,
    /// How often the whole table is rewritten from scratch.
    #[arg(long = "sync-period", value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub sync_period: Duration,
    /// The least time between two syncs (changes in between are batched).
    #[arg(long = "min-sync-period", value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub min_sync_period: Duration,
    /// Where /metrics is served (port 0: any free port, logged).
    #[arg(
        long = "metrics-bind-address",
        value_name = "IP:PORT",
        default_value = "127.0.0.1:10249"
    )]
    pub metrics_bind_address: std::net::SocketAddr,
    /// Where /healthz is served.
    #[arg(
        long = "healthz-bind-address",
        value_name = "IP:PORT",
        default_value = "0.0.0.0:10256"
    )]
    pub healthz_bind_address: std::net::SocketAddr,
    /// Remove the proxy's nftables table and exit.
    #[arg(long = "cleanup")]
    pub cleanup: bool,
}

/// Flags of `clusterdns endpoints-controller`, named as kube-controller-manager names them.
#[derive(Debug, Args)]
pub struct EndpointsControllerArgs {
    /// kubeconfig file; without it (and without --endpoint), KUBECONFIG or the in-cluster config.
    #[arg(long = "kubeconfig", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// API server URL (e.g. http://127.0.0.1:8080), used when no --kubeconfig is given.
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Only write while holding the Lease kube-system/clusterdns-endpoints-controller.
    #[arg(long = "leader-elect")]
    pub leader_elect: bool,
    /// How long a Lease holds without renewal.
    #[arg(long = "leader-elect-lease-duration", value_name = "DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    #[arg(long = "leader-elect-renew-deadline", value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub renew_deadline: Duration,
    /// The pause between acquire or renew attempts.
    #[arg(long = "leader-elect-retry-period", value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub retry_period: Duration,
    /// Services synced at once.
    #[arg(long = "concurrent-service-endpoint-syncs", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent_syncs: u16,
    /// Most endpoints in one EndpointSlice (1..=1000).
    #[arg(long = "max-endpoints-per-slice", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_endpoints_per_slice: u16,
    /// Where /metrics and /healthz are served (port 0: any free port, logged).
    #[arg(
        long = "metrics-bind-address",
        value_name = "IP:PORT",
        default_value = "127.0.0.1:10257"
    )]
    pub metrics_bind_address: std::net::SocketAddr,
}

/// A Go duration flag value (`15s`, `1m30s`, `500ms`).
fn duration(s: &str) -> Result<Duration, String> {
    crate::corefile::go_duration(s)
        .ok_or_else(|| format!("invalid duration '{s}' (use e.g. 15s, 1m30s, 500ms)"))
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
    fn endpoints_controller_flags_parse_with_kube_controller_manager_defaults() {
        let cli = parse(&["clusterdns", "endpoints-controller"]);
        let Some(Command::EndpointsController(a)) = cli.command else {
            panic!("not endpoints-controller: {:?}", cli.command);
        };
        assert_eq!(a.lease_duration, Duration::from_secs(15));
        assert_eq!(a.renew_deadline, Duration::from_secs(10));
        assert_eq!(a.retry_period, Duration::from_secs(2));
        assert_eq!((a.concurrent_syncs, a.max_endpoints_per_slice), (5, 100));
        assert!(!a.leader_elect && a.kubeconfig.is_none());

        let cli = parse(&[
            "clusterdns",
            "endpoints-controller",
            "--kubeconfig",
            "/k",
            "--leader-elect",
            "--leader-elect-lease-duration",
            "1m30s",
            "--leader-elect-retry-period=500ms",
            "--concurrent-service-endpoint-syncs",
            "2",
            "--max-endpoints-per-slice",
            "1000",
        ]);
        let Some(Command::EndpointsController(a)) = cli.command else {
            panic!("not endpoints-controller");
        };
        assert_eq!(a.kubeconfig, Some(PathBuf::from("/k")));
        assert!(a.leader_elect);
        assert_eq!(a.lease_duration, Duration::from_secs(90));
        assert_eq!(a.retry_period, Duration::from_millis(500));
        assert_eq!((a.concurrent_syncs, a.max_endpoints_per_slice), (2, 1000));
    }

    #[test]
    fn endpoints_controller_rejects_bad_values_with_an_error() {
        for bad in [
            ["--leader-elect-lease-duration", "15"],
            ["--leader-elect-lease-duration", "-1s"],
            ["--concurrent-service-endpoint-syncs", "0"],
            ["--max-endpoints-per-slice", "1001"],
        ] {
            let args = ["clusterdns", "endpoints-controller", bad[0], bad[1]];
            let res = Cli::try_parse_from(normalize(args.iter().map(OsString::from)));
            assert!(res.is_err(), "{bad:?} accepted");
        }
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
    fn migrate_takes_one_file() {
        let cli = parse(&["clusterdns", "migrate", "kube-dns.yaml"]);
        let Some(Command::Migrate { file }) = cli.command else {
            panic!("not migrate: {:?}", cli.command);
        };
        assert_eq!(file, PathBuf::from("kube-dns.yaml"));
        let none = Cli::try_parse_from(["clusterdns", "migrate"]);
        assert!(none.is_err(), "migrate without a file accepted");
    }

    #[test]
    fn negative_numbers_and_short_flags_are_not_rewritten() {
        let out = normalize(["-h", "-1", "--x"].map(OsString::from));
        assert_eq!(out, ["-h", "-1", "--x"].map(OsString::from));
    }
}
