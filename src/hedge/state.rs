//! The latency histogram behind a percentile delay: lock-free recording into log-linear buckets
//! of `AtomicU64`, over a window that rotates on time, with a short lock for the rotation only.
//!
//! # Layout
//!
//! Latencies are counted in whole microseconds, clamped to [`MAX_MICROS`]. A value below 16 has
//! a bucket of its own; above, each power of two `[2^e, 2^(e+1))` is split into 16 equal
//! sub-buckets (log-linear, as HdrHistogram with one significant hex digit), so a bucket's
//! width is at most 1/16 of its lower bound:
//!
//! ```text
//!  index:  0 1 … 15 │ 16 … 31    │ 32 … 47    │ …  │ 16·(e−3) + sub
//!  values: 0 1 … 15 │ 16 … 31    │ 32,34 … 62 │ …  │ [(16+sub)·2^(e−4), (17+sub)·2^(e−4))
//!                     (width 1)    (width 2)
//! ```
//!
//! There are two such arrays. Calls record into the *active* one; when the window's period has
//! passed, the first call to notice rotates: it clears the idle array, makes it the active one,
//! and summarises the array it retired into the percentile that hedges read until the next
//! rotation. So the delay of one window is the percentile of the window before it, and a window
//! with fewer than `min_samples` calls gives no delay at all (no timed hedge) for the next.
//!
//! # Memory ordering
//!
//! - Bucket counters are statistics that publish nothing else: `Relaxed` increments and loads.
//!   A sample recorded while a rotation runs may land in the array just retired after it was
//!   summarised; it is then left out of every summary (the array is cleared before it is used
//!   again). A sample is never counted twice.
//! - `active` (0 or 1) is written only under the rotation lock; recorders load it `Relaxed`:
//!   reading the old value for a moment only moves a sample into the previous window.
//! - `delay_micros` is one self-contained value (the summary), stored under the lock and loaded
//!   `Relaxed` by every hedged call: no other memory is read through it.
//! - `rotate_at` (nanoseconds since `base`) is loaded `Relaxed` on every timed record as a
//!   cheap "is a rotation due" test; the lock, taken with `try_lock` so that no caller ever
//!   waits, re-checks it, so a rotation happens once per period however many callers see it
//!   due. The mutex orders the clearing and summarising between rotations.
//! - The percentile, the samples a window needs and the window's length live under the same
//!   lock: only a rotation reads them, and `reconfigure` changes them under the lock (it waits
//!   for it; no call does), so a rotation summarises with one setting or the other, wholly.
//!
//! # Calls answered at once
//!
//! A call's latency counts from the first poll that finds its first attempt pending (when its
//! hedge timer starts too), so a call answered at its first poll counts as zero: it lands in
//! the first bucket without reading the clock, and without checking whether a rotation is due
//! (the next timed sample checks). The time a service spends inside `call` itself, before its
//! future is polled, is not counted for any call; for the percentile of an asynchronous
//! service it is nothing to speak of, and the hedge's timer does not count it either.
//!
//! # Reconfiguring
//!
//! A new percentile or `min_samples` re-summarises the window that ended last (its array is
//! kept until the next rotation clears it), so the delay follows the new setting at once; a
//! new window length moves the end of the current window, which keeps its samples.

use std::sync::TryLockError;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::nanos;
use crate::sync::{AtomicU32, AtomicU64, Mutex, Ordering};

/// Sub-buckets per power of two, as a bit count: 16 sub-buckets.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Latencies are told apart below `2^BITS` µs (about 19 hours). The loom models use a tiny
/// histogram (below 32 µs): loom explores every atomic access, and 1 056 of them per rotation
/// would exceed its bound on branches.
#[cfg(not(steadfast_loom))]
const BITS: u32 = 36;
#[cfg(steadfast_loom)]
const BITS: u32 = 5;
/// The largest latency told apart, in microseconds; longer ones count as this.
pub(crate) const MAX_MICROS: u64 = (1 << BITS) - 1;
/// Buckets per array: the exact ones below 16, then 16 per power of two up to `2^BITS`.
const BUCKETS: usize = (SUB * (BITS - SUB_BITS + 1) as u64) as usize;
/// The shortest percentile delay: tokio's timer resolution. A service that answers within a
/// microsecond would otherwise give a zero delay, which sends every hedge at once.
const MIN_DELAY_MICROS: u64 = 1_000;
/// `delay_micros` when the last window had too few samples: no timed hedge.
const NO_DELAY: u64 = u64::MAX;

/// The bucket of a latency of `micros` microseconds.
fn bucket(micros: u64) -> usize {
    let value = micros.min(MAX_MICROS);
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let sub = (value >> (exponent - SUB_BITS)) & (SUB - 1);
    (SUB * u64::from(exponent - SUB_BITS + 1) + sub) as usize
}

/// The largest latency, in microseconds, that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = index / SUB - 1;
    let sub = index % SUB;
    ((SUB + sub + 1) << shift) - 1
}

/// A percentile of recent latency, kept in a rotating, lock-free histogram.
#[derive(Debug)]
pub(crate) struct LatencyWindow {
    counts: [Box<[AtomicU64]>; 2],
    /// Which of `counts` calls record into.
    active: AtomicU32,
    /// The percentile of the last full window, in microseconds, or [`NO_DELAY`].
    delay_micros: AtomicU64,
    /// When the next rotation is due, in nanoseconds since `base`.
    rotate_at: AtomicU64,
    base: Instant,
    /// Held only while rotating, or reconfiguring.
    rotation: Mutex<WindowSettings>,
}

/// What a rotation summarises with; changed live by `reconfigure`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WindowSettings {
    pub(crate) percentile: f64,
    pub(crate) min_samples: u64,
    pub(crate) period: Duration,
}

impl LatencyWindow {
    /// A window of `period`, starting now, that summarises each full window into its
    /// `percentile` (in (0, 1], checked by the builder) once it has `min_samples` samples.
    pub(crate) fn new(settings: WindowSettings) -> Self {
        let counts = || (0..BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Self {
            counts: [counts(), counts()],
            active: AtomicU32::new(0),
            delay_micros: AtomicU64::new(NO_DELAY),
            rotate_at: AtomicU64::new(nanos(settings.period)),
            base: Instant::now(),
            rotation: Mutex::new(settings),
        }
    }

    /// The lock of the rotation and the settings. Every update under it is a plain store,
    /// consistent whatever a panicking holder left: a poisoned lock is used as it is.
    #[cfg(feature = "serde")]
    fn settings_lock(&self) -> crate::sync::MutexGuard<'_, WindowSettings> {
        self.rotation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings in force.
    #[cfg(all(test, not(steadfast_loom), feature = "serde"))]
    pub(crate) fn settings(&self) -> WindowSettings {
        *self.settings_lock()
    }

    /// Applies new settings, keeping the samples: see [Reconfiguring](self#reconfiguring).
    #[cfg(feature = "serde")]
    pub(crate) fn reconfigure(&self, new: WindowSettings) {
        let mut settings = self.settings_lock();
        let old = *settings;
        *settings = new;
        if new.period != old.period {
            let start = self
                .rotate_at
                .load(Ordering::Relaxed)
                .saturating_sub(nanos(old.period));
            self.rotate_at
                .store(start.saturating_add(nanos(new.period)), Ordering::Relaxed);
        }
        if new.percentile != old.percentile || new.min_samples != old.min_samples {
            let retired = (self.active.load(Ordering::Relaxed) as usize & 1) ^ 1;
            let summary = summarise(&self.counts[retired], &new);
            self.delay_micros.store(summary, Ordering::Relaxed);
        }
    }

    /// The delay before a timed hedge: the percentile of the last full window, at least
    /// [`MIN_DELAY_MICROS`], or `None` when it had fewer than `min_samples` calls. One relaxed
    /// load.
    #[inline]
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay_micros.load(Ordering::Relaxed) {
            NO_DELAY => None,
            micros => Some(Duration::from_micros(micros.max(MIN_DELAY_MICROS))),
        }
    }

    /// Records a call answered at its first poll: a latency of zero, with no clock read and
    /// no rotation (see [Calls answered at once](self#calls-answered-at-once)).
    #[inline]
    pub(crate) fn record_immediate(&self) {
        let active = self.active.load(Ordering::Relaxed) as usize & 1;
        self.counts[active][0].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one call's latency, measured at `now`, and rotates the window if it is due.
    pub(crate) fn record(&self, now: Instant, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let active = self.active.load(Ordering::Relaxed) as usize & 1;
        self.counts[active][bucket(micros)].fetch_add(1, Ordering::Relaxed);

        let since_base = nanos(now.saturating_duration_since(self.base));
        if since_base >= self.rotate_at.load(Ordering::Relaxed) {
            self.rotate(since_base);
        }
    }

    /// Retires the active array into the summary and starts a new window. Skipped if another
    /// caller is rotating (it does the same work) or already did.
    fn rotate(&self, since_base: u64) {
        // As in `settings_lock`: a poisoned lock is used as it is.
        let settings = match self.rotation.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if since_base < self.rotate_at.load(Ordering::Relaxed) {
            return;
        }
        let retired = self.active.load(Ordering::Relaxed) as usize & 1;
        let next = retired ^ 1;
        for count in self.counts[next].iter() {
            count.store(0, Ordering::Relaxed);
        }
        self.active.store(next as u32, Ordering::Relaxed);
        let summary = summarise(&self.counts[retired], &settings);
        self.delay_micros.store(summary, Ordering::Relaxed);
        self.rotate_at.store(
            since_base.saturating_add(nanos(settings.period)),
            Ordering::Relaxed,
        );
    }
}

/// The percentile of `counts` (a bucket's upper bound), or [`NO_DELAY`] below `min_samples`.
fn summarise(counts: &[AtomicU64], settings: &WindowSettings) -> u64 {
    let snapshot: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    percentile_of(&snapshot, settings.percentile, settings.min_samples)
}

/// The `percentile` of a histogram's bucket counts: the upper bound of the bucket that holds the
/// sample of rank `ceil(percentile × total)`; [`NO_DELAY`] below `min_samples`.
fn percentile_of(counts: &[u64], percentile: f64, min_samples: u64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 || total < min_samples {
        return NO_DELAY;
    }
    let rank = ((percentile * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return upper_bound(index);
        }
    }
    upper_bound(counts.len() - 1)
}

#[cfg(test)]
fn settings(percentile: f64, min_samples: u64, period: Duration) -> WindowSettings {
    WindowSettings {
        percentile,
        min_samples,
        period,
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_are_exact_below_sixteen_and_contiguous_above() {
        for micros in 0..16 {
            assert_eq!(bucket(micros), micros as usize);
            assert_eq!(upper_bound(micros as usize), micros);
        }
        assert_eq!(bucket(16), 16);
        assert_eq!(bucket(31), 31);
        assert_eq!(bucket(32), 32);
        assert_eq!(bucket(33), 32);
        assert_eq!(upper_bound(32), 33);
        assert_eq!(bucket(MAX_MICROS), BUCKETS - 1);
        assert_eq!(upper_bound(BUCKETS - 1), MAX_MICROS);
        for index in 1..BUCKETS {
            assert_eq!(bucket(upper_bound(index - 1) + 1), index, "bucket {index}");
        }
    }

    #[test]
    fn no_delay_until_a_full_window_has_min_samples() {
        let window = LatencyWindow::new(settings(0.5, 4, Duration::from_secs(1)));
        let start = window.base;
        window.record(start, Duration::from_millis(10));
        window.record(start, Duration::from_millis(10));
        assert_eq!(window.delay(), None);
        // Three samples (the rotating call's own included) were too few: no delay.
        window.record(start + Duration::from_secs(1), Duration::from_millis(10));
        assert_eq!(window.delay(), None);
        for _ in 0..3 {
            window.record(
                start + Duration::from_millis(1500),
                Duration::from_millis(20),
            );
        }
        assert_eq!(window.delay(), None, "the window has not rotated yet");
        window.record(start + Duration::from_secs(2), Duration::from_millis(20));
        // The retired window: three samples of 20 ms and the rotating call's own.
        let delay = window.delay().expect("enough samples");
        assert!(delay >= Duration::from_millis(20), "{delay:?}");
        assert!(
            delay <= Duration::from_micros(20_000 + 20_000 / 16),
            "{delay:?}"
        );
    }

    #[test]
    fn an_immediate_answer_counts_as_zero_without_rotating() {
        let window = LatencyWindow::new(settings(0.5, 3, Duration::from_secs(1)));
        let start = window.base;
        window.record_immediate();
        window.record_immediate();
        assert_eq!(
            window.rotate_at.load(Ordering::Relaxed),
            nanos(Duration::from_secs(1))
        );
        // The timed sample rotates: two zeros and 5 ms, whose median is zero (the floor: 1 ms).
        window.record(start + Duration::from_secs(1), Duration::from_millis(5));
        assert_eq!(window.delay(), Some(Duration::from_millis(1)));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn reconfiguring_keeps_the_samples_and_resummarises_the_last_window() {
        let window = LatencyWindow::new(settings(0.5, 4, Duration::from_secs(1)));
        let start = window.base;
        for millis in [10, 20, 30] {
            window.record(start, Duration::from_millis(millis));
        }
        window.record(start + Duration::from_secs(1), Duration::from_millis(40));
        let p50 = window.delay().expect("four samples");
        assert!(
            p50 >= Duration::from_millis(20) && p50 < Duration::from_millis(22),
            "{p50:?}"
        );
        // p100 of the same window, at once.
        window.reconfigure(settings(1.0, 4, Duration::from_secs(1)));
        let p100 = window.delay().expect("four samples");
        assert!(
            p100 >= Duration::from_millis(40) && p100 < Duration::from_millis(43),
            "{p100:?}"
        );
        // Five samples needed: the last window had four.
        window.reconfigure(settings(1.0, 5, Duration::from_secs(1)));
        assert_eq!(window.delay(), None);
        // A 3 s window: the current one (from 1 s) now ends at 4 s, not 2 s.
        window.reconfigure(settings(1.0, 5, Duration::from_secs(3)));
        assert_eq!(
            window.rotate_at.load(Ordering::Relaxed),
            nanos(Duration::from_secs(4))
        );
        assert_eq!(window.settings(), settings(1.0, 5, Duration::from_secs(3)));
    }

    /// A plain sorted-sample model of the percentile.
    fn model(samples: &[u64], percentile: f64) -> u64 {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = ((percentile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn a_bucket_bounds_its_values_within_a_sixteenth(micros in 0u64..=MAX_MICROS) {
            let upper = upper_bound(bucket(micros));
            prop_assert!(upper >= micros);
            prop_assert!(upper - micros <= micros / SUB);
        }

        #[test]
        fn the_percentile_matches_a_sorted_model(
            samples in proptest::collection::vec(0u64..10_000_000, 1..200),
            percentile in 0.01f64..=1.0,
        ) {
            let mut counts = vec![0u64; BUCKETS];
            for &micros in &samples {
                counts[bucket(micros)] += 1;
            }
            let exact = model(&samples, percentile);
            let estimate = percentile_of(&counts, percentile, 1);
            prop_assert!(estimate >= exact, "{estimate} < {exact}");
            prop_assert!(estimate - exact <= exact / SUB, "{estimate} vs {exact}");
        }

        #[test]
        fn a_window_summarises_what_it_recorded(
            samples in proptest::collection::vec(0u64..10_000_000, 1..100),
        ) {
            let window = LatencyWindow::new(settings(0.9, 1, Duration::from_secs(1)));
            let start = window.base;
            for &micros in &samples {
                window.record(start, Duration::from_micros(micros));
            }
            // This call rotates: it lands in the retired window first.
            window.record(start + Duration::from_secs(1), Duration::ZERO);
            let mut all = samples.clone();
            all.push(0);
            let exact = model(&all, 0.9).max(MIN_DELAY_MICROS);
            let delay = window.delay().expect("samples were recorded").as_micros() as u64;
            prop_assert!(delay >= exact && delay - exact <= exact / SUB);
        }
    }
}

/// loom models: a rotation racing recorders never counts a sample twice, and exactly one of two
/// callers that see a rotation due performs it.
#[cfg(all(test, steadfast_loom))]
mod loom_tests {
    use std::time::Duration;

    use super::*;
    use crate::sync::Arc;

    fn total(window: &LatencyWindow, index: usize) -> u64 {
        window.counts[index]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    #[test]
    fn loom_a_sample_racing_a_rotation_is_counted_once() {
        loom::model(|| {
            let window = Arc::new(LatencyWindow::new(settings(1.0, 1, Duration::from_secs(1))));
            let start = window.base;
            let recorder = {
                let window = Arc::clone(&window);
                loom::thread::spawn(move || window.record(start, Duration::from_micros(5)))
            };
            // Due: rotates (this sample lands in the retired window first).
            window.record(start + Duration::from_secs(1), Duration::from_micros(7));
            recorder.join().unwrap();
            // Both samples are in exactly one array, never both, never lost.
            assert_eq!(total(&window, 0) + total(&window, 1), 2);
            // The summary (the maximum: percentile 1.0) saw the rotating call's own sample,
            // whether or not the racing one made it in before the flip.
            assert_eq!(window.delay_micros.load(Ordering::Relaxed), 7);
        });
    }

    /// A reconfiguration racing a rotation: the summary is made with the old settings or the
    /// new ones, wholly, and the next window's end follows the new length.
    #[cfg(feature = "serde")]
    #[test]
    fn loom_a_reconfiguration_racing_a_rotation_applies_wholly() {
        loom::model(|| {
            let window = Arc::new(LatencyWindow::new(settings(1.0, 1, Duration::from_secs(1))));
            let start = window.base;
            window.record(start, Duration::from_micros(3));
            let reconfigure = {
                let window = Arc::clone(&window);
                loom::thread::spawn(move || {
                    window.reconfigure(settings(1.0, 5, Duration::from_secs(2)));
                })
            };
            window.record(start + Duration::from_secs(1), Duration::from_micros(7));
            reconfigure.join().unwrap();
            // Reconfigured first: the first window now ends at 2 s, so the sample at 1 s does
            // not rotate. Rotated first: the window [0, 1 s) is summarised, then the one from
            // 1 s lasts 2 s, and the re-summary asks five samples where there were two. Either
            // way no delay (the new `min_samples`), never the old setting's 7 µs.
            assert_eq!(window.delay_micros.load(Ordering::Relaxed), NO_DELAY);
            let rotate_at = window.rotate_at.load(Ordering::Relaxed);
            assert!(
                rotate_at == nanos(Duration::from_secs(2))
                    || rotate_at == nanos(Duration::from_secs(3)),
                "{rotate_at}"
            );
        });
    }

    #[test]
    fn loom_one_rotation_per_period() {
        loom::model(|| {
            let window = Arc::new(LatencyWindow::new(settings(1.0, 1, Duration::from_secs(1))));
            let due = window.base + Duration::from_secs(1);
            let other = {
                let window = Arc::clone(&window);
                loom::thread::spawn(move || window.record(due, Duration::from_micros(3)))
            };
            window.record(due, Duration::from_micros(3));
            other.join().unwrap();
            // Exactly one rotation: `try_lock` fails only while the other caller rotates, and the
            // second to lock sees the rotation done. The next is a full period later.
            assert_eq!(
                window.rotate_at.load(Ordering::Relaxed),
                nanos(Duration::from_secs(2))
            );
            assert_eq!(total(&window, 0) + total(&window, 1), 2);
        });
    }
}
