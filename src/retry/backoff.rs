//! How long to wait before each retry: [`Backoff`] and its [`Jitter`].

use std::time::Duration;

use crate::ConfigError;
use crate::random::{AtomicSplitMix64, up_to};

/// The largest delay any computation can produce before `max_delay` caps it: `u64::MAX`
/// nanoseconds (about 584 years). Keeps the arithmetic finite at any attempt number.
const CEILING_NANOS: u64 = u64::MAX;

/// How long to wait before each retry.
///
/// Three curves, each followed by [`Jitter`] and then capped by [`max_delay`](Self::max_delay)
/// (the cap is applied after jitter, so no delay ever exceeds it):
///
/// - [`constant`](Self::constant): the same delay before every retry.
/// - [`exponential`](Self::exponential): `base × multiplier^(n − 1)` before retry `n`, so the
///   first retry waits `base`. The multiplier is 2 unless set with
///   [`multiplier`](Self::multiplier).
/// - [`decorrelated`](Self::decorrelated): AWS's "decorrelated jitter": a delay drawn from
///   `[base, 3 × previous delay]`. It is random by construction, so [`Jitter`] does not apply.
///
/// No attempt number overflows or panics: the curve saturates and `max_delay` caps it. Random
/// delays are drawn in whole milliseconds, tokio's timer resolution.
///
/// A `Backoff` made by a constructor has no jitter ([`Jitter::None`]) and a `max_delay` of
/// [`DEFAULT_MAX_DELAY`](super::DEFAULT_MAX_DELAY). The retry layer's default backoff is
/// [`DEFAULT_BACKOFF`](super::DEFAULT_BACKOFF).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{Backoff, Jitter};
///
/// // 100 ms, 200 ms, 400 ms, ... each drawn from ±20 % of that (as gRPC does), at most 5 s.
/// let backoff = Backoff::exponential(Duration::from_millis(100))
///     .multiplier(2.0)
///     .jitter(Jitter::Percent(20))
///     .max_delay(Duration::from_secs(5));
/// # let _ = backoff;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub(super) curve: Curve,
    pub(super) jitter: Jitter,
    pub(super) max_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Curve {
    Constant(Duration),
    Exponential { base: Duration, multiplier: f64 },
    Decorrelated(Duration),
}

/// Randomness added to each backoff delay so that clients that failed together do not retry
/// together.
///
/// With `d` the un-jittered delay:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly `d`.
    None,
    /// A delay drawn uniformly from `[0, d]` (AWS's "full jitter"): spreads retries the most.
    Full,
    /// A delay drawn uniformly from `[d / 2, d]` (AWS's "equal jitter"): never much shorter
    /// than `d`.
    Equal,
    /// A delay drawn uniformly from `[d × (1 − p/100), d × (1 + p/100)]`: gRPC's retry and
    /// reconnect backoff use `Percent(20)`. `p` must be at most 100.
    Percent(u8),
}

impl Backoff {
    /// The same delay before every retry.
    pub const fn constant(delay: Duration) -> Self {
        Self::with_curve(Curve::Constant(delay))
    }

    /// `base`, then `base × multiplier`, `base × multiplier²`, ...: the first retry waits `base`.
    /// The multiplier is 2 unless set with [`multiplier`](Self::multiplier).
    pub const fn exponential(base: Duration) -> Self {
        Self::with_curve(Curve::Exponential {
            base,
            multiplier: 2.0,
        })
    }

    /// AWS's decorrelated jitter: each delay is drawn from `[base, 3 × the previous delay]`
    /// (the first from `[base, 3 × base]`), then capped by `max_delay`. [`Jitter`] does not apply.
    pub const fn decorrelated(base: Duration) -> Self {
        Self::with_curve(Curve::Decorrelated(base))
    }

    const fn with_curve(curve: Curve) -> Self {
        Self {
            curve,
            jitter: Jitter::None,
            max_delay: super::DEFAULT_MAX_DELAY,
        }
    }

    /// The factor between two exponential delays; must be finite and at least 1 (checked by
    /// the builder's `build()`). Has no effect on other curves. Defaults to 2.
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        if let Curve::Exponential { base, .. } = self.curve {
            self.curve = Curve::Exponential { base, multiplier };
        }
        self
    }

    /// The jitter applied to each delay. Defaults to [`Jitter::None`] for a `Backoff` made by a
    /// constructor (the layer's default backoff uses [`Jitter::Full`]).
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The longest delay, applied after jitter. Also caps a server's pushback
    /// (`Retry-After`, `grpc-retry-pushback-ms`). Defaults to
    /// [`DEFAULT_MAX_DELAY`](super::DEFAULT_MAX_DELAY) (10 s).
    pub const fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The configured cap.
    pub(crate) fn cap(&self) -> Duration {
        self.max_delay
    }

    /// Whether computing a delay draws a random number.
    pub(crate) fn is_random(&self) -> bool {
        matches!(self.curve, Curve::Decorrelated(_)) || !matches!(self.jitter, Jitter::None)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Curve::Exponential { multiplier, .. } = self.curve {
            if !(multiplier.is_finite() && multiplier >= 1.0) {
                return Err(ConfigError::new(
                    "backoff",
                    "a multiplier that is finite and at least 1",
                    multiplier,
                ));
            }
        }
        if let Jitter::Percent(p) = self.jitter {
            if p > 100 {
                return Err(ConfigError::new(
                    "backoff",
                    "a jitter percent in [0, 100]",
                    p,
                ));
            }
        }
        Ok(())
    }

    /// The delay before retry number `retry` (1 for the first retry), given the previous delay
    /// (used by the decorrelated curve). `rng` is only touched when [`is_random`] is true.
    ///
    /// [`is_random`]: Self::is_random
    pub(crate) fn delay(
        &self,
        retry: u32,
        previous: Duration,
        rng: Option<&AtomicSplitMix64>,
    ) -> Duration {
        let max = self.max_delay;
        let delay = match self.curve {
            Curve::Constant(delay) => jitter(nanos(delay), self.jitter, rng),
            Curve::Exponential { base, multiplier } => {
                let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
                let scaled = nanos(base) as f64 * multiplier.powi(exponent);
                // `as` saturates: +inf and anything above u64::MAX become u64::MAX, NaN 0.
                jitter(scaled as u64, self.jitter, rng)
            }
            Curve::Decorrelated(base) => {
                let low = nanos(base);
                let previous = nanos(previous).max(low);
                let high = previous.saturating_mul(3).max(low);
                uniform(rng, low, high)
            }
        };
        Duration::from_nanos(delay).min(max)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(CEILING_NANOS)
}

/// Applies `jitter` to `delay` nanoseconds, saturating.
fn jitter(delay: u64, jitter: Jitter, rng: Option<&AtomicSplitMix64>) -> u64 {
    match jitter {
        Jitter::None => delay,
        Jitter::Full => uniform(rng, 0, delay),
        Jitter::Equal => {
            let half = delay / 2;
            uniform(rng, delay - half, delay)
        }
        Jitter::Percent(percent) => {
            let spread = u64::try_from(u128::from(delay) * u128::from(percent.min(100)) / 100)
                .unwrap_or(CEILING_NANOS);
            uniform(rng, delay - spread, delay.saturating_add(spread))
        }
    }
}

/// A number of nanoseconds drawn uniformly from `[low, high]`, rounded down to a whole
/// millisecond (tokio's timer resolution, so that the delay reported is the delay slept) but
/// not below `low`; `high` when there is no generator.
fn uniform(rng: Option<&AtomicSplitMix64>, low: u64, high: u64) -> u64 {
    const MILLI: u64 = 1_000_000;
    match rng {
        Some(rng) if low < high => {
            let drawn = low + up_to(rng.next_u64(), high - low);
            (drawn - drawn % MILLI).max(low)
        }
        _ => high,
    }
}
