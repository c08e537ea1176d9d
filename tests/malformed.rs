//! Hostile input against the real binary: thousands of mutated and random
//! packets over UDP and TCP. Every reply must be a well-formed DNS message with
//! the query's ID (or no reply at all), and the server must keep answering.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::{TestServer, query, with_edns};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    [
        ("nginx-service.default.svc.cluster.local.", RecordType::A),
        (
            "_service-port._tcp.nginx-service.default.svc.cluster.local.",
            RecordType::SRV,
        ),
        ("100.0.96.10.in-addr.arpa.", RecordType::PTR),
        ("web.demo.svc.cluster.local.", RecordType::AAAA),
    ]
    .iter()
    .flat_map(|(n, t)| {
        [
            query(n, *t).to_vec().expect("encode"),
            with_edns(query(n, *t), 1232).to_vec().expect("encode"),
        ]
    })
    .collect()
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut p = seed.to_vec();
    match rng.below(5) {
        0 => {
            // flip a few bits
            for _ in 0..=rng.below(4) {
                let i = rng.below(p.len());
                p[i] ^= 1 << rng.below(8);
            }
        }
        1 => p.truncate(rng.below(p.len())),
        2 => {
            // random bytes after the header
            for b in p.iter_mut().skip(12) {
                *b = rng.next() as u8;
            }
        }
        3 => {
            // corrupt the counts
            let i = 4 + rng.below(8);
            p[i] = rng.next() as u8;
        }
        _ => {
            // compression pointer loops and garbage labels
            p.truncate(12);
            p.extend_from_slice(&[0xc0, 0x0c, 0xc0, 0x0c, 0x3f, 0x00, 0x01]);
        }
    }
    p
}

fn check_reply(reply: &[u8], sent: &[u8]) {
    if let Ok(m) = Message::from_vec(reply) {
        if sent.len() >= 2 {
            assert_eq!(&reply[..2], &sent[..2], "reply ID differs from query ID");
        }
        assert_ne!(m.metadata.response_code, ResponseCode::Unknown(999));
    } else {
        panic!("server sent an unparseable reply to {sent:02x?}");
    }
}

#[test]
fn mutated_udp_packets_never_break_the_server() {
    let srv = TestServer::demo();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds = seeds();
    let mut buf = [0u8; 65535];
    let mut replies = 0;
    for i in 0..3000 {
        let pkt = mutate(&mut rng, &seeds[i % seeds.len()]);
        sock.send_to(&pkt, srv.addr).expect("send");
        // Replies may lag a packet behind; reading one per send keeps up.
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            replies += 1;
            assert!(Message::from_vec(&buf[..n]).is_ok(), "unparseable reply");
        }
    }
    assert!(
        replies > 0,
        "the server answered at least some mutated packets"
    );
    let ok = srv.udp("nginx-service.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        ok.metadata.response_code,
        ResponseCode::NoError,
        "still answering"
    );
}

#[test]
fn mutated_tcp_messages_never_break_the_server() {
    let srv = TestServer::demo();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let seeds = seeds();
    for i in 0..300 {
        let pkt = mutate(&mut rng, &seeds[i % seeds.len()]);
        let mut s = TcpStream::connect(srv.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let len = u16::try_from(pkt.len()).expect("len").to_be_bytes();
        let _ = s.write_all(&len);
        let _ = s.write_all(&pkt);
        let mut lenbuf = [0u8; 2];
        if s.read_exact(&mut lenbuf).is_ok() {
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(lenbuf))];
            if s.read_exact(&mut reply).is_ok() {
                check_reply(&reply, &pkt);
            }
        }
    }
    let ok = srv.tcp("nginx-service.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        ok.metadata.response_code,
        ResponseCode::NoError,
        "still answering"
    );
}
