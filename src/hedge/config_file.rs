//! The hedge's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HedgeLayer;
use super::config::{
    Builder, DEFAULT_BUDGET, DEFAULT_DELAY, DEFAULT_LATENCY_WINDOW, DEFAULT_MAX_HEDGED_ATTEMPTS,
    DEFAULT_MIN_SAMPLES, DEFAULT_NAME,
};
use super::state::LatencyWindow;
use crate::ConfigError;
use crate::config::duration_field;
use crate::retry::RetryBudget;

/// A hedge's settings, as read from a configuration file: one field per [`Builder`] method,
/// named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same layer as `HedgeLayer::builder().build()`. Unknown fields
/// are errors, in the `budget` table too. The policy (which requests are hedged, how they are
/// copied) and a budget shared with a retry layer are code: set them on
/// [`to_builder`](Self::to_builder)'s builder.
///
/// ```toml
/// name = "default"
/// delay = "50ms"                    # a fixed delay before each hedge
/// delay_percentile = 0.95           # absent: the fixed delay; present: replaces it
/// min_samples = 100                 # with delay_percentile
/// latency_window = "10s"            # with delay_percentile
/// max_hedged_attempts = 1
/// budget = { ratio = 0.1, min_per_sec = 10, ttl = "10s" }   # or { unlimited = true }
/// ```
///
/// The budget table is retry's (see [`retry::Config`](crate::retry::Config)), with the hedge's
/// default, a ratio of 0.1, for whatever it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::delay`]; unused when `delay_percentile` is set.
    #[serde(with = "delay")]
    pub delay: Duration,
    /// [`Builder::delay_percentile`]; `None` (absent) is the fixed `delay`. When present it
    /// replaces `delay`, as the builder's method does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_percentile: Option<f64>,
    /// [`Builder::min_samples`].
    pub min_samples: u32,
    /// [`Builder::latency_window`].
    #[serde(with = "latency_window")]
    pub latency_window: Duration,
    /// [`Builder::max_hedged_attempts`].
    pub max_hedged_attempts: u32,
    /// [`Builder::budget`].
    #[serde(deserialize_with = "budget")]
    pub budget: RetryBudget,
}

duration_field!(delay, "delay");
duration_field!(latency_window, "latency_window");

/// Reads the budget table with the hedge's defaults for the settings it leaves out (retry's
/// table fills them with retry's).
fn budget<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RetryBudget, D::Error> {
    crate::retry::deserialize_budget_with(d, DEFAULT_BUDGET)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            delay: DEFAULT_DELAY,
            delay_percentile: None,
            min_samples: DEFAULT_MIN_SAMPLES,
            latency_window: DEFAULT_LATENCY_WINDOW,
            max_hedged_attempts: DEFAULT_MAX_HEDGED_ATTEMPTS,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl Config {
    /// A builder set to this config, to add what a file cannot say (a policy, a shared budget)
    /// before [`build`](Builder::build), which checks every value.
    pub fn to_builder(&self) -> Builder {
        let builder = HedgeLayer::builder()
            .name(self.name.clone())
            .delay(self.delay)
            .min_samples(self.min_samples)
            .latency_window(self.latency_window)
            .max_hedged_attempts(self.max_hedged_attempts)
            .budget(self.budget);
        match self.delay_percentile {
            Some(percentile) => builder.delay_percentile(percentile),
            None => builder,
        }
    }
}

impl HedgeLayer {
    /// Builds a hedge from a [`Config`] read from a file, hedging every request (copied with
    /// `Clone`). For another policy, use [`Config::to_builder`].
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives, naming `max_hedged_attempts`,
    /// `delay_percentile`, `min_samples`, `latency_window` or `budget`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.to_builder().build()
    }
}

impl<P> HedgeLayer<P> {
    /// Applies a reloaded config to this running hedge, shared by every clone and every
    /// service it made, from the next call (a call in progress keeps the settings it started
    /// with): `delay`, `delay_percentile` (a switch between a fixed and a percentile delay
    /// too), `min_samples`, `latency_window`, `max_hedged_attempts` and the `budget`.
    ///
    /// What it keeps: the budget keeps what it holds, as a retry layer's does
    /// ([`RetryLayer::reconfigure`](crate::retry::RetryLayer::reconfigure)). The latency
    /// histogram keeps its samples through any change: a new percentile or `min_samples`
    /// applies at once to the window that ended last, a new `latency_window` moves the end of
    /// the current window, and a switch to a fixed delay leaves the histogram idle (no call
    /// records into it, and its settings stay), to be used again by a switch back, whose first
    /// window also holds the samples from before the switch. A switch to a percentile on a
    /// layer that never had one starts an empty histogram: no timed hedge until a window has
    /// `min_samples`.
    ///
    /// A budget shared with another layer ([`Builder::shared_budget`]) is that layer's to
    /// change: the hedge's `budget` then must stay the default. The policy is code, and stays.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`from_config`](HedgeLayer::from_config)
    /// gives for the config; one naming `name` when the config changes it (it labels the
    /// metrics registered at build); or `budget` when it turns a limited budget unlimited or
    /// back, or sets a budget the layer does not own.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let shared = self.shared();
        let _one_at_a_time = shared.reloads.one_at_a_time();
        self.check_reconfigure(config)?;
        // Checked: from here on nothing fails.
        let builder = config.to_builder();
        if shared.own_budget {
            shared.budget.reconfigure(&config.budget)?;
        }
        if builder.is_percentile() {
            let window = builder.window_settings();
            match shared.window.get() {
                Some(existing) => existing.reconfigure(window),
                // Made before the word says "percentile", so calls find it (see `live.rs`).
                None => {
                    let _ = shared.window.set(LatencyWindow::new(window));
                }
            }
        }
        shared.live.store(builder.settings());
        tracing::info!(
            hedge.name = %shared.name,
            hedge.settings = ?shared.live.load(),
            "hedge reconfigured"
        );
        Ok(())
    }

    /// What [`reconfigure`](Self::reconfigure) checks, changing nothing (for a stack that
    /// checks every layer before it changes any).
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        config.to_builder().check()?;
        let shared = self.shared();
        crate::config::check_same_name(&shared.name, &config.name)?;
        if shared.own_budget {
            shared.budget.check_reconfigure(&config.budget)
        } else if config.budget == DEFAULT_BUDGET {
            Ok(())
        } else {
            Err(ConfigError::new(
                "budget",
                "the default: this hedge draws on a shared budget, which its owner reconfigures",
                config.budget,
            ))
        }
    }
}
