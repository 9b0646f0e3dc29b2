//! Adaptive concurrency limit: measures each call's latency, lowers the number of calls it lets
//! in at once when latency shows a queue building, raises it when there is headroom, and sheds
//! the excess at once with [`LimitExceeded`].
//!
//! Use it on the server side of an axum or tonic service, to shed load before its queues grow
//! until every request times out, or on the client side, to cap the load sent to one dependency
//! at what it can serve. Unlike a [bulkhead](crate::bulkhead), nobody has to know the right
//! number: the limit follows the service as it scales, slows down or recovers.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use steadfast::limit::{AdaptiveLimitLayer, Gradient2, LimitExceeded};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::BoxError> {
//! let limit = AdaptiveLimitLayer::builder()
//!     .initial_limit(1)
//!     .min_limit(1)
//!     .max_limit(100)
//!     .algorithm(Gradient2::new().smoothing(0.2))
//!     .name("search")
//!     .build()?;
//! let search = service_fn(|query: u32| async move {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     Ok::<_, Infallible>(query + 1)
//! });
//! let mut service = limit.layer(search);
//!
//! let in_flight = service.ready().await?.call(1); // takes the one slot until it completes
//! assert_eq!(limit.in_flight(), 1);
//! let error = service.ready().await?.call(2).await.unwrap_err();
//! assert!(error.is::<LimitExceeded>());
//!
//! assert_eq!(in_flight.await?, 2);
//! assert_eq!(limit.in_flight(), 0);
//! assert!(limit.limit() >= 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setter | default | allowed |
//! |---|---|---|
//! | [`initial_limit`](Builder::initial_limit) | [20](DEFAULT_INITIAL_LIMIT) | `[min_limit, max_limit]` |
//! | [`min_limit`](Builder::min_limit) | [20](DEFAULT_MIN_LIMIT), or `initial_limit` if lower | `[1, initial_limit]` |
//! | [`max_limit`](Builder::max_limit) | [200](DEFAULT_MAX_LIMIT), or `initial_limit` if higher | `[initial_limit, 16777215]` |
//! | [`algorithm`](Builder::algorithm) | [`Gradient2`] | [`Gradient2`], [`Vegas`], [`Aimd`] |
//! | [`window`](Builder::window) | [100 ms](DEFAULT_WINDOW) | any (zero: no minimum time) |
//! | [`window_samples`](Builder::window_samples) | [10](DEFAULT_WINDOW_SAMPLES) | `[1, 1000000]` |
//! | [`classify`](Builder::classify) | [`ErrorsAsFailures`] | any [`Classify`] |
//! | [`name`](Builder::name) | [`"default"`](DEFAULT_NAME) | non-empty |
//! | [`seed`](Builder::seed) | drawn once per layer | any |
//!
//! | algorithm setting | default | allowed |
//! |---|---|---|
//! | [`Gradient2::smoothing`] | [0.2](DEFAULT_SMOOTHING) | (0, 1] |
//! | [`Gradient2::rtt_tolerance`] | [1.5](DEFAULT_RTT_TOLERANCE) | finite, ≥ 1 |
//! | [`Gradient2::long_window`] | [600](DEFAULT_LONG_WINDOW) samples | `[1, 1000000]` |
//! | [`Gradient2::short_window`] | [10](DEFAULT_SHORT_WINDOW) samples | `[1, long_window]` |
//! | [`Gradient2::queue_size`] | [4](DEFAULT_QUEUE_SIZE) | `[0, 2147483647]` |
//! | [`Vegas::smoothing`] | [1.0](DEFAULT_VEGAS_SMOOTHING) | (0, 1] |
//! | [`Vegas::probe_multiplier`] | [30](DEFAULT_PROBE_MULTIPLIER) | `[1, 1000000]` |
//! | [`Aimd::backoff_ratio`] | [0.9](DEFAULT_BACKOFF_RATIO) | [0.5, 1) |
//! | [`Aimd::timeout`] | [5 s](DEFAULT_AIMD_TIMEOUT) | more than zero |
//!
//! The Gradient2 numbers are Netflix concurrency-limits' defaults. With `min_limit` 20 the
//! default limit never sheds below 20 calls in flight: set a lower `min_limit` for a service
//! that serves fewer at once.
//!
//! # What is sampled
//!
//! A call's latency runs from its `call` to the completion of its response future (the
//! response head, for HTTP; a streamed body is not waited for), on tokio's clock. When the call
//! ends:
//!
//! - a local rejection from further in ([`is_rejection`](crate::is_rejection)) is no sample:
//!   the request never reached the service;
//! - a timeout from further in ([`Elapsed`](crate::timeout::Elapsed)) is a sample and a *drop*;
//! - otherwise the classifier decides: a success is a sample, a failure a sample and a drop,
//!   an ignored result no sample.
//!
//! The samples (of the timed calls: see "Timing a sample of the calls") are gathered into
//! windows of at least [`window`](Builder::window) (100 ms) and
//! [`window_samples`](Builder::window_samples) (10) samples, and the algorithm sees one sample per
//! window: the average latency, the most calls that were in flight, and whether any call
//! dropped, as Netflix's `WindowedLimit` feeds its algorithms. Fed every call, Gradient2 grows
//! the limit by `queue_size × smoothing` per call, hundreds per second under load, far faster
//! than the queue it builds shows in the latency: the limit swings between its bounds (the
//! `overload` example shows it, with `.window(Duration::ZERO).window_samples(1)`).
//!
//! Gradient2 and Vegas use the latency (Vegas also shrinks on a drop); AIMD uses only drops
//! (and a latency above its timeout), one step per window. The algorithms' own windows and
//! counts ([`Gradient2::long_window`], ...) count these window samples, not calls.
//!
//! A cancelled call (its future dropped) and a call rejected with [`LimitExceeded`] leave the
//! limit unchanged, with one exception under AIMD: a cancelled call that had already run longer
//! than [`Aimd::timeout`] is a drop, because a timeout further out is what cut it.
//!
//! # Lock-free admission
//!
//! The limit, the calls in flight and a call counter share one atomic word (see `state.rs` for
//! its layout and `# Memory ordering`): admission is one compare-and-swap that admits only while
//! `in_flight < limit` and numbers the call, and the end of a call one `fetch_sub`. Neither
//! takes a lock or allocates; a rejection reads no clock. The count of calls in flight is exact.
//!
//! # Timing a sample of the calls
//!
//! Reading tokio's clock costs about 50 ns on the two-core machine the benches run on, more
//! than the 40 ns this whole layer may add to a call, and timing a call takes two reads. So
//! only one call in a *sampling period* is timed: the one whose number (the counter in the
//! admission word) is a multiple of the period. The counter belongs to the limiter, so calls
//! through two limiters on one thread never fall into step with each other, and which calls
//! are timed depends only on their order of admission, never on their latency: the timed
//! calls are an unbiased sample.
//!
//! The period is a power of two from 1 to 64, chosen so that a window gets about four times
//! [`window_samples`](Builder::window_samples) samples: the calls of one
//! [`window`](Builder::window) divided by 40, by default, rounded down. Below 80 calls a window
//! (800 calls a second, by default) every call is timed; from 2 560 a window, one in 64, which puts the
//! cost of timing (two clock reads and a tried lock, about 120 ns) under 2 ns a call. The
//! period is chosen again when a window closes, from the calls it saw, and by any timed call
//! that finds its window older than `window` without its fewest samples: the rate fell, and
//! the next calls are all timed again. A window without a minimum time (`window(ZERO)`) fills
//! by its count alone, and times every call.
//!
//! What this does to convergence: the windows close as before (after `window` and
//! `window_samples` samples), and feed the algorithm the same three numbers, measured on the
//! timed calls: the average latency over at least about 40 of them when the window is long
//! enough to need sampling, and the most calls in flight among them, which under load (when
//! it matters, near the limit) is at the limit for most calls alike. Nothing is sampled away
//! that an algorithm reacts to once: a failure or timeout of a call that was not timed (a drop
//! needs no latency) sets a flag that the next timed call takes into its window, so AIMD and
//! Vegas see every window in which any call dropped. Under [`Aimd`] every call reads the clock
//! when it starts, because its cancellation rule needs the age of whichever call is cancelled:
//! one clock read per call more than the other algorithms.
//!
//! The window being gathered and the algorithm's state (averages, the fractional estimate) are
//! a few numbers that one sample updates together, so they live behind a mutex. Only a timed
//! call touches it, and only *tries* it: when another thread holds it, the sample is skipped
//! rather than waited for (a drop is kept in the flag). The algorithms are statistical
//! (averages over windows and over hundreds of windows), so a skipped sample changes nothing
//! that the next one does not; under heavy contention fewer samples are taken, never late
//! ones. The lock holder is the only writer of the limit in the word, so each change is traced
//! and exported once, in order.
//!
//! A timed call reads tokio's clock when it starts (or reuses the instant a
//! [`TimeoutLayer`](crate::timeout::TimeoutLayer) above it read) and when it ends, and tries the
//! lock once at its end. Every call also clones and drops the limiter's `Arc` (its future must
//! own what it gives its slot back to, and this crate has no `unsafe`): two uncontended atomic
//! operations on the cache line of the word, which admission has just written (see
//! `benches/limit.rs`).
//!
//! # Telemetry
//!
//! | kind | name | when | fields / labels |
//! |---|---|---|---|
//! | `tracing` event, `DEBUG` | `concurrency limit changed` | the limit moved | `limit.name`, `limit.previous`, `limit.limit`, `limit.rtt_us`, `limit.dropped` |
//! | `tracing` event, `DEBUG` | `concurrency limit exceeded` | a call is rejected | `limit.name`, `limit.limit`, `limit.in_flight` |
//! | gauge | `steadfast_limit_limit` | the current limit | `name` |
//! | gauge | `steadfast_limit_in_flight` | calls admitted and not finished: set when a window closes and when the last call in flight ends, not on every call | `name` |
//! | counter | `steadfast_limit_rejected_total` | calls rejected with [`LimitExceeded`] | `name` |
//!
//! Metrics need the `metrics` feature; their handles are registered once, by
//! [`Builder::build`], with the recorder installed at that time. The in-flight gauge is not
//! moved by every call (that would cost each call an indirect call into the recorder): it
//! follows the load window by window, and reads zero when the service is idle;
//! [`AdaptiveLimitLayer::in_flight`] is exact.
//!
//! # Readiness
//!
//! [`poll_ready`](tower_service::Service::poll_ready) only passes on the inner service's
//! readiness: the limit never makes it wait and never makes it fail (tower's `Buffer` and
//! `Balance` treat an error from `poll_ready` as fatal). Admission happens in `call`, which
//! fails at once with [`LimitExceeded`] when the limit is reached. A slot is therefore held
//! only by a call in progress, never by a service that is ready but has not called.
//!
//! # Cancel safety
//!
//! A slot is given back exactly once, however the call ends: when the response future
//! completes, or when it is dropped before completing.
//!
//! # Errors
//!
//! The service's error type is [`BoxError`]: a rejection is a [`LimitExceeded`]; errors of the
//! inner service pass through, boxed but not wrapped, so they downcast to their own type.
//!
//! # Differences from Netflix's concurrency-limits
//!
//! - Gradient2 as the issue of this crate specifies it: the gradient is
//!   `rtt_tolerance × long / short` (Netflix's current `Gradient2Limit` dropped the tolerance,
//!   its earlier versions and `GradientLimit` have it), over two exponential averages.
//! - Windowed by default, as Netflix recommends using its latency algorithms (its
//!   `WindowedLimit`, with windows of at least 1 s; 100 ms here, so a limit reacts within a
//!   second of an overload).
//! - No blocking or partitioned limiter: a call over the limit fails at once.
//! - Vegas's alpha, beta and step functions are Netflix's defaults (`log10` of the limit) and are
//!   not pluggable.
//!
//! # Differences from tower-resilience's adaptive limiter
//!
//! - Calls over the limit fail at once in `call`; tower-resilience's wait in `poll_ready` for a
//!   semaphore permit, so a caller queues in front of an overloaded service instead of being shed.
//! - Admission is one CAS on one word; tower-resilience's takes a semaphore permit, and a mutex
//!   when the permit is given back.
//! - Gradient2 (the default), sample windows, a classifier, and local rejections and timeouts
//!   told apart.
//!
//! # Differences from `tower::limit::ConcurrencyLimit`
//!
//! - The limit adapts; `ConcurrencyLimit`'s is fixed (a fixed limit here is
//!   `min_limit == max_limit`).
//! - `ConcurrencyLimit` waits in `poll_ready` for a permit; this rejects in `call` at once.
//! - One layer, one limit: every service the layer makes shares it.

mod algorithm;
mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod error;
pub mod future;
mod layer;
mod limiter;
mod state;
#[cfg(all(test, not(steadfast_loom)))]
mod tests;
mod window;

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

pub use self::algorithm::{
    Aimd, Algorithm, DEFAULT_AIMD_TIMEOUT, DEFAULT_BACKOFF_RATIO, DEFAULT_LONG_WINDOW,
    DEFAULT_PROBE_MULTIPLIER, DEFAULT_QUEUE_SIZE, DEFAULT_RTT_TOLERANCE, DEFAULT_SHORT_WINDOW,
    DEFAULT_SMOOTHING, DEFAULT_VEGAS_SMOOTHING, Gradient2, Vegas,
};
pub use self::config::{
    Builder, DEFAULT_INITIAL_LIMIT, DEFAULT_MAX_LIMIT, DEFAULT_MIN_LIMIT, DEFAULT_NAME,
    DEFAULT_WINDOW, DEFAULT_WINDOW_SAMPLES, LIMIT_LIMIT, MAX_WINDOW_SAMPLES,
};
#[cfg(feature = "serde")]
pub use self::config_file::Config;
pub use self::error::LimitExceeded;
pub use self::future::ResponseFuture;
pub use self::layer::AdaptiveLimitLayer;

use self::future::Slot;
use self::limiter::Limiter;
use self::state::{Admission, Snapshot};
use crate::BoxError;
use crate::classify::{Classify, ErrorsAsFailures};
use crate::sync::Arc;

/// Sheds the calls to `S` above an adaptive limit; made by [`AdaptiveLimitLayer`]. See the
/// [module docs](self).
///
/// Cloning gives a service that shares the limit.
pub struct AdaptiveLimit<S, C = ErrorsAsFailures> {
    inner: S,
    limiter: Arc<Limiter<C>>,
}

impl<S, C> AdaptiveLimit<S, C> {
    pub(crate) fn new(inner: S, limiter: Arc<Limiter<C>>) -> Self {
        Self { inner, limiter }
    }

    /// The current limit of the limiter this service shares.
    pub fn limit(&self) -> usize {
        self.limiter.word.load().limit() as usize
    }

    /// Calls admitted and not finished, in the limiter this service shares.
    pub fn in_flight(&self) -> usize {
        self.limiter.word.load().in_flight() as usize
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the service and returns the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Rejects a call: out of line, so the admission path stays small.
#[cold]
#[inline(never)]
fn reject<C>(limiter: &Limiter<C>, seen: Snapshot) -> LimitExceeded {
    tracing::debug!(
        limit.name = %limiter.name,
        limit.limit = seen.limit(),
        limit.in_flight = seen.in_flight(),
        "concurrency limit exceeded"
    );
    #[cfg(feature = "metrics")]
    limiter.metrics.rejected.increment(1);
    LimitExceeded::new(seen.limit() as usize)
}

impl<S: Clone, C> Clone for AdaptiveLimit<S, C> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.limiter))
    }
}

impl<S: fmt::Debug, C> fmt::Debug for AdaptiveLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C, Request> Service<Request> for AdaptiveLimit<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError> + 'static,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        match self.limiter.try_admit() {
            Admission::Admitted(admitted) => {
                let slot = Slot::new(Arc::clone(&self.limiter), admitted);
                ResponseFuture::called(self.inner.call(request), slot)
            }
            Admission::Refused(seen) => ResponseFuture::rejected(reject(&self.limiter, seen)),
        }
    }
}
