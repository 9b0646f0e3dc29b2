//! The pool's builder.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use super::live::Settings;
use super::state::MAX_CONSECUTIVE_FAILURES;
use super::{Endpoint, Pool};
use crate::circuit_breaker::window::MAX_COUNT_WINDOW;
use crate::classify::ErrorsAsFailures;
use crate::error::{ConfigError, check_fraction, check_range};

/// Default for [`Builder::consecutive_failures`]: 5 failures in a row eject an endpoint, as in
/// Envoy.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;

/// Default for [`Builder::base_ejection_time`]: 30 s, as in Envoy.
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);

/// Default for [`Builder::max_ejection_time`]: 300 s, as in Envoy.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// Default for [`Builder::max_ejected_fraction`]: 0.1 (Envoy's `max_ejection_percent` of 10 %);
/// at least one endpoint may always be ejected.
pub const DEFAULT_MAX_EJECTED_FRACTION: f64 = 0.1;

/// Default for [`Builder::panic_threshold`]: 0.5, as Envoy's healthy panic threshold.
pub const DEFAULT_PANIC_THRESHOLD: f64 = 0.5;

/// Default for [`Builder::unhealthy_threshold`]: 2 failed probes in a row.
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 2;

/// Default for [`Builder::healthy_threshold`]: 2 passed probes in a row.
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;

/// Default for [`Builder::name`]: `"default"`.
pub const DEFAULT_NAME: &str = "default";

/// The builder of a pool without active health checks (the type parameter of [`Builder`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHealthCheck {
    _priv: (),
}

/// An active health check: its interval and its probe (the type parameter of [`Builder`] after
/// [`Builder::health_check`]).
#[derive(Clone)]
pub struct HealthCheck<P> {
    pub(crate) interval: Duration,
    pub(crate) probe: P,
}

impl<P> fmt::Debug for HealthCheck<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Pool`]; made by [`Pool::builder`]. See the [module docs](super) for what each
/// setting does and how the settings interact.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct Builder<C = ErrorsAsFailures, H = NoHealthCheck> {
    /// What a running pool reads (and a reload changes), as set so far; checked by
    /// [`validate`](Self::validate).
    pub(crate) settings: Settings,
    /// Seeds the clones' draws (see [`seed`](Self::seed)); `None`: a random seed per clone.
    pub(crate) seed: Option<u64>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) classify: C,
    pub(crate) health: H,
}

/// The settings of a pool built with the defaults: the builder's, and a file's `Config`'s.
pub(crate) const DEFAULT_SETTINGS: Settings = Settings {
    consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
    base_ejection_time: DEFAULT_BASE_EJECTION_TIME,
    max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
    max_ejected_fraction: DEFAULT_MAX_EJECTED_FRACTION,
    panic_threshold: DEFAULT_PANIC_THRESHOLD,
    failure_rate: None,
    unhealthy_threshold: DEFAULT_UNHEALTHY_THRESHOLD,
    healthy_threshold: DEFAULT_HEALTHY_THRESHOLD,
};

impl Default for Builder {
    fn default() -> Self {
        Self {
            settings: DEFAULT_SETTINGS,
            seed: None,
            name: Cow::Borrowed(DEFAULT_NAME),
            classify: ErrorsAsFailures::new(),
            health: NoHealthCheck::default(),
        }
    }
}

impl<C, H> Builder<C, H> {
    /// How many failures in a row eject an endpoint, in `[1, 4095]`. What a failure is, the
    /// [`classify`](Self::classify)r decides; a local rejection never counts.
    ///
    /// Defaults to [`DEFAULT_CONSECUTIVE_FAILURES`] (5).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.settings.consecutive_failures = n;
        self
    }

    /// The length of an endpoint's first ejection; its `n`-th lasts `n` times this, up to
    /// [`max_ejection_time`](Self::max_ejection_time). At least 1 ms.
    ///
    /// Defaults to [`DEFAULT_BASE_EJECTION_TIME`] (30 s).
    pub fn base_ejection_time(mut self, time: Duration) -> Self {
        self.settings.base_ejection_time = time;
        self
    }

    /// The longest an ejection lasts, at least `base_ejection_time`.
    ///
    /// Defaults to [`DEFAULT_MAX_EJECTION_TIME`] (300 s).
    pub fn max_ejection_time(mut self, time: Duration) -> Self {
        self.settings.max_ejection_time = time;
        self
    }

    /// The largest fraction of the endpoints that may be ejected at once, in `[0, 1]`; at least
    /// one endpoint may always be ejected (`max(1, ⌊fraction × endpoints⌋)`). Unhealthy
    /// endpoints do not count toward it.
    ///
    /// Defaults to [`DEFAULT_MAX_EJECTED_FRACTION`] (0.1).
    pub fn max_ejected_fraction(mut self, fraction: f64) -> Self {
        self.settings.max_ejected_fraction = fraction;
        self
    }

    /// When fewer than this fraction of all endpoints are eligible (healthy), calls go to every
    /// endpoint, ejected and unhealthy ones included, rather than overload the few left or be
    /// refused. In `[0, 1]`; 0 turns panic routing off.
    ///
    /// Defaults to [`DEFAULT_PANIC_THRESHOLD`] (0.5).
    pub fn panic_threshold(mut self, fraction: f64) -> Self {
        self.settings.panic_threshold = fraction;
        self
    }

    /// Also ejects an endpoint when at least `threshold` (a fraction in (0, 1]) of its last
    /// `calls` calls failed (`calls` in `[1, 10000]`), once it has made that many since it was
    /// inserted or last ejected: Envoy's failure-percentage ejection, counted in the circuit
    /// breaker's count window. It catches an endpoint that fails often but not in a row. The
    /// ejection time and the cap are those of consecutive failures.
    ///
    /// Defaults to off. A healthy call then costs one more atomic load.
    pub fn failure_rate(mut self, threshold: f64, calls: u32) -> Self {
        self.settings.failure_rate = Some((threshold, calls));
        self
    }

    /// Failed probes in a row that mark an endpoint unhealthy, in `[1, 65535]`. Only with a
    /// [`health_check`](Self::health_check).
    ///
    /// Defaults to [`DEFAULT_UNHEALTHY_THRESHOLD`] (2).
    pub fn unhealthy_threshold(mut self, n: u32) -> Self {
        self.settings.unhealthy_threshold = n;
        self
    }

    /// Passed probes in a row that bring an unhealthy endpoint back, in `[1, 65535]`. Only with
    /// a [`health_check`](Self::health_check).
    ///
    /// Defaults to [`DEFAULT_HEALTHY_THRESHOLD`] (2).
    pub fn healthy_threshold(mut self, n: u32) -> Self {
        self.settings.healthy_threshold = n;
        self
    }

    /// Seeds the pool's random draws, for runs that repeat exactly (a test, a simulation): the
    /// power of two choices and its ties, and the health check's first round. The pool built
    /// and each clone made from it draw from their own stream of this seed, the `n`-th clone
    /// made the `n`-th stream, so runs that make their clones in the same order draw the same;
    /// a seeded clone costs one shared atomic increment more.
    ///
    /// Defaults to a random seed per clone.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The instance name: the `name` label of the metrics and the `pool.name` field of the
    /// tracing events. Must not be empty.
    ///
    /// Defaults to [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// What counts as a failure of an endpoint: a [`Classify`](crate::classify::Classify) of
    /// the endpoint's results (for HTTP, tower-http's `ServerErrorsAsFailures` counts 5xx
    /// responses; for gRPC, `GrpcErrorsAsFailures`). Whatever it says, a local rejection
    /// ([`is_rejection`](crate::is_rejection)) never counts.
    ///
    /// Defaults to [`ErrorsAsFailures`]: every `Err`.
    pub fn classify<C2>(self, classify: C2) -> Builder<C2, H> {
        Builder {
            settings: self.settings,
            seed: self.seed,
            name: self.name,
            classify,
            health: self.health,
        }
    }

    /// Probes every endpoint every `interval` with `probe(key)`, a future that answers whether
    /// the endpoint is healthy (a probe that takes longer than `interval` has failed). See the
    /// [module docs](super#active-health-checks). `interval` is at least 1 ms.
    ///
    /// The probe task is spawned by [`build`](Builder::build) on the tokio runtime it is called
    /// in, and stops when the last clone of the pool is dropped.
    ///
    /// Defaults to no health check.
    pub fn health_check<P>(self, interval: Duration, probe: P) -> Builder<C, HealthCheck<P>> {
        Builder {
            settings: self.settings,
            seed: self.seed,
            name: self.name,
            classify: self.classify,
            health: HealthCheck { interval, probe },
        }
    }

    /// The settings a running pool reads, as set here (checked by [`validate`](Self::validate)).
    pub(crate) fn settings(&self) -> Settings {
        self.settings
    }

    /// The one validation of the settings, for [`build`](Builder::build) and for a config's
    /// [`to_builder`](super::Config::to_builder) (and so for a reload).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "consecutive_failures",
            self.settings.consecutive_failures,
            1,
            MAX_CONSECUTIVE_FAILURES,
        )?;
        if self.settings.base_ejection_time < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "base_ejection_time",
                "at least 1ms",
                self.settings.base_ejection_time,
            ));
        }
        if self.settings.max_ejection_time < self.settings.base_ejection_time {
            return Err(ConfigError::new(
                "max_ejection_time",
                "at least base_ejection_time",
                self.settings.max_ejection_time,
            ));
        }
        check_unit("max_ejected_fraction", self.settings.max_ejected_fraction)?;
        if let Some((threshold, calls)) = self.settings.failure_rate {
            check_fraction("failure_rate", threshold)?;
            check_range("failure_rate", calls, 1, MAX_COUNT_WINDOW)?;
        }
        check_unit("panic_threshold", self.settings.panic_threshold)?;
        check_range(
            "unhealthy_threshold",
            self.settings.unhealthy_threshold,
            1,
            65_535,
        )?;
        check_range(
            "healthy_threshold",
            self.settings.healthy_threshold,
            1,
            65_535,
        )?;
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "a non-empty string", &*self.name));
        }
        Ok(())
    }
}

/// Checks a fraction in `[0, 1]`, NaN rejected.
fn check_unit(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(field, "a fraction in [0, 1]", value))
    }
}

impl<C> Builder<C, NoHealthCheck> {
    /// Checks the configuration and builds the pool over `endpoints` (which may be empty:
    /// endpoints can be inserted later). Each item is an [`Endpoint`] or a `(key, service)`
    /// pair (tier 0). A key given twice keeps its last endpoint.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setter whose value is out of range.
    pub fn build<K, S, I>(self, endpoints: I) -> Result<Pool<K, S, C>, ConfigError>
    where
        K: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Into<Endpoint<K, S>>,
    {
        self.validate()?;
        Ok(Pool::from_builder(self, endpoints).0)
    }
}

impl<C, P> Builder<C, HealthCheck<P>> {
    /// Checks the configuration, builds the pool over `endpoints` (which may be empty) and
    /// spawns its health check task on the current tokio runtime. Each item is an
    /// [`Endpoint`] or a `(key, service)` pair (tier 0).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setter whose value is out of range, or naming
    /// `health_check` when it is called outside a tokio runtime.
    pub fn build<K, S, I, F>(self, endpoints: I) -> Result<Pool<K, S, C>, ConfigError>
    where
        K: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static,
        S: Send + Sync + 'static,
        P: Fn(K) -> F + Send + Sync + 'static,
        F: Future<Output = bool> + Send + 'static,
        I: IntoIterator,
        I::Item: Into<Endpoint<K, S>>,
    {
        self.validate()?;
        if self.health.interval < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "health_check",
                "an interval of at least 1ms",
                self.health.interval,
            ));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(ConfigError::new(
                "health_check",
                "called inside a tokio runtime (the probe task runs on it)",
                "no runtime",
            ));
        };
        let (pool, health) = Pool::from_builder(self, endpoints);
        super::health::spawn(&runtime, &pool, health.interval, health.probe);
        Ok(pool)
    }
}
