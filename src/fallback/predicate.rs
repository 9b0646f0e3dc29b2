use crate::BoxError;

/// Chooses which errors the fallback answers; the others pass through unchanged.
///
/// Implemented by [`AllErrors`] (the default), [`RejectionsAndTimeouts`], and closures
/// `Fn(&BoxError) -> bool`.
pub trait Predicate {
    /// Whether the fallback should answer `error`.
    fn should_fallback(&self, error: &BoxError) -> bool;
}

impl<F> Predicate for F
where
    F: Fn(&BoxError) -> bool,
{
    fn should_fallback(&self, error: &BoxError) -> bool {
        self(error)
    }
}

/// Every error triggers the fallback: the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllErrors;

impl Predicate for AllErrors {
    fn should_fallback(&self, _error: &BoxError) -> bool {
        true
    }
}

/// Only this crate's rejections and timeouts trigger the fallback: every error that
/// [`Rejection::classify`](crate::Rejection::classify) recognizes, itself or in its source chain
/// (an open circuit breaker, a full bulkhead, a timeout, ...). Any other error, from the service
/// itself, passes through.
///
/// This is the choice for "answer from a cache when we are shedding load or the dependency is
/// slow, but let real errors (a 'not found', a validation error) reach the caller".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectionsAndTimeouts;

impl Predicate for RejectionsAndTimeouts {
    fn should_fallback(&self, error: &BoxError) -> bool {
        !crate::Rejection::classify(&**error).is_other()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(error: impl std::error::Error + Send + Sync + 'static) -> BoxError {
        Box::new(error)
    }

    #[test]
    fn all_errors_accepts_anything() {
        assert!(AllErrors.should_fallback(&BoxError::from("anything")));
    }

    #[test]
    fn rejections_and_timeouts_declines_other_errors() {
        assert!(!RejectionsAndTimeouts.should_fallback(&BoxError::from("a service error")));
        assert!(!RejectionsAndTimeouts.should_fallback(&boxed(std::fmt::Error)));
    }

    #[test]
    fn rejections_and_timeouts_accepts_a_timeout() {
        assert!(RejectionsAndTimeouts.should_fallback(&boxed(crate::deadline::Elapsed::new())));
    }

    #[cfg(feature = "bulkhead")]
    #[test]
    fn rejections_and_timeouts_accepts_a_full_bulkhead() {
        let full = crate::bulkhead::BulkheadFull::new(1, std::time::Duration::ZERO);
        assert!(RejectionsAndTimeouts.should_fallback(&boxed(full)));
    }

    #[cfg(feature = "circuit-breaker")]
    #[test]
    fn rejections_and_timeouts_accepts_an_open_breaker() {
        use crate::circuit_breaker::{CircuitOpen, State};
        let open = CircuitOpen::new(State::Open, std::time::Duration::from_secs(1));
        assert!(RejectionsAndTimeouts.should_fallback(&boxed(open)));
    }

    #[test]
    fn closures_are_predicates() {
        let only_strings = |error: &BoxError| error.to_string().starts_with("s");
        assert!(only_strings.should_fallback(&BoxError::from("shed")));
        assert!(!only_strings.should_fallback(&BoxError::from("x")));
    }
}
