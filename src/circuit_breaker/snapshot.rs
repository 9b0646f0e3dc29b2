use std::time::Duration;

use super::State;
use super::telemetry::Availability;
use super::window::Totals;

/// The breaker's state and the counts behind it, read at one moment; from
/// [`CircuitBreakerLayer::snapshot`](super::CircuitBreakerLayer::snapshot).
///
/// Closed: the counts of the sliding window. Half-open: the counts of the probes that finished.
/// Open, forced open, disabled: no counts.
///
/// It also carries the downstream's observed availability since the breaker was built:
/// [`mtbf`](Self::mtbf), [`mttr`](Self::mttr) and [`availability`](Self::availability). Closed
/// and disabled count as up; open, half-open and forced open as down. An *up period* runs from
/// entering closed (or disabled) to the next opening; a *down period* from that opening to the
/// next closing, half-opens and re-opens included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    state: State,
    totals: Totals,
    not_permitted: u64,
    probes_in_flight: u32,
    availability: Availability,
}

impl Snapshot {
    pub(crate) fn new(
        state: State,
        totals: Totals,
        not_permitted: u64,
        probes_in_flight: u32,
        availability: Availability,
    ) -> Self {
        Self {
            state,
            totals,
            not_permitted,
            probes_in_flight,
            availability,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Outcomes counted (successes and failures; ignored results are not counted), saturating at
    /// `u32::MAX` (a long, busy time window can hold more).
    pub fn calls(&self) -> u32 {
        saturate(self.totals.calls)
    }

    /// Of [`calls`](Self::calls), the failures (saturating at `u32::MAX`).
    pub fn failed_calls(&self) -> u32 {
        saturate(self.totals.failures)
    }

    /// Of [`calls`](Self::calls), the slow ones, failed or not (saturating at `u32::MAX`).
    pub fn slow_calls(&self) -> u32 {
        saturate(self.totals.slow)
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

    /// Mean time between failures: the mean length of the up periods that have ended (from
    /// closing, or from the build, to the next opening). `None` until the breaker has opened
    /// once. The up period in progress is not counted: it has not ended in a failure.
    pub fn mtbf(&self) -> Option<Duration> {
        self.availability.mtbf
    }

    /// Mean time to recovery: the mean length of the down periods that have ended (from opening
    /// to the next closing; half-opens and re-opens in between are part of it). `None` until the
    /// breaker has closed after an opening. The down period in progress is not counted.
    pub fn mttr(&self) -> Option<Duration> {
        self.availability.mttr
    }

    /// The share of time the downstream was up since the breaker was built, in [0, 1]: total up
    /// time / (total up time + total down time), the period in progress counted up to now.
    /// At each closing of a breaker built closed this is exactly `MTBF / (MTBF + MTTR)`, the
    /// operators' formula; during an outage it falls as the outage goes on. `None` only before
    /// any time has passed since the breaker was built.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::circuit_breaker::CircuitBreakerLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let breaker = CircuitBreakerLayer::builder().build()?;
    /// tokio::time::advance(Duration::from_secs(90)).await;
    /// breaker.force_open(); // up for 90 s
    /// tokio::time::advance(Duration::from_secs(10)).await;
    /// breaker.reset(); // down for 10 s
    ///
    /// let snapshot = breaker.snapshot();
    /// assert_eq!(snapshot.mtbf(), Some(Duration::from_secs(90)));
    /// assert_eq!(snapshot.mttr(), Some(Duration::from_secs(10)));
    /// assert_eq!(snapshot.availability(), Some(0.9));
    /// # Ok(())
    /// # }
    /// ```
    pub fn availability(&self) -> Option<f64> {
        self.availability.availability
    }
}

/// The rates are computed from the exact 64-bit totals, so a saturated count never skews them.
fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn saturate(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
