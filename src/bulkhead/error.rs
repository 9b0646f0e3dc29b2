//! The error a bulkhead fails a call with.

use std::fmt;
use std::time::Duration;

/// The bulkhead had no free permit within `max_wait`: the call was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkheadFull {
    max_concurrent_calls: usize,
    waited: Duration,
}

impl BulkheadFull {
    pub(crate) fn new(max_concurrent_calls: usize, waited: Duration) -> Self {
        Self {
            max_concurrent_calls,
            waited,
        }
    }

    /// The bulkhead's limit of concurrent calls.
    pub fn max_concurrent_calls(&self) -> usize {
        self.max_concurrent_calls
    }

    /// How long the call waited for a permit before it was rejected (zero when failing fast).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead full: {} concurrent calls in flight",
            self.max_concurrent_calls
        )
    }
}

impl std::error::Error for BulkheadFull {}
