//! How `loadbalance` reorders one section of an answer: CoreDNS's
//! round-robin shuffle, its weighted choice of the first address, and
//! `prefer`. Pure functions of the records and a random source.

use std::net::IpAddr;

use hickory_proto::rr::{RData, Record, RecordType};
use ipnet::IpNet;

use super::weights::{Weights, pick, total};

fn is_address(r: &Record) -> bool {
    matches!(r.record_type(), RecordType::A | RecordType::AAAA)
}

fn address_of(r: &Record) -> Option<IpAddr> {
    match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// A section's records by the kind loadbalance orders them by.
#[derive(Default)]
struct Groups {
    cname: Vec<Record>,
    address: Vec<Record>,
    mx: Vec<Record>,
    rest: Vec<Record>,
}

impl Groups {
    /// Move every record of `rs` into its group, keeping their order.
    fn split(rs: &mut Vec<Record>) -> Self {
        let mut g = Self::default();
        for r in rs.drain(..) {
            match r.record_type() {
                RecordType::CNAME => g.cname.push(r),
                RecordType::A | RecordType::AAAA => g.address.push(r),
                RecordType::MX => g.mx.push(r),
                _ => g.rest.push(r),
            }
        }
        g
    }

    /// Put the groups back: CNAMEs (glibc wants them first), the rest, the
    /// addresses, MX.
    fn join(self, rs: &mut Vec<Record>) {
        rs.extend(self.cname);
        rs.extend(self.rest);
        rs.extend(self.address);
        rs.extend(self.mx);
    }
}

/// CoreDNS's `roundRobin` on one section: a section of only A or only AAAA
/// records is shuffled whole; a mixed one is grouped (see `Groups::join`)
/// with the addresses and the MX records each shuffled.
pub fn shuffle(rs: &mut Vec<Record>, rng: &mut fastrand::Rng) {
    if rs.len() < 2 {
        return;
    }
    let first = rs[0].record_type();
    if is_address(&rs[0]) && rs.iter().all(|r| r.record_type() == first) {
        rng.shuffle(rs);
        return;
    }
    let mut g = Groups::split(rs);
    rng.shuffle(&mut g.address);
    rng.shuffle(&mut g.mx);
    g.join(rs);
}

/// CoreDNS's weighted policy on one section: one address, chosen at random
/// with the probability of its weight among the section's addresses (by the
/// record's owner name, 1 when unlisted), is swapped into the first address
/// position; the section is grouped as `Groups::join` says. A section
/// without addresses is left as it is.
pub fn weighted(rs: &mut Vec<Record>, weights: &Weights, rng: &mut fastrand::Rng) {
    if !rs.iter().any(is_address) {
        return;
    }
    let mut g = Groups::split(rs);
    let w: Vec<u8> = g
        .address
        .iter()
        .map(|r| address_of(r).map_or(1, |ip| weights.weight(&r.name, ip)))
        .collect();
    let sum = total(&w);
    // Every weight is at least 1, so `sum` is too; checked, never a panic.
    if sum > 0
        && let Some(top) = pick(&w, rng.u32(..sum))
    {
        g.address.swap(0, top);
    }
    g.join(rs);
}

/// CoreDNS's `prefer`: CNAMEs, addresses in the preferred networks (by
/// network order), the other addresses, MX, the rest.
pub fn prefer(rs: &mut Vec<Record>, nets: &[IpNet]) {
    let Groups {
        cname,
        mut address,
        mx,
        rest,
    } = Groups::split(rs);
    let rank = |r: &Record| {
        address_of(r).map_or(nets.len(), |ip| {
            nets.iter()
                .position(|n| n.contains(&ip))
                .unwrap_or(nets.len())
        })
    };
    // Stable: the shuffled order is kept within each rank.
    address.sort_by_key(rank);
    rs.extend(cname);
    rs.extend(address);
    rs.extend(mx);
    rs.extend(rest);
}
