//! The rate limiter's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RateLimitLayer;
use super::config::{
    Builder, DEFAULT_BURST, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_KEYS, DEFAULT_MAX_WAIT, DEFAULT_NAME,
};
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

    /// Checks a reloaded config against this running limiter, and changes nothing: the rate,
    /// the burst and the allowed wait are read by every call from the layer's immutable
    /// policy, and making them live would add loads (or a lock) to the call path. A reload
    /// whose `[rate_limit]` did not change passes; one that changes it is refused, naming the
    /// field, and a new setting takes a new layer (and a new limiter).
    ///
    /// `max_keys` and `idle_timeout` are not used by a limiter without keys, and a reload
    /// ignores them, as [`from_config`](Self::from_config) does.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`from_config`](Self::from_config) gives
    /// for the config, or one naming `name`, `limit`, `burst` or `max_wait` when the config
    /// changes it.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let builder = config.to_builder();
        let (gcra, max_wait) = builder.check()?;
        crate::config::check_same_name(self.name(), &config.name)?;
        let policy = self.policy();
        let unchanged = "unchanged: it is read on every call, so a new value takes a new layer";
        if gcra.interval != policy.gcra.interval {
            return Err(ConfigError::new("limit", unchanged, config.limit));
        }
        if gcra.tolerance != policy.gcra.tolerance {
            return Err(ConfigError::new("burst", unchanged, config.burst));
        }
        if max_wait != policy.max_wait {
            return Err(ConfigError::new("max_wait", unchanged, config.max_wait));
        }
        Ok(())
    }
}
