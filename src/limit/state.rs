//! The limit, the calls in flight and a call counter: one packed atomic word.
//!
//! # Bit layout
//!
//! ```text
//!  63                 40 39                 24 23                  0
//! +---------------------+---------------------+---------------------+
//! | limit: calls        | seq: calls admitted | in_flight: calls    |
//! | allowed at once,    | so far, modulo 2^16 | admitted and not    |
//! | min ..= max_limit   |                     | finished            |
//! +---------------------+---------------------+---------------------+
//! ```
//!
//! Invariants: `limit` is in `[1, 2^24 − 1]`; `in_flight` grows only through
//! [`LimitWord::try_admit`], which never takes it past `limit`, and shrinks only through
//! [`LimitWord::release`], once per admitted call, so it never wraps below zero and never carries
//! into `seq`. `seq` counts admissions and wraps within its 16 bits (the CAS writes it masked),
//! so it never carries into `limit`. A lowered limit may leave `in_flight` above it for a while:
//! calls already admitted run to their end, and no new call is admitted until enough of them
//! have.
//!
//! The limit and the count in one word make admission one compare-and-swap that reads them
//! *together*: no call is admitted against a limit that was already lowered, and none is
//! refused against one already raised. The counter rides in the same CAS for free: it numbers
//! the calls of this limiter, so that one call in every sampling period (a power of two, which
//! divides 2^16, so the wrap keeps the count exact) is timed without any other shared write
//! (see `limiter.rs`). The limit is changed only by the thread that holds the estimator's lock,
//! so [`LimitWord::set_limit`] knows the old limit and can move it with one `fetch_add` of the
//! difference: `limit` is the top field, so a negative difference wraps out of the word and
//! leaves `seq` and `in_flight` as any concurrent admission or release left them.
//!
//! 24 bits of limit (16 777 215 calls at once) are far beyond any concurrency a limit is set to.
//!
//! # Memory ordering
//!
//! Every operation is a read-modify-write of the one word, so all of them are totally ordered
//! in its modification order without `SeqCst`. The word guards no other data: `AcqRel` is only
//! there so that the end of one call happens-before the start of the call that takes its slot,
//! as users of a semaphore expect. Reads for [`limit`](super::AdaptiveLimitLayer::limit) and
//! [`in_flight`](super::AdaptiveLimitLayer::in_flight) are `Acquire` loads: a snapshot, stale
//! as soon as it is read.

use std::fmt;

use crate::field::Field;
use crate::sync::{AtomicU64, Ordering};

/// The word's fields, from bit 0 up (see the layout above).
const IN_FLIGHT: Field = Field::new(0, 24);
const SEQ: Field = IN_FLIGHT.next(16);
const LIMIT: Field = SEQ.next(24);
/// One call in the `in_flight` field.
const CALL: u64 = IN_FLIGHT.put(1);
/// One admission in the `seq` field.
const SEQ_ONE: u64 = SEQ.put(1);
/// The largest limit the word holds: 2^24 − 1.
pub(crate) const MAX_LIMIT: u32 = LIMIT.max() as u32;

/// A copy of the word, decoded by its accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    fn new(limit: u32, in_flight: u32) -> Self {
        Self(LIMIT.put(u64::from(limit)) | IN_FLIGHT.put(u64::from(in_flight)))
    }

    /// Calls allowed at once.
    pub(crate) fn limit(self) -> u32 {
        LIMIT.get(self.0) as u32
    }

    /// Calls admitted and not finished.
    pub(crate) fn in_flight(self) -> u32 {
        IN_FLIGHT.get(self.0) as u32
    }

    /// Admissions so far, modulo 2^16.
    pub(crate) fn seq(self) -> u32 {
        SEQ.get(self.0) as u32
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("seq", &self.seq())
            .finish()
    }
}

/// What [`LimitWord::try_admit`] decided.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Admitted: the word as this admission left it (this call counted in `in_flight`, and
    /// numbered by `seq`).
    Admitted(Snapshot),
    /// Refused: the word as it was (`in_flight >= limit`).
    Refused(Snapshot),
}

/// The packed word.
pub(crate) struct LimitWord {
    word: AtomicU64,
}

impl LimitWord {
    /// A word at `limit` (at most [`MAX_LIMIT`]: the builder checks it), nothing in flight.
    pub(crate) fn new(limit: u32) -> Self {
        debug_assert!((1..=MAX_LIMIT).contains(&limit));
        Self {
            word: AtomicU64::new(Snapshot::new(limit, 0).0),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// Admits a call if fewer than `limit` are in flight, and numbers it: one load and one CAS
    /// when uncontended.
    #[inline]
    pub(crate) fn try_admit(&self) -> Admission {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            let snapshot = Snapshot(current);
            if snapshot.in_flight() >= snapshot.limit() {
                return Admission::Refused(snapshot);
            }
            // `seq + 1` masked back into its field: the wrap never reaches `limit`.
            let next =
                ((current & !SEQ.mask()) | (current.wrapping_add(SEQ_ONE) & SEQ.mask())) + CALL;
            match self.word.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Admission::Admitted(Snapshot(next)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Ends an admitted call; returns the word as it was before (so `in_flight() == 1` means
    /// no call is left in flight).
    #[inline]
    pub(crate) fn release(&self) -> Snapshot {
        Snapshot(self.word.fetch_sub(CALL, Ordering::AcqRel))
    }

    /// Moves the limit from `old` (which must be the current limit: only the estimator's lock
    /// holder calls this) to `new`, leaving `seq` and `in_flight` alone.
    pub(crate) fn set_limit(&self, old: u32, new: u32) {
        // Not `LIMIT.put`: a negative difference is meant to wrap out of the word.
        let delta = u64::from(new).wrapping_sub(u64::from(old)) << LIMIT.shift();
        self.word.fetch_add(delta, Ordering::AcqRel);
    }
}

impl fmt::Debug for LimitWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Admit,
        Release,
        SetLimit(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Admit),
            2 => Just(Op::Release),
            1 => (1u32..=6).prop_map(Op::SetLimit),
        ]
    }

    proptest! {
        /// The packed word behaves like three plain counters (the call counter modulo 2^16),
        /// and admits only below the limit.
        #[test]
        fn matches_a_sequential_model(
            initial in 1u32..=6,
            seq_start in any::<u16>(),
            ops in proptest::collection::vec(op(), 0..96),
        ) {
            let word = LimitWord::new(initial);
            // Start the counter anywhere, so that runs cross its wrap.
            word.word.fetch_add(SEQ.put(u64::from(seq_start)), Ordering::Relaxed);
            let (mut limit, mut in_flight, mut seq) = (initial, 0u32, seq_start);
            for op in ops {
                match op {
                    Op::Admit => match word.try_admit() {
                        Admission::Admitted(now) => {
                            prop_assert!(in_flight < limit);
                            in_flight += 1;
                            seq = seq.wrapping_add(1);
                            prop_assert_eq!(
                                (now.limit(), now.in_flight(), now.seq()),
                                (limit, in_flight, u32::from(seq))
                            );
                        }
                        Admission::Refused(seen) => {
                            prop_assert!(in_flight >= limit);
                            prop_assert_eq!((seen.limit(), seen.in_flight()), (limit, in_flight));
                        }
                    },
                    Op::Release if in_flight > 0 => {
                        let before = word.release();
                        prop_assert_eq!(before.in_flight(), in_flight);
                        in_flight -= 1;
                    }
                    Op::SetLimit(new) => { word.set_limit(limit, new); limit = new; }
                    Op::Release => {}
                }
                let now = word.load();
                prop_assert_eq!(
                    (now.limit(), now.in_flight(), now.seq()),
                    (limit, in_flight, u32::from(seq))
                );
            }
        }
    }

    #[test]
    fn full_width_fields_do_not_overlap() {
        let word = LimitWord::new(MAX_LIMIT);
        let fields = |s: Snapshot| (s.limit(), s.seq(), s.in_flight());
        // The counter one short of its wrap, the call count at its largest.
        word.word.fetch_add(
            (SEQ.mask() - SEQ_ONE) + u64::from(MAX_LIMIT - 1),
            Ordering::Relaxed,
        );
        assert_eq!(fields(word.load()), (MAX_LIMIT, 0xfffe, MAX_LIMIT - 1));
        let Admission::Admitted(now) = word.try_admit() else {
            panic!("one slot left")
        };
        assert_eq!(fields(now), (MAX_LIMIT, 0xffff, MAX_LIMIT));
        assert!(matches!(word.try_admit(), Admission::Refused(_)));
        word.set_limit(MAX_LIMIT, 1);
        assert_eq!(fields(word.load()), (1, 0xffff, MAX_LIMIT));
        word.set_limit(1, MAX_LIMIT);
        word.release();
        let Admission::Admitted(now) = word.try_admit() else {
            panic!("one slot left")
        };
        assert_eq!(
            fields(now),
            (MAX_LIMIT, 0, MAX_LIMIT),
            "the counter wraps alone"
        );
    }
}

/// loom models of the word: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    use super::*;

    /// Two admissions and a release racing a limit lowered from 2 to 1: each admission is
    /// decided against the limit its CAS read, the change never loses or invents a call, and a
    /// call admitted under the old limit keeps its slot until it gives it back.
    #[test]
    fn loom_admission_and_release_vs_a_limit_change() {
        loom::model(|| {
            let word = Arc::new(LimitWord::new(2));
            let lowering = {
                let word = word.clone();
                loom::thread::spawn(move || word.set_limit(2, 1))
            };
            let first = word.try_admit();
            assert!(
                matches!(first, Admission::Admitted(now) if now.in_flight() == 1),
                "1 < 1 or 2 either way"
            );
            let second = word.try_admit();
            word.release();
            lowering.join().unwrap();
            let end = word.load();
            assert_eq!(end.limit(), 1, "the change is not lost");
            match second {
                Admission::Admitted(now) => {
                    assert_eq!((now.in_flight(), now.seq()), (2, 2));
                    assert_eq!(end.in_flight(), 1);
                    word.release();
                }
                Admission::Refused(seen) => {
                    assert_eq!((seen.limit(), seen.in_flight()), (1, 1));
                    assert_eq!(end.in_flight(), 0);
                }
            }
            assert_eq!(word.load().in_flight(), 0);
            assert!(matches!(word.try_admit(), Admission::Admitted(now) if now.in_flight() == 1));
        });
    }

    /// With a limit of 1, two callers are never in flight together, and both slots come back.
    #[test]
    fn loom_never_more_than_the_limit() {
        loom::model(|| {
            let word = Arc::new(LimitWord::new(1));
            let in_flight = Arc::new(AtomicUsize::new(0));
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let (word, in_flight) = (word.clone(), in_flight.clone());
                    loom::thread::spawn(move || {
                        if let Admission::Admitted(now) = word.try_admit() {
                            assert_eq!(now.in_flight(), 1);
                            let others = in_flight.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(others, 0, "two calls in flight under a limit of 1");
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            word.release();
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.join().unwrap();
            }
            assert_eq!(word.load().in_flight(), 0);
            assert_eq!(word.load().limit(), 1);
        });
    }
}
