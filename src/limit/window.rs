//! The sample window: finished calls are gathered into windows, and the algorithm sees one
//! sample per window (the average latency, the most calls in flight, whether any call dropped),
//! as Netflix's `WindowedLimit` feeds its algorithms.
//!
//! Fed every call, a latency algorithm moves the limit once per call: at a thousand calls a
//! second, Gradient2's growth of `queue_size × smoothing` per sample adds 800 to the limit per
//! second, far faster than the queue it builds shows in the latency, and the limit swings
//! between its bounds. Averaged over a window, the limit moves a few times a second, each time
//! on a latency that reflects the limit that was in force.
//!
//! The window also chooses the sampling period: one call in `period` is timed (see the module
//! docs, "Timing a sample of the calls"). A window aims at `TARGET_PER_MIN_SAMPLE` times its
//! fewest samples, so that it still gets them when the call rate halves from one window to the
//! next: the period is the calls of one `min_time` divided by that aim, rounded down to a power
//! of two, in `[1, MAX_PERIOD]`. It is chosen again when a window closes, from the calls that
//! window stood for, and at every sample of a window that has lasted `min_time` without its
//! fewest samples: the rate fell, and waiting for the window to close would stretch it by the
//! old period. Such a window, which fills by its count, divides the period by at least four
//! each time; a window without a minimum time keeps period 1: every call.

use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::Sample;

/// The longest sampling period: at high call rates, one call in 64 is timed. It bounds how
/// long the first samples after a sudden fall in the call rate take (64 calls), and makes the
/// two clock reads and the lock of a timed call cost under 2 ns per call (about 120 ns / 64).
pub(crate) const MAX_PERIOD: u32 = 64;
/// The samples a window aims at, per sample it needs at least.
const TARGET_PER_MIN_SAMPLE: u64 = 4;

/// The samples of the window in progress, and the sampling period.
#[derive(Debug)]
pub(crate) struct Window {
    /// A window lasts at least this long...
    min_time: Duration,
    /// ...and holds at least this many samples.
    min_samples: u32,
    started: Option<Instant>,
    count: u32,
    rtt_sum: Duration,
    max_in_flight: u32,
    dropped: bool,
    /// One call in `period` is timed: a power of two in `[1, MAX_PERIOD]`.
    period: u32,
    /// The calls this window's samples stand for: each one for the `period` calls it was
    /// picked among.
    represented: u64,
    /// Samples added since the window was built, for tests.
    #[cfg(test)]
    pub(crate) added: u64,
}

impl Window {
    pub(crate) fn new(min_time: Duration, min_samples: u32) -> Self {
        Self {
            min_time,
            min_samples,
            started: None,
            count: 0,
            rtt_sum: Duration::ZERO,
            max_in_flight: 0,
            dropped: false,
            period: 1,
            represented: 0,
            #[cfg(test)]
            added: 0,
        }
    }

    /// The shortest window and the fewest samples in one, as built.
    #[cfg(feature = "serde")]
    pub(crate) fn settings(&self) -> (Duration, u32) {
        (self.min_time, self.min_samples)
    }

    /// One call in this many is to be timed: a power of two in `[1, MAX_PERIOD]`.
    pub(crate) fn period(&self) -> u32 {
        self.period
    }

    /// Adds a sample taken `now`; when that closes the window, returns the window's sample and
    /// starts the next window.
    pub(crate) fn add(&mut self, sample: Sample, now: Instant) -> Option<Sample> {
        let started = *self.started.get_or_insert(now);
        self.count += 1;
        #[cfg(test)]
        {
            self.added += 1;
        }
        self.represented += u64::from(self.period);
        self.rtt_sum = self.rtt_sum.saturating_add(sample.rtt);
        self.max_in_flight = self.max_in_flight.max(sample.in_flight);
        self.dropped |= sample.dropped;
        let elapsed = now.saturating_duration_since(started);
        if elapsed < self.min_time {
            return None;
        }
        // Lasted `min_time`: the calls so far tell the rate, whether or not the window closes.
        self.retune(elapsed);
        if self.count < self.min_samples {
            return None;
        }
        let closed = Sample {
            rtt: self.rtt_sum / self.count,
            in_flight: self.max_in_flight,
            dropped: self.dropped,
        };
        *self = Self {
            started: Some(now),
            period: self.period,
            #[cfg(test)]
            added: self.added,
            ..Self::new(self.min_time, self.min_samples)
        };
        Some(closed)
    }

    /// Chooses the period from the calls this window stood for over `elapsed` (at least
    /// `min_time`).
    fn retune(&mut self, elapsed: Duration) {
        let target = TARGET_PER_MIN_SAMPLE as f64 * f64::from(self.min_samples);
        // Calls per `min_time`: zero when `min_time` is (then `elapsed` may be zero too).
        let per_min_time = if self.min_time.is_zero() {
            0.0
        } else {
            self.represented as f64 * self.min_time.as_secs_f64() / elapsed.as_secs_f64()
        };
        let ideal = per_min_time / target;
        self.period = if ideal >= f64::from(MAX_PERIOD) {
            MAX_PERIOD
        } else {
            // In [0, MAX_PERIOD) (never NaN: `elapsed` ≥ `min_time` > 0 here): the largest
            // power of two at most `ideal`, and 1 below 2.
            let ideal = (ideal as u32).max(1);
            1 << ideal.ilog2()
        };
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    fn sample(rtt_ms: u64, in_flight: u32, dropped: bool) -> Sample {
        Sample {
            rtt: Duration::from_millis(rtt_ms),
            in_flight,
            dropped,
        }
    }

    #[test]
    fn closes_after_the_time_and_the_samples_with_their_average() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut window = Window::new(ms(100), 3);
        assert_eq!(window.add(sample(10, 4, false), start), None);
        assert_eq!(
            window.add(sample(20, 9, false), start + ms(150)),
            None,
            "two samples"
        );
        assert_eq!(
            window.add(sample(30, 2, true), start + ms(160)),
            Some(sample(20, 9, true))
        );
        // The next window starts where the last one closed.
        for n in 0..3 {
            assert_eq!(window.add(sample(5, 1, false), start + ms(161 + n)), None);
        }
        assert_eq!(
            window.add(sample(5, 1, false), start + ms(260)),
            Some(sample(5, 1, false))
        );
    }

    #[test]
    fn one_sample_and_no_time_is_every_sample() {
        let start = Instant::now();
        let mut window = Window::new(Duration::ZERO, 1);
        for n in 1..5 {
            assert_eq!(
                window.add(sample(n, 1, false), start),
                Some(sample(n, 1, false))
            );
        }
    }
}
