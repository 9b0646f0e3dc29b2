//! The rate limiter's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::hash::Hash;

use super::config::LocalPolicy;
use super::config::{
    Builder, DEFAULT_BURST, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_KEYS, DEFAULT_MAX_WAIT, DEFAULT_NAME,
};
use super::live::Rate;
use super::{KeyedRateLimitLayer, RateLimitLayer};
use crate::ConfigError;
use crate::config::duration_field;

/// A rate limiter's settings, as read from a configuration file: one field per [`Builder`]
/// method, named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `RateLimitLayer::builder().build()`, which is
/// the error that `limit` is not set: the limit has no default. Unknown fields are errors, in
/// the `limit` table too. The key function of a keyed limiter is code: pass it to
/// [`to_builder`](Self::to_builder)'s [`build_keyed`](Builder::build_keyed).
///
/// ```toml
/// name = "default"
/// limit = { calls = 100, per = "1s" }   # required: n calls per a duration
/// burst = 1
/// max_wait = "0s"                       # zero: reject at once
/// max_keys = 10000                      # keyed limiters only
/// idle_timeout = "1m"                   # keyed limiters only
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::limit`]; `None` (absent) is an error when building: the limit has no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// [`Builder::burst`].
    pub burst: u32,
    /// [`Builder::max_wait`].
    #[serde(with = "max_wait")]
    pub max_wait: Duration,
    /// [`Builder::max_keys`].
    pub max_keys: usize,
    /// [`Builder::idle_timeout`].
    #[serde(with = "idle_timeout")]
    pub idle_timeout: Duration,
}

/// A rate in a file, `{ calls = 100, per = "1s" }`: the arguments of [`Builder::limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limit {
    /// The calls allowed per `per`, on average.
    pub calls: u32,
    /// The span of time `calls` are allowed in.
    #[serde(with = "limit_per")]
    pub per: Duration,
}

impl Limit {
    /// `calls` per `per`, as [`Builder::limit`] takes them.
    pub const fn new(calls: u32, per: Duration) -> Self {
        Self { calls, per }
    }
}

duration_field!(max_wait, "max_wait");
duration_field!(idle_timeout, "idle_timeout");
duration_field!(limit_per, "limit.per");

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            limit: None,
            burst: DEFAULT_BURST,
            max_wait: DEFAULT_MAX_WAIT,
            max_keys: DEFAULT_MAX_KEYS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Config {
    /// A builder set to this config, for [`build`](Builder::build) or, with a key function,
    /// [`build_keyed`](Builder::build_keyed); both check every value.
    pub fn to_builder(&self) -> Builder {
        let builder = RateLimitLayer::builder()
            .name(self.name.clone())
            .burst(self.burst)
            .max_wait(self.max_wait)
            .max_keys(self.max_keys)
            .idle_timeout(self.idle_timeout);
        match self.limit {
            Some(Limit { calls, per }) => builder.limit(calls, per),
            None => builder,
        }
    }
}

impl RateLimitLayer {
    /// Builds a rate limiter, with one limiter for the whole service, from a [`Config`] read
    /// from a file. For one limiter per key, use [`Config::to_builder`] and
    /// [`build_keyed`](Builder::build_keyed).
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives, naming `limit` (absent or out of
    /// range), `burst` or `max_wait`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder().build()
    }

    /// Applies a reloaded config to this running limiter, shared by every clone and every
    /// service it made: a new `limit`, `burst` or `max_wait` holds from the next call of each
    /// service, and the limiter keeps its state (the theoretical arrival time: what the calls
    /// already admitted used up; see the [module docs](super#live-reload)).
    ///
    /// `max_keys` and `idle_timeout` are not used by a limiter without keys, and a reload
    /// ignores them, as [`from_config`](Self::from_config) does.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`from_config`](Self::from_config) gives
    /// for the config, or one naming `name` when the config changes it (the name labels the
    /// metrics registered at build).
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let rate = self.check_reconfigure(config)?;
        apply(self.policy(), rate);
        Ok(())
    }

    /// What [`reconfigure`](Self::reconfigure) checks, changing nothing: the rate it would
    /// apply, or its error (for a stack that checks every layer before it changes any).
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<Rate, ConfigError> {
        let rate = config.to_builder().check()?;
        crate::config::check_same_name(self.policy().telemetry.name(), &config.name)?;
        Ok(rate)
    }
}

impl<K: Hash + Eq + Clone, F> KeyedRateLimitLayer<K, F> {
    /// Applies a reloaded config to this running keyed limiter, shared by every clone and every
    /// service it made: a new `limit`, `burst` or `max_wait` holds for every key from the next
    /// call of each service, and each key's limiter keeps its state (see the
    /// [module docs](super#live-reload)).
    ///
    /// A new `max_keys` or `idle_timeout` holds at once, for the keys that have a limiter: a
    /// lower `max_keys` evicts down to it as new keys come (never at once), and a new
    /// `idle_timeout` applies from a sweep that is due at once.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`Builder::build_keyed`] gives for the
    /// config, or one naming `name` when the config changes it.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let _one_at_a_time = self.reloads().one_at_a_time();
        let (rate, bounds) = self.check_reconfigure(config)?;
        let (policy, limiters) = self.parts();
        apply(policy, rate);
        if limiters.bounds() != bounds {
            limiters.set_bounds(bounds);
            tracing::info!(
                rate_limit.name = %policy.telemetry.name(),
                rate_limit.max_keys = bounds.max_keys,
                rate_limit.idle_timeout_ms = crate::clock::millis(bounds.idle_timeout),
                "keyed rate limiter's bounds reconfigured"
            );
        }
        Ok(())
    }

    /// What [`reconfigure`](Self::reconfigure) checks, changing nothing: the rate it would
    /// apply, or its error (for a stack that checks every layer before it changes any).
    pub(crate) fn check_reconfigure(
        &self,
        config: &Config,
    ) -> Result<(Rate, crate::keyed::Bounds), ConfigError> {
        let builder = config.to_builder();
        let rate = builder.check()?;
        let bounds = builder.bounds()?;
        crate::config::check_same_name(self.parts().0.telemetry.name(), &config.name)?;
        Ok((rate, bounds))
    }
}

/// Makes a checked rate live, and says so when it changed.
fn apply(policy: &LocalPolicy, rate: Rate) {
    if policy.live.rate() == rate {
        return;
    }
    policy.live.set(rate);
    tracing::info!(
        rate_limit.name = %policy.telemetry.name(),
        rate_limit.interval_ns = rate.gcra.interval,
        rate_limit.tolerance_ns = rate.gcra.tolerance,
        rate_limit.max_wait_ms = crate::clock::millis(std::time::Duration::from_nanos(rate.max_wait)),
        "rate limiter reconfigured"
    );
}
