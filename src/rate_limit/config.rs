//! The rate limiter's builder, its defaults and their validation.

use std::borrow::Cow;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::keyed::KeyedRateLimitLayer;
use super::layer::RateLimitLayer;
use super::live::{LiveRate, Rate};
use super::state::Gcra;
use super::telemetry::Telemetry;
use crate::ConfigError;
use crate::keyed::Bounds;

/// Defaults to 1: no burst; calls are spaced `per / n` apart from the first.
pub const DEFAULT_BURST: u32 = 1;
/// Defaults to zero: a call the limit does not allow now is rejected at once.
pub const DEFAULT_MAX_WAIT: Duration = Duration::ZERO;
/// Defaults to 10 000 keys for a keyed limiter.
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// Defaults to 60 seconds: a key's limiter unused for that long is evicted (once out of debt).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Defaults to `"default"`, the `name` label of metrics and events.
pub const DEFAULT_NAME: &str = "default";

/// The longest `per`, `max_wait`, and emission interval times burst: one year.
const MAX_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// Builds a [`RateLimitLayer`] (one limiter) or a [`KeyedRateLimitLayer`] (one per key); see
/// the [module docs](super).
///
/// Every setter takes any value; [`build`](Builder::build) and
/// [`build_keyed`](Builder::build_keyed) check them all and return a [`ConfigError`] naming the
/// first setter whose value is out of range.
#[derive(Debug, Clone)]
pub struct Builder {
    name: Arc<str>,
    limit: Option<(u32, Duration)>,
    burst: u32,
    max_wait: Duration,
    bounds: Bounds,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

/// What every limiter of a layer shares: the rate, the allowed wait and the reporting, as
/// built (the Redis backend's layers keep it so; local ones make it live, [`LocalPolicy`]).
#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) gcra: Gcra,
    pub(crate) max_wait: u64,
    pub(crate) telemetry: Telemetry,
}

/// What every service of a local limiter (whole or keyed) shares: the rate, which
/// `reconfigure` changes live, and the reporting.
#[derive(Debug)]
pub(crate) struct LocalPolicy {
    pub(crate) live: LiveRate,
    pub(crate) telemetry: Telemetry,
}

impl From<Policy> for LocalPolicy {
    fn from(policy: Policy) -> Self {
        Self {
            live: LiveRate::new(Rate {
                gcra: policy.gcra,
                max_wait: policy.max_wait,
            }),
            telemetry: policy.telemetry,
        }
    }
}

impl Builder {
    /// A builder with every default, and no limit yet: [`limit`](Self::limit) must be set.
    pub fn new() -> Self {
        Self {
            name: Arc::from(DEFAULT_NAME),
            limit: None,
            burst: DEFAULT_BURST,
            max_wait: DEFAULT_MAX_WAIT,
            bounds: Bounds {
                max_keys: DEFAULT_MAX_KEYS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
            },
        }
    }

    /// Names this limiter in metrics (the `name` label) and events (`rate_limit.name`).
    ///
    /// Defaults to `"default"`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Arc::from(name.into().as_ref());
        self
    }

    /// Allows `n` calls per `per` on average: one call every `per / n` (rounded down to the
    /// nanosecond). `n` at least 1, `per` more than zero and at most a year, `per / n` at
    /// least 1 ns.
    ///
    /// Required: there is no default.
    pub fn limit(mut self, n: u32, per: Duration) -> Self {
        self.limit = Some((n, per));
        self
    }

    /// How many calls may go at once from idle (the bucket's depth). At least 1, and
    /// `burst × per / n` at most a year.
    ///
    /// Defaults to 1.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// How long a call may wait for its turn instead of being rejected: a call whose turn comes
    /// within `max_wait` (and before the current [`Deadline`](crate::deadline::Deadline)) takes
    /// its slot at once and waits for it. At most a year.
    ///
    /// Defaults to zero: reject at once.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The most keys a keyed limiter holds; see [`build_keyed`](Self::build_keyed). In
    /// [1, 16 777 216]. Not used by [`build`](Self::build).
    ///
    /// Defaults to 10 000.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.bounds.max_keys = max_keys;
        self
    }

    /// How long a key's limiter may go unused before it is evicted, if it is not in debt.
    /// More than zero, at most a year. Not used by [`build`](Self::build).
    ///
    /// Defaults to 60 seconds.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.bounds.idle_timeout = idle_timeout;
        self
    }

    /// Checks every setting and builds the layer, with its one limiter.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setter whose value is out of range, or `limit` when
    /// it was not set.
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        Ok(RateLimitLayer::new(self.policy()?.into()))
    }

    /// Checks every setting and builds a layer with one limiter per key, where `key` computes
    /// the key of each request (a tenant, a client address). Limiters are made on a key's first
    /// call, at most [`max_keys`](Self::max_keys) at once; see the [module docs](super) for
    /// eviction.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and for `max_keys` and `idle_timeout`.
    pub fn build_keyed<Req, K, F>(self, key: F) -> Result<KeyedRateLimitLayer<K, F>, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq + Clone,
    {
        let bounds = self.bounds.validate()?;
        Ok(KeyedRateLimitLayer::new(self.policy()?.into(), bounds, key))
    }

    /// The keyed bounds, checked: for the Redis backend's keyed layer, and for a keyed
    /// layer's `reconfigure` to compare.
    #[cfg(any(feature = "redis", feature = "serde"))]
    pub(super) fn bounds(&self) -> Result<Bounds, ConfigError> {
        self.bounds.validate()
    }

    pub(super) fn policy(self) -> Result<Policy, ConfigError> {
        let Rate { gcra, max_wait } = self.check()?;
        Ok(Policy {
            gcra,
            max_wait,
            telemetry: Telemetry::new(self.name),
        })
    }

    /// Checks the settings [`build`](Self::build) checks and returns the rate and the allowed
    /// wait in nanoseconds, registering nothing.
    pub(super) fn check(&self) -> Result<Rate, ConfigError> {
        let Some((n, per)) = self.limit else {
            return Err(ConfigError::new(
                "limit",
                "set: n calls per a duration",
                "unset",
            ));
        };
        let per_ns = per.as_nanos();
        if n == 0 || per.is_zero() || per > MAX_SPAN || per_ns < u128::from(n) {
            return Err(ConfigError::new(
                "limit",
                "n of at least 1 per a duration more than zero and at most a year, \
                 with per / n at least 1 ns",
                (n, per),
            ));
        }
        // Exact: per ≤ a year in ns fits in 55 bits.
        let interval = (per_ns / u128::from(n)) as u64;
        let span = u128::from(interval) * u128::from(self.burst);
        if self.burst == 0 || span > MAX_SPAN.as_nanos() {
            return Err(ConfigError::new(
                "burst",
                "at least 1, with burst × per / n at most a year",
                self.burst,
            ));
        }
        if self.max_wait > MAX_SPAN {
            return Err(ConfigError::new(
                "max_wait",
                "at most a year",
                self.max_wait,
            ));
        }
        Ok(Rate {
            gcra: Gcra {
                interval,
                tolerance: interval * u64::from(self.burst - 1),
            },
            // Exact: at most a year in ns.
            max_wait: self.max_wait.as_nanos() as u64,
        })
    }
}
