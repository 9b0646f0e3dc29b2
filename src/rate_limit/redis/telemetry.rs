//! The global limiter's own reporting (its calls are reported by the rate limiter's telemetry):
//! mode changes, round trips to Redis and cells leased.

use std::sync::Arc;

/// The limiter's name and its metric handles, registered once when the layer is built.
pub(crate) struct GlobalTelemetry {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    degraded: metrics::Gauge,
    #[cfg(feature = "metrics")]
    redis_calls: metrics::Counter,
    #[cfg(feature = "metrics")]
    redis_failures: metrics::Counter,
    #[cfg(feature = "metrics")]
    leased: metrics::Counter,
}

impl std::fmt::Debug for GlobalTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalTelemetry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl GlobalTelemetry {
    pub(crate) fn new(name: Arc<str>) -> Self {
        #[cfg(feature = "metrics")]
        let label = name.to_string();
        Self {
            #[cfg(feature = "metrics")]
            degraded: metrics::gauge!("steadfast_rate_limit_degraded", "name" => label.clone()),
            #[cfg(feature = "metrics")]
            redis_calls: metrics::counter!("steadfast_rate_limit_redis_calls_total", "name" => label.clone()),
            #[cfg(feature = "metrics")]
            redis_failures: metrics::counter!("steadfast_rate_limit_redis_failures_total", "name" => label.clone()),
            #[cfg(feature = "metrics")]
            leased: metrics::counter!("steadfast_rate_limit_leased_cells_total", "name" => label),
            name,
        }
    }

    /// One round trip to Redis answered, with `cells` granted.
    pub(crate) fn leased(&self, cells: u64) {
        tracing::trace!(rate_limit.name = %self.name, rate_limit.cells = cells, "rate limiter leased cells");
        #[cfg(feature = "metrics")]
        {
            self.redis_calls.increment(1);
            self.leased.increment(cells);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = cells;
    }

    /// One call to Redis failed, timed out, or was refused by the open breaker.
    pub(crate) fn failed(&self, error: &crate::BoxError) {
        tracing::debug!(rate_limit.name = %self.name, rate_limit.error = %error, "rate limiter's call to Redis failed");
        #[cfg(feature = "metrics")]
        {
            self.redis_calls.increment(1);
            self.redis_failures.increment(1);
        }
    }

    /// The limiter started running without Redis.
    pub(crate) fn degraded(&self, reject: bool, processes: u32, error: &crate::BoxError) {
        tracing::warn!(
            rate_limit.name = %self.name,
            rate_limit.mode = if reject { "reject" } else { "local_share" },
            rate_limit.processes = processes,
            rate_limit.error = %error,
            "rate limiter lost Redis and runs degraded"
        );
        #[cfg(feature = "metrics")]
        self.degraded.set(1.0);
    }

    /// Redis answers again: the limit is shared again.
    pub(crate) fn recovered(&self, processes: u32) {
        tracing::info!(
            rate_limit.name = %self.name,
            rate_limit.processes = processes,
            "rate limiter reached Redis again; the limit is shared"
        );
        #[cfg(feature = "metrics")]
        self.degraded.set(0.0);
    }
}
