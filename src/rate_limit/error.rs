//! The error a rate limiter fails a call with.

use std::fmt;
use std::time::Duration;

/// The rate limiter rejected the call without sending it: the limit allows no call now, nor
/// within `max_wait` or the current deadline.
///
/// Downcast it from the [`BoxError`](crate::BoxError) to read when a call would be allowed,
/// for a `Retry-After` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self { retry_after }
    }

    /// How long until the limiter would admit a call, exact on tokio's clock at the instant of
    /// the rejection (other calls may take that slot first).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited; retry after {} ms",
            self.retry_after.as_millis()
        )
    }
}

impl std::error::Error for RateLimited {}
