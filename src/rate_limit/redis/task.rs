//! The refill task: leases cells from Redis before the process runs out, sizes each batch to
//! the local rate, heartbeats, and switches to and from the degraded mode.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tower_service::Service;

use super::config::{RedisBackend, WhenDown};
use super::lease::Lease;
use super::script::{Ask, Grant};
use super::telemetry::GlobalTelemetry;
use crate::BoxError;

/// The shortest pause between two calls to Redis that granted nothing or failed, so that a
/// saturated or dead Redis is not asked in a loop (the breaker takes over after a few).
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// What the refill task shares with the call path.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) lease: Lease,
    /// Woken by the call that leaves the lease at its low-water mark.
    pub(crate) refill: Notify,
    pub(crate) telemetry: GlobalTelemetry,
}

/// How batches are sized.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizing {
    pub(crate) max_batch: u64,
    pub(crate) horizon: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) when_down: WhenDown,
}

impl Sizing {
    pub(crate) fn new(backend: &RedisBackend) -> Self {
        Self {
            max_batch: u64::from(backend.max_batch),
            horizon: backend.lease_horizon,
            heartbeat: backend.heartbeat,
            when_down: backend.when_down,
        }
    }

    /// The batch for a local rate of `per_sec` calls a second: what lasts one horizon,
    /// between 1 and `max_batch`.
    pub(crate) fn target(&self, per_sec: f64) -> u64 {
        let cells = (per_sec * self.horizon.as_secs_f64()).ceil();
        // `as` saturates a float; NaN (never, but) becomes 0 and then 1.
        (cells as u64).clamp(1, self.max_batch)
    }
}

/// Runs until aborted (when the last layer goes). `redis` is the script behind the steadfast
/// breaker and timeout.
pub(crate) async fn run<S>(shared: Arc<Shared>, sizing: Sizing, mut redis: S)
where
    S: Service<Ask, Response = Grant, Error = BoxError>,
{
    let lease = &shared.lease;
    // Cells granted in total, to tell how many were spent: granted − held.
    let mut granted_total: u64 = 0;
    // Calls seen (spent cells and missed calls) at the last measure.
    let mut demand_before: u64 = 0;
    let mut measured_at = Instant::now();
    let mut rate: f64 = 0.0;
    loop {
        let held = lease.cells();
        let now = Instant::now();
        let demand = granted_total.saturating_sub(held) + lease.missed_total();
        let elapsed = now.saturating_duration_since(measured_at).as_secs_f64();
        if elapsed > 0.0 {
            let sample = demand.saturating_sub(demand_before) as f64 / elapsed;
            // A moving average: a burst raises the batch, a lull lowers it over a few rounds.
            rate = if rate == 0.0 {
                sample
            } else {
                0.5 * rate + 0.5 * sample
            };
        }
        demand_before = demand;
        measured_at = now;

        let target = sizing.target(rate);
        let ask = Ask {
            cells: target.saturating_sub(held),
        };
        let answer = match poll_fn(|cx| redis.poll_ready(cx)).await {
            Ok(()) => redis.call(ask).await,
            Err(error) => Err(error),
        };
        let pause = match answer {
            Ok(grant) => {
                // Never above max_batch − held: only this task adds cells.
                let cells = grant.cells.min(ask.cells);
                // The mark first: a call that spends the new cells down to it must see it.
                lease.set_low_water(target / 2);
                lease.set_processes(grant.processes);
                lease.set_retry_hint(grant.wait_ns);
                lease.grant(cells);
                granted_total += cells;
                shared.telemetry.leased(cells);
                if lease.set_degraded(false) {
                    shared.telemetry.recovered(grant.processes);
                }
                if cells < ask.cells {
                    // Saturated: ask again when Redis has a cell.
                    Some(Duration::from_nanos(grant.wait_ns).max(MIN_PAUSE))
                } else {
                    None
                }
            }
            Err(error) => {
                shared.telemetry.failed(&error);
                if !lease.set_degraded(true) {
                    shared.telemetry.degraded(
                        sizing.when_down == WhenDown::Reject,
                        lease.processes(),
                        &error,
                    );
                }
                // An open breaker says when it lets a probe through; otherwise try again soon.
                let wait = error
                    .downcast_ref::<crate::circuit_breaker::CircuitOpen>()
                    .map_or(Duration::from_millis(10), |open| open.retry_after());
                Some(wait.max(MIN_PAUSE))
            }
        };
        // Wait for the low-water mark, the pause, or the heartbeat, whichever comes first.
        let sleep = pause.unwrap_or(sizing.heartbeat).min(sizing.heartbeat);
        if pause.is_some() {
            tokio::time::sleep(sleep).await;
        } else {
            let _ = tokio::time::timeout(sleep, shared.refill.notified()).await;
        }
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lasts_one_horizon_within_bounds() {
        let sizing = Sizing {
            max_batch: 50,
            horizon: Duration::from_millis(100),
            heartbeat: Duration::from_secs(1),
            when_down: WhenDown::LocalShare,
        };
        assert_eq!(sizing.target(0.0), 1);
        assert_eq!(sizing.target(f64::NAN), 1);
        assert_eq!(sizing.target(95.0), 10);
        assert_eq!(sizing.target(1e9), 50);
    }
}
