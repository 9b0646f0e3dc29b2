//! The algorithms that adapt the limit: their public settings, and the estimator that runs one
//! of them behind the limiter's lock.
//!
//! An algorithm is chosen with one value, [`Algorithm`], built from a typed settings struct per
//! algorithm ([`Gradient2`], [`Vegas`], [`Aimd`]): each algorithm's knobs are setters on its own
//! struct, so a knob of one cannot be set on another, and [`Builder`](super::Builder) has one
//! setter, [`algorithm`](super::Builder::algorithm), instead of the union of all of them.

use std::time::Duration;

use crate::error::{ConfigError, check_fraction, check_range};
use crate::random::SplitMix64;

/// Default for [`Gradient2::smoothing`]: 0.2, as Netflix's `Gradient2Limit`.
pub const DEFAULT_SMOOTHING: f64 = 0.2;
/// Default for [`Gradient2::rtt_tolerance`]: 1.5, as Netflix's gradient limits.
pub const DEFAULT_RTT_TOLERANCE: f64 = 1.5;
/// Default for [`Gradient2::long_window`]: 600 samples, as Netflix's `Gradient2Limit`.
pub const DEFAULT_LONG_WINDOW: u32 = 600;
/// Default for [`Gradient2::short_window`]: 10 samples.
pub const DEFAULT_SHORT_WINDOW: u32 = 10;
/// Default for [`Gradient2::queue_size`]: 4, as Netflix's `Gradient2Limit`.
pub const DEFAULT_QUEUE_SIZE: u32 = 4;
/// Default for [`Vegas::smoothing`]: 1.0 (no smoothing), as Netflix's `VegasLimit`.
pub const DEFAULT_VEGAS_SMOOTHING: f64 = 1.0;
/// Default for [`Vegas::probe_multiplier`]: 30, as Netflix's `VegasLimit`.
pub const DEFAULT_PROBE_MULTIPLIER: u32 = 30;
/// Default for [`Aimd::backoff_ratio`]: 0.9, as Netflix's `AIMDLimit`.
pub const DEFAULT_BACKOFF_RATIO: f64 = 0.9;
/// Default for [`Aimd::timeout`]: 5 seconds, as Netflix's `AIMDLimit`.
pub const DEFAULT_AIMD_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest window accepted by [`Gradient2::long_window`] and [`Gradient2::short_window`].
const MAX_WINDOW: u32 = 1_000_000;
/// Samples averaged plainly before an EWMA starts to decay (Netflix's warm-up).
const WARM_UP: u32 = 10;

/// How the limit adapts; set with [`Builder::algorithm`](super::Builder::algorithm).
///
/// Defaults to [`Gradient2`] with Netflix's settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Algorithm {
    /// Latency gradient: a short-term against a long-term average of latency.
    Gradient2(Gradient2),
    /// TCP Vegas: the queue estimated from the minimum latency seen.
    Vegas(Vegas),
    /// Additive increase, multiplicative decrease on drops (failures and timeouts).
    Aimd(Aimd),
}

impl Default for Algorithm {
    fn default() -> Self {
        Self::Gradient2(Gradient2::new())
    }
}

impl From<Gradient2> for Algorithm {
    fn from(settings: Gradient2) -> Self {
        Self::Gradient2(settings)
    }
}

impl From<Vegas> for Algorithm {
    fn from(settings: Vegas) -> Self {
        Self::Vegas(settings)
    }
}

impl From<Aimd> for Algorithm {
    fn from(settings: Aimd) -> Self {
        Self::Aimd(settings)
    }
}

impl Algorithm {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Gradient2(g) => {
                check_fraction("smoothing", g.smoothing)?;
                if !(g.rtt_tolerance >= 1.0 && g.rtt_tolerance.is_finite()) {
                    return Err(ConfigError::new(
                        "rtt_tolerance",
                        "a finite number of at least 1.0",
                        g.rtt_tolerance,
                    ));
                }
                check_range("long_window", g.long_window, 1, MAX_WINDOW)?;
                check_range(
                    "short_window",
                    g.short_window,
                    1,
                    g.long_window.min(MAX_WINDOW),
                )?;
                check_range("queue_size", g.queue_size, 0, u32::MAX / 2)
            }
            Self::Vegas(v) => {
                check_fraction("smoothing", v.smoothing)?;
                check_range("probe_multiplier", v.probe_multiplier, 1, MAX_WINDOW)
            }
            Self::Aimd(a) => {
                if !(a.backoff_ratio >= 0.5 && a.backoff_ratio < 1.0) {
                    return Err(ConfigError::new(
                        "backoff_ratio",
                        "in [0.5, 1)",
                        a.backoff_ratio,
                    ));
                }
                if a.timeout.is_zero() {
                    return Err(ConfigError::new("timeout", "more than zero", a.timeout));
                }
                Ok(())
            }
        }
    }

    /// Whether a cancelled call that ran past this long counts as a drop (AIMD's timeout).
    pub(crate) fn cancel_timeout(&self) -> Option<Duration> {
        match self {
            Self::Aimd(a) => Some(a.timeout),
            Self::Gradient2(_) | Self::Vegas(_) => None,
        }
    }
}

/// Netflix's `Gradient2Limit`: compares a short-term exponential average of latency with a
/// long-term one, and shrinks the limit when the short one rises above the long one by more
/// than [`rtt_tolerance`](Self::rtt_tolerance).
///
/// On each sample:
///
/// ```text
/// gradient  = max(0.5, min(1.0, rtt_tolerance × long / short))
/// estimate  = limit × gradient + queue_size
/// limit     = limit × (1 − smoothing) + estimate × smoothing     (then kept in [min, max])
/// ```
///
/// While fewer than half the limit are in flight the limit does not move (the caller, not the
/// service, limits the load, so latency says nothing about the limit). When the long average is
/// more than twice the short one (latency came back down after a long overload), the long
/// average is cut by 10 % per sample so the limit recovers without waiting for it to decay.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Gradient2 {
    pub(super) smoothing: f64,
    pub(super) rtt_tolerance: f64,
    pub(super) long_window: u32,
    pub(super) short_window: u32,
    pub(super) queue_size: u32,
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Gradient2 {
    /// Netflix's defaults.
    pub fn new() -> Self {
        Self {
            smoothing: DEFAULT_SMOOTHING,
            rtt_tolerance: DEFAULT_RTT_TOLERANCE,
            long_window: DEFAULT_LONG_WINDOW,
            short_window: DEFAULT_SHORT_WINDOW,
            queue_size: DEFAULT_QUEUE_SIZE,
        }
    }

    /// How far one sample moves the limit toward its new estimate, in (0, 1]: 1 jumps to it.
    ///
    /// Defaults to [`DEFAULT_SMOOTHING`] (0.2).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// How much higher than the long-term average the short-term latency may be before the limit
    /// shrinks; finite and at least 1.0.
    ///
    /// Defaults to [`DEFAULT_RTT_TOLERANCE`] (1.5).
    pub fn rtt_tolerance(mut self, tolerance: f64) -> Self {
        self.rtt_tolerance = tolerance;
        self
    }

    /// The samples the long-term average spans (its smoothing factor is 2 / (n + 1)), in
    /// `[1, 1000000]`.
    ///
    /// Defaults to [`DEFAULT_LONG_WINDOW`] (600).
    pub fn long_window(mut self, samples: u32) -> Self {
        self.long_window = samples;
        self
    }

    /// The samples the short-term average spans, in `[1, long_window]`.
    ///
    /// Defaults to [`DEFAULT_SHORT_WINDOW`] (10).
    pub fn short_window(mut self, samples: u32) -> Self {
        self.short_window = samples;
        self
    }

    /// How far the limit may grow per sample (before smoothing) while latency stays low, in
    /// `[0, 2147483647]`.
    ///
    /// Defaults to [`DEFAULT_QUEUE_SIZE`] (4).
    pub fn queue_size(mut self, queue_size: u32) -> Self {
        self.queue_size = queue_size;
        self
    }
}

/// Netflix's `VegasLimit`, after TCP Vegas: estimates the queue as
/// `limit × (1 − no_load_rtt / rtt)` from the lowest latency seen, grows the limit while the
/// queue is small and shrinks it when the queue is large or a call failed.
///
/// With `l = max(1, ⌊log10(limit)⌋)`: a queue of at most `l` grows the limit by `6l`, one below
/// `3l` by `l`; one above `6l`, or a drop, shrinks it by `l`. The no-load latency is probed again
/// (reset to the latest sample) every 15 to 30 × limit samples (a random point in
/// `[0.5, 1) × probe_multiplier × limit`), so it follows a service that became slower for good.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Vegas {
    pub(super) smoothing: f64,
    pub(super) probe_multiplier: u32,
}

impl Default for Vegas {
    fn default() -> Self {
        Self::new()
    }
}

impl Vegas {
    /// Netflix's defaults.
    pub fn new() -> Self {
        Self {
            smoothing: DEFAULT_VEGAS_SMOOTHING,
            probe_multiplier: DEFAULT_PROBE_MULTIPLIER,
        }
    }

    /// How far one sample moves the limit toward its new estimate, in (0, 1].
    ///
    /// Defaults to [`DEFAULT_VEGAS_SMOOTHING`] (1.0: no smoothing).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// The no-load latency is probed again every `[0.5, 1) × probe_multiplier × limit` samples;
    /// in `[1, 1000000]`.
    ///
    /// Defaults to [`DEFAULT_PROBE_MULTIPLIER`] (30).
    pub fn probe_multiplier(mut self, multiplier: u32) -> Self {
        self.probe_multiplier = multiplier;
        self
    }
}

/// Netflix's `AIMDLimit`: adds one to the limit per successful call while at least half the
/// limit is in flight, and multiplies it by [`backoff_ratio`](Self::backoff_ratio) (at least
/// minus one) on each drop.
///
/// A drop is a call classified as a failure, a call that failed with a timeout
/// ([`Elapsed`](crate::timeout::Elapsed), whatever the classifier says), a call that took longer
/// than [`timeout`](Self::timeout), and a cancelled call (its future dropped) that had already
/// run longer than [`timeout`](Self::timeout): a timeout further out cut it. A call cancelled
/// sooner leaves the limit unchanged, as under every algorithm.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Aimd {
    pub(super) backoff_ratio: f64,
    pub(super) timeout: Duration,
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new()
    }
}

impl Aimd {
    /// Netflix's defaults.
    pub fn new() -> Self {
        Self {
            backoff_ratio: DEFAULT_BACKOFF_RATIO,
            timeout: DEFAULT_AIMD_TIMEOUT,
        }
    }

    /// What a drop multiplies the limit by, in [0.5, 1).
    ///
    /// Defaults to [`DEFAULT_BACKOFF_RATIO`] (0.9).
    pub fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// A call slower than this counts as a drop; more than zero.
    ///
    /// Defaults to [`DEFAULT_AIMD_TIMEOUT`] (5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// One finished call, as the estimator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// The call's latency.
    pub(crate) rtt: Duration,
    /// Calls in flight when it was admitted, itself included.
    pub(crate) in_flight: u32,
    /// A failure or a timeout.
    pub(crate) dropped: bool,
}

/// An exponentially weighted moving average over about `window` samples, a plain average over
/// the first [`WARM_UP`] (so the first sample does not weigh as much as the window).
#[derive(Debug, Clone)]
struct Ewma {
    factor: f64,
    value: f64,
    count: u32,
}

impl Ewma {
    fn new(window: u32) -> Self {
        Self {
            factor: 2.0 / (f64::from(window) + 1.0),
            value: 0.0,
            count: 0,
        }
    }

    fn add(&mut self, sample: f64) -> f64 {
        if self.count < WARM_UP {
            self.count += 1;
            self.value += (sample - self.value) / f64::from(self.count);
        } else {
            self.value += (sample - self.value) * self.factor;
        }
        self.value
    }
}

/// The state an algorithm keeps between samples.
#[derive(Debug)]
enum Kind {
    Gradient2 {
        settings: Gradient2,
        short: Ewma,
        long: Ewma,
    },
    Vegas {
        settings: Vegas,
        /// The lowest latency seen since the last probe, in nanoseconds; zero before any.
        no_load: f64,
        probe_count: u64,
        probe_jitter: f64,
        rng: SplitMix64,
    },
    Aimd {
        settings: Aimd,
    },
}

/// Runs one algorithm on the samples; lives behind the limiter's lock.
#[derive(Debug)]
pub(crate) struct Estimator {
    /// The estimated limit, fractional; the limit admission uses is its integer part.
    limit: f64,
    min: f64,
    max: f64,
    kind: Kind,
}

impl Estimator {
    pub(crate) fn new(algorithm: Algorithm, initial: u32, min: u32, max: u32, seed: u64) -> Self {
        let kind = match algorithm {
            Algorithm::Gradient2(settings) => Kind::Gradient2 {
                short: Ewma::new(settings.short_window),
                long: Ewma::new(settings.long_window),
                settings,
            },
            Algorithm::Vegas(settings) => {
                let mut rng = SplitMix64::new(seed);
                Kind::Vegas {
                    settings,
                    no_load: 0.0,
                    probe_count: 0,
                    probe_jitter: 0.5 + rng.next_unit() / 2.0,
                    rng,
                }
            }
            Algorithm::Aimd(settings) => Kind::Aimd { settings },
        };
        Self {
            limit: f64::from(initial),
            min: f64::from(min),
            max: f64::from(max),
            kind,
        }
    }

    /// The algorithm and its settings, as built.
    #[cfg(feature = "serde")]
    pub(crate) fn algorithm(&self) -> Algorithm {
        match &self.kind {
            Kind::Gradient2 { settings, .. } => Algorithm::Gradient2(settings.clone()),
            Kind::Vegas { settings, .. } => Algorithm::Vegas(settings.clone()),
            Kind::Aimd { settings } => Algorithm::Aimd(settings.clone()),
        }
    }

    /// The lowest and highest limits.
    pub(crate) fn bounds(&self) -> (u32, u32) {
        (self.min as u32, self.max as u32)
    }

    /// Applies new settings to a running estimator (`reconfigure`): new bounds, with the limit
    /// clamped into them; the same algorithm keeps its state (its averages, Vegas' no-load
    /// latency and probe count) under its new settings, another starts fresh from the current
    /// limit. `seed` seeds a fresh Vegas.
    #[cfg(feature = "serde")]
    pub(crate) fn retune(&mut self, algorithm: Algorithm, min: u32, max: u32, seed: u64) {
        match (&mut self.kind, algorithm) {
            (
                Kind::Gradient2 {
                    settings,
                    short,
                    long,
                },
                Algorithm::Gradient2(new),
            ) => {
                short.factor = Ewma::new(new.short_window).factor;
                long.factor = Ewma::new(new.long_window).factor;
                *settings = new;
            }
            (Kind::Vegas { settings, .. }, Algorithm::Vegas(new)) => *settings = new,
            (Kind::Aimd { settings }, Algorithm::Aimd(new)) => *settings = new,
            (_, other) => self.kind = Self::new(other, 1, 1, 1, seed).kind,
        }
        self.min = f64::from(min);
        self.max = f64::from(max);
        self.limit = self.limit.max(self.min).min(self.max);
    }

    /// The limit admission uses: the estimate's integer part.
    pub(crate) fn limit(&self) -> u32 {
        // In [min, max] ⊂ [1, u32::MAX], so the cast neither saturates nor truncates a sign.
        self.limit as u32
    }

    /// Takes one sample and returns the new limit.
    pub(crate) fn update(&mut self, sample: Sample) -> u32 {
        // A zero latency (an instant answer on a paused clock) would divide by zero.
        let rtt = (sample.rtt.as_nanos() as f64).max(1.0);
        let in_flight = f64::from(sample.in_flight);
        let limit = self.limit;
        let next = match &mut self.kind {
            Kind::Gradient2 {
                settings,
                short,
                long,
            } => {
                let short = short.add(rtt);
                let mut long_value = long.add(rtt);
                if long_value / short > 2.0 {
                    long.value *= 0.9;
                    long_value = long.value;
                }
                if in_flight < limit / 2.0 {
                    limit
                } else {
                    let gradient = (settings.rtt_tolerance * long_value / short).clamp(0.5, 1.0);
                    let estimate = limit * gradient + f64::from(settings.queue_size);
                    limit * (1.0 - settings.smoothing) + estimate * settings.smoothing
                }
            }
            Kind::Vegas {
                settings,
                no_load,
                probe_count,
                probe_jitter,
                rng,
            } => {
                *probe_count += 1;
                let probe_at = *probe_jitter * f64::from(settings.probe_multiplier) * limit;
                if probe_at <= *probe_count as f64 {
                    *probe_jitter = 0.5 + rng.next_unit() / 2.0;
                    *probe_count = 0;
                    *no_load = rtt;
                    limit
                } else if *no_load == 0.0 || rtt < *no_load {
                    *no_load = rtt;
                    limit
                } else {
                    let step = limit.log10().floor().max(1.0);
                    let queue = (limit * (1.0 - *no_load / rtt)).ceil();
                    let target = if sample.dropped {
                        Some(limit - step)
                    } else if in_flight * 2.0 < limit {
                        None
                    } else if queue <= step {
                        Some(limit + 6.0 * step)
                    } else if queue < 3.0 * step {
                        Some(limit + step)
                    } else if queue > 6.0 * step {
                        Some(limit - step)
                    } else {
                        None
                    };
                    match target {
                        Some(target) => {
                            let target = target.clamp(self.min, self.max);
                            (1.0 - settings.smoothing) * limit + settings.smoothing * target
                        }
                        None => limit,
                    }
                }
            }
            Kind::Aimd { settings } => {
                let current = limit.floor();
                if sample.dropped || sample.rtt > settings.timeout {
                    (current * settings.backoff_ratio)
                        .floor()
                        .min(current - 1.0)
                } else if in_flight * 2.0 >= current {
                    current + 1.0
                } else {
                    current
                }
            }
        };
        // `clamp` keeps NaN, which no branch above can make from finite positive inputs; `max`
        // first turns one into `min` all the same, so the limit can never leave its range.
        self.limit = next.max(self.min).min(self.max);
        self.limit()
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(rtt_ms: u64, in_flight: u32, dropped: bool) -> Sample {
        Sample {
            rtt: Duration::from_millis(rtt_ms),
            in_flight,
            dropped,
        }
    }

    #[test]
    fn gradient2_grows_by_smoothed_queue_size_while_latency_is_flat() {
        let mut estimator = Estimator::new(Algorithm::default(), 20, 20, 200, 0);
        // limit × 1.0 + 4, smoothed by 0.2: +0.8 per sample.
        assert_eq!(estimator.update(sample(10, 20, false)), 20);
        assert_eq!(estimator.update(sample(10, 20, false)), 21);
        assert!((estimator.limit - 21.6).abs() < 1e-9);
    }

    #[test]
    fn gradient2_does_not_grow_while_app_limited() {
        let mut estimator = Estimator::new(Algorithm::default(), 20, 20, 200, 0);
        for _ in 0..100 {
            assert_eq!(estimator.update(sample(10, 9, false)), 20);
        }
    }

    #[test]
    fn gradient2_shrinks_when_latency_rises_beyond_the_tolerance() {
        let mut estimator = Estimator::new(Algorithm::default(), 100, 1, 200, 0);
        for _ in 0..20 {
            estimator.update(sample(10, 100, false));
        }
        let before = estimator.limit;
        for _ in 0..20 {
            estimator.update(sample(100, 200, false));
        }
        assert!(estimator.limit < before, "{} !< {before}", estimator.limit);
    }

    #[test]
    fn aimd_adds_one_and_backs_off() {
        let aimd = Aimd::new().timeout(Duration::from_millis(50));
        let mut estimator = Estimator::new(aimd.into(), 10, 1, 100, 0);
        assert_eq!(estimator.update(sample(1, 5, false)), 11);
        assert_eq!(estimator.update(sample(1, 2, false)), 11, "app-limited");
        assert_eq!(estimator.update(sample(1, 5, true)), 9, "⌊11 × 0.9⌋");
        assert_eq!(
            estimator.update(sample(51, 5, false)),
            8,
            "slower than the timeout"
        );
        assert_eq!(
            estimator.update(sample(1, 1, true)),
            7,
            "at least minus one"
        );
    }

    #[test]
    fn vegas_grows_without_queue_and_shrinks_with_one() {
        let mut estimator = Estimator::new(Vegas::new().into(), 20, 1, 1000, 7);
        assert_eq!(
            estimator.update(sample(10, 20, false)),
            20,
            "first no-load sample"
        );
        assert_eq!(
            estimator.update(sample(10, 20, false)),
            26,
            "no queue: + 6 × 1"
        );
        // queue = ⌈26 × (1 − 10/20)⌉ = 13 > 6: − 1.
        assert_eq!(estimator.update(sample(20, 26, false)), 25);
        assert_eq!(estimator.update(sample(10, 25, true)), 24, "a drop");
    }

    #[test]
    fn validation_names_the_setter() {
        let bad = |algorithm: Algorithm| algorithm.validate().unwrap_err().field();
        assert_eq!(bad(Gradient2::new().smoothing(0.0).into()), "smoothing");
        assert_eq!(
            bad(Gradient2::new().smoothing(f64::NAN).into()),
            "smoothing"
        );
        assert_eq!(
            bad(Gradient2::new().rtt_tolerance(0.9).into()),
            "rtt_tolerance"
        );
        assert_eq!(
            bad(Gradient2::new().rtt_tolerance(f64::INFINITY).into()),
            "rtt_tolerance"
        );
        assert_eq!(bad(Gradient2::new().long_window(0).into()), "long_window");
        assert_eq!(
            bad(Gradient2::new().short_window(601).into()),
            "short_window"
        );
        assert_eq!(
            bad(Gradient2::new().queue_size(u32::MAX).into()),
            "queue_size"
        );
        assert_eq!(bad(Vegas::new().smoothing(1.5).into()), "smoothing");
        assert_eq!(
            bad(Vegas::new().probe_multiplier(0).into()),
            "probe_multiplier"
        );
        assert_eq!(bad(Aimd::new().backoff_ratio(1.0).into()), "backoff_ratio");
        assert_eq!(bad(Aimd::new().backoff_ratio(0.4).into()), "backoff_ratio");
        assert_eq!(bad(Aimd::new().timeout(Duration::ZERO).into()), "timeout");
        assert!(Algorithm::default().validate().is_ok());
    }

    fn algorithm() -> impl Strategy<Value = Algorithm> {
        prop_oneof![
            (0.01f64..=1.0, 1.0f64..4.0, 1u32..50, 0u32..20).prop_map(|(s, t, w, q)| {
                Gradient2::new()
                    .smoothing(s)
                    .rtt_tolerance(t)
                    .long_window(w + 1)
                    .short_window(w.max(1))
                    .queue_size(q)
                    .into()
            }),
            (0.01f64..=1.0, 1u32..40)
                .prop_map(|(s, p)| Vegas::new().smoothing(s).probe_multiplier(p).into()),
            (0.5f64..0.99, 1u64..200).prop_map(|(r, t)| Aimd::new()
                .backoff_ratio(r)
                .timeout(Duration::from_millis(t))
                .into()),
        ]
    }

    proptest! {
        /// Whatever the latencies, drops and load, the limit stays within [min, max].
        #[test]
        fn the_limit_stays_within_its_bounds(
            algorithm in algorithm(),
            (min, initial, max) in (1u32..50, 0u32..50, 0u32..200)
                .prop_map(|(min, a, b)| (min, min + a.min(b), min + a.max(b))),
            samples in proptest::collection::vec((0u64..5_000_000_000, 0u32..400, any::<bool>()), 1..300),
            seed in any::<u64>(),
        ) {
            prop_assume!(algorithm.validate().is_ok());
            let mut estimator = Estimator::new(algorithm, initial, min, max, seed);
            for (nanos, in_flight, dropped) in samples {
                let limit = estimator.update(Sample { rtt: Duration::from_nanos(nanos), in_flight, dropped });
                prop_assert!((min..=max).contains(&limit), "{} not in [{}, {}]", limit, min, max);
            }
        }
    }
}
