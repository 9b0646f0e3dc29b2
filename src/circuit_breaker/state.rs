//! The breaker's state word: one `AtomicU64` that holds the state, its generation and the data
//! that must change together with it, so that every transition is a single compare-and-swap.
//!
//! # Bit layout
//!
//! ```text
//!  63 62                              19 18            3 2      0
//! +--+----------------------------------+---------------+--------+
//! |0 |             payload              |  generation   |  kind  |
//! +--+----------------------------------+---------------+--------+
//!                 44 bits                    16 bits      3 bits
//!
//! payload, by kind:
//!   Closed, Disabled: 0
//!   Open, ForcedOpen: the end of the open interval, in ms since the breaker's epoch
//!                     (ForcedOpen: 0, it has no end)
//!   HalfOpen:         | slow:11 | failed:11 | completed:11 | in_flight:11 |   (low bits on the right)
//! ```
//!
//! - `kind` is one of the `KIND_*` constants.
//! - `generation` grows by one (mod 2^16) on every transition. A call remembers the generation
//!   it was admitted in; its outcome counts only if the generation is still current, so an outcome
//!   from before a transition never extends an Open, never counts in a newer window and never
//!   closes a newer half-open (nor frees one of its probe slots). See "Generation reuse".
//!
//! # Generation reuse
//!
//! A generation is reused after 65 536 transitions, and the windows' `is_newer` tells older from
//! newer over half that, 32 768. What bounds how soon that comes is the configuration: every
//! cycle the breaker makes on its own passes through Open, each open interval lasts at least
//! `MIN_WAIT_IN_OPEN` (100 ms: the least `wait_in_open`, and the floor of a jittered interval;
//! see `config.rs`), and a cycle makes at most three transitions (Closed → Open → HalfOpen →
//! Closed, or HalfOpen → Open → HalfOpen in two). So a breaker that flaps as fast as it can
//! reuses a generation after at least 65 536 / 3 × 100 ms ≈ 36 minutes, and `is_newer` holds for
//! at least 18 minutes; with the default `wait_in_open` (30 s), 7.5 and 3.8 days. A call or probe
//! in flight longer than that could count against another generation (a probe slot freed in the
//! wrong half-open, an outcome in the wrong window); a `max_wait_in_half_open` and a timeout
//! below the breaker keep calls far shorter. Transitions made by hand (`force_open`, `disable`,
//! `reset`), and the new generation a `reconfigure` with a new window shape moves a closed breaker
//! to, are not bounded: an application that calls them thousands of times a second
//! shortens the bound accordingly.
//! - Half-open counters: `in_flight` probes admitted and not yet finished; `completed` probes that
//!   finished with a success or a failure; of those, `failed` and `slow`. Invariant:
//!   `in_flight + completed <= half_open_calls <= MAX_HALF_OPEN_CALLS`, and `failed, slow <=
//!   completed`.
//! - 44 bits of milliseconds cover 557 years of uptime; the high bit is always 0.
//!
//! # Memory ordering
//!
//! Loads of the word are `Acquire` and successful CASes `AcqRel`: the thread that wins a
//! transition into `Closed` resets the window *after* its CAS, and a recorder that sees the new
//! generation reads the window after its `Acquire` load, so it never sees a half-reset window as
//! current (the window's own generation tags close the remaining race; see `window.rs`).
//! Failed CASes are `Acquire`, since the loop reads the fresh word.

use std::fmt;

use super::State;
use crate::field::Field;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const KIND_CLOSED: u64 = 0;
pub(crate) const KIND_OPEN: u64 = 1;
pub(crate) const KIND_HALF_OPEN: u64 = 2;
pub(crate) const KIND_FORCED_OPEN: u64 = 3;
pub(crate) const KIND_DISABLED: u64 = 4;

/// The fields of the word, from bit 0 up (the diagram above).
const KIND: Field = Field::new(0, 3);
const GENERATION: Field = KIND.next(16);
const PAYLOAD: Field = GENERATION.next(44);
const _: () = assert!(PAYLOAD.end() == 63, "the top bit stays clear");

/// The half-open counters, fields of the payload.
const IN_FLIGHT: Field = Field::new(0, 11);
const COMPLETED: Field = IN_FLIGHT.next(11);
const FAILED: Field = COMPLETED.next(11);
const SLOW: Field = FAILED.next(11);
const _: () = assert!(SLOW.end() == PAYLOAD.bits());

const _: () = assert!(GENERATION.max() == Generation::MAX as u64);

/// The most probes a half-open breaker can admit: the largest value of an 11-bit counter.
pub(crate) const MAX_HALF_OPEN_CALLS: u32 = IN_FLIGHT.max() as u32;

/// The latest end of an open interval that fits the payload, in ms since the epoch.
pub(crate) const MAX_OPEN_UNTIL_MS: u64 = PAYLOAD.max();

/// A generation number (mod 2^16).
pub(crate) type Generation = u16;

/// A copy of the state word, decoded through named accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed(u64);

impl Packed {
    fn pack(kind: u64, generation: Generation, payload: u64) -> Self {
        Self(KIND.put(kind) | GENERATION.put(u64::from(generation)) | PAYLOAD.put(payload))
    }

    #[inline(always)]
    pub(crate) fn kind(self) -> u64 {
        KIND.get(self.0)
    }

    pub(crate) fn state(self) -> State {
        match self.kind() {
            KIND_CLOSED => State::Closed,
            KIND_OPEN => State::Open,
            KIND_HALF_OPEN => State::HalfOpen,
            KIND_FORCED_OPEN => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    #[inline(always)]
    pub(crate) fn generation(self) -> Generation {
        GENERATION.get(self.0) as Generation
    }

    fn payload(self) -> u64 {
        PAYLOAD.get(self.0)
    }

    /// Open: when the open interval ends, in ms since the epoch.
    pub(crate) fn open_until_ms(self) -> u64 {
        self.payload()
    }

    pub(crate) fn in_flight(self) -> u32 {
        IN_FLIGHT.get(self.payload()) as u32
    }

    pub(crate) fn completed(self) -> u32 {
        COMPLETED.get(self.payload()) as u32
    }

    pub(crate) fn failed(self) -> u32 {
        FAILED.get(self.payload()) as u32
    }

    pub(crate) fn slow(self) -> u32 {
        SLOW.get(self.payload()) as u32
    }

    /// The same state with the next generation and the given kind and payload: the target of a
    /// transition.
    fn next(self, kind: u64, payload: u64) -> Self {
        Self::pack(kind, self.generation().wrapping_add(1), payload)
    }

    pub(crate) fn to_closed(self) -> Self {
        self.next(KIND_CLOSED, 0)
    }

    pub(crate) fn to_open(self, until_ms: u64) -> Self {
        self.next(KIND_OPEN, until_ms.min(MAX_OPEN_UNTIL_MS))
    }

    pub(crate) fn to_forced_open(self) -> Self {
        self.next(KIND_FORCED_OPEN, 0)
    }

    pub(crate) fn to_disabled(self) -> Self {
        self.next(KIND_DISABLED, 0)
    }

    /// Half-open with `in_flight` probes already admitted (1 when the caller that makes the
    /// transition is itself the first probe).
    pub(crate) fn to_half_open(self, in_flight: u32) -> Self {
        self.next(KIND_HALF_OPEN, IN_FLIGHT.put(u64::from(in_flight)))
    }

    /// The same half-open generation with its counters replaced.
    pub(crate) fn with_probes(
        self,
        in_flight: u32,
        completed: u32,
        failed: u32,
        slow: u32,
    ) -> Self {
        let payload = IN_FLIGHT.put(u64::from(in_flight))
            | COMPLETED.put(u64::from(completed))
            | FAILED.put(u64::from(failed))
            | SLOW.put(u64::from(slow));
        Self::pack(KIND_HALF_OPEN, self.generation(), payload)
    }
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Packed");
        out.field("state", &self.state())
            .field("generation", &self.generation());
        match self.kind() {
            KIND_OPEN => out.field("open_until_ms", &self.open_until_ms()),
            KIND_HALF_OPEN => out
                .field("in_flight", &self.in_flight())
                .field("completed", &self.completed())
                .field("failed", &self.failed())
                .field("slow", &self.slow()),
            _ => &mut out,
        };
        out.finish()
    }
}

/// The atomic state word. Every change goes through [`StateWord::transition`].
pub(crate) struct StateWord(AtomicU64);

impl StateWord {
    pub(crate) fn new(initial: State) -> Self {
        let kind = match initial {
            State::Closed => KIND_CLOSED,
            State::ForcedOpen => KIND_FORCED_OPEN,
            State::Disabled => KIND_DISABLED,
            // A breaker is never built open or half-open: those states need an interval.
            State::Open | State::HalfOpen => KIND_CLOSED,
        };
        Self(AtomicU64::new(Packed::pack(kind, 0, 0).0))
    }

    #[inline]
    pub(crate) fn load(&self) -> Packed {
        Packed(self.0.load(Ordering::Acquire))
    }

    /// The one compare-and-swap loop: `f` sees the current word and returns the word to store,
    /// or `None` to leave it. Returns `Ok((old, new))` when this call stored `new`, so that only
    /// the winner of a transition reports it; `Err(current)` when `f` declined.
    pub(crate) fn transition(
        &self,
        mut current: Packed,
        mut f: impl FnMut(Packed) -> Option<Packed>,
    ) -> Result<(Packed, Packed), Packed> {
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
                Ok(_) => return Ok((current, next)),
                Err(actual) => current = Packed(actual),
            }
        }
    }
}

impl fmt::Debug for StateWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

/// Whether generation `a` is newer than `b`, allowing for wrap-around.
pub(crate) fn is_newer(a: Generation, b: Generation) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && u64::from(ahead) <= GENERATION.max() / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let s = Packed::pack(KIND_CLOSED, u16::MAX, 0);
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.generation(), u16::MAX);

        let open = s.to_open(MAX_OPEN_UNTIL_MS + 5);
        assert_eq!(open.state(), State::Open);
        assert_eq!(open.generation(), 0, "generation wraps");
        assert_eq!(open.open_until_ms(), MAX_OPEN_UNTIL_MS, "saturates");

        let half = open.to_half_open(1).with_probes(2047, 2047, 1, 2046);
        assert_eq!(half.generation(), 1);
        assert_eq!(
            (
                half.in_flight(),
                half.completed(),
                half.failed(),
                half.slow()
            ),
            (2047, 2047, 1, 2046)
        );
        assert_eq!(half.0 >> 63, 0, "the top bit stays clear");
    }

    #[test]
    fn newer_generation_wraps() {
        assert!(is_newer(1, 0));
        assert!(is_newer(0, u16::MAX));
        assert!(!is_newer(5, 5));
        assert!(!is_newer(0, 1));
    }
}
