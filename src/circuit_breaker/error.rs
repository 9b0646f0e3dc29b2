//! The error a circuit breaker fails a call with.

use std::fmt;
use std::time::Duration;

use super::State;

/// The circuit breaker rejected the call without sending it.
///
/// Returned (boxed in a [`BoxError`](crate::BoxError)) by a breaker that is open, forced open, or
/// half-open with every probe slot taken. Downcast to read when the breaker may let calls through
/// again, for a `Retry-After` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    state: State,
    retry_after: Duration,
}

impl CircuitOpen {
    pub(crate) fn new(state: State, retry_after: Duration) -> Self {
        Self { state, retry_after }
    }

    /// How long until the breaker lets a probe through: the time left of the open interval.
    ///
    /// For a breaker that is forced open, or half-open with every probe slot taken, the time it
    /// will stay open is not known; this is then the configured `wait_in_open`, a hint.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The state that rejected the call: [`State::Open`], [`State::HalfOpen`] or
    /// [`State::ForcedOpen`].
    pub fn state(&self) -> State {
        self.state
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            State::HalfOpen => f.write_str("circuit breaker is half-open and all probes are taken"),
            State::ForcedOpen => f.write_str("circuit breaker is forced open"),
            _ => write!(
                f,
                "circuit breaker is open; retry after {} ms",
                self.retry_after.as_millis()
            ),
        }
    }
}

impl std::error::Error for CircuitOpen {}
