//! The bulkhead's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BulkheadLayer;
use super::config::{Builder, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MAX_WAIT, DEFAULT_NAME};
use crate::ConfigError;
use crate::config::duration_field;

/// A bulkhead's settings, as read from a configuration file: one field per [`Builder`] method,
/// named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `BulkheadLayer::builder().build()`. Unknown
/// fields are errors.
///
/// ```toml
/// name = "default"
/// max_concurrent_calls = 25
/// max_wait = "0s"                   # zero: fail fast
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::max_concurrent_calls`].
    pub max_concurrent_calls: usize,
    /// [`Builder::max_wait`].
    #[serde(with = "max_wait")]
    pub max_wait: Duration,
}

duration_field!(max_wait, "max_wait");

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl Config {
    /// A builder set to this config; [`build`](Builder::build) checks every value.
    pub fn to_builder(&self) -> Builder {
        BulkheadLayer::builder()
            .name(self.name.clone())
            .max_concurrent_calls(self.max_concurrent_calls)
            .max_wait(self.max_wait)
    }
}

impl BulkheadLayer {
    /// Builds a bulkhead from a [`Config`] read from a file.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives, naming `max_concurrent_calls` or
    /// `name`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder().build()
    }
}

impl BulkheadLayer {
    /// Applies a new config to this running bulkhead, shared by every clone and every service
    /// it made.
    ///
    /// - `max_concurrent_calls`: a higher limit admits more calls at once, and wakes the calls
    ///   waiting for a permit. A lower one lets the calls in flight finish: none is cut, and no
    ///   new call is admitted until fewer than the new limit are in flight
    ///   ([`available_permits`](Self::available_permits) reads zero until then).
    /// - `max_wait`: for the waits that start from now on.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes, when the config is one [`from_config`] refuses,
    /// or when it renames the bulkhead (`name`: the metrics label stays).
    ///
    /// [`from_config`]: Self::from_config
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let _one_at_a_time = self.shared.reloads.one_at_a_time();
        let max = self.check_reconfigure(config)?;
        self.shared.set_max_wait(config.max_wait);
        self.shared.resize(max);
        tracing::info!(
            bulkhead.name = %self.shared.name,
            bulkhead.max_concurrent_calls = max,
            bulkhead.max_wait_ms = crate::clock::millis(config.max_wait),
            "bulkhead reconfigured"
        );
        Ok(())
    }

    /// Whether [`reconfigure`](Self::reconfigure) would accept `config`: the new limit if so.
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<u32, ConfigError> {
        let max = config.to_builder().check()?;
        crate::config::check_same_name(&self.shared.name, &config.name)?;
        Ok(max)
    }
}
