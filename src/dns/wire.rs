//! DNS messages on the wire, for both transports: parse a request, encode a
//! response into a reused buffer. Pure functions, no I/O.
//!
//! The protocol rules live here, once, so that UDP ([`super::udp`]) and TCP
//! ([`super::tcp`]) answer alike: a packet shorter than a header, or a
//! response, is dropped; a header followed by garbage is FORMERR with the
//! query's ID; more than one question is FORMERR; a non-QUERY opcode is
//! NOTIMP; the answer carries OPT iff the query did. Over UDP the answer is
//! cut to the client's EDNS size (512 without), over TCP to 65,535 octets:
//! whole records only, with the header counts equal to the records present
//! and TC set exactly when a record was left out (see `emit`).
//!
//! An answer's [`Extras`] apply here: a `bufsize` limit lowers the UDP size
//! (and the size the OPT advertises), NSID and Extended DNS Error options
//! join the OPT record (only when the query carried OPT), and a silent
//! answer (`acl drop`) encodes to nothing.
//!
//! The request's EDNS0 options (but the hop-by-hop ones) reach plugins as
//! [`Query::edns_options`], for `rewrite edns0` and `forward`.

use std::net::SocketAddr;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use crate::dns::query::{EdnsOptions, Extras};
use crate::dns::{Answer, Query, Transport};

/// The largest UDP payload we answer with (and advertise).
pub const MAX_UDP_PAYLOAD: u16 = 4096;

/// What to do with a received packet.
#[derive(Debug)]
pub enum Parsed {
    /// Not worth an answer (too short for a header, or a response).
    Drop,
    /// Answer at once with this response code (FORMERR, NOTIMP).
    Reject {
        /// The request header.
        header: Metadata,
        /// The response code.
        rcode: ResponseCode,
    },
    /// A query for the plugin chain.
    Query(Box<Request>),
}

/// A parsed query and what its response needs.
#[derive(Debug)]
pub struct Request {
    /// The whole request (the question is echoed from it).
    pub message: Message,
    /// The question as plugins see it.
    pub query: Query,
}

/// Parse one request that arrived from `src` over `transport`.
pub fn parse(bytes: &[u8], src: SocketAddr, transport: Transport) -> Parsed {
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return Parsed::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        return Parsed::Drop;
    }
    let reject = |rcode| Parsed::Reject {
        header: header.metadata,
        rcode,
    };
    let Ok(message) = Message::from_vec(bytes) else {
        return reject(ResponseCode::FormErr);
    };
    if message.metadata.op_code != OpCode::Query {
        return reject(ResponseCode::NotImp);
    }
    let [q] = &message.queries[..] else {
        return reject(ResponseCode::FormErr);
    };
    let name = q.name().clone();
    let query = Query {
        lower: name.to_lowercase(),
        name,
        qtype: q.query_type(),
        qclass: q.query_class(),
        src,
        transport,
        edns_payload: message.edns.as_ref().map(Edns::max_payload),
        dnssec_ok: message.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        recursion_desired: message.metadata.recursion_desired,
        nsid: message
            .edns
            .as_ref()
            .is_some_and(|e| e.option(EdnsCode::NSID).is_some()),
        id: message.metadata.id,
        edns_options: message.edns.as_ref().and_then(forwarded_options),
    };
    Parsed::Query(Box::new(Request { message, query }))
}

/// EDNS0 option codes that concern one hop only (RFC 7873 COOKIE, RFC 7828
/// TCP-KEEPALIVE, RFC 7830 PADDING): kept out of [`Query::edns_options`], so
/// `forward` never relays them upstream.
const HOP_BY_HOP_OPTIONS: [u16; 3] = [10, 11, 12];

/// The client's other EDNS0 options as `(code, data)`; `None` without
/// allocating when there are none.
fn forwarded_options(edns: &Edns) -> Option<Box<EdnsOptions>> {
    let kept =
        |(code, _): &&(EdnsCode, EdnsOption)| !HOP_BY_HOP_OPTIONS.contains(&u16::from(*code));
    let all = edns.options().as_ref();
    if !all.iter().any(|o| kept(&o)) {
        return None;
    }
    let options = all
        .iter()
        .filter(kept)
        .filter_map(|(code, option)| {
            let data = Vec::<u8>::try_from(option).ok()?;
            Some((u16::from(*code), data.into_boxed_slice()))
        })
        .collect();
    Some(Box::new(options))
}

/// The OPT record we answer with: the client's payload size clamped to
/// [512, MAX_UDP_PAYLOAD], which is also the size the response must fit.
pub fn response_edns(request: &Edns) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(request.max_payload().clamp(512, MAX_UDP_PAYLOAD));
    edns.set_version(0);
    edns.set_dnssec_ok(request.flags().dnssec_ok);
    edns
}

/// Encode the response to `req` into `out` (cleared first), truncated to the
/// UDP size limit when `transport` is UDP. Returns the final header; `None`
/// when nothing is to be sent (a silent answer, or one that cannot be encoded
/// even as SERVFAIL).
pub fn encode(
    req: &Request,
    answer: &Answer,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Header> {
    if answer.is_silent() {
        return None;
    }
    let mut metadata = Metadata::response_from_request(&req.message.metadata);
    metadata.response_code = answer.rcode;
    metadata.authoritative = answer.authoritative;
    metadata.truncation = answer.truncated;
    metadata.recursion_available = answer.recursion_available;
    let mut edns = req.message.edns.as_ref().map(response_edns);
    if let (Some(edns), Some(extras)) = (edns.as_mut(), answer.extras.as_deref()) {
        apply_extras(edns, extras);
    }
    let limit = match transport {
        Transport::Udp => edns.as_ref().map_or(512, Edns::max_payload),
        Transport::Tcp => u16::MAX,
    };
    let emitted = emit(
        &metadata,
        &req.message.queries,
        [&answer.answers[..], &answer.authority, &answer.additionals],
        edns.as_ref(),
        limit,
        out,
    );
    match emitted {
        Some(h) => Some(h),
        None => {
            // Could not encode even a truncated answer: SERVFAIL with the question.
            metadata.response_code = ResponseCode::ServFail;
            emit(
                &metadata,
                &req.message.queries,
                [&[], &[], &[]],
                None,
                512,
                out,
            )
        }
    }
}

/// A `bufsize` limit, NSID and EDE options into the response's OPT record.
fn apply_extras(edns: &mut Edns, extras: &Extras) {
    if let Some(size) = extras.udp_size {
        edns.set_max_payload(edns.max_payload().min(size.max(512)));
    }
    if let Some(nsid) = &extras.nsid {
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::NSID),
            nsid.to_vec(),
        ));
    }
    if let Some((code, text)) = &extras.ede {
        let mut data = code.to_be_bytes().to_vec();
        data.extend_from_slice(text.as_bytes());
        // Option code 15: Extended DNS Error (RFC 8914).
        edns.options_mut().insert(EdnsOption::Unknown(15, data));
    }
}

/// A header-only (plus question when it parsed) error response.
pub fn encode_reject(header: &Metadata, rcode: ResponseCode, out: &mut Vec<u8>) -> Option<Header> {
    let mut metadata = Metadata::response_from_request(header);
    metadata.response_code = rcode;
    emit(&metadata, &[], [&[], &[], &[]], None, 512, out)
}

/// Encode header, question and as many whole records as fit in `limit`
/// octets (OPT, when present, always fits: its room is reserved first).
///
/// Records are encoded one at a time; a record that does not fit is rolled
/// back to the end of the last complete record (bytes and compression
/// pointers alike) and nothing after it is written, so the header counts are
/// exactly the records present. TC is set when a record was dropped (or the
/// plugin already set it). hickory's `emit_message_parts` with a maximum size
/// left the partial record's bytes behind, uncounted (issue 8, item 1).
fn emit(
    metadata: &Metadata,
    queries: &[hickory_proto::op::Query],
    sections: [&[Record]; 3],
    edns: Option<&Edns>,
    limit: u16,
    out: &mut Vec<u8>,
) -> Option<Header> {
    // The OPT record, encoded on its own: its owner is the root, so it never
    // uses or offers a compression pointer and can be appended as bytes.
    let mut opt = Vec::new();
    if let Some(edns) = edns {
        let mut edns = edns.clone();
        edns.set_rcode_high(metadata.response_code.high());
        Record::from(&edns)
            .emit(&mut BinEncoder::new(&mut opt))
            .ok()?;
    }
    let budget = usize::from(limit).checked_sub(opt.len())?;
    out.clear();
    let mut encoder = BinEncoder::new(out);
    let place = encoder.place::<Header>().ok()?;
    for q in queries {
        q.emit(&mut encoder).ok()?;
    }
    if encoder.offset() > budget {
        return None;
    }
    let mut counts = [0u16; 3];
    let mut dropped = false;
    'sections: for (count, records) in counts.iter_mut().zip(sections) {
        for record in records {
            let start = encoder.offset();
            let fits = record.emit(&mut encoder).is_ok() && encoder.offset() <= budget;
            if !fits || *count == u16::MAX {
                encoder.set_offset(start);
                encoder.trim();
                dropped = true;
                break 'sections;
            }
            *count += 1;
        }
    }
    let with_opt = u16::from(!opt.is_empty());
    encoder.emit_vec(&opt).ok()?;
    let mut metadata = *metadata;
    metadata.truncation |= dropped;
    let header = Header {
        metadata,
        counts: HeaderCounts {
            queries: u16::try_from(queries.len()).ok()?,
            answers: counts[0],
            authorities: counts[1],
            additionals: counts[2].checked_add(with_opt)?,
        },
    };
    place.replace(&mut encoder, header).ok()?;
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, RecordType};

    fn src() -> SocketAddr {
        "127.0.0.1:5353".parse().expect("addr")
    }

    fn query_bytes(name: &str, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }

    fn parsed(bytes: &[u8]) -> Box<Request> {
        match parse(bytes, src(), Transport::Udp) {
            Parsed::Query(r) => r,
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn short_packets_and_responses_are_dropped() {
        assert!(matches!(
            parse(&[1, 2, 3], src(), Transport::Udp),
            Parsed::Drop
        ));
        let mut resp = query_bytes("a.example.org.", None);
        resp[2] |= 0x80;
        assert!(matches!(parse(&resp, src(), Transport::Udp), Parsed::Drop));
    }

    #[test]
    fn garbage_after_a_header_is_formerr_with_the_id() {
        let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        pkt.extend_from_slice(&[0xff, 0xff, 0x07]);
        let Parsed::Reject { header, rcode } = parse(&pkt, src(), Transport::Udp) else {
            panic!("not rejected");
        };
        assert_eq!((header.id, rcode), (0x1234, ResponseCode::FormErr));
        let mut out = Vec::new();
        encode_reject(&header, rcode, &mut out).expect("encoded");
        let m = Message::from_vec(&out).expect("decode");
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.message_type, MessageType::Response);
    }

    #[test]
    fn the_query_keeps_its_case_and_edns_size() {
        let r = parsed(&query_bytes("WeB.Example.ORG.", Some(1232)));
        assert_eq!(r.query.name.to_string(), "WeB.Example.ORG.");
        assert_eq!(r.query.lower.to_string(), "web.example.org.");
        assert_eq!(r.query.edns_payload, Some(1232));
        assert_eq!(r.query.id, 0x4242);
    }

    #[test]
    fn the_query_carries_the_client_options_but_the_hop_by_hop_ones() {
        let with = |options: &[(u16, &[u8])]| {
            let mut m = Message::from_vec(&query_bytes("a.example.org.", Some(1232))).expect("m");
            let edns = m.edns.as_mut().expect("OPT");
            for (code, data) in options {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(*code, data.to_vec()));
            }
            parsed(&m.to_vec().expect("encode")).query.edns_options
        };
        let local: &[u8] = b"abcd";
        let ecs: &[u8] = &[0, 1, 24, 0, 10, 1, 2];
        let cookie: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
        type Opts<'a> = Vec<(u16, &'a [u8])>;
        let cases: [(Opts<'_>, Option<Opts<'_>>); 5] = [
            (vec![], None),
            (vec![(10, cookie)], None),
            (vec![(10, cookie), (12, &[0, 0])], None),
            (vec![(0xffee, local)], Some(vec![(0xffee, local)])),
            (
                vec![(8, ecs), (10, cookie), (3, &[]), (0xffee, local)],
                Some(vec![(8, ecs), (3, &[]), (0xffee, local)]),
            ),
        ];
        for (sent, want) in cases {
            let got =
                with(&sent).map(|v| v.iter().map(|(c, d)| (*c, d.to_vec())).collect::<Vec<_>>());
            let want = want.map(|v| v.iter().map(|(c, d)| (*c, d.to_vec())).collect());
            assert_eq!(got, want, "sent {sent:?}");
        }
        let plain = parsed(&query_bytes("a.example.org.", None));
        assert!(plain.query.edns_options.is_none() && !plain.query.nsid);
    }

    fn many_a(name: &str, n: u8) -> Answer {
        let owner = Name::from_ascii(name).expect("name");
        let mut a = Answer::rcode(ResponseCode::NoError);
        a.answers = (0..n)
            .map(|i| Record::from_rdata(owner.clone(), 5, RData::A(A::new(10, 0, 0, i))))
            .collect();
        a
    }

    #[test]
    fn udp_answers_are_truncated_to_512_without_edns_and_to_the_edns_size_with_it() {
        let mut out = Vec::new();
        let plain = parsed(&query_bytes("big.example.org.", None));
        let h = encode(
            &plain,
            &many_a("big.example.org.", 100),
            Transport::Udp,
            &mut out,
        )
        .expect("encoded");
        assert!(out.len() <= 512 && h.metadata.truncation);
        let m = Message::from_vec(&out).expect("decode");
        assert!(m.edns.is_none() && m.answers.len() < 100);

        let big = parsed(&query_bytes("big.example.org.", Some(4096)));
        let h = encode(
            &big,
            &many_a("big.example.org.", 100),
            Transport::Udp,
            &mut out,
        )
        .expect("encoded");
        assert!(!h.metadata.truncation);
        let m = Message::from_vec(&out).expect("decode");
        assert_eq!(m.answers.len(), 100);
        assert_eq!(m.edns.expect("OPT").max_payload(), 4096);

        let tcp = encode(
            &plain,
            &many_a("big.example.org.", 100),
            Transport::Tcp,
            &mut out,
        )
        .expect("encoded");
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.counts.answers, 100);
    }
}
