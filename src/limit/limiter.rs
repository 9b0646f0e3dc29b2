//! The limiter every clone of a layer shares: the admission word, the sampling period, the
//! estimator behind a lock that is only ever tried, the classifier, and the metric handles.

use std::borrow::Cow;
use std::fmt;
use std::sync::{PoisonError, TryLockError};
use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::{Estimator, Sample};
use super::state::{Admission, LimitWord, Snapshot};
use super::window::Window;
use crate::sync::{AtomicBool, AtomicU32, Mutex, Ordering};

/// What the lock guards: the window being gathered and the algorithm it feeds.
#[derive(Debug)]
pub(crate) struct Tuning {
    pub(crate) window: Window,
    pub(crate) estimator: Estimator,
}

/// Everything a layer's clones, its services and their futures share: created once by
/// [`Builder::build`](super::Builder::build).
///
/// `repr(C)` with the word first puts it on the cache line of the `Arc`'s reference counts,
/// which every call also touches, and what every call reads (`sample_mask`, `cancel_timeout`)
/// right after it, on the line its admission just wrote.
///
/// # Memory ordering
///
/// `sample_mask` and `pending_drop` guard no other data, so every access is `Relaxed`. A stale
/// mask only picks other calls to time. `pending_drop` is set by plain stores and cleared only
/// by a `swap` of the lock holder, which reads the latest value in the flag's modification
/// order: a drop stored before the swap is taken by it, one stored after stays for the next.
#[repr(C)]
pub(crate) struct Limiter<C> {
    pub(crate) word: LimitWord,
    /// The sampling period minus one (a power of two minus one): a call is timed when its
    /// number (the word's `seq`) has none of these bits set. Written only by the lock holder.
    sample_mask: AtomicU32,
    /// A drop that no window has counted yet: a failure of a call that was not timed, or of one
    /// that found the lock taken. Taken into the window by the next sample under the lock.
    pending_drop: AtomicBool,
    /// AIMD's timeout: a cancelled call older than this is a drop, so every call's start is
    /// read, not only a timed call's. Read by every call, so on the word's cache line.
    pub(crate) cancel_timeout: Option<Duration>,
    /// The window and the algorithm's state. Only ever `try_lock`ed, by timed calls on their way
    /// out: a sample that finds it taken is skipped (see the module docs, "Timing a sample of the
    /// calls").
    tuning: Mutex<Tuning>,
    pub(crate) classifier: C,
    pub(crate) name: Cow<'static, str>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Metrics,
}

/// Metric handles, registered once at build time.
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) limit: metrics::Gauge,
    pub(crate) in_flight: metrics::Gauge,
    pub(crate) rejected: metrics::Counter,
}

impl<C> Limiter<C> {
    pub(crate) fn new(
        tuning: Tuning,
        classifier: C,
        cancel_timeout: Option<Duration>,
        name: Cow<'static, str>,
    ) -> Self {
        let limit = tuning.estimator.limit();
        let sample_mask = tuning.window.period() - 1;
        #[cfg(feature = "metrics")]
        let metrics = {
            let labels = [("name", name.to_string())];
            let metrics = Metrics {
                limit: metrics::gauge!("steadfast_limit_limit", &labels),
                in_flight: metrics::gauge!("steadfast_limit_in_flight", &labels),
                rejected: metrics::counter!("steadfast_limit_rejected_total", &labels),
            };
            metrics.limit.set(f64::from(limit));
            metrics.in_flight.set(0.0);
            metrics
        };
        Self {
            word: LimitWord::new(limit),
            sample_mask: AtomicU32::new(sample_mask),
            pending_drop: AtomicBool::new(false),
            cancel_timeout,
            tuning: Mutex::new(tuning),
            classifier,
            name,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// Admits a call below the limit: one CAS, which also numbers the call.
    #[inline]
    pub(crate) fn try_admit(&self) -> Admission {
        self.word.try_admit()
    }

    /// Whether the call `admitted` numbered is one to time: one in the sampling period.
    #[inline]
    pub(crate) fn is_timed(&self, admitted: Snapshot) -> bool {
        admitted.seq() & self.sample_mask.load(Ordering::Relaxed) == 0
    }

    /// Ends an admitted call. The in-flight gauge is set here only when the last call in
    /// flight ends (and when a window closes): a gauge moved on every call would cost every
    /// call an indirect call into the recorder.
    #[inline]
    pub(crate) fn release(&self) {
        let _before = self.word.release();
        #[cfg(feature = "metrics")]
        if _before.in_flight() == 1 {
            self.metrics.in_flight.set(0.0);
        }
    }

    /// A drop that brings no latency (a call that was not timed): never skipped, since AIMD
    /// and Vegas react to one drop in a window.
    #[cold]
    #[inline(never)]
    pub(crate) fn drop_untimed(&self) {
        self.pending_drop.store(true, Ordering::Relaxed);
    }

    /// The algorithm, the window's length and its fewest samples, as built, for
    /// `reconfigure` to compare. Waits for the lock: a call that ends meanwhile skips its
    /// sample, as it does when another call holds it.
    #[cfg(feature = "serde")]
    pub(crate) fn settings(&self) -> (super::Algorithm, Duration, u32) {
        let tuning = self.tuning.lock().unwrap_or_else(PoisonError::into_inner);
        let (window, samples) = tuning.window.settings();
        (tuning.estimator.algorithm(), window, samples)
    }

    /// The lowest and highest limits in force. Waits for the lock: a call that ends meanwhile
    /// skips its sample, as when another call holds it.
    pub(crate) fn bounds(&self) -> (u32, u32) {
        let tuning = self.tuning.lock().unwrap_or_else(PoisonError::into_inner);
        tuning.estimator.bounds()
    }

    /// Applies a reloaded config under the lock (off the call path: a call that ends meanwhile
    /// skips its sample, as when another call holds it): the estimator's new bounds and
    /// algorithm (`Estimator::retune`), and a new, empty window when its settings changed.
    /// The word's limit follows the estimator's, as after a sample. Returns the limit before
    /// and after.
    #[cfg(feature = "serde")]
    pub(crate) fn retune(
        &self,
        algorithm: super::Algorithm,
        (min, max): (u32, u32),
        (window, window_samples): (Duration, u32),
        seed: u64,
    ) -> (u32, u32) {
        let mut tuning = self.tuning.lock().unwrap_or_else(PoisonError::into_inner);
        if tuning.window.settings() != (window, window_samples) {
            tuning.window = Window::new(window, window_samples);
            // A new window times every call until it has chosen its own period.
            self.sample_mask
                .store(tuning.window.period() - 1, Ordering::Relaxed);
        }
        let old = tuning.estimator.limit();
        tuning.estimator.retune(algorithm, min, max, seed);
        let new = tuning.estimator.limit();
        if new != old {
            // Under the lock, the only writer of the limit, as in `sample`.
            self.word.set_limit(old, new);
            #[cfg(feature = "metrics")]
            self.metrics.limit.set(f64::from(new));
        }
        (old, new)
    }

    /// Adds the sample of a timed call, taken `now`, to the window, unless another thread is
    /// adding one right now (then only its drop, if it is one, is kept); when that closes the
    /// window, feeds the window's sample to the algorithm.
    pub(crate) fn sample(&self, mut sample: Sample, now: Instant) {
        let mut tuning = match self.tuning.try_lock() {
            Ok(tuning) => tuning,
            Err(TryLockError::WouldBlock) => {
                if sample.dropped {
                    self.drop_untimed();
                }
                return;
            }
            // The estimator does no I/O and calls no user code: a panic inside it is a bug, and
            // its numbers are still within bounds (each update stores a clamped value).
            Err(TryLockError::Poisoned(poisoned)) => PoisonError::into_inner(poisoned),
        };
        if self.pending_drop.load(Ordering::Relaxed) {
            sample.dropped |= self.pending_drop.swap(false, Ordering::Relaxed);
        }
        let closed = tuning.window.add(sample, now);
        let mask = tuning.window.period() - 1;
        if mask != self.sample_mask.load(Ordering::Relaxed) {
            self.sample_mask.store(mask, Ordering::Relaxed);
        }
        let Some(sample) = closed else {
            return;
        };
        #[cfg(feature = "metrics")]
        self.metrics
            .in_flight
            .set(f64::from(self.word.load().in_flight()));
        let old = tuning.estimator.limit();
        let new = tuning.estimator.update(sample);
        if new != old {
            // Under the lock: the only writer of the limit, so `old` is the word's limit. The
            // event and the gauge too, so that they report the changes in the order they
            // happened (the gauge never keeps an older value).
            self.word.set_limit(old, new);
            self.limit_changed(old, new, sample);
        }
    }

    #[cold]
    #[inline(never)]
    fn limit_changed(&self, old: u32, new: u32, sample: Sample) {
        #[cfg(feature = "metrics")]
        self.metrics.limit.set(f64::from(new));
        tracing::debug!(
            limit.name = %self.name,
            limit.previous = old,
            limit.limit = new,
            limit.rtt_us = u64::try_from(sample.rtt.as_micros()).unwrap_or(u64::MAX),
            limit.dropped = sample.dropped,
            "concurrency limit changed"
        );
    }

    /// The sampling period in force, and the samples the window took so far, for tests.
    #[cfg(all(test, not(steadfast_loom)))]
    pub(crate) fn sampling(&self) -> (u32, u64) {
        let tuning = self.tuning.lock().unwrap_or_else(PoisonError::into_inner);
        (
            self.sample_mask.load(Ordering::Relaxed) + 1,
            tuning.window.added,
        )
    }
}

impl<C> fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("word", &self.word)
            .finish_non_exhaustive()
    }
}

/// loom models of the limiter: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use std::time::Duration;

    use loom::sync::Arc;

    use super::*;
    use crate::classify::ErrorsAsFailures;
    use crate::limit::Aimd;

    /// Two calls finishing at once, one a drop and one a success, each feeding the algorithm on
    /// its own (a window of one sample): whichever takes the lock (or both, one after the
    /// other), the word's limit ends equal to the estimator's, and every slot comes back.
    #[test]
    fn loom_concurrent_samples_keep_the_word_and_the_estimator_in_step() {
        loom::model(|| {
            let tuning = Tuning {
                window: Window::new(Duration::ZERO, 1),
                estimator: Estimator::new(Aimd::new().into(), 2, 1, 4, 0),
            };
            let limiter = Arc::new(Limiter::new(
                tuning,
                ErrorsAsFailures::new(),
                None,
                Cow::Borrowed("loom"),
            ));
            let callers: Vec<_> = [true, false]
                .into_iter()
                .map(|dropped| {
                    let limiter = limiter.clone();
                    loom::thread::spawn(move || {
                        if let Admission::Admitted(admitted) = limiter.try_admit() {
                            let sample = Sample {
                                rtt: Duration::from_millis(1),
                                in_flight: admitted.in_flight(),
                                dropped,
                            };
                            limiter.release();
                            limiter.sample(sample, Instant::now());
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.join().unwrap();
            }
            let word = limiter.word.load();
            assert_eq!(word.in_flight(), 0);
            let estimated = limiter.tuning.lock().unwrap().estimator.limit();
            assert_eq!(word.limit(), estimated);
            assert!((1..=4).contains(&estimated));
        });
    }

    /// A drop that finds the lock taken is kept for the next sample, never lost and never
    /// counted twice: AIMD at 4 with one call in flight moves only on a drop (to 3), so after a
    /// success and a drop race and one more success follows, the limit is exactly 3.
    #[test]
    fn loom_a_drop_that_finds_the_lock_taken_is_not_lost() {
        loom::model(|| {
            let tuning = Tuning {
                window: Window::new(Duration::ZERO, 1),
                estimator: Estimator::new(Aimd::new().into(), 4, 1, 4, 0),
            };
            let limiter = Arc::new(Limiter::new(
                tuning,
                ErrorsAsFailures::new(),
                None,
                Cow::Borrowed("loom"),
            ));
            let sample = |dropped| Sample {
                rtt: Duration::from_millis(1),
                in_flight: 1,
                dropped,
            };
            let callers: Vec<_> = [true, false]
                .into_iter()
                .map(|dropped| {
                    let limiter = limiter.clone();
                    loom::thread::spawn(move || limiter.sample(sample(dropped), Instant::now()))
                })
                .collect();
            for caller in callers {
                caller.join().unwrap();
            }
            limiter.sample(sample(false), Instant::now());
            assert_eq!(limiter.word.load().limit(), 3);
            assert!(!limiter.pending_drop.load(Ordering::Relaxed));
        });
    }
}
