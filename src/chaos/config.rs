//! The chaos layer's builder, its defaults and their validation.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use super::layer::ChaosLayer;
use super::state::Core;
use crate::ConfigError;

/// Defaults to 0.0: no call fails at random.
pub const DEFAULT_ERROR_RATE: f64 = 0.0;
/// Defaults to `true`: a built layer injects what it was configured with at once. A layer with
/// no fault configured injects nothing either way.
pub const DEFAULT_ENABLED: bool = true;
/// Defaults to `"default"`, the `name` label of metrics and events.
pub const DEFAULT_NAME: &str = "default";
/// The longest delay [`Builder::latency`] and [`Builder::latency_range`] accept: one hour.
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// Added latency, validated: a delay in `[min, min + span_nanos]` for a `rate` of the calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    pub(crate) rate: f64,
    pub(crate) min: Duration,
    pub(crate) span_nanos: u64,
}

/// A scheduled outage, as offsets from the layer's build instant: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: Duration,
    pub(crate) end: Duration,
}

/// The validated settings a layer runs with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Arc<str>,
    pub(crate) error_rate: f64,
    pub(crate) latency: Option<Latency>,
    pub(crate) outages: Box<[Window]>,
    pub(crate) seed: u64,
    pub(crate) enabled: bool,
}

impl Config {
    /// Whether any fault is configured (a manual outage needs none).
    #[inline]
    pub(crate) fn has_faults(&self) -> bool {
        self.error_rate > 0.0 || self.latency.is_some() || !self.outages.is_empty()
    }
}

/// Latency as given to the builder, checked by `build()`.
#[derive(Debug, Clone, Copy)]
struct LatencySetting {
    /// The setter that gave it: `latency` or `latency_range`.
    field: &'static str,
    rate: f64,
    min: Duration,
    max: Duration,
}

/// Builds a [`ChaosLayer`]; see the [module docs](super) for what each setting does.
///
/// Every setter takes any value; [`build`](Builder::build) checks them all and returns a
/// [`ConfigError`] naming the first setter whose value is out of range.
pub struct Builder<R = ()> {
    name: Arc<str>,
    error_rate: f64,
    latency: Option<LatencySetting>,
    outages: Vec<(Duration, Duration)>,
    seed: Option<u64>,
    enabled: bool,
    response: R,
}

impl<R> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("error_rate", &self.error_rate)
            .field("latency", &self.latency)
            .field("outages", &self.outages)
            .field("seed", &self.seed)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with every default: a layer that injects nothing.
    pub fn new() -> Self {
        Self {
            name: Arc::from(DEFAULT_NAME),
            error_rate: DEFAULT_ERROR_RATE,
            latency: None,
            outages: Vec::new(),
            seed: None,
            enabled: DEFAULT_ENABLED,
            response: (),
        }
    }
}

impl<R> Builder<R> {
    /// Names this layer in metrics (the `name` label) and events (`chaos.name`).
    ///
    /// Defaults to `"default"`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Arc::from(&*name.into());
        self
    }

    /// The fraction of calls that fail with an injected [`FaultKind::Error`] instead of reaching
    /// the inner service. In [0, 1]: 0 fails none, 1 fails every call.
    ///
    /// Defaults to 0.0.
    ///
    /// [`FaultKind::Error`]: super::FaultKind::Error
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate;
        self
    }

    /// Delays a `rate` (in [0, 1]) of the calls that no fault failed by `delay` before they reach
    /// the inner service. `delay` is at most [`MAX_LATENCY`]. Replaces an earlier `latency` or
    /// `latency_range`.
    ///
    /// Defaults to no added latency.
    pub fn latency(mut self, rate: f64, delay: Duration) -> Self {
        self.latency = Some(LatencySetting {
            field: "latency",
            rate,
            min: delay,
            max: delay,
        });
        self
    }

    /// Delays a `rate` (in [0, 1]) of the calls that no fault failed by a delay drawn uniformly
    /// from `[min, max]` before they reach the inner service. `min <= max <= MAX_LATENCY`.
    /// Replaces an earlier `latency` or `latency_range`.
    ///
    /// Defaults to no added latency.
    pub fn latency_range(mut self, rate: f64, min: Duration, max: Duration) -> Self {
        self.latency = Some(LatencySetting {
            field: "latency_range",
            rate,
            min,
            max,
        });
        self
    }

    /// Schedules a full outage: every call made from `start` after the layer is built, for
    /// `duration` (the window `[start, start + duration)`), fails with an injected
    /// [`FaultKind::Outage`]. `duration` is more than zero. Each call adds one window; windows
    /// may overlap.
    ///
    /// Defaults to no scheduled outage.
    ///
    /// [`FaultKind::Outage`]: super::FaultKind::Outage
    pub fn outage_at(mut self, start: Duration, duration: Duration) -> Self {
        self.outages.push((start, duration));
        self
    }

    /// Seeds the generator that picks the calls to fail and to delay: the same seed gives the
    /// same decisions for the same sequence of calls.
    ///
    /// Defaults to a seed drawn once per layer.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether the built layer starts switched on. A layer built switched off injects nothing
    /// until [`ChaosHandle::enable`](super::ChaosHandle::enable).
    ///
    /// Defaults to `true` (a layer with no fault configured injects nothing anyway).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Answers injected faults with a response made by `response` instead of an `Err`: for
    /// example an HTTP 503, so that an axum stack can stay infallible. The response is made in
    /// `call`, once per injected fault.
    ///
    /// Defaults to failing with [`InjectedFault`](super::InjectedFault).
    pub fn error_response<F>(self, response: F) -> Builder<F> {
        Builder {
            name: self.name,
            error_rate: self.error_rate,
            latency: self.latency,
            outages: self.outages,
            seed: self.seed,
            enabled: self.enabled,
            response,
        }
    }

    /// Checks every setting and builds the layer, with its shared state. Scheduled outages count
    /// from now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setter whose value is out of range.
    pub fn build(self) -> Result<ChaosLayer<R>, ConfigError> {
        check_rate("error_rate", self.error_rate)?;
        let latency = match self.latency {
            None => None,
            Some(setting) => Some(check_latency(setting)?),
        };
        let outages = self
            .outages
            .iter()
            .map(|&(start, duration)| check_outage(start, duration))
            .collect::<Result<Box<[Window]>, ConfigError>>()?;
        let config = Config {
            name: self.name,
            error_rate: self.error_rate,
            latency,
            outages,
            seed: self
                .seed
                .unwrap_or_else(|| RandomState::new().hash_one(0xc4a0_5eed_u64)),
            enabled: self.enabled,
        };
        Ok(ChaosLayer::from_parts(
            crate::sync::Arc::new(Core::new(config)),
            self.response,
        ))
    }
}

/// Checks a rate in [0, 1]. Rejects NaN.
fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::new(field, "a fraction in [0, 1]", rate))
    }
}

fn check_latency(setting: LatencySetting) -> Result<Latency, ConfigError> {
    let LatencySetting {
        field,
        rate,
        min,
        max,
    } = setting;
    check_rate(field, rate)?;
    if min > max || max > MAX_LATENCY {
        let rule = format!("a delay of at most {MAX_LATENCY:?}, with min <= max");
        return Err(if field == "latency" {
            ConfigError::new(field, &rule, max)
        } else {
            ConfigError::new(field, &rule, min..max)
        });
    }
    // At most an hour: the span fits in u64 nanoseconds.
    let span_nanos = u64::try_from((max - min).as_nanos())
        .map_err(|_| ConfigError::new(field, "a span that fits in u64 nanoseconds", max - min))?;
    Ok(Latency {
        rate,
        min,
        span_nanos,
    })
}

fn check_outage(start: Duration, duration: Duration) -> Result<Window, ConfigError> {
    if duration.is_zero() {
        return Err(ConfigError::new(
            "outage_at",
            "a duration of more than zero",
            duration,
        ));
    }
    match start.checked_add(duration) {
        Some(end) => Ok(Window { start, end }),
        None => Err(ConfigError::new(
            "outage_at",
            "a window whose end fits in a Duration",
            (start, duration),
        )),
    }
}
