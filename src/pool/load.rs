//! An endpoint's calls in flight, counted so that a call writes no cache line that another core
//! writes too.
//!
//! A call must hold its endpoint until it ends (a removed endpoint's calls in flight finish),
//! and must count in the endpoint's load for power of two choices. Both are one `Arc` here: an
//! endpoint listed in the pool (an [`Entry`]) has a few [`Stripe`]s, each an `Arc` of the
//! endpoint's [`Member`] alone on its own cache line. A call clones the stripe of the thread
//! that sends it ([`InFlight`]) and drops it when it ends; the endpoint's calls in flight are
//! the stripes' strong counts, each less the one the entry holds.
//!
//! So a call's only writes are two reference-count changes on its thread's stripe, a line that
//! other threads read (to weigh the endpoint) but write only when they share the stripe: with
//! one `Arc<Member>` per endpoint, every call would write the same line from every core and the
//! line would move between them on most calls. Threads take stripes in turn (a process-wide
//! counter, modulo the stripe count): what collides is only slower, never wrong, because every
//! change is an atomic reference count.
//!
//! # Weighing
//!
//! Power of two choices weighs an endpoint by its calls in flight *on the weighing thread's
//! stripe* ([`Entry::local_load`]), not by the sum of every stripe: reading the other stripes
//! would read, on every call, lines that the other cores write on every call of theirs, and
//! those misses cost more than the writes the stripes save (2 workers × 64 tasks over 8
//! endpoints: 72.6 ns a call summing the stripes, against 45 ns for one shared counter per call,
//! in one run). So each worker thread balances the calls it sends, as independent clients of
//! one backend each run their own power of two choices; an endpoint that is slow holds calls
//! on every stripe and loses on every thread. [`Pool::endpoints`](super::Pool::endpoints)
//! reports the sum.
//!
//! # Exactness
//!
//! A call stays on one stripe from `call` until its future ends or is dropped, also when the
//! future moves to another thread, so no stripe is ever below the entry's own reference and the
//! sum is exact whenever no call starts or ends. A read while calls start and end adds stripes
//! read at slightly different instants, as any two loads would: each term is a count some call
//! could see.
//!
//! # Memory ordering
//!
//! `Arc`'s own: the strong count is incremented `Relaxed` and decremented `Release` (with an
//! `Acquire` fence before the last drop frees the member), and `Arc::strong_count` is a
//! `Relaxed` load. A load figure orders nothing else: power of two choices only needs a recent
//! value, and [`Pool::endpoints`](super::Pool::endpoints) reports a count, not a happens-before.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::member::Member;
// loom's `Arc` under the loom models, so that they check the counts and that the endpoint is
// freed exactly once.
use crate::sync::Arc;

/// The most stripes an endpoint gets, whatever the machine: each costs a cache line (128 bytes)
/// per endpoint and a load per weighing.
const MAX_STRIPES: usize = 16;

/// The stripe count for this machine: a power of two, at least one per core (the worker threads
/// of one runtime take consecutive turns, so as many of them as there are stripes never share
/// one), from 2 to [`MAX_STRIPES`]. More would only add loads to every weighing.
pub(crate) fn stripes_for_this_machine() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.next_power_of_two().clamp(2, MAX_STRIPES)
}

/// The turn of the next thread that sends a call through any pool.
static NEXT_TURN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's turn (`usize::MAX` until its first call): its stripe is the turn modulo
    /// an entry's stripe count.
    static TURN: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's turn, taken at its first call.
#[inline]
fn turn() -> usize {
    // During thread teardown the thread-local may be gone: any stripe is correct.
    TURN.try_with(|turn| {
        let mut t = turn.get();
        if t == usize::MAX {
            // `Relaxed`: only distinct values matter, nothing is published through them.
            t = NEXT_TURN.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
            turn.set(t);
        }
        t
    })
    .unwrap_or(0)
}

/// One stripe of an endpoint: alone on its cache line (128 bytes, as Intel's adjacent-line
/// prefetcher pairs lines), so that its reference count shares a line with nothing else.
#[repr(align(128))]
pub(crate) struct Stripe<K, S> {
    member: Arc<Member<K, S>>,
}

/// An endpoint as the pool lists it: its state, and the stripes its calls count in. Shared by
/// every routing view that lists the endpoint (each holds an `Arc<Entry>`), so that every
/// stripe has exactly one reference besides its calls'.
pub(crate) struct Entry<K, S> {
    member: Arc<Member<K, S>>,
    /// A power of two in length, at least one.
    stripes: Box<[Arc<Stripe<K, S>>]>,
}

impl<K, S> Entry<K, S> {
    pub(crate) fn new(member: Member<K, S>, stripes: usize) -> Self {
        debug_assert!(stripes.is_power_of_two());
        let member = Arc::new(member);
        let stripes = (0..stripes.max(1))
            .map(|_| {
                Arc::new(Stripe {
                    member: Arc::clone(&member),
                })
            })
            .collect();
        Self { member, stripes }
    }

    /// Calls sent to this endpoint and not ended: the stripes' reference counts, less this
    /// entry's own.
    #[inline]
    pub(crate) fn in_flight(&self) -> u32 {
        let held: usize = self
            .stripes
            .iter()
            .map(|s| Arc::strong_count(s).saturating_sub(1))
            .sum();
        u32::try_from(held).unwrap_or(u32::MAX)
    }

    /// Calls this thread's stripe holds: the load power of two choices weighs (see
    /// "Weighing" in the module docs).
    #[inline]
    pub(crate) fn local_load(&self) -> u32 {
        self.load_on(turn())
    }

    /// Calls the stripe of `turn` (modulo the stripe count) holds.
    #[inline]
    fn load_on(&self, turn: usize) -> u32 {
        let stripe = &self.stripes[turn & (self.stripes.len() - 1)];
        u32::try_from(Arc::strong_count(stripe).saturating_sub(1)).unwrap_or(u32::MAX)
    }
}

/// The entry reads as its endpoint's state (key, tier, state word, health transitions).
impl<K, S> Deref for Entry<K, S> {
    type Target = Member<K, S>;

    #[inline]
    fn deref(&self) -> &Member<K, S> {
        &self.member
    }
}

impl<K: fmt::Debug, S> fmt::Debug for Entry<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("member", &self.member)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// A call's hold on its endpoint: counts it in flight (in the sending thread's stripe) until
/// dropped, and remembers the epoch it was sent in.
pub(crate) struct InFlight<K, S> {
    stripe: Arc<Stripe<K, S>>,
    sent: u32,
}

impl<K, S> InFlight<K, S> {
    #[inline]
    pub(crate) fn new(entry: &Entry<K, S>) -> Self {
        Self::on_stripe(entry, turn())
    }

    /// On the stripe `turn` picks (modulo the stripe count).
    #[inline]
    fn on_stripe(entry: &Entry<K, S>, turn: usize) -> Self {
        let stripe = &entry.stripes[turn & (entry.stripes.len() - 1)];
        Self {
            sent: entry.member.word.load().ejections(),
            stripe: Arc::clone(stripe),
        }
    }

    #[inline]
    pub(crate) fn member(&self) -> &Member<K, S> {
        &self.stripe.member
    }

    #[inline]
    pub(crate) fn sent(&self) -> u32 {
        self.sent
    }
}

impl<K: fmt::Debug, S> fmt::Debug for InFlight<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("endpoint", &self.member().key)
            .finish()
    }
}

/// An entry of key 7 with `stripes` stripes, in a pool whose settings these tests never read.
#[cfg(test)]
fn test_entry(stripes: usize) -> Entry<u32, ()> {
    use std::time::Duration;

    use super::live::Settings;
    use super::member::Core;

    let core = std::sync::Arc::new(Core::new(
        std::borrow::Cow::Borrowed("test"),
        &Settings {
            consecutive_failures: 1,
            base_ejection_time: Duration::from_secs(1),
            max_ejection_time: Duration::from_secs(1),
            max_ejected_fraction: 1.0,
            panic_threshold: 0.0,
            failure_rate: None,
            unhealthy_threshold: 1,
            healthy_threshold: 1,
        },
    ));
    Entry::new(Member::new(7, (), 0, core), stripes)
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_stripe_count_is_a_power_of_two_in_range() {
        let n = stripes_for_this_machine();
        assert!(n.is_power_of_two() && (2..=MAX_STRIPES).contains(&n));
    }

    #[test]
    fn a_thread_keeps_its_turn_and_threads_take_different_ones() {
        let here = turn();
        assert_eq!(turn(), here);
        let there = std::thread::spawn(turn).join().unwrap();
        assert_ne!(here, there);
    }

    /// A thread weighs the calls its stripe holds; the endpoint's count is every stripe's.
    #[test]
    fn a_thread_weighs_its_own_calls_and_the_count_adds_every_stripe() {
        let entry = Arc::new(test_entry(2));
        let here = turn();
        let mine = [InFlight::new(&entry), InFlight::new(&entry)];
        let other = InFlight::on_stripe(&entry, here + 1);
        assert_eq!(entry.local_load(), 2, "this thread weighs its own stripe");
        assert_eq!(
            entry.load_on(here + 1),
            1,
            "the other stripe's thread, its own"
        );
        assert_eq!(entry.in_flight(), 3);
        // A hold keeps its stripe wherever it ends.
        std::thread::spawn(move || drop(other)).join().unwrap();
        assert_eq!((entry.load_on(here + 1), entry.in_flight()), (0, 2));
        drop(mine);
        assert_eq!((entry.local_load(), entry.in_flight()), (0, 0));
    }
}

#[cfg(all(test, steadfast_loom))]
mod loom_tests {
    //! loom models of the striped count: holds taken and dropped on several threads, one of
    //! them moving to another thread, while the count is read and the entry is dropped.

    use loom::thread;

    use super::*;

    /// Two threads each hold a call on their own stripe; a third hold, taken here, ends on
    /// another thread. Every read of the count is at most the holds taken, and the count is
    /// zero once every hold is dropped.
    #[test]
    fn loom_the_striped_count_is_exact_when_calls_end() {
        loom::model(|| {
            let entry = Arc::new(test_entry(2));
            let moved = InFlight::on_stripe(&entry, 0);
            let handles: Vec<_> = (0..2)
                .map(|turn| {
                    let entry = Arc::clone(&entry);
                    thread::spawn(move || {
                        let hold = InFlight::on_stripe(&entry, turn);
                        assert!((1..=3).contains(&entry.in_flight()));
                        drop(hold);
                    })
                })
                .collect();
            let mover = thread::spawn(move || drop(moved));
            assert!(entry.in_flight() <= 3);
            for handle in handles {
                handle.join().unwrap();
            }
            mover.join().unwrap();
            assert_eq!(entry.in_flight(), 0);
        });
    }

    /// The entry is dropped (the endpoint removed) while a call holds it: the call still
    /// reaches its endpoint, and the endpoint is freed once, by whichever drop comes last
    /// (loom reports a leak or a double free).
    #[test]
    fn loom_a_removed_endpoint_lives_until_its_last_call_ends() {
        loom::model(|| {
            let entry = test_entry(2);
            let hold = InFlight::on_stripe(&entry, 1);
            let call = thread::spawn(move || {
                assert_eq!(hold.member().key, 7);
                drop(hold);
            });
            drop(entry);
            call.join().unwrap();
        });
    }
}
