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
