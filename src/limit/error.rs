//! The error an adaptive limit fails a call with.

use std::fmt;

/// The concurrency limit was reached: the call was not sent.
///
/// A local rejection: it says nothing about the service behind the limit, whose answers to the
/// calls already in flight are what set the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    limit: usize,
}

impl LimitExceeded {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// The limit in force when the call was rejected (that many calls were in flight, or more
    /// if the limit had just been lowered).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "concurrency limit exceeded: {} calls in flight",
            self.limit
        )
    }
}

impl std::error::Error for LimitExceeded {}
