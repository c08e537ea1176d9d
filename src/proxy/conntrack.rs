//! Stale UDP conntrack entries. UDP has no connection end, so after an
//! endpoint of a UDP Service goes away, conntrack keeps sending a client's
//! packets (same source port) to the old endpoint until the entry times out
//! — a replaced DNS pod would leave its clients talking to a dead IP. As
//! kube-proxy does, the proxy deletes those entries after the rules changed:
//!
//! - an endpoint IP no longer behind a UDP virtual IP or NodePort: the
//!   entries DNAT-ed from that entry point to that IP;
//! - an entry point that had no endpoint and now has one: every entry to it
//!   (they recorded the rejection, not a DNAT).
//!
//! [`stale`] is pure; [`delete`] runs the `conntrack` tool.

use std::net::IpAddr;
use std::process::Stdio;

use super::nft::Tool;
use super::render::{UdpEntry, UdpFlows};

/// One deletion: which entries to remove.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flush {
    /// Entries to the entry point DNAT-ed to this endpoint IP.
    Endpoint(UdpEntry, IpAddr),
    /// Every entry to the entry point.
    Entry(UdpEntry),
}

impl Flush {
    /// `conntrack` arguments for this deletion.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-D", "-p", "udp"].map(str::to_owned).to_vec();
        let entry = match self {
            Flush::Endpoint(e, _) | Flush::Entry(e) => e,
        };
        match entry {
            UdpEntry::Vip(ip, port) => {
                args.extend([
                    "--orig-dst".into(),
                    ip.to_string(),
                    "--dport".into(),
                    port.to_string(),
                ]);
                if ip.is_ipv6() {
                    args.extend(["-f".into(), "ipv6".into()]);
                }
            }
            UdpEntry::NodePort(port) => args.extend(["--dport".into(), port.to_string()]),
        }
        if let Flush::Endpoint(_, ep) = self {
            args.extend(["--dst-nat".into(), ep.to_string()]);
            if ep.is_ipv6() && matches!(entry, UdpEntry::NodePort(_)) {
                args.extend(["-f".into(), "ipv6".into()]);
            }
        }
        args
    }
}

/// What to delete after moving from `old` to `new`.
pub fn stale(old: &UdpFlows, new: &UdpFlows) -> Vec<Flush> {
    let mut out = Vec::new();
    for (entry, before) in old {
        let after = new.get(entry);
        for ip in before {
            if after.is_none_or(|a| !a.contains(ip)) {
                out.push(Flush::Endpoint(*entry, *ip));
            }
        }
    }
    for (entry, after) in new {
        let before_empty = old.get(entry).is_none_or(|b| b.is_empty());
        if before_empty && !after.is_empty() {
            out.push(Flush::Entry(*entry));
        }
    }
    out.sort();
    out
}

/// Run the deletions; a missing entry is not an error (conntrack exits 1
/// when nothing matched). Returns the deletions that failed otherwise.
pub async fn delete(conntrack: &Tool, flushes: &[Flush]) -> Vec<(Flush, String)> {
    let mut failed = Vec::new();
    for f in flushes {
        let out = conntrack
            .command()
            .args(f.args())
            .stdin(Stdio::null())
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr).into_owned();
                if !err.contains("0 flow entries have been deleted") {
                    failed.push((f.clone(), err.trim().to_owned()));
                }
            }
            Err(e) => failed.push((f.clone(), e.to_string())),
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn flows(items: &[(UdpEntry, &[&str])]) -> UdpFlows {
        items
            .iter()
            .map(|(e, ips)| (*e, ips.iter().map(|s| ip(s)).collect::<BTreeSet<_>>()))
            .collect()
    }

    #[test]
    fn stale_table() {
        let dns = UdpEntry::Vip(ip("10.96.0.10"), 53);
        let np = UdpEntry::NodePort(30053);
        let cases: Vec<(&str, UdpFlows, UdpFlows, Vec<Flush>)> = vec![
            (
                "nothing changed",
                flows(&[(dns, &["10.244.1.2"])]),
                flows(&[(dns, &["10.244.1.2"])]),
                vec![],
            ),
            (
                "endpoint replaced",
                flows(&[(dns, &["10.244.1.2"])]),
                flows(&[(dns, &["10.244.1.3"])]),
                vec![Flush::Endpoint(dns, ip("10.244.1.2"))],
            ),
            (
                "first endpoint",
                flows(&[(dns, &[])]),
                flows(&[(dns, &["10.244.1.3"])]),
                vec![Flush::Entry(dns)],
            ),
            (
                "service gone",
                flows(&[(dns, &["10.244.1.2"]), (np, &["10.244.1.2"])]),
                flows(&[]),
                vec![
                    Flush::Endpoint(dns, ip("10.244.1.2")),
                    Flush::Endpoint(np, ip("10.244.1.2")),
                ],
            ),
            (
                "new service",
                flows(&[]),
                flows(&[(np, &["10.244.1.2"])]),
                vec![Flush::Entry(np)],
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(stale(&old, &new), want, "{what}");
        }
    }

    #[test]
    fn conntrack_arguments() {
        let dns = UdpEntry::Vip(ip("10.96.0.10"), 53);
        assert_eq!(
            Flush::Endpoint(dns, ip("10.244.1.2")).args().join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --dport 53 --dst-nat 10.244.1.2"
        );
        assert_eq!(
            Flush::Entry(UdpEntry::NodePort(30053)).args().join(" "),
            "-D -p udp --dport 30053"
        );
        assert_eq!(
            Flush::Entry(UdpEntry::Vip(ip("fd00::a"), 53))
                .args()
                .join(" "),
            "-D -p udp --orig-dst fd00::a --dport 53 -f ipv6"
        );
    }
}
