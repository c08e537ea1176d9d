//! The answer memo: each UDP worker remembers the exact response it sent to
//! exact request bytes, and sends it again (with the new query's ID) while
//! the data it came from is unchanged.
//!
//! Why: a cluster's clients ask the same few thousand questions over and
//! over, and for the cluster zone the answer is a pure function of the
//! request and of the index snapshot. Parsing, routing, the index lookup and
//! encoding cost ~20k instructions per query; a memo hit costs a hash of the
//! request and a copy of the response.
//!
//! What makes it exact rather than approximately right:
//! - The key is the request from its flags onwards (everything but the ID):
//!   question name in the client's own letter case, type, class, RD/CD bits,
//!   the OPT record with its payload size and DO bit. Two requests with the
//!   same key parse to the same [`Query`](super::Query) apart from ID and
//!   source, so the response (truncation included) is byte for byte the one
//!   the full path would write. A 0x20-randomised name is its own key.
//! - Only answers stamped by their writer ([`Answer::memo`](super::Answer),
//!   today the kubernetes plugin) are kept, and only when every plugin that
//!   ran before the writer declared the answer reproducible
//!   ([`Plugin::memo_pass`](crate::plugin::Plugin::memo_pass)); `log`,
//!   `rewrite`, `autopath`, `forward` and anything else that depends on the
//!   client, the clock or chance never are. Per-query counters of the
//!   plugins that pass through (cache's requests and misses) are replayed on
//!   a hit, and the server's request metrics are recorded as for any query.
//! - An entry is served only while its writer's generation (the index's
//!   publish count) equals the one it was answered at, and only from the
//!   routing table it was made with: a reload empties the memo.
//! - Each worker owns its memo (no locks, nothing shared written per query).
//!   Its size is capped at [`BUDGET`] bytes; when full it is emptied and
//!   refilled, which keeps a hit as cheap as a hash lookup.
//!
//! TCP does not use it: its queries are answered per connection.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Bytes one worker's memo may hold (keys, responses and bookkeeping).
pub const BUDGET: usize = 4 << 20;

/// Requests longer than this are not memoized (a cluster question with an
/// OPT record is well under 300 bytes; longer ones carry options such as
/// cookies that make every request unique).
pub const MAX_KEY: usize = 512;

/// What a worker keeps: responses by request bytes, for one routing table.
pub struct Memo<T> {
    /// The routing table the entries' positions refer to; holding it keeps
    /// its address from being reused while it identifies the entries.
    table: Option<Arc<T>>,
    map: HashMap<Box<[u8]>, Entry, foldhash::fast::RandomState>,
    bytes: usize,
    budget: usize,
}

/// The metrics of the query an entry answers, recorded again on each hit.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The `zone` label.
    pub zone: Arc<str>,
    /// The query type.
    pub qtype: RecordType,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The request size metric (the EDNS payload size, 512 without).
    pub request_size: usize,
    /// The response size metric.
    pub response_size: usize,
    /// The response code.
    pub rcode: ResponseCode,
    /// The `plugin` label (the writer).
    pub plugin: &'static str,
}

/// Where a memoizable answer came from, as the handler saw it.
#[derive(Clone, Debug)]
pub struct Ticket {
    /// Address of the routing table that answered (identity only).
    pub table: usize,
    /// The server block's position in that table.
    pub route: u32,
    /// The writer's position in the block's chain.
    pub writer: u32,
    /// The writer's data generation the answer came from.
    pub generation: u64,
    /// Chain positions whose counters a hit replays.
    pub replay: Box<[u32]>,
    /// The query's metrics.
    pub recorded: Recorded,
}

/// A remembered response and how to check it is still the right one.
#[derive(Debug)]
pub struct Entry {
    /// The whole response; its first two bytes are replaced by the ID.
    pub response: Box<[u8]>,
    /// How it was made.
    pub ticket: Ticket,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self::with_budget(BUDGET)
    }
}

impl<T> Memo<T> {
    /// An empty memo holding at most `budget` bytes.
    pub fn with_budget(budget: usize) -> Self {
        Self {
            table: None,
            map: HashMap::default(),
            bytes: 0,
            budget,
        }
    }

    /// The key of a request: everything after its ID. `None` for requests
    /// that are never memoized (too short or too long).
    pub fn key(request: &[u8]) -> Option<&[u8]> {
        (12..=MAX_KEY)
            .contains(&request.len())
            .then(|| &request[2..])
    }

    /// Point the memo at the current routing table, emptying it if that
    /// changed (a reload).
    pub fn follow(&mut self, current: &Arc<T>) {
        if !self.table.as_ref().is_some_and(|t| Arc::ptr_eq(t, current)) {
            self.clear();
            self.table = Some(current.clone());
        }
    }

    /// The entry for `key`, if any (the caller checks its generation).
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Remember `response` for `request`, if the ticket was issued by the
    /// table the memo follows and the request is memoizable.
    pub fn insert(&mut self, request: &[u8], ticket: Ticket, response: &[u8]) {
        let Some(key) = Self::key(request) else {
            return;
        };
        let current = self.table.as_ref().map(|t| Arc::as_ptr(t) as usize);
        if current != Some(ticket.table) || response.len() < 12 {
            return;
        }
        let cost = Self::cost(key.len(), response.len(), ticket.replay.len());
        // Replacing a stale entry frees its charge first.
        let freed = self.map.get(key).map_or(0, |old| {
            Self::cost(key.len(), old.response.len(), old.ticket.replay.len())
        });
        if self.bytes - freed + cost > self.budget {
            self.clear();
            if cost > self.budget {
                return;
            }
        }
        let entry = Entry {
            response: response.into(),
            ticket,
        };
        let freed = self
            .map
            .insert(key.into(), entry)
            .map_or(0, |old| Self::cost(key.len(), old.response.len(), old.ticket.replay.len()));
        self.bytes = self.bytes - freed + cost;
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes charged against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What an entry costs: its two boxes, the entry itself, and the map's
    /// slot and control byte (rounded up for the table's spare capacity).
    fn cost(key: usize, response: usize, replay: usize) -> usize {
        key + response + replay * 4 + 2 * std::mem::size_of::<(Box<[u8]>, Entry)>()
    }
}

#[cfg(test)]
#[path = "memo_tests.rs"]
mod chain_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(table: &Arc<()>, generation: u64) -> Ticket {
        Ticket {
            table: Arc::as_ptr(table) as usize,
            route: 0,
            writer: 0,
            generation,
            replay: Box::new([]),
            recorded: Recorded {
                zone: "cluster.local.".into(),
                qtype: RecordType::A,
                dnssec_ok: false,
                request_size: 512,
                response_size: 60,
                rcode: ResponseCode::NoError,
                plugin: "kubernetes",
            },
        }
    }

    fn request(tag: u8) -> Vec<u8> {
        let mut r = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(&[1, tag, 0, 0, 1, 0, 1]);
        r
    }

    #[test]
    fn the_key_ignores_the_id_and_bounds_the_length() {
        let mut a = request(b'a');
        let key = Memo::<()>::key(&a).expect("key").to_vec();
        a[0] = 0x11;
        assert_eq!(Memo::<()>::key(&a), Some(&key[..]));
        assert_eq!(Memo::<()>::key(&a[..11]), None);
        assert_eq!(Memo::<()>::key(&vec![0; MAX_KEY + 1]), None);
    }

    #[test]
    fn entries_are_kept_only_for_the_table_followed() {
        let (t1, t2) = (Arc::new(()), Arc::new(()));
        let mut memo = Memo::default();
        memo.follow(&t1);
        memo.insert(&request(b'a'), ticket(&t2, 1), &[0; 40]);
        assert!(memo.is_empty(), "a ticket from another table");
        memo.insert(&request(b'a'), ticket(&t1, 1), &[7; 40]);
        let got = memo.get(Memo::<()>::key(&request(b'a')).unwrap());
        assert_eq!(got.expect("entry").response[..], [7; 40]);
        memo.follow(&t1);
        assert_eq!(memo.len(), 1, "same table: kept");
        memo.follow(&t2);
        assert!(memo.is_empty(), "a reload empties the memo");
    }

    #[test]
    fn a_full_memo_starts_over_and_accounting_stays_exact() {
        let t = Arc::new(());
        let one = Memo::<()>::cost(17, 40, 0);
        let mut memo = Memo::with_budget(3 * one);
        memo.follow(&t);
        for tag in [b'a', b'b', b'c'] {
            memo.insert(&request(tag), ticket(&t, 1), &[0; 40]);
        }
        assert_eq!((memo.len(), memo.bytes()), (3, 3 * one));
        // Replacing an entry does not grow the charge.
        memo.insert(&request(b'c'), ticket(&t, 2), &[0; 40]);
        assert_eq!((memo.len(), memo.bytes()), (3, 3 * one));
        memo.insert(&request(b'd'), ticket(&t, 1), &[0; 40]);
        assert_eq!((memo.len(), memo.bytes()), (1, one), "emptied, then d");
        memo.insert(&request(b'e'), ticket(&t, 1), &[0; 4 * 40 * 1024]);
        assert!(memo.is_empty(), "larger than the whole budget");
    }
}
