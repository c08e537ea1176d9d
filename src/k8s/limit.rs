//! Client-side limits on the API client: `apiserver_qps`, `apiserver_burst`
//! and `apiserver_max_inflight` of the kubernetes plugin, with CoreDNS's
//! (client-go's) meaning.
//!
//! - QPS and burst: a token bucket that holds `burst` tokens and refills at
//!   `qps` per second; every request (a list page or the start of a watch)
//!   takes one, and waits for it when the bucket is empty, in order. As in
//!   client-go, setting only one of the two takes client-go's default for the
//!   other (5 QPS, burst 10).
//! - max_inflight: at most this many requests wait for their response headers
//!   at once. As in CoreDNS (a semaphore around the HTTP round trip), a watch
//!   holds its slot only until the API server answers the request, not while
//!   its event stream is open, so long-running watches never block the rest.
//!
//! Difference from CoreDNS: with none of the options set there is no limit at
//! all (client-go would apply 5 QPS / burst 10). client-go lists from the watch
//! cache in one request; our watches list in pages (see `api::LIST_PAGE`), and
//! each page counts, so a low QPS slows the (re)list of a large cluster.
//!
//! [`TokenBucket`] is pure (time is passed in); [`Limit`] is the thin tower
//! layer that applies it and the concurrency limit to the kube `Client`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::PollSemaphore;
use tower_service::Service;

/// client-go's `DefaultQPS`, used when only `apiserver_burst` is set.
pub const DEFAULT_QPS: f32 = 5.0;
/// client-go's `DefaultBurst`, used when only `apiserver_qps` is set.
pub const DEFAULT_BURST: u32 = 10;

/// The three options as written (0 or absent: not set).
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiLimits {
    /// `apiserver_qps`.
    pub qps: Option<f32>,
    /// `apiserver_burst`.
    pub burst: Option<u32>,
    /// `apiserver_max_inflight`.
    pub max_inflight: Option<u32>,
}

impl PartialEq for ApiLimits {
    fn eq(&self, other: &Self) -> bool {
        self.qps.map(f32::to_bits) == other.qps.map(f32::to_bits)
            && self.burst == other.burst
            && self.max_inflight == other.max_inflight
    }
}

impl Eq for ApiLimits {}

impl ApiLimits {
    /// The token bucket's (qps, burst), if a rate limit applies.
    pub fn rate(&self) -> Option<(f32, u32)> {
        let qps = self.qps.filter(|q| *q > 0.0);
        let burst = self.burst.filter(|b| *b > 0);
        if qps.is_none() && burst.is_none() {
            return None;
        }
        Some((qps.unwrap_or(DEFAULT_QPS), burst.unwrap_or(DEFAULT_BURST)))
    }

    /// The concurrency cap, if any.
    pub fn inflight(&self) -> Option<usize> {
        self.max_inflight
            .filter(|m| *m > 0)
            .and_then(|m| usize::try_from(m).ok())
    }

    /// Whether any limit applies.
    pub fn is_set(&self) -> bool {
        self.rate().is_some() || self.inflight().is_some()
    }
}

/// A token bucket in the style of client-go's limiter (golang.org/x/time/rate):
/// a request reserves a token now and is told how long to wait for it.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens per second.
    rate: f64,
    /// Capacity.
    burst: f64,
    /// Tokens at `at` (negative: reserved ahead).
    tokens: f64,
    /// When `tokens` was last brought up to date (time since an origin).
    at: Duration,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `qps` per second, at time `now`.
    pub fn new(qps: f32, burst: u32, now: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(qps).max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Take one token at `now` (monotonic, since the same origin as `new`);
    /// returns how long to wait before using it.
    pub fn reserve(&mut self, now: Duration) -> Duration {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
    }
}

/// The tower layer adding [`Limit`] to the client's service stack.
#[derive(Clone, Debug)]
pub struct LimitLayer {
    limits: ApiLimits,
}

impl LimitLayer {
    /// A layer applying `limits`.
    pub fn new(limits: ApiLimits) -> Self {
        LimitLayer { limits }
    }
}

impl<S> tower_layer::Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        let origin = Instant::now();
        Limit {
            inner,
            bucket: self
                .limits
                .rate()
                .map(|(qps, burst)| TokenBucket::new(qps, burst, Duration::ZERO)),
            origin,
            wait: None,
            throttled: false,
            slots: self
                .limits
                .inflight()
                .map(|n| PollSemaphore::new(Arc::new(Semaphore::new(n)))),
            permit: None,
        }
    }
}

/// The service applying the limits (see the module docs). Readiness means:
/// a token is reserved and its wait is over, and an in-flight slot is held.
pub struct Limit<S> {
    inner: S,
    /// `None`: no rate limit.
    bucket: Option<TokenBucket>,
    /// The bucket's time origin.
    origin: Instant,
    /// The wait for the token reserved for the next request.
    wait: Option<Pin<Box<Sleep>>>,
    /// A token is reserved and its wait is over.
    throttled: bool,
    /// `None`: no concurrency limit.
    slots: Option<PollSemaphore>,
    /// The slot acquired for the next request.
    permit: Option<OwnedSemaphorePermit>,
}

impl<S> std::fmt::Debug for Limit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limit")
            .field("bucket", &self.bucket)
            .field("slots", &self.slots.as_ref().map(|s| s.available_permits()))
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Limit<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if !self.throttled {
            if let Some(bucket) = &mut self.bucket
                && self.wait.is_none()
            {
                let wait = bucket.reserve(self.origin.elapsed());
                if !wait.is_zero() {
                    self.wait = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            if let Some(wait) = &mut self.wait {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            self.throttled = true;
        }
        if let Some(slots) = &mut self.slots
            && self.permit.is_none()
        {
            // The semaphore is never closed, so `None` cannot happen.
            self.permit = ready!(slots.poll_acquire(cx));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.throttled = false;
        let permit = self.permit.take();
        let response = self.inner.call(req);
        Box::pin(async move {
            let out = response.await;
            // The slot is free once the response headers are in (streams excluded).
            drop(permit);
            out
        })
    }
}

#[cfg(test)]
mod tests;
