use super::State;
use super::window::Totals;

/// The breaker's state and the counts behind it, read at one moment; from
/// [`CircuitBreakerLayer::snapshot`](super::CircuitBreakerLayer::snapshot).
///
/// Closed: the counts of the sliding window. Half-open: the counts of the probes that finished.
/// Open, forced open, disabled: no counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    state: State,
    totals: Totals,
    not_permitted: u64,
    probes_in_flight: u32,
}

impl Snapshot {
    pub(crate) fn new(
        state: State,
        totals: Totals,
        not_permitted: u64,
        probes_in_flight: u32,
    ) -> Self {
        Self {
            state,
            totals,
            not_permitted,
            probes_in_flight,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Outcomes counted (successes and failures; ignored results are not counted).
    pub fn calls(&self) -> u32 {
        self.totals.calls
    }

    /// Of [`calls`](Self::calls), the failures.
    pub fn failed_calls(&self) -> u32 {
        self.totals.failures
    }

    /// Of [`calls`](Self::calls), the slow ones (failed or not).
    pub fn slow_calls(&self) -> u32 {
        self.totals.slow
    }

    /// `failed_calls / calls`, or 0 with no calls.
    pub fn failure_rate(&self) -> f64 {
        rate(self.totals.failures, self.totals.calls)
    }

    /// `slow_calls / calls`, or 0 with no calls.
    pub fn slow_call_rate(&self) -> f64 {
        rate(self.totals.slow, self.totals.calls)
    }

    /// Calls rejected since the breaker was built (in shadow mode: calls that would have been).
    pub fn not_permitted_calls(&self) -> u64 {
        self.not_permitted
    }

    /// Half-open: probes admitted that have not finished.
    pub fn probes_in_flight(&self) -> u32 {
        self.probes_in_flight
    }
}

fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}
