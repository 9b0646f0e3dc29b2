//! Fault injection: fails, delays and takes down calls on purpose, at configured rates, with a
//! seeded generator, switchable at run time.
//!
//! Use it in tests, demos and game days to see what the rest of a stack does when the service
//! behind it fails: whether the [circuit breaker](crate::circuit_breaker) opens, whether
//! [retry](crate::retry) stays within its budget, whether the caller still answers. Put it
//! where the failure should appear to come from, usually innermost, right in front of the
//! service.
//!
//! A layer with nothing configured injects nothing, and a layer can be built switched off and
//! switched on later: the [`ChaosHandle`] enables and disables it, starts and stops outages and
//! reads its counters at run time.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::BoxError;
//! use steadfast::chaos::{ChaosLayer, FaultKind, InjectedFault};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let chaos = ChaosLayer::builder()
//!     .name("payments")
//!     .error_rate(0.1) // 10 % of calls fail
//!     .latency(0.2, Duration::from_millis(300)) // 20 % of the others wait 300 ms first
//!     .outage_at(Duration::from_secs(60), Duration::from_secs(30)) // down from 1:00 to 1:30
//!     .seed(7)
//!     .build()?;
//! let handle = chaos.handle();
//!
//! let mut service = chaos.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n * 2) }));
//!
//! // A game day: take the backend down by hand.
//! handle.start_outage();
//! let err = service.ready().await?.call(21).await.unwrap_err();
//! let fault = err.downcast_ref::<InjectedFault>().expect("an injected fault");
//! assert_eq!(fault.kind(), FaultKind::Outage);
//! handle.stop_outage();
//!
//! // Switched off, it lets every call through.
//! handle.disable();
//! assert_eq!(service.ready().await?.call(21).await?, 42);
//! assert_eq!(handle.counts().outages(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # How a call is judged
//!
//! In `call`, in this order:
//!
//! 1. Switched off, or on with no fault configured and no manual outage: the call goes through
//!    untouched and is not counted. This costs one atomic load.
//! 2. During an outage (manual, or a scheduled window `[start, start + duration)` after the
//!    layer was built): the call fails with [`FaultKind::Outage`].
//! 3. With probability [`error_rate`](Builder::error_rate): it fails with [`FaultKind::Error`].
//! 4. With the latency's rate: the call waits the delay (fixed, or drawn uniformly from a
//!    range), on tokio's clock, before the inner service's future is first polled.
//! 5. Otherwise it goes through.
//!
//! A failed call never reaches the inner service. Each judged call takes the next number of
//! the layer's sequence, so a [`seed`](Builder::seed) gives the same decisions for the same
//! sequence of calls, whichever clone or service makes them.
//!
//! # Defaults
//!
//! | setting | default | constant |
//! |---|---|---|
//! | [`error_rate`](Builder::error_rate) | 0.0 | [`DEFAULT_ERROR_RATE`] |
//! | [`latency`](Builder::latency), [`latency_range`](Builder::latency_range) | none (at most [`MAX_LATENCY`]) | — |
//! | [`outage_at`](Builder::outage_at) | none | — |
//! | [`seed`](Builder::seed) | drawn once per layer | — |
//! | [`enabled`](Builder::enabled) | `true` | [`DEFAULT_ENABLED`] |
//! | [`error_response`](Builder::error_response) | none: fail with [`InjectedFault`] | — |
//! | [`name`](Builder::name) | `"default"` | [`DEFAULT_NAME`] |
//!
//! # Telemetry
//!
//! | kind | name | labels / fields | when |
//! |---|---|---|---|
//! | `debug!` event | "chaos failed a call" | `chaos.name`, `chaos.kind` = `error` or `outage` | each injected fault |
//! | `debug!` event | "chaos delayed a call" | `chaos.name`, `chaos.kind` = `latency`, `chaos.delay_ms` | each injected delay |
//! | `info!` event | "chaos switched on" / "chaos switched off" | `chaos.name`, `chaos.enabled` | [`ChaosHandle::enable`] or [`disable`](ChaosHandle::disable) changed the switch |
//! | `warn!` / `info!` event | "chaos outage started" / "chaos outage stopped" | `chaos.name` | [`ChaosHandle::start_outage`] or [`stop_outage`](ChaosHandle::stop_outage) changed the switch |
//! | `warn!` event | "chaos cannot delay a call outside a tokio runtime; …" | `chaos.name`, `chaos.delay_ms` | a delay drawn for a call made outside a runtime (the call is sent at once) |
//! | counter | `steadfast_chaos_injected_total` | `name`, `kind` = `error`, `outage`, `latency` | each injected fault or delay |
//!
//! The counter needs the `metrics` feature; its handles are registered when the layer is built,
//! so install the recorder first. [`ChaosHandle::counts`] reads the same counts at any time.
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's: faults are decided in `call`. A call that is failed on
//! purpose leaves the capacity the inner service reserved for it to the next call.
//!
//! # Cancel safety
//!
//! Dropping the response future during an injected delay drops the inner future before it was
//! ever polled. The call has been counted, and so has its delay.
//!
//! # Errors
//!
//! The service's error is [`BoxError`]: an [`InjectedFault`] for an injected fault (unless
//! [`error_response`](Builder::error_response) answers it with a response), otherwise the inner
//! service's error, boxed as it was. An [`InjectedFault`] is not a local rejection
//! ([`is_rejection`](crate::is_rejection) is `false`): breakers count it and retry retries it,
//! as they would a real failure.
//!
//! # Cost
//!
//! Switched off, or on with nothing to inject: one relaxed atomic load per call, and a response
//! future the size of the inner one plus a word. Switched on with faults: one `fetch_add` per
//! call, a clock read when outages are scheduled, an allocation per injected fault (the boxed
//! error) and per delayed call (the boxed sleep). No lock anywhere.
//!
//! # Latency and the inner service
//!
//! The inner service was polled ready, so its `call` is made at once, in `call`; the delay
//! holds back the first poll of its future. For services whose futures do their work when polled
//! (`service_fn`, axum handlers, hyper and tonic clients) the request reaches the backend after
//! the delay. A service that does its work in `call` itself (such as `tower::buffer::Buffer`)
//! has only its answer delayed. The delay is a `tokio::time::Sleep`, boxed so that only delayed
//! calls pay for it. Outside a tokio runtime a call that should be delayed is sent at once (with
//! a `warn!` event, and not counted as delayed); inside one, the runtime needs its time driver,
//! as for tower's `Timeout`.
//!
//! # Differences from other crates
//!
//! tower has no fault injection. Compared with ad-hoc test doubles, this layer wraps any real
//! service, is deterministic under a seed and paused time, and can be switched on a running
//! stack through its handle.

mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod error;
pub mod future;
mod handle;
mod layer;
mod state;
#[cfg(feature = "metrics")]
mod telemetry;

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

pub use self::config::{Builder, DEFAULT_ENABLED, DEFAULT_ERROR_RATE, DEFAULT_NAME, MAX_LATENCY};
#[cfg(feature = "serde")]
pub use self::config_file::{Config, LatencyConfig, LatencyRangeConfig, OutageConfig};
pub use self::error::{FaultKind, InjectedFault};
pub use self::handle::{ChaosHandle, Counts};
pub use self::layer::ChaosLayer;

use self::future::ResponseFuture;
use self::state::{Core, Verdict};
use crate::BoxError;
use crate::sync::Arc;

/// What an injected fault answers instead of an `Err`, set by
/// [`error_response`](Builder::error_response).
///
/// Implemented by `()` (no response: the call fails with [`InjectedFault`], the default), and by
/// closures `Fn() -> Res`. Implement it yourself to answer each [`FaultKind`] differently.
pub trait FaultResponse<Res> {
    /// The response for `fault`, or `None` to fail the call with it.
    fn respond(&self, fault: &InjectedFault) -> Option<Res>;
}

impl<Res> FaultResponse<Res> for () {
    #[inline]
    fn respond(&self, _fault: &InjectedFault) -> Option<Res> {
        None
    }
}

impl<F, Res> FaultResponse<Res> for F
where
    F: Fn() -> Res,
{
    fn respond(&self, _fault: &InjectedFault) -> Option<Res> {
        Some(self())
    }
}

/// A service with faults injected in front of it; made by [`ChaosLayer`].
pub struct Chaos<S, R = ()> {
    inner: S,
    core: Arc<Core>,
    response: R,
}

impl<S, R> Chaos<S, R> {
    pub(crate) fn new(inner: S, core: Arc<Core>, response: R) -> Self {
        Self {
            inner,
            core,
            response,
        }
    }

    /// A handle on the layer this service was made by: the switches and counters it shares with
    /// every other service of that layer.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle::new(self.core.clone())
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, taking this one apart.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R: Clone> Clone for Chaos<S, R> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.core.clone(), self.response.clone())
    }
}

impl<S: fmt::Debug, R> fmt::Debug for Chaos<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl<S, R, Req> Service<Req> for Chaos<S, R>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    R: FaultResponse<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.core.decide() {
            Verdict::Pass => ResponseFuture::called(self.inner.call(request), None),
            Verdict::Delay(delay) => ResponseFuture::called(
                self.inner.call(request),
                Some(Box::pin(tokio::time::sleep(delay))),
            ),
            Verdict::Fail(kind) => {
                let fault = InjectedFault::new(kind);
                ResponseFuture::failed(fault, self.response.respond(&fault))
            }
        }
    }
}
