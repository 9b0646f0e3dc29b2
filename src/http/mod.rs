//! Rejections as HTTP responses: an open breaker becomes a 503 with `Retry-After`, a timeout a
//! 504, a full bulkhead a 503 (or a 429), anything else a 500.
//!
//! axum wants every service to be infallible: an error that reaches hyper closes the connection
//! without a response. Put [`RejectionsAsResponsesLayer`] above the layers of this crate and the
//! stack's error type becomes [`Infallible`](std::convert::Infallible), so it goes straight into `Router::layer` with no
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
//! [`source`](std::error::Error::source)s in turn; the first rejection found decides (see
//! [`Rejection::classify`](crate::Rejection::classify)).
//!
//! | error | status | headers | setter |
//! |---|---|---|---|
//! | `CircuitOpen` | 503 Service Unavailable | `Retry-After`: [`retry_after`](crate::circuit_breaker::CircuitOpen::retry_after) in whole seconds, rounded up, at least 1 | [`circuit_open_status`](Builder::circuit_open_status), [`retry_after`](Builder::retry_after) |
//! | `BulkheadFull` | 503 Service Unavailable | — | [`bulkhead_full_status`](Builder::bulkhead_full_status) (429 is the other usual choice) |
//! | `Elapsed` | 504 Gateway Timeout | — | [`timeout_status`](Builder::timeout_status) |
//! | `NoEndpointAvailable` (pool) | 503 Service Unavailable | — | [`no_endpoint_status`](Builder::no_endpoint_status) |
//! | `LimitExceeded` (adaptive limit) | 503 Service Unavailable | — | [`limit_exceeded_status`](Builder::limit_exceeded_status) |
//! | `RateLimited` | 429 Too Many Requests | `Retry-After`: the limiter's `retry_after`, as above | [`rate_limited_status`](Builder::rate_limited_status), [`retry_after`](Builder::retry_after) |
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
//! | [`no_endpoint_status`](Builder::no_endpoint_status) | [`DEFAULT_NO_ENDPOINT_STATUS`]: 503 |
//! | [`limit_exceeded_status`](Builder::limit_exceeded_status) | [`DEFAULT_LIMIT_EXCEEDED_STATUS`]: 503 |
//! | [`rate_limited_status`](Builder::rate_limited_status) | [`DEFAULT_RATE_LIMITED_STATUS`]: 429 |
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
//! None: the service's error type is [`Infallible`](std::convert::Infallible). Every error of the inner service, from
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

mod layer;
mod mapping;

pub mod future;
#[cfg(all(test, not(steadfast_loom)))]
mod tests;

pub use self::layer::{RejectionsAsResponses, RejectionsAsResponsesLayer};
pub use self::mapping::{
    Builder, DEFAULT_BULKHEAD_FULL_STATUS, DEFAULT_CIRCUIT_OPEN_STATUS,
    DEFAULT_LIMIT_EXCEEDED_STATUS, DEFAULT_NO_ENDPOINT_STATUS, DEFAULT_OTHER_STATUS,
    DEFAULT_RATE_LIMITED_STATUS, DEFAULT_RETRY_AFTER, DEFAULT_TIMEOUT_STATUS, MakeBody, PlainText,
    RejectionResponses, error_response, handle_error,
};
/// The crate's classification of an error, which the mapping and the body makers receive.
pub use crate::Rejection;
