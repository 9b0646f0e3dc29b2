//! What the breaker reports: the transition listener, `tracing` events and, with the `metrics`
//! feature, metric handles registered once when the breaker is built.

use std::sync::Arc;
use std::time::Duration;

use super::State;
use crate::classify::Outcome;

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
    match state {
        State::Closed => 0.0,
        State::Open => 1.0,
        State::HalfOpen => 2.0,
        State::ForcedOpen => 3.0,
        State::Disabled => 4.0,
    }
}

/// The breaker's reporting: its name, its listener and its metric handles.
pub(crate) struct Telemetry {
    name: Arc<str>,
    listener: Option<Listener>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[cfg(feature = "metrics")]
struct Metrics {
    state: metrics::Gauge,
    calls: [metrics::Counter; 5],
    not_permitted: metrics::Counter,
    /// The `name` label, for `transitions_total`: transitions are rare, so that counter is
    /// looked up when one happens rather than kept as 20 handles (320 bytes) per breaker.
    label: metrics::SharedString,
}

impl Telemetry {
    pub(crate) fn new(name: Arc<str>, listener: Option<Listener>, initial: State) -> Self {
        #[cfg(feature = "metrics")]
        let metrics = {
            let label = name.to_string();
            let state = metrics::gauge!("steadfast_circuit_breaker_state", "name" => label.clone());
            state.set(state_value(initial));
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
        #[cfg(not(feature = "metrics"))]
        let _ = initial;
        Self {
            name,
            listener,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub(crate) fn call(&self, kind: CallKind) {
        #[cfg(feature = "metrics")]
        self.metrics.calls[kind as usize].increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = kind;
    }

    pub(crate) fn not_permitted(&self, state: State, retry_after: Duration, shadow: bool) {
        tracing::debug!(
            circuit_breaker.name = %self.name,
            circuit_breaker.state = state_label(state),
            circuit_breaker.retry_after_ms = retry_after.as_millis() as u64,
            circuit_breaker.shadow = shadow,
            "circuit breaker rejected a call"
        );
        #[cfg(feature = "metrics")]
        self.metrics.not_permitted.increment(1);
    }

    /// Reports a transition; called once, by the thread whose CAS made it.
    pub(crate) fn transition(&self, from: State, to: State) {
        if from == to {
            return;
        }
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
        #[cfg(feature = "metrics")]
        {
            self.metrics.state.set(state_value(to));
            metrics::counter!(
                "steadfast_circuit_breaker_transitions_total",
                "name" => self.metrics.label.clone(),
                "from" => from_label,
                "to" => to_label
            )
            .increment(1);
        }
        if let Some(listener) = &self.listener {
            listener(&Transition::new(from, to));
        }
    }
}
