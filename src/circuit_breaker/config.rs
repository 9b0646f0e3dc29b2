//! The breaker's builder, its defaults and their validation.

use std::borrow::Cow;
use std::fmt;
// std's `Arc` for the name and the listener, written once at build and never raced on; the
// breaker's own `Arc` is `crate::sync`'s, so that the loom models see it.
use std::sync::Arc;
use std::time::Duration;

use super::layer::CircuitBreakerLayer;
use super::state::{MAX_HALF_OPEN_CALLS, MAX_OPEN_UNTIL_MS};
use super::telemetry::{Listener, Transition};
use super::window::{MAX_BUCKETS, MAX_COUNT_WINDOW};
use super::{Breaker, State};
use crate::ConfigError;
use crate::classify::ErrorsAsFailures;
use crate::error::{check_fraction, check_range};
use crate::keyed::Bounds;

/// Defaults to a count window of the last 100 outcomes.
pub const DEFAULT_SLIDING_WINDOW: SlidingWindow = SlidingWindow::Count(100);
/// Defaults to 0.5: open when half the calls in the window fail.
pub const DEFAULT_FAILURE_RATE_THRESHOLD: f64 = 0.5;
/// Defaults to 1.0: open when every call in the window is slow (once slow-call detection is on).
pub const DEFAULT_SLOW_CALL_RATE_THRESHOLD: f64 = 1.0;
/// Defaults to 20 outcomes before the window may trip the breaker.
pub const DEFAULT_MINIMUM_CALLS: u32 = 20;
/// Defaults to 30 seconds open before the first probe.
pub const DEFAULT_WAIT_IN_OPEN: Duration = Duration::from_secs(30);
/// Defaults to 5 probes in half-open.
pub const DEFAULT_HALF_OPEN_CALLS: u32 = 5;
/// Defaults to 60 seconds: a half-open breaker whose probes have not all finished by then opens
/// again.
pub const DEFAULT_MAX_WAIT_IN_HALF_OPEN: Duration = Duration::from_secs(60);
/// Defaults to 1-second buckets in a time window.
pub const DEFAULT_BUCKET_WIDTH: Duration = Duration::from_secs(1);
/// Defaults to `"default"`, the `name` label of metrics and events.
pub const DEFAULT_NAME: &str = "default";
/// Defaults to 10 000 keys for keyed breakers ([`Builder::build_keyed`]).
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// Defaults to 10 minutes: a key's breaker unused for that long is evicted (once closed).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest `wait_in_open`, `open_backoff` max or `max_wait_in_half_open`: one year.
const MAX_OPEN_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest `wait_in_open`, and the floor of every jittered open interval. It bounds how fast
/// the 16-bit generation can wrap: see "Generation reuse" in `state.rs`. (Polly's floor for the
/// same setting is 500 ms.)
pub(crate) const MIN_WAIT_IN_OPEN: Duration = Duration::from_millis(100);
/// The smallest bucket of a time window.
const MIN_BUCKET_WIDTH: Duration = Duration::from_millis(10);

/// Which recent outcomes the closed breaker judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` outcomes (1 ≤ n ≤ 10 000). With no slow-call detection, a breaker with this
    /// window reads no clock on the healthy path.
    Count(u32),
    /// The outcomes of the last `d`, kept in buckets of [`Builder::bucket_width`]. Each outcome
    /// reads the clock once.
    Time(Duration),
}

/// How the open interval grows when a breaker opens again right after half-open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OpenBackoff {
    pub(crate) multiplier: f64,
    pub(crate) max: Duration,
    pub(crate) jitter: f64,
}

/// The validated settings a breaker runs with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Arc<str>,
    pub(crate) window: SlidingWindow,
    pub(crate) bucket_width: Duration,
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) minimum_calls: u32,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) wait_in_open: Duration,
    pub(crate) open_backoff: OpenBackoff,
    pub(crate) half_open_calls: u32,
    pub(crate) max_wait_in_half_open: Duration,
    pub(crate) shadow: bool,
    pub(crate) initial_state: State,
    pub(crate) seed: Option<u64>,
}

/// Builds a [`CircuitBreakerLayer`]; see the [module docs](super) for what each setting does.
///
/// Every setter takes any value; [`build`](Builder::build) checks them all and returns a
/// [`ConfigError`] naming the first setter whose value is out of range.
pub struct Builder<C = ErrorsAsFailures> {
    config: Config,
    classifier: C,
    listener: Option<Listener>,
    bounds: Bounds,
}

impl<C> fmt::Debug for Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("listener", &self.listener.is_some())
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with every default.
    pub fn new() -> Self {
        Self {
            config: Config {
                name: Arc::from(DEFAULT_NAME),
                window: DEFAULT_SLIDING_WINDOW,
                bucket_width: DEFAULT_BUCKET_WIDTH,
                failure_rate_threshold: DEFAULT_FAILURE_RATE_THRESHOLD,
                slow_call_rate_threshold: DEFAULT_SLOW_CALL_RATE_THRESHOLD,
                slow_call_duration: None,
                minimum_calls: DEFAULT_MINIMUM_CALLS,
                consecutive_failures: None,
                wait_in_open: DEFAULT_WAIT_IN_OPEN,
                open_backoff: OpenBackoff {
                    multiplier: 1.0,
                    max: DEFAULT_WAIT_IN_OPEN,
                    jitter: 0.0,
                },
                half_open_calls: DEFAULT_HALF_OPEN_CALLS,
                max_wait_in_half_open: DEFAULT_MAX_WAIT_IN_HALF_OPEN,
                shadow: false,
                initial_state: State::Closed,
                seed: None,
            },
            classifier: ErrorsAsFailures::new(),
            listener: None,
            bounds: Bounds {
                max_keys: DEFAULT_MAX_KEYS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
            },
        }
    }
}

impl<C> Builder<C> {
    /// Names this breaker in metrics (the `name` label) and events (`circuit_breaker.name`).
    ///
    /// Defaults to `"default"`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.name = Arc::from(&*name.into());
        self
    }

    /// Opens the breaker when at least this fraction of the calls in the window failed
    /// (inclusive: 0.5 opens at exactly half). Must be in (0, 1].
    ///
    /// Defaults to 0.5.
    pub fn failure_rate_threshold(mut self, threshold: f64) -> Self {
        self.config.failure_rate_threshold = threshold;
        self
    }

    /// Opens the breaker when at least this fraction of the calls in the window were slow.
    /// Only used once [`slow_call_duration`](Self::slow_call_duration) is set. Must be in (0, 1].
    ///
    /// Defaults to 1.0.
    pub fn slow_call_rate_threshold(mut self, threshold: f64) -> Self {
        self.config.slow_call_rate_threshold = threshold;
        self
    }

    /// A call that takes at least this long, from `call` to its result, is slow. Setting it turns
    /// on slow-call detection, which reads the clock twice per call. Must be more than zero.
    ///
    /// Defaults to off.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.config.slow_call_duration = Some(duration);
        self
    }

    /// Which outcomes the closed breaker judges: the last `n`, or those of the last `d`.
    /// `Count(n)` needs 1 ≤ n ≤ 10 000; `Time(d)` needs d of at least one bucket and at most
    /// 10 000 buckets.
    ///
    /// Defaults to `SlidingWindow::Count(100)`.
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.config.window = window;
        self
    }

    /// The width of one bucket of a [`SlidingWindow::Time`]: the window forgets outcomes a bucket
    /// at a time. At least 10 ms.
    ///
    /// Defaults to 1 second.
    pub fn bucket_width(mut self, width: Duration) -> Self {
        self.config.bucket_width = width;
        self
    }

    /// How many outcomes the window must hold before a rate can open the breaker. At least 1.
    /// With a count window, a minimum above the window's size is capped at the size.
    ///
    /// Defaults to 20.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// Also opens the breaker after `failures` failures in a row, whatever the window says and
    /// without waiting for `minimum_calls`. At least 1.
    ///
    /// Defaults to off.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.config.consecutive_failures = Some(failures);
        self
    }

    /// How long the breaker stays open before it lets probes through. At least 100 ms (a
    /// breaker that flaps faster would reuse its generation numbers within minutes, and a
    /// backend that fails needs longer than that to recover anyway), at most a year.
    ///
    /// Defaults to 30 seconds.
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.config.wait_in_open = wait;
        self
    }

    /// Grows the open interval each time the breaker opens again straight from half-open:
    /// the n-th re-open in a row waits `wait_in_open * multiplier^n`, capped at `max`. At least 1.0
    /// (1.0 turns growth off); `max` at least `wait_in_open`. A close resets the growth.
    ///
    /// Defaults to off.
    pub fn open_backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.config.open_backoff.multiplier = multiplier;
        self.config.open_backoff.max = max;
        self
    }

    /// Spreads each open interval by up to ± this fraction of itself, so that many instances that
    /// opened together do not probe together. In [0, 1). A jittered interval is never shorter
    /// than 100 ms, the least `wait_in_open`.
    ///
    /// Defaults to 0.0 (no jitter).
    pub fn open_jitter(mut self, fraction: f64) -> Self {
        self.config.open_backoff.jitter = fraction;
        self
    }

    /// How many probes half-open lets through; they are judged together, as a fresh window:
    /// below the thresholds the breaker closes, at or above them it opens again.
    /// In [1, 2047].
    ///
    /// Defaults to 5.
    pub fn half_open_calls(mut self, calls: u32) -> Self {
        self.config.half_open_calls = calls;
        self
    }

    /// How long half-open waits for its probes: if they have not all finished by then, the
    /// breaker opens again (a probe that hangs must not hold the breaker half-open forever).
    /// More than zero.
    ///
    /// Defaults to 60 seconds.
    pub fn max_wait_in_half_open(mut self, wait: Duration) -> Self {
        self.config.max_wait_in_half_open = wait;
        self
    }

    /// Shadow mode: the breaker records, changes state and reports as usual but never rejects a
    /// call; the calls it would have rejected are counted as not permitted. For trying a
    /// configuration on live traffic. Can be switched at run time with
    /// [`CircuitBreakerLayer::set_shadow`].
    ///
    /// Defaults to `false`.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.config.shadow = shadow;
        self
    }

    /// The state the breaker starts in: [`State::Closed`], [`State::ForcedOpen`] or
    /// [`State::Disabled`].
    ///
    /// Defaults to `State::Closed`.
    pub fn initial_state(mut self, state: State) -> Self {
        self.config.initial_state = state;
        self
    }

    /// Seeds the generator behind [`open_jitter`](Self::open_jitter), for exact tests.
    ///
    /// Defaults to a seed drawn once per breaker.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Calls `listener` on every state transition, once per transition, on the thread that made it.
    /// Keep it short: it runs on the call path. Replaces an earlier listener.
    ///
    /// Defaults to none.
    pub fn on_transition<F>(mut self, listener: F) -> Self
    where
        F: Fn(&Transition) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Decides which results are successes, failures or ignored: a
    /// [`Classify`](crate::classify::Classify), such as a closure
    /// `Fn(&Result<Res, E>) -> Outcome`, or with the `http` feature tower-http's
    /// `ServerErrorsAsFailures`.
    ///
    /// Defaults to [`ErrorsAsFailures`]: `Err` is a failure, except this crate's own rejections.
    pub fn classify<C2>(self, classifier: C2) -> Builder<C2> {
        Builder {
            config: self.config,
            classifier,
            listener: self.listener,
            bounds: self.bounds,
        }
    }

    /// The most keys a keyed layer holds a breaker for; see [`build_keyed`](Self::build_keyed).
    /// In [1, 16 777 216]. Not used by [`build`](Self::build).
    ///
    /// Defaults to 10 000.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.bounds.max_keys = max_keys;
        self
    }

    /// How long a key's breaker may go unused before it is evicted, if it is closed or
    /// disabled. More than zero, at most a year. Not used by [`build`](Self::build).
    ///
    /// Defaults to 10 minutes.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.bounds.idle_timeout = idle_timeout;
        self
    }

    /// Checks every setting, the keyed bounds too: what
    /// [`build_keyed`](Self::build_keyed) makes each key's breaker from.
    #[cfg_attr(steadfast_loom, allow(dead_code))] // keyed breakers are left out of loom builds
    pub(super) fn validate_keyed(
        self,
    ) -> Result<(Config, C, Option<Listener>, Bounds), ConfigError> {
        let config = self.config.validate()?;
        let bounds = self.bounds.validate()?;
        Ok((config, self.classifier, self.listener, bounds))
    }

    /// The validation of [`build`](Self::build), shared with `reconfigure`: the settings a
    /// breaker would run with.
    #[cfg(feature = "serde")]
    pub(crate) fn settings(self) -> Result<Config, ConfigError> {
        self.config.validate()
    }

    /// The keyed bounds, checked as [`build_keyed`](Self::build_keyed) checks them: for a keyed
    /// layer's `reconfigure`.
    #[cfg(feature = "serde")]
    #[cfg_attr(steadfast_loom, allow(dead_code))] // keyed breakers are left out of loom builds
    pub(super) fn bounds(&self) -> Result<Bounds, ConfigError> {
        self.bounds.validate()
    }

    /// Checks every setting and builds the layer, with its breaker.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setter whose value is out of range.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, ConfigError> {
        let config = self.config.validate()?;
        let breaker = Breaker::new(config, self.listener);
        Ok(CircuitBreakerLayer::from_parts(
            crate::sync::Arc::new(breaker),
            self.classifier,
        ))
    }
}

fn check_positive(field: &'static str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > max {
        Err(ConfigError::new(
            field,
            &format!("more than zero and at most {max:?}"),
            value,
        ))
    } else {
        Ok(())
    }
}

fn check_duration(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        Err(ConfigError::new(
            field,
            &format!("at least {min:?} and at most {max:?}"),
            value,
        ))
    } else {
        Ok(())
    }
}

impl Config {
    fn validate(mut self) -> Result<Self, ConfigError> {
        check_fraction("failure_rate_threshold", self.failure_rate_threshold)?;
        check_fraction("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if let Some(duration) = self.slow_call_duration {
            check_positive("slow_call_duration", duration, Duration::MAX)?;
        }
        match self.window {
            SlidingWindow::Count(n) => check_range("sliding_window", n, 1, MAX_COUNT_WINDOW)?,
            SlidingWindow::Time(d) => {
                if self.bucket_width < MIN_BUCKET_WIDTH {
                    return Err(ConfigError::new(
                        "bucket_width",
                        &format!("at least {MIN_BUCKET_WIDTH:?}"),
                        self.bucket_width,
                    ));
                }
                let buckets = d.as_nanos().div_ceil(self.bucket_width.as_nanos());
                if d < self.bucket_width || buckets > u128::from(MAX_BUCKETS) {
                    return Err(ConfigError::new(
                        "sliding_window",
                        &format!(
                            "a time window of at least one bucket ({:?}) and at most {MAX_BUCKETS} buckets",
                            self.bucket_width
                        ),
                        d,
                    ));
                }
            }
        }
        check_range("minimum_calls", self.minimum_calls, 1, u32::MAX)?;
        if let SlidingWindow::Count(n) = self.window {
            self.minimum_calls = self.minimum_calls.min(n);
        }
        if let Some(k) = self.consecutive_failures {
            check_range("consecutive_failures", k, 1, u32::MAX)?;
        }
        check_duration(
            "wait_in_open",
            self.wait_in_open,
            MIN_WAIT_IN_OPEN,
            MAX_OPEN_WAIT,
        )?;
        let backoff = self.open_backoff;
        if !(backoff.multiplier >= 1.0 && backoff.multiplier <= 1000.0) {
            return Err(ConfigError::new(
                "open_backoff",
                "a multiplier in [1, 1000]",
                backoff.multiplier,
            ));
        }
        if backoff.multiplier > 1.0 {
            if backoff.max < self.wait_in_open || backoff.max > MAX_OPEN_WAIT {
                return Err(ConfigError::new(
                    "open_backoff",
                    &format!(
                        "a max of at least wait_in_open ({:?}) and at most a year",
                        self.wait_in_open
                    ),
                    backoff.max,
                ));
            }
        } else {
            self.open_backoff.max = self.wait_in_open;
        }
        if !(backoff.jitter >= 0.0 && backoff.jitter < 1.0) {
            return Err(ConfigError::new(
                "open_jitter",
                "a fraction in [0, 1)",
                backoff.jitter,
            ));
        }
        check_range(
            "half_open_calls",
            self.half_open_calls,
            1,
            MAX_HALF_OPEN_CALLS,
        )?;
        check_positive(
            "max_wait_in_half_open",
            self.max_wait_in_half_open,
            MAX_OPEN_WAIT,
        )?;
        if matches!(self.initial_state, State::Open | State::HalfOpen) {
            return Err(ConfigError::new(
                "initial_state",
                "Closed, ForcedOpen or Disabled",
                self.initial_state,
            ));
        }
        debug_assert!(MAX_OPEN_WAIT.as_millis() < u128::from(MAX_OPEN_UNTIL_MS));
        Ok(self)
    }
}
