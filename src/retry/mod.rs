//! Retries failed requests with backoff, within a shared retry budget and the deadline.
//!
//! Use it around a dependency whose failures are often transient (a restarted pod, a dropped
//! connection, a server shedding load). Each call makes at most `max_attempts` attempts
//! (3 attempts = 2 retries), waits a [`Backoff`] between them, draws each retry from a
//! [`RetryBudget`] shared by every service the layer makes (so an outage does not multiply
//! the load), never starts a backoff or an attempt that cannot finish before the current
//! [`Deadline`](crate::deadline::Deadline), and never retries this crate's local rejections.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use steadfast::retry::{Backoff, Jitter, RetryLayer};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = RetryLayer::builder()
//!     .max_attempts(3) // 3 attempts = 2 retries
//!     .backoff(
//!         Backoff::exponential(Duration::from_millis(50))
//!             .jitter(Jitter::Full)
//!             .max_delay(Duration::from_secs(1)),
//!     )
//!     .build()?;
//!
//! // A service that fails twice, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&calls);
//! let service = service_fn(move |name: &'static str| {
//!     let n = counter.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n < 2 { Err("unavailable") } else { Ok(format!("hello, {name}")) }
//!     }
//! });
//!
//! let mut service = layer.layer(service);
//! let answer = service.ready().await?.call("world").await?;
//! assert_eq!(answer, "hello, world");
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # Ok(())
//! # }
//! ```
//!
//! For HTTP, retry only what is safe and honour `Retry-After`, with a replay buffer so bodies
//! need not be `Clone` (feature `http`): `.policy(HttpPolicy::new()).replay_body(64 * 1024)`;
//! for gRPC, `.policy(GrpcPolicy::new())` (see [`HttpPolicy`] and [`GrpcPolicy`]).
//!
//! # Defaults
//!
//! | setting | default | constant |
//! |---|---|---|
//! | `max_attempts` | 3 (2 retries) | [`DEFAULT_MAX_ATTEMPTS`] |
//! | `backoff` | exponential from 100 ms, ×2, full jitter, at most 10 s | [`DEFAULT_BACKOFF`] |
//! | `budget` | 0.2 retries per request + 10/s over 10 s | [`DEFAULT_BUDGET`] |
//! | `min_attempt_time` | 10 ms | [`DEFAULT_MIN_ATTEMPT_TIME`] |
//! | `policy` | retry every `Err` ([`RetryErrors`]) | — |
//! | `retry_rejections` | `false` | — |
//! | requests | cloned ([`CloneRequest`]) | — |
//! | `name` | `"default"` | [`DEFAULT_NAME`] |
//!
//! # Telemetry
//!
//! | kind | name | labels / fields | when |
//! |---|---|---|---|
//! | `debug!` event | `retrying` | `retry.name`, `retry.attempt` (the attempt about to be made), `retry.max_attempts`, `retry.delay_ms`, `retry.cause` (`error` or `response`) | a retry is scheduled |
//! | `debug!` event | `retry skipped: …` | `retry.name`, `retry.attempt`, `retry.outcome` (`deadline` or `budget_exhausted`), `retry.delay_ms`, `retry.remaining_ms` | the deadline or the budget stopped a retry when it was to be scheduled |
//! | `debug!` event | `retry abandoned: …` | `retry.name`, `retry.attempt`, `retry.remaining_ms` | after the backoff, the deadline came too close or the body can no longer be replayed |
//! | `info!` event | `retry reconfigured` | `retry.name`, `retry.max_attempts` | `reconfigure` applied a config (feature `serde`) |
//! | counter | `steadfast_retry_attempts_total` | `name`, `outcome` = `accepted`, `retried`, `exhausted`, `budget_exhausted`, `deadline`, `not_retryable` | each attempt, when judged |
//! | counter | `steadfast_retry_budget_exhausted_total` | `name` | a retry refused by the budget |
//! | hook | [`OnRetry`] | attempt, delay, cause | a retry is scheduled |
//!
//! Counters need the `metrics` feature; their handles are registered when the layer is built.
//!
//! # Budget
//!
//! The [`RetryBudget`] is created by `build()` and shared by every clone of the layer and every
//! service its `layer()` makes. Each call deposits into it (one relaxed atomic add); each retry
//! withdraws one token when it is scheduled, and gets it back if it is never sent (the future
//! was dropped during the backoff, or the deadline came too close). Local rejections
//! ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen),
//! [`BulkheadFull`](crate::bulkhead::BulkheadFull)) are not retried and cost nothing.
//!
//! # Deadline
//!
//! With a current [`Deadline`](crate::deadline::Deadline) (set by an enclosing
//! `TimeoutLayer`), a retry is scheduled only if its delay ends with at least
//! `min_attempt_time` (and more than zero) left before the deadline; after the backoff and the
//! readiness wait, the check is made again. Otherwise the last result is returned. A server's
//! pushback (`Retry-After`, `grpc-retry-pushback-ms`) replaces the backoff delay, capped by
//! `max_delay`, under the same rule.
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's. The first attempt is sent on the service that was
//! polled ready. Retries go through a clone made when the first retry is due, from a replica of
//! the inner service that the layer kept when it wrapped it (behind a lock taken only then), and
//! that clone is polled ready again before each retry. A call that needs no retry clones
//! nothing: in a full stack that saves the clone of every layer below retry, each with its own
//! reference counts, on every call.
//!
//! # Cancel safety
//!
//! Dropping the response future drops the attempt in flight or the backoff sleep, and gives
//! back the budget of a retry that was scheduled but not yet sent.
//!
//! # Errors
//!
//! Retry adds no way to fail: the error is the inner service's own, unwrapped (the last
//! attempt's), and so is the response of an attempt the policy would have retried.
//!
//! # Differences from `tower::retry`
//!
//! - A budget is on by default and shared across every service the layer makes; tower's
//!   `Policy` must bring its own.
//! - Backoff, jitter, attempt counting, deadlines and pushback are built in rather than
//!   written in a `Policy`; the [`RetryPolicy`] here only says what is retryable.
//! - Requests that are not `Clone` (HTTP bodies) are replayed from a bounded buffer.
//! - Local rejections are never retried (unless asked).

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

mod backoff;
mod budget;
mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod future;
#[cfg(feature = "http")]
mod http;
mod layer;
mod policy;
pub(crate) mod replay;
pub(crate) mod state;
mod telemetry;

pub use self::backoff::{Backoff, Jitter};
pub use self::budget::{RetryBudget, SharedBudget};
pub use self::config::{
    Builder, DEFAULT_BACKOFF, DEFAULT_BUDGET, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DELAY,
    DEFAULT_MIN_ATTEMPT_TIME, DEFAULT_NAME, MAX_MAX_ATTEMPTS,
};
#[cfg(feature = "serde")]
pub use self::config_file::Config;
#[cfg(all(feature = "serde", feature = "hedge"))]
pub(crate) use self::config_file::deserialize_budget_with;
#[cfg(feature = "http")]
pub use self::http::{
    DEFAULT_RETRY_GRPC_CODES, DEFAULT_RETRY_STATUSES, GrpcPolicy, HttpPolicy, Pushback,
    parse_grpc_pushback, parse_retry_after,
};
pub use self::layer::RetryLayer;
pub use self::policy::{Decision, OnRetry, RetryErrors, RetryPolicy};
#[cfg(feature = "http")]
pub use self::replay::{BufferBody, Recorded, ReplayBody};
pub use self::replay::{CloneRequest, Resend};

use self::config::RetryCore;
use self::future::{ResponseFuture, Retrying, ServiceShared};
use self::policy::RetryErrors as DefaultPolicy;
use crate::sync::Arc;

/// Retries a failed request to the inner service `S`; made by [`RetryLayer`].
///
/// Clones share the layer's budget and configuration, and the replica of the inner service
/// that retries are cloned from (see [Readiness](self#readiness)).
pub struct Retry<S, P = DefaultPolicy, H = (), M = CloneRequest> {
    inner: S,
    /// The layer's configuration and the replica retries are cloned from: one per `layer()`,
    /// shared by clones and held by every future.
    shared: Arc<ServiceShared<S, P, H, M>>,
}

impl<S: Clone, P, H, M> Retry<S, P, H, M> {
    pub(crate) fn from_shared(inner: S, shared: Arc<RetryCore<P, H, M>>) -> Self {
        Self {
            shared: Arc::new(ServiceShared::new(shared, inner.clone())),
            inner,
        }
    }
}

impl<S, P, H, M> Retry<S, P, H, M> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// Retries go through clones of the replica kept when the layer wrapped the service, so a
    /// change made here reaches first attempts only.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the retry.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P, H, M> Clone for Retry<S, P, H, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, P, H, M> fmt::Debug for Retry<S, P, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, Req, P, H, M> Service<Req> for Retry<S, P, H, M>
where
    M: Resend<Req>,
    S: Service<M::Sent> + Clone,
    S::Error: 'static,
    P: RetryPolicy<Req, S::Response, S::Error>,
    H: OnRetry<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<Req, S, P, H, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let shared = self.shared.config();
        shared.budget.deposit();
        if shared.max_attempts() > 1 && shared.policy.is_retryable_request(&request) {
            let (sent, kept) = shared.resend.first(request);
            // The first attempt goes to the service that was polled ready; a retry, to a clone
            // of the replica, made when it is due.
            #[cfg(not(feature = "pool"))]
            let (future, retrying) = (self.inner.call(sent), Retrying::new(kept));
            #[cfg(feature = "pool")]
            let (future, retrying) = {
                // Note which replica the first attempt went to, so a retry avoids it.
                let mut tried = 0;
                let future = crate::tried::scope(&mut tried, || self.inner.call(sent));
                (future, Retrying::new(kept).with_tried(tried))
            };
            ResponseFuture::new(future, Some(retrying), Arc::clone(&self.shared))
        } else {
            let future = self.inner.call(shared.resend.once(request));
            ResponseFuture::new(future, None, Arc::clone(&self.shared))
        }
    }
}

#[cfg(test)]
mod tests;
