//! An endpoint's state word: its health, its run of consecutive failures, how often it has been
//! ejected and until when, in one `AtomicU64`, so that every change is one compare-and-swap and
//! an ejection can never be half-applied.
//!
//! # Bit layout
//!
//! ```text
//!  63                                  24 23          14 13         2 1    0
//! +--------------------------------------+--------------+------------+------+
//! |             until_ms                 |  ejections   |  failures  | kind |
//! +--------------------------------------+--------------+------------+------+
//!                 40 bits                    10 bits       12 bits    2 bits
//! ```
//!
//! - `kind`: [`KIND_HEALTHY`], [`KIND_EJECTED`], [`KIND_UNHEALTHY`] or [`KIND_REMOVED`]. The
//!   kinds exclude each other: an endpoint that a health check marks unhealthy while it is
//!   ejected stops being ejected (it no longer counts toward `max_ejected_fraction`), and a
//!   removed endpoint never changes again.
//! - `failures`: failures in a row while healthy, at most [`MAX_CONSECUTIVE_FAILURES`]; zero in
//!   every other kind.
//! - `ejections`: ejections since the endpoint was inserted, saturating at [`MAX_EJECTIONS`].
//!   It is the multiplier of the next ejection time, and the word's epoch: a call remembers it
//!   when it is sent, and its outcome counts only if it has not moved, so a failure of a call
//!   sent before an ejection never counts after the return.
//! - `until_ms`: while ejected, when the ejection ends, in ms since the pool's epoch (40 bits:
//!   34 years); zero in every other kind.
//!
//! # The ejected count
//!
//! The pool keeps the number of ejected endpoints in a separate `AtomicU32`, to cap ejections
//! at `max_ejected_fraction`. An ejection *reserves* a place first (a bounded increment), then
//! makes its compare-and-swap, and gives the place back if that fails; every transition out of
//! `Ejected` (return, unhealthy, removal) is a compare-and-swap from `Ejected`, and only its
//! winner decrements. So the count is never below the number of ejected words, never above the
//! cap, and equal to the number of ejected words whenever no ejection is half-way.
//!
//! # Memory ordering
//!
//! Loads are `Acquire` and successful compare-and-swaps `AcqRel`, as for the breaker's word: the
//! winner of a transition then reports it (event, metric, routing version), and a thread that
//! sees the new word also sees what was written before it. The ejected count's increments and
//! decrements are `AcqRel`; it orders nothing else but must never be read torn between a
//! reservation and its release, which any ordering guarantees for one atomic.

use std::fmt;

use crate::field::Field;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

pub(crate) const KIND_HEALTHY: u64 = 0;
pub(crate) const KIND_EJECTED: u64 = 1;
pub(crate) const KIND_UNHEALTHY: u64 = 2;
pub(crate) const KIND_REMOVED: u64 = 3;

/// The word's fields, from bit 0 up (see the module docs).
const KIND: Field = Field::new(0, 2);
const FAILURES: Field = KIND.next(12);
const EJECTIONS: Field = FAILURES.next(10);
const UNTIL: Field = EJECTIONS.next(40);

/// The largest `consecutive_failures` the word can count to.
pub(crate) const MAX_CONSECUTIVE_FAILURES: u32 = FAILURES.max() as u32;

/// Where the ejection count saturates.
pub(crate) const MAX_EJECTIONS: u32 = EJECTIONS.max() as u32;

/// The latest end of an ejection that fits the word, in ms since the pool's epoch.
pub(crate) const MAX_UNTIL_MS: u64 = UNTIL.max();

/// A copy of the state word, decoded through named accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    pub(crate) fn pack(kind: u64, failures: u32, ejections: u32, until_ms: u64) -> Self {
        Self(
            KIND.put(kind)
                | FAILURES.put(u64::from(failures))
                | EJECTIONS.put(u64::from(ejections))
                | UNTIL.put(until_ms.min(MAX_UNTIL_MS)),
        )
    }

    pub(crate) fn kind(self) -> u64 {
        KIND.get(self.0)
    }

    pub(crate) fn failures(self) -> u32 {
        FAILURES.get(self.0) as u32
    }

    pub(crate) fn ejections(self) -> u32 {
        EJECTIONS.get(self.0) as u32
    }

    pub(crate) fn until_ms(self) -> u64 {
        UNTIL.get(self.0)
    }

    pub(crate) fn healthy(ejections: u32) -> Self {
        Self::pack(KIND_HEALTHY, 0, ejections, 0)
    }

    fn with_failures(self, failures: u32) -> Self {
        Self::pack(KIND_HEALTHY, failures, self.ejections(), 0)
    }

    fn to_ejected(self, until_ms: u64) -> Self {
        let ejections = (self.ejections() + 1).min(MAX_EJECTIONS);
        Self::pack(KIND_EJECTED, 0, ejections, until_ms)
    }

    fn to_kind(self, kind: u64) -> Self {
        Self::pack(kind, 0, self.ejections(), 0)
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind() {
            KIND_HEALTHY => "Healthy",
            KIND_EJECTED => "Ejected",
            KIND_UNHEALTHY => "Unhealthy",
            _ => "Removed",
        };
        let mut out = f.debug_struct("Word");
        out.field("kind", &kind)
            .field("failures", &self.failures())
            .field("ejections", &self.ejections());
        if self.kind() == KIND_EJECTED {
            out.field("until_ms", &self.until_ms());
        }
        out.finish()
    }
}

/// What a failure did to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum OnFailure {
    /// Not counted: the endpoint is not healthy, or the call was sent before its last ejection.
    Stale,
    /// Counted; the run is still below the threshold, or the ejection cap is reached.
    Counted,
    /// This failure ejected the endpoint (the caller won the transition and reports it).
    Ejected(Word),
}

/// Which transition out of a state a caller won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) struct Moved {
    pub(crate) from: Word,
    pub(crate) to: Word,
}

/// The number of ejected endpoints, capped. See the module docs.
#[derive(Debug)]
pub(crate) struct EjectedCount(AtomicU32);

impl EjectedCount {
    pub(crate) fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Takes a place if fewer than `cap` are taken.
    fn reserve(&self, cap: u32) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The atomic state word of one endpoint.
pub(crate) struct StateWord(AtomicU64);

impl StateWord {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(Word::healthy(0).0))
    }

    #[inline]
    pub(crate) fn load(&self) -> Word {
        Word(self.0.load(Ordering::Acquire))
    }

    /// The one compare-and-swap loop: `f` sees the current word and returns the word to store,
    /// or `None` to leave it.
    fn transition(&self, mut f: impl FnMut(Word) -> Option<Word>) -> Result<Moved, Word> {
        let mut current = self.load();
        loop {
            let next = match f(current) {
                Some(next) => next,
                None => return Err(current),
            };
            match self.0.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Moved {
                        from: current,
                        to: next,
                    });
                }
                Err(actual) => current = Word(actual),
            }
        }
    }

    /// A success of a call sent at epoch `sent`: ends the run of failures. One load when there
    /// is no run (the healthy path).
    #[inline]
    pub(crate) fn on_success(&self, sent: u32) {
        let word = self.load();
        if word.failures() == 0 {
            return;
        }
        let _ = self.transition(|w| {
            (w.kind() == KIND_HEALTHY && w.ejections() == sent && w.failures() != 0)
                .then(|| w.with_failures(0))
        });
    }

    /// A failure of a call sent at epoch `sent`. At the `threshold`-th failure in a row the
    /// endpoint is ejected until `until_ms(n)` (`n`: this ejection's number), if a place under
    /// `cap` is free in `ejected`; otherwise the run stays at the threshold, so the next failure
    /// tries again.
    pub(crate) fn on_failure(
        &self,
        sent: u32,
        threshold: u32,
        ejected: &EjectedCount,
        cap: impl Fn() -> u32,
        until_ms: impl Fn(u32) -> u64,
    ) -> OnFailure {
        let mut current = self.load();
        loop {
            if current.kind() != KIND_HEALTHY || current.ejections() != sent {
                return OnFailure::Stale;
            }
            let failures = (current.failures() + 1).min(threshold);
            let reserved = failures >= threshold && ejected.reserve(cap());
            let next = if reserved {
                current.to_ejected(until_ms(current.ejections() + 1))
            } else {
                current.with_failures(failures)
            };
            match self.0.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) if reserved => return OnFailure::Ejected(next),
                Ok(_) => return OnFailure::Counted,
                Err(actual) => {
                    if reserved {
                        ejected.release();
                    }
                    current = Word(actual);
                }
            }
        }
    }

    /// Ejects a healthy endpoint now (its failure rate is too high), if the call that told was
    /// sent at its current epoch and a place under `cap` is free.
    pub(crate) fn eject(
        &self,
        sent: u32,
        ejected: &EjectedCount,
        cap: u32,
        until_ms: impl Fn(u32) -> u64,
    ) -> Option<Word> {
        if !ejected.reserve(cap) {
            return None;
        }
        match self.transition(|w| {
            (w.kind() == KIND_HEALTHY && w.ejections() == sent)
                .then(|| w.to_ejected(until_ms(w.ejections() + 1)))
        }) {
            Ok(moved) => Some(moved.to),
            Err(_) => {
                ejected.release();
                None
            }
        }
    }

    /// Ends an ejection that is due at `now_ms`. `Err` holds the word when nothing was due
    /// (not ejected, or not yet).
    pub(crate) fn return_if_due(&self, now_ms: u64, ejected: &EjectedCount) -> Result<Moved, Word> {
        let moved = self.transition(|w| {
            (w.kind() == KIND_EJECTED && w.until_ms() <= now_ms)
                .then(|| Word::healthy(w.ejections()))
        })?;
        ejected.release();
        Ok(moved)
    }

    /// A health check's verdict: to `Unhealthy` from `Healthy` or `Ejected`, or back to
    /// `Healthy` from `Unhealthy`. `Err` when there is nothing to change.
    pub(crate) fn set_unhealthy(
        &self,
        unhealthy: bool,
        ejected: &EjectedCount,
    ) -> Result<Moved, Word> {
        let moved = self.transition(|w| match (w.kind(), unhealthy) {
            (KIND_HEALTHY | KIND_EJECTED, true) => Some(w.to_kind(KIND_UNHEALTHY)),
            (KIND_UNHEALTHY, false) => Some(Word::healthy(w.ejections())),
            _ => None,
        })?;
        if moved.from.kind() == KIND_EJECTED {
            ejected.release();
        }
        Ok(moved)
    }

    /// Takes the endpoint out of the pool for good. `Err` if it was already removed.
    pub(crate) fn remove(&self, ejected: &EjectedCount) -> Result<Moved, Word> {
        let moved =
            self.transition(|w| (w.kind() != KIND_REMOVED).then(|| w.to_kind(KIND_REMOVED)))?;
        if moved.from.kind() == KIND_EJECTED {
            ejected.release();
        }
        Ok(moved)
    }
}

impl fmt::Debug for StateWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_saturate() {
        let w = Word::pack(
            KIND_EJECTED,
            MAX_CONSECUTIVE_FAILURES,
            MAX_EJECTIONS,
            u64::MAX,
        );
        assert_eq!(w.kind(), KIND_EJECTED);
        assert_eq!(w.failures(), MAX_CONSECUTIVE_FAILURES);
        assert_eq!(w.ejections(), MAX_EJECTIONS);
        assert_eq!(w.until_ms(), MAX_UNTIL_MS);
        assert_eq!(w.to_ejected(5).ejections(), MAX_EJECTIONS, "saturates");
    }

    #[test]
    fn the_threshold_ejects_once_and_a_stale_failure_is_ignored() {
        let word = StateWord::new();
        let ejected = EjectedCount::new();
        for _ in 0..2 {
            assert_eq!(
                word.on_failure(0, 3, &ejected, || 1, |n| 100 * u64::from(n)),
                OnFailure::Counted
            );
        }
        let OnFailure::Ejected(w) = word.on_failure(0, 3, &ejected, || 1, |n| 100 * u64::from(n))
        else {
            panic!("the third failure ejects");
        };
        assert_eq!((w.ejections(), w.until_ms(), ejected.get()), (1, 100, 1));
        assert_eq!(
            word.on_failure(0, 3, &ejected, || 1, |_| 0),
            OnFailure::Stale
        );
        assert!(word.return_if_due(99, &ejected).is_err());
        assert!(word.return_if_due(100, &ejected).is_ok());
        assert_eq!(
            (word.load().kind(), word.load().failures(), ejected.get()),
            (KIND_HEALTHY, 0, 0)
        );
        assert_eq!(
            word.on_failure(0, 3, &ejected, || 1, |_| 0),
            OnFailure::Stale,
            "sent before the ejection"
        );
    }

    #[test]
    fn a_full_cap_keeps_the_run_at_the_threshold() {
        let word = StateWord::new();
        let ejected = EjectedCount::new();
        assert!(ejected.reserve(1));
        assert_eq!(
            word.on_failure(0, 1, &ejected, || 1, |_| 10),
            OnFailure::Counted
        );
        assert_eq!(word.load().failures(), 1);
        ejected.release();
        assert!(matches!(
            word.on_failure(0, 1, &ejected, || 1, |_| 10),
            OnFailure::Ejected(_)
        ));
    }

    #[test]
    fn unhealthy_and_removed_release_the_ejected_place() {
        let word = StateWord::new();
        let ejected = EjectedCount::new();
        assert!(matches!(
            word.on_failure(0, 1, &ejected, || 1, |_| 10),
            OnFailure::Ejected(_)
        ));
        assert!(word.set_unhealthy(true, &ejected).is_ok());
        assert_eq!(ejected.get(), 0);
        assert!(word.set_unhealthy(true, &ejected).is_err());
        assert!(word.remove(&ejected).is_ok());
        assert!(word.remove(&ejected).is_err());
        assert!(
            word.set_unhealthy(false, &ejected).is_err(),
            "removed is final"
        );
    }
}

#[cfg(all(test, steadfast_loom))]
mod loom_tests {
    //! loom models of the state word and the ejected count.

    use loom::thread;

    use super::*;
    use crate::sync::Arc;

    /// Two endpoints fail at once with room for one ejection: exactly one is ejected, and the
    /// count says one.
    #[test]
    fn loom_the_cap_holds_between_two_ejections() {
        loom::model(|| {
            let ejected = Arc::new(EjectedCount::new());
            let words = Arc::new([StateWord::new(), StateWord::new()]);
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let (ejected, words) = (Arc::clone(&ejected), Arc::clone(&words));
                    thread::spawn(move || {
                        matches!(
                            words[i].on_failure(0, 1, &ejected, || 1, |_| 10),
                            OnFailure::Ejected(_)
                        )
                    })
                })
                .collect();
            let wins = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&w| w)
                .count();
            assert_eq!(wins, 1);
            assert_eq!(ejected.get(), 1);
            let ejected_words = words
                .iter()
                .filter(|w| w.load().kind() == KIND_EJECTED)
                .count();
            assert_eq!(ejected_words, 1);
        });
    }

    /// A return, a removal and a health verdict race for one ejected endpoint: the place is
    /// given back exactly once.
    #[test]
    fn loom_an_ejection_ends_once() {
        loom::model(|| {
            let ejected = Arc::new(EjectedCount::new());
            let word = Arc::new(StateWord::new());
            assert!(matches!(
                word.on_failure(0, 1, &ejected, || 1, |_| 10),
                OnFailure::Ejected(_)
            ));
            let a = {
                let (ejected, word) = (Arc::clone(&ejected), Arc::clone(&word));
                thread::spawn(move || word.return_if_due(10, &ejected).is_ok())
            };
            let b = {
                let (ejected, word) = (Arc::clone(&ejected), Arc::clone(&word));
                thread::spawn(move || word.remove(&ejected).is_ok())
            };
            let _ = word.set_unhealthy(true, &ejected);
            let (_, removed) = (a.join().unwrap(), b.join().unwrap());
            assert!(removed, "removal always wins in the end");
            // Released exactly once: twice would wrap below zero, never would leave one.
            assert_eq!(ejected.get(), 0);
            assert_eq!(word.load().kind(), KIND_REMOVED);
        });
    }

    /// A failure-rate ejection races a consecutive-failures one on the same endpoint: one wins,
    /// the loser's reserved place is given back.
    #[test]
    fn loom_two_causes_eject_once() {
        loom::model(|| {
            let ejected = Arc::new(EjectedCount::new());
            let word = Arc::new(StateWord::new());
            let t = {
                let (ejected, word) = (Arc::clone(&ejected), Arc::clone(&word));
                thread::spawn(move || word.eject(0, &ejected, 2, |_| 10).is_some())
            };
            let by_run = matches!(
                word.on_failure(0, 1, &ejected, || 2, |_| 10),
                OnFailure::Ejected(_)
            );
            let by_rate = t.join().unwrap();
            assert!(by_run ^ by_rate, "exactly one ejection");
            assert_eq!(ejected.get(), 1);
            assert_eq!(word.load().ejections(), 1);
        });
    }

    /// A failure counted while another thread's success ends the run: no update is lost, and
    /// the word never holds more failures than were counted.
    #[test]
    fn loom_a_failure_and_a_success_do_not_lose_updates() {
        loom::model(|| {
            let ejected = Arc::new(EjectedCount::new());
            let word = Arc::new(StateWord::new());
            assert_eq!(
                word.on_failure(0, 3, &ejected, || 1, |_| 10),
                OnFailure::Counted
            );
            let t = {
                let (ejected, word) = (Arc::clone(&ejected), Arc::clone(&word));
                thread::spawn(move || word.on_failure(0, 3, &ejected, || 1, |_| 10))
            };
            word.on_success(0);
            assert_eq!(t.join().unwrap(), OnFailure::Counted);
            let failures = word.load().failures();
            assert!(
                failures <= 1,
                "the success ran before or after the failure: {failures}"
            );
            assert_eq!(ejected.get(), 0);
        });
    }
}
