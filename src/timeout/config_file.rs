//! The timeout's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TimeoutLayer;
use super::config::{Builder, DEFAULT_NAME, DEFAULT_TIMEOUT};
use crate::ConfigError;
use crate::config::duration_field;

/// A timeout's settings, as read from a configuration file: one field per [`Builder`] method,
/// named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `TimeoutLayer::builder().build()`. Unknown
/// fields are errors.
///
/// ```toml
/// name = "default"
/// timeout = "30s"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::timeout`].
    #[serde(with = "timeout")]
    pub timeout: Duration,
}

duration_field!(timeout, "timeout");

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Config {
    /// A builder set to this config; [`build`](Builder::build) checks every value.
    pub fn to_builder(&self) -> Builder {
        TimeoutLayer::builder()
            .name(self.name.clone())
            .timeout(self.timeout)
    }
}

impl TimeoutLayer {
    /// Builds a timeout from a [`Config`] read from a file.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives, naming `timeout` when it is zero.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder().build()
    }
}

impl TimeoutLayer {
    /// Applies a new config to this running layer, every clone and every service it made: the
    /// calls made from now on get the new `timeout`; calls in flight keep their deadline.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes, when the config is one [`from_config`] refuses,
    /// when it renames the layer (`name`: the metrics label stays), or when the layer was made
    /// by [`TimeoutLayer::new`], whose timeout is fixed (`timeout`; see
    /// [`is_reconfigurable`](Self::is_reconfigurable)).
    ///
    /// [`from_config`]: Self::from_config
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        self.check_reconfigure(config)?;
        self.set_timeout(config.timeout);
        tracing::info!(
            timeout.name = self.name(),
            timeout.timeout_ms = crate::clock::millis(config.timeout),
            "timeout reconfigured"
        );
        Ok(())
    }

    /// Whether [`reconfigure`](Self::reconfigure) would accept `config`.
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        config.to_builder().check()?;
        crate::config::check_same_name(self.name(), &config.name)?;
        if !self.is_reconfigurable() {
            return Err(ConfigError::new(
                "timeout",
                "changed only on a layer built by `TimeoutLayer::builder()` or `from_config` \
                 (a `TimeoutLayer::new` layer's timeout is fixed)",
                config.timeout,
            ));
        }
        Ok(())
    }
}
