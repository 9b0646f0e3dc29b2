//! Fails a call that takes too long, and tells the code inside the call how long it has left.
//!
//! [`TimeoutLayer`] gives each call a deadline: the earlier of `now + timeout` and any deadline
//! the call inherited ([`Deadline::current`] where the call was made: an outer timeout, or a
//! deadline read from `grpc-timeout` by [`InboundDeadlineLayer`], feature `http`). The inner service's `call`
//! and its future both run with that deadline as [`Deadline::current`], so a nested timeout, a
//! retry, or an outbound client can see how long is left. When the deadline passes, the inner
//! future is dropped and the call fails with [`Elapsed`], whose [`kind`](Elapsed::kind) says
//! whether it was this layer's own timeout or an inherited deadline. A call whose inherited
//! deadline has already passed fails at once, without reaching the inner service.
//!
//! For `http::Request`s, the layer leaves the extensions alone (it is generic over the request
//! type); put `InboundDeadlineLayer::current_only()` (feature `http`) under it to record the
//! narrowed deadline there too.
//!
//! Use it innermost to bound one attempt (so a hung attempt can be retried), and outside retry to
//! bound the whole call, backoffs included.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::deadline::Deadline;
//! use steadfast::timeout::{Elapsed, TimeoutLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .service(service_fn(|delay: Duration| async move {
//!         // Code inside the call can read its deadline.
//!         let left = Deadline::current().map(|d| d.remaining());
//!         tokio::time::sleep(delay).await;
//!         Ok::<_, std::io::Error>(left)
//!     }));
//!
//! let left = svc.clone().oneshot(Duration::from_millis(10)).await?;
//! assert_eq!(left, Some(Duration::from_secs(1)));
//!
//! let err = svc.oneshot(Duration::from_secs(5)).await.unwrap_err();
//! assert!(err.is::<Elapsed>());
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setting | default | constant |
//! |---|---|---|
//! | [`timeout`](Builder::timeout) | 30 s (no default with [`TimeoutLayer::new`]) | [`DEFAULT_TIMEOUT`] |
//! | [`name`](Builder::name) | `"default"` | [`DEFAULT_NAME`] |
//!
//! # Telemetry
//!
//! | kind | name | level / type | fields / labels |
//! |---|---|---|---|
//! | event | `call failed: deadline passed` | `debug` | `timeout.name`, `timeout.kind` (`"timeout"` or `"deadline"`), `timeout.before_call` (the inner service was not called) |
//! | event | `timeout reconfigured` | `info` | `timeout.name`, `timeout.timeout_ms` (feature `serde`) |
//! | metric | `steadfast_timeout_elapsed_total` | counter | `name`, `kind` (`"timeout"` or `"deadline"`) |
//!
//! Events have the target `steadfast::timeout`. The metric needs the `metrics` feature. Its
//! handles are registered, and described (`# HELP` text), when the layer is built (so install
//! the metrics recorder before building layers), and shared by the layer's clones and the
//! services it makes. A call that finishes in time emits nothing.
//!
//! # Errors
//!
//! The error type is [`BoxError`]. A timeout is an [`Elapsed`]; an error of the inner service
//! passes through boxed, never wrapped, so it downcasts to its own type.
//!
//! # Cancel safety
//!
//! Dropping the response future drops the inner future and the timer; nothing is left behind.
//! When the deadline passes, the inner future is dropped at once, before [`Elapsed`] is returned.
//!
//! # Readiness
//!
//! [`poll_ready`](tower_service::Service::poll_ready) is the inner service's, unbounded: a
//! timeout covers the call, not the wait for readiness (as in tower). Put a bulkhead with a
//! `max_wait` in front to bound waiting.
//!
//! # Differences from `tower::timeout::Timeout`
//!
//! - The deadline is shared: the inner call sees it through [`Deadline::current`], and the layer
//!   narrows, never widens, a deadline it inherits.
//! - [`Elapsed`] says which deadline passed ([`Elapsed::kind`]).
//! - A call whose deadline has already passed (an inherited one, or a zero timeout) fails
//!   without calling the inner service; tower calls it and may still return its answer.
//! - The timer is created only if the inner future is not ready at its first poll, so a call
//!   answered at once costs no timer.
//! - A call reads the clock once however many timeouts it goes through: a timeout called
//!   within another's `call` (an attempt timeout below an overall one) takes the instant the
//!   outer one read, which is early by the nanoseconds the calls in between take, so its
//!   deadline is never later than it would be with a clock read of its own.
//! - The inner future is dropped when the deadline passes, not when the response future is.
//!
#![cfg_attr(
    feature = "http",
    doc = "[`InboundDeadlineLayer`]: crate::deadline::InboundDeadlineLayer"
)]
#![cfg_attr(
    not(feature = "http"),
    doc = "[`InboundDeadlineLayer`]: crate::deadline"
)]

use std::task::{Context, Poll};
use std::time::Duration;

use tower_service::Service;

use crate::BoxError;
use crate::deadline::Deadline;

mod config;
pub mod error {
    //! The error a timeout fails a call with: [`Elapsed`], defined with the deadline it
    //! belongs to and re-exported here.
    pub use crate::deadline::{Elapsed, ElapsedKind};
}
#[cfg(feature = "serde")]
mod config_file;
pub mod future;
mod layer;
mod state;
mod telemetry;

pub use config::{Builder, DEFAULT_NAME, DEFAULT_TIMEOUT};
#[cfg(feature = "serde")]
pub use config_file::Config;
pub use error::{Elapsed, ElapsedKind};
pub use layer::TimeoutLayer;

use future::ResponseFuture;
use state::Timing;
use telemetry::Telemetry;

/// Fails calls to `S` that are not answered within a timeout; see the [module docs](self).
///
/// Built by [`TimeoutLayer`]. Cloning it clones the inner service.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Timing,
    telemetry: Telemetry,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with `timeout`. Same as `TimeoutLayer::new(timeout).layer(inner)`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self::from_parts(inner, Timing::Fixed(timeout), Telemetry::new(DEFAULT_NAME))
    }

    pub(crate) fn from_parts(inner: S, timeout: Timing, telemetry: Telemetry) -> Self {
        Self {
            inner,
            timeout,
            telemetry,
        }
    }

    /// The timeout each call gets (now: a layer's
    /// [`reconfigure`](TimeoutLayer::reconfigure) changes it).
    pub fn timeout(&self) -> Duration {
        self.timeout.get(&self.telemetry)
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for Timeout<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        // One clock read per call: the own deadline, and whether the effective one has passed.
        // Below another timeout's `call`, its read is reused (see `call_now`).
        let now = crate::clock::call_now();
        let timeout = self.timeout.get(&self.telemetry);
        let own = Deadline::at(crate::clock::saturating_add(now, timeout));
        let (deadline, kind) = match Deadline::current() {
            Some(inherited) if inherited < own => (inherited, ElapsedKind::InheritedDeadline),
            _ => (own, ElapsedKind::Timeout),
        };
        let telemetry = self.telemetry.clone();
        if deadline.instant() <= now {
            return ResponseFuture::expired(deadline, kind, telemetry);
        }
        // The inner `call` runs in the deadline's scope too, so layers below that read
        // `Deadline::current()` in `call` (a nested timeout) see it; the future polls the inner
        // future in it.
        let inner = crate::deadline::call_scope(deadline, now, || self.inner.call(request));
        ResponseFuture::running(inner, deadline, kind, telemetry)
    }
}
