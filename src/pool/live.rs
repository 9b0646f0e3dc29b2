//! The settings a running pool reads where it decides ([`Live`]), changed in place by
//! [`Pool::reconfigure`](super::Pool::reconfigure), and the checked values they are set from
//! ([`Settings`]).
//!
//! Each setting is its own atomic, stored and loaded `Relaxed`: no setting guards other memory,
//! and each decision reads the settings it needs once. The healthy call path reads none of them:
//! a failure reads `consecutive_failures` (and the ejection's length and cap when it ejects),
//! a counted failure-rate window reads its threshold, the computation of the routing reads
//! `panic_threshold`, and the health task reads its two thresholds for each probe's verdict.
//!
//! Routing sees a new `panic_threshold` because `reconfigure` stores it before it bumps the
//! routing version (`AcqRel`); a clone that loads the new version (`Acquire`) then computes its
//! routing with the new value.
//!
//! No two fields must change together: a decision that races a reload may see some settings
//! old and some new (an ejection that starts during it may take the new base time and the old
//! maximum, or the reverse), and the next decision sees them all new.

use std::time::Duration;

use crate::clock::millis;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// A pool's settings, as a builder holds them (a running pool's are the ones its builder's
/// `validate` or a reload's check accepted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) consecutive_failures: u32,
    pub(crate) base_ejection_time: Duration,
    pub(crate) max_ejection_time: Duration,
    pub(crate) max_ejected_fraction: f64,
    pub(crate) panic_threshold: f64,
    /// The threshold and the window's size in calls; `None`: off.
    pub(crate) failure_rate: Option<(f64, u32)>,
    pub(crate) unhealthy_threshold: u32,
    pub(crate) healthy_threshold: u32,
}

/// The settings that change live, one atomic each (`f64`s as their bits).
pub(crate) struct Live {
    consecutive_failures: AtomicU32,
    base_ejection_ms: AtomicU64,
    max_ejection_ms: AtomicU64,
    max_ejected_fraction: AtomicU64,
    panic_threshold: AtomicU64,
    /// Unused while failure-rate ejection is off (which a reload cannot turn on).
    failure_rate_threshold: AtomicU64,
    unhealthy_threshold: AtomicU32,
    healthy_threshold: AtomicU32,
}

impl Live {
    pub(crate) fn new(settings: &Settings) -> Self {
        let live = Self {
            consecutive_failures: AtomicU32::new(0),
            base_ejection_ms: AtomicU64::new(0),
            max_ejection_ms: AtomicU64::new(0),
            max_ejected_fraction: AtomicU64::new(0),
            panic_threshold: AtomicU64::new(0),
            failure_rate_threshold: AtomicU64::new(0),
            unhealthy_threshold: AtomicU32::new(0),
            healthy_threshold: AtomicU32::new(0),
        };
        live.store(settings);
        live
    }

    /// Makes `settings` live (the failure-rate window's size is not among them: it stays).
    pub(crate) fn store(&self, settings: &Settings) {
        let relaxed = Ordering::Relaxed;
        self.consecutive_failures
            .store(settings.consecutive_failures, relaxed);
        self.base_ejection_ms
            .store(millis(settings.base_ejection_time), relaxed);
        self.max_ejection_ms
            .store(millis(settings.max_ejection_time), relaxed);
        self.max_ejected_fraction
            .store(settings.max_ejected_fraction.to_bits(), relaxed);
        self.panic_threshold
            .store(settings.panic_threshold.to_bits(), relaxed);
        if let Some((threshold, _)) = settings.failure_rate {
            self.failure_rate_threshold
                .store(threshold.to_bits(), relaxed);
        }
        self.unhealthy_threshold
            .store(settings.unhealthy_threshold, relaxed);
        self.healthy_threshold
            .store(settings.healthy_threshold, relaxed);
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn base_ejection_ms(&self) -> u64 {
        self.base_ejection_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn max_ejection_ms(&self) -> u64 {
        self.max_ejection_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn max_ejected_fraction(&self) -> f64 {
        f64::from_bits(self.max_ejected_fraction.load(Ordering::Relaxed))
    }

    pub(crate) fn panic_threshold(&self) -> f64 {
        f64::from_bits(self.panic_threshold.load(Ordering::Relaxed))
    }

    pub(crate) fn failure_rate_threshold(&self) -> f64 {
        f64::from_bits(self.failure_rate_threshold.load(Ordering::Relaxed))
    }

    pub(crate) fn unhealthy_threshold(&self) -> u32 {
        self.unhealthy_threshold.load(Ordering::Relaxed)
    }

    pub(crate) fn healthy_threshold(&self) -> u32 {
        self.healthy_threshold.load(Ordering::Relaxed)
    }
}
