//! The settings a running breaker can change: [`Live`], one atomic word each, written by
//! [`CircuitBreakerLayer::reconfigure`](super::CircuitBreakerLayer::reconfigure) and read where
//! the breaker judges (a failure, a probe, an open interval), never on the healthy path's one
//! load.
//!
//! # Layout
//!
//! Every setting is its own word: `f64`s as their bits in an `AtomicU64`, durations in
//! nanoseconds (saturating at 584 years, beyond the year the builder allows) in an
//! `AtomicU64`, except `max_wait_in_half_open`, in the milliseconds of the breaker's clock, and
//! counts in an `AtomicU32` (`AtomicU64` for the failure run, which is compared with a `u64`).
//!
//! # Memory ordering
//!
//! `Relaxed` everywhere. Each word is a setting on its own: a judgement that races a
//! reconfiguration may use some old settings and some new ones, each of which the operator
//! asked for, and the next judgement uses the new ones. No setting guards other data, and the
//! state word's invariants hold for any value of them: `half_open_calls` only bounds how many
//! probes are admitted (a lowered cap judges the probes once that many are in; the rest finish
//! stale and are ignored, giving their slots back with the half-open they belonged to). A probe
//! that finished under the old, higher cap was not the last one then; if the lowered cap makes
//! the probes already in enough, with none out, the next caller judges them in the admission
//! path (`Breaker::judge_probes`), so a reload never leaves a half-open that nobody judges.

use std::time::Duration;

use super::State;
use super::config::{Config as Settings, OpenBackoff};
use crate::clock::{millis as ms, nanos};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The changeable settings of one breaker.
#[derive(Debug)]
pub(crate) struct Live {
    failure_rate_threshold: AtomicU64,
    slow_call_rate_threshold: AtomicU64,
    slow_call_nanos: AtomicU64,
    minimum_calls: AtomicU32,
    consecutive_failures: AtomicU64,
    wait_in_open_nanos: AtomicU64,
    open_multiplier: AtomicU64,
    open_max: AtomicU64,
    open_jitter: AtomicU64,
    half_open_calls: AtomicU32,
    max_wait_in_half_open_ms: AtomicU64,
}

fn load_f64(word: &AtomicU64) -> f64 {
    f64::from_bits(word.load(Ordering::Relaxed))
}

impl Live {
    /// The live settings of `settings`, validated.
    pub(crate) fn new(settings: &Settings) -> Self {
        let live = Self {
            failure_rate_threshold: AtomicU64::new(0),
            slow_call_rate_threshold: AtomicU64::new(0),
            slow_call_nanos: AtomicU64::new(0),
            minimum_calls: AtomicU32::new(0),
            consecutive_failures: AtomicU64::new(0),
            wait_in_open_nanos: AtomicU64::new(0),
            open_multiplier: AtomicU64::new(0),
            open_max: AtomicU64::new(0),
            open_jitter: AtomicU64::new(0),
            half_open_calls: AtomicU32::new(0),
            max_wait_in_half_open_ms: AtomicU64::new(0),
        };
        live.store(settings);
        live
    }

    /// Applies `settings`, validated, one word at a time.
    pub(crate) fn store(&self, settings: &Settings) {
        let relaxed = Ordering::Relaxed;
        self.failure_rate_threshold
            .store(settings.failure_rate_threshold.to_bits(), relaxed);
        self.slow_call_rate_threshold
            .store(settings.slow_call_rate_threshold.to_bits(), relaxed);
        self.slow_call_nanos
            .store(settings.slow_call_duration.map_or(u64::MAX, nanos), relaxed);
        self.minimum_calls.store(settings.minimum_calls, relaxed);
        self.consecutive_failures.store(
            settings.consecutive_failures.map_or(u64::MAX, u64::from),
            relaxed,
        );
        self.wait_in_open_nanos
            .store(nanos(settings.wait_in_open), relaxed);
        let OpenBackoff {
            multiplier,
            max,
            jitter,
        } = settings.open_backoff;
        self.open_multiplier.store(multiplier.to_bits(), relaxed);
        self.open_max.store(nanos(max), relaxed);
        self.open_jitter.store(jitter.to_bits(), relaxed);
        self.half_open_calls
            .store(settings.half_open_calls, relaxed);
        self.max_wait_in_half_open_ms
            .store(ms(settings.max_wait_in_half_open), relaxed);
    }

    pub(crate) fn failure_rate_threshold(&self) -> f64 {
        load_f64(&self.failure_rate_threshold)
    }

    pub(crate) fn slow_call_rate_threshold(&self) -> f64 {
        load_f64(&self.slow_call_rate_threshold)
    }

    /// Whether slow-call detection is on (its duration is stored as `u64::MAX` ns when off).
    pub(crate) fn slow_calls(&self) -> bool {
        self.slow_call_nanos.load(Ordering::Relaxed) != u64::MAX
    }

    /// The slow-call duration, when slow-call detection is on.
    #[inline]
    pub(crate) fn slow_call_duration(&self) -> Duration {
        Duration::from_nanos(self.slow_call_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn minimum_calls(&self) -> u32 {
        self.minimum_calls.load(Ordering::Relaxed)
    }

    /// The run of failures that opens the breaker, when that check is on.
    pub(crate) fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn wait_in_open(&self) -> Duration {
        Duration::from_nanos(self.wait_in_open_nanos.load(Ordering::Relaxed))
    }

    /// The open interval's growth: multiplier, cap, jitter.
    pub(crate) fn open_backoff(&self) -> (f64, Duration, f64) {
        (
            load_f64(&self.open_multiplier),
            Duration::from_nanos(self.open_max.load(Ordering::Relaxed)),
            load_f64(&self.open_jitter),
        )
    }

    pub(crate) fn half_open_calls(&self) -> u32 {
        self.half_open_calls.load(Ordering::Relaxed)
    }

    pub(crate) fn max_wait_in_half_open_ms(&self) -> u64 {
        self.max_wait_in_half_open_ms.load(Ordering::Relaxed)
    }
}

/// The settings a running breaker cannot change: how it started. Kept instead of the whole of
/// its settings, whose other values live in [`Live`] and in its window's
/// [`Shape`](super::shape::Shape) (a breaker of a 100-call window fits in 1 KiB).
#[derive(Debug)]
// Read only by `reconfigure` (feature `serde`), to refuse what cannot change.
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) struct Fixed {
    pub(crate) initial_state: State,
}

impl Fixed {
    pub(crate) fn of(settings: &Settings) -> Self {
        Self {
            initial_state: settings.initial_state,
        }
    }
}
