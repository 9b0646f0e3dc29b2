//! Circuit breaker: stops calling a service that keeps failing, and lets it recover.
//!
//! While the service is healthy the breaker is **closed** and counts outcomes in a sliding
//! window. When the failure rate (or the slow-call rate) of the window reaches its threshold,
//! once the window holds `minimum_calls` outcomes, the breaker **opens**: calls fail at once with
//! [`CircuitOpen`], without reaching the service, for `wait_in_open`. The first call after that
//! makes it **half-open**: `half_open_calls` probes go through and are judged together; below
//! the thresholds the breaker closes, at or above them it opens again.
//!
//! Use it in front of anything remote: it turns a slow, failing dependency into fast, explicit
//! errors (which a [`fallback`](crate::fallback) can answer), and gives the dependency room to
//! recover instead of a wall of retries.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .failure_rate_threshold(0.5)
//!     .sliding_window(SlidingWindow::Count(10))
//!     .minimum_calls(4)
//!     .wait_in_open(Duration::from_secs(30))
//!     .half_open_calls(2)
//!     .build()?;
//!
//! let mut service = ServiceBuilder::new()
//!     .layer(breaker.clone())
//!     .service(service_fn(|fail: bool| async move {
//!         if fail { Err("backend down") } else { Ok("fine") }
//!     }));
//!
//! for fail in [false, true, false, true] {
//!     let _ = service.ready().await?.call(fail).await;
//! }
//! // 2 failures in 4 calls: 50 %, at the threshold.
//! assert_eq!(breaker.state(), State::Open);
//!
//! let err = service.ready().await?.call(false).await.unwrap_err();
//! let open = err.downcast_ref::<CircuitOpen>().expect("rejected by the breaker");
//! assert_eq!(open.retry_after(), Duration::from_secs(30));
//!
//! tokio::time::advance(Duration::from_secs(30)).await;
//! assert_eq!(breaker.state(), State::HalfOpen);
//! for _ in 0..2 {
//!     service.ready().await?.call(false).await?;
//! }
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! # States
//!
//! ```text
//!                 failure or slow-call rate >= threshold
//!                 (with >= minimum_calls in the window),
//!                 or consecutive_failures in a row
//!   ┌────────┐ ─────────────────────────────────────────▶ ┌──────┐
//!   │ Closed │                                            │ Open │ ◀─┐
//!   └────────┘ ◀──────────┐                               └──────┘   │ probes at or above
//!        ▲                │ probes below threshold            │      │ the threshold, or
//!        │                │                                   │      │ not all finished
//!        │          ┌──────────┐  first call after            │      │ within
//!        │          │ HalfOpen │ ◀────────────────────────────┘      │ max_wait_in_half_open
//!        │          └──────────┘       wait_in_open                  │
//!        │                └──────────────────────────────────────────┘
//!        │
//!        └── reset() from any state          force_open() ─▶ ForcedOpen   disable() ─▶ Disabled
//! ```
//!
//! - The move from open to half-open is lazy: no task runs in the background. The first call (or
//!   [`state`](CircuitBreakerLayer::state) read) after `wait_in_open` makes it.
//! - Half-open admits exactly `half_open_calls` probes; others are rejected. A probe whose future
//!   is dropped, or whose result is ignored by the classifier, gives its slot back.
//! - Each transition starts a new *generation*. A call admitted in an older generation that
//!   finishes later is not counted: it cannot extend an open, count in a newer window, or close a
//!   newer half-open.
//! - Shadow mode ([`Builder::shadow`]) runs the state machine but lets every call through.
//!
//! # Keyed breakers
//!
//! [`Builder::build_keyed`] (with an example) makes a [`KeyedCircuitBreakerLayer`]: one breaker per
//! key computed from the request (a host, a tenant, a route), each with the same settings, so one
//! failing host does not shut the others out. Keys are bounded by [`Builder::max_keys`]; a closed
//! breaker unused for [`Builder::idle_timeout`] is evicted, and open ones are kept while any closed
//! one can go. Each key's state is readable ([`KeyedCircuitBreakerLayer::state`],
//! [`KeyedCircuitBreakerLayer::snapshots`]), and each key can be forced open or reset. The key is
//! known only in `call`, so a keyed breaker decides there, after the inner service's `poll_ready`;
//! a call costs a shard lock and a hash lookup more than the plain breaker's. Metrics and events of
//! every key go under the builder's one `name` (a label per key would have no bound): counters add
//! up over keys, while the state gauge shows the key that changed last; read per-key state from the
//! layer.
//!
//! # Live reload
//!
//! With the `serde` feature, [`CircuitBreakerLayer::reconfigure`] applies a [`Config`] read from
//! a file to a running breaker, shared by every clone and every service it made, and keeps its
//! state: a new threshold judges the window as it is, a new window shape (`sliding_window`,
//! `bucket_width`, slow-call detection or the failure run switched on or off) starts a new,
//! empty window, and open or half-open breakers keep their timers and probes. It refuses,
//! changing nothing, what the builder refuses, a new `name` and a new `initial_state`.
//!
//! [`KeyedCircuitBreakerLayer::reconfigure`] does the same to every key's breaker (through the
//! same code), makes the breakers of keys that come afterwards with the new config, and applies
//! `max_keys` (a lower cap evicts down to it as new keys come, never at once) and
//! `idle_timeout` (a sweep is due at once). It refuses what the plain breaker's refuses, and a
//! `max_keys` or `idle_timeout` out of range; a refused config changes no key and no bound. A
//! plain breaker has no keys: it ignores `max_keys` and `idle_timeout`, from
//! [`CircuitBreakerLayer::from_config`] to every reload.
//!
//! A key whose breaker is made while a reload runs ends with the new settings, never a mix:
//! a key's breaker is made under its shard's lock from one copy of the settings, which the
//! reload replaces before it visits the keys, shard by shard, under the same locks. Either the
//! key was made before the reload visited its shard, which then applies the new settings to
//! it, or after, from the new settings. Reloads of one layer apply one after the other.
//!
//! On the call path, the settings a new key is made with are read only when a key is made; a
//! permitted call of a keyed breaker reads its window's version (one word, written only by a
//! reload) to see whether a reload replaced the window, as the plain breaker's does.
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | [`failure_rate_threshold`](Builder::failure_rate_threshold) | 0.5 |
//! | [`slow_call_rate_threshold`](Builder::slow_call_rate_threshold) | 1.0 |
//! | [`slow_call_duration`](Builder::slow_call_duration) | off |
//! | [`sliding_window`](Builder::sliding_window) | `Count(100)` |
//! | [`bucket_width`](Builder::bucket_width) (time windows) | 1 s |
//! | [`minimum_calls`](Builder::minimum_calls) | 20 |
//! | [`consecutive_failures`](Builder::consecutive_failures) | off |
//! | [`wait_in_open`](Builder::wait_in_open) | 30 s |
//! | [`open_backoff`](Builder::open_backoff), [`open_jitter`](Builder::open_jitter) | off |
//! | [`half_open_calls`](Builder::half_open_calls) | 5 |
//! | [`max_wait_in_half_open`](Builder::max_wait_in_half_open) | 60 s |
//! | [`shadow`](Builder::shadow) | off |
//! | [`classify`](Builder::classify) | [`ErrorsAsFailures`]: `Err` fails, except this crate's rejections |
//! | [`max_keys`](Builder::max_keys) (keyed) | 10 000 |
//! | [`idle_timeout`](Builder::idle_timeout) (keyed) | 10 minutes |
//!
//! # Telemetry
//!
//! | kind | name | labels / fields | when |
//! |---|---|---|---|
//! | event `warn` | "circuit breaker opened" | `circuit_breaker.name`, `.from`, `.to` | to open or forced open |
//! | event `info` | "circuit breaker closed" | same | to closed |
//! | event `info` | "circuit breaker changed state" | same | to half-open or disabled |
//! | event `debug` | "circuit breaker rejected a call" | `.name`, `.state`, `.retry_after_ms`, `.shadow` | each rejection |
//! | event `info` | "circuit breaker reconfigured" | `.name`, `.failure_rate_threshold`, `.minimum_calls`, `.half_open_calls`, `.new_window` | `reconfigure` applied a config (feature `serde`) |
//! | event `info` | "keyed circuit breaker reconfigured" | the same, with `.keys`, `.new_windows`, `.max_keys`, `.idle_timeout_ms` | a keyed layer's `reconfigure` applied a config |
//! | gauge | `steadfast_circuit_breaker_state` | `name` | 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled |
//! | counter | `steadfast_circuit_breaker_calls_total` | `name`, `outcome` = `success`, `failure`, `slow_success`, `slow_failure`, `ignored` | each permitted call that finished |
//! | counter | `steadfast_circuit_breaker_not_permitted_total` | `name` | each rejection |
//! | counter | `steadfast_circuit_breaker_transitions_total` | `name`, `from`, `to` | each transition |
//! | gauge | `steadfast_circuit_breaker_mtbf_seconds`, `_mttr_seconds` | `name` | mean up and down periods (see [`Snapshot::mtbf`]) |
//! | gauge | `steadfast_circuit_breaker_availability` | `name` | share of up time since build |
//!
//! Metrics need the `metrics` feature. The per-call handles are registered when the breaker is
//! built; the metrics of transitions are looked up when one happens (they are rare). Either way,
//! install the recorder before building the layer. [`Builder::on_transition`] takes a closure for your own
//! reporting, and [`CircuitBreakerLayer::snapshot`] reads the counts at any time.
//!
//! # Readiness
//!
//! `poll_ready` asks the breaker first. If it rejects, `poll_ready` returns `Ready(Ok(()))`
//! without polling the inner service, and `call` fails at once: an open breaker never waits for
//! the inner service (or a bulkhead inside it), and never fails `poll_ready`, which `Buffer` and
//! `Balance` would treat as fatal. If it permits, `poll_ready` polls the inner service. The
//! permission (a probe slot, in half-open) is held from `poll_ready` to `call`; a service dropped
//! in between gives it back.
//!
//! # Cancel safety
//!
//! Dropping a response future records nothing and gives back a half-open probe slot.
//!
//! # Errors
//!
//! The service's error is [`BoxError`], which is: a [`CircuitOpen`] when the breaker
//! rejects, otherwise the inner service's error, boxed as it was.
//!
//! # Cost
//!
//! Closed, with a count window and no slow-call timing: `poll_ready` is one atomic load, and a
//! successful call into a window that holds no failure is one more load; the call path reads no
//! clock and takes no lock. Slow-call timing reads the clock twice per call (once, below a
//! timeout, whose read of the call's start it reuses), a time window once. A rejection by an
//! open breaker reads the clock once and allocates its error; a forced-open one, only the
//! latter.
//!
//! # Differences from other breakers
//!
//! tower has no circuit breaker. `failsafe` has no tower `Service`; `tower-resilience` has one.
//! Both take a mutex on every call. This breaker takes no lock on the call path, shares one
//! breaker across every clone and every `layer()` without asking (tower-resilience does so only
//! when built with `build_with_handle`), never fails `poll_ready`, and judges half-open probes
//! as a window of their own.

mod breaker;
mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod error;
pub mod future;
// Keyed breakers hold their breakers in the crate's keyed map (std `Arc`s), which the loom
// models do not cover; the loom build leaves them out.
#[cfg(not(steadfast_loom))]
mod keyed;
#[cfg(all(feature = "serde", not(steadfast_loom)))]
mod keyed_reload;
mod layer;
mod live;
mod shape;
mod snapshot;
mod state;
mod telemetry;
// The pool's per-endpoint failure-rate window is this count window.
pub(crate) mod window;

#[cfg(all(test, steadfast_loom))]
mod loom_tests;

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

pub use self::config::{
    Builder, DEFAULT_BUCKET_WIDTH, DEFAULT_FAILURE_RATE_THRESHOLD, DEFAULT_HALF_OPEN_CALLS,
    DEFAULT_MAX_WAIT_IN_HALF_OPEN, DEFAULT_MINIMUM_CALLS, DEFAULT_NAME, DEFAULT_SLIDING_WINDOW,
    DEFAULT_SLOW_CALL_RATE_THRESHOLD, DEFAULT_WAIT_IN_OPEN, SlidingWindow,
};
pub use self::config::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_KEYS};
#[cfg(all(feature = "serde", feature = "http"))]
pub use self::config_file::NamedClassifier;
#[cfg(feature = "serde")]
pub use self::config_file::{ClassifierName, Config, OpenBackoffConfig};
pub use self::error::CircuitOpen;
#[cfg(not(steadfast_loom))]
pub use self::keyed::{KeyedCircuitBreaker, KeyedCircuitBreakerLayer};
pub use self::layer::CircuitBreakerLayer;
pub use self::snapshot::Snapshot;
pub use self::telemetry::Transition;

use self::breaker::{Admission, Breaker, Ticket};
use self::future::{Guard, Judge, ResponseFuture};
use crate::BoxError;
use crate::classify::{Classify, ErrorsAsFailures};
use crate::sync::Arc;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through; outcomes are counted in the sliding window.
    Closed,
    /// Calls are rejected until `wait_in_open` is over.
    Open,
    /// A few probes go through; the rest are rejected until the probes are judged.
    HalfOpen,
    /// Opened by hand ([`CircuitBreakerLayer::force_open`]): every call is rejected until reset.
    ForcedOpen,
    /// Switched off by hand ([`CircuitBreakerLayer::disable`]): every call goes through and
    /// nothing is counted until reset.
    Disabled,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(telemetry::state_label(*self))
    }
}

/// A service behind a circuit breaker; made by [`CircuitBreakerLayer`].
pub struct CircuitBreaker<S, C = ErrorsAsFailures> {
    inner: S,
    /// The breaker and the classifier, as this service's futures hold them (one reference
    /// count per call). Made when the layer wraps a service; see [`Sharing`] for clones.
    shared: Arc<Judge<C>>,
    sharing: Sharing,
    /// The breaker's answer, taken in `poll_ready` and spent in `call`.
    admission: Ticket,
}

/// Whose [`Judge`] a service's futures count references on.
///
/// A clone starts on its parent's, so that cloning a service per request and calling it once
/// (axum's routes, tower's `Oneshot`, a retry's clone) allocates nothing. A clone called a
/// second time is one that lives on, likely on its own task and thread: it makes its own, so
/// that clones on different threads do not contend on one reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// Made by the layer, or made its own after its first calls.
    Own,
    /// A clone on its parent's; `called` once it has made a call.
    Parent { called: bool },
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            inner,
            shared: Arc::new(Judge::new(breaker, classifier)),
            sharing: Sharing::Own,
            admission: Ticket::NONE,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    #[inline(always)]
    fn breaker(&self) -> &Breaker {
        &self.shared.breaker
    }
}

impl<S, C: Clone> CircuitBreaker<S, C> {
    /// The reference its futures will hold, for one more call.
    #[inline(always)]
    fn shared_for_call(&mut self) -> Arc<Judge<C>> {
        if !self.shared.is_current() {
            // `reconfigure` replaced the window: calls from now on record into the new one.
            self.make_own();
        }
        match self.sharing {
            Sharing::Own => {}
            Sharing::Parent { called: false } => self.sharing = Sharing::Parent { called: true },
            Sharing::Parent { called: true } => self.make_own(),
        }
        Arc::clone(&self.shared)
    }

    #[cold]
    fn make_own(&mut self) {
        let own = self.shared.renewed();
        self.shared = Arc::new(own);
        self.sharing = Sharing::Own;
    }
}

impl<S, C> Drop for CircuitBreaker<S, C> {
    /// A service dropped between `poll_ready` and `call` gives back its probe slot.
    fn drop(&mut self) {
        if let Some(Admission::Permitted(permit)) = self.admission.take() {
            self.breaker().release(permit);
        }
    }
}

impl<S: Clone, C> Clone for CircuitBreaker<S, C> {
    /// A clone shares the breaker but holds no permission: it must be polled ready itself.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            sharing: Sharing::Parent { called: false },
            admission: Ticket::NONE,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", self.breaker())
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline(always)]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.admission.is_none() {
            self.admission = Ticket::new(self.breaker().admit());
        }
        if self.admission.is_rejected() {
            // Rejected: `call` fails at once, so the inner service need not be ready.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, request: Req) -> Self::Future {
        // Without `poll_ready` first (a contract violation), decide here rather than panic.
        let admission = match self.admission.take() {
            Some(admission) => admission,
            None => self.breaker().admit(),
        };
        match admission {
            Admission::Permitted(permit) => {
                let guard = Guard::new(self.shared_for_call(), permit);
                ResponseFuture::called(self.inner.call(request), guard)
            }
            Admission::Rejected(open) => ResponseFuture::rejected(open),
        }
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use tower::{Layer, ServiceExt, service_fn};

    fn backend() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
        service_fn(|n: u32| async move { Ok::<_, BoxError>(n) })
    }

    #[tokio::test]
    async fn a_clone_uses_its_parents_shared_until_its_second_call() {
        let layer = CircuitBreakerLayer::builder().build().unwrap();
        let parent = layer.layer(backend());
        let mut clone = parent.clone();
        assert!(Arc::ptr_eq(&clone.shared, &parent.shared));

        clone.ready().await.unwrap().call(1).await.unwrap();
        assert!(Arc::ptr_eq(&clone.shared, &parent.shared), "one call");
        assert_eq!(clone.sharing, Sharing::Parent { called: true });

        clone.ready().await.unwrap().call(2).await.unwrap();
        assert!(!Arc::ptr_eq(&clone.shared, &parent.shared), "a second call");
        assert!(Arc::ptr_eq(&clone.shared.breaker, &parent.shared.breaker));
        assert_eq!(clone.sharing, Sharing::Own);
    }
}
