//! The adaptive limit's builder.

use std::borrow::Cow;
use std::time::Duration;

use super::AdaptiveLimitLayer;
use super::algorithm::{Algorithm, Estimator};
use super::limiter::{Limiter, Tuning};
use super::window::Window;
use crate::classify::ErrorsAsFailures;
use crate::error::{ConfigError, check_range};
use crate::sync::Arc;

/// Default for [`Builder::initial_limit`]: 20, as Netflix's `Gradient2Limit`.
pub const DEFAULT_INITIAL_LIMIT: usize = 20;
/// Default for [`Builder::min_limit`]: 20, as Netflix's `Gradient2Limit` (or the initial limit,
/// if that is set lower).
pub const DEFAULT_MIN_LIMIT: usize = 20;
/// Default for [`Builder::max_limit`]: 200, as Netflix's `Gradient2Limit` (or the initial limit,
/// if that is set higher).
pub const DEFAULT_MAX_LIMIT: usize = 200;
/// Default for [`Builder::window`]: 100 ms.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(100);
/// Default for [`Builder::window_samples`]: 10 samples, as Netflix's `WindowedLimit`.
pub const DEFAULT_WINDOW_SAMPLES: usize = 10;
/// The largest [`Builder::window_samples`] accepted.
pub const MAX_WINDOW_SAMPLES: usize = 1_000_000;
/// Default for [`Builder::name`]: `"default"`.
pub const DEFAULT_NAME: &str = "default";
/// The largest limit accepted, 16 777 215: the limit and the calls in flight are 24-bit fields
/// of the admission word, which also numbers the calls for sampling.
pub const LIMIT_LIMIT: usize = super::state::MAX_LIMIT as usize;

/// Configures an [`AdaptiveLimitLayer`]; made by [`AdaptiveLimitLayer::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct Builder<C = ErrorsAsFailures> {
    initial_limit: usize,
    min_limit: Option<usize>,
    max_limit: Option<usize>,
    algorithm: Algorithm,
    window: Duration,
    window_samples: usize,
    name: Cow<'static, str>,
    seed: Option<u64>,
    classifier: C,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            initial_limit: DEFAULT_INITIAL_LIMIT,
            min_limit: None,
            max_limit: None,
            algorithm: Algorithm::default(),
            window: DEFAULT_WINDOW,
            window_samples: DEFAULT_WINDOW_SAMPLES,
            name: Cow::Borrowed(DEFAULT_NAME),
            seed: None,
            classifier: ErrorsAsFailures::new(),
        }
    }
}

impl<C> Builder<C> {
    /// The limit before the first sample, in `[min_limit, max_limit]`.
    ///
    /// Defaults to [`DEFAULT_INITIAL_LIMIT`] (20).
    pub fn initial_limit(mut self, n: usize) -> Self {
        self.initial_limit = n;
        self
    }

    /// The lowest the limit goes, in `[1, initial_limit]`. Equal to `max_limit`, the limit is
    /// fixed.
    ///
    /// Defaults to [`DEFAULT_MIN_LIMIT`] (20), or `initial_limit` if that is lower.
    pub fn min_limit(mut self, n: usize) -> Self {
        self.min_limit = Some(n);
        self
    }

    /// The highest the limit goes, in `[initial_limit, 16777215]`.
    ///
    /// Defaults to [`DEFAULT_MAX_LIMIT`] (200), or `initial_limit` if that is higher.
    pub fn max_limit(mut self, n: usize) -> Self {
        self.max_limit = Some(n);
        self
    }

    /// How the limit adapts: a [`Gradient2`](super::Gradient2), [`Vegas`](super::Vegas) or
    /// [`Aimd`](super::Aimd), each with its own settings.
    ///
    /// Defaults to [`Gradient2::new()`](super::Gradient2::new): Netflix's defaults.
    pub fn algorithm(mut self, algorithm: impl Into<Algorithm>) -> Self {
        self.algorithm = algorithm.into();
        self
    }

    /// The algorithm sees one sample per window of at least this long (and at least
    /// [`window_samples`](Self::window_samples) calls): their average latency, the most calls
    /// that were in flight, and whether any of them dropped. Zero, with `window_samples(1)`,
    /// feeds it every call.
    ///
    /// Windows keep a latency algorithm from moving the limit on every call, faster than the
    /// queue it builds can show (see the module docs, "What is sampled").
    ///
    /// Defaults to [`DEFAULT_WINDOW`] (100 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The fewest calls in a window, in `[1, 1000000]`.
    ///
    /// Defaults to [`DEFAULT_WINDOW_SAMPLES`] (10).
    pub fn window_samples(mut self, n: usize) -> Self {
        self.window_samples = n;
        self
    }

    /// The instance name: the `name` label of the metrics and the `limit.name` field of the
    /// tracing events. Must not be empty.
    ///
    /// Defaults to [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Seeds Vegas's random probe points, for runs that repeat exactly.
    ///
    /// Defaults to a seed drawn once per layer.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Decides which results are successes (latency samples), failures (samples that are also
    /// drops) or ignored (no sample): a [`Classify`](crate::classify::Classify), such as a
    /// closure `Fn(&Result<Res, E>) -> Outcome`, or with the `http` feature tower-http's
    /// `ServerErrorsAsFailures`. Whatever it says, a local rejection from further in is never a
    /// sample, and a timeout ([`Elapsed`](crate::timeout::Elapsed)) always a drop.
    ///
    /// Defaults to [`ErrorsAsFailures`]: `Err` is a failure, except this crate's own rejections.
    pub fn classify<C2>(self, classifier: C2) -> Builder<C2> {
        Builder {
            initial_limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            algorithm: self.algorithm,
            window: self.window,
            window_samples: self.window_samples,
            name: self.name,
            seed: self.seed,
            classifier,
        }
    }

    /// Checks the configuration and creates the layer, with its limiter and (with the `metrics`
    /// feature) its metric handles. Every clone of the layer, and every service it makes, shares
    /// this limiter.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setter whose value is out of range: `initial_limit`,
    /// `min_limit` or `max_limit` outside `[1, 16777215]` or out of order
    /// (`min_limit ≤ initial_limit ≤ max_limit`), an algorithm's setting (`smoothing`,
    /// `rtt_tolerance`, ...), or an empty `name`.
    pub fn build(self) -> Result<AdaptiveLimitLayer<C>, ConfigError> {
        let (initial, min, max) = self.check()?;
        let seed = self
            .seed
            .unwrap_or_else(|| crate::random::random_seed(&self as *const Self as usize));
        let cancel_timeout = self.algorithm.cancel_timeout();
        let tuning = Tuning {
            window: Window::new(self.window, self.window_samples as u32),
            estimator: Estimator::new(self.algorithm, initial, min, max, seed),
        };
        Ok(AdaptiveLimitLayer {
            limiter: Arc::new(Limiter::new(
                tuning,
                self.classifier,
                cancel_timeout,
                self.name,
            )),
            min_limit: min,
            max_limit: max,
        })
    }

    /// Checks every setting as [`build`](Self::build) does, building and registering nothing,
    /// and returns the initial, lowest and highest limits.
    pub(super) fn check(&self) -> Result<(u32, u32, u32), ConfigError> {
        let initial = self.initial_limit;
        check_range("initial_limit", initial, 1, LIMIT_LIMIT)?;
        let min = match self.min_limit {
            Some(min) => {
                check_range("min_limit", min, 1, LIMIT_LIMIT)?;
                min
            }
            None => DEFAULT_MIN_LIMIT.min(initial),
        };
        let max = match self.max_limit {
            Some(max) => {
                check_range("max_limit", max, 1, LIMIT_LIMIT)?;
                max
            }
            None => DEFAULT_MAX_LIMIT.max(initial),
        };
        if min > max {
            return Err(ConfigError::new(
                "min_limit",
                &format!("at most `max_limit` ({max})"),
                min,
            ));
        }
        check_range("initial_limit", initial, min, max)?;
        self.algorithm.validate()?;
        check_range("window_samples", self.window_samples, 1, MAX_WINDOW_SAMPLES)?;
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "a non-empty string", &*self.name));
        }
        // Each is in [1, LIMIT_LIMIT], checked above, and LIMIT_LIMIT fits a u32.
        let narrow = |n: usize| n as u32;
        Ok((narrow(initial), narrow(min), narrow(max)))
    }
}
