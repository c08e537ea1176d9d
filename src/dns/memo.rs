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
//!   The memos of one listening address hold at most [`BUDGET`] bytes
//!   together; a full memo drops every other entry, which keeps a hit as
//!   cheap as a hash lookup.
//!
//! TCP does not use it: its queries are answered per connection.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Bytes the memos of one listening address may hold together (keys,
/// responses and bookkeeping), shared out evenly among its workers: about
/// 50,000 answers of a cluster's typical size (~330 bytes each).
pub const BUDGET: usize = 16 << 20;

/// Requests longer than this are not memoized (a cluster question with an
/// OPT record is well under 300 bytes; longer ones carry options such as
/// cookies that make every request unique).
pub const MAX_KEY: usize = 512;

/// What a worker keeps: responses by request bytes, for one routing table.
pub struct Memo<T> {
    /// The routing table the entries' positions refer to; holding it keeps
    /// its address from being reused while it identifies the entries.
    table: Option<Arc<T>>,
    entries: HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
    bytes: usize,
    budget: usize,
}

/// The metrics of the query an entry answers, recorded again on each hit
/// (the `plugin` label is the writer's name).
#[derive(Clone, Copy, Debug)]
pub struct Recorded {
    /// Position of the `zone` label in the routing table's zones.
    pub zone: u16,
    /// The query type.
    pub qtype: RecordType,
    /// The response code.
    pub rcode: ResponseCode,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The request size metric (the EDNS payload size, 512 without).
    pub request_size: u16,
    /// The response size metric.
    pub response_size: u32,
}

/// Where a memoizable answer came from, as the handler saw it.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    /// Address of the routing table that answered (identity only).
    pub table: usize,
    /// The server block's position in that table.
    pub route: u16,
    /// The writer's position in the block's chain.
    pub writer: u16,
    /// The writer's data generation the answer came from.
    pub generation: u64,
    /// Chain positions (bits) whose counters a hit replays.
    pub replay: u64,
    /// The query's metrics.
    pub recorded: Recorded,
}

/// A remembered response and how to check it is still the right one.
#[derive(Debug)]
pub struct Entry {
    /// The key, then the whole response (one allocation).
    bytes: Box<[u8]>,
    key_len: u16,
    /// How it was made.
    pub ticket: Ticket,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.bytes[..usize::from(self.key_len)]
    }

    /// The response as first sent; its first two bytes (the ID) are replaced.
    pub fn response(&self) -> &[u8] {
        &self.bytes[usize::from(self.key_len)..]
    }

    fn cost(&self) -> usize {
        Self::cost_of(self.bytes.len())
    }

    /// Its allocation, rounded as malloc does, and its table slot (with the
    /// table's spare capacity).
    fn cost_of(bytes: usize) -> usize {
        bytes.next_multiple_of(16) + 16 + 2 * std::mem::size_of::<Entry>()
    }
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
            entries: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
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
        let hash = self.hasher.hash_one(key);
        self.entries.find(hash, |e| e.key() == key)
    }

    /// Remember `response` for `request`, if the ticket was issued by the
    /// table the memo follows and the request is memoizable. A full memo
    /// first drops every other entry (whatever their age: cheap, and under
    /// a cyclic stream of questions it keeps half of them hitting, where
    /// emptying it would keep none).
    pub fn insert(&mut self, request: &[u8], ticket: Ticket, response: &[u8]) {
        let Some(key) = Self::key(request) else {
            return;
        };
        let current = self.table.as_ref().map(|t| Arc::as_ptr(t) as usize);
        if current != Some(ticket.table) || response.len() < 12 {
            return;
        }
        let (Ok(key_len), cost) = (
            u16::try_from(key.len()),
            Entry::cost_of(key.len() + response.len()),
        ) else {
            return;
        };
        if cost > self.budget / 4 {
            return;
        }
        let hash = self.hasher.hash_one(key);
        if let Ok(old) = self.entries.find_entry(hash, |e| e.key() == key) {
            let (old, _) = old.remove();
            self.bytes -= old.cost();
        }
        if self.bytes + cost > self.budget {
            self.shed();
        }
        let mut bytes = Vec::with_capacity(key.len() + response.len());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(response);
        let entry = Entry {
            bytes: bytes.into(),
            key_len,
            ticket,
        };
        let hasher = &self.hasher;
        self.entries
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key()));
        self.bytes += cost;
    }

    /// Drop every other entry.
    fn shed(&mut self) {
        let mut keep = false;
        let mut bytes = 0;
        self.entries.retain(|e| {
            keep = !keep;
            if keep {
                bytes += e.cost();
            }
            keep
        });
        self.entries
            .shrink_to_fit(|e| self.hasher.hash_one(e.key()));
        self.bytes = bytes;
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.entries = HashTable::new();
        self.bytes = 0;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes charged against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
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
            replay: 0,
            recorded: Recorded {
                zone: 0,
                qtype: RecordType::A,
                rcode: ResponseCode::NoError,
                dnssec_ok: false,
                request_size: 512,
                response_size: 60,
            },
        }
    }

    fn request(tag: u8) -> Vec<u8> {
        let mut r = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(&[1, tag, 0, 0, 1, 0, 1]);
        r
    }

    fn key(tag: u8) -> Vec<u8> {
        Memo::<()>::key(&request(tag)).expect("key").to_vec()
    }

    #[test]
    fn the_key_ignores_the_id_and_bounds_the_length() {
        let mut a = request(b'a');
        a[0] = 0x11;
        assert_eq!(Memo::<()>::key(&a), Some(&key(b'a')[..]));
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
        assert_eq!(memo.get(&key(b'a')).expect("entry").response(), [7; 40]);
        assert!(memo.get(&key(b'b')).is_none());
        memo.follow(&t1);
        assert_eq!(memo.len(), 1, "same table: kept");
        memo.follow(&t2);
        assert!(memo.is_empty(), "a reload empties the memo");
    }

    #[test]
    fn a_full_memo_sheds_half_and_accounting_stays_exact() {
        let t = Arc::new(());
        let one = Entry::cost_of(17 + 40);
        let mut memo = Memo::with_budget(4 * one);
        memo.follow(&t);
        for tag in [b'a', b'b', b'c', b'd'] {
            memo.insert(&request(tag), ticket(&t, 1), &[tag; 40]);
        }
        assert_eq!((memo.len(), memo.bytes()), (4, 4 * one));
        // Replacing an entry does not grow the charge, and the new one wins.
        memo.insert(&request(b'c'), ticket(&t, 2), &[9; 40]);
        assert_eq!((memo.len(), memo.bytes()), (4, 4 * one));
        let c = memo.get(&key(b'c')).expect("c");
        assert_eq!((c.ticket.generation, c.response()), (2, &[9u8; 40][..]));
        memo.insert(&request(b'e'), ticket(&t, 1), &[0; 40]);
        assert_eq!((memo.len(), memo.bytes()), (3, 3 * one), "two shed, then e");
        assert!(memo.get(&key(b'e')).is_some());
        memo.insert(&request(b'f'), ticket(&t, 1), &[0; 4 * 40 * 1024]);
        assert!(
            memo.get(&key(b'f')).is_none(),
            "larger than a quarter of the budget"
        );
    }
}
