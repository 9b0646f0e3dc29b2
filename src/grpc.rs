//! Rejections as `tonic::Status`: an open breaker is `UNAVAILABLE` with
//! `grpc-retry-pushback-ms`, a full bulkhead `RESOURCE_EXHAUSTED`, a timeout `DEADLINE_EXCEEDED`.
//!
//! tonic turns the error of a tower stack into a status itself, but it only knows its own
//! [`Status`]: a [`CircuitOpen`](crate::circuit_breaker::CircuitOpen) would reach the client as
//! `UNKNOWN`. Map the stack's error with
//! [`into_status`] — `ServiceBuilder::map_err(steadfast::grpc::into_status)` above this crate's
//! layers — and tonic finds a `Status` with the right code, on a client `Channel` as on a server.
//! [`status`] does the same from a reference.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::circuit_breaker::CircuitBreakerLayer;
//! use steadfast::grpc::into_status;
//! use tonic::{Code, Status};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .wait_in_open(Duration::from_secs(5))
//!     .build()?;
//! // The channel of a tonic client, or a server's service, in a real program.
//! let backend = service_fn(|request: &'static str| async move { Ok::<_, Status>(request) });
//!
//! let mut service = ServiceBuilder::new()
//!     .map_err(into_status)
//!     .layer(breaker.clone())
//!     .service(backend);
//!
//! breaker.force_open();
//! let status = service.ready().await?.call("hello").await.unwrap_err();
//! assert_eq!(status.code(), Code::Unavailable);
//! assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "5000");
//! # Ok(())
//! # }
//! ```
//!
//! # The mapping
//!
//! The error is looked up by type, the error itself first and then each of its
//! [`source`](Error::source)s in turn; the first [`Status`] or rejection found decides.
//!
//! | error | code | message | metadata |
//! |---|---|---|---|
//! | `tonic::Status` | unchanged | unchanged | unchanged |
//! | `CircuitOpen` | `UNAVAILABLE` | the breaker's state and the retry-after | `grpc-retry-pushback-ms`: the retry-after in milliseconds, rounded up |
//! | `BulkheadFull` | `RESOURCE_EXHAUSTED` | the rejection's message | — |
//! | `Elapsed` | `DEADLINE_EXCEEDED` | the rejection's message | — |
//! | `NoEndpointAvailable` (pool) | `UNAVAILABLE` | the rejection's message | — |
//! | `LimitExceeded` (adaptive limit) | `RESOURCE_EXHAUSTED` | the rejection's message | — |
//! | `RateLimited` | `RESOURCE_EXHAUSTED` | the rejection's message | `grpc-retry-pushback-ms`: the limiter's `retry_after` |
//! | anything else | `UNKNOWN` (as tonic's `Status::from_error`) | the error's message | — |
//!
//! `UNAVAILABLE` is the code gRPC clients retry, and `grpc-retry-pushback-ms` is how a server
//! tells them when: a gRPC client with a retry policy (this crate's retry `GrpcPolicy` too) waits that long before trying again, instead of
//! hammering a breaker that is still open. `RESOURCE_EXHAUSTED` is not retried by default.
//!
//! # Telemetry
//!
//! | kind | name | fields | when |
//! |---|---|---|---|
//! | event `trace` | "rejection turned into a status" | `rejection.kind`, `grpc.status_code` | each rejection mapped |
//!
//! The rejecting layers already report each rejection; other errors are passed to tonic's
//! mapping without an event.

use std::error::Error;
use std::sync::Arc;

use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::BoxError;
use crate::Rejection;
use crate::rejection::chain;

/// The metadata key that tells a gRPC client how long to wait before it retries.
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// The status for `error`; see the [module docs](self) for the mapping.
///
/// A [`Status`] in the error (or its source chain) is returned as it is (cloned). Takes a
/// reference; [`into_status`] takes the error and moves a `Status` out without a clone.
///
/// ```
/// use steadfast::BoxError;
/// use tonic::{Code, Status};
///
/// let error: BoxError = Box::new(Status::not_found("no such user"));
/// let status = steadfast::grpc::status(&error);
/// assert_eq!(status.code(), Code::NotFound);
/// assert_eq!(status.message(), "no such user");
///
/// let error: BoxError = "connection reset".into();
/// assert_eq!(steadfast::grpc::status(&error).code(), Code::Unknown);
/// ```
pub fn status(error: &BoxError) -> Status {
    let error: &(dyn Error + 'static) = &**error;
    find(error).unwrap_or_else(|| Status::unknown(error.to_string()))
}

/// The status for `error`, taking it: the helper to map a tower stack's error for tonic, as in
/// `ServiceBuilder::new().map_err(into_status)`.
///
/// Same mapping as [`status`]; an error that is a [`Status`] is moved out unchanged, a status
/// made from a rejection keeps the error as its [`source`](Error::source), and any other
/// error goes to tonic's `Status::from_error`, which also knows tonic's transport errors.
pub fn into_status(error: BoxError) -> Status {
    let error = match error.downcast::<Status>() {
        Ok(status) => return *status,
        Err(error) => error,
    };
    match find(&*error) {
        Some(mut status) => {
            status.set_source(Arc::from(error));
            status
        }
        None => Status::from_error(error),
    }
}

/// The first `Status` or rejection in `error`'s chain, as a status.
fn find(error: &(dyn Error + 'static)) -> Option<Status> {
    chain(error).find_map(|candidate| match candidate.downcast_ref::<Status>() {
        Some(status) => Some(status.clone()),
        None => Rejection::of(candidate).and_then(rejection_status),
    })
}

/// The status for one of this crate's errors; `None` for [`Rejection::Other`].
fn rejection_status(rejection: Rejection<'_>) -> Option<Status> {
    let mut status = match rejection {
        #[cfg(feature = "circuit-breaker")]
        Rejection::CircuitOpen(open) => Status::unavailable(format!(
            "rejected by the circuit breaker ({}); retry after {} ms",
            open.state(),
            crate::clock::millis_ceil(open.retry_after())
        )),
        #[cfg(feature = "bulkhead")]
        Rejection::BulkheadFull(full) => Status::resource_exhausted(full.to_string()),
        Rejection::Elapsed(elapsed) => Status::deadline_exceeded(elapsed.to_string()),
        #[cfg(feature = "pool")]
        Rejection::NoEndpointAvailable(none) => Status::unavailable(none.to_string()),
        #[cfg(feature = "limit")]
        Rejection::LimitExceeded(shed) => Status::resource_exhausted(shed.to_string()),
        #[cfg(feature = "rate-limit")]
        Rejection::RateLimited(limited) => Status::resource_exhausted(limited.to_string()),
        Rejection::Other(_) => return None,
    };
    if let Some(retry_after) = rejection.retry_after() {
        status.metadata_mut().insert(
            RETRY_PUSHBACK_KEY,
            MetadataValue::from(crate::clock::millis_ceil(retry_after)),
        );
    }
    Some(traced(status, rejection.kind()))
}

fn traced(status: Status, kind: &'static str) -> Status {
    tracing::trace!(
        rejection.kind = kind,
        grpc.status_code = i32::from(status.code()),
        "rejection turned into a status"
    );
    status
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timeout_is_deadline_exceeded() {
        use super::*;
        use tonic::Code;

        let error: BoxError = Box::new(crate::deadline::Elapsed::new());
        let status = status(&error);
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "request timed out");
        assert!(status.metadata().get(RETRY_PUSHBACK_KEY).is_none());

        let status = into_status(error);
        assert_eq!(status.code(), Code::DeadlineExceeded);
        let source = status
            .source()
            .expect("the rejection is kept as the source");
        assert!(source.is::<crate::deadline::Elapsed>());
    }

    #[cfg(feature = "bulkhead")]
    #[test]
    fn a_full_bulkhead_is_resource_exhausted() {
        use super::*;
        use std::time::Duration;
        use tonic::Code;

        let error: BoxError = Box::new(crate::bulkhead::BulkheadFull::new(2, Duration::ZERO));
        let status = status(&error);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "bulkhead full: 2 concurrent calls in flight"
        );
        assert!(status.metadata().get(RETRY_PUSHBACK_KEY).is_none());

        let status = into_status(error);
        assert_eq!(status.code(), Code::ResourceExhausted);
        let source = status
            .source()
            .expect("the rejection is kept as the source");
        assert!(source.is::<crate::bulkhead::BulkheadFull>());
    }
}
