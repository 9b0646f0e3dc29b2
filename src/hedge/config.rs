//! The builder of [`HedgeLayer`], its defaults, and the configuration every service of a layer
//! shares.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use super::layer::HedgeLayer;
use super::live::{DelayMode, LiveSettings, Settings};
use super::policy::{CloneRequest, HedgeIf};
use super::state::{LatencyWindow, WindowSettings};
use crate::ConfigError;
use crate::error::{check_fraction, check_range};
use crate::retry::state::BudgetState;
use crate::retry::{RetryBudget, SharedBudget};
use crate::sync::Arc;

/// The delay before the first hedge (and between hedges): 50 ms.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(50);
/// Hedges per call beyond the first attempt: 1 (2 attempts at most).
pub const DEFAULT_MAX_HEDGED_ATTEMPTS: u32 = 1;
/// The most hedges per call `max_hedged_attempts` accepts.
pub const MAX_MAX_HEDGED_ATTEMPTS: u32 = 10;
/// The default budget: 0.1 hedges per request plus 10 a second, over 10 s. Hedging adds at
/// most a tenth to the load of a busy service.
pub const DEFAULT_BUDGET: RetryBudget = RetryBudget::new(0.1, 10, Duration::from_secs(10));
/// With a percentile delay, calls a window needs before its percentile is used: 100.
pub const DEFAULT_MIN_SAMPLES: u32 = 100;
/// With a percentile delay, the window over which latency is measured: 10 s.
pub const DEFAULT_LATENCY_WINDOW: Duration = Duration::from_secs(10);
/// The shortest `latency_window`.
pub const MIN_LATENCY_WINDOW: Duration = Duration::from_millis(100);
/// The longest `latency_window`.
pub const MAX_LATENCY_WINDOW: Duration = Duration::from_secs(3600);
/// The `name` label of the layer's metrics and events.
pub const DEFAULT_NAME: &str = "default";

/// How the delay before a hedge is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DelaySetting {
    Fixed(Duration),
    Percentile(f64),
}

/// Builds a [`HedgeLayer`]; made by [`HedgeLayer::builder`].
///
/// `P` is the [`HedgePolicy`](super::HedgePolicy): which requests are hedged and how they are
/// copied. The setters for it change the builder's type, so closures are never boxed.
pub struct Builder<P = CloneRequest> {
    delay: DelaySetting,
    max_hedged_attempts: u32,
    budget: RetryBudget,
    shared_budget: Option<SharedBudget>,
    min_samples: u32,
    latency_window: Duration,
    name: Cow<'static, str>,
    policy: P,
}

impl<P> fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("delay", &self.delay)
            .field("max_hedged_attempts", &self.max_hedged_attempts)
            .field("budget", &self.budget)
            .field("shared_budget", &self.shared_budget)
            .field("min_samples", &self.min_samples)
            .field("latency_window", &self.latency_window)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            delay: DelaySetting::Fixed(DEFAULT_DELAY),
            max_hedged_attempts: DEFAULT_MAX_HEDGED_ATTEMPTS,
            budget: DEFAULT_BUDGET,
            shared_budget: None,
            min_samples: DEFAULT_MIN_SAMPLES,
            latency_window: DEFAULT_LATENCY_WINDOW,
            name: Cow::Borrowed(DEFAULT_NAME),
            policy: CloneRequest::new(),
        }
    }
}

impl<P> Builder<P> {
    /// A fixed delay: the k-th hedge is sent k × `delay` after the call, unless a success came
    /// first; `Duration::ZERO` sends every attempt at once. Replaces
    /// [`delay_percentile`](Self::delay_percentile). Defaults to [`DEFAULT_DELAY`] (50 ms).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = DelaySetting::Fixed(delay);
        self
    }

    /// A delay that follows the service: the `percentile` (a fraction in (0, 1], e.g. 0.95) of
    /// the latency of successful calls over the last full
    /// [`latency_window`](Self::latency_window). No timed hedge is sent until a window has had
    /// [`min_samples`](Self::min_samples) calls. Replaces [`delay`](Self::delay). Defaults to
    /// none: a fixed delay.
    pub fn delay_percentile(mut self, percentile: f64) -> Self {
        self.delay = DelaySetting::Percentile(percentile);
        self
    }

    /// With [`delay_percentile`](Self::delay_percentile), the calls a window must see before its
    /// percentile is used, in `[1, u32::MAX]`. Defaults to [`DEFAULT_MIN_SAMPLES`] (100).
    pub fn min_samples(mut self, min_samples: u32) -> Self {
        self.min_samples = min_samples;
        self
    }

    /// With [`delay_percentile`](Self::delay_percentile), how long one window of latency lasts,
    /// in `[100 ms, 1 h]`; each window's delay is the percentile of the one before. Defaults to
    /// [`DEFAULT_LATENCY_WINDOW`] (10 s).
    pub fn latency_window(mut self, latency_window: Duration) -> Self {
        self.latency_window = latency_window;
        self
    }

    /// Hedges per call beyond the first attempt, in `[1, 10]`: 1 means at most 2 attempts.
    /// Defaults to [`DEFAULT_MAX_HEDGED_ATTEMPTS`] (1).
    pub fn max_hedged_attempts(mut self, max_hedged_attempts: u32) -> Self {
        self.max_hedged_attempts = max_hedged_attempts;
        self
    }

    /// The budget each hedge draws one token from (every call deposits into it, as retry's
    /// do); [`RetryBudget::unlimited`] turns it off. Replaces
    /// [`shared_budget`](Self::shared_budget). Defaults to [`DEFAULT_BUDGET`].
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self.shared_budget = None;
        self
    }

    /// Draws on a budget other layers draw on too (a retry around this hedge, so that hedges
    /// and retries together stay within one budget). Replaces [`budget`](Self::budget).
    /// Defaults to none: the layer has its own.
    pub fn shared_budget(mut self, budget: SharedBudget) -> Self {
        self.shared_budget = Some(budget);
        self
    }

    /// The `name` label of the layer's metrics and tracing events. Defaults to
    /// [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Which requests are hedged and how they are copied. Defaults to [`CloneRequest`]: every
    /// request, copied with `Clone`.
    pub fn policy<P2>(self, policy: P2) -> Builder<P2> {
        Builder {
            delay: self.delay,
            max_hedged_attempts: self.max_hedged_attempts,
            budget: self.budget,
            shared_budget: self.shared_budget,
            min_samples: self.min_samples,
            latency_window: self.latency_window,
            name: self.name,
            policy,
        }
    }

    /// Hedges only the requests for which `predicate` returns `true` (say, reads), copied with
    /// `Clone`; the others are sent once. Shorthand for `policy(HedgeIf::new(predicate))`.
    pub fn hedge_if<F>(self, predicate: F) -> Builder<HedgeIf<F>> {
        self.policy(HedgeIf::new(predicate))
    }

    /// Hedges `http::Request<B>` of idempotent methods, replaying the body from a buffer of at
    /// most `max_bytes`, so `B` need not be `Clone`. Shorthand for
    /// `policy(HttpHedge::new(max_bytes))`; see [`HttpHedge`](super::HttpHedge) to choose the
    /// methods.
    #[cfg(feature = "http")]
    pub fn replay_body(self, max_bytes: usize) -> Builder<super::HttpHedge> {
        self.policy(super::HttpHedge::new(max_bytes))
    }

    /// Checks the configuration and builds the layer, with its budget (and latency window),
    /// shared by every clone and every service it makes.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setter: `max_hedged_attempts` outside `[1, 10]`;
    /// `delay_percentile` outside (0, 1] or NaN; `min_samples` of 0; `latency_window` outside
    /// `[100 ms, 1 h]`; `budget` (or `shared_budget`) with a ratio outside `[0, 1000]` (or NaN)
    /// or a ttl outside `[1 s, 60 s]`.
    pub fn build(self) -> Result<HedgeLayer<P>, ConfigError> {
        self.check()?;
        let window = OnceLock::new();
        if matches!(self.delay, DelaySetting::Percentile(_)) {
            let _ = window.set(LatencyWindow::new(self.window_settings()));
        }
        let budget = match &self.shared_budget {
            Some(shared) => Arc::clone(shared.state()),
            None => Arc::new(BudgetState::new(&self.budget)),
        };
        #[cfg(feature = "metrics")]
        let metrics = super::telemetry::Metrics::register(&self.name);
        Ok(HedgeLayer::from_shared(Arc::new(HedgeCore {
            live: LiveSettings::new(self.settings()),
            window,
            budget,
            #[cfg(feature = "serde")]
            own_budget: self.shared_budget.is_none(),
            #[cfg(feature = "serde")]
            reloads: crate::config::Reloads::default(),
            name: self.name,
            policy: self.policy,
            #[cfg(feature = "metrics")]
            metrics,
        })))
    }

    /// The settings every call reads, packed.
    pub(super) fn settings(&self) -> Settings {
        let delay = match self.delay {
            DelaySetting::Fixed(delay) => DelayMode::Fixed(delay),
            DelaySetting::Percentile(_) => DelayMode::Percentile,
        };
        Settings::new(delay, self.max_hedged_attempts + 1)
    }

    /// The latency window's settings (its percentile 1.0 with a fixed delay, where they are
    /// unused).
    pub(super) fn window_settings(&self) -> WindowSettings {
        let percentile = match self.delay {
            DelaySetting::Percentile(percentile) => percentile,
            DelaySetting::Fixed(_) => 1.0,
        };
        WindowSettings {
            percentile,
            min_samples: u64::from(self.min_samples),
            period: self.latency_window,
        }
    }

    /// Whether the delay is a percentile.
    #[cfg(feature = "serde")]
    pub(super) fn is_percentile(&self) -> bool {
        matches!(self.delay, DelaySetting::Percentile(_))
    }
}

impl<P> Builder<P> {
    /// Checks every setting as [`build`](Self::build) does, building and registering nothing.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        check_range(
            "max_hedged_attempts",
            self.max_hedged_attempts,
            1,
            MAX_MAX_HEDGED_ATTEMPTS,
        )?;
        if let DelaySetting::Percentile(percentile) = self.delay {
            check_fraction("delay_percentile", percentile)?;
            check_range("min_samples", self.min_samples, 1, u32::MAX)?;
            if self.latency_window < MIN_LATENCY_WINDOW || self.latency_window > MAX_LATENCY_WINDOW
            {
                return Err(ConfigError::new(
                    "latency_window",
                    "in [100ms, 1h]",
                    self.latency_window,
                ));
            }
        }
        match &self.shared_budget {
            Some(shared) => shared.validate(),
            None => self.budget.validate(),
        }
    }
}

/// What every clone of a layer and every service it makes share.
pub(crate) struct HedgeCore<P> {
    /// The delay's kind (and a fixed delay) and the attempts per call: one word, read once per
    /// call (see `live.rs`).
    pub(crate) live: LiveSettings,
    /// The latency histogram, made when the delay first is a percentile (at build, or by a
    /// reload that switches to one) and kept from then on.
    pub(crate) window: OnceLock<LatencyWindow>,
    pub(crate) budget: Arc<BudgetState>,
    /// Whether `budget` is the layer's own, not a [`SharedBudget`] another layer draws on too:
    /// only its own is the hedge's to reconfigure.
    #[cfg(feature = "serde")]
    pub(crate) own_budget: bool,
    /// Held by `reconfigure`, which stores the budget, the window and the settings word.
    #[cfg(feature = "serde")]
    pub(crate) reloads: crate::config::Reloads,
    pub(crate) name: Cow<'static, str>,
    pub(crate) policy: P,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: super::telemetry::Metrics,
}

impl<P> HedgeCore<P> {
    /// The delay before a call's first timed hedge, for settings read now: the fixed delay, or
    /// the latency window's percentile (`None` until a window had enough samples).
    #[inline]
    pub(crate) fn delay(&self, settings: Settings) -> Option<Duration> {
        match settings.delay() {
            DelayMode::Fixed(delay) => Some(delay),
            DelayMode::Percentile => self.window.get().and_then(LatencyWindow::delay),
        }
    }
}

impl<P> fmt::Debug for HedgeCore<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeCore")
            .field("name", &self.name)
            .field("settings", &self.live.load())
            .field("has_window", &self.window.get().is_some())
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}
