//! The builder of [`TimeoutLayer`] and its defaults.

use std::borrow::Cow;
use std::time::Duration;

use super::TimeoutLayer;
use crate::error::ConfigError;

/// The timeout of [`Builder::timeout`] when none is set: 30 seconds (Polly's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `name` metric label of [`Builder::name`] when none is set.
pub const DEFAULT_NAME: &str = "default";

/// Builds a [`TimeoutLayer`]; see [`TimeoutLayer::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    timeout: Duration,
    name: Cow<'static, str>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            name: Cow::Borrowed(DEFAULT_NAME),
        }
    }
}

impl Builder {
    /// How long a call may take, from the moment it is made. Must be more than zero.
    ///
    /// Defaults to [`DEFAULT_TIMEOUT`] (30 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The instance name: the `name` label of this layer's metrics.
    ///
    /// Defaults to [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks the configuration and builds the layer, registering its metric handles (with the
    /// `metrics` feature) with the recorder installed now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `timeout` if the timeout is zero (every call would fail without
    /// reaching the service).
    pub fn build(self) -> Result<TimeoutLayer, ConfigError> {
        self.check()?;
        Ok(TimeoutLayer::from_parts(self.timeout, true, &self.name))
    }

    /// The validation of [`build`](Self::build), shared with `reconfigure`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "more than zero, in (0, Duration::MAX]",
                self.timeout,
            ));
        }
        Ok(())
    }
}
