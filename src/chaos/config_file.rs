//! Fault injection's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ChaosLayer;
use super::config::{Builder, DEFAULT_ENABLED, DEFAULT_ERROR_RATE, DEFAULT_NAME};
use crate::ConfigError;
use crate::config::duration_field;

/// A chaos layer's settings, as read from a configuration file: one field per [`Builder`]
/// method, named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `ChaosLayer::builder().build()` (one that
/// injects nothing). Unknown fields are errors. The error response is code: set it on
/// [`to_builder`](Self::to_builder)'s builder.
///
/// ```toml
/// name = "default"
/// error_rate = 0.0
/// latency = { rate = 0.1, delay = "200ms" }                     # absent: none
/// latency_range = { rate = 0.1, min = "50ms", max = "500ms" }   # absent: none
/// outage_at = [{ start = "1m", duration = "30s" }]              # absent: none
/// seed = 42                                                     # absent: drawn once
/// enabled = true
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::error_rate`].
    pub error_rate: f64,
    /// [`Builder::latency`]; set at most one of `latency` and `latency_range`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyConfig>,
    /// [`Builder::latency_range`]; set at most one of `latency` and `latency_range`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_range: Option<LatencyRangeConfig>,
    /// [`Builder::outage_at`], once per window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outage_at: Vec<OutageConfig>,
    /// [`Builder::seed`]; `None` (absent) draws one per layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// [`Builder::enabled`].
    pub enabled: bool,
}

/// The arguments of [`Builder::latency`]: `{ rate = 0.1, delay = "200ms" }`, both required.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// The fraction of calls delayed, in [0, 1].
    pub rate: f64,
    /// The delay.
    #[serde(with = "latency_delay")]
    pub delay: Duration,
}

/// The arguments of [`Builder::latency_range`]: `{ rate = 0.1, min = "50ms", max = "500ms" }`,
/// all required.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyRangeConfig {
    /// The fraction of calls delayed, in [0, 1].
    pub rate: f64,
    /// The shortest delay.
    #[serde(with = "latency_range_min")]
    pub min: Duration,
    /// The longest delay.
    #[serde(with = "latency_range_max")]
    pub max: Duration,
}

/// The arguments of [`Builder::outage_at`]: `{ start = "1m", duration = "30s" }`, both
/// required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageConfig {
    /// When the outage starts, after the layer is built.
    #[serde(with = "outage_start")]
    pub start: Duration,
    /// How long it lasts.
    #[serde(with = "outage_duration")]
    pub duration: Duration,
}

duration_field!(latency_delay, "latency.delay");
duration_field!(latency_range_min, "latency_range.min");
duration_field!(latency_range_max, "latency_range.max");
duration_field!(outage_start, "outage_at.start");
duration_field!(outage_duration, "outage_at.duration");

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            error_rate: DEFAULT_ERROR_RATE,
            latency: None,
            latency_range: None,
            outage_at: Vec::new(),
            seed: None,
            enabled: DEFAULT_ENABLED,
        }
    }
}

impl Config {
    /// A builder set to this config, to add an error response before
    /// [`build`](Builder::build), which checks every value.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `latency_range` when both `latency` and `latency_range` are set
    /// (the builder would keep the last one; a file has no order to say which).
    pub fn to_builder(&self) -> Result<Builder, ConfigError> {
        let mut builder = ChaosLayer::builder()
            .name(self.name.clone())
            .error_rate(self.error_rate)
            .enabled(self.enabled);
        match (self.latency, self.latency_range) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "latency_range",
                    "unset when `latency` is set (at most one of the two)",
                    "both set",
                ));
            }
            (Some(l), None) => builder = builder.latency(l.rate, l.delay),
            (None, Some(l)) => builder = builder.latency_range(l.rate, l.min, l.max),
            (None, None) => {}
        }
        for outage in &self.outage_at {
            builder = builder.outage_at(outage.start, outage.duration);
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        Ok(builder)
    }
}

impl ChaosLayer {
    /// Builds a chaos layer from a [`Config`] read from a file.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives, naming the field as written in the
    /// file (`error_rate`, `latency`, `latency_range`, `outage_at`).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder()?.build()
    }
}
