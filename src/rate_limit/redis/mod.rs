//! A rate limit shared by every replica, kept in Redis and spent locally through leases
//! (feature `redis`).
//!
//! A [`RateLimitLayer`](super::RateLimitLayer) limits one process. When the quota belongs to
//! the whole fleet (a partner API that allows 1 000 calls a second in total, whatever the
//! number of pods), build the same limiter with
//! [`build_global`](super::Builder::build_global) and a [`RedisBackend`]: every process whose
//! limiter has the same [`name`](super::Builder::name) (and key prefix) shares one limit.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use steadfast::rate_limit::RateLimitLayer;
//! use steadfast::rate_limit::redis::{RedisBackend, WhenDown};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let redis = redis::Client::open("redis://127.0.0.1:6379")?;
//! // 1 000 calls a second across every replica named "partner-api".
//! let limit = RateLimitLayer::builder()
//!     .name("partner-api")
//!     .limit(1_000, Duration::from_secs(1))
//!     .burst(50)
//!     .build_global(
//!         RedisBackend::new(redis)
//!             .timeout(Duration::from_millis(50))
//!             .when_down(WhenDown::LocalShare),
//!     )?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(limit.clone())
//!     .service(service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) }));
//! # drop(service);
//! # Ok(())
//! # }
//! ```
//!
//! # Leases
//!
//! The GCRA state (the theoretical arrival time) of the limit lives in Redis, moved by a Lua
//! script that runs atomically on the server, on the server's clock, and is called by its hash
//! (`EVALSHA`; reloaded when a restarted Redis forgot it). A call never goes to Redis: each
//! process asks for a *batch* of cells at once and spends them from one atomic word, one
//! compare-and-swap per call. A background task asks for the next batch when a call leaves the
//! batch at half its size, so a process at a steady rate does not run dry while Redis answers.
//! The batch is sized to last [`lease_horizon`](RedisBackend::lease_horizon) at the local
//! rate (a moving average), between 1 and [`max_batch`](RedisBackend::max_batch): an idle
//! replica holds one cell, a busy one enough for 100 ms; demand counts the calls that found no
//! cell too, so a replica that got less under saturation does not ask for less. When Redis
//! grants fewer cells than asked (the fleet is at its limit), the task asks again when Redis
//! says the next cell is due, plus a random delay of up to one interval per replica, so that
//! no replica is always first: under equal load each gets about an equal share.
//!
//! # The bound
//!
//! Redis grants at most `burst + w × n / per` cells in any window of `w` (GCRA), and a process
//! never holds more than `max_batch` cells at once. Each admitted call spends a cell granted
//! either within the window or before it (then held at its start), so **in any window the
//! fleet admits at most `burst + w × n / per + processes × max_batch` calls**: the global
//! limit plus one batch per process. A cell leased but not spent is not given back: a
//! process that goes idle holds at most one batch of them, which the rest of the fleet
//! cannot use (the limit errs on the side of fewer calls).
//!
//! The bound is Redis's, so it holds while Redis answers. While degraded, each process keeps
//! to its share, and the fleet admits about the limit if the count of processes is right; a
//! process cut off from a Redis that the others still reach (a partition) adds its share on
//! top, and a Redis restarted empty starts the limit afresh (one more burst).
//!
//! # When Redis is slow or down
//!
//! No call ever waits on Redis. Each call to Redis is bounded by
//! [`timeout`](RedisBackend::timeout) and goes through a steadfast
//! [`CircuitBreaker`](crate::circuit_breaker) (opens after 2 failures in the last 4 calls,
//! probes again after 250 ms), so a dead Redis is not hammered. When a call to Redis fails,
//! the limiter runs *degraded*: calls first spend the cells still held, then
//!
//! - [`WhenDown::LocalShare`] (the default): each process admits its share of the limit, the
//!   global rate and burst divided by the number of processes Redis last reported (each
//!   process heartbeats into a sorted set whose members expire after three missed
//!   [`heartbeat`](RedisBackend::heartbeat)s, and the key itself expires too);
//! - [`WhenDown::Reject`]: every call beyond the cells held is rejected.
//!
//! The first answer from Redis ends the degraded mode. Before Redis first answers (for at most
//! the timeout, or until the connection fails), calls are rejected: a fleet starting at once
//! does not burst past the limit.
//!
//! # Keys in Redis
//!
//! `{prefix}:{{name}}:tat` (the GCRA state, expiring once the limit is idle again) and
//! `{prefix}:{{name}}:members` (the heartbeats). The braces are a Redis Cluster hash tag.
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | [`timeout`](RedisBackend::timeout) | 50 ms |
//! | [`lease_horizon`](RedisBackend::lease_horizon) | 100 ms |
//! | [`max_batch`](RedisBackend::max_batch) | 100 cells |
//! | [`heartbeat`](RedisBackend::heartbeat) | 1 s |
//! | [`when_down`](RedisBackend::when_down) | [`WhenDown::LocalShare`] |
//! | [`key_prefix`](RedisBackend::key_prefix) | `"steadfast:rate_limit"` |
//!
//! The limiter's own settings are the [rate limiter's](super#defaults), except that
//! `max_wait` must stay zero.
//!
//! # Telemetry
//!
//! The rate limiter's events and metrics (admitted, rejected), and:
//!
//! | kind | name | labels / fields | when |
//! |---|---|---|---|
//! | event `warn` | "rate limiter lost Redis and runs degraded" | `rate_limit.name`, `.mode`, `.processes`, `.error` | entering the degraded mode |
//! | event `info` | "rate limiter reached Redis again; the limit is shared" | `rate_limit.name`, `.processes` | leaving it |
//! | event `debug` | "rate limiter's call to Redis failed" | `rate_limit.name`, `.error` | each failed call to Redis |
//! | gauge | `steadfast_rate_limit_degraded` | `name` | 1 while degraded, else 0 |
//! | counter | `steadfast_rate_limit_redis_calls_total` | `name` | each call to Redis, failed or not |
//! | counter | `steadfast_rate_limit_redis_failures_total` | `name` | each failed one |
//! | counter | `steadfast_rate_limit_leased_cells_total` | `name` | cells granted by Redis |
//!
//! The breaker over Redis reports as a circuit breaker named like the limiter.
//!
//! # Readiness
//!
//! As the [rate limiter's](super#readiness): `poll_ready` is the inner service's, and a
//! rejection fails the call.
//!
//! # Cancel safety
//!
//! A call takes its cell when it is made; dropping its future does not give it back (as a call
//! that is not waiting in the local limiter).
//!
//! # Errors
//!
//! [`RateLimited`], whose `retry_after` is Redis's last word on when its
//! next cell is due (or the local share's exact time while degraded); otherwise the inner
//! service's error, boxed as it was.
//!
//! # Keyed limits
//!
//! [`build_keyed_global`](super::Builder::build_keyed_global) makes one global limit per key
//! (a tenant, a client), each with the same rate: the key's `Display` form names its GCRA
//! state in Redis (`{prefix}:{{name}}:key:{key}`), which expires by itself once the key is
//! idle. Each key has its own lease in the process, decided under one of 16 shard locks as the
//! local [keyed limiter](super#keyed-limits) does; a call that leaves a key's lease at its
//! low-water mark (or finds it empty) queues it once for the layer's one refill task, which
//! asks Redis for that key alone. The bound holds per key: the key's limit plus `max_batch`
//! per process. A process holds at most [`max_keys`](super::Builder::max_keys) leases; an
//! idle lease with no cells is evicted (one with cells is kept while others can go). Redis
//! failing degrades every key at once, each to its local share.
//!
//! # Not yet
//!
//! Waiting (`max_wait`) is not offered with this backend: a global limiter rejects at once.
//! One refill task serves every key of a layer, one round trip at a time, so a process with
//! thousands of keys busy at once refills them in turn.

mod config;
mod keyed;
mod lease;
mod script;
mod task;
mod telemetry;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_layer::Layer;
use tower_service::Service;

pub use self::config::{
    DEFAULT_HEARTBEAT, DEFAULT_KEY_PREFIX, DEFAULT_LEASE_HORIZON, DEFAULT_MAX_BATCH,
    DEFAULT_REDIS_TIMEOUT, RedisBackend, WhenDown,
};
pub use self::keyed::{KeyedGlobalRateLimit, KeyedGlobalRateLimitLayer};

use self::lease::{Lease, Mode, Take};
use self::script::{Ask, CallRedis, Grant, Keys};
use self::task::{RefillState, Sizing};
use self::telemetry::GlobalTelemetry;
use super::config::Policy;
use super::error::RateLimited;
use super::future::ResponseFuture;
use super::state::Decision;
use crate::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use crate::timeout::TimeoutLayer;
use crate::{BoxError, ConfigError};

/// Aborts a refill task when the last layer and service that use it are gone.
#[derive(Debug)]
struct Task(AbortHandle);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The parts every global limiter needs: the Redis keys of the limit, the script behind the
/// steadfast breaker and timeout, and what the refill task shares with calls.
fn connect(
    policy: &Policy,
    backend: &RedisBackend,
) -> Result<
    (
        Arc<RefillState>,
        impl Service<Ask, Response = Grant, Error = BoxError, Future: Send> + Send + 'static,
    ),
    ConfigError,
> {
    let name = policy.telemetry.name();
    let connection = ::redis::aio::ConnectionManager::new_lazy_with_config(
        backend.client.clone(),
        ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(backend.timeout))
            .set_response_timeout(Some(backend.timeout))
            .set_max_delay(Duration::from_millis(100))
            .set_number_of_retries(1),
    )
    .map_err(|error| ConfigError::new("RedisBackend::new", "a usable client", error))?;
    let micros = |ns: u64| ns as f64 / 1_000.0;
    let heartbeat_ttl = backend.heartbeat.saturating_mul(3);
    let keys = Keys {
        tat: format!("{}:{{{name}}}:tat", backend.key_prefix),
        members: format!("{}:{{{name}}}:members", backend.key_prefix),
        member: format!("{:016x}", crate::random::random_seed(0)),
        interval_us: micros(policy.gcra.interval),
        capacity_us: micros(policy.gcra.tolerance + policy.gcra.interval),
        member_ttl_us: u64::try_from(heartbeat_ttl.as_micros()).unwrap_or(u64::MAX),
    };
    let breaker = CircuitBreakerLayer::builder()
        .name(name.to_owned())
        .failure_rate_threshold(0.5)
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(2)
        .wait_in_open(Duration::from_millis(250))
        .half_open_calls(1)
        .build()?;
    let redis = ServiceBuilder::new()
        .layer(breaker)
        .layer(TimeoutLayer::new(backend.timeout))
        .service(CallRedis::new(connection, keys));
    let shared = Arc::new(RefillState {
        mode: Mode::new(),
        telemetry: GlobalTelemetry::new(Arc::from(name)),
        when_down: backend.when_down,
    });
    Ok((shared, redis))
}

/// A call that found its lease empty: the local share while degraded, else a rejection until
/// the next batch. `Ok` admits it; `Err` is the rejection's `retry_after`.
#[cold]
fn empty(policy: &Policy, shared: &RefillState, lease: &Lease) -> Result<(), Duration> {
    lease.missed();
    let next_cell = || lease.retry_hint().max(policy.gcra.interval);
    let retry_after = if !shared.mode.is_degraded() {
        next_cell()
    } else {
        match shared.when_down {
            WhenDown::LocalShare => {
                let now = crate::clock::call_now();
                match lease.take_share(policy.gcra, shared.mode.processes(), now) {
                    Decision::Admitted => return Ok(()),
                    Decision::Rejected { retry_after }
                    | Decision::Reserved {
                        wait: retry_after, ..
                    } => retry_after,
                }
            }
            // Redis is down: the next cell comes no sooner than the next call to it.
            WhenDown::Reject => next_cell(),
        }
    };
    Err(Duration::from_nanos(retry_after))
}

/// Makes the future of a call decided on a lease.
#[inline]
fn respond<S, Req>(
    policy: &Policy,
    admitted: Result<(), Duration>,
    inner: &mut S,
    request: Req,
) -> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    match admitted {
        Ok(()) => {
            policy.telemetry.admitted();
            ResponseFuture::called(inner.call(request))
        }
        Err(retry_after) => {
            policy.telemetry.rejected(retry_after);
            ResponseFuture::rejected(RateLimited::new(retry_after))
        }
    }
}

/// What every clone of a global layer and its services share.
#[derive(Debug)]
struct Global {
    policy: Arc<Policy>,
    shared: Arc<RefillState>,
    lease: Arc<Lease>,
    /// Wakes the refill task at the lease's low-water mark.
    wake: Arc<Notify>,
    _task: Task,
}

/// Applies a rate limit shared through Redis by every process; made by
/// [`Builder::build_global`](super::Builder::build_global). See the [module docs](self).
///
/// Every clone of the layer and every service it makes share one lease and one refill task;
/// the task stops when the last of them is dropped.
#[derive(Clone)]
pub struct GlobalRateLimitLayer {
    global: Arc<Global>,
}

impl GlobalRateLimitLayer {
    pub(crate) fn start(
        policy: Policy,
        backend: RedisBackend,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, ConfigError> {
        let (shared, redis) = connect(&policy, &backend)?;
        let lease = Arc::new(Lease::new(Instant::now()));
        let wake = Arc::new(Notify::new());
        let task = runtime.spawn(task::run(
            Arc::clone(&shared),
            Arc::clone(&lease),
            Arc::clone(&wake),
            Sizing::new(&backend, policy.gcra.interval),
            redis,
        ));
        Ok(Self {
            global: Arc::new(Global {
                policy: Arc::new(policy),
                shared,
                lease,
                wake,
                _task: Task(task.abort_handle()),
            }),
        })
    }

    /// The limiter's name, as given to [`Builder::name`](super::Builder::name).
    pub fn name(&self) -> &str {
        self.global.policy.telemetry.name()
    }

    /// Whether the limiter runs without Redis now (see the
    /// [module docs](self#when-redis-is-slow-or-down)).
    pub fn is_degraded(&self) -> bool {
        self.global.shared.mode.is_degraded()
    }

    /// The cells this process holds now: calls it may admit without asking Redis.
    pub fn leased_cells(&self) -> u64 {
        self.global.lease.cells()
    }

    /// The processes sharing the limit, as Redis last reported them (at least 1).
    pub fn processes(&self) -> u32 {
        self.global.shared.mode.processes()
    }
}

impl fmt::Debug for GlobalRateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalRateLimitLayer")
            .field("policy", &self.global.policy)
            .field("lease", &self.global.lease)
            .field("mode", &self.global.shared.mode)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for GlobalRateLimitLayer {
    type Service = GlobalRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GlobalRateLimit {
            inner,
            global: Arc::clone(&self.global),
        }
    }
}

/// A service behind a rate limit shared through Redis; made by [`GlobalRateLimitLayer`].
pub struct GlobalRateLimit<S> {
    inner: S,
    global: Arc<Global>,
}

impl<S> GlobalRateLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone> Clone for GlobalRateLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            global: Arc::clone(&self.global),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for GlobalRateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalRateLimit")
            .field("inner", &self.inner)
            .field("lease", &self.global.lease)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for GlobalRateLimit<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let global = &*self.global;
        let admitted = match global.lease.take() {
            Take::Admitted => Ok(()),
            Take::AdmittedLow => {
                global.wake.notify_one();
                Ok(())
            }
            Take::Empty => empty(&global.policy, &global.shared, &global.lease),
        };
        respond(&global.policy, admitted, &mut self.inner, request)
    }
}
