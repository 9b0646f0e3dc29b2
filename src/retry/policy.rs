//! What is retried: [`RetryPolicy`], and the [`OnRetry`] hook.

use std::time::Duration;

/// What to do with one attempt's result, as judged by a [`RetryPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// Return this result to the caller.
    Accept,
    /// Retry after the [`Backoff`](super::Backoff)'s delay.
    Retry,
    /// Retry after this delay instead of the backoff's: the server's pushback
    /// (`Retry-After`, `grpc-retry-pushback-ms`). Still capped by `max_delay` and the deadline.
    RetryAfter(Duration),
}

/// Decides which requests may be retried and which results call for a retry.
///
/// Implemented by [`RetryErrors`] (the default), by closures
/// `Fn(&Result<Res, E>) -> bool` (`true`: retry), and with the `http` feature by
/// [`HttpPolicy`](super::HttpPolicy) and [`GrpcPolicy`](super::GrpcPolicy).
///
/// Whatever the policy, the layer does not retry this crate's local rejections
/// ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen),
/// [`BulkheadFull`](crate::bulkhead::BulkheadFull)) unless the builder's `retry_rejections(true)`
/// says so; the policy is not asked about them.
pub trait RetryPolicy<Req, Res, E> {
    /// Whether `request` may be retried at all; asked once per call, before the first attempt.
    /// A request that may not be retried is sent once and costs no clone. Defaults to `true`.
    fn is_retryable_request(&self, request: &Req) -> bool {
        let _ = request;
        true
    }

    /// Judges one attempt's result.
    fn decide(&self, result: &Result<Res, E>) -> Decision;
}

impl<F, Req, Res, E> RetryPolicy<Req, Res, E> for F
where
    F: Fn(&Result<Res, E>) -> bool,
{
    fn decide(&self, result: &Result<Res, E>) -> Decision {
        if self(result) {
            Decision::Retry
        } else {
            Decision::Accept
        }
    }
}

/// The default policy: retry every `Err`, accept every `Ok`.
///
/// This crate's local rejections are not retried (see [`RetryPolicy`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryErrors {
    _priv: (),
}

impl RetryErrors {
    /// The default policy.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<Req, Res, E> RetryPolicy<Req, Res, E> for RetryErrors {
    fn decide(&self, result: &Result<Res, E>) -> Decision {
        match result {
            Ok(_) => Decision::Accept,
            Err(_) => Decision::Retry,
        }
    }
}

/// A hook called before each retry, for users who want their own telemetry.
///
/// Implemented by `()` (nothing, the default) and by closures
/// `Fn(u32, Duration, &Result<Res, E>)`, called with the number of the attempt about to be made
/// (2 for the first retry: "3 attempts = 2 retries"), the delay before it, and the result that
/// caused it.
pub trait OnRetry<Res, E> {
    /// Called once per retry, when it is scheduled (before the backoff).
    fn on_retry(&self, attempt: u32, delay: Duration, cause: &Result<Res, E>);
}

impl<Res, E> OnRetry<Res, E> for () {
    #[inline]
    fn on_retry(&self, _attempt: u32, _delay: Duration, _cause: &Result<Res, E>) {}
}

impl<F, Res, E> OnRetry<Res, E> for F
where
    F: Fn(u32, Duration, &Result<Res, E>),
{
    fn on_retry(&self, attempt: u32, delay: Duration, cause: &Result<Res, E>) {
        self(attempt, delay, cause)
    }
}
