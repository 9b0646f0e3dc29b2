//! The bulkhead's permits: one packed atomic word, plus a [`Notify`] that wakes waiters.
//!
//! # Bit layout
//!
//! ```text
//!  63                             32 31                              0
//! +---------------------------------+---------------------------------+
//! |  waiters: calls registered as   |  available: free permits,       |
//! |  waiting for a permit           |  0 ..= max_concurrent_calls     |
//! +---------------------------------+---------------------------------+
//! ```
//!
//! Invariants: `available` never exceeds `max_concurrent_calls` (a permit is added back only by
//! the holder of one), so it never carries into `waiters`; `waiters` counts the registered
//! [`Wait`](super::wait::Wait)s, one per service waiting in `poll_ready`, and is decremented by each
//! exactly once (when it takes a permit, gives up, or is dropped).
//!
//! Keeping both halves in one word is what makes the hand-off lock-free and free of lost
//! wake-ups: a release is a single `fetch_add` that also tells whether anyone waits, and a
//! waiter takes a permit *or* registers in a single compare-and-swap. Either the release comes
//! first in the word's modification order, and the waiter's CAS sees the permit, or the waiter's
//! registration comes first, and the release sees it and wakes a waiter.
//!
//! # Memory ordering
//!
//! Every operation is a read-modify-write of the one word, so all of them are totally ordered
//! in its modification order without `SeqCst`. A waiter enables its `Notified` (which takes
//! `Notify`'s internal lock) *before* its registering CAS (`AcqRel`); a release is an `AcqRel`
//! `fetch_add`, so when it reads a registration it also sees that waiter in `Notify`'s list,
//! and its `notify_one` cannot miss it. The permits themselves guard no data, but `AcqRel` makes
//! the end of one call happen-before the start of the call that reuses its permit, which is what
//! users expect of a semaphore.

use std::fmt;
use std::time::Duration;

use tokio::sync::Notify;

use crate::sync::{Arc, AtomicU64, Ordering};

/// One permit in the `available` half.
const PERMIT: u64 = 1;
/// Mask of the `available` half.
const AVAILABLE_MASK: u64 = (1 << WAITERS_SHIFT) - 1;
/// Shift of the `waiters` half.
const WAITERS_SHIFT: u32 = 32;
/// One waiter in the `waiters` half.
const WAITER: u64 = 1 << WAITERS_SHIFT;

/// A copy of the state word, decoded by its accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedPermits(u64);

impl PackedPermits {
    /// Free permits.
    pub(crate) fn available(self) -> u32 {
        (self.0 & AVAILABLE_MASK) as u32
    }

    /// Registered waiters.
    pub(crate) fn waiters(self) -> u32 {
        (self.0 >> WAITERS_SHIFT) as u32
    }
}

impl fmt::Debug for PackedPermits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedPermits")
            .field("available", &self.available())
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// What [`Permits::acquire_or_register`] did.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Took a permit.
    Acquired,
    /// No permit was free: counted as a waiter instead.
    Registered,
}

/// The packed state word.
pub(crate) struct Permits {
    word: AtomicU64,
}

impl Permits {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            word: AtomicU64::new(u64::from(max)),
        }
    }

    pub(crate) fn load(&self) -> PackedPermits {
        PackedPermits(self.word.load(Ordering::Acquire))
    }

    /// Runs `f` on the current word in a CAS loop until it succeeds or `f` declines (`None`).
    /// Returns whether a new word was stored.
    #[inline]
    fn update(&self, mut f: impl FnMut(u64) -> Option<u64>) -> bool {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            let Some(next) = f(current) else {
                return false;
            };
            match self.word.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes a permit if one is free (the fast path: one load and one CAS).
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        self.update(|word| (word & AVAILABLE_MASK != 0).then(|| word - PERMIT))
    }

    /// Takes a permit if one is free, or else registers as a waiter, in one step.
    pub(crate) fn acquire_or_register(&self) -> Admit {
        let mut admit = Admit::Registered;
        let stored = self.update(|word| {
            if word & AVAILABLE_MASK != 0 {
                admit = Admit::Acquired;
                Some(word - PERMIT)
            } else {
                admit = Admit::Registered;
                Some(word.wrapping_add(WAITER))
            }
        });
        debug_assert!(stored);
        admit
    }

    /// For a registered waiter: takes a permit and unregisters, in one step, if one is free.
    pub(crate) fn acquire_registered(&self) -> bool {
        self.update(|word| (word & AVAILABLE_MASK != 0).then(|| word - PERMIT - WAITER))
    }

    /// For a registered waiter: gives up waiting.
    pub(crate) fn deregister(&self) {
        self.word.fetch_sub(WAITER, Ordering::AcqRel);
    }

    /// Gives a permit back; returns the word as it was before.
    #[inline]
    pub(crate) fn release(&self) -> PackedPermits {
        PackedPermits(self.word.fetch_add(PERMIT, Ordering::AcqRel))
    }
}

impl fmt::Debug for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

/// Everything a bulkhead's clones and services share: created once by
/// [`Builder::build`](super::Builder::build).
///
/// `repr(C)` with the permit word first puts it on the cache line of the `Arc`'s reference
/// counts, which every call also touches: one line moves between cores per call, not two.
#[repr(C)]
pub(crate) struct Semaphore {
    pub(crate) permits: Permits,
    /// Wakes one waiter per permit released while someone waits. In its own `Arc` because a
    /// waiter holds an [`OwnedNotified`](tokio::sync::futures::OwnedNotified).
    pub(crate) notify: std::sync::Arc<Notify>,
    pub(crate) max_concurrent_calls: u32,
    pub(crate) max_wait: Duration,
    pub(crate) name: std::borrow::Cow<'static, str>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: super::telemetry::Metrics,
}

impl Semaphore {
    /// Gives a permit back and wakes a waiter if there is one.
    #[inline]
    pub(crate) fn release(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.in_flight.decrement(1.0);
        if self.permits.release().waiters() != 0 {
            self.notify.notify_one();
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("max_wait", &self.max_wait)
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

/// A permit, held from admission to the end of the call; dropping it gives it back.
///
/// The one `Arc` clone per call: the response future must reach the permits after the service
/// that admitted it is gone.
pub(crate) struct Permit {
    shared: Arc<Semaphore>,
}

impl Permit {
    /// Wraps a permit just taken from `shared.permits`.
    #[inline]
    pub(crate) fn taken(shared: &Arc<Semaphore>) -> Self {
        #[cfg(feature = "metrics")]
        shared.metrics.in_flight.increment(1.0);
        Self {
            shared: Arc::clone(shared),
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    enum Op {
        TryAcquire,
        AcquireOrRegister,
        AcquireRegistered,
        Deregister,
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::TryAcquire),
            Just(Op::AcquireOrRegister),
            Just(Op::AcquireRegistered),
            Just(Op::Deregister),
            Just(Op::Release),
        ]
    }

    proptest! {
        /// The packed word behaves like two plain counters, and never leaks or invents a permit.
        #[test]
        fn matches_a_sequential_model(max in 1u32..=4, ops in proptest::collection::vec(op(), 0..64)) {
            let permits = Permits::new(max);
            let (mut available, mut waiters, mut held) = (max, 0u32, 0u32);
            for op in ops {
                match op {
                    Op::TryAcquire => {
                        let took = permits.try_acquire();
                        prop_assert_eq!(took, available > 0);
                        if took { available -= 1; held += 1; }
                    }
                    Op::AcquireOrRegister => match permits.acquire_or_register() {
                        Admit::Acquired => { prop_assert!(available > 0); available -= 1; held += 1; }
                        Admit::Registered => { prop_assert_eq!(available, 0); waiters += 1; }
                    },
                    Op::AcquireRegistered if waiters > 0 => {
                        let took = permits.acquire_registered();
                        prop_assert_eq!(took, available > 0);
                        if took { available -= 1; waiters -= 1; held += 1; }
                    }
                    Op::Deregister if waiters > 0 => { permits.deregister(); waiters -= 1; }
                    Op::Release if held > 0 => {
                        let before = permits.release();
                        prop_assert_eq!(before.waiters(), waiters);
                        available += 1; held -= 1;
                    }
                    _ => {}
                }
                let now = permits.load();
                prop_assert_eq!(now.available(), available);
                prop_assert_eq!(now.waiters(), waiters);
                prop_assert_eq!(available + held, max);
            }
        }
    }

    #[test]
    fn full_width_counts_do_not_overlap() {
        let permits = Permits::new(u32::MAX);
        assert_eq!(permits.load().available(), u32::MAX);
        assert!(permits.try_acquire());
        assert_eq!(permits.load().available(), u32::MAX - 1);
        assert_eq!(permits.load().waiters(), 0);
        assert_eq!(permits.release().available(), u32::MAX - 1);
        assert_eq!(permits.load().available(), u32::MAX);
    }
}

/// loom models of the permit word: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicUsize};

    use super::*;

    /// The hand-off: a waiter that registers while the last permit is given back is either
    /// seen by the release (which would wake it), or sees the permit itself. Never neither.
    #[test]
    fn release_never_misses_a_registering_waiter() {
        loom::model(|| {
            let permits = Arc::new(Permits::new(1));
            assert!(permits.try_acquire());
            let woken = Arc::new(AtomicBool::new(false));
            let releaser = {
                let (permits, woken) = (permits.clone(), woken.clone());
                loom::thread::spawn(move || {
                    if permits.release().waiters() != 0 {
                        woken.store(true, Ordering::SeqCst);
                    }
                })
            };
            let admit = permits.acquire_or_register();
            releaser.join().unwrap();
            match admit {
                Admit::Acquired => assert_eq!(permits.load().available(), 0),
                Admit::Registered => {
                    assert!(woken.load(Ordering::SeqCst), "lost wake-up");
                    assert!(permits.acquire_registered());
                }
            }
            assert_eq!(permits.load().waiters(), 0);
            assert_eq!(permits.load().available(), 0);
        });
    }

    /// Two callers on one permit: never both in flight, and the permit always comes back.
    #[test]
    fn never_more_than_max_and_no_lost_permit() {
        loom::model(|| {
            let permits = Arc::new(Permits::new(1));
            let in_flight = Arc::new(AtomicUsize::new(0));
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let (permits, in_flight) = (permits.clone(), in_flight.clone());
                    loom::thread::spawn(move || {
                        if permits.try_acquire() {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            assert_eq!(now, 1, "{now} in flight");
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            let _ = permits.release();
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.join().unwrap();
            }
            assert_eq!(permits.load().available(), 1);
            assert_eq!(permits.load().waiters(), 0);
        });
    }
}
