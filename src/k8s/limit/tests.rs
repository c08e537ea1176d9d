//! The token bucket as a table over virtual time, and the tower service on
//! Tokio's paused clock (deterministic: no wall-clock thresholds).

use std::sync::Mutex;

use futures::FutureExt;
use tokio::sync::oneshot;
use tower_layer::Layer;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// (apiserver_qps, apiserver_burst, the bucket's (qps, burst)).
type RateCase = (Option<f32>, Option<u32>, Option<(f32, u32)>);

#[test]
fn rate_follows_client_go_defaults() {
    let cases: &[RateCase] = &[
        (None, None, None),
        (Some(0.0), Some(0), None),
        (Some(5.0), None, Some((5.0, DEFAULT_BURST))),
        (None, Some(20), Some((DEFAULT_QPS, 20))),
        (Some(50.0), Some(100), Some((50.0, 100))),
        (Some(0.5), Some(1), Some((0.5, 1))),
    ];
    for &(qps, burst, want) in cases {
        let limits = ApiLimits {
            qps,
            burst,
            max_inflight: None,
        };
        assert_eq!(limits.rate(), want, "qps {qps:?} burst {burst:?}");
        assert_eq!(limits.is_set(), want.is_some());
    }
    let inflight = |m| ApiLimits {
        max_inflight: m,
        ..ApiLimits::default()
    };
    assert_eq!(inflight(Some(0)).inflight(), None);
    assert_eq!(inflight(Some(3)).inflight(), Some(3));
    assert!(inflight(Some(3)).is_set());
}

#[test]
fn the_bucket_spaces_requests_after_the_burst() {
    // (qps, burst, request times in ms, expected waits in ms)
    let cases: &[(f32, u32, &[u64], &[u64])] = &[
        (5.0, 1, &[0, 0, 0, 0], &[0, 200, 400, 600]),
        (5.0, 3, &[0, 0, 0, 0, 0], &[0, 0, 0, 200, 400]),
        (
            10.0,
            2,
            &[0, 0, 0, 1000, 1000, 1000],
            &[0, 0, 100, 0, 0, 100],
        ),
        // Waiting requests that arrive on schedule never wait.
        (5.0, 1, &[0, 200, 400, 600], &[0, 0, 0, 0]),
        // A long pause refills only up to the burst.
        (1.0, 2, &[0, 10_000, 10_000, 10_000], &[0, 0, 0, 1000]),
    ];
    for &(qps, burst, times, waits) in cases {
        let mut bucket = TokenBucket::new(qps, burst, Duration::ZERO);
        let got: Vec<Duration> = times.iter().map(|t| bucket.reserve(ms(*t))).collect();
        let want: Vec<Duration> = waits.iter().map(|w| ms(*w)).collect();
        let close = got
            .iter()
            .zip(&want)
            .all(|(g, w)| g.abs_diff(*w) < Duration::from_micros(1));
        assert!(
            close,
            "qps {qps} burst {burst} times {times:?}: {got:?} != {want:?}"
        );
    }
}

/// Records when each request was called; answers at once.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Service<u32> for Recorder {
    type Response = u32;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<u32, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.calls.lock().expect("lock").push(Instant::now());
        std::future::ready(Ok(req))
    }
}

async fn send<S: Service<u32>>(svc: &mut S) -> S::Future {
    futures::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .unwrap_or_else(|_| panic!("service failed"));
    svc.call(0)
}

#[tokio::test(start_paused = true)]
async fn qps_5_burst_1_sends_one_request_every_200_ms() {
    let recorder = Recorder::default();
    let limits = ApiLimits {
        qps: Some(5.0),
        burst: Some(1),
        max_inflight: None,
    };
    let mut svc = LimitLayer::new(limits).layer(recorder.clone());
    let start = Instant::now();
    for _ in 0..4 {
        let _ = send(&mut svc).await.await;
    }
    let offsets: Vec<Duration> = recorder
        .calls
        .lock()
        .expect("lock")
        .iter()
        .map(|t| t.duration_since(start))
        .collect();
    assert_eq!(offsets, [ms(0), ms(200), ms(400), ms(600)]);
}

/// Answers each request when the test says so.
#[derive(Default)]
struct Held {
    release: Vec<oneshot::Sender<()>>,
}

impl Service<u32> for Held {
    type Response = u32;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<u32, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        let (tx, rx) = oneshot::channel();
        self.release.push(tx);
        Box::pin(async move {
            let _ = rx.await;
            Ok(req)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn max_inflight_holds_a_request_until_a_response_is_in() {
    let limits = ApiLimits {
        max_inflight: Some(2),
        ..ApiLimits::default()
    };
    let mut svc = LimitLayer::new(limits).layer(Held::default());
    let first = send(&mut svc).await;
    let second = send(&mut svc).await;
    // Both slots taken: not ready for a third.
    let ready = futures::future::poll_fn(|cx| Poll::Ready(svc.poll_ready(cx))).await;
    assert!(ready.is_pending(), "a third request got a slot");
    assert_eq!(svc.inner.release.len(), 2);
    // The first response arrives: its slot frees, the third goes out.
    svc.inner.release.remove(0).send(()).expect("release");
    assert_eq!(first.await.ok(), Some(0));
    let third = send(&mut svc).now_or_never();
    assert!(third.is_some(), "the freed slot was not reused");
    assert_eq!(svc.inner.release.len(), 2);
    drop(second);
}

#[tokio::test(start_paused = true)]
async fn no_limits_pass_every_request_straight_through() {
    let recorder = Recorder::default();
    let mut svc = LimitLayer::new(ApiLimits::default()).layer(recorder.clone());
    let start = Instant::now();
    for _ in 0..20 {
        let _ = send(&mut svc).await.await;
    }
    let calls = recorder.calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 20);
    assert!(calls.iter().all(|t| *t == start));
}
