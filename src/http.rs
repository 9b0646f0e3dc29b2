//! Rejections as HTTP responses: an open breaker becomes a 503 with `Retry-After`, a timeout a
//! 504, a full bulkhead a 503 (or a 429), anything else a 500.
//!
//! axum wants every service to be infallible: an error that reaches hyper closes the connection
//! without a response. Put [`RejectionsAsResponsesLayer`] above the layers of this crate and the
//! stack's error type becomes [`Infallible`], so it goes straight into `Router::layer` with no
//! `HandleErrorLayer`. Those who already use axum's `HandleErrorLayer` pass it
//! [`handle_error`]; those who drive a service by hand call [`error_response`] or
//! [`RejectionResponses::to_response`].
//!
//! The library does not depend on axum: it builds [`http::Response`]s, which axum answers as they
//! are.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
//! use steadfast::circuit_breaker::CircuitBreakerLayer;
//! use steadfast::http::RejectionsAsResponsesLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let breaker = CircuitBreakerLayer::builder().build()?;
//!
//! // The breaker's error is a `BoxError`; the layer above it makes the stack `Infallible`.
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(RejectionsAsResponsesLayer::new())
//!         .layer(breaker.clone()),
//! );
//!
//! breaker.force_open();
//! let response = app.oneshot(Request::new(Body::empty())).await?;
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(response.headers()["retry-after"], "30");
//! # Ok(())
//! # }
//! ```
//!
//! # The mapping
//!
//! The error is looked up by type, the error itself first and then each of its
//! [`source`](Error::source)s in turn; the first rejection found decides (see
//! [`Rejection::classify`]).
//!
//! | error | status | headers | setter |
//! |---|---|---|---|
//! | `CircuitOpen` | 503 Service Unavailable | `Retry-After`: [`retry_after`](crate::circuit_breaker::CircuitOpen::retry_after) in whole seconds, rounded up, at least 1 | [`circuit_open_status`](Builder::circuit_open_status), [`retry_after`](Builder::retry_after) |
//! | `BulkheadFull` | 503 Service Unavailable | — | [`bulkhead_full_status`](Builder::bulkhead_full_status) (429 is the other usual choice) |
//! | `Elapsed` | 504 Gateway Timeout | — | [`timeout_status`](Builder::timeout_status) |
//! | anything else | 500 Internal Server Error | — | [`other_status`](Builder::other_status) |
//!
//! The body is empty (`B::default()`) unless a body maker is set with [`Builder::body`]: a
//! closure, [`PlainText`], or your own [`MakeBody`]. [`handle_error`] uses [`PlainText`], which
//! writes the rejection's message but never the message of another error (it might tell a
//! client more than it should).
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | [`circuit_open_status`](Builder::circuit_open_status) | [`DEFAULT_CIRCUIT_OPEN_STATUS`]: 503 |
//! | [`bulkhead_full_status`](Builder::bulkhead_full_status) | [`DEFAULT_BULKHEAD_FULL_STATUS`]: 503 |
//! | [`timeout_status`](Builder::timeout_status) | [`DEFAULT_TIMEOUT_STATUS`]: 504 |
//! | [`other_status`](Builder::other_status) | [`DEFAULT_OTHER_STATUS`]: 500 |
//! | [`retry_after`](Builder::retry_after) | [`DEFAULT_RETRY_AFTER`]: `true` |
//! | [`body`](Builder::body) | `()`: an empty body |
//!
//! # Telemetry
//!
//! | kind | name | fields | when |
//! |---|---|---|---|
//! | event `trace` | "rejection turned into a response" | `rejection.kind`, `http.status_code` | each rejection mapped |
//! | event `debug` | "error turned into a response" | `rejection.kind` = `other`, `http.status_code`, `error` | each other error mapped |
//!
//! The layers that reject already report each rejection (a `debug` event and a counter), so the
//! mapping adds only a `trace` event for them. An error of the inner service is reported at
//! `debug`, not `warn`: during an outage every request fails, and a log line per request would
//! make the outage worse. No metrics: the rejecting layers count their rejections.
//!
//! # Readiness
//!
//! `poll_ready` polls the inner service. If that fails, the error is kept, `poll_ready` returns
//! `Ready(Ok(()))`, and the next `call` answers with the error's response without calling the
//! inner service. The layers of this crate never fail `poll_ready` (they reject in `call`), so
//! this matters only for other layers below.
//!
//! # Cancel safety
//!
//! The layer holds nothing: dropping a response future drops the inner future.
//!
//! # Errors
//!
//! None: the service's error type is [`Infallible`]. Every error of the inner service, from
//! `poll_ready` or from its response future, becomes a response.
//!
//! # Cost
//!
//! On a successful call the layer adds one move of the mapping (a few bytes, plus the body
//! maker, which should be cheap to clone) into the response future: no allocation, no lock, no
//! atomic. An error costs the response (and the `Retry-After` value).
//!
//! # Differences from axum's `HandleErrorLayer`
//!
//! tower has no layer for this job; axum's `HandleErrorLayer` is the usual answer. It clones the
//! inner service for every call and drives the clone with `oneshot`, and its handler is an
//! `async` function. [`RejectionsAsResponsesLayer`] forwards `poll_ready` and `call` to the
//! service it wraps (no `Clone` needed, backpressure kept), maps in the response future with no
//! allocation on the success path, and knows this crate's rejections. The two mix:
//! [`handle_error`] is a ready handler for `HandleErrorLayer`.

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
#[cfg(feature = "circuit-breaker")]
use std::time::Duration;

use ::http::header::CONTENT_TYPE;
#[cfg(feature = "circuit-breaker")]
use ::http::header::RETRY_AFTER;
use ::http::{HeaderMap, HeaderValue, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::error::check_range;

#[cfg(feature = "bulkhead")]
use crate::bulkhead::BulkheadFull;
#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::CircuitOpen;
#[cfg(feature = "timeout")]
use crate::timeout::Elapsed;

/// The default status for an open circuit breaker: 503 Service Unavailable.
pub const DEFAULT_CIRCUIT_OPEN_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
/// The default status for a full bulkhead: 503 Service Unavailable.
pub const DEFAULT_BULKHEAD_FULL_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
/// The default status for a timeout: 504 Gateway Timeout.
pub const DEFAULT_TIMEOUT_STATUS: StatusCode = StatusCode::GATEWAY_TIMEOUT;
/// The default status for any other error: 500 Internal Server Error.
pub const DEFAULT_OTHER_STATUS: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;
/// Whether an open breaker's response carries `Retry-After` by default: yes.
pub const DEFAULT_RETRY_AFTER: bool = true;

/// What an error is, for the mapping: one of this crate's rejections, or another error.
///
/// More kinds may come with new layers, hence `#[non_exhaustive]`; the variants present depend
/// on the enabled features.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// An open (or forced-open, or saturated half-open) circuit breaker.
    #[cfg(feature = "circuit-breaker")]
    CircuitOpen(&'a CircuitOpen),
    /// A bulkhead with no free permit.
    #[cfg(feature = "bulkhead")]
    BulkheadFull(&'a BulkheadFull),
    /// A timeout.
    #[cfg(feature = "timeout")]
    Elapsed(&'a Elapsed),
    /// Any other error: the one that was classified (the outermost).
    Other(&'a (dyn Error + 'static)),
}

impl<'a> Rejection<'a> {
    /// Classifies `error`: the error itself, then each error of its
    /// [`source`](Error::source) chain in turn, is checked for a rejection of this crate; the
    /// first found is the answer. With none in the chain, it is [`Rejection::Other`] of `error`.
    ///
    /// ```
    /// use steadfast::BoxError;
    /// use steadfast::http::Rejection;
    ///
    /// let error: BoxError = "connection reset".into();
    /// assert!(matches!(Rejection::classify(&*error), Rejection::Other(_)));
    /// assert_eq!(Rejection::classify(&*error).kind(), "other");
    /// ```
    pub fn classify(error: &'a (dyn Error + 'static)) -> Self {
        let mut current = Some(error);
        while let Some(candidate) = current {
            #[cfg(feature = "circuit-breaker")]
            if let Some(open) = candidate.downcast_ref::<CircuitOpen>() {
                return Self::CircuitOpen(open);
            }
            #[cfg(feature = "bulkhead")]
            if let Some(full) = candidate.downcast_ref::<BulkheadFull>() {
                return Self::BulkheadFull(full);
            }
            #[cfg(feature = "timeout")]
            if let Some(elapsed) = candidate.downcast_ref::<Elapsed>() {
                return Self::Elapsed(elapsed);
            }
            current = candidate.source();
        }
        Self::Other(error)
    }

    /// A label for logs: `circuit_open`, `bulkhead_full`, `timeout` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Self::CircuitOpen(_) => "circuit_open",
            #[cfg(feature = "bulkhead")]
            Self::BulkheadFull(_) => "bulkhead_full",
            #[cfg(feature = "timeout")]
            Self::Elapsed(_) => "timeout",
            Self::Other(_) => "other",
        }
    }

    /// The error that was recognized (for [`Rejection::Other`], the classified error itself).
    pub fn error(&self) -> &'a (dyn Error + 'static) {
        match *self {
            #[cfg(feature = "circuit-breaker")]
            Self::CircuitOpen(open) => open,
            #[cfg(feature = "bulkhead")]
            Self::BulkheadFull(full) => full,
            #[cfg(feature = "timeout")]
            Self::Elapsed(elapsed) => elapsed,
            Self::Other(error) => error,
        }
    }

    /// Whether this is one of the crate's rejections rather than [`Rejection::Other`].
    pub fn is_rejection(&self) -> bool {
        !matches!(self, Self::Other(_))
    }
}

/// Makes the body (and may add headers) of the response for an error.
///
/// Implemented by `()` (an empty `B::default()`, the default), by [`PlainText`], and by every
/// closure `Fn(Rejection<'_>, StatusCode) -> B`. Implement it yourself to set headers too (a
/// `content-type`, for example).
pub trait MakeBody<B> {
    /// The body of the response with `status` for `rejection`; `headers` are the response's,
    /// to add to.
    fn make_body(&self, rejection: Rejection<'_>, status: StatusCode, headers: &mut HeaderMap)
    -> B;
}

impl<B: Default> MakeBody<B> for () {
    fn make_body(&self, _: Rejection<'_>, _: StatusCode, _: &mut HeaderMap) -> B {
        B::default()
    }
}

impl<B, F> MakeBody<B> for F
where
    F: Fn(Rejection<'_>, StatusCode) -> B,
{
    fn make_body(&self, rejection: Rejection<'_>, status: StatusCode, _: &mut HeaderMap) -> B {
        self(rejection, status)
    }
}

/// A `text/plain; charset=utf-8` body: the rejection's message (its `Display`) for a rejection
/// of this crate, and only the status's reason phrase (`Internal Server Error`) for any other
/// error, whose message might tell a client too much.
///
/// Works with every body that is `From<String>`: `String`, axum's `Body`,
/// `http_body_util::Full<Bytes>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainText;

impl<B: From<String>> MakeBody<B> for PlainText {
    fn make_body(
        &self,
        rejection: Rejection<'_>,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> B {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let text = if rejection.is_rejection() {
            rejection.error().to_string()
        } else {
            status.canonical_reason().unwrap_or("error").to_owned()
        };
        B::from(text)
    }
}

/// How errors become responses: a status per kind of rejection, whether to send `Retry-After`,
/// and a body maker `M`. See the [module docs](self) for the mapping.
///
/// [`RejectionResponses::new`] (and `default()`) is the default mapping; [`builder`](Self::builder)
/// changes it.
#[derive(Clone, Copy)]
pub struct RejectionResponses<M = ()> {
    circuit_open: StatusCode,
    bulkhead_full: StatusCode,
    timeout: StatusCode,
    other: StatusCode,
    retry_after: bool,
    body: M,
}

impl RejectionResponses {
    /// The default mapping: 503 with `Retry-After`, 503, 504, 500, and an empty body.
    pub const fn new() -> Self {
        Self {
            circuit_open: DEFAULT_CIRCUIT_OPEN_STATUS,
            bulkhead_full: DEFAULT_BULKHEAD_FULL_STATUS,
            timeout: DEFAULT_TIMEOUT_STATUS,
            other: DEFAULT_OTHER_STATUS,
            retry_after: DEFAULT_RETRY_AFTER,
            body: (),
        }
    }

    /// A builder that starts from the defaults.
    pub fn builder() -> Builder {
        Builder {
            responses: Self::new(),
        }
    }
}

impl Default for RejectionResponses {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RejectionResponses<M> {
    /// The same mapping with another body maker.
    fn with_body<N>(self, body: N) -> RejectionResponses<N> {
        RejectionResponses {
            circuit_open: self.circuit_open,
            bulkhead_full: self.bulkhead_full,
            timeout: self.timeout,
            other: self.other,
            retry_after: self.retry_after,
            body,
        }
    }

    /// The status that `rejection` is answered with.
    pub fn status(&self, rejection: &Rejection<'_>) -> StatusCode {
        match rejection {
            #[cfg(feature = "circuit-breaker")]
            Rejection::CircuitOpen(_) => self.circuit_open,
            #[cfg(feature = "bulkhead")]
            Rejection::BulkheadFull(_) => self.bulkhead_full,
            #[cfg(feature = "timeout")]
            Rejection::Elapsed(_) => self.timeout,
            Rejection::Other(_) => self.other,
        }
    }

    /// The response for `error`: the status for its kind, `Retry-After` for an open breaker
    /// (unless turned off), and the body maker's body.
    ///
    /// ```
    /// use http::StatusCode;
    /// use steadfast::BoxError;
    /// use steadfast::http::RejectionResponses;
    ///
    /// let error: BoxError = "backend exploded".into();
    /// let response = RejectionResponses::new().to_response::<String>(&error);
    /// assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// assert!(response.body().is_empty());
    /// ```
    pub fn to_response<B>(&self, error: &BoxError) -> Response<B>
    where
        M: MakeBody<B>,
    {
        let error: &(dyn Error + 'static) = &**error;
        let rejection = Rejection::classify(error);
        let status = self.status(&rejection);
        let mut headers = HeaderMap::new();
        #[cfg(feature = "circuit-breaker")]
        if let Rejection::CircuitOpen(open) = rejection {
            if self.retry_after {
                headers.insert(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(open.retry_after())),
                );
            }
        }
        #[cfg(not(feature = "circuit-breaker"))]
        let _ = self.retry_after;
        let body = self.body.make_body(rejection, status, &mut headers);
        if rejection.is_rejection() {
            tracing::trace!(
                rejection.kind = rejection.kind(),
                http.status_code = status.as_u16(),
                "rejection turned into a response"
            );
        } else {
            tracing::debug!(
                rejection.kind = rejection.kind(),
                http.status_code = status.as_u16(),
                error = %error,
                "error turned into a response"
            );
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

impl<M> fmt::Debug for RejectionResponses<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionResponses")
            .field("circuit_open", &self.circuit_open)
            .field("bulkhead_full", &self.bulkhead_full)
            .field("timeout", &self.timeout)
            .field("other", &self.other)
            .field("retry_after", &self.retry_after)
            .field("body", &std::any::type_name::<M>())
            .finish()
    }
}

#[cfg(feature = "circuit-breaker")]
/// `Retry-After` in whole seconds: rounded up, at least 1 (a `0` would invite an immediate
/// retry into a breaker that is still open).
fn retry_after_secs(retry_after: Duration) -> u64 {
    let secs = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
    secs.max(1)
}

/// Builds a [`RejectionResponses`]; made by [`RejectionResponses::builder`].
///
/// ```
/// use http::StatusCode;
/// use steadfast::http::{PlainText, RejectionResponses};
///
/// let responses = RejectionResponses::builder()
///     .bulkhead_full_status(StatusCode::TOO_MANY_REQUESTS)
///     .retry_after(false)
///     .body(PlainText)
///     .build()?;
/// # let _ = responses;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Builder<M = ()> {
    responses: RejectionResponses<M>,
}

impl<M> Builder<M> {
    /// The status for an open circuit breaker; must be a client or server error (400–599).
    /// Defaults to [`DEFAULT_CIRCUIT_OPEN_STATUS`] (503).
    pub fn circuit_open_status(mut self, status: StatusCode) -> Self {
        self.responses.circuit_open = status;
        self
    }

    /// The status for a full bulkhead, usually 503 or 429 Too Many Requests; must be a client
    /// or server error (400–599). Defaults to [`DEFAULT_BULKHEAD_FULL_STATUS`] (503).
    pub fn bulkhead_full_status(mut self, status: StatusCode) -> Self {
        self.responses.bulkhead_full = status;
        self
    }

    /// The status for a timeout; must be a client or server error (400–599). Defaults to
    /// [`DEFAULT_TIMEOUT_STATUS`] (504).
    pub fn timeout_status(mut self, status: StatusCode) -> Self {
        self.responses.timeout = status;
        self
    }

    /// The status for any error that is not a rejection of this crate; must be a client or
    /// server error (400–599). Defaults to [`DEFAULT_OTHER_STATUS`] (500).
    pub fn other_status(mut self, status: StatusCode) -> Self {
        self.responses.other = status;
        self
    }

    /// Whether the response for an open breaker carries `Retry-After`: the breaker's
    /// [`retry_after`](crate::circuit_breaker::CircuitOpen::retry_after) in whole seconds,
    /// rounded up, at least 1. Defaults to [`DEFAULT_RETRY_AFTER`] (`true`).
    pub fn retry_after(mut self, enabled: bool) -> Self {
        self.responses.retry_after = enabled;
        self
    }

    /// The body maker: a closure `Fn(Rejection<'_>, StatusCode) -> B` (annotate its first
    /// argument as `Rejection<'_>`), [`PlainText`], or your own [`MakeBody`]. Defaults to `()`,
    /// an empty `B::default()`.
    pub fn body<N>(self, body: N) -> Builder<N> {
        Builder {
            responses: self.responses.with_body(body),
        }
    }

    /// Checks every status and returns the mapping.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`](crate::ConfigError) naming the setter whose status is not in
    /// 400–599: answering a rejection with a success would hide it from every client and every
    /// breaker downstream.
    pub fn build(self) -> Result<RejectionResponses<M>, crate::ConfigError> {
        let r = &self.responses;
        for (field, status) in [
            ("circuit_open_status", r.circuit_open),
            ("bulkhead_full_status", r.bulkhead_full),
            ("timeout_status", r.timeout),
            ("other_status", r.other),
        ] {
            check_range(field, status.as_u16(), 400, 599)?;
        }
        Ok(self.responses)
    }
}

impl<M> fmt::Debug for Builder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("responses", &self.responses)
            .finish()
    }
}

/// The default response for `error`: [`RejectionResponses::new`]'s mapping with an empty body.
///
/// Takes the error by value so that it composes:
/// `service.call(request).await.unwrap_or_else(error_response)`.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Response, StatusCode};
/// use steadfast::BoxError;
/// use steadfast::http::error_response;
///
/// let result: Result<Response<String>, BoxError> = Err("boom".into());
/// let response = result.unwrap_or_else(error_response);
/// assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
/// # let _: Option<Infallible> = None;
/// ```
pub fn error_response<B: Default>(error: BoxError) -> Response<B> {
    RejectionResponses::new().to_response(&error)
}

/// A handler for axum's `HandleErrorLayer`: the default mapping with a [`PlainText`] body.
///
/// ```
/// use axum::{Router, error_handling::HandleErrorLayer, routing::get};
/// use steadfast::circuit_breaker::CircuitBreakerLayer;
/// use steadfast::http::handle_error;
/// use tower::ServiceBuilder;
///
/// # fn main() -> Result<(), steadfast::ConfigError> {
/// let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
///     ServiceBuilder::new()
///         .layer(HandleErrorLayer::new(handle_error))
///         .layer(CircuitBreakerLayer::builder().build()?),
/// );
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub async fn handle_error(error: BoxError) -> Response<String> {
    RejectionResponses::new()
        .with_body(PlainText)
        .to_response(&error)
}

/// Turns every error of the service below into a response, so the stack's error type becomes
/// [`Infallible`], as axum's `Router::layer` needs; see the [module docs](self).
///
/// The layer holds only the mapping (no shared state): clones and the services it makes each
/// copy it.
#[derive(Clone, Copy)]
pub struct RejectionsAsResponsesLayer<M = ()> {
    responses: RejectionResponses<M>,
}

impl RejectionsAsResponsesLayer {
    /// The layer with the default mapping ([`RejectionResponses::new`]).
    pub const fn new() -> Self {
        Self {
            responses: RejectionResponses::new(),
        }
    }
}

impl Default for RejectionsAsResponsesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RejectionsAsResponsesLayer<M> {
    /// The layer with the mapping `responses`.
    pub fn with_responses(responses: RejectionResponses<M>) -> Self {
        Self { responses }
    }

    /// The mapping.
    pub fn responses(&self) -> &RejectionResponses<M> {
        &self.responses
    }
}

impl<M> fmt::Debug for RejectionsAsResponsesLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionsAsResponsesLayer")
            .field("responses", &self.responses)
            .finish()
    }
}

impl<S, M: Clone> Layer<S> for RejectionsAsResponsesLayer<M> {
    type Service = RejectionsAsResponses<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RejectionsAsResponses {
            inner,
            responses: self.responses.clone(),
            not_ready: None,
        }
    }
}

/// A service whose errors become responses; made by [`RejectionsAsResponsesLayer`].
pub struct RejectionsAsResponses<S, M = ()> {
    inner: S,
    responses: RejectionResponses<M>,
    /// The error of the inner service's `poll_ready`, answered by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S, M> RejectionsAsResponses<S, M> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, M: Clone> Clone for RejectionsAsResponses<S, M> {
    /// A clone holds no `poll_ready` error: it must be polled ready itself.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            responses: self.responses.clone(),
            not_ready: None,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for RejectionsAsResponses<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionsAsResponses")
            .field("inner", &self.inner)
            .field("responses", &self.responses)
            .field("not_ready", &self.not_ready)
            .finish()
    }
}

impl<S, M, Req, B> Service<Req> for RejectionsAsResponses<S, M>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    M: MakeBody<B> + Clone,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = future::ResponseFuture<S::Future, M>;

    #[inline]
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        use std::task::Poll;
        if self.not_ready.is_none() {
            match self.inner.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => self.not_ready = Some(error.into()),
            }
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.not_ready.take() {
            Some(error) => future::ResponseFuture::not_ready(error, self.responses.clone()),
            None => {
                future::ResponseFuture::called(self.inner.call(request), self.responses.clone())
            }
        }
    }
}

pub mod future {
    //! The response future of [`RejectionsAsResponses`](super::RejectionsAsResponses).

    use std::convert::Infallible;
    use std::fmt;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use ::http::Response;
    use pin_project_lite::pin_project;

    use super::{MakeBody, RejectionResponses};
    use crate::BoxError;

    pin_project! {
        /// The response of the inner service, or the response for its error.
        #[must_use = "futures do nothing unless polled"]
        pub struct ResponseFuture<F, M> {
            #[pin]
            kind: Kind<F>,
            responses: RejectionResponses<M>,
        }
    }

    pin_project! {
        #[project = KindProj]
        enum Kind<F> {
            // The inner service was called: its future is the only one polled.
            Called { #[pin] future: F },
            // The inner service failed `poll_ready`: answered without calling it.
            NotReady { error: BoxError },
        }
    }

    impl<F, M> ResponseFuture<F, M> {
        pub(super) fn called(future: F, responses: RejectionResponses<M>) -> Self {
            Self {
                kind: Kind::Called { future },
                responses,
            }
        }

        pub(super) fn not_ready(error: BoxError, responses: RejectionResponses<M>) -> Self {
            Self {
                kind: Kind::NotReady { error },
                responses,
            }
        }
    }

    impl<F, M, B, E> Future for ResponseFuture<F, M>
    where
        F: Future<Output = Result<Response<B>, E>>,
        E: Into<BoxError>,
        M: MakeBody<B>,
    {
        type Output = Result<Response<B>, Infallible>;

        #[inline]
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            match this.kind.project() {
                KindProj::Called { future } => match ready!(future.poll(cx)) {
                    Ok(response) => Poll::Ready(Ok(response)),
                    Err(error) => Poll::Ready(Ok(respond(this.responses, error.into()))),
                },
                // Polling again after completion answers the same response again: no panic.
                KindProj::NotReady { error } => Poll::Ready(Ok(this.responses.to_response(error))),
            }
        }
    }

    /// The error path, kept out of `poll` so the success path stays small.
    #[cold]
    #[inline(never)]
    fn respond<B, M: MakeBody<B>>(
        responses: &RejectionResponses<M>,
        error: BoxError,
    ) -> Response<B> {
        responses.to_response(&error)
    }

    impl<F, M> fmt::Debug for ResponseFuture<F, M> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ResponseFuture").finish_non_exhaustive()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "circuit-breaker")]
    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }

    #[cfg(feature = "timeout")]
    mod timeout {
        use ::http::header::CONTENT_TYPE;

        use super::super::*;

        fn elapsed() -> BoxError {
            Box::new(Elapsed::new())
        }

        #[test]
        fn a_timeout_is_a_504_without_headers() {
            let response = RejectionResponses::new().to_response::<String>(&elapsed());
            assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
            assert!(response.headers().is_empty());
            assert_eq!(response.body(), "");
            assert_eq!(Rejection::classify(&*elapsed()).kind(), "timeout");
        }

        #[test]
        fn a_timeout_status_is_configurable_and_plain_text_tells_it() {
            let responses = RejectionResponses::builder()
                .timeout_status(StatusCode::SERVICE_UNAVAILABLE)
                .body(PlainText)
                .build()
                .unwrap();
            let response = responses.to_response::<String>(&elapsed());
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.body(), "request timed out");
            assert_eq!(response.headers().len(), 1);
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
        }

        #[test]
        fn the_layer_answers_an_inner_timeout_with_504() {
            use std::future::Future;
            use std::pin::pin;
            use std::task::{Context, Poll, Waker};

            let inner = tower_service_fn(|| Err(elapsed()));
            let mut service = RejectionsAsResponsesLayer::new().layer(inner);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            let mut future = pin!(service.call(()));
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(response)) => {
                    let response: Response<String> = response;
                    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
                }
                _ => panic!("not ready"),
            }
        }

        /// A ready service answering every call with `answer()`.
        fn tower_service_fn<F>(answer: F) -> Answer<F> {
            Answer(answer)
        }

        struct Answer<F>(F);

        impl<F> Service<()> for Answer<F>
        where
            F: Fn() -> Result<Response<String>, BoxError>,
        {
            type Response = Response<String>;
            type Error = BoxError;
            type Future = std::future::Ready<Result<Response<String>, BoxError>>;

            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), BoxError>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, _: ()) -> Self::Future {
                std::future::ready((self.0)())
            }
        }
    }

    #[cfg(feature = "bulkhead")]
    mod bulkhead {
        use std::time::Duration;

        use ::http::header::{CONTENT_TYPE, RETRY_AFTER};

        use super::super::*;

        fn full() -> BoxError {
            Box::new(BulkheadFull::new(4, Duration::from_millis(20)))
        }

        #[test]
        fn a_full_bulkhead_is_a_503_without_retry_after() {
            let response = RejectionResponses::new().to_response::<String>(&full());
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().is_empty());
            assert_eq!(response.body(), "");
        }

        #[test]
        fn a_full_bulkhead_can_be_a_429_with_its_message() {
            let responses = RejectionResponses::builder()
                .bulkhead_full_status(StatusCode::TOO_MANY_REQUESTS)
                .body(PlainText)
                .build()
                .unwrap();
            let response = responses.to_response::<String>(&full());
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                response.body(),
                "bulkhead full: 4 concurrent calls in flight"
            );
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
            assert!(!response.headers().contains_key(RETRY_AFTER));
        }

        #[test]
        fn a_full_bulkhead_is_found_in_a_source_chain() {
            #[derive(Debug)]
            struct Wrapper(BulkheadFull);
            impl fmt::Display for Wrapper {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("wrapped")
                }
            }
            impl Error for Wrapper {
                fn source(&self) -> Option<&(dyn Error + 'static)> {
                    Some(&self.0)
                }
            }
            let error: BoxError = Box::new(Wrapper(BulkheadFull::new(1, Duration::ZERO)));
            let rejection = Rejection::classify(&*error);
            assert_eq!(rejection.kind(), "bulkhead_full");
            let response = RejectionResponses::new().to_response::<String>(&error);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }

        #[test]
        fn the_closure_body_maker_sees_the_bulkhead() {
            let responses = RejectionResponses::builder()
                .body(
                    |rejection: Rejection<'_>, status: StatusCode| match rejection {
                        Rejection::BulkheadFull(full) => {
                            format!("{} {}", status.as_u16(), full.max_concurrent_calls())
                        }
                        _ => String::new(),
                    },
                )
                .build()
                .unwrap();
            assert_eq!(responses.to_response(&full()).into_body(), "503 4");
        }
    }
}
