//! Retry's settings as read from a file (feature `serde`): [`Config`], and the file format of a
//! [`Backoff`] and a [`RetryBudget`].

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::backoff::Curve;
use super::budget::Kind;
use super::config::{
    Builder, DEFAULT_BACKOFF, DEFAULT_BUDGET, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DELAY,
    DEFAULT_MIN_ATTEMPT_TIME, DEFAULT_NAME,
};
use super::{Backoff, Jitter, RetryBudget, RetryLayer};
use crate::ConfigError;
use crate::config::{duration_field, optional_duration_field};

/// Retry's settings, as read from a configuration file: one field per [`Builder`] method,
/// named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `RetryLayer::builder().build()`. Unknown fields
/// are errors, in the `backoff` and `budget` tables too. The retry policy, the `on_retry` hook
/// and the replay buffer are code: set them on [`to_builder`](Self::to_builder)'s builder.
///
/// ```toml
/// name = "default"
/// max_attempts = 3                  # 3 attempts = 2 retries
/// backoff = { exponential = "100ms", jitter = "full", max_delay = "10s" }
/// budget = { ratio = 0.2, min_per_sec = 10, ttl = "10s" }   # or { unlimited = true }
/// min_attempt_time = "10ms"
/// retry_rejections = false
/// seed = 42                         # absent: drawn once per layer
/// ```
///
/// A backoff table has exactly one curve, `constant`, `exponential` or `decorrelated` (its base
/// delay), and optionally `multiplier` (exponential only; 2 when absent), `jitter` (`"none"`,
/// `"full"`, `"equal"` or a percent such as `"20%"`; none when absent, as
/// [`Backoff::exponential`] has none until [`Backoff::jitter`]) and `max_delay` (10 s when
/// absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::max_attempts`].
    pub max_attempts: u32,
    /// [`Builder::backoff`].
    pub backoff: Backoff,
    /// [`Builder::budget`].
    pub budget: RetryBudget,
    /// [`Builder::min_attempt_time`].
    #[serde(with = "min_attempt_time")]
    pub min_attempt_time: Duration,
    /// [`Builder::retry_rejections`].
    pub retry_rejections: bool,
    /// [`Builder::seed`]; `None` (absent) draws one per layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            budget: DEFAULT_BUDGET,
            min_attempt_time: DEFAULT_MIN_ATTEMPT_TIME,
            retry_rejections: false,
            seed: None,
        }
    }
}

impl Config {
    /// A builder set to this config, to add what a file cannot say (a policy, an `on_retry`
    /// hook, a replay buffer) before [`build`](Builder::build), which checks every value.
    pub fn to_builder(&self) -> Builder {
        let builder = RetryLayer::builder()
            .name(self.name.clone())
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .budget(self.budget)
            .min_attempt_time(self.min_attempt_time)
            .retry_rejections(self.retry_rejections);
        match self.seed {
            Some(seed) => builder.seed(seed),
            None => builder,
        }
    }
}

impl RetryLayer {
    /// Builds a retry layer from a [`Config`] read from a file, retrying every `Err`. For
    /// another policy, use [`Config::to_builder`].
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives: it names the field as written in the
    /// file (`max_attempts`, `backoff`, `budget`).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder().build()
    }
}

impl<P, H, M> RetryLayer<P, H, M> {
    /// Whether [`reconfigure`](Self::reconfigure) would accept `config`.
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        config.to_builder().check()?;
        let shared = self.shared();
        crate::config::check_same_name(&shared.name, &config.name)?;
        shared.budget.check_reconfigure(&config.budget)
    }

    /// Applies a new config to this running layer, shared by every clone and every service it
    /// made: `max_attempts`, `backoff`, `min_attempt_time` and `retry_rejections` for the
    /// retries decided from now on, and the `budget`, which keeps its window (see below).
    ///
    /// The budget keeps what it holds: requests not yet credited are credited at the old ratio,
    /// then the new `ratio` and `min_per_sec` apply at once; a new `ttl` starts a new window
    /// that holds the old window's net balance, which expires after the new `ttl`.
    ///
    /// The policy, the hook and the replay buffer are code, and stay. `seed` is used when the
    /// layer is built; a reload ignores it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field, and nothing changes, when the config is one
    /// [`from_config`](RetryLayer::from_config) refuses, when it renames the layer (`name`: the
    /// metrics label stays), or when it changes the budget from limited to unlimited or back
    /// (`budget`).
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let shared = self.shared();
        let _one_at_a_time = shared.reloads.one_at_a_time();
        self.check_reconfigure(config)?;
        shared.budget.reconfigure(&config.budget)?;
        shared.store(
            config.max_attempts,
            config.backoff,
            config.min_attempt_time,
            config.retry_rejections,
        );
        tracing::info!(
            retry.name = %shared.name,
            retry.max_attempts = config.max_attempts,
            "retry reconfigured"
        );
        Ok(())
    }
}

duration_field!(min_attempt_time, "min_attempt_time");
optional_duration_field!(backoff_constant, "backoff.constant");
optional_duration_field!(backoff_exponential, "backoff.exponential");
optional_duration_field!(backoff_decorrelated, "backoff.decorrelated");
optional_duration_field!(backoff_max_delay, "backoff.max_delay");
optional_duration_field!(budget_ttl, "budget.ttl");

/// A backoff in a file.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffTable {
    #[serde(
        default,
        with = "backoff_constant",
        skip_serializing_if = "Option::is_none"
    )]
    constant: Option<Duration>,
    #[serde(
        default,
        with = "backoff_exponential",
        skip_serializing_if = "Option::is_none"
    )]
    exponential: Option<Duration>,
    #[serde(
        default,
        with = "backoff_decorrelated",
        skip_serializing_if = "Option::is_none"
    )]
    decorrelated: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<JitterName>,
    #[serde(
        default,
        with = "backoff_max_delay",
        skip_serializing_if = "Option::is_none"
    )]
    max_delay: Option<Duration>,
}

impl Serialize for Backoff {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut table = BackoffTable {
            max_delay: Some(self.max_delay),
            jitter: (self.jitter != Jitter::None).then_some(JitterName(self.jitter)),
            ..BackoffTable::default()
        };
        match self.curve {
            Curve::Constant(delay) => table.constant = Some(delay),
            Curve::Exponential { base, multiplier } => {
                table.exponential = Some(base);
                // The multiplier is written only when it is not the default, as it is read.
                table.multiplier = (multiplier != 2.0).then_some(multiplier);
            }
            Curve::Decorrelated(base) => table.decorrelated = Some(base),
        }
        table.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Backoff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = BackoffTable::deserialize(d)?;
        let mut backoff = match (table.constant, table.exponential, table.decorrelated) {
            (Some(delay), None, None) => Backoff::constant(delay),
            (None, Some(base), None) => Backoff::exponential(base),
            (None, None, Some(base)) => Backoff::decorrelated(base),
            _ => {
                return Err(D::Error::custom(
                    "`backoff` needs exactly one of `constant`, `exponential` or `decorrelated`",
                ));
            }
        };
        if let Some(multiplier) = table.multiplier {
            if table.exponential.is_none() {
                return Err(D::Error::custom(
                    "`backoff.multiplier` applies only to an `exponential` backoff",
                ));
            }
            backoff = backoff.multiplier(multiplier);
        }
        if let Some(JitterName(jitter)) = table.jitter {
            backoff = backoff.jitter(jitter);
        }
        Ok(backoff.max_delay(table.max_delay.unwrap_or(DEFAULT_MAX_DELAY)))
    }
}

/// A jitter in a file: `"none"`, `"full"`, `"equal"`, or a percent such as `"20%"`.
struct JitterName(Jitter);

impl Serialize for JitterName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Jitter::Full => s.serialize_str("full"),
            Jitter::Equal => s.serialize_str("equal"),
            Jitter::Percent(p) => s.collect_str(&format_args!("{p}%")),
            _ => s.serialize_str("none"),
        }
    }
}

impl<'de> Deserialize<'de> for JitterName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let jitter = match name.as_str() {
            "none" => Jitter::None,
            "full" => Jitter::Full,
            "equal" => Jitter::Equal,
            other => match other
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<u8>().ok())
            {
                Some(p) => Jitter::Percent(p),
                None => {
                    return Err(D::Error::custom(format_args!(
                        "unknown `backoff.jitter` {other:?}, expected \"none\", \"full\", \
                         \"equal\" or a percent such as \"20%\""
                    )));
                }
            },
        };
        Ok(Self(jitter))
    }
}

/// A budget in a file.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_per_sec: Option<u32>,
    #[serde(default, with = "budget_ttl", skip_serializing_if = "Option::is_none")]
    ttl: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unlimited: Option<bool>,
}

impl Serialize for RetryBudget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.kind {
            Kind::Unlimited => BudgetTable {
                unlimited: Some(true),
                ..BudgetTable::default()
            },
            Kind::Tps {
                ratio,
                min_per_sec,
                ttl,
            } => BudgetTable {
                ratio: Some(ratio),
                min_per_sec: Some(min_per_sec),
                ttl: Some(ttl),
                unlimited: None,
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RetryBudget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_budget_with(d, DEFAULT_BUDGET)
    }
}

/// Reads a budget table, taking what it leaves out from `default`: each layer that draws on a
/// budget (retry, hedge) has its own default.
pub(crate) fn deserialize_budget_with<'de, D: Deserializer<'de>>(
    d: D,
    default: RetryBudget,
) -> Result<RetryBudget, D::Error> {
    let table = BudgetTable::deserialize(d)?;
    if table.unlimited == Some(true) {
        if table.ratio.is_some() || table.min_per_sec.is_some() || table.ttl.is_some() {
            return Err(D::Error::custom(
                "`budget.unlimited` cannot be set with `ratio`, `min_per_sec` or `ttl`",
            ));
        }
        return Ok(RetryBudget::unlimited());
    }
    let Kind::Tps {
        ratio,
        min_per_sec,
        ttl,
    } = default.kind
    else {
        return Ok(default);
    };
    Ok(RetryBudget::new(
        table.ratio.unwrap_or(ratio),
        table.min_per_sec.unwrap_or(min_per_sec),
        table.ttl.unwrap_or(ttl),
    ))
}
