//! Hedged requests: when no answer came within a delay, send a copy of the request; the first
//! success wins and the other attempts are cancelled.
//!
//! Use it against a dependency with a slow tail (p99 ten times p50: one slow replica, a GC
//! pause, a cold cache), where a second try on another replica usually answers long before the
//! first. It trades a little extra load, capped by a budget, for a shorter tail. Do not use it
//! for requests that are not idempotent, or against a dependency that is slow because it is
//! overloaded (hedges would add to the load; the budget limits the harm).
//!
//! Each call sends its first attempt at once. The k-th hedge is sent k × `delay` after the call
//! unless a success came first, up to `max_hedged_attempts` hedges; `delay(Duration::ZERO)`
//! sends every attempt at once. An attempt that fails sends the next hedge at once, budget and
//! deadline permitting, and does not end the call while other attempts are in flight; when
//! every attempt sent has failed and no further hedge may be sent, the call fails with the
//! error of the attempt that failed last. The delay is fixed ([`Builder::delay`]) or follows the
//! service ([`Builder::delay_percentile`], e.g. its p95, over a rotating window of recent
//! latency, kept in a lock-free histogram).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use steadfast::hedge::HedgeLayer;
//! use tokio::time::{Instant, sleep};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::BoxError> {
//! let layer = HedgeLayer::builder()
//!     .delay(Duration::from_millis(20))
//!     .max_hedged_attempts(1) // at most 2 attempts
//!     .build()?;
//!
//! // A backend whose first answer is slow (a bad replica), the next ones fast.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&calls);
//! let backend = service_fn(move |id: u32| {
//!     let slow = counter.fetch_add(1, Ordering::SeqCst) == 0;
//!     async move {
//!         sleep(Duration::from_millis(if slow { 500 } else { 10 })).await;
//!         Ok::<_, steadfast::BoxError>(format!("item {id}"))
//!     }
//! });
//!
//! let start = Instant::now();
//! let answer = layer.layer(backend).oneshot(7).await?;
//! assert_eq!(answer, "item 7");
//! // The hedge went out at 20 ms and answered 10 ms later; the slow attempt was dropped.
//! assert_eq!(start.elapsed(), Duration::from_millis(30));
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```
//!
//! For HTTP, hedge only idempotent methods and replay bodies that are not `Clone` (feature
//! `http`): `.replay_body(64 * 1024)` (see [`HttpHedge`]). For any other request type,
//! [`hedge_if`](Builder::hedge_if) picks the requests to hedge.
//!
//! # Defaults
//!
//! | setting | default | constant |
//! |---|---|---|
//! | `delay` | 50 ms, fixed | [`DEFAULT_DELAY`] |
//! | `delay_percentile` | none (a fixed delay) | — |
//! | `min_samples` (percentile) | 100 calls per window | [`DEFAULT_MIN_SAMPLES`] |
//! | `latency_window` (percentile) | 10 s | [`DEFAULT_LATENCY_WINDOW`] |
//! | `max_hedged_attempts` | 1 (2 attempts at most) | [`DEFAULT_MAX_HEDGED_ATTEMPTS`] |
//! | `budget` | 0.1 hedges per request + 10/s over 10 s | [`DEFAULT_BUDGET`] |
//! | `policy` | every request, copied with `Clone` ([`CloneRequest`]) | — |
//! | `name` | `"default"` | [`DEFAULT_NAME`] |
//!
//! # Percentile delay
//!
//! With `delay_percentile(p)`, each successful call's latency (from the first poll that finds
//! the call waiting, when its hedge timer starts too, to its answer, whichever attempt gave
//! it) is recorded in a histogram of log-linear buckets (16 per power of two: a value is
//! overestimated by at most 1/16) of `AtomicU64`s, one relaxed increment per call. Every
//! `latency_window` the window rotates: the percentile of the window just ended becomes the
//! delay of the next, as in tower's `hedge`; a window with fewer than `min_samples` calls gives
//! no delay, and no timed hedge is sent until one has enough (a failed attempt still sends the
//! next at once). The rotation takes a lock with `try_lock`, so no call ever waits on it.
//!
//! Either delay reads the clock only for a call that waits: at the first poll that finds its
//! first attempt pending (and, with a percentile, at the answer). A call answered at its first
//! poll reads no clock and arms no timer; with a percentile it counts as a latency of zero
//! (below the histogram's 1 µs resolution), without checking whether the window is due to
//! rotate: the next call that waits checks. Every call is counted, none is sampled, so the
//! percentile is that of all calls. What no sample counts is the time a service spends in its
//! own `call` before its future is polled, which the timer does not count either.
//!
//! The delay is at least 1 ms (tokio's timer resolution), so a service that answers within a
//! microsecond does not turn every call into a burst of hedges.
//!
//! Because hedged calls are recorded too, the percentile measures what callers see: once hedges
//! cut the tail, the delay follows the shorter latency. A percentile at the very edge of a
//! mode (p95 of a service whose slow share is about 5 %) falls on either side of it from one
//! window to the next: in a window whose slow share tops 5 %, the percentile is the hedged
//! calls' own latency (the delay plus a fast answer), so the delay creeps up until a window
//! with fewer slow calls brings it back. `examples/tail_latency.rs` shows it: p99 still falls
//! about 9×. Pick a percentile with room to spare below the tail where you can.
//!
//! # Budget
//!
//! Every call deposits into a [`RetryBudget`](crate::retry::RetryBudget) as retry's calls do,
//! and each hedge withdraws one token when it is sent; a hedge the budget refuses is not sent
//! (the next timed one asks again). To keep hedges and retries within one budget, build both
//! layers with the same [`SharedBudget`](crate::retry::SharedBudget) (`shared_budget`). In one
//! stack (retry outside the hedge) both layers then deposit for each call, the hedge once per
//! attempt, so the budget's `ratio` counts about twice: halve it.
//!
//! # Live reload
//!
//! With the `serde` feature, [`HedgeLayer::reconfigure`] applies a new delay (fixed or
//! percentile, and a switch between them), `max_hedged_attempts` and budget to a running
//! layer, keeping the latency histogram and what the budget holds; a config it refuses changes
//! nothing. Each call reads the layer's settings once, in `call` (one relaxed load of one
//! packed word), and keeps them to its end, so a call racing a reload hedges wholly by the old
//! settings or wholly by the new.
//!
//! # Deadline
//!
//! No hedge is sent once the current [`Deadline`](crate::deadline::Deadline) has passed
//! (`remaining()` is zero). Put a `TimeoutLayer` outside the hedge to bound the whole call.
//!
//! # Where it goes
//!
//! On the client side, inside retry and outside the circuit breaker: a retry then starts a
//! fresh hedged call (so the budget counts each), and the breaker sees every attempt, hedges
//! included, so a slow replica's failures count. A hedge that meets a local rejection (an open
//! breaker, a full bulkhead) does not send another at once: it would meet the same.
//!
//! # Telemetry
//!
//! | kind | name | labels / fields | when |
//! |---|---|---|---|
//! | `debug!` event | `hedge sent` | `hedge.name`, `hedge.attempt` (2 for the first hedge), `hedge.cause` (`delay` or `failure`) | a hedge is sent |
//! | `debug!` event | `hedge won` | `hedge.name`, `hedge.attempt` | a hedge gave the first success |
//! | `debug!` event | `hedge skipped` | `hedge.name`, `hedge.attempt`, `hedge.outcome` (`budget_denied`, `deadline`, `uncopyable`) | a due hedge was not sent |
//! | `info!` event | `hedge reconfigured` | `hedge.name` | `reconfigure` applied a config (feature `serde`) |
//! | counter | `steadfast_hedge_sent_total` | `name` | a hedge is sent |
//! | counter | `steadfast_hedge_won_total` | `name` | a hedge gave the first success |
//! | counter | `steadfast_hedge_budget_denied_total` | `name` | a due hedge was refused by the budget |
//!
//! Counters need the `metrics` feature; their handles are registered when the layer is built.
//! A call answered before its delay emits nothing.
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's, and the first attempt goes to the service that was
//! polled ready. Hedges go through a clone made when the first hedge of a call is due, from a
//! replica of the inner service kept when the layer wrapped it; that clone is polled ready
//! before each hedge. A hedge's budget token is taken before its readiness is polled, so a
//! service polled ready is always called (a bulkhead permit is not held for nothing).
//!
//! # Cancel safety
//!
//! Dropping the response future drops every attempt in flight (their bulkhead permits and
//! breaker probe slots come back) and the timer, and gives back the budget token of a hedge
//! paid for but not yet sent. When an attempt succeeds, the others are dropped at once, before
//! the answer is returned.
//!
//! # Errors
//!
//! Hedging adds no way to fail: the error is the inner service's own, unwrapped, of the attempt
//! that failed last. A success is an `Ok`: an HTTP response with a 5xx status wins like any
//! other.
//!
//! # Differences from `tower::hedge`
//!
//! - A fixed delay is possible; tower's always follows a percentile.
//! - More than one hedge per call, each `delay` apart; a failed attempt sends the next at once
//!   instead of ending the call; the first *success* wins, not the first answer.
//! - Hedges draw from a retry budget and respect the deadline.
//! - The histogram is lock-free on the call path (tower's takes a mutex per call), and a call
//!   answered before its delay arms no timer and allocates nothing.

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod future;
mod layer;
mod live;
mod policy;
mod state;
mod telemetry;

pub use self::config::{
    Builder, DEFAULT_BUDGET, DEFAULT_DELAY, DEFAULT_LATENCY_WINDOW, DEFAULT_MAX_HEDGED_ATTEMPTS,
    DEFAULT_MIN_SAMPLES, DEFAULT_NAME, MAX_LATENCY_WINDOW, MAX_MAX_HEDGED_ATTEMPTS,
    MIN_LATENCY_WINDOW,
};
#[cfg(feature = "serde")]
pub use self::config_file::Config;
pub use self::layer::HedgeLayer;
#[cfg(feature = "http")]
pub use self::policy::HttpHedge;
pub use self::policy::{CloneRequest, HedgeIf, HedgePolicy};

use self::config::HedgeCore;
use self::future::{Core, ResponseFuture};
use crate::sync::Arc;

/// Hedges requests to the inner service `S`; made by [`HedgeLayer`].
///
/// Clones share the layer's configuration, budget and latency window, and the replica of the
/// inner service that hedges are cloned from (see [Readiness](self#readiness)).
pub struct Hedge<S, P = CloneRequest> {
    inner: S,
    core: Arc<Core<S, P>>,
}

impl<S: Clone, P> Hedge<S, P> {
    pub(crate) fn from_config(inner: S, config: Arc<HedgeCore<P>>) -> Self {
        Self {
            core: Arc::new(Core::new(config, inner.clone())),
            inner,
        }
    }
}

impl<S, P> Hedge<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Hedges go through clones of the replica kept when the layer
    /// wrapped the service, so a change made here reaches first attempts only.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the hedge.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            core: Arc::clone(&self.core),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Hedge<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("core", &self.core)
            .finish()
    }
}

impl<S, Req, P> Service<Req> for Hedge<S, P>
where
    P: HedgePolicy<Req>,
    S: Service<P::Sent> + Clone,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<Req, S, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let config = self.core.config();
        config.budget.deposit();
        // Read once: the call hedges by these settings to its end, whatever a reload does.
        let settings = config.live.load();
        let (sent, kept) = config.policy.first(request);
        let future = self.inner.call(sent);
        // No clock is read here: a call answered at its first poll needs none (see the future).
        ResponseFuture::new(future, kept, Arc::clone(&self.core), settings)
    }
}
