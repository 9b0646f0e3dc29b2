//! The rate limiter's reporting: events, and metric handles registered once at build time.

use std::sync::Arc;
use std::time::Duration;

/// The limiter's name and its metric handles.
pub(crate) struct Telemetry {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    admitted: metrics::Counter,
    #[cfg(feature = "metrics")]
    rejected: metrics::Counter,
    #[cfg(feature = "metrics")]
    waited: metrics::Counter,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub(crate) fn new(name: Arc<str>) -> Self {
        #[cfg(feature = "metrics")]
        let label = name.to_string();
        Self {
            #[cfg(feature = "metrics")]
            admitted: metrics::counter!("steadfast_rate_limit_admitted_total", "name" => label.clone()),
            #[cfg(feature = "metrics")]
            rejected: metrics::counter!("steadfast_rate_limit_rejected_total", "name" => label.clone()),
            #[cfg(feature = "metrics")]
            waited: metrics::counter!("steadfast_rate_limit_waited_total", "name" => label),
            name,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A call went to the inner service (at once, or at the end of its wait).
    #[inline]
    pub(crate) fn admitted(&self) {
        #[cfg(feature = "metrics")]
        self.admitted.increment(1);
    }

    /// A call was rejected.
    #[inline]
    pub(crate) fn rejected(&self, retry_after: Duration) {
        // Built out of line: with no subscriber at debug, a rejection pays one level check.
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            self.rejected_event(retry_after);
        }
        #[cfg(feature = "metrics")]
        self.rejected.increment(1);
    }

    #[cold]
    #[inline(never)]
    fn rejected_event(&self, retry_after: Duration) {
        tracing::debug!(
            rate_limit.name = %self.name,
            rate_limit.retry_after_ms = retry_after.as_millis() as u64,
            "rate limiter rejected a call"
        );
    }

    /// A call reserved a slot and waits for it.
    #[cold]
    pub(crate) fn waiting(&self, wait: Duration) {
        tracing::debug!(
            rate_limit.name = %self.name,
            rate_limit.wait_ms = wait.as_millis() as u64,
            "rate limiter delayed a call"
        );
        #[cfg(feature = "metrics")]
        self.waited.increment(1);
    }

    /// A waiting call was dropped before its slot came.
    #[cold]
    pub(crate) fn cancelled(&self, refunded: bool) {
        tracing::debug!(
            rate_limit.name = %self.name,
            rate_limit.refunded = refunded,
            "rate limiter's waiting call was cancelled"
        );
    }
}
