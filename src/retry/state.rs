//! The retry budget's shared state: a lock-free deposit per request, and a short lock on the
//! retry path only.
//!
//! # Layout
//!
//! Amounts are fixed-point: [`UNIT`] is one retry. A request deposits `round(ratio × UNIT)`;
//! a retry withdraws `UNIT`; the floor is a constant reserve of `min_per_sec × ttl × UNIT`.
//!
//! The window is a ring of [`SLOTS`] slots, each `ttl / SLOTS` long. `head` is the absolute
//! number of the current slot (time since `base` divided by the slot length); slot `n` lives
//! at index `n % SLOTS`. Advancing `head` clears the slots that fell out of the window, so the
//! sum of the ring is the net of deposits and withdrawals of the last `ttl` (to a slot).
//!
//! # Memory ordering
//!
//! The healthy path is one `Relaxed` load of `depositing` and one `fetch_add(1, Relaxed)` on
//! `pending`: no clock read, no lock. The
//! counter publishes no other data, so `Relaxed` suffices; it is drained with a `swap(0)`
//! while the window's mutex is held, so each deposit is folded exactly once. Deposits made
//! since the previous fold are credited to the current slot; if the previous fold is older
//! than `ttl`, only the share `ttl / elapsed` of them is credited (the rest is assumed to have
//! expired), so a long quiet spell of successes cannot bank an unbounded budget. Every other
//! field is read and written under the mutex, taken only on the retry path (a withdrawal, a
//! refund when a scheduled retry is abandoned) and by [`BudgetState::remaining`].

use std::sync::PoisonError;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{Kind, RetryBudget};
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering};

/// One retry, in budget units.
const UNIT: i64 = 1_000_000;
/// Slots in the window ring.
const SLOTS: usize = 10;

/// The shared budget of one layer.
#[derive(Debug)]
pub(crate) struct BudgetState {
    tps: Option<Tps>,
}

#[derive(Debug)]
struct Tps {
    /// Requests not yet folded into the window.
    pending: AtomicU64,
    /// Whether requests deposit at all (a ratio above zero): the healthy path skips the
    /// counter when they do not. `Relaxed`: a request that races a reconfiguration may deposit
    /// under either ratio.
    depositing: AtomicBool,
    window: Mutex<Window>,
}

/// The window, and the budget's settings, which `reconfigure` changes under the same lock.
#[derive(Debug)]
struct Window {
    /// Units deposited per request.
    deposit: i64,
    /// The floor: units always available within the window.
    reserve: i64,
    slot_nanos: u128,
    ttl: Duration,
    base: Instant,
    head: u64,
    slots: [i64; SLOTS],
    last_fold: Instant,
}

/// A budget's settings in budget units.
fn amounts(ratio: f64, min_per_sec: u32, ttl: Duration) -> (i64, i64, u128) {
    let deposit = (ratio * UNIT as f64).round() as i64;
    let reserve = (f64::from(min_per_sec) * ttl.as_secs_f64() * UNIT as f64) as i64;
    (deposit, reserve, (ttl.as_nanos() / SLOTS as u128).max(1))
}

/// A retry paid for. Dropping it without [`spend`](Withdrawal::spend) (the retry was abandoned:
/// the response future was dropped, or the deadline came too close) gives it back.
#[derive(Debug)]
pub(crate) struct Withdrawal {
    budget: Arc<BudgetState>,
    slot: u64,
    spent: bool,
}

impl Withdrawal {
    /// The retry is being sent: the withdrawal stands.
    pub(crate) fn spend(mut self) {
        self.spent = true;
    }
}

impl Drop for Withdrawal {
    fn drop(&mut self) {
        if !self.spent {
            self.budget.refund(self.slot);
        }
    }
}

/// The outcome of asking for a retry.
#[derive(Debug)]
pub(crate) enum Withdraw {
    /// No budget is configured.
    Unlimited,
    /// Paid for.
    Paid(Withdrawal),
    /// The budget is exhausted.
    Exhausted,
}

impl BudgetState {
    /// The state of `budget`, already validated, starting now.
    pub(crate) fn new(budget: &RetryBudget) -> Self {
        let tps = match budget.kind {
            Kind::Unlimited => None,
            Kind::Tps {
                ratio,
                min_per_sec,
                ttl,
            } => {
                let (deposit, reserve, slot_nanos) = amounts(ratio, min_per_sec, ttl);
                let now = Instant::now();
                Some(Tps {
                    pending: AtomicU64::new(0),
                    depositing: AtomicBool::new(deposit > 0),
                    window: Mutex::new(Window {
                        deposit,
                        reserve,
                        slot_nanos,
                        ttl,
                        base: now,
                        head: 0,
                        slots: [0; SLOTS],
                        last_fold: now,
                    }),
                })
            }
        };
        Self { tps }
    }

    /// Records one request. Lock-free, no clock read.
    #[inline]
    pub(crate) fn deposit(&self) {
        if let Some(tps) = &self.tps {
            if tps.depositing.load(Ordering::Relaxed) {
                tps.pending.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks for one retry. (An associated function: loom's `Arc` cannot be a receiver.)
    pub(crate) fn withdraw(budget: &Arc<Self>) -> Withdraw {
        let Some(tps) = &budget.tps else {
            return Withdraw::Unlimited;
        };
        let mut window = tps.lock();
        tps.fold(&mut window, Instant::now());
        if window.balance() >= UNIT {
            let head = window.head;
            window.slots[slot_index(head)] -= UNIT;
            Withdraw::Paid(Withdrawal {
                budget: Arc::clone(budget),
                slot: head,
                spent: false,
            })
        } else {
            Withdraw::Exhausted
        }
    }

    /// How many retries the budget allows right now (`u64::MAX` when unlimited).
    pub(crate) fn remaining(&self) -> u64 {
        let Some(tps) = &self.tps else {
            return u64::MAX;
        };
        let mut window = tps.lock();
        tps.fold(&mut window, Instant::now());
        u64::try_from(window.balance() / UNIT).unwrap_or(0)
    }

    /// Whether [`reconfigure`](Self::reconfigure) would accept `budget`.
    #[cfg(feature = "serde")]
    pub(crate) fn check_reconfigure(&self, budget: &RetryBudget) -> Result<(), crate::ConfigError> {
        budget.validate()?;
        if self.tps.is_some() == matches!(budget.kind, Kind::Tps { .. }) {
            Ok(())
        } else {
            Err(crate::ConfigError::new(
                "budget",
                "limited or unlimited as the layer was built: build a new layer to change that",
                budget,
            ))
        }
    }

    /// Applies a new budget, already validated, keeping what the window holds: the requests
    /// not yet credited are credited at the old ratio first, the floor and the ratio change
    /// at once, and a new `ttl` starts a new ring of slots with the net balance of the old
    /// window in its first slot (it expires after the new `ttl`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `budget`, and nothing changes, when the new budget is unlimited
    /// and this one is not, or the other way round: an unlimited budget keeps no window.
    #[cfg(feature = "serde")]
    pub(crate) fn reconfigure(&self, budget: &RetryBudget) -> Result<(), crate::ConfigError> {
        self.check_reconfigure(budget)?;
        let (
            Some(tps),
            Kind::Tps {
                ratio,
                min_per_sec,
                ttl,
            },
        ) = (&self.tps, budget.kind)
        else {
            return Ok(()); // unlimited, and stays so
        };
        let (deposit, reserve, slot_nanos) = amounts(ratio, min_per_sec, ttl);
        let mut window = tps.lock();
        let now = Instant::now();
        tps.fold(&mut window, now);
        window.deposit = deposit;
        window.reserve = reserve;
        tps.depositing.store(deposit > 0, Ordering::Relaxed);
        if window.ttl != ttl {
            let net = window
                .slots
                .iter()
                .fold(0i64, |sum, slot| sum.saturating_add(*slot));
            window.ttl = ttl;
            window.slot_nanos = slot_nanos;
            window.base = now;
            window.head = 0;
            window.slots = [0; SLOTS];
            window.slots[0] = net;
        }
        Ok(())
    }

    fn refund(&self, slot: u64) {
        if let Some(tps) = &self.tps {
            let mut window = tps.lock();
            tps.fold(&mut window, Instant::now());
            // A withdrawal from a slot that has left the window has expired anyway.
            if slot + SLOTS as u64 > window.head {
                window.slots[slot_index(slot)] += UNIT;
            }
        }
    }
}

impl Tps {
    fn lock(&self) -> MutexGuard<'_, Window> {
        // The window stays consistent whatever a panicking holder did: every update is a
        // single assignment.
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Advances the window to `now` and credits the pending deposits.
    fn fold(&self, window: &mut Window, now: Instant) {
        let since_base = now.saturating_duration_since(window.base).as_nanos();
        let head = u64::try_from(since_base / window.slot_nanos).unwrap_or(u64::MAX);
        if head > window.head {
            let steps = (head - window.head).min(SLOTS as u64);
            for step in 1..=steps {
                window.slots[slot_index(window.head + step)] = 0;
            }
            window.head = head;
        }

        let pending = self.pending.swap(0, Ordering::Relaxed);
        if pending > 0 {
            let mut credit = i128::from(pending) * i128::from(window.deposit);
            let elapsed = now.saturating_duration_since(window.last_fold);
            if elapsed > window.ttl {
                credit = credit * window.ttl.as_nanos() as i128 / elapsed.as_nanos() as i128;
            }
            let credit = i64::try_from(credit).unwrap_or(i64::MAX);
            let slot = &mut window.slots[slot_index(window.head)];
            *slot = slot.saturating_add(credit);
        }
        window.last_fold = now;
    }
}

impl Window {
    fn balance(&self) -> i64 {
        self.slots
            .iter()
            .fold(self.reserve, |sum, slot| sum.saturating_add(*slot))
    }
}

fn slot_index(slot: u64) -> usize {
    (slot % SLOTS as u64) as usize
}

/// loom models of the budget: concurrent withdrawals never spend more than the budget holds,
/// and a refund is never lost. Run with `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_tests {
    use std::time::Duration;

    use super::{BudgetState, Withdraw};
    use crate::retry::RetryBudget;
    use crate::sync::Arc;

    /// A budget of exactly one retry: no ratio, a floor of 1 per second over 1 s.
    fn one_retry() -> Arc<BudgetState> {
        Arc::new(BudgetState::new(&RetryBudget::new(
            0.0,
            1,
            Duration::from_secs(1),
        )))
    }

    fn paid(withdraw: Withdraw) -> bool {
        match withdraw {
            Withdraw::Paid(paid) => {
                paid.spend();
                true
            }
            Withdraw::Unlimited => panic!("the budget is limited"),
            Withdraw::Exhausted => false,
        }
    }

    #[test]
    fn loom_budget_is_never_overspent() {
        loom::model(|| {
            let budget = one_retry();
            let other = {
                let budget = budget.clone();
                loom::thread::spawn(move || paid(BudgetState::withdraw(&budget)))
            };
            let mine = paid(BudgetState::withdraw(&budget));
            let theirs = other.join().unwrap();
            assert!(mine ^ theirs, "exactly one of two retries is paid for");
            assert_eq!(budget.remaining(), 0);
        });
    }

    #[test]
    fn loom_an_abandoned_retry_gives_its_token_back() {
        loom::model(|| {
            let budget = one_retry();
            let abandoned = match BudgetState::withdraw(&budget) {
                Withdraw::Paid(paid) => paid,
                _ => panic!("the first retry is paid for"),
            };
            let dropper = loom::thread::spawn(move || drop(abandoned));
            let second = paid(BudgetState::withdraw(&budget));
            dropper.join().unwrap();
            // Either the refund came first and the second retry took the token, or it came
            // after and the token is back: never lost, never doubled.
            assert_eq!(u64::from(second) + budget.remaining(), 1);
        });
    }
}
