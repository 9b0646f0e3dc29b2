//! The one place that knows which errors are this crate's: [`Rejection::classify`].
//!
//! Every consumer asks here and nowhere else: retry (never retry a local rejection, never
//! charge it to the budget), the classifiers (never count one against a service), the
//! fallback's predicates, and the HTTP and gRPC mappings. An error is looked up by type, the
//! error itself first and then each error of its [`source`](Error::source) chain in turn
//! (one walk, `chain`), so a rejection wrapped in another error is still found; the first one found
//! decides.
//!
//! A new rejection joins by one variant here and one line in [`Rejection::classify`]; the
//! `match`es below then make the compiler point at every other fact it needs (its label,
//! whether it is local, its hint, its status in [`http`](crate::http) and
//! [`grpc`](crate::grpc)).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::{BoxError, Rejection, is_rejection};
//! use steadfast::circuit_breaker::CircuitBreakerLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let breaker = CircuitBreakerLayer::builder().build()?;
//! breaker.force_open();
//! let service = breaker.layer(service_fn(|()| async { Ok::<_, BoxError>(()) }));
//!
//! let error = service.oneshot(()).await.unwrap_err();
//! let rejection = Rejection::classify(&*error);
//! assert_eq!(rejection.kind(), "circuit_open");
//! assert_eq!(rejection.retry_after(), Some(Duration::from_secs(30)));
//! assert!(is_rejection(&*error));
//!
//! let other: BoxError = "connection reset".into();
//! assert!(Rejection::classify(&*other).is_other());
//! assert!(!is_rejection(&*other));
//! # Ok(())
//! # }
//! ```

use std::error::Error;
use std::time::Duration;

#[cfg(feature = "bulkhead")]
use crate::bulkhead::BulkheadFull;
#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::CircuitOpen;
use crate::deadline::Elapsed;
#[cfg(feature = "limit")]
use crate::limit::LimitExceeded;
#[cfg(feature = "pool")]
use crate::pool::NoEndpointAvailable;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::RateLimited;

/// What an error is to this crate: one of its rejections (or a timeout), or another error.
///
/// More kinds come with new layers, hence `#[non_exhaustive]`; the variants present depend on
/// the enabled features.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// An open (or forced-open, or saturated half-open) circuit breaker.
    #[cfg(feature = "circuit-breaker")]
    CircuitOpen(&'a CircuitOpen),
    /// A bulkhead with no free permit.
    #[cfg(feature = "bulkhead")]
    BulkheadFull(&'a BulkheadFull),
    /// A deadline passed: a timeout fired during the call, or the deadline had passed before it
    /// was made ([`Elapsed::before_call`]).
    Elapsed(&'a Elapsed),
    /// A replica pool with no endpoint that could take the call.
    #[cfg(feature = "pool")]
    NoEndpointAvailable(&'a NoEndpointAvailable),
    /// An adaptive concurrency limit that shed the call.
    #[cfg(feature = "limit")]
    LimitExceeded(&'a LimitExceeded),
    /// A rate limiter that allows no call now (nor within its `max_wait`).
    #[cfg(feature = "rate-limit")]
    RateLimited(&'a RateLimited),
    /// Any other error: the one that was classified (the outermost).
    Other(&'a (dyn Error + 'static)),
}

impl<'a> Rejection<'a> {
    /// Classifies `error`: the error itself, then each of its [`source`](Error::source)s in turn, is checked for
    /// one of this crate's errors; the first found is the answer. With none in the chain, it is
    /// [`Rejection::Other`] of `error`.
    pub fn classify(error: &'a (dyn Error + 'static)) -> Self {
        chain(error)
            .find_map(Self::of)
            .unwrap_or(Self::Other(error))
    }

    /// `error` itself, without looking at its sources.
    pub(crate) fn of(error: &'a (dyn Error + 'static)) -> Option<Self> {
        #[cfg(feature = "circuit-breaker")]
        if let Some(open) = error.downcast_ref() {
            return Some(Self::CircuitOpen(open));
        }
        #[cfg(feature = "bulkhead")]
        if let Some(full) = error.downcast_ref() {
            return Some(Self::BulkheadFull(full));
        }
        if let Some(elapsed) = error.downcast_ref() {
            return Some(Self::Elapsed(elapsed));
        }
        #[cfg(feature = "pool")]
        if let Some(none) = error.downcast_ref() {
            return Some(Self::NoEndpointAvailable(none));
        }
        #[cfg(feature = "limit")]
        if let Some(shed) = error.downcast_ref() {
            return Some(Self::LimitExceeded(shed));
        }
        #[cfg(feature = "rate-limit")]
        if let Some(limited) = error.downcast_ref() {
            return Some(Self::RateLimited(limited));
        }
        None
    }

    /// A label for logs and metrics: `circuit_open`, `bulkhead_full`, `timeout`,
    /// `no_endpoint_available`, `limit_exceeded`, `rate_limited` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Self::CircuitOpen(_) => "circuit_open",
            #[cfg(feature = "bulkhead")]
            Self::BulkheadFull(_) => "bulkhead_full",
            Self::Elapsed(_) => "timeout",
            #[cfg(feature = "pool")]
            Self::NoEndpointAvailable(_) => "no_endpoint_available",
            #[cfg(feature = "limit")]
            Self::LimitExceeded(_) => "limit_exceeded",
            #[cfg(feature = "rate-limit")]
            Self::RateLimited(_) => "rate_limited",
            Self::Other(_) => "other",
        }
    }

    /// The error that was recognized (for [`Rejection::Other`], the classified error itself).
    pub fn error(&self) -> &'a (dyn Error + 'static) {
        match *self {
            #[cfg(feature = "circuit-breaker")]
            Self::CircuitOpen(open) => open,
            #[cfg(feature = "bulkhead")]
            Self::BulkheadFull(full) => full,
            Self::Elapsed(elapsed) => elapsed,
            #[cfg(feature = "pool")]
            Self::NoEndpointAvailable(none) => none,
            #[cfg(feature = "limit")]
            Self::LimitExceeded(shed) => shed,
            #[cfg(feature = "rate-limit")]
            Self::RateLimited(limited) => limited,
            Self::Other(error) => error,
        }
    }

    /// Whether the request never left this process: a *local* rejection.
    ///
    /// Such an error says nothing about the health of the service behind it, so retry does not
    /// retry it and spends no budget on it, and a circuit breaker, an outlier detector or an
    /// adaptive limit above it does not count it as a failure (otherwise callers that arrive
    /// with no time left would open a breaker to a healthy service). A timeout that fired
    /// during the call is not local: the service was slow.
    pub fn is_local(&self) -> bool {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Self::CircuitOpen(_) => true,
            #[cfg(feature = "bulkhead")]
            Self::BulkheadFull(_) => true,
            Self::Elapsed(elapsed) => elapsed.before_call(),
            #[cfg(feature = "pool")]
            Self::NoEndpointAvailable(_) => true,
            #[cfg(feature = "limit")]
            Self::LimitExceeded(_) => true,
            #[cfg(feature = "rate-limit")]
            Self::RateLimited(_) => true,
            Self::Other(_) => false,
        }
    }

    /// Whether this is [`Rejection::Other`]: none of this crate's errors.
    pub fn is_other(&self) -> bool {
        matches!(self, Self::Other(_))
    }

    /// When the rejecting layer expects to let calls through again, where it knows: an open
    /// breaker's [`retry_after`](crate::circuit_breaker::CircuitOpen::retry_after). The source
    /// of `Retry-After` and `grpc-retry-pushback-ms`; a rate limiter's
    /// [`retry_after`](crate::rate_limit::RateLimited::retry_after) too.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Self::CircuitOpen(open) => Some(open.retry_after()),
            #[cfg(feature = "rate-limit")]
            Self::RateLimited(limited) => Some(limited.retry_after()),
            _ => None,
        }
    }
}

/// `error` and then each of its [`source`](Error::source)s in turn: the one way this crate
/// walks an error.
pub(crate) fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&error| error.source())
}

/// Whether `error` is one of this crate's *local* rejections, itself or anywhere in its
/// [`source`](Error::source) chain: see [`Rejection::is_local`].
///
/// True for an open circuit breaker ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen)), a
/// full bulkhead ([`BulkheadFull`](crate::bulkhead::BulkheadFull)), and a deadline that had
/// already passed when the call was made ([`Elapsed`] with
/// [`before_call`](Elapsed::before_call)), and for the rejections of the replica pool, the
/// adaptive limit and the rate limiter (`NoEndpointAvailable`, `LimitExceeded`, `RateLimited`).
pub fn is_rejection(error: &(dyn Error + 'static)) -> bool {
    Rejection::classify(error).is_local()
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use std::fmt;

    use super::*;
    use crate::BoxError;

    /// An error that wraps another as its source, as a client library's error would.
    #[derive(Debug)]
    struct Wrapper(BoxError);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn wrapped(error: impl Error + Send + Sync + 'static) -> BoxError {
        Box::new(Wrapper(Box::new(Wrapper(Box::new(error)))))
    }

    #[test]
    fn a_passed_deadline_is_local_only_before_the_call() {
        assert!(is_rejection(&Elapsed::inherited_deadline().not_sent()));
        assert!(!is_rejection(&Elapsed::timeout()));
        assert!(is_rejection(&*wrapped(Elapsed::timeout().not_sent())));
        assert_eq!(
            Rejection::classify(&*wrapped(Elapsed::timeout())).kind(),
            "timeout"
        );
    }

    #[cfg(feature = "circuit-breaker")]
    #[test]
    fn an_open_breaker_is_found_under_two_wrappers() {
        use crate::circuit_breaker::State;
        let error = wrapped(CircuitOpen::new(State::Open, Duration::from_secs(3)));
        let rejection = Rejection::classify(&*error);
        assert_eq!(rejection.kind(), "circuit_open");
        assert!(rejection.is_local());
        assert_eq!(rejection.retry_after(), Some(Duration::from_secs(3)));
        assert!(rejection.error().is::<CircuitOpen>());
    }

    #[cfg(feature = "bulkhead")]
    #[test]
    fn a_full_bulkhead_is_found_under_two_wrappers() {
        let error = wrapped(BulkheadFull::new(1, Duration::ZERO));
        assert!(is_rejection(&*error));
        assert_eq!(Rejection::classify(&*error).retry_after(), None);
    }

    #[cfg(feature = "pool")]
    #[test]
    fn no_endpoint_is_found_under_two_wrappers() {
        let error = wrapped(NoEndpointAvailable::new(3));
        let rejection = Rejection::classify(&*error);
        assert_eq!(rejection.kind(), "no_endpoint_available");
        assert!(rejection.is_local());
    }

    #[cfg(feature = "limit")]
    #[test]
    fn a_shed_call_is_found_under_two_wrappers() {
        let error = wrapped(LimitExceeded::new(20));
        let rejection = Rejection::classify(&*error);
        assert_eq!(rejection.kind(), "limit_exceeded");
        assert!(rejection.is_local());
    }

    #[cfg(feature = "rate-limit")]
    #[test]
    fn a_rate_limited_call_is_found_with_its_hint() {
        let error = wrapped(RateLimited::new(Duration::from_millis(1500)));
        let rejection = Rejection::classify(&*error);
        assert_eq!(rejection.kind(), "rate_limited");
        assert!(rejection.is_local());
        assert_eq!(rejection.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn another_error_is_other_and_not_local() {
        let error: BoxError = "connection reset".into();
        let rejection = Rejection::classify(&*error);
        assert!(rejection.is_other());
        assert!(!rejection.is_local());
        assert_eq!(rejection.kind(), "other");
        assert_eq!(chain(&*wrapped(std::fmt::Error)).count(), 3);
    }
}
