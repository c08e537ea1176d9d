//! Property test of the response encoder (issue 8, item 1): for every kind of
//! answer the server produces, any endpoint count from 0 to 200, no EDNS or
//! EDNS 512/1232/4096, UDP or TCP, with the query's case preserved or not,
//! the encoded message passes the independent strict walker
//! (`dns::strict`), fits the transport's limit, carries a prefix of the
//! records in order, and has TC set exactly when a record was left out.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use clusterdns::dns::wire::{self, Parsed};
use clusterdns::dns::{Answer, Transport, strict};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

/// The shapes of answer the plugins produce.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// ClusterIP or headless A records.
    A,
    /// Dual-stack headless AAAA records.
    Aaaa,
    /// SRV per endpoint with the targets' A records in the additional section.
    Srv,
    /// PTR records (reverse lookups; several names for one IP).
    Ptr,
    /// ExternalName CNAME followed by the target's A records.
    Cname,
    /// TXT (template, whoami-like) of varying lengths.
    Txt,
    /// MX and NS (forwarded upstream answers).
    MxNs,
    /// NXDOMAIN / NODATA: SOA in the authority section only.
    Soa,
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn soa(zone: &Name) -> Record {
    let rdata = SOA::new(
        name("ns.dns.cluster.local."),
        name("hostmaster.cluster.local."),
        1,
        7200,
        1800,
        86400,
        5,
    );
    Record::from_rdata(zone.clone(), 5, RData::SOA(rdata))
}

fn endpoint(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// The answer a plugin would give for `owner` (the name as the client wrote it or lower-cased).
fn answer(kind: Kind, owner: &Name, n: usize, txt_len: usize) -> Answer {
    let mut a = Answer::rcode(ResponseCode::NoError);
    a.authoritative = true;
    let rec = |rdata| Record::from_rdata(owner.clone(), 5, rdata);
    let target = |i: usize| name(&format!("ep-{i}.big.default.svc.cluster.local."));
    match kind {
        Kind::A => a.answers = (0..n).map(|i| rec(RData::A(A(endpoint(i))))).collect(),
        Kind::Aaaa => {
            a.answers = (0..n)
                .map(|i| {
                    rec(RData::AAAA(AAAA(Ipv6Addr::new(
                        0xfd00, 0, 0, 0, 0, 0, 1, i as u16,
                    ))))
                })
                .collect();
        }
        Kind::Srv => {
            a.answers = (0..n)
                .map(|i| rec(RData::SRV(SRV::new(0, 100, 8080, target(i)))))
                .collect();
            a.additionals = (0..n)
                .map(|i| Record::from_rdata(target(i), 5, RData::A(A(endpoint(i)))))
                .collect();
        }
        Kind::Ptr => a.answers = (0..n).map(|i| rec(RData::PTR(PTR(target(i))))).collect(),
        Kind::Cname => {
            let external = name("www.example.com.");
            a.answers.push(rec(RData::CNAME(CNAME(external.clone()))));
            a.answers.extend(
                (0..n).map(|i| Record::from_rdata(external.clone(), 30, RData::A(A(endpoint(i))))),
            );
        }
        Kind::Txt => {
            a.answers = (0..n)
                .map(|i| rec(RData::TXT(TXT::new(vec!["x".repeat((txt_len + i) % 256)]))))
                .collect();
        }
        Kind::MxNs => {
            a.answers = (0..n)
                .map(|i| rec(RData::MX(MX::new(i as u16, target(i)))))
                .collect();
            a.authority = (0..n.min(13))
                .map(|i| rec(RData::NS(NS(target(i)))))
                .collect();
        }
        Kind::Soa => {
            a.rcode = if n.is_multiple_of(2) {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            a.authority.push(soa(&name("cluster.local.")));
        }
    }
    a
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::A),
        Just(Kind::Aaaa),
        Just(Kind::Srv),
        Just(Kind::Ptr),
        Just(Kind::Cname),
        Just(Kind::Txt),
        Just(Kind::MxNs),
        Just(Kind::Soa),
    ]
}

/// A query for `qname` with optional EDNS, as a client would send it.
fn request(qname: &Name, edns: Option<u16>, transport: Transport) -> Box<wire::Request> {
    let mut m = Message::new(0x2020, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(qname.clone(), RecordType::A));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    let bytes = m.to_vec().expect("encode query");
    let src: SocketAddr = "127.0.0.1:5353".parse().expect("addr");
    match wire::parse(&bytes, src, transport) {
        Parsed::Query(r) => r,
        other => panic!("query not parsed: {other:?}"),
    }
}

/// Mixed-case query name from a bit mask (0x20).
fn qname(mask: u64) -> Name {
    let lower = "big.default.svc.cluster.local.";
    let mixed: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    name(&mixed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_encoded_answer_is_strictly_well_formed(
        kind in kind(),
        n in 0usize..=200,
        edns in prop_oneof![Just(None), Just(Some(512u16)), Just(Some(1232)), Just(Some(4096))],
        tcp in any::<bool>(),
        mask in any::<u64>(),
        preserve_case in any::<bool>(),
        txt_len in 0usize..256,
    ) {
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        let qname = qname(mask);
        let req = request(&qname, edns, transport);
        let owner = if preserve_case { qname.clone() } else { qname.to_lowercase() };
        let answer = answer(kind, &owner, n, txt_len);
        let mut out = Vec::new();
        let header = wire::encode(&req, &answer, transport, &mut out).expect("encoded");

        let s = strict::check(&out).map_err(|e| TestCaseError::fail(format!("malformed: {e}")))?;
        let limit = match transport {
            Transport::Udp => usize::from(edns.unwrap_or(512)),
            Transport::Tcp => usize::from(u16::MAX),
        };
        prop_assert!(out.len() <= limit, "{} octets over {limit}", out.len());
        prop_assert_eq!(s.questions, 1);
        prop_assert_eq!(s.edns_payload.is_some(), edns.is_some());
        prop_assert_eq!(s.truncated, header.metadata.truncation);

        let opt = u16::from(edns.is_some());
        let wanted = answer.answers.len() + answer.authority.len() + answer.additionals.len();
        let got = usize::from(s.answers) + usize::from(s.authority) + usize::from(s.additional - opt);
        prop_assert_eq!(s.truncated, got < wanted, "TC with {} of {} records", got, wanted);

        // The records present are the first ones of each section, in order,
        // and a later section is only started when the earlier one is complete.
        let m = Message::from_vec(&out).expect("hickory decodes it too");
        prop_assert_eq!(&m.answers[..], &answer.answers[..m.answers.len()]);
        prop_assert_eq!(&m.authorities[..], &answer.authority[..m.authorities.len()]);
        prop_assert_eq!(&m.additionals[..], &answer.additionals[..m.additionals.len()]);
        if m.answers.len() < answer.answers.len() {
            prop_assert!(m.authorities.is_empty() && m.additionals.is_empty());
        }
        prop_assert_eq!(m.queries[0].name().to_string(), qname.to_string());
    }
}
