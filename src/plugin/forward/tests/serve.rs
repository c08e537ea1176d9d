//! `forward` serving against fake upstreams on 127.0.0.1, with `whoami` as
//! the next plugin so that "handed on" is visible in `Answer::writer`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Fake, dead_addr, forward_with, query, reply};
use crate::plugin::loop_detect::LoopGuard;
use crate::plugin::whoami::Whoami;
use crate::plugin::{Chain, Plugin};

fn chain(f: impl Plugin + 'static) -> Chain {
    Chain::new(vec![Arc::new(f), Arc::new(Whoami)])
}

#[tokio::test]
async fn names_outside_from_or_under_except_go_to_the_next_plugin() {
    let up = Fake::answering(ResponseCode::NoError, [192, 0, 2, 1]).await;
    let (f, _) = forward_with(
        "example.org",
        &[up.addr],
        "except internal.example.org",
        Arc::default(),
    );
    let c = chain(f);
    let cases = [
        ("www.example.org.", "forward"),
        ("example.org.", "forward"),
        ("other.net.", "whoami"),
        ("internal.example.org.", "whoami"),
        ("db.internal.example.org.", "whoami"),
        ("notinternal.example.org.", "forward"),
    ];
    for (name, writer) in cases {
        let a = c.serve(&query(name, RecordType::A)).await.unwrap();
        assert_eq!(a.writer, writer, "{name}");
    }
    assert_eq!(
        up.seen(),
        3,
        "only the forwarded names reached the upstream"
    );
}

#[tokio::test]
async fn the_answer_copies_rcode_flags_and_sections_in_the_query_case() {
    let up = Fake::start(|q| {
        let mut r = reply(q, ResponseCode::NoError, [192, 0, 2, 7]);
        r.metadata.authoritative = true;
        let soa = SOA::new(
            Name::from_ascii("ns.example.org.").unwrap(),
            Name::from_ascii("admin.example.org.").unwrap(),
            1,
            2,
            3,
            4,
            5,
        );
        r.add_authority(Record::from_rdata(
            Name::from_ascii("example.org.").unwrap(),
            30,
            RData::SOA(soa),
        ));
        Some(r)
    })
    .await;
    let (f, m) = forward_with(".", &[up.addr], "", Arc::default());
    let a = chain(f)
        .serve(&query("WwW.ExAmple.ORG.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative && a.recursion_available && !a.truncated);
    assert_eq!(a.answers.len(), 1);
    assert!(
        a.answers[0]
            .name
            .eq_case(&Name::from_ascii("WwW.ExAmple.ORG.").unwrap()),
        "owner in the query's case: {}",
        a.answers[0].name
    );
    assert_eq!(
        a.answers[0].data,
        RData::A(std::net::Ipv4Addr::from([192, 0, 2, 7]).into())
    );
    assert_eq!(a.authority.len(), 1);
    assert_eq!(a.authority[0].name.to_ascii(), "example.org.");
    let to = up.addr.to_string();
    let n = m
        .request_duration
        .with_label_values(&["forward", to.as_str(), "NOERROR"])
        .get_sample_count();
    assert_eq!(n, 1);

    let nx = Fake::answering(ResponseCode::NXDomain, [0; 4]).await;
    let (f, _) = forward_with(".", &[nx.addr], "", Arc::default());
    let a = chain(f)
        .serve(&query("nope.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_eq!(a.writer, "forward");
}

#[tokio::test]
async fn max_concurrent_refuses_at_once_beyond_the_limit_and_counts_it() {
    let silent = Fake::start(|_| None).await;
    let (f, m) = forward_with(
        ".",
        &[silent.addr],
        "max_concurrent 1\nmax_fails 0",
        Arc::default(),
    );
    let c = chain(f);
    let c2 = c.clone();
    let first = tokio::spawn(async move { c2.serve(&query("slow.example.", RecordType::A)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let a = c
        .serve(&query("over.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::Refused);
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(m.max_concurrent_rejects.get(), 1);
    assert_eq!(silent.seen(), 1, "the refused query never left");
    let failed = first.await.unwrap().unwrap_err();
    assert_eq!(failed.rcode(), ResponseCode::ServFail, "timed out upstream");
    // The slot was given back: the next query is forwarded again.
    let before = silent.seen();
    let c3 = c.clone();
    let again =
        tokio::spawn(async move { c3.serve(&query("again.example.", RecordType::A)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(silent.seen(), before + 1);
    again.abort();
}

#[tokio::test]
async fn a_dead_upstream_fails_over_and_is_marked_down_by_health_checks() {
    let dead = dead_addr().await;
    let good = Fake::answering(ResponseCode::NoError, [192, 0, 2, 2]).await;
    let (f, m) = forward_with(
        ".",
        &[dead, good.addr],
        "policy sequential\nhealth_check 50ms",
        Arc::default(),
    );
    let inner = f.inner.clone();
    let c = chain(f);
    let a = c.serve(&query("a.example.", RecordType::A)).await.unwrap();
    assert_eq!(
        a.answers[0].data,
        RData::A(std::net::Ipv4Addr::from([192, 0, 2, 2]).into())
    );
    let to = dead.to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !inner.upstreams[0].health.is_down(2) {
        assert!(Instant::now() < deadline, "dead upstream never marked down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failures = m
        .healthcheck_failures
        .with_label_values(&["forward", to.as_str()])
        .get();
    assert!(failures >= 2, "{failures}");
    assert_eq!(inner.candidates(), Some(vec![1]), "down upstream skipped");
    assert_eq!(m.healthcheck_broken.get(), 0);
}

#[tokio::test]
async fn all_down_tries_a_random_one_or_fails_fast() {
    for (failfast, want) in [
        (false, ResponseCode::NoError),
        (true, ResponseCode::ServFail),
    ] {
        let up = Fake::answering(ResponseCode::NoError, [192, 0, 2, 3]).await;
        let block = if failfast {
            "failfast_all_unhealthy_upstreams"
        } else {
            ""
        };
        let (f, m) = forward_with(".", &[up.addr], block, Arc::default());
        // Mark the only upstream down without running checks.
        f.inner.upstreams[0].health.set_fails(2);
        let c = chain(f);
        let got = match c.serve(&query("x.example.", RecordType::A)).await {
            Ok(a) => a.rcode,
            Err(e) => e.rcode(),
        };
        assert_eq!(got, want, "failfast {failfast}");
        assert_eq!(m.healthcheck_broken.get(), 1);
        assert_eq!(up.seen(), usize::from(!failfast));
    }
}

#[tokio::test]
async fn failover_rcodes_try_the_next_upstream_and_next_rcodes_hand_on() {
    let bad = Fake::answering(ResponseCode::ServFail, [0; 4]).await;
    let good = Fake::answering(ResponseCode::NoError, [192, 0, 2, 4]).await;
    let ups = [bad.addr, good.addr];

    let (f, _) = forward_with(".", &ups, "policy sequential", Arc::default());
    let a = chain(f)
        .serve(&query("a.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::ServFail, "without failover: copied");

    let (f, _) = forward_with(
        ".",
        &ups,
        "policy sequential\nfailover SERVFAIL",
        Arc::default(),
    );
    let a = chain(f)
        .serve(&query("a.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError, "failed over to the second");
    assert_eq!((bad.seen(), good.seen()), (2, 1));

    let (f, _) = forward_with(".", &[bad.addr], "failover SERVFAIL", Arc::default());
    let a = chain(f)
        .serve(&query("a.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(
        a.rcode,
        ResponseCode::ServFail,
        "nothing left: the last reply"
    );

    let (f, _) = forward_with(".", &[bad.addr], "next SERVFAIL", Arc::default());
    let a = chain(f)
        .serve(&query("a.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.writer, "whoami", "handed to the next plugin");
}

#[tokio::test]
async fn max_connect_attempts_bounds_the_tries_of_one_query() {
    let a1 = Fake::answering(ResponseCode::ServFail, [0; 4]).await;
    let a2 = Fake::answering(ResponseCode::ServFail, [0; 4]).await;
    let (f, _) = forward_with(
        ".",
        &[a1.addr, a2.addr],
        "policy sequential\nfailover SERVFAIL\nmax_connect_attempts 5",
        Arc::default(),
    );
    let a = chain(f)
        .serve(&query("a.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(a.rcode, ResponseCode::ServFail);
    assert_eq!((a1.seen(), a2.seen()), (3, 2), "5 attempts, cycling");

    let (f, _) = forward_with(
        ".",
        &[a1.addr, a2.addr],
        "policy sequential\nfailover SERVFAIL\nmax_connect_attempts 1",
        Arc::default(),
    );
    chain(f)
        .serve(&query("b.example.", RecordType::A))
        .await
        .unwrap();
    assert_eq!((a1.seen(), a2.seen()), (4, 2), "one attempt only");
}

#[tokio::test]
async fn a_loop_probe_goes_only_to_its_upstream_and_looping_upstreams_are_skipped() {
    let u0 = Fake::answering(ResponseCode::NoError, [192, 0, 2, 10]).await;
    let u1 = Fake::answering(ResponseCode::NoError, [192, 0, 2, 11]).await;
    let guard = Arc::new(LoopGuard::default());
    let (f, _) = forward_with(".", &[u0.addr, u1.addr], "", guard.clone());
    let lp = crate::plugin::loop_detect::Loop::with_guard(
        guard.clone(),
        "dns://:53",
        crate::plugin::build::Family::register(&prometheus::Registry::new()).unwrap(),
    );
    let c = Chain::new(vec![Arc::new(f), Arc::new(lp), Arc::new(Whoami)]);
    let probe1 = guard.targets()[1].probe.to_ascii();
    let a = c.serve(&query(&probe1, RecordType::HINFO)).await.unwrap();
    assert_eq!(
        a.answers[0].data,
        RData::A(std::net::Ipv4Addr::from([192, 0, 2, 11]).into())
    );
    assert_eq!((u0.seen(), u1.seen()), (0, 1), "pinned to upstream 1");
    // Two more sightings make it a loop.
    for _ in 0..2 {
        let _ = c.serve(&query(&probe1, RecordType::HINFO)).await;
    }
    assert!(guard.is_looping(1) && !guard.is_looping(0));
    let looped = c
        .serve(&query(&probe1, RecordType::HINFO))
        .await
        .unwrap_err();
    assert_eq!(
        looped.rcode(),
        ResponseCode::ServFail,
        "a looping probe stops here"
    );
    assert_eq!(u1.seen(), 2, "the third sighting was not forwarded");
    for _ in 0..10 {
        let a = c
            .serve(&query("ext.example.", RecordType::A))
            .await
            .unwrap();
        assert_eq!(
            a.answers[0].data,
            RData::A(std::net::Ipv4Addr::from([192, 0, 2, 10]).into())
        );
    }
    assert_eq!(u1.seen(), 2, "the looping upstream gets nothing");
    assert_eq!(c.not_ready(), vec!["loop"]);
}
