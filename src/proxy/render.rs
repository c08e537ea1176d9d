//! The pure heart of `clusterdns proxy`: Services and EndpointSlices in,
//! our nftables table out ([`Ruleset`]), in the shape kube-proxy's nftables
//! mode uses (written from its documented structure, not its code), with
//! fewer kernel objects per Service:
//!
//! - base chains on prerouting and output (nat, `dstnat`) jump to
//!   `services`, which looks the packet's `daddr . l4proto . dport` up in
//!   the verdict maps `service-ips` / `service-ips6` (ClusterIPs,
//!   externalIPs, LoadBalancer IPs) and `proto . dport` for local addresses
//!   in `service-nodeports(6)`;
//! - a ClusterIP port (without ClientIP affinity, its endpoints all on one
//!   target port) has no chain of its own: its `service-ips` element goes
//!   to the shared chain `lb4-tcp-N-P` (`lb6-udp-N-P`, ...) for its family,
//!   protocol, endpoint count N and target port P, which marks traffic for
//!   masquerading when it comes from outside the cluster and DNATs to port
//!   P of the address found by one lookup of `daddr . dport . numgen random
//!   mod N` in the map `endpoints-tcp` (`endpoints6-udp`, ...), whose
//!   elements are the port's endpoint addresses in slots 0..N. (A map per
//!   protocol: nft takes the DNAT's protocol from the map's declared types.
//!   The port in the chain rather than in each element: nft's cost per
//!   element grows with its fields.)
//!   nft's cost grows with the table's chains and rules (benches/RESULTS.md:
//!   ~15 µs per object in a transaction, and every transaction reads all
//!   chains), so 10,000 Services are ~20 chains and 110,000 map elements
//!   rather than 10,000 chains and 100,000 rules;
//! - external entry points (NodePort, externalIP, LB IP) go through an
//!   `ext…` chain: masquerade and the cluster chain under the `Cluster`
//!   policy; this node's endpoints only (no masquerade, source kept) under
//!   `Local`, except traffic from pods and from the node itself. Their
//!   per-Service-port chains (`svc4-…`/`svc6-…`, and `local…`) pick an
//!   endpoint with a cascade of `numgen random mod N-i 0 dnat …` rules, the
//!   last one plain (uniform, and without an anonymous vmap per Service,
//!   which the kernel handles in quadratic time);
//! - with ClientIP affinity, endpoint chains (`ep4-…`) remain: each marks
//!   hairpin traffic, records the client in its dynamic set and DNATs, and
//!   a client already in an endpoint's set goes straight back to it;
//! - hairpin traffic (a pod reaching itself through its Service) is found
//!   in postrouting by the set `hairpin(6)` of (VIP, endpoint, endpoint),
//!   holding only endpoints on this node (or with no node): a pod's packets
//!   are DNAT-ed by its own node, so no other endpoint can hairpin here;
//! - Service ports with no usable endpoint are in `no-endpoint-*` maps,
//!   consulted by filter chains on new connections: `reject` (connection
//!   refused at once) when the Service has no endpoint at all, `drop` when
//!   only a Local policy leaves it without one here;
//! - masquerading happens in postrouting for hairpin connections and for
//!   packets carrying the mark bit 0x4000: traffic from outside
//!   `--cluster-cidr`, external traffic under the `Cluster` policy, or
//!   everything with `--masquerade-all`.
//!
//! Besides the ruleset, [`render`] returns the UDP flows it programmed, so
//! the shell can delete conntrack entries that point at endpoints that left.

use std::cell::LazyCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::model::{Port, Protocol, Service, SlicesByService};
use super::ruleset::{Chain, Map, Ruleset};
use super::select::{Chosen, Node, Target, select};

/// The mark bit that asks postrouting to masquerade (kube-proxy's default).
pub const MASQ_MARK: &str = "0x4000";

/// Which local addresses NodePorts answer on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Every local address but loopback.
    #[default]
    AllLocal,
    /// Only these (from `--nodeport-addresses` or the node's primary IPs).
    Ips(Vec<IpAddr>),
}

/// The proxy's settings that shape the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The table's name (family `inet`).
    pub table: String,
    /// `--cluster-cidr`: traffic to a ClusterIP from outside is masqueraded.
    pub cluster_cidrs: Vec<IpNet>,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `--nodeport-addresses`.
    pub nodeport_addresses: NodePortAddresses,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            table: "clusterdns".to_owned(),
            cluster_cidrs: Vec::new(),
            masquerade_all: false,
            nodeport_addresses: NodePortAddresses::AllLocal,
        }
    }
}

/// Where a UDP flow enters: a virtual IP and port, or a NodePort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UdpEntry {
    /// ClusterIP, externalIP or LB IP, with the Service port.
    Vip(IpAddr, u16),
    /// A NodePort (any local address).
    NodePort(u16),
}

/// The UDP entry points programmed and the endpoint IPs behind each.
pub type UdpFlows = BTreeMap<UdpEntry, BTreeSet<IpAddr>>;

/// The output of [`render`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The table.
    pub ruleset: Ruleset,
    /// UDP entry points and their endpoints, for conntrack cleanup.
    pub udp: UdpFlows,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fam {
    V4,
    V6,
}

impl Fam {
    fn of(ip: &IpAddr) -> Fam {
        if ip.is_ipv4() { Fam::V4 } else { Fam::V6 }
    }
    fn n(self) -> &'static str {
        match self {
            Fam::V4 => "4",
            Fam::V6 => "6",
        }
    }
    /// Suffix of per-family map names (`service-ips`, `service-ips6`).
    fn map(self, base: &str) -> String {
        match self {
            Fam::V4 => base.to_owned(),
            Fam::V6 => format!("{base}6"),
        }
    }
    fn ip(self) -> &'static str {
        match self {
            Fam::V4 => "ip",
            Fam::V6 => "ip6",
        }
    }
    fn addr_type(self) -> &'static str {
        match self {
            Fam::V4 => "ipv4_addr",
            Fam::V6 => "ipv6_addr",
        }
    }
}

/// A chain or set name: a prefix, a short hash of the full identity (so
/// names stay unique whatever is cut or replaced) and a readable part.
fn name(prefix: &str, readable: &str) -> String {
    let digest = Sha256::digest(format!("{prefix}|{readable}").as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let clean: String = readable
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '/' | '_' | '.' | '-' => c,
            _ => '.',
        })
        .take(200)
        .collect();
    format!("{prefix}-{hash}-{clean}")
}

fn addr(ip: &IpAddr) -> String {
    ip.to_string()
}

fn dnat(fam: Fam, t: &Target, proto: Protocol) -> String {
    match fam {
        Fam::V4 => format!(
            "meta l4proto {} dnat ip to {}:{}",
            proto.nft(),
            t.ip,
            t.port
        ),
        Fam::V6 => format!(
            "meta l4proto {} dnat ip6 to [{}]:{}",
            proto.nft(),
            t.ip,
            t.port
        ),
    }
}

fn chain(rules: Vec<String>) -> Chain {
    Chain {
        base: None,
        rules,
        shared: false,
    }
}

fn base(spec: &str, rules: &[&str]) -> Chain {
    Chain {
        base: Some(spec.to_owned()),
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        shared: false,
    }
}

/// `--cluster-cidr` ranges of one family, as nft writes them.
fn cluster_cidrs(opts: &Options, fam: Fam) -> Vec<String> {
    opts.cluster_cidrs
        .iter()
        .filter(|c| Fam::of(&c.addr()) == fam)
        .map(|c| c.to_string())
        .collect()
}

/// The map of one family's and protocol's mapped endpoints.
fn endpoints_map(fam: Fam, proto: Protocol) -> String {
    format!("{}-{}", fam.map("endpoints"), proto.nft())
}

/// The shared balancing chain for ClusterIP ports with `n` endpoints on
/// target port `port`: the masquerade mark for traffic from outside the
/// cluster, then one DNAT to the address found in the protocol's endpoints
/// map, keyed by the packet's destination and a random slot below `n`
/// (uniform: each endpoint holds one slot).
fn lb_chain(fam: Fam, proto: Protocol, n: usize, port: u16, opts: &Options) -> (String, Chain) {
    let ip = fam.ip();
    let mut rules = Vec::new();
    if opts.masquerade_all {
        rules.push("jump mark-for-masquerade".to_owned());
    } else {
        let cidrs = cluster_cidrs(opts, fam);
        if !cidrs.is_empty() {
            rules.push(format!(
                "{ip} saddr != {{ {} }} jump mark-for-masquerade",
                cidrs.join(", ")
            ));
        }
    }
    let p = proto.nft();
    rules.push(format!(
        "dnat {ip} to {ip} daddr . {p} dport . numgen random mod {n} map @{} : {port}",
        endpoints_map(fam, proto)
    ));
    (
        format!("lb{}-{p}-{n}-{port}", fam.n()),
        Chain {
            base: None,
            rules,
            shared: true,
        },
    )
}

fn verdict_map(key: &str) -> Map {
    Map {
        is_set: false,
        decl: format!("type {key} : verdict ;"),
        elements: BTreeMap::new(),
    }
}

/// The fixed part of the table: hooks, dispatch, masquerading, reject.
fn skeleton(opts: &Options) -> Ruleset {
    let mut rs = Ruleset {
        table: opts.table.clone(),
        ..Ruleset::default()
    };
    let c = &mut rs.chains;
    let nat = |hook: &str, prio: &str, jump: &str| {
        base(
            &format!("type nat hook {hook} priority {prio} ; policy accept ;"),
            &[jump],
        )
    };
    c.insert(
        "nat-prerouting".into(),
        nat("prerouting", "dstnat", "jump services"),
    );
    // nft names `dstnat` for prerouting only; -100 is its value.
    c.insert("nat-output".into(), nat("output", "-100", "jump services"));
    c.insert(
        "nat-postrouting".into(),
        nat("postrouting", "srcnat", "jump masquerading"),
    );
    for hook in ["input", "forward", "output"] {
        c.insert(
            format!("filter-{hook}"),
            base(
                &format!("type filter hook {hook} priority -110 ; policy accept ;"),
                &["ct state new jump endpoints-check"],
            ),
        );
    }
    c.insert(
        "mark-for-masquerade".into(),
        chain(vec![format!("meta mark set meta mark | {MASQ_MARK}")]),
    );
    c.insert(
        "masquerading".into(),
        chain(vec![
            // Hairpin: a connection DNAT-ed back to its own source.
            "ct status dnat ct original ip daddr . ip saddr . ip daddr @hairpin masquerade fully-random".into(),
            "ct status dnat ct original ip6 daddr . ip6 saddr . ip6 daddr @hairpin6 masquerade fully-random".into(),
            format!("meta mark & {MASQ_MARK} == 0 return"),
            format!("meta mark set meta mark ^ {MASQ_MARK}"),
            "masquerade fully-random".into(),
        ]),
    );
    c.insert("reject-chain".into(), chain(vec!["reject".into()]));

    let mut services = Vec::new();
    let mut check = Vec::new();
    for fam in [Fam::V4, Fam::V6] {
        let ip = fam.ip();
        let vip_key = format!("{} . inet_proto . inet_service", fam.addr_type());
        rs.maps
            .insert(fam.map("service-ips"), verdict_map(&vip_key));
        let a = fam.addr_type();
        for proto in Protocol::ALL {
            let p = proto.nft();
            rs.maps.insert(
                endpoints_map(fam, proto),
                Map {
                    is_set: false,
                    decl: format!(
                        "typeof {ip} daddr . {p} dport . numgen random mod 1 : {ip} daddr ;"
                    ),
                    elements: Default::default(),
                },
            );
        }
        rs.maps.insert(
            fam.map("hairpin"),
            Map {
                is_set: true,
                decl: format!("type {a} . {a} . {a} ;"),
                elements: Default::default(),
            },
        );
        rs.maps
            .insert(fam.map("no-endpoint-services"), verdict_map(&vip_key));
        rs.maps.insert(
            fam.map("service-nodeports"),
            verdict_map("inet_proto . inet_service"),
        );
        rs.maps.insert(
            fam.map("no-endpoint-nodeports"),
            verdict_map("inet_proto . inet_service"),
        );
        services.push(format!(
            "{ip} daddr . meta l4proto . th dport vmap @{}",
            fam.map("service-ips")
        ));
        check.push(format!(
            "{ip} daddr . meta l4proto . th dport vmap @{}",
            fam.map("no-endpoint-services")
        ));
        let local = match (&opts.nodeport_addresses, fam) {
            (NodePortAddresses::AllLocal, Fam::V4) => {
                "meta nfproto ipv4 fib daddr type local ip daddr != 127.0.0.0/8".to_owned()
            }
            (NodePortAddresses::AllLocal, Fam::V6) => {
                "meta nfproto ipv6 fib daddr type local ip6 daddr != ::1".to_owned()
            }
            (NodePortAddresses::Ips(ips), _) => {
                let set = fam.map("nodeport-ips");
                rs.maps.insert(
                    set.clone(),
                    Map {
                        is_set: true,
                        decl: format!("type {} ;", fam.addr_type()),
                        elements: ips
                            .iter()
                            .filter(|a| Fam::of(a) == fam)
                            .map(|a| (addr(a), None))
                            .collect(),
                    },
                );
                format!("{ip} daddr @{set}")
            }
        };
        services.push(format!(
            "{local} meta l4proto . th dport vmap @{}",
            fam.map("service-nodeports")
        ));
        check.push(format!(
            "{local} meta l4proto . th dport vmap @{}",
            fam.map("no-endpoint-nodeports")
        ));
    }
    rs.chains.insert("services".into(), chain(services));
    rs.chains.insert("endpoints-check".into(), chain(check));
    rs
}

/// Everything rendered for one Service port in one family.
struct PortRender<'a> {
    /// The table's fixed part (map declarations).
    base: &'a Ruleset,
    svc: &'a Service,
    port: &'a Port,
    fam: Fam,
    vip: IpAddr,
    chosen: Chosen,
    opts: &'a Options,
}

impl PortRender<'_> {
    fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.svc.namespace,
            self.svc.name,
            self.port.protocol.nft(),
            self.port.name
        )
    }

    fn endpoint_chain(&self, t: &Target) -> String {
        name(
            &format!("ep{}", self.fam.n()),
            &format!("{}__{}/{}", self.id(), t.ip, t.port),
        )
    }

    fn affinity_set(&self, t: &Target, timeout: u32) -> String {
        name(
            &format!("aff{}", self.fam.n()),
            &format!("{}__{}/{}/{timeout}", self.id(), t.ip, t.port),
        )
    }

    /// Add the endpoint chains of `targets` and return the balancing chain's rules.
    fn balance(&self, rs: &mut Ruleset, targets: &[Target]) -> Vec<String> {
        let ip = self.fam.ip();
        let proto = self.port.protocol;
        let mut rules = Vec::new();
        if self.opts.masquerade_all {
            rules.push(format!(
                "{ip} daddr {} {} dport {} jump mark-for-masquerade",
                self.vip,
                proto.nft(),
                self.port.port
            ));
        } else {
            let cidrs = cluster_cidrs(self.opts, self.fam);
            if !cidrs.is_empty() {
                rules.push(format!(
                    "{ip} daddr {} {} dport {} {ip} saddr != {{ {} }} jump mark-for-masquerade",
                    self.vip,
                    proto.nft(),
                    self.port.port,
                    cidrs.join(", ")
                ));
            }
        }
        let n = targets.len();
        let mut arms = Vec::new();
        if self.svc.affinity.is_none() {
            // No chain per endpoint (nft's per-transaction cost follows the
            // table's chain count): DNAT in the balancing rule itself, and
            // hairpin traffic found in postrouting by (VIP, source, target).
            let vips: Vec<IpAddr> = std::iter::once(self.vip)
                .chain(
                    self.svc
                        .external_ips
                        .iter()
                        .chain(&self.svc.lb_ips)
                        .copied(),
                )
                .filter(|a| Fam::of(a) == self.fam)
                .collect();
            self.hairpin(rs, &vips, targets);
            for (i, t) in targets.iter().enumerate() {
                let dnat = dnat(self.fam, t, proto);
                arms.push(if i + 1 == n {
                    dnat
                } else {
                    format!("numgen random mod {} 0 {dnat}", n - i)
                });
            }
            rules.extend(arms);
            return rules;
        }
        for (i, t) in targets.iter().enumerate() {
            let ep = self.endpoint_chain(t);
            let mut ep_rules = vec![format!("{ip} saddr {} jump mark-for-masquerade", t.ip)];
            if let Some(timeout) = self.svc.affinity {
                let set = self.affinity_set(t, timeout);
                rs.dynamic_sets.insert(
                    set.clone(),
                    format!(
                        "type {} ; flags dynamic,timeout ; timeout {timeout}s ;",
                        self.fam.addr_type()
                    ),
                );
                rules.push(format!("{ip} saddr @{set} goto {ep}"));
                ep_rules.push(format!("update @{set} {{ {ip} saddr }}"));
            }
            ep_rules.push(dnat(self.fam, t, proto));
            rs.chains.insert(ep.clone(), chain(ep_rules));
            // Endpoint i of n is taken with chance 1/(n-i) when the earlier
            // ones were not: 1/n each. No anonymous vmap: the kernel scans
            // every set of the table to name each new anonymous one, which
            // made a 10k-Service transaction quadratic (benches/RESULTS.md).
            arms.push(if i + 1 == n {
                format!("goto {ep}")
            } else {
                format!("numgen random mod {} 0 goto {ep}", n - i)
            });
        }
        rules.extend(arms);
        rules
    }

    /// Hairpin elements (VIP, endpoint, endpoint) for the targets that can
    /// hairpin on this node.
    fn hairpin(&self, rs: &mut Ruleset, vips: &[IpAddr], targets: &[Target]) {
        let Some(set) = map_in(rs, self.base, &self.fam.map("hairpin")) else {
            return;
        };
        for t in targets.iter().filter(|t| self.chosen.here.contains(&t.ip)) {
            for vip in vips {
                set.elements
                    .insert(format!("{vip} . {} . {}", t.ip, t.ip), None);
            }
        }
    }

    /// The ClusterIP entry without affinity, its targets all on one port:
    /// the shared chain for the endpoint count and port, and the endpoint
    /// addresses in the `endpoints` map's slots. `false` (nothing written)
    /// when the targets' ports differ.
    fn render_mapped(&self, rs: &mut Ruleset, key: &str, targets: &[Target]) -> bool {
        let Some(port) = targets.first().map(|t| t.port) else {
            return false;
        };
        if targets.iter().any(|t| t.port != port) {
            return false;
        }
        let proto = self.port.protocol;
        let (lb, chain) = lb_chain(self.fam, proto, targets.len(), port, self.opts);
        rs.chains.insert(lb.clone(), chain);
        if let Some(m) = map_in(rs, self.base, &endpoints_map(self.fam, proto)) {
            for (slot, t) in targets.iter().enumerate() {
                m.elements.insert(
                    format!("{} . {} . {slot}", self.vip, self.port.port),
                    Some(t.ip.to_string()),
                );
            }
        }
        self.hairpin(rs, &[self.vip], targets);
        self.insert(
            rs,
            &self.fam.map("service-ips"),
            key.to_owned(),
            &format!("goto {lb}"),
        );
        true
    }

    fn insert(&self, rs: &mut Ruleset, map: &str, key: String, value: &str) {
        if let Some(m) = map_in(rs, self.base, map) {
            m.elements.insert(key, Some(value.to_owned()));
        }
    }

    fn render(&self, rs: &mut Ruleset, udp: &mut UdpFlows) {
        let fam = self.fam;
        let proto = self.port.protocol;
        let port = self.port.port;
        let svc = self.svc;
        let key = |ip: &IpAddr| format!("{ip} . {} . {port}", proto.nft());
        // Named only when used (a hash each): mapped ClusterIP ports have
        // no chain of their own.
        let cluster_chain = LazyCell::new(|| name(&format!("svc{}", fam.n()), &self.id()));
        let local_chain = LazyCell::new(|| name(&format!("local{}", fam.n()), &self.id()));
        let no_endpoints = if self.chosen.any {
            "drop"
        } else {
            "goto reject-chain"
        };
        let mut used_cluster = false;
        let mut used_local = false;

        // Internal traffic: the ClusterIP.
        let internal = if svc.internal_local {
            &self.chosen.local
        } else {
            &self.chosen.cluster
        };
        let (vips_map, none_map) = (fam.map("service-ips"), fam.map("no-endpoint-services"));
        // Without affinity, through a shared chain when it can.
        let mapped = !internal.is_empty()
            && svc.affinity.is_none()
            && self.render_mapped(rs, &key(&self.vip), internal);
        if internal.is_empty() {
            self.insert(rs, &none_map, key(&self.vip), no_endpoints);
        } else if !mapped {
            self.insert(
                rs,
                &vips_map,
                key(&self.vip),
                &format!(
                    "goto {}",
                    if svc.internal_local {
                        &*local_chain
                    } else {
                        &*cluster_chain
                    }
                ),
            );
            used_cluster |= !svc.internal_local;
            used_local |= svc.internal_local;
        }
        if proto == Protocol::Udp {
            udp.entry(UdpEntry::Vip(self.vip, port))
                .or_default()
                .extend(internal.iter().map(|t| t.ip));
        }

        // External traffic: NodePort, externalIPs, LoadBalancer IPs.
        let vips: Vec<IpAddr> = svc
            .external_ips
            .iter()
            .chain(&svc.lb_ips)
            .filter(|ip| Fam::of(ip) == fam)
            .copied()
            .collect();
        if self.port.node_port.is_some() || !vips.is_empty() {
            let external = if svc.external_local {
                &self.chosen.local
            } else {
                &self.chosen.cluster
            };
            let usable = !self.chosen.cluster.is_empty();
            if usable {
                let ext = name(&format!("ext{}", fam.n()), &self.id());
                let mut rules = Vec::new();
                if svc.external_local {
                    let ip = fam.ip();
                    let cidrs = cluster_cidrs(self.opts, fam);
                    if !cidrs.is_empty() {
                        // Pods reaching a Local Service's external address use
                        // every endpoint, masqueraded (it may be themselves).
                        rules.push(format!(
                            "{ip} saddr {{ {} }} jump mark-for-masquerade",
                            cidrs.join(", ")
                        ));
                        rules.push(format!(
                            "{ip} saddr {{ {} }} goto {}",
                            cidrs.join(", "),
                            *cluster_chain
                        ));
                    }
                    rules.push("fib saddr type local jump mark-for-masquerade".into());
                    rules.push(format!("fib saddr type local goto {}", *cluster_chain));
                    if external.is_empty() {
                        rules.push("drop".into());
                    } else {
                        rules.push(format!("goto {}", *local_chain));
                        used_local = true;
                    }
                } else {
                    rules.push("jump mark-for-masquerade".into());
                    rules.push(format!("goto {}", *cluster_chain));
                }
                used_cluster = true;
                rs.chains.insert(ext.clone(), chain(rules));
                for ip in &vips {
                    self.insert(rs, &vips_map, key(ip), &format!("goto {ext}"));
                }
                if let Some(np) = self.port.node_port {
                    self.insert(
                        rs,
                        &fam.map("service-nodeports"),
                        format!("{} . {np}", proto.nft()),
                        &format!("goto {ext}"),
                    );
                }
            } else {
                for ip in &vips {
                    self.insert(rs, &none_map, key(ip), no_endpoints);
                }
                if let Some(np) = self.port.node_port {
                    self.insert(
                        rs,
                        &fam.map("no-endpoint-nodeports"),
                        format!("{} . {np}", proto.nft()),
                        no_endpoints,
                    );
                }
            }
            if proto == Protocol::Udp {
                let ips: BTreeSet<IpAddr> = if usable {
                    self.chosen
                        .cluster
                        .iter()
                        .chain(external)
                        .map(|t| t.ip)
                        .collect()
                } else {
                    BTreeSet::new()
                };
                for ip in &vips {
                    udp.entry(UdpEntry::Vip(*ip, port))
                        .or_default()
                        .extend(ips.iter().copied());
                }
                if let Some(np) = self.port.node_port {
                    udp.entry(UdpEntry::NodePort(np))
                        .or_default()
                        .extend(ips.iter().copied());
                }
            }
        }
        if used_cluster && !self.chosen.cluster.is_empty() {
            let rules = self.balance(rs, &self.chosen.cluster);
            rs.chains
                .insert(LazyCell::force(&cluster_chain).clone(), chain(rules));
        }
        if used_local && !self.chosen.local.is_empty() {
            let rules = self.balance(rs, &self.chosen.local);
            rs.chains
                .insert(LazyCell::force(&local_chain).clone(), chain(rules));
        }
    }
}

/// Map `name` in fragment `rs`, created (without elements) on first use
/// from the base's declaration; `None` when the base has no such map.
fn map_in<'a>(rs: &'a mut Ruleset, base: &Ruleset, name: &str) -> Option<&'a mut Map> {
    if !rs.maps.contains_key(name) {
        let m = base.maps.get(name)?;
        rs.maps.insert(
            name.to_owned(),
            Map {
                is_set: m.is_set,
                decl: m.decl.clone(),
                elements: BTreeMap::new(),
            },
        );
    }
    rs.maps.get_mut(name)
}

/// The whole table for `services` with their `slices`, on `node`.
pub fn render(
    services: &[Service],
    slices: &SlicesByService,
    node: &Node,
    opts: &Options,
) -> Rendered {
    let base = skeleton(opts);
    let mut out = Rendered {
        ruleset: base.clone(),
        udp: UdpFlows::new(),
    };
    let none = Vec::new();
    for svc in services {
        let svc_slices = slices.get(&svc.key()).unwrap_or(&none);
        merge(
            &mut out,
            &render_service(svc, svc_slices, node, opts, &base),
        );
    }
    out
}

/// The fixed part of the table for `opts` (hooks, dispatch chains, the
/// maps with no Service's elements): what [`render_service`] fragments are
/// added to, and where they find the maps' declarations.
pub fn base_table(opts: &Options) -> Ruleset {
    skeleton(opts)
}

/// One Service's part of the table: its chains, its dynamic sets, its
/// elements in the base's maps (only the maps it has elements in), and its
/// UDP flows; diff two with [`Ruleset::fragment_diff_script`]. Fragments of different
/// Services never name the same chain or element, so they can be rendered,
/// diffed and merged one by one (the proxy re-renders only the Services
/// whose inputs changed).
pub fn render_service(
    svc: &Service,
    slices: &[std::sync::Arc<super::model::Slice>],
    node: &Node,
    opts: &Options,
    base: &Ruleset,
) -> Rendered {
    let mut rs = Ruleset {
        table: base.table.clone(),
        ..Ruleset::default()
    };
    let mut udp = UdpFlows::new();
    for vip in &svc.cluster_ips {
        let fam = Fam::of(vip);
        for port in &svc.ports {
            let chosen = select(port, slices, fam == Fam::V6, node);
            PortRender {
                base,
                svc,
                port,
                fam,
                vip: *vip,
                chosen,
                opts,
            }
            .render(&mut rs, &mut udp);
        }
    }
    Rendered { ruleset: rs, udp }
}

/// Add a fragment to a table.
pub fn merge(into: &mut Rendered, fragment: &Rendered) {
    let rs = &mut into.ruleset;
    rs.chains.extend(
        fragment
            .ruleset
            .chains
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    rs.dynamic_sets.extend(
        fragment
            .ruleset
            .dynamic_sets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for (name, m) in &fragment.ruleset.maps {
        if let Some(target) = rs.maps.get_mut(name) {
            target
                .elements
                .extend(m.elements.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    for (entry, ips) in &fragment.udp {
        into.udp
            .entry(*entry)
            .or_default()
            .extend(ips.iter().copied());
    }
}

#[cfg(test)]
mod tests;
