//! The Redis backend's builder, its defaults and their validation.

use std::sync::Arc;
use std::time::Duration;

use super::GlobalRateLimitLayer;
use crate::ConfigError;
use crate::rate_limit::Builder;
use crate::rate_limit::config::Policy;

/// Defaults to 50 ms: the longest one call to Redis may take before it counts as failed.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// Defaults to 100 ms: a batch is sized to last about this long at the local rate.
pub const DEFAULT_LEASE_HORIZON: Duration = Duration::from_millis(100);
/// Defaults to 100 cells: the most a process holds at once, and so the fleet's slack per process.
pub const DEFAULT_MAX_BATCH: u32 = 100;
/// Defaults to 1 second: how often a process says it is alive; it counts as gone after three
/// missed heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Defaults to `"steadfast:rate_limit"`: the prefix of every Redis key.
pub const DEFAULT_KEY_PREFIX: &str = "steadfast:rate_limit";

/// What the limiter does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenDown {
    /// Admit up to this process's share of the limit: the global rate and burst divided by the
    /// number of processes Redis last reported (at least one).
    #[default]
    LocalShare,
    /// Reject every call that the cells already leased do not cover.
    Reject,
}

/// Where and how a global rate limit keeps its state in Redis; given to
/// [`Builder::build_global`]. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct RedisBackend {
    pub(crate) client: ::redis::Client,
    pub(crate) timeout: Duration,
    pub(crate) lease_horizon: Duration,
    pub(crate) max_batch: u32,
    pub(crate) heartbeat: Duration,
    pub(crate) when_down: WhenDown,
    pub(crate) key_prefix: Arc<str>,
}

impl RedisBackend {
    /// A backend on `client` (for example `redis::Client::open("redis://127.0.0.1:6379")`),
    /// with every default.
    pub fn new(client: ::redis::Client) -> Self {
        Self {
            client,
            timeout: DEFAULT_REDIS_TIMEOUT,
            lease_horizon: DEFAULT_LEASE_HORIZON,
            max_batch: DEFAULT_MAX_BATCH,
            heartbeat: DEFAULT_HEARTBEAT,
            when_down: WhenDown::default(),
            key_prefix: Arc::from(DEFAULT_KEY_PREFIX),
        }
    }

    /// How long one call to Redis may take (connecting included) before it counts as a
    /// failure of Redis. Calls never wait on Redis at all; this bounds how long the limiter
    /// runs on stale cells before it degrades. More than zero, at most 10 s.
    ///
    /// Defaults to 50 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a batch should last at the local rate: the batch size adapts to
    /// `local rate × horizon`, between 1 and [`max_batch`](Self::max_batch). More than zero,
    /// at most 10 s.
    ///
    /// Defaults to 100 ms.
    pub fn lease_horizon(mut self, horizon: Duration) -> Self {
        self.lease_horizon = horizon;
        self
    }

    /// The most cells a process holds at once: the fleet may admit this many per process
    /// above the global limit in any window. At least 1.
    ///
    /// Defaults to 100.
    pub fn max_batch(mut self, max_batch: u32) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// How often a process tells Redis it is alive; a process missing three heartbeats no
    /// longer counts in the local share. At least 10 ms, at most 1 minute.
    ///
    /// Defaults to 1 second.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// What to do while Redis cannot be reached.
    ///
    /// Defaults to [`WhenDown::LocalShare`].
    pub fn when_down(mut self, when_down: WhenDown) -> Self {
        self.when_down = when_down;
        self
    }

    /// The prefix of the limiter's Redis keys; the limiter's [`name`](Builder::name) follows
    /// it in braces (a cluster hash tag), so limiters with the same prefix and name share one
    /// limit.
    ///
    /// Defaults to `"steadfast:rate_limit"`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Arc::from(prefix.into());
        self
    }

    pub(crate) fn validate(self) -> Result<Self, ConfigError> {
        const TEN_S: Duration = Duration::from_secs(10);
        if self.timeout.is_zero() || self.timeout > TEN_S {
            return Err(ConfigError::new(
                "timeout",
                "more than zero, at most 10 s",
                self.timeout,
            ));
        }
        if self.lease_horizon.is_zero() || self.lease_horizon > TEN_S {
            return Err(ConfigError::new(
                "lease_horizon",
                "more than zero, at most 10 s",
                self.lease_horizon,
            ));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::new("max_batch", "at least 1", self.max_batch));
        }
        if self.heartbeat < Duration::from_millis(10) || self.heartbeat > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "heartbeat",
                "at least 10 ms, at most 1 minute",
                self.heartbeat,
            ));
        }
        Ok(self)
    }
}

impl Builder {
    /// Checks every setting and builds a layer whose limit is shared, through `backend`, by
    /// every process with the same [`name`](Self::name): see the
    /// [`redis` module](super).
    ///
    /// Must run inside a tokio runtime: it starts the task that leases cells from Redis. It
    /// does not wait for Redis.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); `max_wait` when it is not zero (a global limit rejects at
    /// once); the backend's setters; and `build_global` outside a tokio runtime.
    pub fn build_global(self, backend: RedisBackend) -> Result<GlobalRateLimitLayer, ConfigError> {
        let (policy, backend, runtime) = self.global_parts(backend)?;
        GlobalRateLimitLayer::start(policy, backend, &runtime)
    }

    /// Checks what every global limiter needs: the policy (with no wait), the backend, and a
    /// runtime for the refill task.
    pub(super) fn global_parts(
        self,
        backend: RedisBackend,
    ) -> Result<(Policy, RedisBackend, tokio::runtime::Handle), ConfigError> {
        let backend = backend.validate()?;
        let policy = self.policy()?;
        if policy.max_wait != 0 {
            return Err(ConfigError::new(
                "max_wait",
                "zero with a Redis backend",
                Duration::from_nanos(policy.max_wait),
            ));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(ConfigError::new(
                "build_global",
                "called inside a tokio runtime",
                "no runtime",
            ));
        };
        Ok((policy, backend, runtime))
    }
}
