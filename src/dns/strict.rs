//! A strict, independent walker over a DNS message (RFC 1035 §4), used to
//! check what the server emits.
//!
//! It exists because the encoder cannot be its own judge: hickory-proto's
//! decoder accepts trailing bytes after the last counted record, which is how
//! a truncated answer whose header counted one record fewer than it carried
//! went unnoticed (issue 8, item 1). This walker shares no code with the
//! encoder. It reads the header, then exactly the counted questions and
//! records, and fails on anything a strict stub resolver would reject: a
//! section shorter than its count, bytes after the last record, a label or
//! compression pointer that is invalid (reserved label types, pointers that
//! do not point backwards, names over 255 octets), RDATA whose embedded names
//! do not end exactly at RDLENGTH, or an OPT record that is misplaced or
//! repeated. It never panics, on any input.
//!
//! Tests, the property test of the encoder and the fuzz targets use it.

/// What a well-formed message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The message ID.
    pub id: u16,
    /// The QR bit.
    pub response: bool,
    /// The TC bit.
    pub truncated: bool,
    /// The low four bits of the response code (the header's RCODE field).
    pub rcode: u8,
    /// Question count (header and body agree).
    pub questions: u16,
    /// Answer count.
    pub answers: u16,
    /// Authority count.
    pub authority: u16,
    /// Additional count, including OPT.
    pub additional: u16,
    /// The UDP payload size of the OPT record, when there is one.
    pub edns_payload: Option<u16>,
    /// Total length in octets.
    pub len: usize,
}

/// The section a record belongs to, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Question section.
    Question,
    /// Answer section.
    Answer,
    /// Authority section.
    Authority,
    /// Additional section.
    Additional,
}

/// Why a message is not well formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrictError {
    /// Fewer than 12 octets.
    #[error("message of {0} octets is shorter than a header")]
    ShortHeader(usize),
    /// The message ended inside the given entry.
    #[error("message ends inside {section:?} entry {index} (at offset {offset})")]
    Truncated {
        /// Section of the entry.
        section: Section,
        /// Zero-based index of the entry within its section.
        index: u16,
        /// Where reading stopped.
        offset: usize,
    },
    /// Octets left after the last counted record.
    #[error("{0} octets after the last counted record")]
    TrailingBytes(usize),
    /// A label length octet with the reserved 0b01/0b10 prefix.
    #[error("reserved label type 0x{byte:02x} at offset {offset}")]
    BadLabel {
        /// Where.
        offset: usize,
        /// The octet.
        byte: u8,
    },
    /// A compression pointer that does not point strictly backwards.
    #[error("compression pointer at offset {offset} points to {target}, not backwards")]
    BadPointer {
        /// Where the pointer is.
        offset: usize,
        /// Where it points.
        target: usize,
    },
    /// A name longer than 255 octets once expanded.
    #[error("name at offset {0} is longer than 255 octets")]
    NameTooLong(usize),
    /// RDATA whose structure does not match RDLENGTH.
    #[error("rdata of type {rtype} at offset {offset} does not match its length {rdlength}")]
    BadRdata {
        /// The record type.
        rtype: u16,
        /// Where the RDATA starts.
        offset: usize,
        /// Its declared length.
        rdlength: u16,
    },
    /// An OPT record outside the additional section, not owned by the root, or a second one.
    #[error("misplaced or repeated OPT record at offset {0}")]
    BadOpt(usize),
}

const OPT: u16 = 41;

/// Walk `bytes` as one DNS message; `Ok` only if it is well formed.
pub fn check(bytes: &[u8]) -> Result<Summary, StrictError> {
    if bytes.len() < 12 {
        return Err(StrictError::ShortHeader(bytes.len()));
    }
    let word = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    let mut summary = Summary {
        id: word(0),
        response: bytes[2] & 0x80 != 0,
        truncated: bytes[2] & 0x02 != 0,
        rcode: bytes[3] & 0x0f,
        questions: word(4),
        answers: word(6),
        authority: word(8),
        additional: word(10),
        edns_payload: None,
        len: bytes.len(),
    };
    let mut w = Walker { bytes, pos: 12 };
    for index in 0..summary.questions {
        let start = w.pos;
        let at = |e: Option<()>| {
            e.ok_or(StrictError::Truncated {
                section: Section::Question,
                index,
                offset: start,
            })
        };
        at(w.name()?)?;
        at(w.skip(4))?;
    }
    let sections = [
        (Section::Answer, summary.answers),
        (Section::Authority, summary.authority),
        (Section::Additional, summary.additional),
    ];
    for (section, count) in sections {
        for index in 0..count {
            let start = w.pos;
            let truncated = StrictError::Truncated {
                section,
                index,
                offset: start,
            };
            let record = w.record()?.ok_or(truncated)?;
            if record.rtype == OPT {
                let misplaced = section != Section::Additional
                    || !record.root_owner
                    || summary.edns_payload.is_some();
                if misplaced {
                    return Err(StrictError::BadOpt(start));
                }
                summary.edns_payload = Some(record.class);
            }
        }
    }
    match bytes.len() - w.pos {
        0 => Ok(summary),
        extra => Err(StrictError::TrailingBytes(extra)),
    }
}

/// The fixed fields of one resource record that the checks need.
struct RecordHead {
    rtype: u16,
    class: u16,
    root_owner: bool,
}

/// A cursor over the message. Methods return `Ok(None)` when the message
/// ends early and `Err` for structural faults.
struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Walker<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.bytes.len()).then(|| self.pos = end)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.bytes.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Read a (possibly compressed) name at the cursor, validating every
    /// label and pointer it leads to; the cursor ends after the name's
    /// in-place octets.
    fn name(&mut self) -> Result<Option<()>, StrictError> {
        let start = self.pos;
        let mut at = self.pos;
        // Octets of the expanded name, counting each label's length octet and the root.
        let mut expanded = 1usize;
        let mut resume: Option<usize> = None;
        // Each pointer points strictly backwards, so this loop ends; the
        // bound is a second guard.
        for _ in 0..=self.bytes.len() {
            let Some(&len) = self.bytes.get(at) else {
                return Ok(None);
            };
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(Some(()));
                }
                0x00 => {
                    expanded += usize::from(len) + 1;
                    if expanded > 255 {
                        return Err(StrictError::NameTooLong(start));
                    }
                    at += usize::from(len) + 1;
                }
                0xc0 => {
                    let Some(&low) = self.bytes.get(at + 1) else {
                        return Ok(None);
                    };
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                    if target >= at {
                        return Err(StrictError::BadPointer { offset: at, target });
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => {
                    return Err(StrictError::BadLabel {
                        offset: at,
                        byte: len,
                    });
                }
            }
        }
        Err(StrictError::BadPointer {
            offset: at,
            target: at,
        })
    }

    /// Read one resource record, checking the RDATA of types that embed names.
    fn record(&mut self) -> Result<Option<RecordHead>, StrictError> {
        let root_owner = self.bytes.get(self.pos) == Some(&0);
        if self.name()?.is_none() {
            return Ok(None);
        }
        let (Some(rtype), Some(class)) = (self.u16(), self.u16()) else {
            return Ok(None);
        };
        if self.skip(4).is_none() {
            return Ok(None);
        }
        let Some(rdlength) = self.u16() else {
            return Ok(None);
        };
        let start = self.pos;
        let end = start + usize::from(rdlength);
        if end > self.bytes.len() {
            return Ok(None);
        }
        let bad = StrictError::BadRdata {
            rtype,
            offset: start,
            rdlength,
        };
        // The structure of the RDATA, as (fixed octets before, names, fixed octets after).
        let shape: Option<(usize, usize, usize)> = match rtype {
            1 => Some((4, 0, 0)),               // A
            28 => Some((16, 0, 0)),             // AAAA
            2 | 5 | 12 | 39 => Some((0, 1, 0)), // NS, CNAME, PTR, DNAME
            15 => Some((2, 1, 0)),              // MX
            33 => Some((6, 1, 0)),              // SRV
            6 => Some((0, 2, 20)),              // SOA
            _ => None,                          // opaque to this walker
        };
        if let Some((before, names, after)) = shape {
            // Walk inside the RDATA only: a name must not run past RDLENGTH.
            let mut inner = Walker {
                bytes: &self.bytes[..end],
                pos: start,
            };
            inner.skip(before).ok_or_else(|| bad.clone())?;
            for _ in 0..names {
                inner.name()?.ok_or_else(|| bad.clone())?;
            }
            inner.skip(after).ok_or_else(|| bad.clone())?;
            if inner.pos != end {
                return Err(bad);
            }
        }
        self.pos = end;
        Ok(Some(RecordHead {
            rtype,
            class,
            root_owner,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header with these counts, flags QR|AA (+TC when asked).
    fn header(counts: [u16; 4], tc: bool) -> Vec<u8> {
        let mut h = vec![0xab, 0xcd, 0x84 | if tc { 0x02 } else { 0 }, 0x00];
        for c in counts {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    }

    const QNAME: &[u8] = b"\x03web\x07example\x00";

    fn question() -> Vec<u8> {
        let mut q = QNAME.to_vec();
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    }

    /// An A record owned by a pointer to the question name (offset 12).
    fn a_record(last: u8) -> Vec<u8> {
        vec![0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, last]
    }

    fn opt(payload: u16) -> Vec<u8> {
        let p = payload.to_be_bytes();
        vec![0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]
    }

    fn msg(counts: [u16; 4], parts: &[Vec<u8>]) -> Vec<u8> {
        let mut m = header(counts, false);
        for p in parts {
            m.extend_from_slice(p);
        }
        m
    }

    #[test]
    fn a_well_formed_answer_is_summarised() {
        let m = msg(
            [1, 2, 0, 1],
            &[question(), a_record(1), a_record(2), opt(1232)],
        );
        let s = check(&m).expect("well formed");
        assert_eq!(
            s,
            Summary {
                id: 0xabcd,
                response: true,
                truncated: false,
                rcode: 0,
                questions: 1,
                answers: 2,
                authority: 0,
                additional: 1,
                edns_payload: Some(1232),
                len: m.len(),
            }
        );
    }

    #[test]
    fn malformed_messages_are_rejected_with_the_reason() {
        let srv = {
            let mut r = vec![0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 5];
            let rdata = [&[0, 0, 0, 0, 0, 53][..], b"\x01x\xc0\x0c"].concat();
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
            r
        };
        let cname_long = {
            // RDLENGTH says 3, the name inside needs more.
            vec![
                0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 3, 0x05, b'a', b'b', b'c', b'd', b'e', 0,
            ]
        };
        let long_name = {
            let mut n = Vec::new();
            for _ in 0..5 {
                n.push(63);
                n.extend_from_slice(&[b'a'; 63]);
            }
            n.push(0);
            n.extend_from_slice(&[0, 1, 0, 1]);
            n
        };
        let cases: Vec<(&str, Vec<u8>, StrictError)> = vec![
            ("short", vec![0; 11], StrictError::ShortHeader(11)),
            (
                // The bug of issue 8 item 1: the header counts one record fewer than present.
                "count lower than records",
                msg([1, 1, 0, 0], &[question(), a_record(1), a_record(2)]),
                StrictError::TrailingBytes(16),
            ),
            (
                "count higher than records",
                msg([1, 3, 0, 0], &[question(), a_record(1), a_record(2)]),
                StrictError::Truncated {
                    section: Section::Answer,
                    index: 2,
                    offset: 12 + 17 + 32,
                },
            ),
            (
                "partial record",
                msg([1, 1, 0, 0], &[question(), a_record(1)[..10].to_vec()]),
                StrictError::Truncated {
                    section: Section::Answer,
                    index: 0,
                    offset: 29,
                },
            ),
            (
                "forward pointer",
                msg([1, 0, 0, 0], &[vec![0xc0, 12, 0, 1, 0, 1]]),
                StrictError::BadPointer {
                    offset: 12,
                    target: 12,
                },
            ),
            (
                "reserved label type",
                msg([1, 0, 0, 0], &[vec![0x41, 0, 0, 1, 0, 1]]),
                StrictError::BadLabel {
                    offset: 12,
                    byte: 0x41,
                },
            ),
            (
                "name over 255 octets",
                msg([1, 0, 0, 0], &[long_name]),
                StrictError::NameTooLong(12),
            ),
            (
                "name in rdata past rdlength",
                msg([1, 1, 0, 0], &[question(), cname_long]),
                StrictError::BadRdata {
                    rtype: 5,
                    offset: 29 + 12,
                    rdlength: 3,
                },
            ),
            (
                "opt in the answer section",
                msg([1, 1, 0, 0], &[question(), opt(512)]),
                StrictError::BadOpt(29),
            ),
            (
                "two opt records",
                msg([1, 0, 0, 2], &[question(), opt(512), opt(512)]),
                StrictError::BadOpt(40),
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(check(&bytes), Err(want), "{what}");
        }
        // A compressed SRV target that ends exactly at RDLENGTH is fine.
        assert!(check(&msg([1, 1, 0, 0], &[question(), srv])).is_ok());
    }

    #[test]
    fn pointer_chains_and_every_prefix_of_a_message_never_panic() {
        let m = msg(
            [1, 2, 0, 1],
            &[question(), a_record(1), a_record(2), opt(4096)],
        );
        for n in 0..m.len() {
            assert!(check(&m[..n]).is_err(), "prefix of {n} octets accepted");
        }
        // A chain of backwards pointers is valid as long as it ends in a label.
        let chain = msg(
            [2, 0, 0, 0],
            &[question(), vec![0x01, b'x', 0xc0, 12, 0, 1, 0, 1]],
        );
        assert_eq!(check(&chain).map(|s| s.questions), Ok(2));
    }
}
