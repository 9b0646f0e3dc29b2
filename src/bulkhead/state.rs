//! The bulkhead's permits: one packed atomic word, plus a [`Notify`] that wakes waiters.
//!
//! # Bit layout
//!
//! ```text
//!  63                             32 31                              0
//! +---------------------------------+---------------------------------+
//! |  available: free permits, a     |  waiters: calls registered as   |
//! |  signed 32-bit count            |  waiting for a permit           |
//! +---------------------------------+---------------------------------+
//! ```
//!
//! Invariants: `available + held == max_concurrent_calls`, where `held` counts the permits
//! taken and not given back. `available` is at most `max_concurrent_calls` (at most
//! [`MAX_CONCURRENT_CALLS_LIMIT`](super::MAX_CONCURRENT_CALLS_LIMIT), `i32::MAX`), and is below
//! zero only after a [`resize`](Permits::resize) to fewer permits than are held: the calls in
//! flight finish, each release brings it one closer to zero, and no call is admitted until it
//! is above zero again. `held` never exceeds the largest `max_concurrent_calls` the word has
//! had, so `available` never goes below `1 - i32::MAX`. `waiters` counts the registered
//! [`Wait`](super::wait::Wait)s, one per service waiting in `poll_ready`, and is decremented by
//! each exactly once (when it takes a permit, gives up, or is dropped).
//!
//! `available` is in the high half so that it can cross zero: adding a permit to -1 carries
//! out of bit 63, which the wrapping add drops, and leaves `waiters` untouched. A permit is
//! free when the word, read as an `i64`, is at least `1 << 32`: one comparison.
//!
//! Keeping both halves in one word is what makes the hand-off lock-free and free of lost
//! wake-ups: a release is a single `fetch_add` that also tells whether anyone waits, and a
//! waiter takes a permit *or* registers in a single compare-and-swap. Either the release comes
//! first in the word's modification order, and the waiter's CAS sees the permit, or the waiter's
//! registration comes first, and the release sees it and wakes a waiter. A resize is one
//! `fetch_add` too (of a negative amount to shrink), so it is ordered with every acquire and
//! release, and a grow that frees permits wakes the waiters it finds.
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

use crate::field::Field;
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};

/// The word's halves (see the layout above): `available` is read as an `i32`.
const WAITERS: Field = Field::new(0, 32);
const AVAILABLE: Field = WAITERS.next(32);
/// One permit in the `available` half.
const PERMIT: u64 = AVAILABLE.put(1);
/// One waiter in the `waiters` half.
const WAITER: u64 = WAITERS.put(1);

/// Whether `word` has a free permit: `available >= 1`.
#[inline(always)]
fn has_permit(word: u64) -> bool {
    word as i64 >= PERMIT as i64
}

/// A copy of the state word, decoded by its accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedPermits(u64);

impl PackedPermits {
    /// Free permits; below zero while calls in flight exceed a shrunk limit.
    pub(crate) fn available(self) -> i32 {
        AVAILABLE.get(self.0) as u32 as i32
    }

    /// Registered waiters.
    pub(crate) fn waiters(self) -> u32 {
        WAITERS.get(self.0) as u32
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
    /// `max` free permits; `max` is at most `i32::MAX`.
    pub(crate) fn new(max: u32) -> Self {
        debug_assert!(i32::try_from(max).is_ok());
        Self {
            word: AtomicU64::new(AVAILABLE.put(u64::from(max))),
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
        self.update(|word| has_permit(word).then(|| word - PERMIT))
    }

    /// Takes a permit if one is free, or else registers as a waiter, in one step.
    pub(crate) fn acquire_or_register(&self) -> Admit {
        let mut admit = Admit::Registered;
        let stored = self.update(|word| {
            if has_permit(word) {
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
        self.update(|word| has_permit(word).then(|| word - PERMIT - WAITER))
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

    /// Adds `delta` permits (removes them if it is negative), whether or not they are held:
    /// removing held permits leaves `available` below zero until their calls finish. The caller
    /// keeps the limit in `[1, i32::MAX]`. Returns the word as it was before.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // used by `reconfigure`
    pub(crate) fn resize(&self, delta: i64) -> PackedPermits {
        // Two's complement: the wrapping add of a negative amount shifted into the high half is
        // a subtraction there, and leaves the low half alone.
        PackedPermits(
            self.word
                .fetch_add((delta as u64) << AVAILABLE.shift(), Ordering::AcqRel),
        )
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
    /// The limit, changed by `reconfigure` (`Relaxed`: it is read for reports and errors; the
    /// permit word alone admits calls).
    pub(crate) max_concurrent_calls: AtomicU32,
    /// `max_wait` in nanoseconds, changed by `reconfigure` (`Relaxed`: a wait that starts as it
    /// changes may use either value).
    pub(crate) max_wait_nanos: AtomicU64,
    pub(crate) name: std::borrow::Cow<'static, str>,
    /// Held by `reconfigure`, which stores the limit and `max_wait`.
    #[cfg(feature = "serde")]
    pub(crate) reloads: crate::config::Reloads,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: super::telemetry::Metrics,
}

impl Semaphore {
    /// The limit of concurrent calls now.
    pub(crate) fn max_concurrent_calls(&self) -> u32 {
        self.max_concurrent_calls.load(Ordering::Relaxed)
    }

    /// How long a call may wait for a permit, now.
    pub(crate) fn max_wait(&self) -> Duration {
        Duration::from_nanos(self.max_wait_nanos.load(Ordering::Relaxed))
    }

    /// Sets `max_wait` for the waits that start from now on.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // used by `reconfigure`
    pub(crate) fn set_max_wait(&self, max_wait: Duration) {
        let nanos = crate::clock::nanos(max_wait);
        self.max_wait_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Changes the limit to `max` (in `[1, i32::MAX]`). Calls in flight keep their permits: a
    /// lower limit admits no call until enough of them have finished; a higher one wakes the
    /// waiters at once.
    ///
    /// Concurrent resizes need no lock: each swaps the limit and adds the difference it saw, so
    /// the differences add up to the last limit minus the first, whatever their order.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // used by `reconfigure`
    pub(crate) fn resize(&self, max: u32) {
        let old = self.max_concurrent_calls.swap(max, Ordering::Relaxed);
        let delta = i64::from(max) - i64::from(old);
        if delta == 0 {
            return;
        }
        let before = self.permits.resize(delta);
        #[cfg(feature = "metrics")]
        self.metrics.max_concurrent_calls.set(f64::from(max));
        if before.waiters() != 0 && i64::from(before.available()) + delta > 0 {
            // Permits were freed, and someone waits: wake every waiter to try (those that lose
            // the race wait again). Rare, so the wake-all costs nothing that matters.
            self.notify.notify_waiters();
        }
    }

    /// Gives a permit back and wakes a waiter if there is one.
    #[inline]
    pub(crate) fn release(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.in_flight.decrement(1.0);
        let before = self.permits.release();
        // A release that leaves `available` at zero or below (the limit was lowered) frees
        // nothing to wake a waiter for; the release that makes it positive does.
        if before.waiters() != 0 && before.available() >= 0 {
            self.notify.notify_one();
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name)
            .field("max_concurrent_calls", &self.max_concurrent_calls())
            .field("max_wait", &self.max_wait())
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
        Resize(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::TryAcquire),
            Just(Op::AcquireOrRegister),
            Just(Op::AcquireRegistered),
            Just(Op::Deregister),
            Just(Op::Release),
            (1u32..=4).prop_map(Op::Resize),
        ]
    }

    proptest! {
        /// The packed word behaves like two plain counters, and never leaks or invents a permit,
        /// however the limit changes while permits are held.
        #[test]
        fn matches_a_sequential_model(max in 1u32..=4, ops in proptest::collection::vec(op(), 0..64)) {
            let permits = Permits::new(max);
            let (mut max, mut available, mut waiters, mut held) = (i64::from(max), i64::from(max), 0u32, 0i64);
            for op in ops {
                match op {
                    Op::TryAcquire => {
                        let took = permits.try_acquire();
                        prop_assert_eq!(took, available > 0);
                        if took { available -= 1; held += 1; }
                    }
                    Op::AcquireOrRegister => match permits.acquire_or_register() {
                        Admit::Acquired => { prop_assert!(available > 0); available -= 1; held += 1; }
                        Admit::Registered => { prop_assert!(available <= 0); waiters += 1; }
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
                        prop_assert_eq!(i64::from(before.available()), available);
                        available += 1; held -= 1;
                    }
                    Op::Resize(new) => {
                        let delta = i64::from(new) - max;
                        let before = permits.resize(delta);
                        prop_assert_eq!(i64::from(before.available()), available);
                        available += delta;
                        max = i64::from(new);
                    }
                    _ => {}
                }
                let now = permits.load();
                prop_assert_eq!(i64::from(now.available()), available);
                prop_assert_eq!(now.waiters(), waiters);
                prop_assert_eq!(available + held, max);
                prop_assert!(held <= 4);
            }
        }
    }

    #[test]
    fn available_crosses_zero_without_touching_waiters() {
        let permits = Permits::new(2);
        assert!(permits.try_acquire());
        assert!(permits.try_acquire());
        assert_eq!(permits.acquire_or_register(), Admit::Registered);
        // Down to one permit with two held: one below zero.
        permits.resize(-1);
        assert_eq!(permits.load().available(), -1);
        assert_eq!(permits.load().waiters(), 1);
        assert!(!permits.try_acquire());
        assert_eq!(permits.release().available(), -1);
        assert_eq!(permits.load().available(), 0);
        assert!(!permits.acquire_registered());
        assert_eq!(permits.release().available(), 0);
        assert!(permits.acquire_registered());
        assert_eq!(permits.load().waiters(), 0);
        assert_eq!(permits.load().available(), 0);
    }

    #[test]
    fn the_largest_limit_can_shrink_to_one_with_every_permit_held() {
        let max = i32::MAX as u32;
        let permits = Permits::new(max);
        // Hold every permit but one, then shrink to one: the lowest `available` can go.
        permits.resize(-(i64::from(max) - 1));
        assert_eq!(permits.load().available(), 1);
        let permits = Permits::new(max);
        permits.word.store(0, Ordering::Relaxed); // every permit held
        permits.resize(1 - i64::from(max));
        assert_eq!(permits.load().available(), 1 - i32::MAX);
        assert_eq!(permits.load().waiters(), 0);
    }

    #[test]
    fn full_width_counts_do_not_overlap() {
        let max = i32::MAX as u32;
        let permits = Permits::new(max);
        assert_eq!(permits.load().available(), i32::MAX);
        assert!(permits.try_acquire());
        assert_eq!(permits.load().available(), i32::MAX - 1);
        assert_eq!(permits.load().waiters(), 0);
        assert_eq!(permits.release().available(), i32::MAX - 1);
        assert_eq!(permits.load().available(), i32::MAX);
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

    /// A shrink while the permits are held, racing a release and a new caller: no permit is
    /// lost or invented, and once every call is over the word holds exactly the new limit.
    #[test]
    fn shrink_while_in_flight_loses_no_permit() {
        loom::model(|| {
            let permits = Arc::new(Permits::new(2));
            assert!(permits.try_acquire());
            assert!(permits.try_acquire());
            let resizer = {
                let permits = permits.clone();
                loom::thread::spawn(move || {
                    let _ = permits.resize(-1);
                })
            };
            let releaser = {
                let permits = permits.clone();
                loom::thread::spawn(move || {
                    let _ = permits.release();
                })
            };
            // A caller that arrives meanwhile: it may get the released permit only if the
            // shrink had not yet taken it.
            let took = permits.try_acquire();
            resizer.join().unwrap();
            releaser.join().unwrap();
            let held = 1 + u32::from(took);
            assert_eq!(i64::from(permits.load().available()) + i64::from(held), 1);
            for _ in 0..held {
                let _ = permits.release();
            }
            assert_eq!(permits.load().available(), 1);
            assert_eq!(permits.load().waiters(), 0);
        });
    }

    /// A grow that frees a permit while a caller registers as a waiter: either the caller sees
    /// the permit, or the grow sees the waiter (and would wake it). Never neither.
    #[test]
    fn grow_never_misses_a_registering_waiter() {
        loom::model(|| {
            let permits = Arc::new(Permits::new(1));
            assert!(permits.try_acquire());
            let woken = Arc::new(AtomicBool::new(false));
            let grower = {
                let (permits, woken) = (permits.clone(), woken.clone());
                loom::thread::spawn(move || {
                    let before = permits.resize(1);
                    if before.waiters() != 0 && i64::from(before.available()) + 1 > 0 {
                        woken.store(true, Ordering::SeqCst);
                    }
                })
            };
            let admit = permits.acquire_or_register();
            grower.join().unwrap();
            match admit {
                Admit::Acquired => {}
                Admit::Registered => {
                    assert!(woken.load(Ordering::SeqCst), "lost wake-up");
                    assert!(permits.acquire_registered());
                }
            }
            assert_eq!(permits.load().waiters(), 0);
            assert_eq!(permits.load().available(), 0);
        });
    }
}
