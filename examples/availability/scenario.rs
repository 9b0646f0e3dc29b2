//! The scenario, in one place: what the backend does and when, and the load the clients send.

use std::time::Duration;

/// Seeds every random decision: the chaos layer's faults and delays, retry's jitter, the
/// breaker's.
pub(crate) const SEED: u64 = 2026;

/// The fraction of calls the backend fails with a 503 outside the outage.
pub(crate) const ERROR_RATE: f64 = 0.2;
/// The fraction of the other calls that are slowed down by [`LATENCY`]: latency spikes.
pub(crate) const LATENCY_RATE: f64 = 0.05;
/// How long a latency spike holds a call.
pub(crate) const LATENCY: Duration = Duration::from_millis(400);

/// The backend answers only 503s from here ...
pub(crate) const OUTAGE_START: Duration = Duration::from_secs(5);
/// ... to here.
pub(crate) const OUTAGE_END: Duration = Duration::from_secs(10);
/// The last request is sent before this.
pub(crate) const RUN_FOR: Duration = Duration::from_secs(20);

/// Each client sends one request this often (200 requests per second) ...
pub(crate) const EVERY: Duration = Duration::from_millis(5);
/// ... with at most this many in flight; past it, the client waits before sending more.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// The width of a time bucket in the plot and in the per-phase figures.
pub(crate) const BUCKET: Duration = Duration::from_millis(500);
/// The width of the buckets that time the recovery.
pub(crate) const RECOVERY_BUCKET: Duration = Duration::from_millis(250);
