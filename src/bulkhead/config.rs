//! The bulkhead's builder.

use std::borrow::Cow;
use std::time::Duration;

use tokio::sync::Notify;

use super::BulkheadLayer;
use super::state::{Permits, Semaphore};
use crate::error::{ConfigError, check_range};
use crate::sync::{Arc, AtomicU32, AtomicU64};

/// Default for [`Builder::max_concurrent_calls`]: 25 calls in flight, as in Resilience4j.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 25;

/// Default for [`Builder::max_wait`]: zero, so a call that finds no free permit fails at once.
pub const DEFAULT_MAX_WAIT: Duration = Duration::ZERO;

/// Default for [`Builder::name`]: `"default"`.
pub const DEFAULT_NAME: &str = "default";

/// The largest [`Builder::max_concurrent_calls`] accepted, `i32::MAX`: the free permits are a
/// signed 32-bit count, so that a lowered limit can leave them below zero while the calls in
/// flight finish.
pub const MAX_CONCURRENT_CALLS_LIMIT: usize = i32::MAX as usize;

/// Configures a [`BulkheadLayer`]; made by [`BulkheadLayer::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct Builder {
    max_concurrent_calls: usize,
    max_wait: Duration,
    name: Cow<'static, str>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_wait: DEFAULT_MAX_WAIT,
            name: Cow::Borrowed(DEFAULT_NAME),
        }
    }
}

impl Builder {
    /// How many calls may be in flight at once, in `[1, 2147483647]`.
    ///
    /// Defaults to [`DEFAULT_MAX_CONCURRENT_CALLS`] (25).
    pub fn max_concurrent_calls(mut self, n: usize) -> Self {
        self.max_concurrent_calls = n;
        self
    }

    /// How long a call may wait in `poll_ready` for a permit before it is rejected with
    /// [`BulkheadFull`](super::BulkheadFull). Zero fails fast: one try, then the call is rejected.
    ///
    /// Waiting needs a tokio runtime with its time driver enabled; failing fast needs none.
    ///
    /// Defaults to [`DEFAULT_MAX_WAIT`] (zero: fail fast).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The instance name: the `name` label of the metrics and the `bulkhead.name` field of the
    /// tracing events. Must not be empty.
    ///
    /// Defaults to [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks the configuration and creates the layer, with its permits and (with the `metrics`
    /// feature) its metric handles. Every clone of the layer, and every service it makes, shares
    /// these permits.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `max_concurrent_calls` if it is not in `[1, 2147483647]`, or
    /// `name` if it is empty.
    pub fn build(self) -> Result<BulkheadLayer, ConfigError> {
        let max = self.check()?;

        #[cfg(feature = "metrics")]
        let metrics = super::telemetry::Metrics::register(&self.name, max);

        Ok(BulkheadLayer {
            shared: Arc::new(Semaphore {
                permits: Permits::new(max),
                notify: std::sync::Arc::new(Notify::new()),
                max_concurrent_calls: AtomicU32::new(max),
                max_wait_nanos: AtomicU64::new(crate::clock::nanos(self.max_wait)),
                name: self.name,
                #[cfg(feature = "serde")]
                reloads: crate::config::Reloads::default(),
                #[cfg(feature = "metrics")]
                metrics,
            }),
        })
    }

    /// The validation of [`build`](Self::build), shared with `reconfigure`: the limit, as the
    /// permit word holds it.
    pub(crate) fn check(&self) -> Result<u32, ConfigError> {
        check_range(
            "max_concurrent_calls",
            self.max_concurrent_calls,
            1,
            MAX_CONCURRENT_CALLS_LIMIT,
        )?;
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "a non-empty string", &*self.name));
        }
        u32::try_from(self.max_concurrent_calls).map_err(|_| {
            ConfigError::new(
                "max_concurrent_calls",
                "in [1, 2147483647]",
                self.max_concurrent_calls,
            )
        })
    }
}
