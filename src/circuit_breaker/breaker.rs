//! The breaker itself: who may call, what an outcome does, and every transition.
//!
//! Shared by every clone of a [`CircuitBreakerLayer`](super::CircuitBreakerLayer) and every
//! service it makes. No lock anywhere: the state lives in one [`StateWord`], the closed state's
//! memory in a generation-tagged window, and each transition is one CAS whose winner alone
//! reports it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{Config, MIN_WAIT_IN_OPEN};
use super::live::{Fixed, Live};
use super::shape::{Shape, Window, WindowCell};
use super::state::{
    Generation, KIND_CLOSED, KIND_DISABLED, KIND_FORCED_OPEN, KIND_HALF_OPEN, KIND_OPEN, Packed,
    StateWord,
};
use super::telemetry::{CallKind, KeyCounts, Listener, Telemetry};
use super::window::{ConsecutiveFailures, Sample, Totals, WindowUpdate};
use super::{CircuitOpen, Snapshot, State};
use crate::classify::Outcome;
use crate::field::Field;
use crate::random::{AtomicSplitMix64, random_seed};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What a caller was allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PermissionKind {
    /// Closed: the outcome goes to the window.
    Normal,
    /// Half-open: one of the probe slots; the outcome judges the probes.
    Probe,
    /// Disabled, or let through by shadow mode: nothing is recorded.
    Passthrough,
}

/// Permission for one call, stamped with the generation that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permission {
    pub(crate) kind: PermissionKind,
    pub(crate) generation: Generation,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Admission {
    Permitted(Permission),
    Rejected(PackedRejection),
}

/// A rejection, packed into one word so that it moves from `poll_ready` to `call` to the future
/// as a single register: `| 0:8 | retry_after ms:48 | state:8 |`, 56 bits so that it fits a
/// [`Ticket`]'s payload (48 bits of ms are 8 900 years). Unpacked into a [`CircuitOpen`] only when the error
/// is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedRejection(u64);

impl PackedRejection {
    const STATE: Field = Field::new(0, 8);
    const RETRY_AFTER_MS: Field = Self::STATE.next(48);
    const MAX_MS: u64 = Self::RETRY_AFTER_MS.max();

    fn new(state: State, retry_after_ms: u64) -> Self {
        let ms = retry_after_ms.min(Self::MAX_MS);
        let state = match state {
            State::HalfOpen => 1,
            State::ForcedOpen => 2,
            _ => 0,
        };
        Self(Self::RETRY_AFTER_MS.put(ms) | Self::STATE.put(state))
    }

    pub(crate) fn error(self) -> CircuitOpen {
        let state = match Self::STATE.get(self.0) {
            1 => State::HalfOpen,
            2 => State::ForcedOpen,
            _ => State::Open,
        };
        CircuitOpen::new(
            state,
            Duration::from_millis(Self::RETRY_AFTER_MS.get(self.0)),
        )
    }
}

/// An [`Admission`] held from `poll_ready` to `call`, or none, packed into one word.
///
/// `| payload:56 | tag:8 |`: tag 0 is none; 1, 2 and 3 are a permit (normal, probe,
/// passthrough) whose payload is its generation; 4 is a rejection whose payload is the
/// [`PackedRejection`] word. The service stores and loads it whole: an enum of mixed-width fields
/// written in `poll_ready` and read back in `call` stalls store-to-load forwarding, which cost
/// more than the rest of a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

impl Ticket {
    pub(crate) const NONE: Self = Self(0);
    const TAG: Field = Field::new(0, 8);
    const PAYLOAD: Field = Self::TAG.next(56);
    const TAG_REJECTED: u64 = 4;

    #[inline(always)]
    pub(crate) fn new(admission: Admission) -> Self {
        let (payload, tag) = match admission {
            Admission::Permitted(permit) => {
                let tag = match permit.kind {
                    PermissionKind::Normal => 1,
                    PermissionKind::Probe => 2,
                    PermissionKind::Passthrough => 3,
                };
                (u64::from(permit.generation), tag)
            }
            Admission::Rejected(rejection) => (rejection.0, Self::TAG_REJECTED),
        };
        Self(Self::PAYLOAD.put(payload) | Self::TAG.put(tag))
    }

    #[inline(always)]
    pub(crate) fn is_none(self) -> bool {
        self == Self::NONE
    }

    #[inline(always)]
    pub(crate) fn is_rejected(self) -> bool {
        Self::TAG.get(self.0) == Self::TAG_REJECTED
    }

    /// The admission, leaving none.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<Admission> {
        let Self(word) = std::mem::replace(self, Self::NONE);
        let payload = Self::PAYLOAD.get(word);
        let kind = match Self::TAG.get(word) {
            0 => return None,
            1 => PermissionKind::Normal,
            2 => PermissionKind::Probe,
            3 => PermissionKind::Passthrough,
            _ => return Some(Admission::Rejected(PackedRejection(payload))),
        };
        Some(Admission::Permitted(Permission {
            kind,
            generation: payload as Generation,
        }))
    }
}

/// `half_open_since`: `| generation:16 | ms since epoch:48 |` of the latest half-open's start.
const SINCE_MS: Field = Field::new(0, 48);
const SINCE_GENERATION: Field = SINCE_MS.next(16);

/// The shared breaker.
///
/// # Memory ordering
///
/// The state word orders everything: see `state.rs`. `half_open_since` and `reopens` are written
/// only by the winner of the transition they belong to, after its CAS, and are read after an
/// `Acquire` load of the state; `half_open_since` carries the generation it belongs to, so a
/// reader that races its writer sees a stale tag and treats the half-open as just started.
/// `not_permitted` and the jitter generator are plain counters (`Relaxed`). The window is
/// replaced through its cell; see `shape.rs` for how that orders with the state word.
pub(crate) struct Breaker {
    state: StateWord,
    /// The closed state's window. Calls record into the one their service's `Judge` holds,
    /// never through the cell's lock.
    window: WindowCell,
    /// The run of consecutive failures, counted while the window's shape says so.
    consecutive: ConsecutiveFailures,
    half_open_since: AtomicU64,
    reopens: AtomicU32,
    not_permitted: AtomicU64,
    shadow: AtomicBool,
    rng: AtomicSplitMix64,
    epoch: Instant,
    live: Live,
    // Read only by `reconfigure` (feature `serde`).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    fixed: Fixed,
    /// Held by the plain layer's `reconfigure` (a keyed layer orders its reloads itself).
    #[cfg(feature = "serde")]
    reloads: crate::config::Reloads,
    telemetry: Telemetry,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.telemetry.name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Drop for Breaker {
    fn drop(&mut self) {
        self.telemetry.retire(self.state());
    }
}

impl Breaker {
    pub(crate) fn new(config: Config, listener: Option<Listener>) -> Self {
        Self::reporting(config, listener, None)
    }

    /// One key's breaker of a keyed layer, counted in the layer's `keys`.
    #[cfg(not(steadfast_loom))]
    pub(crate) fn keyed(config: Config, listener: Option<Listener>, keys: Arc<KeyCounts>) -> Self {
        Self::reporting(config, listener, Some(keys))
    }

    fn reporting(config: Config, listener: Option<Listener>, keys: Option<Arc<KeyCounts>>) -> Self {
        // Generation 0: the state word's first.
        let window = WindowCell::new(Window::new(Shape::of(&config), 0));
        let seed = config
            .seed
            .unwrap_or_else(|| random_seed(&config as *const Config as usize));
        let epoch = Instant::now();
        Self {
            state: StateWord::new(config.initial_state),
            window,
            consecutive: ConsecutiveFailures::new(),
            half_open_since: AtomicU64::new(0),
            reopens: AtomicU32::new(0),
            not_permitted: AtomicU64::new(0),
            shadow: AtomicBool::new(config.shadow),
            rng: AtomicSplitMix64::new(seed),
            epoch,
            telemetry: Telemetry::new(
                config.name.clone(),
                listener,
                config.initial_state,
                epoch,
                keys,
            ),
            live: Live::new(&config),
            fixed: Fixed::of(&config),
            #[cfg(feature = "serde")]
            reloads: crate::config::Reloads::default(),
        }
    }

    /// The settings a running breaker cannot change.
    #[cfg(feature = "serde")]
    pub(crate) fn fixed(&self) -> &Fixed {
        &self.fixed
    }

    /// What orders the reloads of a plain layer's breaker.
    #[cfg(feature = "serde")]
    pub(crate) fn reloads(&self) -> &crate::config::Reloads {
        &self.reloads
    }

    /// The window calls record into, and how `reconfigure` replaces it.
    pub(crate) fn window(&self) -> &WindowCell {
        &self.window
    }

    /// Starts a new, empty window of `shape`: see `shape.rs`. Closed, the breaker moves to its
    /// next generation (still closed, not reported), so that the outcomes of calls admitted
    /// before are stale; otherwise its state, generation and timers stay.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn replace_window(&self, shape: Shape) {
        let generation = self.state.load().generation();
        self.window.replace(Window::new(shape, generation));
        // One successful CAS in every state (the same word rewritten when not closed): later
        // words are in its release sequence, so a call admitted under them sees the new
        // window's version.
        let _ = self.state.transition(self.state.load(), |w| {
            Some(if w.kind() == KIND_CLOSED {
                w.to_closed()
            } else {
                w
            })
        });
    }

    /// The settings a running breaker can change (`reconfigure`).
    pub(crate) fn live(&self) -> &Live {
        &self.live
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// `wait_in_open` in ms, the hint of a forced-open or full half-open rejection.
    #[inline]
    fn wait_in_open_ms(&self) -> u64 {
        crate::clock::millis(self.live.wait_in_open())
    }

    /// Milliseconds since the breaker's epoch, rounded up, so that `until` compares equal at the
    /// exact instant an interval ends.
    fn ms_since_epoch(&self, now: Instant) -> u64 {
        crate::clock::millis_ceil(now.saturating_duration_since(self.epoch))
    }

    // -----------------------------------------------------------------------------------------
    // Admission
    // -----------------------------------------------------------------------------------------

    /// May a call go through now? Closed: one atomic load and nothing else.
    #[inline]
    pub(crate) fn admit(&self) -> Admission {
        let word = self.state.load();
        match word.kind() {
            KIND_CLOSED => Admission::Permitted(Permission {
                kind: PermissionKind::Normal,
                generation: word.generation(),
            }),
            KIND_DISABLED => Admission::Permitted(Permission {
                kind: PermissionKind::Passthrough,
                generation: word.generation(),
            }),
            KIND_FORCED_OPEN => self.reject(State::ForcedOpen, self.wait_in_open_ms(), word),
            _ => self.admit_slow(word),
        }
    }

    /// Open or half-open: what happens depends on the time.
    #[cold]
    fn admit_slow(&self, mut word: Packed) -> Admission {
        let now_ms = self.ms_since_epoch(Instant::now());
        loop {
            let generation = word.generation();
            let permit = |kind| Admission::Permitted(Permission { kind, generation });
            match word.kind() {
                KIND_CLOSED => return permit(PermissionKind::Normal),
                KIND_DISABLED => return permit(PermissionKind::Passthrough),
                KIND_FORCED_OPEN => {
                    return self.reject(State::ForcedOpen, self.wait_in_open_ms(), word);
                }
                KIND_OPEN if now_ms < word.open_until_ms() => {
                    return self.reject(State::Open, word.open_until_ms() - now_ms, word);
                }
                KIND_OPEN => {
                    // The wait is over: this caller moves the breaker to half-open and is its
                    // first probe.
                    match self
                        .state
                        .transition(word, |w| (w == word).then(|| w.to_half_open(1)))
                    {
                        Ok((old, new)) => {
                            self.entered(old, new, now_ms);
                            return Admission::Permitted(Permission {
                                kind: PermissionKind::Probe,
                                generation: new.generation(),
                            });
                        }
                        Err(current) => word = current,
                    }
                }
                _ => {
                    // Half-open: take a free probe slot, if any.
                    let cap = self.live.half_open_calls();
                    match self.state.transition(word, |w| {
                        let same = w.kind() == KIND_HALF_OPEN && w.generation() == generation;
                        (same && w.in_flight() + w.completed() < cap).then(|| {
                            w.with_probes(w.in_flight() + 1, w.completed(), w.failed(), w.slow())
                        })
                    }) {
                        Ok(_) => return permit(PermissionKind::Probe),
                        Err(current) if current.generation() != generation => word = current,
                        Err(current) => {
                            if current.in_flight() == 0 && current.completed() >= cap {
                                // `reconfigure` lowered the cap below the probes already in:
                                // judge them now, as the last of them would have.
                                self.judge_probes(current, now_ms);
                                word = self.state.load();
                                continue;
                            }
                            if self.half_open_expired(current, now_ms) {
                                self.reopen(current, now_ms);
                                word = self.state.load();
                                if word.kind() == KIND_OPEN {
                                    let left = word.open_until_ms().saturating_sub(now_ms);
                                    return self.reject(State::Open, left, word);
                                }
                                continue;
                            }
                            return self.reject(State::HalfOpen, self.wait_in_open_ms(), current);
                        }
                    }
                }
            }
        }
    }

    /// Rejects a call (or, in shadow mode, lets it through uncounted). `retry_after_ms` is the
    /// hint of [`CircuitOpen::retry_after`], carried in ms to the error so that the rejection
    /// path does no `Duration` arithmetic of its own.
    #[inline]
    fn reject(&self, state: State, retry_after_ms: u64, word: Packed) -> Admission {
        self.not_permitted.fetch_add(1, Ordering::Relaxed);
        let shadow = self.shadow.load(Ordering::Relaxed);
        self.telemetry.not_permitted(state, retry_after_ms, shadow);
        if shadow {
            Admission::Permitted(Permission {
                kind: PermissionKind::Passthrough,
                generation: word.generation(),
            })
        } else {
            Admission::Rejected(PackedRejection::new(state, retry_after_ms))
        }
    }

    /// Half-open has been waiting for its probes longer than `max_wait_in_half_open`.
    fn half_open_expired(&self, word: Packed, now_ms: u64) -> bool {
        if word.kind() != KIND_HALF_OPEN
            || word.in_flight() + word.completed() < self.live.half_open_calls()
        {
            return false;
        }
        let since = self.half_open_since.load(Ordering::Acquire);
        if SINCE_GENERATION.get(since) as Generation != word.generation() {
            // Its start is still being written: it has only just begun.
            return false;
        }
        let max_wait = self.live.max_wait_in_half_open_ms();
        now_ms.saturating_sub(SINCE_MS.get(since)) >= max_wait
    }

    /// Closes or reopens a half-open breaker whose probes are all in and none out: the state a
    /// lowered `half_open_calls` can leave (see `live.rs`).
    #[cold]
    fn judge_probes(&self, word: Packed, now_ms: u64) {
        let probes = Totals {
            calls: u64::from(word.completed()),
            failures: u64::from(word.failed()),
            slow: u64::from(word.slow()),
        };
        let next = if self.exceeds_thresholds(probes, 1) {
            word.to_open(now_ms.saturating_add(self.open_wait_ms(true)))
        } else {
            word.to_closed()
        };
        if let Ok((old, new)) = self.state.transition(word, |w| (w == word).then_some(next)) {
            self.entered(old, new, now_ms);
        }
    }

    /// Moves a half-open breaker back to open (its probes failed or never finished).
    fn reopen(&self, word: Packed, now_ms: u64) {
        let until = now_ms.saturating_add(self.open_wait_ms(true));
        if let Ok((old, new)) = self
            .state
            .transition(word, |w| (w == word).then(|| w.to_open(until)))
        {
            self.entered(old, new, now_ms);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Outcomes
    // -----------------------------------------------------------------------------------------

    /// Records how a permitted call ended, in `window`: the one its service held when it was
    /// called. `end` is the time it ended, when [`Window::needs_end_time`].
    pub(crate) fn record(
        &self,
        window: &Window,
        permit: Permission,
        outcome: Outcome,
        slow: bool,
        end: Option<Instant>,
    ) {
        self.telemetry.call(CallKind::of(outcome, slow));
        match permit.kind {
            PermissionKind::Passthrough => {}
            PermissionKind::Normal => {
                if outcome != Outcome::Ignored {
                    let failure = outcome == Outcome::Failure;
                    self.record_closed(window, permit.generation, failure, slow, end);
                }
            }
            PermissionKind::Probe => self.record_probe(permit.generation, outcome, slow, end),
        }
    }

    /// Whether a success of `permit` changes nothing and needs no recording: closed, a count
    /// window full of successes, no failure run. One or two loads; the healthy path.
    #[inline]
    pub(crate) fn absorbs_success(&self, window: &Window, permit: Permission) -> bool {
        let absorbed = permit.kind == PermissionKind::Normal
            && window.absorbs_success(permit.generation)
            && (!window.shape().consecutive_failures
                || self.consecutive.is_clear(permit.generation));
        if absorbed {
            self.telemetry.call(CallKind::Success);
        }
        absorbed
    }

    /// Gives back the slot of a probe that will never finish (its future was dropped).
    #[inline]
    pub(crate) fn release(&self, permit: Permission) {
        if permit.kind == PermissionKind::Probe {
            self.record_probe(permit.generation, Outcome::Ignored, false, None);
        }
    }

    fn record_closed(
        &self,
        window: &Window,
        generation: Generation,
        failure: bool,
        slow: bool,
        end: Option<Instant>,
    ) {
        let word = self.state.load();
        if word.kind() != KIND_CLOSED || word.generation() != generation {
            return; // admitted before a transition: stale
        }
        if window.shape().consecutive_failures {
            let limit = self.live.consecutive_failures();
            let run = self.consecutive.record(generation, failure);
            if run.is_some_and(|n| n >= limit) {
                self.trip(word, end);
                return;
            }
        }
        let sample = Sample { failure, slow };
        // A count window needs no time; a time window's bucket does.
        let now_ms = match end {
            Some(end) => self.ms_since_epoch(end),
            None if window.needs_end_time() => self.ms_since_epoch(Instant::now()),
            None => 0,
        };
        let recorded = window.record(generation, sample, now_ms);
        if let WindowUpdate::Counted(totals) = recorded {
            if self.exceeds_thresholds(totals, self.live.minimum_calls()) {
                self.trip(word, end);
            }
        }
    }

    /// Whether `totals` call for opening: enough calls, and a rate at or above its threshold.
    fn exceeds_thresholds(&self, totals: Totals, minimum_calls: u32) -> bool {
        if totals.calls == 0 || totals.calls < u64::from(minimum_calls) {
            return false;
        }
        let calls = totals.calls as f64;
        // Divide rather than multiply the threshold: `3.0 / 10.0 == 0.3` holds in floating
        // point, `0.3 * 10.0 == 3.0` does not, and the threshold is inclusive.
        totals.failures as f64 / calls >= self.live.failure_rate_threshold()
            || (self.live.slow_calls()
                && totals.slow as f64 / calls >= self.live.slow_call_rate_threshold())
    }

    /// Closed → Open, if the breaker is still closed in the generation that judged it.
    fn trip(&self, word: Packed, end: Option<Instant>) {
        let now_ms = self.ms_since_epoch(end.unwrap_or_else(Instant::now));
        let until = now_ms.saturating_add(self.open_wait_ms(false));
        if let Ok((old, new)) = self
            .state
            .transition(word, |w| (w == word).then(|| w.to_open(until)))
        {
            self.entered(old, new, now_ms);
        }
    }

    fn record_probe(
        &self,
        generation: Generation,
        outcome: Outcome,
        slow: bool,
        end: Option<Instant>,
    ) {
        // Read once, like the clock and the jitter: the compare-and-swap may run again.
        let cap = self.live.half_open_calls();
        let mut reopen_until = None;
        let judged = self.state.transition(self.state.load(), |w| {
            self.judge_probe(w, generation, outcome, slow, cap, || {
                *reopen_until.get_or_insert_with(|| self.reopen_until_ms(end))
            })
        });
        if let Ok((old, new)) = judged {
            if new.kind() != KIND_HALF_OPEN {
                self.entered(old, new, 0);
            }
        }
    }

    /// The end of the open interval a re-open starts now: reads the clock (unless `end` is
    /// given) and draws the jitter.
    fn reopen_until_ms(&self, end: Option<Instant>) -> u64 {
        let now_ms = self.ms_since_epoch(end.unwrap_or_else(Instant::now));
        now_ms.saturating_add(self.open_wait_ms(true))
    }

    /// The word after a probe of `generation` finished with `outcome`, or `None` if that
    /// half-open is over. A pure function of `w` apart from `reopen_until`, which the caller
    /// memoises: the compare-and-swap may run this again (contention, or a spurious failure of
    /// `compare_exchange_weak`), and a second clock read or jitter draw would make a seeded
    /// breaker's intervals depend on the interleaving.
    fn judge_probe(
        &self,
        w: Packed,
        generation: Generation,
        outcome: Outcome,
        slow: bool,
        cap: u32,
        reopen_until: impl FnOnce() -> u64,
    ) -> Option<Packed> {
        if w.kind() != KIND_HALF_OPEN || w.generation() != generation || w.in_flight() == 0 {
            return None; // stale: this half-open is over
        }
        let in_flight = w.in_flight() - 1;
        if outcome == Outcome::Ignored {
            return Some(w.with_probes(in_flight, w.completed(), w.failed(), w.slow()));
        }
        let completed = w.completed() + 1;
        let failed = w.failed() + u32::from(outcome == Outcome::Failure);
        let slow = w.slow() + u32::from(slow);
        if completed < cap {
            return Some(w.with_probes(in_flight, completed, failed, slow));
        }
        // Every probe is in: judge them as a fresh window.
        let probes = Totals {
            calls: u64::from(completed),
            failures: u64::from(failed),
            slow: u64::from(slow),
        };
        Some(if self.exceeds_thresholds(probes, 1) {
            w.to_open(reopen_until())
        } else {
            w.to_closed()
        })
    }

    /// Reports a transition this thread made and does what the new state needs.
    fn entered(&self, old: Packed, new: Packed, now_ms: u64) {
        match new.kind() {
            KIND_HALF_OPEN => {
                let since = SINCE_GENERATION.put(u64::from(new.generation()))
                    | SINCE_MS.put(now_ms.min(SINCE_MS.max()));
                self.half_open_since.store(since, Ordering::Release);
            }
            KIND_OPEN if old.kind() == KIND_HALF_OPEN => {
                self.reopens.fetch_add(1, Ordering::AcqRel);
            }
            KIND_CLOSED => {
                self.reopens.store(0, Ordering::Release);
                self.clear_window(new.generation());
            }
            _ => {}
        }
        self.telemetry.transition(old.state(), new.state());
    }

    fn clear_window(&self, generation: Generation) {
        // Emptied now so that the window's tag keeps up with the generation; if a replacement
        // holds the cell this instant, the new window starts empty anyway, and a count window's
        // first outcome of the generation empties it too. The time window and the failure run
        // need no clearing: their tags make every older count read as empty.
        if let Some(window) = self.window.try_current() {
            window.adopt(generation);
        }
    }

    /// How long the next open interval lasts, in ms: `wait_in_open`, grown on re-opens, jittered.
    fn open_wait_ms(&self, reopening: bool) -> u64 {
        let base = self.live.wait_in_open().as_secs_f64();
        let (multiplier, max, jitter) = self.live.open_backoff();
        let mut wait = base;
        if reopening && multiplier > 1.0 {
            let reopens = self.reopens.load(Ordering::Acquire).saturating_add(1);
            let grown = base * multiplier.powi(reopens.min(1024) as i32);
            wait = grown.min(max.as_secs_f64());
        }
        if jitter > 0.0 {
            let unit = self.next_random() * 2.0 - 1.0; // [-1, 1)
            wait *= 1.0 + jitter * unit;
        }
        // The floor keeps the generation's reuse bound (`state.rs`) under any jitter.
        (wait * 1000.0)
            .ceil()
            .max(MIN_WAIT_IN_OPEN.as_millis() as f64) as u64
    }

    /// A fraction in [0, 1) from the breaker's generator, exact under a fixed seed.
    fn next_random(&self) -> f64 {
        self.rng.next_unit()
    }

    // -----------------------------------------------------------------------------------------
    // Reading and manual control
    // -----------------------------------------------------------------------------------------

    /// The state, after the transitions that time alone makes (open → half-open once
    /// `wait_in_open` is over; half-open → open once its probes are overdue).
    pub(crate) fn state(&self) -> State {
        self.refresh(Instant::now()).state()
    }

    fn refresh(&self, now: Instant) -> Packed {
        let word = self.state.load();
        let now_ms = self.ms_since_epoch(now);
        match word.kind() {
            KIND_OPEN if now_ms >= word.open_until_ms() => {
                if let Ok((old, new)) = self
                    .state
                    .transition(word, |w| (w == word).then(|| w.to_half_open(0)))
                {
                    self.entered(old, new, now_ms);
                }
            }
            KIND_HALF_OPEN if self.half_open_expired(word, now_ms) => self.reopen(word, now_ms),
            _ => return word,
        }
        self.state.load()
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let word = self.refresh(now);
        let totals = match word.kind() {
            KIND_CLOSED => {
                let (_, window) = self.window.load();
                window.totals(word.generation(), self.ms_since_epoch(now))
            }
            KIND_HALF_OPEN => Totals {
                calls: u64::from(word.completed()),
                failures: u64::from(word.failed()),
                slow: u64::from(word.slow()),
            },
            _ => Totals::default(),
        };
        Snapshot::new(
            word.state(),
            totals,
            self.not_permitted.load(Ordering::Relaxed),
            if word.kind() == KIND_HALF_OPEN {
                word.in_flight()
            } else {
                0
            },
            self.telemetry.availability(),
        )
    }

    /// Moves to `target` by hand, from any state; returns whether the state changed.
    fn manual(&self, to: fn(Packed) -> Packed, skip_kind: Option<u64>) {
        let now_ms = self.ms_since_epoch(Instant::now());
        if let Ok((old, new)) = self.state.transition(self.state.load(), |w| {
            (Some(w.kind()) != skip_kind).then(|| to(w))
        }) {
            self.entered(old, new, now_ms);
        }
    }

    pub(crate) fn force_open(&self) {
        self.manual(Packed::to_forced_open, Some(KIND_FORCED_OPEN));
    }

    pub(crate) fn disable(&self) {
        self.manual(Packed::to_disabled, Some(KIND_DISABLED));
    }

    /// Back to closed with an empty window, from any state (also from closed: the window is
    /// emptied, but no transition is reported).
    pub(crate) fn reset(&self) {
        self.manual(Packed::to_closed, None);
    }

    /// The state word's generation, for the loom models.
    #[cfg(all(test, steadfast_loom))]
    pub(crate) fn state_generation_for_test(&self) -> Generation {
        self.state.load().generation()
    }

    /// Puts the breaker straight into half-open, for the loom models (which cannot wait).
    #[cfg(test)]
    pub(crate) fn enter_half_open_for_test(&self) {
        let word = self.state.load();
        let _ = self.state.transition(word, |w| Some(w.to_half_open(0)));
    }

    /// [`record`](Self::record) into the current window, for the loom models.
    #[cfg(all(test, steadfast_loom))]
    pub(crate) fn record_current(
        &self,
        permit: Permission,
        outcome: Outcome,
        slow: bool,
        end: Option<Instant>,
    ) {
        let (_, window) = self.window.load();
        self.record(&window, permit, outcome, slow, end);
    }

    pub(crate) fn set_shadow(&self, shadow: bool) {
        self.shadow.store(shadow, Ordering::Relaxed);
    }

    pub(crate) fn is_shadow(&self) -> bool {
        self.shadow.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn admission() -> impl Strategy<Value = Admission> {
        let kind = prop_oneof![
            Just(PermissionKind::Normal),
            Just(PermissionKind::Probe),
            Just(PermissionKind::Passthrough),
        ];
        let state = prop_oneof![
            Just(State::Open),
            Just(State::HalfOpen),
            Just(State::ForcedOpen)
        ];
        prop_oneof![
            (kind, any::<Generation>()).prop_map(|(kind, generation)| {
                Admission::Permitted(Permission { kind, generation })
            }),
            (state, 0..=PackedRejection::MAX_MS)
                .prop_map(|(state, ms)| Admission::Rejected(PackedRejection::new(state, ms))),
        ]
    }

    fn same(a: Admission, b: Admission) -> bool {
        match (a, b) {
            (Admission::Permitted(a), Admission::Permitted(b)) => a == b,
            (Admission::Rejected(a), Admission::Rejected(b)) => a == b,
            _ => false,
        }
    }

    #[test]
    fn a_repeated_judgement_reads_the_clock_and_draws_the_jitter_once() {
        use crate::random::nth;

        let seed = 11;
        let breaker = super::super::CircuitBreakerLayer::builder()
            .half_open_calls(1)
            .open_jitter(0.5)
            .seed(seed)
            .build()
            .unwrap()
            .breaker()
            .clone();
        breaker.enter_half_open_for_test();
        let Admission::Permitted(probe) = breaker.admit() else {
            panic!("the first caller probes");
        };
        let word = breaker.state.load();
        let end = Instant::now();
        // What `record_probe` hands the compare-and-swap loop; a failed CAS runs it again.
        let mut reopen_until = None;
        let mut judge = |w| {
            breaker.judge_probe(
                w,
                probe.generation,
                Outcome::Failure,
                false,
                breaker.live.half_open_calls(),
                || *reopen_until.get_or_insert_with(|| breaker.reopen_until_ms(Some(end))),
            )
        };
        let first = judge(word).expect("the probe is current");
        let again = judge(word).expect("still current");
        assert_eq!(first, again, "a retried CAS stores the same interval");
        assert_eq!(first.kind(), KIND_OPEN);
        // Exactly one number was drawn: the generator's next is the seed's second.
        assert_eq!(breaker.rng.next_u64(), nth(seed, 1));
    }

    proptest! {
        #[test]
        fn a_ticket_gives_back_its_admission_once(admission in admission()) {
            let mut ticket = Ticket::new(admission);
            prop_assert!(!ticket.is_none());
            prop_assert_eq!(ticket.is_rejected(), matches!(admission, Admission::Rejected(_)));
            let taken = ticket.take();
            prop_assert!(taken.is_some_and(|taken| same(taken, admission)));
            prop_assert!(ticket.is_none());
            prop_assert!(ticket.take().is_none());
        }

        #[test]
        fn a_rejection_keeps_its_state_and_hint(ms in any::<u64>()) {
            let error = PackedRejection::new(State::Open, ms).error();
            prop_assert_eq!(error.state(), State::Open);
            prop_assert_eq!(error.retry_after(), Duration::from_millis(ms.min(PackedRejection::MAX_MS)));
        }
    }
}
