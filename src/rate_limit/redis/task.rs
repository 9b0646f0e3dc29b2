//! The refill tasks: lease cells from Redis before a lease runs out, size each batch to the
//! local demand, heartbeat, and switch to and from the degraded mode. One task per layer: it
//! waits for a wake-up (whole-service) or for queued leases (keyed).

use std::future::poll_fn;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tower_service::Service;

use super::config::{RedisBackend, WhenDown};
use super::lease::{Lease, Mode};
use super::script::{Ask, Grant};
use super::telemetry::GlobalTelemetry;
use crate::BoxError;
use crate::random::{SplitMix64, random_seed, up_to};

/// The shortest pause between two calls to Redis that granted nothing or failed, so that a
/// saturated or dead Redis is not asked in a loop (the breaker takes over after a few).
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// What every refill shares with the call path: the mode and the reporting.
#[derive(Debug)]
pub(crate) struct RefillState {
    pub(crate) mode: Mode,
    pub(crate) telemetry: GlobalTelemetry,
    pub(crate) when_down: WhenDown,
}

/// How batches are sized.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizing {
    /// The global limit's emission interval, ns: the spread of a saturated replica's retry.
    pub(crate) interval: u64,
    pub(crate) max_batch: u64,
    pub(crate) horizon: Duration,
    pub(crate) heartbeat: Duration,
}

impl Sizing {
    pub(crate) fn new(backend: &RedisBackend, interval: u64) -> Self {
        Self {
            interval,
            max_batch: u64::from(backend.max_batch),
            horizon: backend.lease_horizon,
            heartbeat: backend.heartbeat,
        }
    }

    /// The batch for a local demand of `per_sec` calls a second: what lasts one horizon,
    /// between 1 and `max_batch`.
    pub(crate) fn target(&self, per_sec: f64) -> u64 {
        let cells = (per_sec * self.horizon.as_secs_f64()).ceil();
        // `as` saturates a float; NaN (never, but) becomes 0 and then 1.
        (cells as u64).clamp(1, self.max_batch)
    }
}

/// The demand of one lease as the refill task measures it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    /// Cells granted in total, to tell how many were spent: granted − held.
    granted: u64,
    /// Calls seen (spent cells and missed calls) at the last measure.
    demand: u64,
    measured_at: Instant,
    /// Calls a second, a moving average.
    rate: f64,
}

impl Meter {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            granted: 0,
            demand: 0,
            measured_at: now,
            rate: 0.0,
        }
    }

    /// Measures the demand since the last ask; returns the target batch and what to ask for.
    fn ask(&mut self, lease: &Lease, sizing: Sizing, now: Instant) -> (u64, u64) {
        let held = lease.cells();
        let demand = self.granted.saturating_sub(held) + lease.missed_total();
        let elapsed = now
            .saturating_duration_since(self.measured_at)
            .as_secs_f64();
        if elapsed > 0.0 {
            let sample = demand.saturating_sub(self.demand) as f64 / elapsed;
            // A burst raises the batch, a lull lowers it over a few rounds.
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.5 * self.rate + 0.5 * sample
            };
        }
        self.demand = demand;
        self.measured_at = now;
        let target = sizing.target(self.rate);
        (target, target.saturating_sub(held))
    }
}

/// Asks Redis for `want` cells for `lease` and applies the answer. Returns when to ask again
/// if Redis could not fill the lease (saturated, or failed), `None` if it did.
async fn refill<S>(
    redis: &mut S,
    shared: &RefillState,
    lease: &Lease,
    meter: &mut Meter,
    key: Option<Arc<str>>,
    sizing: Sizing,
    random: &mut SplitMix64,
) -> Option<Duration>
where
    S: Service<Ask, Response = Grant, Error = BoxError>,
{
    let (target, want) = meter.ask(lease, sizing, Instant::now());
    match call(redis, Ask { cells: want, key }).await {
        Ok(grant) => {
            // Never above max_batch − held: only this task adds cells to this lease.
            let cells = grant.cells.min(want);
            // The mark first: a call that spends the new cells down to it must see it.
            lease.set_low_water(target / 2);
            lease.set_retry_hint(grant.wait_ns);
            // Reported before the cells can be spent, so the counters never lag the calls.
            answered(shared, grant, cells);
            lease.grant(cells);
            meter.granted += cells;
            (cells < want).then(|| {
                // Saturated: every replica would ask again the moment the next cell is due,
                // and the first to arrive would win every time. A random delay of up to one
                // interval per replica makes each equally likely to be first: a fair share.
                let spread = sizing
                    .interval
                    .saturating_mul(u64::from(shared.mode.processes()));
                let jitter = up_to(random.next_u64(), spread);
                Duration::from_nanos(grant.wait_ns.saturating_add(jitter)).max(MIN_PAUSE)
            })
        }
        Err(error) => Some(failed(shared, &error)),
    }
}

async fn call<S>(redis: &mut S, ask: Ask) -> Result<Grant, BoxError>
where
    S: Service<Ask, Response = Grant, Error = BoxError>,
{
    poll_fn(|cx| redis.poll_ready(cx)).await?;
    redis.call(ask).await
}

fn answered(shared: &RefillState, grant: Grant, cells: u64) {
    shared.mode.set_processes(grant.processes);
    shared.telemetry.leased(cells);
    if shared.mode.set_degraded(false) {
        shared.telemetry.recovered(grant.processes);
    }
}

/// Enters the degraded mode (reported once); returns when to try again.
fn failed(shared: &RefillState, error: &BoxError) -> Duration {
    shared.telemetry.failed(error);
    if !shared.mode.set_degraded(true) {
        shared.telemetry.degraded(
            shared.when_down == WhenDown::Reject,
            shared.mode.processes(),
            error,
        );
    }
    // An open breaker says when it lets a probe through; otherwise try again soon.
    error
        .downcast_ref::<crate::circuit_breaker::CircuitOpen>()
        .map_or(Duration::from_millis(10), |open| open.retry_after())
        .max(MIN_PAUSE)
}

/// The whole-service task: refills its one lease when a call leaves it at the low-water mark,
/// when Redis has a cell again, or at least every heartbeat. Runs until aborted.
pub(crate) async fn run<S>(
    shared: Arc<RefillState>,
    lease: Arc<Lease>,
    wake: Arc<Notify>,
    sizing: Sizing,
    mut redis: S,
) where
    S: Service<Ask, Response = Grant, Error = BoxError>,
{
    let mut meter = Meter::new(Instant::now());
    let mut random = SplitMix64::new(random_seed(Arc::as_ptr(&lease) as usize));
    loop {
        match refill(
            &mut redis,
            &shared,
            &lease,
            &mut meter,
            None,
            sizing,
            &mut random,
        )
        .await
        {
            Some(pause) => tokio::time::sleep(pause.min(sizing.heartbeat)).await,
            None => {
                let _ = tokio::time::timeout(sizing.heartbeat, wake.notified()).await;
            }
        }
    }
}

/// One key's lease as the keyed task sees it: its Redis key and its meter.
#[derive(Debug)]
pub(crate) struct KeyedLease {
    pub(crate) lease: Lease,
    /// Set by the call that made the lease, right after inserting it (the map takes the key
    /// by value, and cloning it on every call could allocate); queued for refill only once set.
    pub(crate) redis_key: OnceLock<Arc<str>>,
    /// Only the refill task touches it, one refill of a key at a time (by `requested`); a
    /// mutex only because the lease is shared with the call path.
    pub(crate) meter: Mutex<Meter>,
}

impl crate::keyed::Evict for KeyedLease {
    fn is_busy(&self, now: Instant) -> bool {
        self.lease.is_busy(now)
    }
}

/// The keyed task: refills the leases that calls queue (each at most once at a time), asks
/// again after Redis's wait for a key it could not fill, and heartbeats. Runs until aborted.
pub(crate) async fn run_keyed<S>(
    shared: Arc<RefillState>,
    mut queue: mpsc::UnboundedReceiver<Arc<KeyedLease>>,
    requeue: mpsc::WeakUnboundedSender<Arc<KeyedLease>>,
    sizing: Sizing,
    mut redis: S,
) where
    S: Service<Ask, Response = Grant, Error = BoxError>,
{
    let mut next_beat = Instant::now();
    let mut random = SplitMix64::new(random_seed(Arc::as_ptr(&shared) as usize));
    loop {
        let keyed = match tokio::time::timeout_at(next_beat, queue.recv()).await {
            Ok(Some(keyed)) => keyed,
            Ok(None) => return,
            Err(_) => {
                // Nothing to lease: tells Redis this process is alive, and learns the count.
                match call(
                    &mut redis,
                    Ask {
                        cells: 0,
                        key: None,
                    },
                )
                .await
                {
                    Ok(grant) => answered(&shared, grant, 0),
                    Err(error) => {
                        failed(&shared, &error);
                    }
                }
                next_beat = Instant::now() + sizing.heartbeat;
                continue;
            }
        };
        // Copied out and back: no lock is held across the round trip.
        let mut meter = *keyed.meter.lock().unwrap_or_else(PoisonError::into_inner);
        // Always set: a lease is queued only after its key is.
        let key = keyed.redis_key.get().cloned();
        let pause = refill(
            &mut redis,
            &shared,
            &keyed.lease,
            &mut meter,
            key,
            sizing,
            &mut random,
        )
        .await;
        *keyed.meter.lock().unwrap_or_else(PoisonError::into_inner) = meter;
        match (pause, requeue.upgrade()) {
            // Not filled: ask again when Redis has a cell (still marked requested, so calls
            // do not queue it meanwhile).
            (Some(pause), Some(sender)) => {
                tokio::spawn(async move {
                    tokio::time::sleep(pause.min(sizing.heartbeat)).await;
                    let _ = sender.send(keyed);
                });
            }
            _ => keyed.lease.refilled(),
        }
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lasts_one_horizon_within_bounds() {
        let sizing = Sizing {
            interval: 1,
            max_batch: 50,
            horizon: Duration::from_millis(100),
            heartbeat: Duration::from_secs(1),
        };
        assert_eq!(sizing.target(0.0), 1);
        assert_eq!(sizing.target(f64::NAN), 1);
        assert_eq!(sizing.target(95.0), 10);
        assert_eq!(sizing.target(1e9), 50);
    }
}
