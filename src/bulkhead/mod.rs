//! Bulkhead: caps the calls in flight to a service, so one slow dependency cannot take every
//! connection, thread or task of its callers.
//!
//! A call takes one of `max_concurrent_calls` permits when its service becomes ready, and holds
//! it until its response future completes or is dropped. A call that finds no free permit waits
//! at most `max_wait` for one (zero, the default: not at all) and then fails with
//! [`BulkheadFull`], without reaching the inner service.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use steadfast::bulkhead::{BulkheadFull, BulkheadLayer};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), steadfast::BoxError> {
//! let bulkhead = BulkheadLayer::builder()
//!     .max_concurrent_calls(1)
//!     .max_wait(Duration::ZERO) // fail fast (the default)
//!     .name("inventory")
//!     .build()?;
//! let inventory = service_fn(|sku: u32| async move { Ok::<_, Infallible>(sku * 2) });
//!
//! // Two services made by the same layer share its one permit.
//! let mut first = bulkhead.layer(inventory);
//! let mut second = bulkhead.layer(inventory);
//!
//! let in_flight = first.ready().await?.call(21); // holds the permit until it completes
//! assert_eq!(bulkhead.available_permits(), 0);
//!
//! let error = second.ready().await?.call(1).await.unwrap_err();
//! assert!(error.is::<BulkheadFull>());
//!
//! assert_eq!(in_flight.await?, 42);
//! assert_eq!(bulkhead.available_permits(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setter | default | allowed |
//! |---|---|---|
//! | [`max_concurrent_calls`](Builder::max_concurrent_calls) | [25](DEFAULT_MAX_CONCURRENT_CALLS) | `[1, 2147483647]` |
//! | [`max_wait`](Builder::max_wait) | [zero](DEFAULT_MAX_WAIT): fail fast | any |
//! | [`name`](Builder::name) | [`"default"`](DEFAULT_NAME) | non-empty |
//!
//! # Telemetry
//!
//! | kind | name | when | fields / labels |
//! |---|---|---|---|
//! | `tracing` event, `DEBUG` | `bulkhead full` | a call is rejected | `bulkhead.name`, `bulkhead.max_concurrent_calls`, `bulkhead.waited_ms` |
//! | `tracing` event, `TRACE` | `bulkhead waiting for a permit` | a call starts to wait | `bulkhead.name`, `bulkhead.max_wait_ms` |
//! | `tracing` event, `INFO` | `bulkhead reconfigured` | `reconfigure` applied a config (feature `serde`) | `bulkhead.name`, `bulkhead.max_concurrent_calls`, `bulkhead.max_wait_ms` |
//! | gauge | `steadfast_bulkhead_in_flight` | permits held (calls admitted and not finished) | `name` |
//! | counter | `steadfast_bulkhead_rejected_total` | calls rejected with [`BulkheadFull`] | `name` |
//! | gauge | `steadfast_bulkhead_max_concurrent_calls` | set when the layer is built and when `reconfigure` changes it | `name` |
//!
//! Metrics need the `metrics` feature; their handles are registered once, by
//! [`Builder::build`], with the recorder installed at that time.
//!
//! # Readiness
//!
//! [`poll_ready`](tower_service::Service::poll_ready) takes the permit, then polls the inner
//! service's readiness; the permit is moved into the response future by `call`. So a permit is
//! also held by a service that is ready but has not called yet, and while the inner service is
//! not ready. A service that is dropped, or cloned (a clone holds no permit), never keeps one.
//!
//! `poll_ready` never fails because the bulkhead is full (tower's `Buffer` and `Balance` treat an
//! error from `poll_ready` as fatal): with `max_wait` zero it tries once and answers
//! `Ready(Ok(()))`; otherwise it waits at most `max_wait` (a permit given back at the very
//! instant the wait runs out is still taken), then answers `Ready(Ok(()))`. In both cases the
//! following `call` fails at once with [`BulkheadFull`]. An error of the inner service's
//! `poll_ready` gives the permit back and is returned.
//!
//! Waiting is not strictly first-come first-served: a call that arrives when a permit is free
//! takes it even if others wait. Each permit given back while calls wait wakes one of them.
//! Waiting needs tokio's time driver; failing fast (`max_wait` zero) works on any executor.
//!
//! Calling `call` without a successful `poll_ready` breaks the `Service` contract; the bulkhead
//! then still admits the call only if a permit is free, and otherwise rejects it.
//!
//! # Cancel safety
//!
//! A permit is given back exactly once, however the call ends: when the response future
//! completes with a response or an error, when it is dropped before completing, or when the
//! service that took it in `poll_ready` is dropped without calling. Dropping a service while it
//! waits withdraws it from the waiters, and a wake-up it had received but not used passes on to
//! the next waiter.
//!
//! Dropping only the future that drives `poll_ready` (a `ready()` that lost a `select!`) keeps
//! the service registered as a waiter, as it would be in any future that is polled again: its
//! next `poll_ready` goes on with the same wait, and takes the permit it was woken for. A service
//! that is kept but never polled again can hold back one wake-up; the other waiters still take
//! a free permit at the latest when their own `max_wait` runs out, since a wait always tries
//! once more at its deadline.
//!
//! # Errors
//!
//! The service's error type is [`BoxError`]: a rejection is a
//! [`BulkheadFull`]; errors of the inner service pass through, boxed but not wrapped, so they
//! downcast to their own type. [`is_rejection`](crate::is_rejection) recognises
//! [`BulkheadFull`] as a local rejection (retry does not retry it; a breaker does not count it).
//!
//! # Differences from `tower::limit::ConcurrencyLimit`
//!
//! - One layer, one limit: tower's `ConcurrencyLimitLayer` gives each service it makes its own
//!   semaphore (its `GlobalConcurrencyLimitLayer` shares one); a [`BulkheadLayer`] always shares.
//! - `ConcurrencyLimit` waits in `poll_ready` for as long as it takes; the bulkhead waits at most
//!   `max_wait` and then rejects, so callers shed load instead of queueing without bound.
//! - No lock on the healthy path: taking and giving back a permit is one compare-and-swap and
//!   one `fetch_add` on a single atomic word (tokio's semaphore, under `ConcurrencyLimit`, takes
//!   its waiter-list lock on every release). Only waiting touches tokio's `Notify`.
//! - [`available_permits`](BulkheadLayer::available_permits), tracing events and metrics.

mod config;
#[cfg(feature = "serde")]
mod config_file;
pub mod error;
pub mod future;
mod layer;
mod state;
#[cfg(feature = "metrics")]
mod telemetry;
mod wait;

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_service::Service;

pub use self::config::{
    Builder, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MAX_WAIT, DEFAULT_NAME,
    MAX_CONCURRENT_CALLS_LIMIT,
};
#[cfg(feature = "serde")]
pub use self::config_file::Config;
pub use self::error::BulkheadFull;
pub use self::future::ResponseFuture;
pub use self::layer::BulkheadLayer;

use self::state::{Permit, Semaphore};
use self::wait::Wait;
use crate::BoxError;
use crate::sync::Arc;

/// Caps the concurrent calls to `S`; made by [`BulkheadLayer`]. See the [module docs](self).
///
/// Cloning gives a service that shares the permits but holds none of its own.
pub struct Bulkhead<S> {
    inner: S,
    shared: Arc<Semaphore>,
    admission: Admission,
    /// Kept between waits so that only the first wait allocates.
    wait: Option<Pin<Box<Wait>>>,
}

/// Where the service is between `poll_ready` and `call`.
#[derive(Debug)]
enum Admission {
    /// No permit, no decision: `poll_ready` has not run since the last `call`.
    Idle,
    /// Waiting in `self.wait` for a permit.
    Waiting,
    /// Holds a permit for the next call.
    Admitted(Permit),
    /// No permit within `max_wait` (which it waited): the next call is rejected.
    Rejected(Duration),
}

impl<S> Bulkhead<S> {
    pub(crate) fn new(inner: S, shared: Arc<Semaphore>) -> Self {
        Self {
            inner,
            shared,
            admission: Admission::Idle,
            wait: None,
        }
    }

    /// Permits free right now in the bulkhead this service shares.
    pub fn available_permits(&self) -> usize {
        self.shared.permits.load().available() as usize
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the bulkhead, giving back any permit it holds, and returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn reject<F>(&self, waited: Duration) -> ResponseFuture<F> {
        let shared = &*self.shared;
        tracing::debug!(
            bulkhead.name = %shared.name,
            bulkhead.max_concurrent_calls = shared.max_concurrent_calls(),
            bulkhead.waited_ms = crate::clock::millis(waited),
            "bulkhead full"
        );
        #[cfg(feature = "metrics")]
        shared.metrics.rejected.increment(1);
        ResponseFuture::rejected(BulkheadFull::new(
            shared.max_concurrent_calls() as usize,
            waited,
        ))
    }

    /// Starts (or restarts) the wait for a permit.
    fn start_wait(&mut self) {
        tracing::trace!(
            bulkhead.name = %self.shared.name,
            bulkhead.max_wait_ms = crate::clock::millis(self.shared.max_wait()),
            "bulkhead waiting for a permit"
        );
        match &mut self.wait {
            Some(wait) => wait.as_mut().restart(),
            None => self.wait = Some(Box::pin(Wait::new(Arc::clone(&self.shared)))),
        }
        self.admission = Admission::Waiting;
    }
}

impl<S> Bulkhead<S> {
    /// Admission when no permit was free at once: fail fast, or start or go on waiting.
    /// `Ready(Ok)` once a permit is held, `Ready(Err)` once the call is to be rejected.
    #[cold]
    fn poll_admission_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        loop {
            match &self.admission {
                Admission::Admitted(_) => return Poll::Ready(Ok(())),
                Admission::Rejected(_) => return Poll::Ready(Err(())),
                Admission::Idle => {
                    if self.shared.permits.try_acquire() {
                        self.admission = Admission::Admitted(Permit::taken(&self.shared));
                    } else if self.shared.max_wait().is_zero() {
                        self.admission = Admission::Rejected(Duration::ZERO);
                    } else {
                        self.start_wait();
                    }
                }
                Admission::Waiting => {
                    let Some(wait) = self.wait.as_mut() else {
                        // Unreachable: `Waiting` is only set with a wait in place.
                        self.admission = Admission::Idle;
                        continue;
                    };
                    self.admission = match std::task::ready!(wait.as_mut().poll(cx)) {
                        Ok(permit) => Admission::Admitted(permit),
                        Err(waited) => Admission::Rejected(waited),
                    };
                }
            }
        }
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// A service sharing the same permits, holding none: a permit taken by `self` in `poll_ready`
    /// stays with `self`.
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

impl<S, Request> Service<Request> for Bulkhead<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.admission {
            Admission::Admitted(_) => {}
            // The healthy path: one CAS, no clock, no lock.
            Admission::Idle if self.shared.permits.try_acquire() => {
                self.admission = Admission::Admitted(Permit::taken(&self.shared));
            }
            _ => {
                if std::task::ready!(self.poll_admission_slow(cx)).is_err() {
                    // Rejected: the call will fail; the inner service's readiness is moot.
                    return Poll::Ready(Ok(()));
                }
            }
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                // The service is broken: keep no permit for it.
                self.admission = Admission::Idle;
                Poll::Ready(Err(error.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        match mem::replace(&mut self.admission, Admission::Idle) {
            Admission::Admitted(permit) => ResponseFuture::called(self.inner.call(request), permit),
            Admission::Rejected(waited) => self.reject(waited),
            Admission::Idle | Admission::Waiting => {
                // `call` without a successful `poll_ready`: a broken contract, but still never
                // more than `max_concurrent_calls` in flight.
                if let Some(wait) = self.wait.as_mut() {
                    wait.as_mut().cancel();
                }
                if self.shared.permits.try_acquire() {
                    let permit = Permit::taken(&self.shared);
                    ResponseFuture::called(self.inner.call(request), permit)
                } else {
                    self.reject(Duration::ZERO)
                }
            }
        }
    }
}
