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
    /// `max_limit`, `window_samples`, `name`, or an algorithm's setting named by its path in the
    /// file (`algorithm.gradient2.smoothing`, `algorithm.aimd.backoff_ratio`, ...).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config
            .to_builder()
            .build()
            .map_err(|e| in_file(e, &config.algorithm))
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
    /// Applies a reloaded config to this running limit, shared by every clone and every
    /// service it made, under the lock its calls only ever try (off the call path: a call that
    /// ends meanwhile skips its sample, as when another call holds the lock).
    ///
    /// - `min_limit`, `max_limit`: the new bounds; the current limit is clamped into them (a
    ///   limit of 50 under a new `max_limit` of 30 is 30 at once, and calls above it finish).
    /// - `algorithm`: the same algorithm keeps its state (Gradient2's averages, Vegas' no-load
    ///   latency and probe count) and takes its new settings at the next window; another one
    ///   starts fresh from the current limit, clamped.
    /// - `window`, `window_samples`: the window in progress is dropped and a new one starts.
    ///
    /// `initial_limit` was the limit before the first sample, long past for a running layer:
    /// it is checked against the bounds, not applied. `seed` seeds a new Vegas (a seed is drawn
    /// when absent). The classifier is code, and stays.
    ///
    /// AIMD's `timeout` also decides when a cancelled call counts as a drop, which every call
    /// reads from the layer as built: a config that changes it (a new `algorithm.aimd.timeout`,
    /// or a change to or from AIMD, field `algorithm`) is refused.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`from_config`](AdaptiveLimitLayer::from_config)
    /// gives for the config (an algorithm's setting named by its path in the file,
    /// `algorithm.gradient2.smoothing`), one naming `name` when it renames the layer, or one
    /// naming the AIMD timeout as above.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let (min, max, window_samples) = self.check_reconfigure(config)?;
        let seed = config
            .seed
            .unwrap_or_else(|| crate::random::random_seed(config as *const Config as usize));
        let (algorithm, window, samples) = self.limiter.settings();
        let kind = std::mem::discriminant(&algorithm);
        let new_algorithm = kind != std::mem::discriminant(&config.algorithm);
        let new_window = (window, samples) != (config.window, window_samples);
        let (old, new) = self.limiter.retune(
            config.algorithm.clone(),
            (min, max),
            (config.window, window_samples),
            seed,
        );
        tracing::info!(
            limit.name = %self.limiter.name,
            limit.min_limit = min,
            limit.max_limit = max,
            limit.previous = old,
            limit.limit = new,
            limit.new_algorithm = new_algorithm,
            limit.new_window = new_window,
            "concurrency limit reconfigured"
        );
        Ok(())
    }

    /// Whether [`reconfigure`](Self::reconfigure) would accept `config`: the bounds and the
    /// window's fewest samples to apply if so.
    pub(crate) fn check_reconfigure(
        &self,
        config: &Config,
    ) -> Result<(u32, u32, u32), ConfigError> {
        let (_, min, max) = config
            .to_builder()
            .check()
            .map_err(|e| in_file(e, &config.algorithm))?;
        crate::config::check_same_name(&self.limiter.name, &config.name)?;
        let cancel_timeout = config.algorithm.cancel_timeout();
        if cancel_timeout != self.limiter.cancel_timeout {
            let field = match (&config.algorithm, self.limiter.cancel_timeout) {
                (Algorithm::Aimd(_), Some(_)) => "algorithm.aimd.timeout",
                _ => "algorithm",
            };
            return Err(ConfigError::new(
                field,
                "unchanged: AIMD's timeout (a cancelled call past it is a drop) is fixed when \
                 the layer is built, and so is whether the algorithm is AIMD",
                &config.algorithm,
            ));
        }
        let window_samples = u32::try_from(config.window_samples).map_err(|_| {
            ConfigError::new(
                "window_samples",
                "in [1, 4294967295]",
                config.window_samples,
            )
        })?;
        Ok((min, max, window_samples))
    }
}

/// `error` with an algorithm's setting named by its path in a file: `smoothing` of a Gradient2
/// is `algorithm.gradient2.smoothing`. The algorithms' own checks name their setters, as
/// written in code.
fn in_file(error: ConfigError, algorithm: &Algorithm) -> ConfigError {
    let path = match (algorithm, error.field()) {
        (Algorithm::Gradient2(_), "smoothing") => "algorithm.gradient2.smoothing",
        (Algorithm::Gradient2(_), "rtt_tolerance") => "algorithm.gradient2.rtt_tolerance",
        (Algorithm::Gradient2(_), "long_window") => "algorithm.gradient2.long_window",
        (Algorithm::Gradient2(_), "short_window") => "algorithm.gradient2.short_window",
        (Algorithm::Gradient2(_), "queue_size") => "algorithm.gradient2.queue_size",
        (Algorithm::Vegas(_), "smoothing") => "algorithm.vegas.smoothing",
        (Algorithm::Vegas(_), "probe_multiplier") => "algorithm.vegas.probe_multiplier",
        (Algorithm::Aimd(_), "backoff_ratio") => "algorithm.aimd.backoff_ratio",
        (Algorithm::Aimd(_), "timeout") => "algorithm.aimd.timeout",
        _ => return error,
    };
    error.at(path)
}
