//! What the endpoints of one pool share ([`Core`]: the ejection rules, the counts, the routing
//! version) and one endpoint's shared state ([`Member`]).

use std::borrow::Cow;
use std::fmt;

use tokio::time::Instant;

use super::EndpointState;
use super::endpoint::EndpointSnapshot;
use super::live::{Live, Settings};
use super::load::Entry;
use super::state::{
    EjectedCount, KIND_EJECTED, KIND_HEALTHY, KIND_UNHEALTHY, MAX_UNTIL_MS, Moved, OnFailure,
    StateWord, Word,
};
use crate::circuit_breaker::window::{CountWindow, Sample, WindowUpdate};
use crate::classify::Outcome;
use std::sync::Arc;

use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The pool-wide part of the state: configuration, the counts the ejection cap and the gauges
/// need, and the routing version.
pub(crate) struct Core {
    pub(crate) name: Cow<'static, str>,
    /// The settings that a reload changes in place (see [`live`](super::live)).
    pub(crate) live: Live,
    /// Held by `reconfigure`, which stores the live settings one by one.
    #[cfg(feature = "serde")]
    pub(crate) reloads: crate::config::Reloads,
    /// Failure-rate ejection: the size of each endpoint's window in calls, `None` when off.
    /// Fixed when built: the endpoints' windows are sized by it (a reload refuses a change).
    pub(crate) failure_rate_calls: Option<u32>,
    /// Time zero of the ejection ends in the state words.
    epoch: Instant,
    /// Bumped (under the membership lock, by the winner of a health transition, or by a
    /// reload after it stored the new settings) whenever
    /// what routing depends on changes; each pool clone recomputes its routing when it moves.
    pub(crate) version: AtomicU64,
    pub(crate) ejected: EjectedCount,
    pub(crate) unhealthy: AtomicU32,
    /// Endpoints in the set (written under the membership lock).
    pub(crate) total: AtomicU32,
    /// The earliest end of an ejection in progress, in ms since `epoch` (`u64::MAX`: none
    /// known). Read only while some endpoint is ejected; see [`Core::return_due`].
    next_return_ms: AtomicU64,
    /// Whether the last routing computed was panic routing, so that its start and end are
    /// reported once.
    panicking: AtomicBool,
    next_id: AtomicU64,
    /// Stripes per endpoint (see [`load`](super::load)), decided once for the machine.
    pub(crate) stripes: usize,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: super::telemetry::Metrics,
}

impl Core {
    pub(crate) fn new(name: Cow<'static, str>, settings: &Settings) -> Self {
        #[cfg(feature = "metrics")]
        let metrics = super::telemetry::Metrics::new(&name);
        Self {
            live: Live::new(settings),
            #[cfg(feature = "serde")]
            reloads: crate::config::Reloads::default(),
            failure_rate_calls: settings.failure_rate.map(|(_, calls)| calls),
            epoch: Instant::now(),
            version: AtomicU64::new(0),
            ejected: EjectedCount::new(),
            unhealthy: AtomicU32::new(0),
            total: AtomicU32::new(0),
            next_return_ms: AtomicU64::new(u64::MAX),
            panicking: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            stripes: super::load::stripes_for_this_machine(),
            #[cfg(feature = "metrics")]
            metrics,
            name,
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds since the epoch, rounded down: an ejection is over once this reaches its end.
    pub(crate) fn now_ms(&self) -> u64 {
        crate::clock::millis(Instant::now().saturating_duration_since(self.epoch))
    }

    /// Milliseconds since the epoch, rounded up: an ejection never ends early.
    fn now_ms_ceil(&self) -> u64 {
        crate::clock::millis_ceil(Instant::now().saturating_duration_since(self.epoch))
    }

    /// The length of the `n`-th ejection: `n × base_ejection_time`, at most `max_ejection_time`.
    pub(crate) fn ejection_ms(&self, n: u32) -> u64 {
        self.live
            .base_ejection_ms()
            .saturating_mul(u64::from(n))
            .min(self.live.max_ejection_ms())
    }

    /// At most `max(1, ⌊fraction × endpoints⌋)` endpoints ejected at once.
    pub(crate) fn ejection_cap(&self) -> u32 {
        let total = f64::from(self.total.load(Ordering::Acquire));
        ((self.live.max_ejected_fraction() * total).floor() as u32).max(1)
    }

    pub(crate) fn bump_version(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Ends every ejection in `members` that is due. Returns whether any ended (and the version
    /// moved). Cheap unless an ejection is due: one load of the count, and one clock read and
    /// one load while some endpoint is ejected.
    ///
    /// `next_return_ms` is reset before the scan and lowered again by every ejection the scan
    /// finds still running, while an ejection lowers it after its own compare-and-swap: an
    /// ejection is either seen by the scan or lowers the mark after the reset, so no end is
    /// forgotten. (`SeqCst`, so the reset and the scan's loads are not reordered.)
    #[inline]
    pub(crate) fn return_due<K, S>(&self, members: &[Arc<Entry<K, S>>]) -> bool
    where
        K: fmt::Debug,
    {
        if self.ejected.get() == 0 {
            return false;
        }
        let now_ms = self.now_ms();
        if now_ms < self.next_return_ms.load(Ordering::SeqCst) {
            return false;
        }
        self.return_due_slow(members, now_ms)
    }

    #[cold]
    fn return_due_slow<K: fmt::Debug, S>(&self, members: &[Arc<Entry<K, S>>], now_ms: u64) -> bool {
        self.next_return_ms.store(u64::MAX, Ordering::SeqCst);
        let mut returned = false;
        for member in members {
            match member.word.return_if_due(now_ms, &self.ejected) {
                Ok(_) => {
                    returned = true;
                    member.publish_state();
                    tracing::info!(
                        pool.name = %self.name,
                        pool.endpoint = ?member.key,
                        pool.ejections = member.word.load().ejections(),
                        "pool endpoint returned from ejection"
                    );
                }
                Err(word) if word.kind() == KIND_EJECTED => {
                    self.next_return_ms
                        .fetch_min(word.until_ms(), Ordering::SeqCst);
                }
                Err(_) => {}
            }
        }
        if returned {
            self.bump_version();
            self.publish_counts();
        }
        returned
    }

    /// Records the start or the end of panic routing, once per change.
    pub(crate) fn set_panicking(&self, panicking: bool, eligible: usize, total: usize) {
        if self.panicking.swap(panicking, Ordering::AcqRel) == panicking {
            return;
        }
        if panicking {
            tracing::warn!(
                pool.name = %self.name,
                pool.eligible = eligible,
                pool.endpoints = total,
                pool.panic_threshold = self.live.panic_threshold(),
                "pool panic routing: too few endpoints are eligible, calls go to all of them"
            );
        } else {
            tracing::info!(
                pool.name = %self.name,
                pool.eligible = eligible,
                pool.endpoints = total,
                "pool panic routing ended"
            );
        }
        #[cfg(feature = "metrics")]
        self.metrics
            .panic_routing
            .set(if panicking { 1.0 } else { 0.0 });
    }

    /// Sets the endpoint gauges from the counts.
    pub(crate) fn publish_counts(&self) {
        #[cfg(feature = "metrics")]
        {
            let total = f64::from(self.total.load(Ordering::Acquire));
            let ejected = f64::from(self.ejected.get());
            let unhealthy = f64::from(self.unhealthy.load(Ordering::Acquire));
            self.metrics.ejected.set(ejected);
            self.metrics.unhealthy.set(unhealthy);
            self.metrics
                .healthy
                .set((total - ejected - unhealthy).max(0.0));
        }
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("endpoints", &self.total.load(Ordering::Relaxed))
            .field("ejected", &self.ejected.get())
            .field("unhealthy", &self.unhealthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One endpoint's state: its service (cloned for each call) and its state word. Its load is
/// counted by the [`Entry`](super::load::Entry) that lists it.
pub(crate) struct Member<K, S> {
    pub(crate) key: K,
    pub(crate) service: S,
    pub(crate) tier: u32,
    /// Unique in the pool; its low 6 bits name it in a retry's set of tried endpoints.
    pub(crate) id: u64,
    pub(crate) word: StateWord,
    /// The last outcomes, with failure-rate ejection on: the breaker's count window, tagged
    /// with the endpoint's ejection count, so that it starts empty after each ejection.
    window: Option<CountWindow>,
    pub(crate) core: Arc<Core>,
    /// Its own gauges and counter, set on its state changes (never by a call).
    #[cfg(feature = "metrics")]
    metrics: super::telemetry::EndpointMetrics,
}

impl<K, S> Member<K, S> {
    pub(crate) fn new(key: K, service: S, tier: u32, core: Arc<Core>) -> Self
    where
        K: fmt::Debug,
    {
        Self {
            #[cfg(feature = "metrics")]
            metrics: super::telemetry::EndpointMetrics::new(&core.name, &key),
            key,
            service,
            tier,
            id: core.next_id(),
            word: StateWord::new(),
            window: core.failure_rate_calls.map(CountWindow::new),
            core,
        }
    }

    /// Whether routing may send calls here outside panic routing.
    #[inline]
    pub(crate) fn is_eligible(&self) -> bool {
        self.word.load().kind() == KIND_HEALTHY
    }

    /// What [`Pool::endpoints`](super::Pool::endpoints) reports, with the calls in flight the
    /// endpoint's entry counted; `None` once removed. Sets the endpoint's in-flight gauge: the
    /// one metric read lazily rather than on a state change.
    pub(crate) fn snapshot(&self, in_flight: u32) -> Option<EndpointSnapshot<K>>
    where
        K: Clone,
    {
        let word = self.word.load();
        let state = state_of(word)?;
        #[cfg(feature = "metrics")]
        self.metrics.set_in_flight(in_flight);
        Some(EndpointSnapshot {
            key: self.key.clone(),
            tier: self.tier,
            state,
            in_flight: in_flight as usize,
            ejections: word.ejections(),
        })
    }
}

impl<K: fmt::Debug, S> Member<K, S> {
    /// Counts the outcome of a call sent at epoch `sent`.
    #[inline]
    pub(crate) fn record(&self, outcome: Outcome, sent: u32) {
        match outcome {
            Outcome::Success => self.word.on_success(sent),
            Outcome::Failure => self.record_failure(sent),
            Outcome::Ignored => return,
        }
        if let Some(window) = &self.window {
            self.record_rate(window, outcome == Outcome::Failure, sent);
        }
    }

    /// Sets the endpoint's state gauges from its word, after a transition this thread made.
    /// (Two transitions reported at once may set them out of order; the next sets them right,
    /// as for the pool-wide counts.)
    pub(crate) fn publish_state(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.set_state(state_of(self.word.load()));
    }

    /// When the `n`-th ejection that starts now ends.
    fn ejection_end(&self, n: u32) -> u64 {
        let core = &*self.core;
        core.now_ms_ceil()
            .saturating_add(core.ejection_ms(n))
            .min(MAX_UNTIL_MS)
    }

    #[cold]
    fn record_failure(&self, sent: u32) {
        let core = &*self.core;
        let outcome = self.word.on_failure(
            sent,
            core.live.consecutive_failures(),
            &core.ejected,
            || core.ejection_cap(),
            |n| self.ejection_end(n),
        );
        if let OnFailure::Ejected(word) = outcome {
            self.ejected(word, "consecutive_failures");
        }
    }

    /// Counts the outcome in the failure-rate window, and ejects the endpoint when the window is
    /// full and at least the threshold of it failed.
    #[inline]
    fn record_rate(&self, window: &CountWindow, failure: bool, sent: u32) {
        // The window's generation is the ejection count (10 bits): it never wraps.
        let generation = sent as u16;
        if !failure && window.absorbs_success(generation) {
            return;
        }
        let WindowUpdate::Counted(totals) = window.record(
            generation,
            Sample {
                failure,
                slow: false,
            },
        ) else {
            return;
        };
        let Some(size) = self.core.failure_rate_calls else {
            return;
        };
        let threshold = self.core.live.failure_rate_threshold();
        if totals.calls < u64::from(size)
            || (totals.failures as f64) < threshold * totals.calls as f64
        {
            return;
        }
        let core = &*self.core;
        if let Some(word) = self
            .word
            .eject(sent, &core.ejected, core.ejection_cap(), |n| {
                self.ejection_end(n)
            })
        {
            self.ejected(word, "failure_rate");
        }
    }

    /// Reports an ejection this thread made.
    fn ejected(&self, word: Word, cause: &'static str) {
        let core = &*self.core;
        core.next_return_ms
            .fetch_min(word.until_ms(), Ordering::SeqCst);
        tracing::warn!(
            pool.name = %core.name,
            pool.endpoint = ?self.key,
            pool.ejections = word.ejections(),
            pool.ejection_ms = core.ejection_ms(word.ejections()),
            pool.cause = cause,
            "pool endpoint ejected"
        );
        #[cfg(feature = "metrics")]
        {
            core.metrics.ejections.increment(1);
            self.metrics.ejections.increment(1);
        }
        self.publish_state();
        core.bump_version();
        core.publish_counts();
    }

    /// Applies a health check's verdict. Returns whether the state changed.
    pub(crate) fn set_unhealthy(&self, unhealthy: bool) -> bool {
        let core = &*self.core;
        let Ok(Moved { from, .. }) = self.word.set_unhealthy(unhealthy, &core.ejected) else {
            return false;
        };
        if unhealthy {
            core.unhealthy.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                pool.name = %core.name,
                pool.endpoint = ?self.key,
                pool.was_ejected = from.kind() == KIND_EJECTED,
                "pool endpoint unhealthy: its health check failed"
            );
        } else {
            core.unhealthy.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(
                pool.name = %core.name,
                pool.endpoint = ?self.key,
                "pool endpoint healthy again: its health check passed"
            );
        }
        self.publish_state();
        core.bump_version();
        core.publish_counts();
        true
    }

    /// Marks the endpoint removed (under the membership lock). Its calls in flight finish.
    pub(crate) fn remove(&self) {
        let core = &*self.core;
        if let Ok(Moved { from, .. }) = self.word.remove(&core.ejected) {
            if from.kind() == KIND_UNHEALTHY {
                core.unhealthy.fetch_sub(1, Ordering::AcqRel);
            }
            self.publish_state();
        }
    }

    /// The current word, for tests and debug output.
    #[allow(dead_code)]
    pub(crate) fn word(&self) -> Word {
        self.word.load()
    }
}

/// The public state of a word; `None` for a removed endpoint.
fn state_of(word: Word) -> Option<EndpointState> {
    match word.kind() {
        KIND_HEALTHY => Some(EndpointState::Healthy),
        KIND_EJECTED => Some(EndpointState::Ejected),
        KIND_UNHEALTHY => Some(EndpointState::Unhealthy),
        _ => None,
    }
}

impl<K: fmt::Debug, S> fmt::Debug for Member<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("key", &self.key)
            .field("tier", &self.tier)
            .field("word", &self.word)
            .finish_non_exhaustive()
    }
}
