//! The local side of a global limit: the cells this process holds, spent with one
//! compare-and-swap per call, and the local share used while Redis cannot be reached.
//!
//! # Layout
//!
//! ```text
//! cells:      | cells held by this process, 0 ..= max_batch                     | AtomicU64
//! low_water:  | refill when a call leaves exactly this many cells               | AtomicU64
//! retry_hint: | ns until Redis has a cell again, from its last answer            | AtomicU64
//! missed:     | calls that found no cell, ever (the refill task reads the demand) | AtomicU64
//! requested:  | a refill of this lease is queued (keyed limits), so it is asked once | AtomicBool
//!
//! Mode (one per layer, keyed or not):
//! degraded:   | true while Redis cannot be reached                                | AtomicBool
//! processes:  | processes seen in Redis at the last answer, at least 1           | AtomicU32
//! ```
//!
//! Only the refill task adds cells (`fetch_add` of what Redis granted, never more than
//! `max_batch − held`), and only calls take them (a CAS that never goes below zero), so at
//! every instant the process holds at most `max_batch` cells: that is the slack of the fleet
//! (see the [module docs](super#the-bound)).
//!
//! # Memory ordering
//!
//! `Relaxed` throughout. No word guards other memory: a call's decision reads only `cells`
//! (and, once it is empty, the mode), a cell is taken by a CAS on `cells`
//! so no two calls take the same one, and the hints are advisory (a call that reads a stale
//! `processes` uses the share of a moment earlier, which the bound already allows for).

use std::fmt;

use tokio::time::Instant;

use super::super::state::{Decision, Gcra, Limiter};
use crate::keyed::Evict;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What [`Lease::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// A leased cell was taken: go.
    Admitted,
    /// A leased cell was taken and the lease is down to its low-water mark: go, and wake the
    /// refill task.
    AdmittedLow,
    /// No cell is held.
    Empty,
}

/// Whether the limiter runs without Redis, and the processes Redis last reported: one per
/// layer, shared by its leases (one, or one per key).
#[derive(Debug)]
pub(crate) struct Mode {
    degraded: AtomicBool,
    processes: AtomicU32,
}

impl Mode {
    /// Not degraded: until Redis first answers (or the first call to it fails), calls are
    /// rejected, which errs on the side of the limit when a whole fleet starts.
    pub(crate) fn new() -> Self {
        Self {
            degraded: AtomicBool::new(false),
            processes: AtomicU32::new(1),
        }
    }

    pub(crate) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Sets the mode; returns the previous one, so that only a change is reported.
    pub(crate) fn set_degraded(&self, degraded: bool) -> bool {
        self.degraded.swap(degraded, Ordering::Relaxed)
    }

    pub(crate) fn processes(&self) -> u32 {
        self.processes.load(Ordering::Relaxed)
    }

    pub(crate) fn set_processes(&self, processes: u32) {
        self.processes.store(processes.max(1), Ordering::Relaxed);
    }
}

/// The cells this process holds for one limit (or one key) and its fallback limiter; shared
/// by the call path and the refill task.
pub(crate) struct Lease {
    cells: AtomicU64,
    low_water: AtomicU64,
    retry_hint: AtomicU64,
    /// Counted on the rejection path only, so that the batch follows the demand (admitted and
    /// missed calls) rather than what was admitted: sized by admissions alone, a replica that
    /// got less under saturation would ask for less and get less still.
    missed: AtomicU64,
    requested: AtomicBool,
    /// The local share, used only while degraded: a GCRA limiter whose rate is the global rate
    /// divided by the processes seen (its interval is computed per call from that count).
    fallback: Limiter,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("cells", &self.cells())
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// No cells.
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            cells: AtomicU64::new(0),
            low_water: AtomicU64::new(0),
            retry_hint: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            fallback: Limiter::new(epoch),
        }
    }

    /// Takes one leased cell if there is one. The call path: one load and one CAS.
    #[inline]
    pub(crate) fn take(&self) -> Take {
        let mut cells = self.cells.load(Ordering::Relaxed);
        loop {
            if cells == 0 {
                return Take::Empty;
            }
            match self.cells.compare_exchange_weak(
                cells,
                cells - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return if cells - 1 == self.low_water.load(Ordering::Relaxed) {
                        Take::AdmittedLow
                    } else {
                        Take::Admitted
                    };
                }
                Err(actual) => cells = actual,
            }
        }
    }

    /// Decides a call on the local share: the global rate divided by `processes`, with the
    /// burst divided the same way (at least one).
    pub(crate) fn take_share(&self, global: Gcra, processes: u32, now: Instant) -> Decision {
        let processes = u64::from(processes.max(1));
        let burst = global.tolerance / global.interval + 1;
        let interval = global.interval.saturating_mul(processes);
        let share_burst = (burst / processes).max(1);
        let gcra = Gcra {
            interval,
            tolerance: interval.saturating_mul(share_burst - 1),
        };
        self.fallback
            .acquire(gcra, self.fallback.ns_since_epoch(now), 0)
    }

    pub(crate) fn cells(&self) -> u64 {
        self.cells.load(Ordering::Relaxed)
    }

    /// Adds the cells Redis granted; the refill task never grants more than `max_batch − held`.
    pub(crate) fn grant(&self, cells: u64) {
        self.cells.fetch_add(cells, Ordering::Relaxed);
    }

    pub(crate) fn set_low_water(&self, low_water: u64) {
        self.low_water.store(low_water, Ordering::Relaxed);
    }

    /// A call found no cell (and was rejected, or went to the local share).
    pub(crate) fn missed(&self) {
        self.missed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn missed_total(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Marks a refill as queued; true if it was not already (then the caller queues it).
    pub(crate) fn request_refill(&self) -> bool {
        !self.requested.swap(true, Ordering::Relaxed)
    }

    /// The queued refill was done (or gave up): the next low-water mark may queue another.
    pub(crate) fn refilled(&self) {
        self.requested.store(false, Ordering::Relaxed);
    }

    pub(crate) fn retry_hint(&self) -> u64 {
        self.retry_hint.load(Ordering::Relaxed)
    }

    pub(crate) fn set_retry_hint(&self, ns: u64) {
        self.retry_hint.store(ns, Ordering::Relaxed);
    }
}

impl Evict for Lease {
    /// A lease that holds cells is kept: evicting it would waste them (the fleet's limit
    /// already counts them as spent). An empty one is the same as a new one.
    fn is_busy(&self, _now: Instant) -> bool {
        self.cells() > 0
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain counter: grants and takes in any order never hand out more cells
        /// than were granted, and the low-water signal fires exactly when a take lands on it.
        #[test]
        fn matches_a_counter(
            low_water in 0u64..4,
            ops in proptest::collection::vec(prop_oneof![3 => Just(None), 1 => (0u64..5).prop_map(Some)], 0..64),
        ) {
            let lease = Lease::new(Instant::now());
            lease.set_low_water(low_water);
            let mut model = 0u64;
            for op in ops {
                match op {
                    Some(cells) => { lease.grant(cells); model += cells; }
                    None => {
                        let expected = if model == 0 {
                            Take::Empty
                        } else {
                            model -= 1;
                            if model == low_water { Take::AdmittedLow } else { Take::Admitted }
                        };
                        prop_assert_eq!(lease.take(), expected);
                    }
                }
                prop_assert_eq!(lease.cells(), model);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_share_divides_rate_and_burst() {
        let lease = Lease::new(Instant::now());
        // 100 ns apart, burst 8: the share is 400 ns apart, burst 2.
        let global = Gcra {
            interval: 100,
            tolerance: 700,
        };
        let now = Instant::now();
        assert_eq!(lease.take_share(global, 4, now), Decision::Admitted);
        assert_eq!(lease.take_share(global, 4, now), Decision::Admitted);
        assert_eq!(
            lease.take_share(global, 4, now),
            Decision::Rejected { retry_after: 400 }
        );
    }
}

/// loom model of the cell word: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two calls race a refill on a lease of one cell: exactly the cells granted are taken,
    /// never more, and the word ends at what is left.
    #[test]
    fn loom_calls_never_take_more_than_granted() {
        loom::model(|| {
            let lease = Arc::new(Lease::new(Instant::now()));
            lease.grant(1);
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let lease = lease.clone();
                    thread::spawn(move || lease.take() != Take::Empty)
                })
                .collect();
            lease.grant(1);
            let taken = callers
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|t| *t)
                .count() as u64;
            assert!(taken >= 1);
            assert_eq!(taken + lease.cells(), 2);
        });
    }
}
