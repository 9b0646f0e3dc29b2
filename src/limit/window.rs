//! The sample window: finished calls are gathered into windows, and the algorithm sees one
//! sample per window (the average latency, the most calls in flight, whether any call dropped),
//! as Netflix's `WindowedLimit` feeds its algorithms.
//!
//! Fed every call, a latency algorithm moves the limit once per call: at a thousand calls a
//! second, Gradient2's growth of `queue_size × smoothing` per sample adds 800 to the limit per
//! second, far faster than the queue it builds shows in the latency, and the limit swings
//! between its bounds. Averaged over a window, the limit moves a few times a second, each time
//! on a latency that reflects the limit that was in force.

use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::Sample;

/// The samples of the window in progress.
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
        }
    }

    /// The shortest window and the fewest samples in one, as built.
    #[cfg(feature = "serde")]
    pub(crate) fn settings(&self) -> (Duration, u32) {
        (self.min_time, self.min_samples)
    }

    /// Adds a sample taken `now`; when that closes the window, returns the window's sample and
    /// starts the next window.
    pub(crate) fn add(&mut self, sample: Sample, now: Instant) -> Option<Sample> {
        let started = *self.started.get_or_insert(now);
        self.count += 1;
        self.rtt_sum = self.rtt_sum.saturating_add(sample.rtt);
        self.max_in_flight = self.max_in_flight.max(sample.in_flight);
        self.dropped |= sample.dropped;
        if self.count < self.min_samples || now.saturating_duration_since(started) < self.min_time {
            return None;
        }
        let closed = Sample {
            rtt: self.rtt_sum / self.count,
            in_flight: self.max_in_flight,
            dropped: self.dropped,
        };
        *self = Self::new(self.min_time, self.min_samples);
        self.started = Some(now);
        Some(closed)
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
