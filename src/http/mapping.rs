//! How errors become responses: the statuses, `Retry-After`, and the body maker.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use ::http::header::{CONTENT_TYPE, RETRY_AFTER};
use ::http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::BoxError;
use crate::Rejection;
use crate::error::check_range;

/// The default status for an open circuit breaker: 503 Service Unavailable.
pub const DEFAULT_CIRCUIT_OPEN_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
/// The default status for a full bulkhead: 503 Service Unavailable.
pub const DEFAULT_BULKHEAD_FULL_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
/// The default status for a timeout: 504 Gateway Timeout.
pub const DEFAULT_TIMEOUT_STATUS: StatusCode = StatusCode::GATEWAY_TIMEOUT;
/// The default status for a replica pool with no endpoint to take the call: 503 Service
/// Unavailable.
pub const DEFAULT_NO_ENDPOINT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
/// The default status for a call shed by the adaptive concurrency limit: 503 Service Unavailable.
pub const DEFAULT_LIMIT_EXCEEDED_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
/// The default status for a rate-limited call: 429 Too Many Requests.
pub const DEFAULT_RATE_LIMITED_STATUS: StatusCode = StatusCode::TOO_MANY_REQUESTS;
/// The default status for any other error: 500 Internal Server Error.
pub const DEFAULT_OTHER_STATUS: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;
/// Whether an open breaker's response carries `Retry-After` by default: yes.
pub const DEFAULT_RETRY_AFTER: bool = true;

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
        let text = if !rejection.is_other() {
            rejection.error().to_string()
        } else {
            status.canonical_reason().unwrap_or("error").to_owned()
        };
        B::from(text)
    }
}

/// How errors become responses: a status per kind of rejection, whether to send `Retry-After`,
/// and a body maker `M`. See the [module docs](super) for the mapping.
///
/// [`RejectionResponses::new`] (and `default()`) is the default mapping; [`builder`](Self::builder)
/// changes it.
#[derive(Clone, Copy)]
pub struct RejectionResponses<M = ()> {
    statuses: Statuses,
    retry_after: bool,
    body: M,
}

/// The status of each kind of error.
#[derive(Debug, Clone, Copy)]
struct Statuses {
    circuit_open: StatusCode,
    bulkhead_full: StatusCode,
    timeout: StatusCode,
    no_endpoint: StatusCode,
    limit_exceeded: StatusCode,
    rate_limited: StatusCode,
    other: StatusCode,
}

impl RejectionResponses {
    /// The default mapping: 503 with `Retry-After`, 503, 504, 500, and an empty body.
    pub const fn new() -> Self {
        Self {
            statuses: Statuses {
                circuit_open: DEFAULT_CIRCUIT_OPEN_STATUS,
                bulkhead_full: DEFAULT_BULKHEAD_FULL_STATUS,
                timeout: DEFAULT_TIMEOUT_STATUS,
                no_endpoint: DEFAULT_NO_ENDPOINT_STATUS,
                limit_exceeded: DEFAULT_LIMIT_EXCEEDED_STATUS,
                rate_limited: DEFAULT_RATE_LIMITED_STATUS,
                other: DEFAULT_OTHER_STATUS,
            },
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
            statuses: self.statuses,
            retry_after: self.retry_after,
            body,
        }
    }

    /// The status that `rejection` is answered with.
    pub fn status(&self, rejection: &Rejection<'_>) -> StatusCode {
        let statuses = &self.statuses;
        match rejection {
            #[cfg(feature = "circuit-breaker")]
            Rejection::CircuitOpen(_) => statuses.circuit_open,
            #[cfg(feature = "bulkhead")]
            Rejection::BulkheadFull(_) => statuses.bulkhead_full,
            Rejection::Elapsed(_) => statuses.timeout,
            #[cfg(feature = "pool")]
            Rejection::NoEndpointAvailable(_) => statuses.no_endpoint,
            #[cfg(feature = "limit")]
            Rejection::LimitExceeded(_) => statuses.limit_exceeded,
            #[cfg(feature = "rate-limit")]
            Rejection::RateLimited(_) => statuses.rate_limited,
            Rejection::Other(_) => statuses.other,
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
        if let Some(retry_after) = rejection.retry_after().filter(|_| self.retry_after) {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(retry_after_secs(retry_after)),
            );
        }
        let body = self.body.make_body(rejection, status, &mut headers);
        if rejection.is_other() {
            tracing::debug!(
                rejection.kind = rejection.kind(),
                http.status_code = status.as_u16(),
                error = %error,
                "error turned into a response"
            );
        } else {
            tracing::trace!(
                rejection.kind = rejection.kind(),
                http.status_code = status.as_u16(),
                "rejection turned into a response"
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
            .field("statuses", &self.statuses)
            .field("retry_after", &self.retry_after)
            .field("body", &std::any::type_name::<M>())
            .finish()
    }
}

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
        self.responses.statuses.circuit_open = status;
        self
    }

    /// The status for a full bulkhead, usually 503 or 429 Too Many Requests; must be a client
    /// or server error (400–599). Defaults to [`DEFAULT_BULKHEAD_FULL_STATUS`] (503).
    pub fn bulkhead_full_status(mut self, status: StatusCode) -> Self {
        self.responses.statuses.bulkhead_full = status;
        self
    }

    /// The status for a timeout; must be a client or server error (400–599). Defaults to
    /// [`DEFAULT_TIMEOUT_STATUS`] (504).
    pub fn timeout_status(mut self, status: StatusCode) -> Self {
        self.responses.statuses.timeout = status;
        self
    }

    /// The status for a replica pool with no endpoint to take the call; must be a client or
    /// server error (400–599). Defaults to [`DEFAULT_NO_ENDPOINT_STATUS`] (503).
    pub fn no_endpoint_status(mut self, status: StatusCode) -> Self {
        self.responses.statuses.no_endpoint = status;
        self
    }

    /// The status for a call shed by the adaptive concurrency limit; must be a client or server
    /// error (400–599). Defaults to [`DEFAULT_LIMIT_EXCEEDED_STATUS`] (503).
    pub fn limit_exceeded_status(mut self, status: StatusCode) -> Self {
        self.responses.statuses.limit_exceeded = status;
        self
    }

    /// The status for a rate-limited call (with `Retry-After` unless turned off); must be a
    /// client or server error (400–599). Defaults to [`DEFAULT_RATE_LIMITED_STATUS`] (429).
    pub fn rate_limited_status(mut self, status: StatusCode) -> Self {
        self.responses.statuses.rate_limited = status;
        self
    }

    /// The status for any error that is not a rejection of this crate; must be a client or
    /// server error (400–599). Defaults to [`DEFAULT_OTHER_STATUS`] (500).
    pub fn other_status(mut self, status: StatusCode) -> Self {
        self.responses.statuses.other = status;
        self
    }

    /// Whether the response for a rejection that knows when to come back (an open breaker, a
    /// rate limit: [`Rejection::retry_after`]) carries `Retry-After`, in whole seconds, rounded
    /// up, at least 1. Defaults to [`DEFAULT_RETRY_AFTER`] (`true`).
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
        let r = &self.responses.statuses;
        for (field, status) in [
            ("circuit_open_status", r.circuit_open),
            ("bulkhead_full_status", r.bulkhead_full),
            ("timeout_status", r.timeout),
            ("no_endpoint_status", r.no_endpoint),
            ("limit_exceeded_status", r.limit_exceeded),
            ("rate_limited_status", r.rate_limited),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }
}
