use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::Deadline;
use super::future::{InboundResponseFuture, PropagateResponseFuture};
use super::header::{self, GRPC_TIMEOUT};
use crate::BoxError;

/// The safety margin of [`InboundDeadlineLayer::safety_margin`] when none is set: zero.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::ZERO;

/// Server side: reads the deadline a request arrived with (`grpc-timeout`, and optionally a
/// header in milliseconds) and makes it the deadline of the call.
///
/// The deadline is `now + timeout - safety margin`, narrowed by any deadline already current
/// or already in the request's extensions. The inner service's `call` and its future run with it
/// as [`Deadline::current`], and it is inserted into the request's extensions. A request without
/// a (valid) deadline header passes through untouched. A malformed header is ignored with a
/// `debug` event; when both headers are present, the shorter timeout wins.
///
/// The layer adds no way to fail: the inner service's error type passes through. To fail a call
/// whose deadline passes, put a [`TimeoutLayer`](crate::timeout::TimeoutLayer) inside it.
///
/// Cheap to clone; it holds only its configuration (no shared state).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::Request;
/// use steadfast::deadline::{Deadline, ENVOY_EXPECTED_RQ_TIMEOUT_MS, InboundDeadlineLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(
///         InboundDeadlineLayer::new()
///             .header(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
///             .safety_margin(Duration::from_millis(5)),
///     )
///     .service(service_fn(|req: Request<()>| async move {
///         assert_eq!(req.extensions().get::<Deadline>().copied(), Deadline::current());
///         Ok::<_, std::convert::Infallible>(Deadline::current().map(|d| d.remaining()))
///     }));
///
/// let req = Request::builder().header("grpc-timeout", "100m").body(()).unwrap();
/// let left = svc.oneshot(req).await.unwrap();
/// assert_eq!(left, Some(Duration::from_millis(95)));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InboundDeadlineLayer {
    config: InboundConfig,
}

#[derive(Debug, Clone)]
struct InboundConfig {
    grpc_timeout: bool,
    header: Option<HeaderName>,
    safety_margin: Duration,
}

impl Default for InboundDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl InboundDeadlineLayer {
    /// A layer that reads `grpc-timeout`, with no safety margin.
    pub fn new() -> Self {
        Self {
            config: InboundConfig {
                grpc_timeout: true,
                header: None,
                safety_margin: DEFAULT_SAFETY_MARGIN,
            },
        }
    }

    /// A layer that reads no header: it records the [current](Deadline::current) deadline in the
    /// request's extensions (when there is one, and earlier than one already there).
    ///
    /// Put it under a [`TimeoutLayer`](crate::timeout::TimeoutLayer) to keep the extension equal
    /// to the deadline that timeout narrowed, for code that reads the extension rather than
    /// [`Deadline::current`]. Same as `InboundDeadlineLayer::new().grpc_timeout(false)`.
    pub fn current_only() -> Self {
        Self::new().grpc_timeout(false)
    }

    /// Whether to read the `grpc-timeout` header.
    ///
    /// Defaults to `true`.
    pub fn grpc_timeout(mut self, read: bool) -> Self {
        self.config.grpc_timeout = read;
        self
    }

    /// Also read `name`, a header holding a whole number of milliseconds (for example
    /// [`ENVOY_EXPECTED_RQ_TIMEOUT_MS`](super::ENVOY_EXPECTED_RQ_TIMEOUT_MS)).
    ///
    /// Defaults to none: only `grpc-timeout` is read.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.config.header = Some(name);
        self
    }

    /// Time taken off the received timeout, to leave room for sending the answer back (or for
    /// clock and network delays on the way in). A margin longer than the timeout leaves a
    /// deadline that has already passed.
    ///
    /// Defaults to [`DEFAULT_SAFETY_MARGIN`] (zero).
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.config.safety_margin = margin;
        self
    }
}

impl<S> Layer<S> for InboundDeadlineLayer {
    type Service = InboundDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InboundDeadline {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`InboundDeadlineLayer`]; see there.
#[derive(Debug, Clone)]
pub struct InboundDeadline<S> {
    inner: S,
    config: InboundConfig,
}

impl<S> InboundDeadline<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for InboundDeadline<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InboundResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let config = &self.config;
        let headers = request.headers();
        let grpc = config
            .grpc_timeout
            .then(|| header::read(headers, &GRPC_TIMEOUT, true))
            .flatten();
        let other = config
            .header
            .as_ref()
            .and_then(|name| header::read(headers, name, false));
        let received = match (grpc, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|timeout| Deadline::after(timeout.saturating_sub(config.safety_margin)));

        let deadline = [
            received,
            Deadline::current(),
            request.extensions().get::<Deadline>().copied(),
        ]
        .into_iter()
        .flatten()
        .min();

        match deadline {
            Some(deadline) => {
                request.extensions_mut().insert(deadline);
                let inner = &mut self.inner;
                let future = deadline.sync_scope(|| inner.call(request));
                InboundResponseFuture::scoped(deadline.scope(future))
            }
            None => InboundResponseFuture::plain(self.inner.call(request)),
        }
    }
}

/// Client side: writes the time left until the call's deadline onto outgoing requests, as
/// `grpc-timeout` and/or a header in milliseconds, and fails at once a call whose deadline
/// has already passed.
///
/// The deadline is the earlier of [`Deadline::current`] and a [`Deadline`] in the request's
/// extensions; a request with neither passes through untouched. `grpc-timeout` is written in
/// the finest unit that fits 8 digits, rounded down; the millisecond header is rounded up (so
/// it never reads 0, which some proxies take as "no timeout"). A header the request already
/// carries is kept if it holds a shorter timeout.
///
/// A call whose deadline has passed fails with
/// [`Elapsed`](super::Elapsed) of kind
/// [`InheritedDeadline`](super::ElapsedKind::InheritedDeadline), without reaching
/// the inner service. Errors are [`BoxError`]; the inner service's pass through boxed.
///
/// Cheap to clone; it holds only its configuration (no shared state).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::Request;
/// use steadfast::deadline::{Deadline, PropagateDeadlineLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let client = ServiceBuilder::new()
///     .layer(PropagateDeadlineLayer::new())
///     .service(service_fn(|req: Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(req.headers()["grpc-timeout"].clone())
///     }));
///
/// let sent = Deadline::after(Duration::from_millis(250))
///     .scope(client.oneshot(Request::new(())))
///     .await
///     .unwrap();
/// assert_eq!(sent, "250000u");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PropagateDeadlineLayer {
    config: PropagateConfig,
}

#[derive(Debug, Clone)]
struct PropagateConfig {
    grpc_timeout: bool,
    header: Option<HeaderName>,
}

impl Default for PropagateDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl PropagateDeadlineLayer {
    /// A layer that writes `grpc-timeout`.
    pub fn new() -> Self {
        Self {
            config: PropagateConfig {
                grpc_timeout: true,
                header: None,
            },
        }
    }

    /// Whether to write the `grpc-timeout` header.
    ///
    /// Defaults to `true`.
    pub fn grpc_timeout(mut self, write: bool) -> Self {
        self.config.grpc_timeout = write;
        self
    }

    /// Also write `name`, a header holding the time left in whole milliseconds.
    ///
    /// Defaults to none: only `grpc-timeout` is written.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.config.header = Some(name);
        self
    }
}

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`PropagateDeadlineLayer`]; see there.
#[derive(Debug, Clone)]
pub struct PropagateDeadline<S> {
    inner: S,
    config: PropagateConfig,
}

impl<S> PropagateDeadline<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for PropagateDeadline<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = PropagateResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let deadline = match (
            Deadline::current(),
            request.extensions().get::<Deadline>().copied(),
        ) {
            (Some(a), Some(b)) => Some(a.min(Some(b))),
            (a, b) => a.or(b),
        };
        if let Some(deadline) = deadline {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                tracing::debug!(
                    target: "steadfast::deadline",
                    {
                        timeout.kind = "deadline",
                        timeout.before_call = true
                    },
                    "call failed: deadline passed"
                );
                return PropagateResponseFuture::passed();
            }
            let headers = request.headers_mut();
            if self.config.grpc_timeout {
                header::write(headers, &GRPC_TIMEOUT, true, remaining);
            }
            if let Some(name) = &self.config.header {
                header::write(headers, name, false, remaining);
            }
        }
        PropagateResponseFuture::called(self.inner.call(request))
    }
}
