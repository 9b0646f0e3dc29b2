//! The recommended stack of layers, ready-made: any subset, always in the right order.
//!
//! [`ResilienceStack`] is one [`Layer`] that applies the layers you give it in the order
//! [below](#the-order), outermost first: fallback → retry (with budget) → overall timeout →
//! circuit breaker → bulkhead → attempt timeout → the service.
//! Each setter takes a layer you built (and validated) with that layer's own builder; the order
//! you call the setters in does not matter. [`ServiceBuilderExt::resilience`] adds a stack to a
//! `tower::ServiceBuilder`; `ServiceBuilder::new().layer(stack)` works as well.
//!
//! Use it when you want the usual stack without getting its order wrong; stack the layers by
//! hand (each stands alone) when you need something between them, or another order.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::BoxError;
//! use steadfast::bulkhead::BulkheadLayer;
//! use steadfast::circuit_breaker::{CircuitBreakerLayer, State};
//! use steadfast::fallback::FallbackLayer;
//! use steadfast::retry::RetryLayer;
//! use steadfast::stack::{ResilienceStack, ServiceBuilderExt};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let breaker = CircuitBreakerLayer::builder().failure_rate_threshold(0.5).build()?;
//!
//! // The setters may come in any order: the stack applies the layers in its own.
//! let stack = ResilienceStack::new()
//!     .circuit_breaker(breaker.clone())
//!     .attempt_timeout(Duration::from_millis(500))
//!     .retry(RetryLayer::builder().max_attempts(3).build()?) // 3 attempts = 2 retries
//!     .overall_timeout(Duration::from_secs(2))
//!     .bulkhead(BulkheadLayer::builder().max_concurrent_calls(64).build()?)
//!     .fallback(FallbackLayer::new(|_: BoxError| Ok(String::from("cached item"))));
//!
//! let backend = service_fn(|id: u32| async move { Ok::<_, BoxError>(format!("item {id}")) });
//! let mut service = ServiceBuilder::new().resilience(stack).service(backend);
//!
//! assert_eq!(service.ready().await?.call(7).await?, "item 7");
//! breaker.force_open();
//! assert_eq!(service.ready().await?.call(7).await?, "cached item");
//! assert_eq!(breaker.state(), State::ForcedOpen);
//! # Ok(())
//! # }
//! ```
//!
//! # The order
//!
//! This is the one place the crate explains its layer order; the crate docs and the guide link
//! here.
//!
//! Outermost first:
//!
//! ```text
//!  request
//!     │
//!  ┌──▼───────────────┐  sheds calls over a rate at once (server side: 429)
//!  │ rate limit       │
//!  ├──────────────────┤  sheds what the service cannot take at once, learnt from its latency
//!  │ adaptive limit   │
//!  ├──────────────────┤  answers from a function, or a backup service, when all else failed
//!  │ fallback         │
//!  ├──────────────────┤  re-sends failed attempts, within max_attempts and the retry budget
//!  │ retry (+ budget) │
//!  ├──────────────────┤  sends a copy of a slow attempt, first success wins (same budget type)
//!  │ hedge            │
//!  ├──────────────────┤  bounds one attempt through the breaker and the bulkhead
//!  │ overall timeout  │
//!  ├──────────────────┤  stops calling a service that keeps failing; fails fast while open
//!  │ circuit breaker  │
//!  ├──────────────────┤  caps concurrent calls so one slow dependency cannot take every thread
//!  │ bulkhead         │
//!  ├──────────────────┤  bounds the call to the service itself, so a hung call is cut and counted
//!  │ attempt timeout  │
//!  └──▼───────────────┘
//!   service (one backend, or a `pool::Pool` of its replicas)
//! ```
//!
//! - **The rate limit and the adaptive limit** come first, on a server: a call the service must
//!   not take is refused at once, before it costs a fallback, a retry or a permit, and the caller
//!   gets a clear 429 or 503 to back off on. (A client that respects an upstream quota, where
//!   every attempt must count, puts its `RateLimitLayer` by hand below retry instead.)
//!
//! - **Fallback** is outermost so that it sees every way the rest can fail.
//! - **Retry** sits outside the breaker, so a breaker that opens mid-retry stops the retries at
//!   once (a [`CircuitOpen`](crate::circuit_breaker::CircuitOpen) is never retried and costs no budget).
//!   It honours the current [`Deadline`](crate::deadline::Deadline): it never starts a backoff or an
//!   attempt that cannot finish in time.
//! - **The hedge** sits inside retry and outside the breaker: each attempt may be hedged, every
//!   hedge passes the breaker and the bulkhead (an open breaker stops hedges as it stops
//!   retries), and a call retry sees is the hedged attempt's one answer.
//! - **The overall timeout** bounds each attempt once it is sent, through the breaker and the
//!   bulkhead. (The wait for a bulkhead permit happens in `poll_ready`, which no timeout bounds:
//!   the bulkhead's own `max_wait` does.) For one deadline over all attempts and backoffs, set it
//!   where the request enters (an inbound `grpc-timeout`, or a
//!   [`TimeoutLayer`] outside retry): retry reads it and stops early
//!   rather than sleep into it.
//! - **The breaker** counts each attempt, so it sees the true failure rate of the service. An
//!   attempt cut by the attempt timeout below it counts as a failure; one cut by the overall
//!   timeout above it is dropped inside the breaker and not counted (see "The two timeouts").
//! - **The bulkhead** is inside the breaker, so calls rejected by an open breaker take no permit,
//!   and a full bulkhead (a local rejection) never trips the breaker.
//! - **The attempt timeout** is innermost: it bounds only the service, so a hung call is cut,
//!   counted by the breaker, and retried.
//! - **A pool** is the service itself, not a layer: the stack goes above it, and a per-replica
//!   attempt timeout goes inside each endpoint, so a slow replica is charged to that replica
//!   (see [`pool`](crate::pool)). Retry sends a retried call to a replica it has not tried.
//!
//! # The two timeouts
//!
//! - The **attempt timeout** is innermost: it bounds the call to the service itself, so a hung
//!   call is cut, counted as a failure by the breaker, and retried.
//! - The **overall timeout** sits between retry and the breaker: it bounds each attempt's call
//!   through the breaker, the bulkhead and the attempt timeout, and the attempt timeout inside it
//!   narrows its deadline, never widens it. An attempt it cuts is dropped inside the breaker, so
//!   the breaker does not count it: set an attempt timeout for the breaker to see hung calls.
//!   Like every timeout it covers `call`, not `poll_ready`, so the wait for a bulkhead permit
//!   (taken in `poll_ready`) is bounded by the bulkhead's `max_wait`, not by this timeout.
//!   It is inside retry, so it does not bound the backoffs either: for one deadline over every
//!   attempt, set one where the request enters (an inbound `grpc-timeout`, or a
//!   [`TimeoutLayer`] outside the stack); retry reads it and never starts an attempt or a
//!   backoff that cannot finish in time.
//!
//! When the overall deadline is the earlier one, it is the attempt timeout inside it that fires
//! first (it inherits that deadline), so the `Elapsed` and its event come from the attempt
//! timeout, with kind `deadline`.
//!
//! On a client, put [`PropagateDeadlineLayer`](crate::deadline::PropagateDeadlineLayer) (feature
//! `http`) *below* the stack, just above the transport: every attempt, retries included, then
//! writes the time left as it is sent. Above retry, the header would be written once and replayed
//! by every retry, too large.
//!
//! Each setter takes a [`Duration`] or a [`TimeoutLayer`] (see [`IntoTimeoutLayer`]). A
//! `Duration` becomes a [`TimeoutLayer`] named `"overall"` ([`OVERALL_TIMEOUT_NAME`]) or
//! `"attempt"` ([`ATTEMPT_TIMEOUT_NAME`]), so their events and metrics say which one fired;
//! pass a [`TimeoutLayer`] built with [`timeout::Builder::name`](crate::timeout::Builder::name)
//! for names of your own (several stacks, say).
//!
//! # Defaults
//!
//! Every layer is absent until its setter is called. An absent layer is
//! [`Identity`]: it leaves the service as it is and costs nothing, not
//! even a branch, because each setter changes one type parameter of the stack. The layers
//! themselves keep their own defaults (see each module).
//!
//! # Telemetry
//!
//! The stack emits nothing of its own: each layer emits its events and metrics, labelled with
//! the name it was built with.
//!
//! | layer | events and metrics | `name` label and event field |
//! |---|---|---|
//! | fallback | [`fallback`](crate::fallback#telemetry), `steadfast_fallback_*` | its `name(..)` |
//! | retry | [`retry`](crate::retry#telemetry), `steadfast_retry_*` | its builder's `name(..)` |
//! | overall timeout | [`timeout`](crate::timeout#telemetry), `steadfast_timeout_*` | `"overall"` if given a `Duration` |
//! | circuit breaker | [`circuit_breaker`](crate::circuit_breaker#telemetry), `steadfast_circuit_breaker_*` | its builder's `name(..)` |
//! | bulkhead | [`bulkhead`](crate::bulkhead#telemetry), `steadfast_bulkhead_*` | its builder's `name(..)` |
//! | attempt timeout | [`timeout`](crate::timeout#telemetry), `steadfast_timeout_*` | `"attempt"` if given a `Duration` |
//!
//! # Cancel safety
//!
//! Dropping the stack's response future drops every layer's future inside it, and each gives
//! back what it held (a bulkhead permit, a half-open probe slot); nothing is recorded as an
//! outcome. See each module.
//!
//! # Shared state
//!
//! The stack holds the layers you gave it. Cloning the stack clones them, and each layer keeps
//! its shared state (the breaker, the permits, the retry budget) in one `Arc` made when it was
//! built: every clone of the stack, every service its [`layer`](Layer::layer) makes, and the
//! layer you kept a clone of (to read the breaker's state, say) share it.
//!
//! # Errors
//!
//! The service's error is [`BoxError`](crate::BoxError) as soon as a layer that adds a way to
//! fail is present (a timeout, the breaker, the bulkhead, or the fallback, whose handler may
//! fail); with retry alone it is the inner service's error. The rejections keep their own types
//! to downcast ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen),
//! [`BulkheadFull`](crate::bulkhead::BulkheadFull), [`Elapsed`](crate::deadline::Elapsed)), and
//! the inner service's errors pass through boxed, never wrapped.
//!
//! # Readiness
//!
//! `poll_ready` goes down the layers in order; the bulkhead takes its permit there and the
//! breaker never fails it (see each module). Nothing is added between the layers.
//!
//! # Differences from `tower::ServiceBuilder`
//!
//! A `ServiceBuilder` applies layers in the order its methods are called; a [`ResilienceStack`]
//! applies them in one fixed order whatever the order of its setters, and each setter takes
//! only the layer that belongs in its place.

use std::fmt;
use std::time::Duration;

use tower::ServiceBuilder;
use tower_layer::{Identity, Layer, Stack};

use crate::bulkhead::BulkheadLayer;
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::fallback::FallbackLayer;
use crate::retry::RetryLayer;
use crate::timeout::TimeoutLayer;

/// The instance name of an overall timeout given to [`ResilienceStack::overall_timeout`] as a
/// [`Duration`]: `"overall"`.
pub const OVERALL_TIMEOUT_NAME: &str = "overall";

/// The instance name of an attempt timeout given to [`ResilienceStack::attempt_timeout`] as a
/// [`Duration`]: `"attempt"`.
pub const ATTEMPT_TIMEOUT_NAME: &str = "attempt";

/// Any subset of the crate's layers, applied as one [`Layer`] in the recommended order; see the
/// [module docs](self).
///
/// The type parameters are the layers in their places: `F` the fallback, `R` retry, `O` the
/// overall timeout, `C` the circuit breaker, `B` the bulkhead, `A` the attempt timeout, then the
/// second wave's, added at the end so that the first six keep their positions: `RL` the rate
/// limit and `AL` the adaptive limit (outermost, before the fallback), `HG` the hedge (between
/// retry and the overall timeout). Each is [`Identity`] (nothing) until its setter replaces it;
/// you rarely need to name them.
///
/// The stack is its own builder: the layers it takes are already built and validated, so there
/// is no `build()` step, and it can be cloned and applied as often as you like.
#[derive(Clone)]
pub struct ResilienceStack<
    F = Identity,
    R = Identity,
    O = Identity,
    C = Identity,
    B = Identity,
    A = Identity,
    RL = Identity,
    AL = Identity,
    HG = Identity,
> {
    fallback: F,
    retry: R,
    overall_timeout: O,
    circuit_breaker: C,
    bulkhead: B,
    attempt_timeout: A,
    rate_limit: RL,
    adaptive_limit: AL,
    hedge: HG,
}

impl ResilienceStack {
    /// An empty stack: every layer absent. Add layers with the setters, in any order.
    pub fn new() -> Self {
        Self::default()
    }

    /// The old name of [`new`](Self::new), which says better what it returns: the stack
    /// itself, not a builder.
    #[deprecated(note = "renamed to `ResilienceStack::new()`")]
    pub fn builder() -> Self {
        Self::new()
    }
}

impl Default for ResilienceStack {
    fn default() -> Self {
        Self {
            fallback: Identity::new(),
            retry: Identity::new(),
            overall_timeout: Identity::new(),
            circuit_breaker: Identity::new(),
            bulkhead: Identity::new(),
            attempt_timeout: Identity::new(),
            rate_limit: Identity::new(),
            adaptive_limit: Identity::new(),
            hedge: Identity::new(),
        }
    }
}

// Each setter returns the stack with one type parameter changed, spelled out.
#[allow(clippy::type_complexity)]
impl<F, R, O, C, B, A, RL, AL, HG> ResilienceStack<F, R, O, C, B, A, RL, AL, HG> {
    /// The outermost layer: answers from a function, or fails over to a backup service, when the
    /// rest of the stack fails. It sees every way the rest can fail, rejections included.
    ///
    /// Replaces any fallback set before. Defaults to none.
    pub fn fallback<H, P>(
        self,
        layer: FallbackLayer<H, P>,
    ) -> ResilienceStack<FallbackLayer<H, P>, R, O, C, B, A, RL, AL, HG> {
        ResilienceStack {
            fallback: layer,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }

    /// Retry, with its budget, inside the fallback and outside everything else: a breaker that
    /// opens mid-retry stops the retries at once, and a local rejection costs no budget.
    ///
    /// Replaces any retry layer set before. Defaults to none.
    pub fn retry<P, H, M>(
        self,
        layer: RetryLayer<P, H, M>,
    ) -> ResilienceStack<F, RetryLayer<P, H, M>, O, C, B, A, RL, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: layer,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }

    /// The overall timeout, inside retry and outside the breaker: it bounds each attempt's call
    /// through the rest of the stack, but neither the backoffs nor the wait for a bulkhead
    /// permit (see [the two timeouts](self#the-two-timeouts)). A [`Duration`] becomes a
    /// [`TimeoutLayer`] named [`OVERALL_TIMEOUT_NAME`].
    ///
    /// Replaces any overall timeout set before. Defaults to none.
    pub fn overall_timeout(
        self,
        timeout: impl IntoTimeoutLayer,
    ) -> ResilienceStack<F, R, TimeoutLayer, C, B, A, RL, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: timeout.into_timeout_layer(OVERALL_TIMEOUT_NAME),
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }

    /// The circuit breaker, inside the overall timeout and outside the bulkhead: it counts each
    /// attempt (a timed-out one as a failure), calls it rejects take no bulkhead permit, and a
    /// full bulkhead never trips it.
    ///
    /// Keep a clone of `layer` to read the breaker's state: clones share one breaker.
    /// Replaces any breaker set before. Defaults to none.
    pub fn circuit_breaker<K>(
        self,
        layer: CircuitBreakerLayer<K>,
    ) -> ResilienceStack<F, R, O, CircuitBreakerLayer<K>, B, A, RL, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: layer,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }

    /// The bulkhead, inside the breaker and outside the attempt timeout: it caps the calls in
    /// flight to the service.
    ///
    /// Replaces any bulkhead set before. Defaults to none.
    pub fn bulkhead(
        self,
        layer: BulkheadLayer,
    ) -> ResilienceStack<F, R, O, C, BulkheadLayer, A, RL, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: layer,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }

    /// The per-attempt timeout, innermost: it bounds only the call to the service, so a hung
    /// call is cut, counted by the breaker and retried (see
    /// [the two timeouts](self#the-two-timeouts)). A [`Duration`] becomes a [`TimeoutLayer`]
    /// named [`ATTEMPT_TIMEOUT_NAME`].
    ///
    /// Replaces any attempt timeout set before. Defaults to none.
    pub fn attempt_timeout(
        self,
        timeout: impl IntoTimeoutLayer,
    ) -> ResilienceStack<F, R, O, C, B, TimeoutLayer, RL, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: timeout.into_timeout_layer(ATTEMPT_TIMEOUT_NAME),
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }
    /// The rate limit, outermost: a call over the limit is answered at once with
    /// [`RateLimited`](crate::rate_limit::RateLimited), before the fallback, so that a shed call
    /// costs nothing and the caller gets a 429 (with the `http` mapping), not a degraded answer.
    /// This is the server side's place. For a client that respects an upstream quota, where
    /// every attempt must count, put a `RateLimitLayer` by hand below retry instead.
    ///
    /// Replaces any rate limit set before. Defaults to none.
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit(
        self,
        layer: crate::rate_limit::RateLimitLayer,
    ) -> ResilienceStack<F, R, O, C, B, A, crate::rate_limit::RateLimitLayer, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: layer,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }

    /// The adaptive concurrency limit, inside the rate limit and outside the fallback: it sheds
    /// what the service cannot take at once with
    /// [`LimitExceeded`](crate::limit::LimitExceeded), and times whole calls (retries and
    /// backoffs included), which is what a server's caller waits for.
    ///
    /// Replaces any adaptive limit set before. Defaults to none.
    #[cfg(feature = "limit")]
    pub fn adaptive_limit<K>(
        self,
        layer: crate::limit::AdaptiveLimitLayer<K>,
    ) -> ResilienceStack<F, R, O, C, B, A, RL, crate::limit::AdaptiveLimitLayer<K>, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: layer,
            hedge: self.hedge,
        }
    }

    /// Hedged requests, inside retry and outside the overall timeout: each attempt retry makes
    /// may be hedged, each hedge goes through the breaker and the bulkhead (so an open breaker
    /// stops the hedges too) and gets its own overall timeout, and a hedge that fails is not
    /// retried twice over.
    ///
    /// Replaces any hedge set before. Defaults to none.
    #[cfg(feature = "hedge")]
    pub fn hedge<P>(
        self,
        layer: crate::hedge::HedgeLayer<P>,
    ) -> ResilienceStack<F, R, O, C, B, A, RL, AL, crate::hedge::HedgeLayer<P>> {
        ResilienceStack {
            fallback: self.fallback,
            retry: self.retry,
            overall_timeout: self.overall_timeout,
            circuit_breaker: self.circuit_breaker,
            bulkhead: self.bulkhead,
            attempt_timeout: self.attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: layer,
        }
    }
}

impl<F, R, O, C, B, A, RL, AL, HG> ResilienceStack<F, R, O, C, B, A, RL, AL, HG> {
    /// Replaces every layer but the fallback at once: for a stack whose layers are chosen at run
    /// time, from a configuration file's sections.
    #[cfg(feature = "serde")]
    pub(crate) fn with_parts<R2, O2, C2, B2, A2>(
        self,
        retry: R2,
        overall_timeout: O2,
        circuit_breaker: C2,
        bulkhead: B2,
        attempt_timeout: A2,
    ) -> ResilienceStack<F, R2, O2, C2, B2, A2, RL, AL, HG> {
        ResilienceStack {
            fallback: self.fallback,
            retry,
            overall_timeout,
            circuit_breaker,
            bulkhead,
            attempt_timeout,
            rate_limit: self.rate_limit,
            adaptive_limit: self.adaptive_limit,
            hedge: self.hedge,
        }
    }
}

impl<S, F, R, O, C, B, A, RL, AL, HG> Layer<S> for ResilienceStack<F, R, O, C, B, A, RL, AL, HG>
where
    A: Layer<S>,
    B: Layer<A::Service>,
    C: Layer<B::Service>,
    O: Layer<C::Service>,
    HG: Layer<O::Service>,
    R: Layer<HG::Service>,
    F: Layer<R::Service>,
    AL: Layer<F::Service>,
    RL: Layer<AL::Service>,
{
    type Service = RL::Service;

    fn layer(&self, service: S) -> Self::Service {
        // Innermost first.
        let service = self.attempt_timeout.layer(service);
        let service = self.bulkhead.layer(service);
        let service = self.circuit_breaker.layer(service);
        let service = self.overall_timeout.layer(service);
        let service = self.hedge.layer(service);
        let service = self.retry.layer(service);
        let service = self.fallback.layer(service);
        let service = self.adaptive_limit.layer(service);
        self.rate_limit.layer(service)
    }
}

impl<F, R, O, C, B, A, RL, AL, HG> fmt::Debug for ResilienceStack<F, R, O, C, B, A, RL, AL, HG>
where
    RL: fmt::Debug,
    AL: fmt::Debug,
    HG: fmt::Debug,
    F: fmt::Debug,
    R: fmt::Debug,
    O: fmt::Debug,
    C: fmt::Debug,
    B: fmt::Debug,
    A: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Outermost first, as the layers apply.
        f.debug_struct("ResilienceStack")
            .field("rate_limit", &self.rate_limit)
            .field("adaptive_limit", &self.adaptive_limit)
            .field("fallback", &self.fallback)
            .field("retry", &self.retry)
            .field("hedge", &self.hedge)
            .field("overall_timeout", &self.overall_timeout)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("bulkhead", &self.bulkhead)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

/// What [`ResilienceStack::overall_timeout`] and [`ResilienceStack::attempt_timeout`] take: a
/// [`Duration`] or a [`TimeoutLayer`].
///
/// Sealed: implemented only by this crate.
pub trait IntoTimeoutLayer: sealed::Sealed {
    /// The layer: `self` if it is one, else a [`TimeoutLayer`] of `self` named `name`.
    fn into_timeout_layer(self, name: &'static str) -> TimeoutLayer;
}

impl IntoTimeoutLayer for Duration {
    fn into_timeout_layer(self, name: &'static str) -> TimeoutLayer {
        // As `TimeoutLayer::new`, which takes any duration (zero: every call fails at once).
        TimeoutLayer::from_parts(self, false, name)
    }
}

impl IntoTimeoutLayer for TimeoutLayer {
    fn into_timeout_layer(self, _name: &'static str) -> TimeoutLayer {
        self
    }
}

/// Adds a [`ResilienceStack`] to a [`tower::ServiceBuilder`].
///
/// Sealed: implemented only for `ServiceBuilder`. Import it to call
/// [`resilience`](Self::resilience) on a builder.
///
/// ```
/// use std::time::Duration;
/// use steadfast::stack::{ResilienceStack, ServiceBuilderExt};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::BoxError> {
/// let service = ServiceBuilder::new()
///     .resilience(ResilienceStack::new().attempt_timeout(Duration::from_secs(1)))
///     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
/// assert_eq!(service.oneshot(1).await?, 2);
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Adds `stack` below the layers added so far (and above those added after), as one layer.
    /// Same as `.layer(stack)`.
    #[allow(clippy::type_complexity)] // `ServiceBuilder::layer`'s own return type, spelled out.
    fn resilience<F, R, O, C, B, A, RL, AL, HG>(
        self,
        stack: ResilienceStack<F, R, O, C, B, A, RL, AL, HG>,
    ) -> ServiceBuilder<Stack<ResilienceStack<F, R, O, C, B, A, RL, AL, HG>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[allow(clippy::type_complexity)]
    fn resilience<F, R, O, C, B, A, RL, AL, HG>(
        self,
        stack: ResilienceStack<F, R, O, C, B, A, RL, AL, HG>,
    ) -> ServiceBuilder<Stack<ResilienceStack<F, R, O, C, B, A, RL, AL, HG>, L>> {
        self.layer(stack)
    }
}

mod sealed {
    /// Keeps the traits of this module implemented only by this crate.
    pub trait Sealed {}

    impl Sealed for std::time::Duration {}
    impl Sealed for crate::timeout::TimeoutLayer {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}
