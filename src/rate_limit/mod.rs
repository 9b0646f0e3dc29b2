//! Rate limit: at most `n` calls per `per`, with a burst, for the whole service or per key.
//!
//! Use it to keep within a quota: on the server side, so that one tenant or client address
//! cannot take more than its share (keyed, rejecting at once with a 429 and `Retry-After`); on
//! the client side, to respect an upstream's quota (waiting up to `max_wait` for a turn instead
//! of failing). It limits calls *started* per unit of time; a
//! [`bulkhead`](crate::bulkhead) limits calls *in flight* at once. A slow service needs the
//! second; a metered one, the first.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::rate_limit::{RateLimitLayer, RateLimited};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // 10 calls per second on average, up to 3 at once from idle.
//! let limit = RateLimitLayer::builder()
//!     .limit(10, Duration::from_secs(1))
//!     .burst(3)
//!     .build()?;
//!
//! let mut service = ServiceBuilder::new()
//!     .layer(limit)
//!     .service(service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) }));
//!
//! for n in 0..3 {
//!     service.ready().await?.call(n).await?;
//! }
//! let err = service.ready().await?.call(3).await.unwrap_err();
//! let limited = err.downcast_ref::<RateLimited>().expect("rejected by the limit");
//! assert_eq!(limited.retry_after(), Duration::from_millis(100));
//!
//! tokio::time::advance(Duration::from_millis(100)).await;
//! service.ready().await?.call(4).await?;
//! # Ok(())
//! # }
//! ```
//!
//! One limiter per key, here per tenant:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::rate_limit::RateLimitLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let per_tenant = RateLimitLayer::builder()
//!     .limit(1, Duration::from_secs(1))
//!     .max_keys(1_000)
//!     .build_keyed(|(tenant, _): &(&'static str, u32)| *tenant)?;
//!
//! let mut service = ServiceBuilder::new()
//!     .layer(per_tenant.clone())
//!     .service(service_fn(|(_, n): (&str, u32)| async move {
//!         Ok::<_, std::convert::Infallible>(n)
//!     }));
//!
//! service.ready().await?.call(("acme", 1)).await?;
//! service.ready().await?.call(("globex", 2)).await?; // another tenant, another limit
//! assert!(service.ready().await?.call(("acme", 3)).await.is_err());
//! assert_eq!(per_tenant.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # The algorithm
//!
//! GCRA (the generic cell rate algorithm): one atomic word per limiter, the *theoretical arrival
//! time*, moved by one compare-and-swap per admitted call; no lock, no allocation and one clock
//! read per call (none below a [`TimeoutLayer`](crate::timeout::TimeoutLayer), whose reading it
//! reuses). A call is allowed when at most `burst` calls' worth of the rate is ahead of the
//! clock; calls go at an even `per / n` apart once the burst is spent, never more than `burst`
//! plus `elapsed × n / per` in any stretch of time. A rejection's
//! [`retry_after`](RateLimited::retry_after) is exact: a call made that much later is admitted,
//! unless another took the slot first.
//!
//! # Waiting
//!
//! With [`max_wait`](Builder::max_wait) above zero, a call whose turn comes within `max_wait`
//! takes its slot at once and then waits for it (on tokio's clock, in the response future), so
//! waiting calls go in the order they came. A call whose turn would come at or after the current
//! [`Deadline`](crate::deadline::Deadline) is rejected at once instead: it could not finish in
//! time. The deadline is current again around the inner `call` made after the wait.
//!
//! # Keyed limits
//!
//! [`build_keyed`](Builder::build_keyed) makes one limiter per key, computed from each request
//! by a function (a tenant, a client address, a route), each with the same rate. At most
//! [`max_keys`](Builder::max_keys) keys have a limiter at once. A limiter whose debt is paid is
//! the same as a new one, so evicting it loses nothing; one in debt is *busy* and kept:
//!
//! - a limiter unused for [`idle_timeout`](Builder::idle_timeout) and out of debt is evicted
//!   when the next new key arrives (sweeps run at most once per `idle_timeout`, or whenever the
//!   map is full);
//! - when the map is full, the least recently used limiter out of debt is evicted for a new
//!   key; if every limiter is in debt, the least recently used one goes anyway (the bound on
//!   memory wins), which forgives its debt.
//!
//! A keyed call hashes its key once (SipHash, keyed per map), locks one of 16 shards of the map,
//! and decides under the lock: it takes no reference count unless it waits.
//!
//! # Live reload
//!
//! With the `serde` feature, [`RateLimitLayer::reconfigure`] and
//! [`KeyedRateLimitLayer::reconfigure`] apply a new `limit`, `burst` and `max_wait` to a
//! running limiter, from the next call of each of its services; a config they refuse changes
//! nothing. The limiter keeps its state, the theoretical arrival time, as it is: what the calls
//! admitted before the reload used up stays used up at the rate they were admitted under (no
//! call is admitted twice for the same span of time, and no debt is forgiven or scaled), and
//! the new rate spaces the calls after it. So a limit raised from 1 to 10 a second, just after
//! a call, still waits out that call's second before the first call at the new rate; a larger
//! burst lets in at once what the new tolerance allows over the same arrival time. A call
//! waiting for its turn keeps the slot it reserved, and gives back, if cancelled, what it took.
//!
//! The call path stays as it was: each service keeps a copy of the rate and checks one
//! generation word per call (one relaxed load) to see whether a reload made it stale.
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | [`limit`](Builder::limit) | none: must be set |
//! | [`burst`](Builder::burst) | 1 |
//! | [`max_wait`](Builder::max_wait) | zero: reject at once |
//! | [`max_keys`](Builder::max_keys) (keyed) | 10 000 |
//! | [`idle_timeout`](Builder::idle_timeout) (keyed) | 60 s |
//! | [`name`](Builder::name) | `"default"` |
//!
//! # Telemetry
//!
//! | kind | name | labels / fields | when |
//! |---|---|---|---|
//! | event `debug` | "rate limiter rejected a call" | `rate_limit.name`, `.retry_after_ms` | each rejection |
//! | event `debug` | "rate limiter delayed a call" | `rate_limit.name`, `.wait_ms` | a call starts to wait |
//! | event `debug` | "rate limiter's waiting call was cancelled" | `rate_limit.name`, `.refunded` | a waiting call is dropped |
//! | event `info` | "rate limiter reconfigured" | `rate_limit.name`, `.interval_ns`, `.tolerance_ns`, `.max_wait_ms` | `reconfigure` changed the rate (feature `serde`) |
//! | counter | `steadfast_rate_limit_admitted_total` | `name` | each call sent to the service, at once or after a wait |
//! | counter | `steadfast_rate_limit_rejected_total` | `name` | each rejection |
//! | counter | `steadfast_rate_limit_waited_total` | `name` | each call that started to wait |
//!
//! Metrics need the `metrics` feature; their handles are registered when the layer is built,
//! so install the recorder first. A keyed layer's metrics are those of all its keys together
//! (a key per label would have no bound on cardinality).
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's: the limit is decided in `call`, where the request (and
//! its key) and the current deadline are known, and a rejection fails the call, never
//! `poll_ready` (which `Buffer` and `Balance` would treat as fatal). The services need the inner
//! service to be `Clone`: a call that waits takes the polled-ready inner service with it and
//! leaves a clone in its place, which the next `poll_ready` readies.
//!
//! # Cancel safety
//!
//! Dropping a response future that waits for its turn gives its slot back, unless a later call
//! has reserved after it: moving the limit back under that call would let the calls after it
//! exceed the rate, so the slot is then lost (the limit errs on the side of fewer calls).
//! Dropping it after its turn came drops the inner future; the slot was used.
//!
//! # Errors
//!
//! The service's error is [`BoxError`]: a [`RateLimited`] when the limit rejects, otherwise the
//! inner service's error, boxed as it was.
//!
//! # Differences from `tower::limit::RateLimit`
//!
//! tower's `RateLimit` counts calls in fixed windows of `per` (up to `n` at once at the start of
//! each window, so `2n` can pass across a window's edge), waits in `poll_ready` (so a caller
//! cannot fail fast, and the wait holds up every request behind it), and is not `Clone`: each
//! service it wraps has a limit of its own, and sharing one takes a `Buffer`. This limiter spreads calls evenly with a separate burst, decides in `call`
//! (reject at once, or wait up to `max_wait` in the future, within the deadline), shares one
//! limiter across clones, and can be keyed.
//!
//! # Why not `governor`
//!
//! `governor` implements GCRA well, but it does not meet this layer's needs: a waiting call
//! cannot give its slot back when cancelled (its waits are a loop of checks, not a reservation),
//! its keyed store has no bound on the number of keys (idle keys go only when the user calls
//! `retain_recent`), its time comes from its own clock trait rather than the current deadline's
//! and paused tokio time, and it would bring dependencies (dashmap, quanta) for what is one
//! compare-and-swap loop here.

mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod error;
pub mod future;
mod keyed;
mod layer;
mod live;
#[cfg(feature = "redis")]
pub mod redis;
mod state;
mod telemetry;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use self::config::{
    Builder, DEFAULT_BURST, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_KEYS, DEFAULT_MAX_WAIT, DEFAULT_NAME,
};
#[cfg(feature = "serde")]
pub use self::config_file::{Config, Limit};
pub use self::error::RateLimited;
pub use self::keyed::{KeyedRateLimit, KeyedRateLimitLayer};
pub use self::layer::RateLimitLayer;

use self::config::LocalPolicy;
use self::future::{ResponseFuture, respond, verdict};
use self::live::CachedRate;
use self::state::Limiter;
use crate::BoxError;

/// A service behind a rate limit; made by [`RateLimitLayer`].
pub struct RateLimit<S> {
    inner: S,
    /// This service's copy of the live rate; see `live.rs`.
    rate: CachedRate,
    policy: Arc<LocalPolicy>,
    limiter: Arc<Limiter>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, policy: Arc<LocalPolicy>, limiter: Arc<Limiter>) -> Self {
        Self {
            inner,
            rate: policy.live.copy(),
            policy,
            limiter,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            rate: self.rate,
            policy: Arc::clone(&self.policy),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        self.policy.live.refresh(&mut self.rate);
        let now = crate::clock::call_now();
        let verdict = verdict(self.rate.rate(), &self.limiter, now);
        respond(&self.policy, verdict, now, &mut self.inner, request)
    }
}
