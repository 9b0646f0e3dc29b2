//! The state a chaos layer shares with every clone and every service it makes: two switches, the
//! counters and the generator that decides each call.
//!
//! # The switches
//!
//! One `AtomicU32` holds both run-time switches, so that the call path reads them with one load:
//!
//! ```text
//!  31                               2     1        0
//! +----------------------------------+--------+---------+
//! |               0                  | OUTAGE | ENABLED |
//! +----------------------------------+--------+---------+
//! ```
//!
//! A call is judged only if `ENABLED` is set and either `OUTAGE` is set or some fault is
//! configured; otherwise it passes through after that one load.
//!
//! # The generator
//!
//! Each judged call takes the next number of a call counter (one `fetch_add`) and hashes it with
//! the seed through SplitMix64's output function. The decisions for a call (error or not, delayed
//! or not, how long) are therefore a pure function of the seed and the call's position among the
//! judged calls: the same seed gives the same decisions for the same sequence of calls, however
//! the calls are spread over services, clones and threads.
//!
//! # Memory ordering
//!
//! Every access is `Relaxed`. The switches and counters publish no other data: the
//! configuration is immutable and was published by the `Arc` that shares it. A switch flipped on
//! one thread is seen by calls on other threads soon after, which is all a fault injector needs;
//! the counters are statistics, each exact on its own, read without a common snapshot.

use std::time::Duration;

use tokio::time::Instant;

use super::config::{Config, Latency};
use super::error::FaultKind;
use super::handle::Counts;
#[cfg(feature = "metrics")]
use super::telemetry::Metrics;
use crate::random::{GOLDEN, mix, nth, unit, up_to};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The master switch: nothing is injected while it is off.
const ENABLED: u32 = 1;
/// A manual outage: every judged call fails with [`FaultKind::Outage`].
const OUTAGE: u32 = 1 << 1;

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it at once.
    Pass,
    /// Send it after this delay.
    Delay(Duration),
    /// Fail it without sending it.
    Fail(FaultKind),
}

impl Latency {
    /// The delay chosen by `z`, in `[min, min + span]`.
    fn delay(&self, z: u64) -> Duration {
        self.min + Duration::from_nanos(up_to(z, self.span_nanos))
    }
}

/// The state shared by a layer, its clones, its services and its handles.
pub(crate) struct Core {
    flags: AtomicU32,
    calls: AtomicU64,
    errors: AtomicU64,
    outages: AtomicU64,
    delays: AtomicU64,
    config: Config,
    /// The instant the layer was built: scheduled outages are offsets from it.
    epoch: Instant,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

impl Core {
    pub(crate) fn new(config: Config) -> Self {
        #[cfg(feature = "metrics")]
        let metrics = Metrics::register(&config.name);
        Self {
            flags: AtomicU32::new(if config.enabled { ENABLED } else { 0 }),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            delays: AtomicU64::new(0),
            epoch: Instant::now(),
            config,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Decides one call. Off, or on with nothing to inject: one atomic load.
    #[inline]
    pub(crate) fn decide(&self) -> Verdict {
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & ENABLED == 0 || (flags & OUTAGE == 0 && !self.config.has_faults()) {
            return Verdict::Pass;
        }
        self.judge(flags)
    }

    #[inline(never)]
    fn judge(&self, flags: u32) -> Verdict {
        let z = nth(self.config.seed, self.calls.fetch_add(1, Ordering::Relaxed));
        if flags & OUTAGE != 0 || self.in_scheduled_outage(Instant::now()) {
            return self.fail(FaultKind::Outage);
        }
        if unit(z) < self.config.error_rate {
            return self.fail(FaultKind::Error);
        }
        if let Some(latency) = &self.config.latency {
            let z = mix(z.wrapping_add(GOLDEN));
            if unit(z) < latency.rate {
                let delay = latency.delay(mix(z.wrapping_add(GOLDEN)));
                if tokio::runtime::Handle::try_current().is_err() {
                    // A sleep outside a runtime would panic: send the call as it is.
                    tracing::warn!(
                        chaos.name = %self.config.name,
                        chaos.delay_ms = crate::clock::millis(delay),
                        "chaos cannot delay a call outside a tokio runtime; sent it undelayed"
                    );
                    return Verdict::Pass;
                }
                self.delays.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    chaos.name = %self.config.name,
                    chaos.kind = "latency",
                    chaos.delay_ms = crate::clock::millis(delay),
                    "chaos delayed a call"
                );
                #[cfg(feature = "metrics")]
                self.metrics.latency.increment(1);
                return Verdict::Delay(delay);
            }
        }
        Verdict::Pass
    }

    fn fail(&self, kind: FaultKind) -> Verdict {
        let counter = match kind {
            FaultKind::Error => &self.errors,
            FaultKind::Outage => &self.outages,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            chaos.name = %self.config.name,
            chaos.kind = kind.as_str(),
            "chaos failed a call"
        );
        #[cfg(feature = "metrics")]
        match kind {
            FaultKind::Error => self.metrics.error.increment(1),
            FaultKind::Outage => self.metrics.outage.increment(1),
        }
        Verdict::Fail(kind)
    }

    fn in_scheduled_outage(&self, now: Instant) -> bool {
        if self.config.outages.is_empty() {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.epoch);
        self.config
            .outages
            .iter()
            .any(|window| window.start <= elapsed && elapsed < window.end)
    }

    // -----------------------------------------------------------------------------------------
    // The handle
    // -----------------------------------------------------------------------------------------

    /// Sets or clears `bit`; whether it changed.
    fn switch(&self, bit: u32, on: bool) -> bool {
        let before = if on {
            self.flags.fetch_or(bit, Ordering::Relaxed)
        } else {
            self.flags.fetch_and(!bit, Ordering::Relaxed)
        };
        (before & bit != 0) != on
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        if self.switch(ENABLED, enabled) {
            tracing::info!(
                chaos.name = %self.config.name,
                chaos.enabled = enabled,
                "chaos switched {}",
                if enabled { "on" } else { "off" }
            );
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & ENABLED != 0
    }

    pub(crate) fn set_outage(&self, outage: bool) {
        if self.switch(OUTAGE, outage) {
            if outage {
                tracing::warn!(chaos.name = %self.config.name, "chaos outage started");
            } else {
                tracing::info!(chaos.name = %self.config.name, "chaos outage stopped");
            }
        }
    }

    pub(crate) fn in_outage(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & OUTAGE != 0 || self.in_scheduled_outage(Instant::now())
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
            delays: self.delays.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("enabled", &self.is_enabled())
            .field(
                "manual_outage",
                &(self.flags.load(Ordering::Relaxed) & OUTAGE != 0),
            )
            .field("counts", &self.counts())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
