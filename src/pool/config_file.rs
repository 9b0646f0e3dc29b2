//! The pool's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Pool;
use super::config::{Builder, DEFAULT_NAME, DEFAULT_SETTINGS};
use super::live::Settings;
use crate::ConfigError;
use crate::config::duration_field;

/// A pool's settings, as read from a configuration file: one field per [`Builder`] method,
/// named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` gives the same builder as [`Pool::builder()`]. Unknown fields are
/// errors, in the `failure_rate` table too.
///
/// The endpoints, the health probe and the classifier are code, and the builder's type changes
/// with the last two, so a file gives a builder rather than a pool: see
/// [`to_builder`](Self::to_builder). A running pool takes a reloaded config with
/// [`Pool::reconfigure`], which keeps its state.
///
/// ```toml
/// name = "default"
/// consecutive_failures = 5
/// base_ejection_time = "30s"
/// max_ejection_time = "5m"
/// max_ejected_fraction = 0.1
/// panic_threshold = 0.5
/// failure_rate = { threshold = 0.5, calls = 100 }   # absent: off
/// unhealthy_threshold = 2            # with a health check
/// healthy_threshold = 2              # with a health check
/// seed = 42                          # absent: a random seed per clone
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::consecutive_failures`].
    pub consecutive_failures: u32,
    /// [`Builder::base_ejection_time`].
    #[serde(with = "base_ejection_time")]
    pub base_ejection_time: Duration,
    /// [`Builder::max_ejection_time`].
    #[serde(with = "max_ejection_time")]
    pub max_ejection_time: Duration,
    /// [`Builder::max_ejected_fraction`].
    pub max_ejected_fraction: f64,
    /// [`Builder::panic_threshold`].
    pub panic_threshold: f64,
    /// [`Builder::failure_rate`]; `None` (absent) is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<FailureRate>,
    /// [`Builder::unhealthy_threshold`].
    pub unhealthy_threshold: u32,
    /// [`Builder::healthy_threshold`].
    pub healthy_threshold: u32,
    /// [`Builder::seed`]; `None` (absent) draws a random seed per clone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Failure-rate ejection in a file, `{ threshold = 0.5, calls = 100 }`: the arguments of
/// [`Builder::failure_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FailureRate {
    /// The fraction of the last `calls` calls that must fail, in (0, 1].
    pub threshold: f64,
    /// How many of an endpoint's last calls are counted, in `[1, 10000]`.
    pub calls: u32,
}

impl FailureRate {
    /// `threshold` of the last `calls` calls, as [`Builder::failure_rate`] takes them.
    pub const fn new(threshold: f64, calls: u32) -> Self {
        Self { threshold, calls }
    }
}

duration_field!(base_ejection_time, "base_ejection_time");
duration_field!(max_ejection_time, "max_ejection_time");

impl Default for Config {
    fn default() -> Self {
        let Settings {
            consecutive_failures,
            base_ejection_time,
            max_ejection_time,
            max_ejected_fraction,
            panic_threshold,
            failure_rate,
            unhealthy_threshold,
            healthy_threshold,
        } = DEFAULT_SETTINGS;
        Self {
            name: DEFAULT_NAME.to_owned(),
            consecutive_failures,
            base_ejection_time,
            max_ejection_time,
            max_ejected_fraction,
            panic_threshold,
            failure_rate: failure_rate.map(|(threshold, calls)| FailureRate { threshold, calls }),
            unhealthy_threshold,
            healthy_threshold,
            seed: None,
        }
    }
}

impl Config {
    /// A builder set to this config and checked, for the settings a file cannot hold:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use steadfast::pool::Config;
    /// # use tower::service_fn;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config: Config = toml::from_str("consecutive_failures = 3")?;
    /// let svc = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    /// let pool = config
    ///     .to_builder()?
    ///     .health_check(Duration::from_secs(5), |_key: &'static str| async { true })
    ///     .build([("a", svc)])?;
    /// # let _ = pool;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A pool takes its endpoints and, optionally, a probe and a classifier, each of which
    /// changes the builder's type; a `Pool::from_config` would cover only the pool with
    /// neither, so the file gives the builder instead, checked here so that a bad file fails
    /// where it is read. [`build`](Builder::build) checks again (the cost is a few
    /// comparisons), covering the code's settings.
    ///
    /// A running pool takes a new config with [`Pool::reconfigure`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range, as [`build`](Builder::build) would:
    /// `consecutive_failures`, `base_ejection_time`, `max_ejection_time`,
    /// `max_ejected_fraction`, `panic_threshold`, `failure_rate`, `unhealthy_threshold`,
    /// `healthy_threshold` or `name`.
    pub fn to_builder(&self) -> Result<Builder, ConfigError> {
        let builder = Pool::builder()
            .name(self.name.clone())
            .consecutive_failures(self.consecutive_failures)
            .base_ejection_time(self.base_ejection_time)
            .max_ejection_time(self.max_ejection_time)
            .max_ejected_fraction(self.max_ejected_fraction)
            .panic_threshold(self.panic_threshold)
            .unhealthy_threshold(self.unhealthy_threshold)
            .healthy_threshold(self.healthy_threshold);
        let builder = match self.failure_rate {
            Some(FailureRate { threshold, calls }) => builder.failure_rate(threshold, calls),
            None => builder,
        };
        let builder = match self.seed {
            Some(seed) => builder.seed(seed),
            None => builder,
        };
        builder.validate()?;
        Ok(builder)
    }
}

impl<K, S, C> Pool<K, S, C> {
    /// What every clone shares but the endpoints: for the tests of reloads.
    #[cfg(all(test, not(steadfast_loom)))]
    pub(crate) fn core(&self) -> &super::member::Core {
        &self.shared.core
    }

    /// Applies a reloaded config to this running pool, shared by every clone, and keeps its
    /// state: the endpoints, their calls in flight, their ejection counts, the ejections in
    /// progress and the health check's streaks.
    ///
    /// What changes, and from when:
    ///
    /// - `consecutive_failures`: from the next failure, against the run counted so far (a run
    ///   already at the new, lower threshold ejects at its next failure).
    /// - `base_ejection_time`, `max_ejection_time`: for the ejections that start afterwards,
    ///   whose length is still `n × base` (at most `max`) for the endpoint's `n`-th ejection.
    ///   An ejection in progress keeps the end it was given.
    /// - `max_ejected_fraction`: for the next ejection. A lower cap ends no ejection in
    ///   progress; it only refuses new ones until fewer are ejected.
    /// - `panic_threshold`: every clone recomputes its routing at its next call (the start or
    ///   end of panic routing it causes is reported at once).
    /// - `failure_rate`'s `threshold`: at the next outcome each endpoint's window counts.
    /// - `unhealthy_threshold`, `healthy_threshold`: at the health check's next verdict,
    ///   against the streaks counted so far.
    ///
    /// `seed` is used when the pool is built, and a reload ignores it (as the breaker's).
    ///
    /// A call racing the reload may see some of the new settings and not yet others; the next
    /// sees them all. The healthy call path reads none of them, so reloading costs it nothing.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`], and nothing changes: the one [`Config::to_builder`] gives for the
    /// config; one naming `name` when the config changes it (the name labels the metrics
    /// registered at build); or one naming `failure_rate` when the config turns failure-rate
    /// ejection on or off or changes its `calls`: each endpoint's window is sized when the
    /// endpoint is made, and is read without a lock by every call, so a new size takes a new
    /// pool.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let _one_at_a_time = self.shared.core.reloads.one_at_a_time();
        let settings = self.check_reconfigure(config)?;
        self.shared.reconfigure(&settings);
        tracing::info!(
            pool.name = %self.shared.core.name,
            pool.settings = ?settings,
            "pool reconfigured"
        );
        Ok(())
    }

    /// What [`reconfigure`](Self::reconfigure) checks, changing nothing: the settings it would
    /// apply, or its error (for a stack that checks every layer before it changes any).
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<Settings, ConfigError> {
        let settings = config.to_builder()?.settings();
        let core = &*self.shared.core;
        crate::config::check_same_name(&core.name, &config.name)?;
        let calls = settings.failure_rate.map(|(_, calls)| calls);
        if calls != core.failure_rate_calls {
            let built = match core.failure_rate_calls {
                Some(calls) => format!("on with calls = {calls}, as built"),
                None => "absent (off), as built".to_owned(),
            };
            return Err(ConfigError::new(
                "failure_rate",
                &format!(
                    "{built}: each endpoint's window is sized when it is made, so a new size \
                     takes a new pool"
                ),
                config.failure_rate,
            ));
        }
        Ok(settings)
    }
}
