//! Clean shutdown of the real binary (issue 8, item 5): SIGTERM arriving in
//! the middle of a reload, while 50 forwarded queries wait on a slow
//! upstream, is not lost; every one of the 50 is answered, then the process
//! exits 0.

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, eventually, query, write};
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;
use upstream::Upstream;

const PENDING: u16 = 50;

#[test]
fn sigterm_during_a_reload_answers_every_pending_query_and_exits_0() {
    let up = Upstream::start();
    let corefile = format!(
        ".:{{PORT}} {{
    bind 127.0.0.1
    forward . {}
    reload 2s 1s
}}
",
        up.to()
    );
    let mut srv = TestServer::start(&corefile, &[]);

    // The reload adds a kubernetes block whose API server accepts and never
    // answers: the reload then waits `startup_timeout` for data, and the
    // accepted connection tells the test that the reload is under way.
    let api = TcpListener::bind("127.0.0.1:0").expect("fake API server");
    let api_addr = api.local_addr().expect("addr");
    let reloaded = format!(
        "{first}cluster.local:{port} {{
    bind 127.0.0.1
    kubernetes {{
        endpoint http://{api_addr}
        startup_timeout 1s
    }}
}}
",
        first = corefile.replace("{PORT}", &srv.addr.port().to_string()),
        port = srv.addr.port()
    );
    up.set_delay(Duration::from_millis(1800));
    write(&srv.path("Corefile"), &reloaded);
    api.set_nonblocking(true).expect("nonblocking");
    let held = eventually(Duration::from_secs(20), || api.accept().ok())
        .expect("the reload never contacted the API server");

    // 50 forwarded queries, all received by the slow upstream before SIGTERM.
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let names: Vec<String> = (0..PENDING)
        .map(|i| format!("pending-{i}.example.org."))
        .collect();
    let mut ids = HashSet::new();
    for name in &names {
        let q = query(name, RecordType::A);
        ids.insert(q.metadata.id);
        client
            .send_to(&q.to_vec().expect("encode"), srv.addr)
            .expect("send");
    }
    eventually(Duration::from_secs(10), || {
        names.iter().all(|n| up.queries_for(n) > 0).then_some(())
    })
    .expect("the upstream never saw all 50 queries");

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(srv.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");

    let mut answered = HashSet::new();
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.len() < ids.len() && Instant::now() < deadline {
        let Ok(n) = client.recv(&mut buf) else {
            continue;
        };
        let m = Message::from_vec(&buf[..n]).expect("decode");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        if ids.contains(&m.metadata.id) {
            answered.insert(m.metadata.id);
        }
    }
    assert_eq!(
        answered.len(),
        ids.len(),
        "only {} of {PENDING} pending queries were answered",
        answered.len()
    );

    let exit = eventually(Duration::from_secs(20), || {
        srv.child.try_wait().expect("try_wait")
    })
    .expect("the process did not exit after SIGTERM");
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
    drop(held);
}
