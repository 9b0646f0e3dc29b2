//! What the closed state counts, and how a running breaker starts counting differently: the
//! [`Shape`] of its window, the [`Window`] of that shape, and the [`WindowCell`] through which
//! [`reconfigure`](super::CircuitBreakerLayer::reconfigure) replaces it.
//!
//! # Replacing the window without a lock on the call path
//!
//! A window is a fixed block of atomics (a ring of slots, or of buckets) that cannot be resized
//! in place, so a new shape means a new window. The cell keeps the current one as an `Arc`
//! behind a short lock, and a version that grows by one on every replacement. Calls never take
//! the lock: each service holds the `Arc` of the window it last saw (in its `Judge`, which its
//! futures share), reads the version once per call (a line written only by reconfiguration), and
//! comes to the lock only when the version moved, once per service and replacement — the way the
//! pool's services keep their view of the endpoints.
//!
//! # Calls in flight during a replacement
//!
//! A call admitted before the replacement holds the old window and records its outcome there,
//! where nobody reads it any more: its outcome is **dropped**. To make that exact, and so that the
//! old window can never trip the breaker afterwards, a replacement in the closed state also moves
//! the breaker to its next generation (closed still: no transition is reported). Outcomes of the
//! older generation are stale, as they are after any transition (`state.rs`), and the new window
//! starts empty. The failure run, tagged with the generation too, starts again with it. Open and
//! half-open breakers keep their generation and their timers: their calls do not use the window,
//! and it is empty when they close.
//!
//! Counting them in the new window instead would need the future to find the current window when
//! it finishes, which is the lock (or a reference count on a shared line) this design avoids; and
//! the new window is meant to judge the new shape, so its first outcomes are those of calls made
//! under it.
//!
//! # Memory ordering
//!
//! The window and its version change together under the lock; the version's store is `Release`,
//! inside it. The replacement then makes one successful compare-and-swap on the state word (the
//! next generation when closed, else the same word rewritten), so every later state word a call
//! is admitted under is in that CAS's release sequence: the admission's `Acquire` load of the
//! state makes the new version visible to the `Relaxed` version read in `call`, and a call
//! admitted in the new generation always records into the new window.

use std::time::Duration;

use super::config::{Config as Settings, SlidingWindow};
use super::state::Generation;
use super::window::{CountWindow, Sample, TimeWindow, Totals, WindowUpdate};
use crate::sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};

/// The settings that decide what the closed state counts. Two breakers of the same shape count
/// the same outcomes the same way; a new shape needs a new [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) window: SlidingWindow,
    /// The bucket of a time window (kept for a count window, where it means nothing).
    pub(crate) bucket_width: Duration,
    /// Slow-call detection is on: calls are timed.
    pub(crate) slow_calls: bool,
    /// The run of consecutive failures is counted.
    pub(crate) consecutive_failures: bool,
}

impl Shape {
    pub(crate) fn of(settings: &Settings) -> Self {
        Self {
            window: settings.window,
            bucket_width: settings.bucket_width,
            slow_calls: settings.slow_call_duration.is_some(),
            consecutive_failures: settings.consecutive_failures.is_some(),
        }
    }

    /// Whether a window of `self` counts as one of `other` does: the bucket width matters only
    /// to a time window.
    #[cfg(feature = "serde")]
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        let buckets_same = !matches!(self.window, SlidingWindow::Time(_))
            || self.bucket_width == other.bucket_width;
        self.window == other.window
            && buckets_same
            && self.slow_calls == other.slow_calls
            && self.consecutive_failures == other.consecutive_failures
    }
}

/// The closed state's window, of one [`Shape`].
pub(crate) struct Window {
    shape: Shape,
    kind: Kind,
}

enum Kind {
    Count(CountWindow),
    Time(TimeWindow),
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl Window {
    /// An empty window of `shape`, current in `generation`.
    pub(crate) fn new(shape: Shape, generation: Generation) -> Self {
        let kind = match shape.window {
            SlidingWindow::Count(n) => Kind::Count(CountWindow::new_at(n, generation)),
            SlidingWindow::Time(d) => {
                let bucket_ms = crate::clock::millis(shape.bucket_width).max(1);
                let buckets = crate::clock::millis(d).div_ceil(bucket_ms);
                Kind::Time(TimeWindow::new(bucket_ms, buckets))
            }
        };
        Self { shape, kind }
    }

    pub(crate) fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Whether an outcome needs the time it ended: to time the call, or to find its bucket.
    pub(crate) fn needs_end_time(&self) -> bool {
        self.shape.slow_calls || matches!(self.kind, Kind::Time(_))
    }

    /// Whether a clean success of `generation` would change nothing: see
    /// [`CountWindow::absorbs_success`]. Never for a time window, whose buckets count every call.
    #[inline]
    pub(crate) fn absorbs_success(&self, generation: Generation) -> bool {
        match &self.kind {
            Kind::Count(window) => window.absorbs_success(generation),
            Kind::Time(_) => false,
        }
    }

    pub(crate) fn record(
        &self,
        generation: Generation,
        sample: Sample,
        now_ms: u64,
    ) -> WindowUpdate {
        match &self.kind {
            Kind::Count(window) => window.record(generation, sample),
            Kind::Time(window) => window.record(generation, sample, now_ms),
        }
    }

    /// Empties a count window for `generation` (a time window's tags do that by themselves).
    pub(crate) fn adopt(&self, generation: Generation) {
        if let Kind::Count(window) = &self.kind {
            window.adopt(generation);
        }
    }

    pub(crate) fn totals(&self, generation: Generation, now_ms: u64) -> Totals {
        match &self.kind {
            Kind::Count(window) => window.totals(generation),
            Kind::Time(window) => window.totals(generation, now_ms),
        }
    }
}

/// The window a breaker counts in now, and its version: see the module docs.
pub(crate) struct WindowCell {
    /// How many times the window was replaced. Written under `current`'s lock.
    version: AtomicU64,
    current: Mutex<Arc<Window>>,
}

impl std::fmt::Debug for WindowCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowCell")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl WindowCell {
    pub(crate) fn new(window: Window) -> Self {
        Self {
            version: AtomicU64::new(0),
            current: Mutex::new(Arc::new(window)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Arc<Window>> {
        // A panic while the window was replaced left the old one or the new one, each whole.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version of the current window. `Relaxed`: see "Memory ordering" in the module docs.
    #[inline(always)]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The current window and its version, read together under the lock. Not for the call path
    /// except once per service after a replacement.
    pub(crate) fn load(&self) -> (u64, Arc<Window>) {
        let current = self.lock();
        (self.version.load(Ordering::Relaxed), Arc::clone(&current))
    }

    /// The current window, if nobody holds the lock this instant: for a transition into closed,
    /// which empties it at once rather than wait for its first outcome.
    pub(crate) fn try_current(&self) -> Option<Arc<Window>> {
        self.current
            .try_lock()
            .ok()
            .map(|current| Arc::clone(&current))
    }

    /// Installs `window` and moves the version on: the breaker's part of a replacement, which
    /// then moves its generation (`Breaker::replace_window`).
    pub(crate) fn replace(&self, window: Window) {
        let mut current = self.lock();
        *current = Arc::new(window);
        self.version.fetch_add(1, Ordering::Release);
    }
}
