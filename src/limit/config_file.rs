//! The adaptive limit's settings as read from a file (feature `serde`): [`Config`], and the
//! file format of an [`Algorithm`].

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::algorithm::{
    DEFAULT_AIMD_TIMEOUT, DEFAULT_BACKOFF_RATIO, DEFAULT_LONG_WINDOW, DEFAULT_PROBE_MULTIPLIER,
    DEFAULT_QUEUE_SIZE, DEFAULT_RTT_TOLERANCE, DEFAULT_SHORT_WINDOW, DEFAULT_SMOOTHING,
    DEFAULT_VEGAS_SMOOTHING,
};
use super::config::{
    Builder, DEFAULT_INITIAL_LIMIT, DEFAULT_NAME, DEFAULT_WINDOW, DEFAULT_WINDOW_SAMPLES,
};
use super::{AdaptiveLimitLayer, Aimd, Algorithm, Gradient2, Vegas};
use crate::ConfigError;
use crate::config::{duration_field, optional_duration_field};

/// An adaptive limit's settings, as read from a configuration file: one field per [`Builder`]
/// method, named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `AdaptiveLimitLayer::builder().build()`.
/// Unknown fields are errors, in the `algorithm` table too. The classifier is code: set it on
/// [`to_builder`](Self::to_builder)'s builder.
///
/// ```toml
/// name = "default"
/// initial_limit = 20
/// min_limit = 20                   # absent: 20, or initial_limit if lower
/// max_limit = 200                  # absent: 200, or initial_limit if higher
/// window = "100ms"
/// window_samples = 10
/// algorithm = { gradient2 = { smoothing = 0.2, rtt_tolerance = 1.5, long_window = 600, short_window = 10, queue_size = 4 } }
/// # or { vegas = { smoothing = 1.0, probe_multiplier = 30 } }
/// # or { aimd = { backoff_ratio = 0.9, timeout = "5s" } }
/// seed = 42                        # absent: drawn once per layer
/// ```
///
/// An algorithm table has exactly one key, the algorithm's name; its settings are its
/// builder's methods, each optional (its default when absent): `{ gradient2 = {} }` is
/// [`Gradient2::new()`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::initial_limit`].
    pub initial_limit: usize,
    /// [`Builder::min_limit`]; `None` (absent) is the builder's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_limit: Option<usize>,
    /// [`Builder::max_limit`]; `None` (absent) is the builder's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_limit: Option<usize>,
    /// [`Builder::algorithm`].
    pub algorithm: Algorithm,
    /// [`Builder::window`].
    #[serde(with = "window")]
    pub window: Duration,
    /// [`Builder::window_samples`].
    pub window_samples: usize,
    /// [`Builder::seed`]; `None` (absent) draws one per layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

duration_field!(window, "window");
optional_duration_field!(aimd_timeout, "algorithm.aimd.timeout");

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            initial_limit: DEFAULT_INITIAL_LIMIT,
            min_limit: None,
            max_limit: None,
            algorithm: Algorithm::default(),
            window: DEFAULT_WINDOW,
            window_samples: DEFAULT_WINDOW_SAMPLES,
            seed: None,
        }
    }
}

impl Config {
    /// A builder set to this config, to add what a file cannot say (a classifier) before
    /// [`build`](Builder::build), which checks every value.
    pub fn to_builder(&self) -> Builder {
        let mut builder = AdaptiveLimitLayer::builder()
            .name(self.name.clone())
            .initial_limit(self.initial_limit)
            .algorithm(self.algorithm.clone())
            .window(self.window)
            .window_samples(self.window_samples);
        if let Some(min) = self.min_limit {
            builder = builder.min_limit(min);
        }
        if let Some(max) = self.max_limit {
            builder = builder.max_limit(max);
        }
        match self.seed {
            Some(seed) => builder.seed(seed),
            None => builder,
        }
    }
}

impl AdaptiveLimitLayer {
    /// Builds an adaptive limit from a [`Config`] read from a file, counting every `Err` as a
    /// drop. For another classifier, use [`Config::to_builder`].
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives: `initial_limit`, `min_limit`,
    /// `max_limit`, `window_samples`, `name`, or an algorithm's setting named as in its table
    /// (`smoothing`, `rtt_tolerance`, `backoff_ratio`, ...).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder().build()
    }
}

/// An algorithm in a file: exactly one of its keys.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlgorithmTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gradient2: Option<Gradient2Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vegas: Option<VegasTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aimd: Option<AimdTable>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gradient2Table {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smoothing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rtt_tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    long_window: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    short_window: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue_size: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VegasTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smoothing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe_multiplier: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AimdTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff_ratio: Option<f64>,
    #[serde(
        default,
        with = "aimd_timeout",
        skip_serializing_if = "Option::is_none"
    )]
    timeout: Option<Duration>,
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Every setting is written, so a file written today reads the same after a default
        // changes.
        let mut table = AlgorithmTable::default();
        match self {
            Self::Gradient2(g) => {
                table.gradient2 = Some(Gradient2Table {
                    smoothing: Some(g.smoothing),
                    rtt_tolerance: Some(g.rtt_tolerance),
                    long_window: Some(g.long_window),
                    short_window: Some(g.short_window),
                    queue_size: Some(g.queue_size),
                });
            }
            Self::Vegas(v) => {
                table.vegas = Some(VegasTable {
                    smoothing: Some(v.smoothing),
                    probe_multiplier: Some(v.probe_multiplier),
                });
            }
            Self::Aimd(a) => {
                table.aimd = Some(AimdTable {
                    backoff_ratio: Some(a.backoff_ratio),
                    timeout: Some(a.timeout),
                });
            }
        }
        table.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = AlgorithmTable::deserialize(d)?;
        match (table.gradient2, table.vegas, table.aimd) {
            (Some(g), None, None) => Ok(Gradient2::new()
                .smoothing(g.smoothing.unwrap_or(DEFAULT_SMOOTHING))
                .rtt_tolerance(g.rtt_tolerance.unwrap_or(DEFAULT_RTT_TOLERANCE))
                .long_window(g.long_window.unwrap_or(DEFAULT_LONG_WINDOW))
                .short_window(g.short_window.unwrap_or(DEFAULT_SHORT_WINDOW))
                .queue_size(g.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE))
                .into()),
            (None, Some(v), None) => Ok(Vegas::new()
                .smoothing(v.smoothing.unwrap_or(DEFAULT_VEGAS_SMOOTHING))
                .probe_multiplier(v.probe_multiplier.unwrap_or(DEFAULT_PROBE_MULTIPLIER))
                .into()),
            (None, None, Some(a)) => Ok(Aimd::new()
                .backoff_ratio(a.backoff_ratio.unwrap_or(DEFAULT_BACKOFF_RATIO))
                .timeout(a.timeout.unwrap_or(DEFAULT_AIMD_TIMEOUT))
                .into()),
            _ => Err(D::Error::custom(
                "`algorithm` needs exactly one of `gradient2`, `vegas` or `aimd`",
            )),
        }
    }
}

impl<C> AdaptiveLimitLayer<C> {
    /// Checks a reloaded config against this running limit, and changes nothing. The bounds
    /// are copied into every clone of the layer and the algorithm's state is built for its
    /// settings, so making them live would mean moving them into shared state that calls read:
    /// a reload that keeps them passes, one that changes them is refused, naming the field,
    /// and takes a new layer.
    ///
    /// `initial_limit` was the limit before the first sample, long past for a running layer:
    /// it is checked against the bounds, not compared. `seed` is used when the layer is
    /// built; a reload ignores it. The classifier is code, and stays.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`from_config`](AdaptiveLimitLayer::from_config)
    /// gives for the config, or one naming `name`, `min_limit`, `max_limit`, `algorithm`,
    /// `window` or `window_samples` when the config changes it.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let (_, min, max) = config.to_builder().check()?;
        crate::config::check_same_name(&self.limiter.name, &config.name)?;
        let unchanged = "unchanged: a new value takes a new layer";
        if min != self.min_limit {
            return Err(ConfigError::new("min_limit", unchanged, min));
        }
        if max != self.max_limit {
            return Err(ConfigError::new("max_limit", unchanged, max));
        }
        let (algorithm, window, window_samples) = self.limiter.settings();
        if algorithm != config.algorithm {
            return Err(ConfigError::new("algorithm", unchanged, &config.algorithm));
        }
        if window != config.window {
            return Err(ConfigError::new("window", unchanged, config.window));
        }
        if usize::try_from(window_samples) != Ok(config.window_samples) {
            return Err(ConfigError::new(
                "window_samples",
                unchanged,
                config.window_samples,
            ));
        }
        Ok(())
    }
}
