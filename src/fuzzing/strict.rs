//! A strict re-parse of an encoded DNS message, independent of the encoder:
//! the header's counts must equal the records present, every record must
//! decode, OPT may appear only once and only in the additional section, and
//! no byte may follow the last record. hickory's `Message::from_vec` is not
//! enough on its own: it ignores trailing bytes, which is exactly how a
//! response whose counts undercount its records slips through.

use hickory_proto::op::{Header, Query};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// What a strictly valid message holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The header.
    pub header: Header,
    /// The questions.
    pub queries: Vec<Query>,
    /// Answer, authority and additional records (OPT not included).
    pub sections: [Vec<Record>; 3],
    /// The OPT record's advertised payload size, when OPT is present.
    pub edns_payload: Option<u16>,
}

/// Why a message is not strictly valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrictError {
    /// The header, a question or a record did not decode.
    #[error("{what} {index} does not decode: {message}")]
    Decode {
        /// `header`, `question`, `answer`, `authority` or `additional`.
        what: &'static str,
        /// 0-based index within that section.
        index: usize,
        /// The decoder's message.
        message: String,
    },
    /// Bytes remain after the last record the counts announce.
    #[error("{0} trailing bytes after the last counted record")]
    Trailing(usize),
    /// OPT outside the additional section, or more than one OPT.
    #[error("misplaced or repeated OPT record")]
    Opt,
}

/// Walks `bytes` as one DNS message, exactly as its header describes it.
pub fn check(bytes: &[u8]) -> Result<Summary, StrictError> {
    let decode = |what, index, e: &dyn std::fmt::Display| StrictError::Decode {
        what,
        index,
        message: e.to_string(),
    };
    let mut dec = BinDecoder::new(bytes);
    let header = Header::read(&mut dec).map_err(|e| decode("header", 0, &e))?;
    let queries = (0..header.counts.queries)
        .map(|i| Query::read(&mut dec).map_err(|e| decode("question", usize::from(i), &e)))
        .collect::<Result<Vec<_>, _>>()?;
    let counts = [
        ("answer", header.counts.answers),
        ("authority", header.counts.authorities),
        ("additional", header.counts.additionals),
    ];
    let mut sections: [Vec<Record>; 3] = Default::default();
    let mut edns_payload = None;
    for (section, (what, count)) in sections.iter_mut().zip(counts) {
        for i in 0..count {
            let record = Record::read(&mut dec).map_err(|e| decode(what, usize::from(i), &e))?;
            if record.record_type() == RecordType::OPT {
                if what != "additional" || edns_payload.is_some() {
                    return Err(StrictError::Opt);
                }
                edns_payload = Some(u16::from(record.dns_class));
                continue;
            }
            section.push(record);
        }
    }
    if !dec.is_empty() {
        return Err(StrictError::Trailing(dec.len()));
    }
    Ok(Summary {
        header,
        queries,
        sections,
        edns_payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::RData;

    fn message(answers: u8, edns: bool) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        let name = Name::from_ascii("a.example.").expect("name");
        m.add_query(Query::query(name.clone(), RecordType::A));
        for i in 0..answers {
            m.add_answer(Record::from_rdata(name.clone(), 5, RData::A(A::new(10, 0, 0, i))));
        }
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }

    #[test]
    fn a_well_formed_message_is_summarised() {
        let s = check(&message(3, true)).expect("strict");
        assert_eq!(s.queries.len(), 1);
        assert_eq!(s.sections[0].len(), 3);
        assert_eq!(s.edns_payload, Some(1232));
    }

    #[test]
    fn a_count_lower_than_the_records_present_is_trailing_bytes() {
        let mut bytes = message(3, false);
        bytes[7] = 2; // ANCOUNT 3 → 2
        assert_eq!(check(&bytes), Err(StrictError::Trailing(16))); // one compressed A record
    }

    #[test]
    fn a_count_higher_than_the_records_present_does_not_decode() {
        let mut bytes = message(3, false);
        bytes[7] = 4;
        assert!(matches!(
            check(&bytes),
            Err(StrictError::Decode { what: "answer", index: 3, .. })
        ));
    }

    #[test]
    fn opt_outside_the_additional_section_is_refused() {
        let mut bytes = message(0, true);
        bytes[7] = 1; // the OPT record now sits in the answer section
        bytes[11] = 0;
        assert_eq!(check(&bytes), Err(StrictError::Opt));
    }
}
