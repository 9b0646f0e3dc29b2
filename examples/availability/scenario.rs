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

/// The second scenario: the same load sent through a pool over three replicas of the backend.
/// Each has the backend's latency spikes; the first is down from [`OUTAGE_START`] to
/// [`OUTAGE_END`] (its health check fails too), the second fails [`ERROR_RATE`] of its calls
/// throughout (its health check passes: its process is up), the third is healthy.
pub(crate) const REPLICAS: [Faults; 3] = [
    Faults {
        name: "a",
        role: "down 5-10 s",
        error_rate: 0.0,
        outage: true,
    },
    Faults {
        name: "b",
        role: "20 % errors",
        error_rate: ERROR_RATE,
        outage: false,
    },
    Faults {
        name: "c",
        role: "healthy",
        error_rate: 0.0,
        outage: false,
    },
];

/// The index in [`REPLICAS`] of the replica that goes down.
pub(crate) const DOWN: usize = 0;

/// What one backend (or replica) does wrong, besides the latency spikes every one has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Faults {
    /// Its name: the pool's key, the metrics' label.
    pub(crate) name: &'static str,
    /// What it does, in words, for the tables.
    pub(crate) role: &'static str,
    /// The fraction of calls it fails with a 503.
    pub(crate) error_rate: f64,
    /// Whether it is down from [`OUTAGE_START`] to [`OUTAGE_END`].
    pub(crate) outage: bool,
}

/// The single backend of the first scenario.
pub(crate) const BACKEND: Faults = Faults {
    name: "backend",
    role: "20 % errors, down 5-10 s",
    error_rate: ERROR_RATE,
    outage: true,
};

/// How often the pool probes each replica's `GET /health` ...
pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_millis(250);
/// ... and how long a probe may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
