//! Fallback: answers a failed call from a function of its error, or fails it over to a backup
//! service.
//!
//! The outermost layer of a stack: when the service, or a layer in front of it (an open breaker,
//! a full bulkhead, a timeout), fails a call, the caller gets a degraded answer (a cached value,
//! a default, a friendlier error) or the answer of a second system, instead of the failure.
//! A [`Predicate`] chooses which failures are answered: every error by default, or
//! [only the crate's rejections and timeouts](RejectionsAndTimeouts), or your own closure.
//!
//! # Example
//!
//! ```
//! use steadfast::BoxError;
//! use steadfast::bulkhead::BulkheadLayer;
//! use steadfast::fallback::{FallbackLayer, RejectionsAndTimeouts};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Answer "no recommendations" when the bulkhead sheds the call; let real errors through.
//! let fallback = FallbackLayer::new(|_error: BoxError| Ok(Vec::<String>::new()))
//!     .when(RejectionsAndTimeouts)
//!     .name("recommendations");
//! let bulkhead = BulkheadLayer::builder().max_concurrent_calls(1).build()?;
//!
//! let mut service = ServiceBuilder::new()
//!     .layer(fallback)
//!     .layer(bulkhead.clone())
//!     .service_fn(|user: u32| async move {
//!         Ok::<_, BoxError>(vec![format!("for user {user}")])
//!     });
//! let mut other = service.clone();
//!
//! let in_flight = service.ready().await?.call(7); // takes the bulkhead's only permit
//! assert_eq!(other.ready().await?.call(8).await?, Vec::<String>::new()); // shed: answered
//! assert_eq!(in_flight.await?, ["for user 7"]);
//! # Ok(())
//! # }
//! ```
//!
//! Failing over to a backup service instead:
//!
//! ```
//! use steadfast::BoxError;
//! use steadfast::fallback::FallbackLayer;
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let primary = service_fn(|_: &'static str| async { Err::<String, BoxError>("primary down".into()) });
//! let backup = service_fn(|key: &'static str| async move { Ok::<_, BoxError>(format!("{key} from backup")) });
//!
//! let mut service = FallbackLayer::with_backup(backup).layer(primary);
//! assert_eq!(service.ready().await?.call("price").await?, "price from backup");
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setter | default |
//! |---|---|
//! | [`when`](FallbackLayer::when) | [`AllErrors`]: every error is answered |
//! | [`name`](FallbackLayer::name) | [`"default"`](DEFAULT_NAME) |
//!
//! # Telemetry
//!
//! | kind | name | when | fields / labels |
//! |---|---|---|---|
//! | `tracing` event, `DEBUG` | `fallback answering` | each time the fallback (function or backup) takes a failed call | `fallback.name`, `fallback.kind` (`function` or `backup`), `fallback.error` |
//! | counter | `steadfast_fallback_answers_total` | the same | `name` |
//!
//! The counter needs the `metrics` feature; its handle is registered when the layer makes a
//! service, with the recorder installed at that time, never per call.
//!
//! # Failover and the request
//!
//! A backup needs the request again, after the primary consumed it, so
//! [`with_backup`](FallbackLayer::with_backup) needs `Request: Clone`; the request is cloned
//! before each call to the primary. An `http::Request` whose body is not `Clone` can be made so
//! with the retry module's replay body (a bounded buffer of the body as it is sent, replayed
//! for the next attempt): put it on the request before this layer, and the same buffer serves
//! retry's attempts and the failover.
//!
//! # Readiness
//!
//! `poll_ready` is the inner (primary) service's. An error from it that the predicate accepts is
//! kept, `poll_ready` answers `Ready(Ok(()))`, and the next call is answered by the fallback
//! without reaching the inner service; an error the predicate declines is returned as is. The
//! backup's readiness is polled by the response future, after the primary failed, right before
//! the backup is called.
//!
//! # Cancel safety
//!
//! Dropping a response future drops whichever call is in progress, the primary's or the
//! backup's; nothing else is held.
//!
//! # Errors
//!
//! The service's error type is [`BoxError`]. An error the predicate declines passes through
//! unchanged (boxed, never wrapped); otherwise the caller gets the fallback's answer: the
//! function's `Result`, or the backup's response or error (an error of the backup's `poll_ready`
//! included). The primary's error is then only in the tracing event.

pub mod future;
mod layer;
mod predicate;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use self::future::{FailoverFuture, ResponseFuture};
pub use self::layer::{Backup, DEFAULT_NAME, FallbackLayer, Function};
pub use self::predicate::{AllErrors, Predicate, RejectionsAndTimeouts};

use crate::BoxError;

/// What the services of one [`FallbackLayer`] share: the function (or `()` for a backup), the
/// predicate and the telemetry. Created once per service made, shared by its clones.
pub(crate) struct FallbackCore<F, P> {
    pub(crate) f: F,
    pub(crate) predicate: P,
    pub(crate) name: Cow<'static, str>,
    #[cfg(feature = "metrics")]
    pub(crate) answers: metrics::Counter,
}

impl<F, P> FallbackCore<F, P> {
    /// Reports that the fallback takes a failed call.
    fn answering(&self, error: &BoxError, kind: &'static str) {
        tracing::debug!(
            fallback.name = %self.name,
            fallback.kind = kind,
            fallback.error = %error,
            "fallback answering"
        );
        #[cfg(feature = "metrics")]
        self.answers.increment(1);
    }
}

/// Answers the failed calls of `S` with a function of the error; made by
/// [`FallbackLayer::new`]. See the [module docs](self).
pub struct Fallback<S, F, P> {
    inner: S,
    shared: Arc<FallbackCore<F, P>>,
    /// An error of `inner.poll_ready` that the predicate accepted, for the next call.
    failed: Option<BoxError>,
}

impl<S, F, P> Fallback<S, F, P> {
    fn new(inner: S, shared: Arc<FallbackCore<F, P>>) -> Self {
        Self {
            inner,
            shared,
            failed: None,
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

    /// Consumes the layer's service and returns the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, F, P> Clone for Fallback<S, F, P> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, F, P> fmt::Debug for Fallback<S, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Polls `inner`'s readiness; keeps an error the predicate accepts, for the fallback to answer.
fn poll_inner_ready<S, Req, P>(
    inner: &mut S,
    predicate: &P,
    failed: &mut Option<BoxError>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), BoxError>>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Predicate,
{
    if failed.is_some() {
        return Poll::Ready(Ok(()));
    }
    match inner.poll_ready(cx) {
        Poll::Ready(Err(error)) => {
            let error = error.into();
            if predicate.should_fallback(&error) {
                *failed = Some(error);
                Poll::Ready(Ok(()))
            } else {
                Poll::Ready(Err(error))
            }
        }
        other => other.map_err(Into::into),
    }
}

impl<S, F, P, Req> Service<Req> for Fallback<S, F, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(BoxError) -> Result<S::Response, BoxError>,
    P: Predicate,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, F, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        poll_inner_ready(
            &mut self.inner,
            &self.shared.predicate,
            &mut self.failed,
            cx,
        )
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        match self.failed.take() {
            Some(error) => ResponseFuture::failed(error, shared),
            None => ResponseFuture::called(self.inner.call(request), shared),
        }
    }
}

/// Fails the failed calls of `S` over to a backup service `B`; made by
/// [`FallbackLayer::with_backup`]. See the [module docs](self).
pub struct Failover<S, B, P> {
    inner: S,
    backup: B,
    shared: Arc<FallbackCore<(), P>>,
    /// An error of `inner.poll_ready` that the predicate accepted: the next call goes to `backup`.
    failed: Option<BoxError>,
}

impl<S, B, P> Failover<S, B, P> {
    fn new(inner: S, backup: B, shared: Arc<FallbackCore<(), P>>) -> Self {
        Self {
            inner,
            backup,
            shared,
            failed: None,
        }
    }

    /// The primary service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The primary service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The backup service.
    pub fn backup(&self) -> &B {
        &self.backup
    }

    /// Consumes the layer's service and returns the primary one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, B: Clone, P> Clone for Failover<S, B, P> {
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            self.backup.clone(),
            Arc::clone(&self.shared),
        )
    }
}

impl<S: fmt::Debug, B: fmt::Debug, P> fmt::Debug for Failover<S, B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("inner", &self.inner)
            .field("backup", &self.backup)
            .field("name", &self.shared.name)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<S, B, P, Req> Service<Req> for Failover<S, B, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    B: Service<Req, Response = S::Response> + Clone,
    B::Error: Into<BoxError>,
    P: Predicate,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = FailoverFuture<S::Future, B, Req, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        poll_inner_ready(
            &mut self.inner,
            &self.shared.predicate,
            &mut self.failed,
            cx,
        )
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let backup = self.backup.clone();
        match self.failed.take() {
            Some(error) => {
                shared.answering(&error, "backup");
                FailoverFuture::backup(backup, request, shared)
            }
            None => {
                let copy = request.clone();
                FailoverFuture::primary(self.inner.call(request), backup, copy, shared)
            }
        }
    }
}
