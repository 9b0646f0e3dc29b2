//! What the breaker reports: the transition listener, `tracing` events, the downstream's
//! observed availability (MTBF, MTTR) and, with the `metrics` feature, metric handles registered
//! once when the breaker is built.

// std's `Arc` for the name and the listener (immutable, and loom's `Arc` cannot hold a `dyn`).
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::State;
use crate::classify::Outcome;
use crate::sync::{Mutex, MutexGuard};

/// A change of the breaker's state, as given to
/// [`on_transition`](super::Builder::on_transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: State,
    to: State,
}

impl Transition {
    pub(crate) fn new(from: State, to: State) -> Self {
        Self { from, to }
    }

    /// The state the breaker left.
    pub fn from(&self) -> State {
        self.from
    }

    /// The state the breaker entered.
    pub fn to(&self) -> State {
        self.to
    }
}

pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// How a finished call is counted in `steadfast_circuit_breaker_calls_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Success,
    Failure,
    SlowSuccess,
    SlowFailure,
    Ignored,
}

impl CallKind {
    pub(crate) fn of(outcome: Outcome, slow: bool) -> Self {
        match (outcome, slow) {
            (Outcome::Ignored, _) => Self::Ignored,
            (Outcome::Success, false) => Self::Success,
            (Outcome::Success, true) => Self::SlowSuccess,
            (Outcome::Failure, false) => Self::Failure,
            (Outcome::Failure, true) => Self::SlowFailure,
        }
    }

    #[cfg(feature = "metrics")]
    const ALL: [(Self, &'static str); 5] = [
        (Self::Success, "success"),
        (Self::Failure, "failure"),
        (Self::SlowSuccess, "slow_success"),
        (Self::SlowFailure, "slow_failure"),
        (Self::Ignored, "ignored"),
    ];
}

/// The label value of a state in metrics and events.
pub(crate) fn state_label(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::Open => "open",
        State::HalfOpen => "half_open",
        State::ForcedOpen => "forced_open",
        State::Disabled => "disabled",
    }
}

/// The value of the `steadfast_circuit_breaker_state` gauge.
#[cfg(feature = "metrics")]
fn state_value(state: State) -> f64 {
    state_index(state) as f64
}

/// Whether a state counts as the downstream being up (closed, disabled) or down (open, half-open,
/// forced open) for MTBF, MTTR and availability.
fn is_up(state: State) -> bool {
    matches!(state, State::Closed | State::Disabled)
}

/// What the breakers of one keyed layer report together in place of one breaker's gauges: how
/// many keys are in each state, as `steadfast_circuit_breaker_keys{name, state}`.
///
/// One state gauge (or MTBF, MTTR and availability gauge) per name cannot describe many
/// breakers: each key would overwrite what the last one set. The counts move by one on every
/// transition of any key, by one when a key's breaker is made and by one when it is dropped
/// (evicted), so they add up to the keys that have a breaker. Each key's own state and figures
/// are read from the layer (`state(&key)`, `snapshots()`).
pub(crate) struct KeyCounts {
    #[cfg(feature = "metrics")]
    by_state: [metrics::Gauge; 5],
}

impl std::fmt::Debug for KeyCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCounts").finish_non_exhaustive()
    }
}

impl KeyCounts {
    /// Registers the counts of the keyed layer `name` (with the recorder installed now), at 0.
    /// (Keyed layers are not built under loom.)
    #[cfg(not(steadfast_loom))]
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            describe();
            let by_state = STATES.map(|state| {
                let gauge = metrics::gauge!(
                    KEYS,
                    "name" => name.to_owned(),
                    "state" => state_label(state)
                );
                gauge.set(0.0);
                gauge
            });
            Self { by_state }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = name;
            Self {}
        }
    }

    fn entered(&self, state: State) {
        #[cfg(feature = "metrics")]
        self.by_state[state_index(state)].increment(1.0);
        #[cfg(not(feature = "metrics"))]
        let _ = state;
    }

    fn left(&self, state: State) {
        #[cfg(feature = "metrics")]
        self.by_state[state_index(state)].decrement(1.0);
        #[cfg(not(feature = "metrics"))]
        let _ = state;
    }
}

/// The metric name of a keyed layer's [`KeyCounts`].
#[cfg(feature = "metrics")]
const KEYS: &str = "steadfast_circuit_breaker_keys";

/// Every state, in the order of their values on the `steadfast_circuit_breaker_state` gauge.
#[cfg(all(feature = "metrics", not(steadfast_loom)))]
const STATES: [State; 5] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::ForcedOpen,
    State::Disabled,
];

/// A state's place in [`STATES`]: its value on the state gauge, and its gauge in [`KeyCounts`].
#[cfg(feature = "metrics")]
fn state_index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::ForcedOpen => 3,
        State::Disabled => 4,
    }
}

/// The downstream's observed availability, as operators compute it.
///
/// An *up period* runs from the moment the breaker enters an up state (closed, or disabled: a
/// disabled breaker does not call the downstream down) to the next opening (entering open or
/// forced open). A *down period* runs from that opening to the next entry into an up state;
/// half-opens and re-opens in between belong to it. MTBF and MTTR are the means of the periods
/// that have ended; availability is the share of up time in all the time observed since the
/// breaker was built, the period in progress counted up to now. At the moment a down period ends
/// with as many up periods ended as down ones (every closing of a breaker built closed), that
/// share is exactly `MTBF / (MTBF + MTTR)`; in between it is the same ratio over the total
/// times, so it falls while an outage is in progress instead of showing the last one's figure.
///
/// # Locking
///
/// One `Mutex`, taken only by the thread that made a transition (transitions are rare, and
/// already the slow path) and by [`Snapshot`](super::Snapshot) reads; never on the call path.
/// The time of a transition is read inside the lock, so periods are timed in the order their
/// reporters took the lock, and a race between two transitions can never make a period negative.
#[derive(Debug)]
pub(crate) struct Uptime {
    periods: Mutex<Periods>,
}

#[derive(Debug, Clone, Copy)]
struct Periods {
    /// Whether the period in progress is an up period.
    up: bool,
    /// When the period in progress began.
    since: Instant,
    /// Sum and count of the up periods that ended.
    up_total: Duration,
    up_count: u32,
    /// Sum and count of the down periods that ended.
    down_total: Duration,
    down_count: u32,
}

/// MTBF, MTTR and availability, read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Availability {
    pub(crate) mtbf: Option<Duration>,
    pub(crate) mttr: Option<Duration>,
    pub(crate) availability: Option<f64>,
}

fn mean(total: Duration, count: u32) -> Option<Duration> {
    (count > 0).then(|| total / count)
}

impl Periods {
    /// Moves to `to` at `now`, ending the period in progress if `to` is on the other side.
    fn enter(&mut self, to: State, now: Instant) {
        let up = is_up(to);
        if up == self.up {
            return; // half-open, a re-open, closed <-> disabled: the period goes on
        }
        let length = now.saturating_duration_since(self.since);
        if self.up {
            self.up_total = self.up_total.saturating_add(length);
            self.up_count = self.up_count.saturating_add(1);
        } else {
            self.down_total = self.down_total.saturating_add(length);
            self.down_count = self.down_count.saturating_add(1);
        }
        self.up = up;
        self.since = now;
    }

    fn read(&self, now: Instant) -> Availability {
        let current = now.saturating_duration_since(self.since);
        let (up, down) = if self.up {
            (self.up_total.saturating_add(current), self.down_total)
        } else {
            (self.up_total, self.down_total.saturating_add(current))
        };
        let observed = up.saturating_add(down);
        Availability {
            mtbf: mean(self.up_total, self.up_count),
            mttr: mean(self.down_total, self.down_count),
            availability: (!observed.is_zero()).then(|| up.as_secs_f64() / observed.as_secs_f64()),
        }
    }
}

impl Uptime {
    fn new(initial: State, start: Instant) -> Self {
        Self {
            periods: Mutex::new(Periods {
                up: is_up(initial),
                since: start,
                up_total: Duration::ZERO,
                up_count: 0,
                down_total: Duration::ZERO,
                down_count: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Periods> {
        // Nothing in the lock can panic, but a poisoned lock still holds consistent sums.
        self.periods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a transition into `to`, now; returns the figures after it.
    fn enter(&self, to: State) -> Availability {
        let mut periods = self.lock();
        let now = Instant::now();
        periods.enter(to, now);
        periods.read(now)
    }

    /// The figures now, the period in progress counted up to now.
    pub(crate) fn read(&self) -> Availability {
        let periods = self.lock();
        periods.read(Instant::now())
    }
}

/// The breaker's reporting: its name, its listener, its availability figures and its metric
/// handles.
pub(crate) struct Telemetry {
    name: Arc<str>,
    listener: Option<Listener>,
    uptime: Uptime,
    /// The counts of a keyed layer's breakers by state, which such a breaker reports instead of
    /// the state and availability gauges; `None` for a breaker of its own.
    keys: Option<Arc<KeyCounts>>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[cfg(feature = "metrics")]
struct Metrics {
    /// `None` for a keyed layer's breaker (see [`KeyCounts`]).
    state: Option<metrics::Gauge>,
    calls: [metrics::Counter; 5],
    not_permitted: metrics::Counter,
    /// The `name` label, for the metrics of transitions: `transitions_total` and the
    /// availability gauges change only when the state does (or a snapshot is read), so they are
    /// looked up then rather than kept as handles (23 of them, 368 bytes) in every breaker.
    label: metrics::SharedString,
}

/// The `# HELP` text and unit of every metric of the breaker, given to the recorder installed
/// when a breaker is built (so that a Prometheus scrape and a dashboard explain themselves).
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(
        "steadfast_circuit_breaker_state",
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled"
    );
    describe_counter!(
        "steadfast_circuit_breaker_calls_total",
        Unit::Count,
        "Permitted calls that finished, by outcome as the classifier and the slow-call timer judged them"
    );
    describe_counter!(
        "steadfast_circuit_breaker_not_permitted_total",
        Unit::Count,
        "Calls rejected with CircuitOpen (in shadow mode: let through but counted)"
    );
    describe_counter!(
        "steadfast_circuit_breaker_transitions_total",
        Unit::Count,
        "Circuit breaker state transitions, by from and to state"
    );
    describe_gauge!(
        "steadfast_circuit_breaker_mtbf_seconds",
        Unit::Seconds,
        "Mean time between failures: mean length of the ended up periods (0 until known)"
    );
    describe_gauge!(
        "steadfast_circuit_breaker_mttr_seconds",
        Unit::Seconds,
        "Mean time to recovery: mean length of the ended down periods (0 until known)"
    );
    describe_gauge!(
        KEYS,
        "Keys of a keyed circuit breaker layer that have a breaker, by the state of their breaker"
    );
    describe_gauge!(
        "steadfast_circuit_breaker_availability",
        "Share of time the downstream was up since the breaker was built, in [0, 1]"
    );
}

#[cfg(feature = "metrics")]
impl Metrics {
    /// Sets the availability gauges to `figures`; a figure without data leaves its gauge alone.
    fn availability(&self, figures: Availability) {
        let name = &self.label;
        if let Some(mtbf) = figures.mtbf {
            metrics::gauge!("steadfast_circuit_breaker_mtbf_seconds", "name" => name.clone())
                .set(mtbf.as_secs_f64());
        }
        if let Some(mttr) = figures.mttr {
            metrics::gauge!("steadfast_circuit_breaker_mttr_seconds", "name" => name.clone())
                .set(mttr.as_secs_f64());
        }
        if let Some(availability) = figures.availability {
            metrics::gauge!("steadfast_circuit_breaker_availability", "name" => name.clone())
                .set(availability);
        }
    }
}

impl Telemetry {
    /// The reporting of a breaker named `name`; of one key's breaker when `keys` holds its
    /// layer's counts.
    pub(crate) fn new(
        name: Arc<str>,
        listener: Option<Listener>,
        initial: State,
        start: Instant,
        keys: Option<Arc<KeyCounts>>,
    ) -> Self {
        #[cfg(feature = "metrics")]
        let metrics = {
            describe();
            let label = name.to_string();
            let state = match &keys {
                Some(_) => None,
                None => {
                    let state =
                        metrics::gauge!("steadfast_circuit_breaker_state", "name" => label.clone());
                    state.set(state_value(initial));
                    Some(state)
                }
            };
            Metrics {
                state,
                calls: CallKind::ALL.map(|(_, outcome)| {
                    metrics::counter!(
                        "steadfast_circuit_breaker_calls_total",
                        "name" => label.clone(),
                        "outcome" => outcome
                    )
                }),
                not_permitted: metrics::counter!(
                    "steadfast_circuit_breaker_not_permitted_total",
                    "name" => label.clone()
                ),
                label: metrics::SharedString::from(label),
            }
        };
        // No time observed yet: a breaker built up starts fully available, one built forced
        // open starts unavailable (the snapshot says `None` until time passes).
        // MTBF and MTTR read 0 until they are known.
        #[cfg(feature = "metrics")]
        if keys.is_none() {
            let name = &metrics.label;
            metrics::gauge!("steadfast_circuit_breaker_mtbf_seconds", "name" => name.clone())
                .set(0.0);
            metrics::gauge!("steadfast_circuit_breaker_mttr_seconds", "name" => name.clone())
                .set(0.0);
            metrics::gauge!("steadfast_circuit_breaker_availability", "name" => name.clone())
                .set(if is_up(initial) { 1.0 } else { 0.0 });
        }
        if let Some(keys) = &keys {
            keys.entered(initial);
        }
        Self {
            name,
            listener,
            uptime: Uptime::new(initial, start),
            keys,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// MTBF, MTTR and availability now; also refreshes their gauges, so that a scrape that reads
    /// a snapshot sees an outage in progress.
    pub(crate) fn availability(&self) -> Availability {
        let figures = self.uptime.read();
        #[cfg(feature = "metrics")]
        if self.keys.is_none() {
            self.metrics.availability(figures);
        }
        figures
    }

    #[inline]
    pub(crate) fn call(&self, kind: CallKind) {
        #[cfg(feature = "metrics")]
        self.metrics.calls[kind as usize].increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = kind;
    }

    #[inline]
    pub(crate) fn not_permitted(&self, state: State, retry_after_ms: u64, shadow: bool) {
        // The event is built out of line: with no subscriber at debug, a rejection pays one
        // level check, not the stack frame of an event it will not send.
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            self.rejected_event(state, retry_after_ms, shadow);
        }
        #[cfg(feature = "metrics")]
        self.metrics.not_permitted.increment(1);
    }

    #[cold]
    #[inline(never)]
    fn rejected_event(&self, state: State, retry_after_ms: u64, shadow: bool) {
        tracing::debug!(
            circuit_breaker.name = %self.name,
            circuit_breaker.state = state_label(state),
            circuit_breaker.retry_after_ms = retry_after_ms,
            circuit_breaker.shadow = shadow,
            "circuit breaker rejected a call"
        );
    }

    /// Reports that the breaker, now in `state`, is gone: a keyed layer evicted its key.
    pub(crate) fn retire(&self, state: State) {
        if let Some(keys) = &self.keys {
            keys.left(state);
        }
    }

    /// Reports a transition; called once, by the thread whose CAS made it.
    pub(crate) fn transition(&self, from: State, to: State) {
        if from == to {
            return;
        }
        let figures = self.uptime.enter(to);
        let (name, from_label, to_label) = (&*self.name, state_label(from), state_label(to));
        match to {
            State::Open | State::ForcedOpen => tracing::warn!(
                circuit_breaker.name = %name,
                circuit_breaker.from = from_label,
                circuit_breaker.to = to_label,
                "circuit breaker opened"
            ),
            State::Closed => tracing::info!(
                circuit_breaker.name = %name,
                circuit_breaker.from = from_label,
                circuit_breaker.to = to_label,
                "circuit breaker closed"
            ),
            State::HalfOpen | State::Disabled => tracing::info!(
                circuit_breaker.name = %name,
                circuit_breaker.from = from_label,
                circuit_breaker.to = to_label,
                "circuit breaker changed state"
            ),
        }
        if let Some(keys) = &self.keys {
            keys.left(from);
            keys.entered(to);
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(
                "steadfast_circuit_breaker_transitions_total",
                "name" => self.metrics.label.clone(),
                "from" => from_label,
                "to" => to_label
            )
            .increment(1);
            if let Some(state) = &self.metrics.state {
                state.set(state_value(to));
                self.metrics.availability(figures);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = figures;
        if let Some(listener) = &self.listener {
            listener(&Transition::new(from, to));
        }
    }
}
