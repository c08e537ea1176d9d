//! Reverse maps (an IP address → the keys that own it), stored compactly.
//!
//! A reverse map holds one entry per endpoint address of the cluster (150k at
//! the 10k-Service scale target), so its entry size decides a large share of
//! the index's memory. A hash map entry of `(IpAddr, owners)` costs ~90 B at
//! hashbrown's load factor; here an entry is one `(ip, owner, count)` in a
//! sorted `Vec` per shard, found by binary search. IPv4 and IPv6 addresses
//! are kept in separate tables so an IPv4 entry is 24 B instead of the 40 B
//! an `IpAddr` (17 B, padded) entry takes: 150k IPv4 endpoints cost 3.6 MB
//! instead of 6 MB.
//!
//! Invariants:
//! - Each shard is an `Arc<Vec<_>>`, copied on write like [`super::store::Shards`],
//!   so a published snapshot never changes.
//! - Outside bulk mode every shard is sorted by IP (stable: the owners of one
//!   IP keep the order they were first added in) and holds at most one entry
//!   per (IP, owner), with a count > 0.
//! - In bulk mode (a relist being built) additions are only appended, to one
//!   flat `Vec` for the whole map; no lookup may happen until
//!   [`RevMap::finish`] has sorted, merged and split them into the shards.
//!
//! Why one flat `Vec` in bulk mode: 128 shard `Vec`s grown by doubling held
//! ~1.7× their entries at the end of a 150k-address relist (10.5 MB for
//! 6 MB of entries, the largest single item of the relist's peak heap). One
//! large `Vec` grows by `realloc` of a single block whose unused tail is never
//! touched (so not resident), and `finish` moves the entries out of it shard
//! by shard while shrinking it, so the old and new forms are never both whole.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::store::{SHARDS, ShardKey};

/// An address type a table is keyed by.
trait Addr: Copy + Ord + Debug {
    /// The shard, the same as the [`IpAddr`]'s.
    fn shard(self) -> usize;
}

impl Addr for Ipv4Addr {
    fn shard(self) -> usize {
        IpAddr::V4(self).shard()
    }
}

impl Addr for Ipv6Addr {
    fn shard(self) -> usize {
        IpAddr::V6(self).shard()
    }
}

/// One owner of one address, with how many times it lists the address.
#[derive(Clone, Debug)]
struct Entry<A> {
    ip: A,
    count: u32,
    owner: Arc<str>,
}

/// The entries of one address family.
#[derive(Clone, Debug)]
struct Table<A> {
    shards: Vec<Arc<Vec<Entry<A>>>>,
    /// Additions in bulk mode, unsorted; `count` holds the addition's
    /// sequence number (see the module docs).
    pending: Vec<Entry<A>>,
}

impl<A> Default for Table<A> {
    fn default() -> Self {
        Table {
            shards: (0..SHARDS).map(|_| Arc::new(Vec::new())).collect(),
            pending: Vec::new(),
        }
    }
}

impl<A: Addr> Table<A> {
    /// The entries of `ip` in a sorted shard.
    fn range(shard: &[Entry<A>], ip: A) -> std::ops::Range<usize> {
        let start = shard.partition_point(|e| e.ip < ip);
        let len = shard[start..].iter().take_while(|e| e.ip == ip).count();
        start..start + len
    }

    fn owners(&self, ip: A) -> impl Iterator<Item = &str> {
        let shard = &self.shards[ip.shard()];
        shard[Self::range(shard, ip)].iter().map(|e| &*e.owner)
    }

    fn add(&mut self, ip: A, owner: &Arc<str>, bulk: bool) {
        if bulk {
            // The sequence number keeps "first added first" through the
            // unstable sort in `finish`; it saturates only past 4 billion.
            let seq = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
            self.pending.push(Entry {
                ip,
                count: seq,
                owner: owner.clone(),
            });
            return;
        }
        let shard = Arc::make_mut(&mut self.shards[ip.shard()]);
        let range = Self::range(shard, ip);
        let end = range.end;
        match shard[range].iter_mut().find(|e| *e.owner == **owner) {
            Some(e) => e.count += 1,
            None => shard.insert(
                end,
                Entry {
                    ip,
                    count: 1,
                    owner: owner.clone(),
                },
            ),
        }
    }

    fn remove(&mut self, ip: A, owner: &str) {
        let i = ip.shard();
        let range = Self::range(&self.shards[i], ip);
        let Some(at) = self.shards[i][range.clone()]
            .iter()
            .position(|e| &*e.owner == owner)
            .map(|p| range.start + p)
        else {
            return;
        };
        let shard = Arc::make_mut(&mut self.shards[i]);
        shard[at].count -= 1;
        if shard[at].count == 0 {
            shard.remove(at);
        }
    }

    /// Moves the bulk additions into the (until then empty) shards, sorted
    /// by IP (stably), repeated (IP, owner) pairs merged.
    fn finish(&mut self) {
        let mut flat = std::mem::take(&mut self.pending);
        flat.sort_unstable_by_key(|e| (e.ip, e.count));
        merge_runs(&mut flat);
        flat.shrink_to_fit();
        let mut sizes = [0usize; SHARDS];
        for e in &flat {
            sizes[e.ip.shard()] += 1;
        }
        // Move from the tail, shrinking `flat` as it empties, so the moved
        // entries and the rest of `flat` stay about one copy in total.
        let mut shrink_at = flat.len() - flat.len() / 8;
        while let Some(e) = flat.pop() {
            let i = e.ip.shard();
            let shard = Arc::make_mut(&mut self.shards[i]);
            if sizes[i] > 0 {
                shard.reserve_exact(sizes[i]);
                sizes[i] = 0;
            }
            shard.push(e);
            if flat.len() <= shrink_at {
                flat.shrink_to_fit();
                shrink_at = flat.len() - flat.len() / 8;
            }
        }
        for shard in &mut self.shards {
            if !shard.is_empty() {
                // Popped from the tail, so in reverse. (The shards were empty:
                // in bulk mode `add` only appends to `pending`, and `remove`
                // ends bulk mode first.)
                Arc::make_mut(shard).reverse();
            }
        }
    }
}

/// Merges, in `flat` sorted by (IP, sequence number), each repeated (IP,
/// owner) pair into its first entry with the summed count; every count
/// becomes 1 per addition, and the first-added order of owners is kept.
fn merge_runs<A: Addr>(flat: &mut Vec<Entry<A>>) {
    let mut write = 0;
    let mut run_start = 0;
    for read in 0..flat.len() {
        if write == 0 || flat[write - 1].ip != flat[read].ip {
            run_start = write;
        }
        let seen = (run_start..write).find(|&i| flat[i].owner == flat[read].owner);
        match seen {
            Some(i) => flat[i].count += 1,
            None => {
                flat.swap(write, read);
                flat[write].count = 1;
                write += 1;
            }
        }
    }
    flat.truncate(write);
}

/// IP → owners (`ns/name` of services, or namespaces for pods).
#[derive(Clone, Debug, Default)]
pub(super) struct RevMap {
    v4: Table<Ipv4Addr>,
    v6: Table<Ipv6Addr>,
    /// Additions go to the tables' `pending` until `finish` (see the module docs).
    bulk: bool,
}

impl RevMap {
    /// An empty map in bulk mode, for building a whole kind at once.
    pub(super) fn bulk() -> Self {
        RevMap {
            bulk: true,
            ..RevMap::default()
        }
    }

    /// Every distinct owner of `ip`, in the order they were added.
    pub(super) fn owners(&self, ip: IpAddr) -> impl Iterator<Item = &str> {
        let (v4, v6) = match ip {
            IpAddr::V4(a) => (Some(self.v4.owners(a)), None),
            IpAddr::V6(a) => (None, Some(self.v6.owners(a))),
        };
        v4.into_iter().flatten().chain(v6.into_iter().flatten())
    }

    /// Whether any owner holds `ip`.
    #[cfg(test)]
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        self.owners(ip).next().is_some()
    }

    /// Adds one reference from `owner` to `ip`.
    pub(super) fn add(&mut self, ip: IpAddr, owner: &Arc<str>) {
        match ip {
            IpAddr::V4(a) => self.v4.add(a, owner, self.bulk),
            IpAddr::V6(a) => self.v6.add(a, owner, self.bulk),
        }
    }

    /// Drops one reference from `owner` to `ip`, forgetting the pair at zero.
    pub(super) fn remove(&mut self, ip: IpAddr, owner: &str) {
        self.finish();
        match ip {
            IpAddr::V4(a) => self.v4.remove(a, owner),
            IpAddr::V6(a) => self.v6.remove(a, owner),
        }
    }

    /// Ends bulk mode: sorts the additions by IP (stably), merges repeated
    /// (IP, owner) pairs into one entry with the summed count, and moves them
    /// into the (until then empty) shards.
    pub(super) fn finish(&mut self) {
        if !self.bulk {
            return;
        }
        self.bulk = false;
        self.v4.finish();
        self.v6.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test IP")
    }

    #[test]
    fn bulk_additions_are_merged_and_counted_like_single_ones() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("ns/a"), Arc::from("ns/b"));
        let mut bulk = RevMap::bulk();
        for (i, o) in [
            ("10.0.0.1", &a),
            ("10.0.0.2", &b),
            ("10.0.0.1", &b),
            ("10.0.0.1", &a),
        ] {
            bulk.add(ip(i), o);
        }
        bulk.finish();
        assert_eq!(
            bulk.owners(ip("10.0.0.1")).collect::<Vec<_>>(),
            ["ns/a", "ns/b"]
        );
        bulk.remove(ip("10.0.0.1"), "ns/a");
        assert_eq!(
            bulk.owners(ip("10.0.0.1")).collect::<Vec<_>>(),
            ["ns/a", "ns/b"]
        );
        bulk.remove(ip("10.0.0.1"), "ns/a");
        assert_eq!(bulk.owners(ip("10.0.0.1")).collect::<Vec<_>>(), ["ns/b"]);
        bulk.remove(ip("10.0.0.2"), "ns/b");
        assert!(!bulk.contains(ip("10.0.0.2")));
    }

    #[test]
    fn both_families_keep_their_owners_apart_and_in_order() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("ns/a"), Arc::from("ns/b"));
        for bulk in [true, false] {
            let mut map = if bulk {
                RevMap::bulk()
            } else {
                RevMap::default()
            };
            for (i, o) in [
                ("fd00::1", &b),
                ("10.0.0.1", &b),
                ("fd00::1", &a),
                ("10.0.0.1", &a),
                ("::ffff:10.0.0.1", &a),
                ("10.0.0.1", &b),
            ] {
                map.add(ip(i), o);
            }
            map.finish();
            let owners = |m: &RevMap, s: &str| -> Vec<String> {
                m.owners(ip(s)).map(str::to_string).collect()
            };
            assert_eq!(owners(&map, "10.0.0.1"), ["ns/b", "ns/a"], "bulk {bulk}");
            assert_eq!(owners(&map, "fd00::1"), ["ns/b", "ns/a"], "bulk {bulk}");
            assert_eq!(owners(&map, "::ffff:10.0.0.1"), ["ns/a"], "bulk {bulk}");
            assert!(owners(&map, "10.0.0.2").is_empty(), "bulk {bulk}");
            map.remove(ip("10.0.0.1"), "ns/b");
            assert_eq!(owners(&map, "10.0.0.1"), ["ns/b", "ns/a"], "bulk {bulk}");
            map.remove(ip("10.0.0.1"), "ns/b");
            assert_eq!(owners(&map, "10.0.0.1"), ["ns/a"], "bulk {bulk}");
        }
    }

    #[test]
    fn an_ipv4_entry_is_smaller_than_an_ipaddr_entry() {
        assert_eq!(std::mem::size_of::<Entry<Ipv4Addr>>(), 24);
        assert_eq!(std::mem::size_of::<Entry<IpAddr>>(), 40);
    }

    #[test]
    fn a_snapshot_keeps_its_owners_while_the_clone_changes() {
        let a: Arc<str> = Arc::from("ns/a");
        let mut map = RevMap::default();
        map.add(ip("fd00::1"), &a);
        let snapshot = map.clone();
        map.remove(ip("fd00::1"), "ns/a");
        assert!(snapshot.contains(ip("fd00::1")));
        assert!(!map.contains(ip("fd00::1")));
    }
}
