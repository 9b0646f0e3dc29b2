//! The GCRA state of one limiter: the theoretical arrival time, in one atomic word.
//!
//! # The algorithm
//!
//! GCRA (the generic cell rate algorithm) keeps one number per limiter, the *theoretical
//! arrival time* (TAT): when the limiter would be idle again if every admitted call had come at
//! exactly the configured rate. With the emission interval `T = per / n` and the tolerance
//! `τ = T × (burst − 1)`, a call at `now` is allowed when `TAT − now ≤ τ`, and moves the TAT to
//! `max(TAT, now) + T`. Otherwise it may go at `TAT − τ`: that is its exact `retry_after`. A
//! limiter whose TAT is at or before `now` is indistinguishable from a new one, which is what
//! makes idle limiters free to evict.
//!
//! # Bit layout
//!
//! ```text
//!  63                                                              0
//! +----------------------------------------------------------------+
//! |  TAT: nanoseconds since the limiter's epoch (0: never used)      |
//! +----------------------------------------------------------------+
//! ```
//!
//! The whole word is the TAT; nanoseconds on tokio's clock, since the instant the limiter was
//! made, so that paused-time tests are exact to the nanosecond. 64 bits of nanoseconds last
//! 584 years; every sum saturates, and the builder bounds `T` and `τ` far below that.
//!
//! # Reservations and their refund
//!
//! A call that may wait takes its slot at once (the TAT moves by `T` now, the wait is spent
//! afterwards), so calls that wait are served in the order they came and no slot is promised
//! twice. A waiting call that is cancelled gives its slot back by moving the TAT from the value
//! its own reservation wrote back by `T` — only if the word still holds that value, that is, if
//! nobody reserved after it. Otherwise the slot stays taken: moving the TAT back under a later
//! reservation would let the calls after it exceed the rate, so a lost slot errs on the side
//! of the limit. The compare cannot be fooled by an old value coming back (ABA): the TAT only
//! grows, except by refunds, and a refund restores the value before the latest reservation, so
//! the word holds the value a reservation wrote only while that reservation is the latest.
//!
//! # Memory ordering
//!
//! `Relaxed` throughout. The word guards no other memory: a decision depends only on the word
//! itself, and every change is a compare-and-swap on it, so every thread sees one modification
//! order of the TAT and no two calls can take the same slot.

use std::fmt;

use tokio::time::Instant;

use crate::keyed::Evict;
use crate::sync::{AtomicU64, Ordering};

/// The limiter's rate, in nanoseconds: shared by every limiter of a layer (keyed ones too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// `T`: nanoseconds between two calls at the steady rate; at least 1.
    pub(crate) interval: u64,
    /// `τ`: how far ahead of the steady rate the TAT may run; `T × (burst − 1)`.
    pub(crate) tolerance: u64,
}

/// What one call got from the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go now.
    Admitted,
    /// A slot was reserved: go after `wait` ns. `tat` is the value the reservation wrote, to
    /// give the slot back with.
    Reserved { wait: u64, tat: u64 },
    /// Not within the allowed wait: the call could go after `retry_after` ns. Nothing changed.
    Rejected { retry_after: u64 },
}

/// One GCRA limiter: the TAT word. See the [module docs](self).
pub(crate) struct Limiter {
    tat: AtomicU64,
    /// The instant the TAT counts from.
    epoch: Instant,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("tat_ns", &self.tat.load(Ordering::Relaxed))
            .finish()
    }
}

impl Limiter {
    /// A limiter with no debt, whose clock starts at `epoch`.
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            tat: AtomicU64::new(0),
            epoch,
        }
    }

    /// `now` in nanoseconds since the epoch (saturating: 584 years). In 64-bit arithmetic:
    /// seconds times 10⁹ cannot overflow before the 584 years are up.
    #[inline]
    pub(crate) fn ns_since_epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch);
        since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()))
    }

    /// The TAT in nanoseconds since the epoch, for reading.
    pub(crate) fn tat_ns(&self) -> u64 {
        self.tat.load(Ordering::Relaxed)
    }

    /// Decides a call at `now` (ns since the epoch) that may wait at most `max_wait` ns.
    #[inline]
    pub(crate) fn acquire(&self, gcra: Gcra, now: u64, max_wait: u64) -> Decision {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let base = tat.max(now);
            let wait = (base - now).saturating_sub(gcra.tolerance);
            if wait > max_wait {
                return Decision::Rejected { retry_after: wait };
            }
            let next = base.saturating_add(gcra.interval);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) if wait == 0 => return Decision::Admitted,
                Ok(_) => return Decision::Reserved { wait, tat: next },
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back the slot of a reservation that wrote `tat` by adding `interval` (the rate's
    /// at the time: a reload since does not change what the reservation took), if nobody
    /// reserved after it; whether it did.
    pub(crate) fn refund(&self, interval: u64, tat: u64) -> bool {
        self.tat
            .compare_exchange(tat, tat - interval, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the limiter is in debt at `now` (ns): a fresh limiter would decide differently.
    pub(crate) fn in_debt(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed) > now
    }
}

impl Evict for Limiter {
    /// A limiter in debt is busy: evicting it would forgive the debt. One that is not is the
    /// same as a new one, so evicting it loses nothing.
    fn is_busy(&self, now: Instant) -> bool {
        self.in_debt(self.ns_since_epoch(now))
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// GCRA as the textbook writes it, on a plain integer.
    struct Model {
        tat: u64,
        /// The reservations still waiting, in the order they were made: (tat written, live).
        reservations: Vec<u64>,
    }

    impl Model {
        fn acquire(&mut self, gcra: Gcra, now: u64, max_wait: u64) -> Decision {
            let base = self.tat.max(now);
            let earliest = base.saturating_sub(gcra.tolerance);
            if earliest <= now {
                self.tat = base + gcra.interval;
                Decision::Admitted
            } else if earliest - now <= max_wait {
                self.tat = base + gcra.interval;
                self.reservations.push(self.tat);
                Decision::Reserved {
                    wait: earliest - now,
                    tat: self.tat,
                }
            } else {
                Decision::Rejected {
                    retry_after: earliest - now,
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Call {
            after: u64,
            max_wait: u64,
        },
        /// Cancel the i-th (mod len) reservation still waiting.
        Cancel(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..40, prop_oneof![Just(0u64), 0u64..60])
                .prop_map(|(after, max_wait)| Op::Call { after, max_wait }),
            1 => any::<usize>().prop_map(Op::Cancel),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_sequential_model(
            interval in 1u64..20,
            burst in 1u64..5,
            ops in proptest::collection::vec(op(), 0..64),
        ) {
            let gcra = Gcra { interval, tolerance: interval * (burst - 1) };
            let limiter = Limiter::new(Instant::now());
            let mut model = Model { tat: 0, reservations: Vec::new() };
            let mut now = 0;
            for op in ops {
                match op {
                    Op::Call { after, max_wait } => {
                        now += after;
                        let expected = model.acquire(gcra, now, max_wait);
                        prop_assert_eq!(limiter.acquire(gcra, now, max_wait), expected);
                    }
                    Op::Cancel(i) if !model.reservations.is_empty() => {
                        let i = i % model.reservations.len();
                        let tat = model.reservations.remove(i);
                        // The model's rule: the latest reservation gives its slot back.
                        let latest = model.tat == tat;
                        if latest {
                            model.tat -= interval;
                        }
                        prop_assert_eq!(limiter.refund(gcra.interval, tat), latest);
                    }
                    Op::Cancel(_) => {}
                }
                prop_assert_eq!(limiter.tat.load(Ordering::Relaxed), model.tat);
            }
        }

        /// Whatever the calls, no window of `w` ns admits more than `burst + w / T` of them.
        #[test]
        fn never_exceeds_the_rate(
            interval in 1u64..20,
            burst in 1u64..5,
            gaps in proptest::collection::vec(0u64..10, 1..100),
        ) {
            let gcra = Gcra { interval, tolerance: interval * (burst - 1) };
            let limiter = Limiter::new(Instant::now());
            let mut now = 0;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                if limiter.acquire(gcra, now, 0) == Decision::Admitted {
                    admitted.push(now);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                for (j, end) in admitted.iter().enumerate().skip(i) {
                    let calls = (j - i + 1) as u64;
                    prop_assert!(calls <= burst + (end - start) / interval);
                }
            }
        }
    }

    #[test]
    fn retry_after_is_exact() {
        let gcra = Gcra {
            interval: 100,
            tolerance: 200,
        };
        let limiter = Limiter::new(Instant::now());
        for _ in 0..3 {
            assert_eq!(limiter.acquire(gcra, 0, 0), Decision::Admitted);
        }
        assert_eq!(
            limiter.acquire(gcra, 0, 0),
            Decision::Rejected { retry_after: 100 }
        );
        assert_eq!(
            limiter.acquire(gcra, 30, 0),
            Decision::Rejected { retry_after: 70 }
        );
        assert_eq!(limiter.acquire(gcra, 100, 0), Decision::Admitted);
        assert!(limiter.in_debt(100));
        assert!(!limiter.in_debt(400));
    }
}

/// loom models of the TAT word: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    const GCRA: Gcra = Gcra {
        interval: 10,
        tolerance: 10,
    };

    /// Three racing calls on a burst of 2: exactly two go, and the word holds both slots.
    #[test]
    fn loom_racing_calls_take_distinct_slots() {
        loom::model(|| {
            let limiter = Arc::new(Limiter::new(Instant::now()));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let limiter = limiter.clone();
                    thread::spawn(move || limiter.acquire(GCRA, 0, 0))
                })
                .collect();
            let mut decisions = vec![limiter.acquire(GCRA, 0, 0)];
            decisions.extend(threads.into_iter().map(|t| t.join().unwrap()));
            let admitted = decisions
                .iter()
                .filter(|d| **d == Decision::Admitted)
                .count();
            assert_eq!(admitted, 2);
            assert!(decisions.contains(&Decision::Rejected { retry_after: 10 }));
            assert_eq!(limiter.tat.load(Ordering::Relaxed), 20);
        });
    }

    /// Two waiting calls reserve, the first is cancelled while a third call races: a refund
    /// happens only if nobody reserved after it, and no slot is ever handed out twice.
    #[test]
    fn loom_a_refund_never_frees_a_later_reservation() {
        loom::model(|| {
            let limiter = Arc::new(Limiter::new(Instant::now()));
            // The burst is used up: the TAT is 20 at time 0.
            assert_eq!(limiter.acquire(GCRA, 0, 0), Decision::Admitted);
            assert_eq!(limiter.acquire(GCRA, 0, 0), Decision::Admitted);
            let Decision::Reserved { tat, wait } = limiter.acquire(GCRA, 0, 100) else {
                panic!("a reservation");
            };
            assert_eq!((tat, wait), (30, 10));
            let other = {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.acquire(GCRA, 0, 100))
            };
            let refunded = limiter.refund(GCRA.interval, tat);
            let theirs = other.join().unwrap();
            let final_tat = limiter.tat.load(Ordering::Relaxed);
            match theirs {
                // They reserved before the refund: the refund failed, both slots stay taken.
                Decision::Reserved { tat: 40, wait: 20 } => {
                    assert!(!refunded);
                    assert_eq!(final_tat, 40);
                }
                // They reserved after the refund: they got the freed slot.
                Decision::Reserved { tat: 30, wait: 10 } => {
                    assert!(refunded);
                    assert_eq!(final_tat, 30);
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }
}
