//! Background refreshes: prefetch before expiry, serve_stale after it, and
//! their end when the configuration is replaced.

use super::*;

#[tokio::test(start_paused = true)]
async fn prefetch_refreshes_a_popular_entry_before_it_expires() {
    let s = setup(
        "cache {\n prefetch 2 10m 10%\n}",
        Fake::new("fake", positive("example.org.", 100)),
    );
    ask(&s, "example.org.").await;
    advance(1).await;
    ask(&s, "example.org.").await;
    advance(1).await;
    ask(&s, "example.org.").await;
    settle().await;
    assert_eq!(s.fake.calls(), 1, "popular, but 98 s of 100 remain");
    advance(89).await; // 9 s remain: under 10 %
    s.fake.set(Ok(positive("example.org.", 100)));
    let hit = ask(&s, "example.org.").await;
    assert_eq!(ttls(&hit), [9], "answered from the cache while refreshing");
    settle().await;
    assert_eq!(s.fake.calls(), 2, "refreshed in the background");
    advance(20).await; // the old entry would have expired by now
    let after = ask(&s, "example.org.").await;
    assert_eq!(ttls(&after), [80]);
    assert_eq!(s.fake.calls(), 2);
    assert_eq!(
        metric(&s, "coredns_cache_prefetch_total"),
        [r#"coredns_cache_prefetch_total{server="dns://:53",view="",zones="."} 1"#]
    );
}

#[tokio::test(start_paused = true)]
async fn an_unpopular_entry_is_not_prefetched() {
    let s = setup(
        "cache {\n prefetch 3 1m\n}",
        Fake::new("fake", positive("example.org.", 100)),
    );
    ask(&s, "example.org.").await;
    advance(95).await;
    ask(&s, "example.org.").await;
    settle().await;
    assert_eq!(s.fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn serve_stale_answers_expired_entries_with_ttl_zero_and_refreshes_them() {
    let s = setup(
        "cache {\n serve_stale 1h\n}",
        Fake::new("fake", positive("example.org.", 10)),
    );
    ask(&s, "example.org.").await;
    advance(11).await;
    s.fake.set(Ok(positive("example.org.", 20)));
    let stale = ask(&s, "example.org.").await;
    assert_eq!(ttls(&stale), [0]);
    settle().await;
    assert_eq!(s.fake.calls(), 2, "refreshed in the background");
    assert_eq!(ttls(&ask(&s, "example.org.").await), [20]);
    assert_eq!(
        metric(&s, "coredns_cache_served_stale_total"),
        [r#"coredns_cache_served_stale_total{server="dns://:53",view="",zones="."} 1"#]
    );
    // Past the window the entry is gone.
    advance(20 + 3600).await;
    s.fake.set(Err(ResponseCode::ServFail));
    assert!(
        s.chain
            .serve(&query("example.org.", RecordType::A))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn serve_stale_verify_asks_upstream_first_and_falls_back_to_stale() {
    let s = setup(
        "cache {\n serve_stale 1h verify\n}",
        Fake::new("fake", positive("example.org.", 10)),
    );
    ask(&s, "example.org.").await;
    advance(11).await;
    s.fake.set(Err(ResponseCode::ServFail));
    let stale = ask(&s, "example.org.").await;
    assert_eq!(
        (stale.rcode, ttls(&stale)),
        (ResponseCode::NoError, vec![0])
    );
    assert_eq!(s.fake.calls(), 2);
    let mut fresh = positive("example.org.", 10);
    fresh.answers[0] = a("example.org.", 10, [192, 0, 2, 99]);
    s.fake.set(Ok(fresh));
    let verified = ask(&s, "example.org.").await;
    assert_eq!(verified.answers[0].data, RData::A(A::new(192, 0, 2, 99)));
    assert_eq!(ttls(&verified), [10]);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_in_flight_ends_when_the_configuration_is_replaced() {
    struct Hang;
    #[async_trait::async_trait]
    impl Plugin for Hang {
        fn name(&self) -> &'static str {
            "hang"
        }
        async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
            std::future::pending().await
        }
    }
    let s = setup(
        "cache {\n serve_stale\n}",
        Fake::new("fake", positive("example.org.", 10)),
    );
    ask(&s, "example.org.").await;
    advance(11).await;
    // The stale hit spawns a refresh through a chain that never answers.
    let hanging = Chain::new(vec![s.cache.clone(), Arc::new(Hang)]);
    let stale = hanging
        .serve(&query("example.org.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(ttls(&stale), [0]);
    settle().await;
    let entry = s.cache.inner.lookup(
        &Key::of(&query("example.org.", RecordType::A)),
        Instant::now(),
    );
    let entry = entry.unwrap();
    assert!(!entry.start_refresh(), "the refresh is still running");
    s.token.cancel();
    settle().await;
    assert!(entry.start_refresh(), "the refresh ended with the token");
}
