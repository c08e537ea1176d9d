//! Our nftables table as data, and the `nft -f -` scripts that make the
//! kernel hold it: a full script (used at start and for the periodic
//! resync, atomic, repairing any drift) and an incremental one computed from
//! the previous and the next ruleset (only changed chains are flushed and
//! refilled, only changed map elements are added or deleted).
//!
//! Commands are nft's command syntax (`add chain inet T C`, `add rule ...`),
//! one per line, which every nft since 0.9 accepts in one transaction: nft
//! applies the whole script or nothing. Dynamic sets (ClientIP affinity) are
//! declared but never flushed, so a resync keeps clients pinned.
//!
//! Nothing outside `table inet <name>` is ever named.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// A chain: its base-chain declaration (hook, priority) if any, and rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// `type nat hook prerouting priority dstnat ; policy accept ;` for base
    /// chains; `None` for regular ones.
    pub base: Option<String>,
    /// Rules, in order.
    pub rules: Vec<String>,
    /// Used by many Services' fragments (a balancing chain per endpoint
    /// count): [`Ruleset::fragment_diff_script`] leaves it alone, and the
    /// whole table (`proxy::table`) creates it before any fragment names it
    /// and deletes it after the last one stopped naming it.
    pub shared: bool,
}

/// A set or map whose elements we manage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Map {
    /// A set (elements without values) rather than a map.
    pub is_set: bool,
    /// The body of its declaration, e.g. `type ipv4_addr . inet_proto . inet_service : verdict ;`.
    pub decl: String,
    /// Elements: key → value (`None` for a set).
    pub elements: BTreeMap<String, Option<String>>,
}

/// The whole table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name (in family `inet`).
    pub table: String,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Sets and maps whose elements we write, by name.
    pub maps: BTreeMap<String, Map>,
    /// Dynamic sets the kernel fills (affinity), by name → declaration body.
    pub dynamic_sets: BTreeMap<String, String>,
}

/// Counts for the metrics: chains, rules, map elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    /// Chains.
    pub chains: usize,
    /// Rules over all chains.
    pub rules: usize,
    /// Map and set elements.
    pub elements: usize,
}

/// What the kernel's copy of our table holds, by object name (from
/// `nft -j list table`): what a full sync must remove if we no longer want it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    /// Chain names.
    pub chains: BTreeSet<String>,
    /// Set names (dynamic or not).
    pub sets: BTreeSet<String>,
    /// Map names.
    pub maps: BTreeSet<String>,
}

impl Map {
    /// `map` or `set`, as nft commands name it.
    fn kind(&self) -> &'static str {
        if self.is_set { "set" } else { "map" }
    }
}

/// Elements written per `add element` command.
const ELEMENTS_PER_COMMAND: usize = 1000;

fn element(key: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{key} : {v}"),
        None => key.to_owned(),
    }
}

impl Ruleset {
    /// Chains, rules and elements.
    pub fn size(&self) -> Size {
        Size {
            chains: self.chains.len(),
            rules: self.chains.values().map(|c| c.rules.len()).sum(),
            elements: self.maps.values().map(|m| m.elements.len()).sum(),
        }
    }

    fn t(&self) -> String {
        format!("inet {}", self.table)
    }

    fn declare_chain(&self, out: &mut String, name: &str, chain: &Chain) {
        let t = self.t();
        match &chain.base {
            Some(base) => writeln!(out, "add chain {t} {name} {{ {base} }}"),
            None => writeln!(out, "add chain {t} {name}"),
        }
        .ok();
    }

    fn fill_chain(&self, out: &mut String, name: &str, chain: &Chain) {
        let t = self.t();
        for rule in &chain.rules {
            writeln!(out, "add rule {t} {name} {rule}").ok();
        }
    }

    /// `add`/`delete element` commands for `elements`, many per command:
    /// nft parses one command with 1,000 elements much faster than 1,000
    /// commands (benches/RESULTS.md).
    fn add_elements<'a>(
        &self,
        out: &mut String,
        map: &str,
        elements: impl Iterator<Item = (&'a String, &'a Option<String>)>,
        verb: &str,
    ) {
        let t = self.t();
        let mut in_line = 0;
        for (k, v) in elements {
            if in_line == ELEMENTS_PER_COMMAND {
                out.push_str(" }\n");
                in_line = 0;
            }
            if in_line == 0 {
                write!(out, "{verb} element {t} {map} {{ ").ok();
            } else {
                out.push_str(", ");
            }
            if verb == "delete" {
                out.push_str(k);
            } else {
                out.push_str(&element(k, v));
            }
            in_line += 1;
        }
        if in_line > 0 {
            out.push_str(" }\n");
        }
    }

    /// The script that turns whatever the kernel holds (`existing`, our
    /// table only) into exactly this ruleset, in one transaction.
    pub fn full_script(&self, existing: &Existing) -> String {
        let t = self.t();
        let mut out = String::new();
        writeln!(out, "add table {t}").ok();
        for (name, chain) in &self.chains {
            self.declare_chain(&mut out, name, chain);
        }
        for (name, map) in &self.maps {
            writeln!(out, "add {} {t} {name} {{ {} }}", map.kind(), map.decl).ok();
        }
        for (name, decl) in &self.dynamic_sets {
            writeln!(out, "add set {t} {name} {{ {decl} }}").ok();
        }
        // Empty everything we own or once owned before refilling, so no rule
        // still references a chain about to be deleted.
        let all: BTreeSet<&String> = self.chains.keys().chain(&existing.chains).collect();
        for name in all {
            writeln!(out, "flush chain {t} {name}").ok();
        }
        for (name, map) in &self.maps {
            writeln!(out, "flush {} {t} {name}", map.kind()).ok();
        }
        for (name, chain) in &self.chains {
            self.fill_chain(&mut out, name, chain);
        }
        for (name, map) in &self.maps {
            self.add_elements(&mut out, name, map.elements.iter(), "add");
        }
        for name in existing.maps.iter().filter(|m| !self.maps.contains_key(*m)) {
            writeln!(out, "delete map {t} {name}").ok();
        }
        for name in existing
            .sets
            .iter()
            .filter(|s| !self.maps.contains_key(*s) && !self.dynamic_sets.contains_key(*s))
        {
            writeln!(out, "delete set {t} {name}").ok();
        }
        // Last: stale chains, now that no rule or map element names them.
        for name in existing
            .chains
            .iter()
            .filter(|c| !self.chains.contains_key(*c))
        {
            writeln!(out, "delete chain {t} {name}").ok();
        }
        out
    }

    /// The script that turns `self` (what the kernel holds, as last
    /// written) into `next`; empty when they are equal.
    pub fn diff_script(&self, next: &Ruleset) -> String {
        self.diff(next, true)
    }

    /// [`Ruleset::diff_script`] for one Service's fragments: shared chains,
    /// sets and maps are neither created nor deleted (they belong to the
    /// table; a fragment holds only the maps it has elements in, and a map
    /// a fragment lacks counts as empty).
    pub fn fragment_diff_script(&self, next: &Ruleset) -> String {
        self.diff(next, false)
    }

    fn diff(&self, next: &Ruleset, whole: bool) -> String {
        let t = next.t();
        let mut out = String::new();
        let ours = |c: &&Chain| whole || !c.shared;
        // 1. New objects, empty.
        for (name, chain) in next.chains.iter().filter(|(_, c)| ours(c)) {
            if !self.chains.contains_key(name) {
                next.declare_chain(&mut out, name, chain);
            }
        }
        for (name, map) in next.maps.iter().filter(|_| whole) {
            if !self.maps.contains_key(name) {
                writeln!(out, "add {} {t} {name} {{ {} }}", map.kind(), map.decl).ok();
            }
        }
        for (name, decl) in &next.dynamic_sets {
            if !self.dynamic_sets.contains_key(name) {
                writeln!(out, "add set {t} {name} {{ {decl} }}").ok();
            }
        }
        // 2. Empty what changes or goes; drop stale elements.
        let changed: Vec<&String> = next
            .chains
            .iter()
            .filter(|(_, c)| ours(c))
            .filter(|(name, chain)| {
                self.chains
                    .get(*name)
                    .is_some_and(|old| old.rules != chain.rules)
            })
            .map(|(name, _)| name)
            .collect();
        let gone: Vec<&String> = self
            .chains
            .iter()
            .filter(|(name, c)| ours(c) && !next.chains.contains_key(*name))
            .map(|(name, _)| name)
            .collect();
        for name in changed.iter().chain(gone.iter()) {
            writeln!(out, "flush chain {t} {name}").ok();
        }
        for (name, old) in &self.maps {
            let new = next.maps.get(name);
            let stale = old
                .elements
                .iter()
                .filter(|(k, v)| new.is_none_or(|m| m.elements.get(*k) != Some(*v)));
            // A whole map that goes takes its elements with it.
            if new.is_some() || !whole {
                self.add_elements(&mut out, name, stale, "delete");
            }
        }
        // 3. Fill.
        for (name, chain) in next.chains.iter().filter(|(_, c)| ours(c)) {
            let fresh = !self.chains.contains_key(name);
            if fresh || changed.contains(&name) {
                next.fill_chain(&mut out, name, chain);
            }
        }
        for (name, map) in &next.maps {
            let old = self.maps.get(name);
            let added = map
                .elements
                .iter()
                .filter(|(k, v)| old.is_none_or(|m| m.elements.get(*k) != Some(*v)));
            next.add_elements(&mut out, name, added, "add");
        }
        // 4. Delete what went, now unreferenced.
        for (name, map) in self
            .maps
            .iter()
            .filter(|(n, _)| whole && !next.maps.contains_key(*n))
        {
            writeln!(out, "delete {} {t} {name}", map.kind()).ok();
        }
        for name in gone {
            writeln!(out, "delete chain {t} {name}").ok();
        }
        for name in self
            .dynamic_sets
            .keys()
            .filter(|n| !next.dynamic_sets.contains_key(*n))
        {
            writeln!(out, "delete set {t} {name}").ok();
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests;
