//! One registry decides which errors are this crate's rejections: a rejection wrapped as another
//! error's source is recognized by every consumer alike (retry, the breaker's classifier, the
//! fallback's predicate, the HTTP and the gRPC mappings).
#![cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback",
    feature = "http",
    feature = "tonic"
))]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, State};
use steadfast::fallback::{FallbackLayer, RejectionsAndTimeouts};
use steadfast::http::RejectionResponses;
use steadfast::retry::RetryLayer;
use steadfast::{BoxError, Rejection, is_rejection};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A client library's error that keeps the real cause as its source.
#[derive(Debug)]
struct ClientError(BoxError);

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("client error")
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A `CircuitOpen` of a forced-open breaker, wrapped twice.
async fn wrapped_open() -> BoxError {
    let breaker = CircuitBreakerLayer::builder()
        .wait_in_open(Duration::from_secs(7))
        .build()
        .unwrap();
    breaker.force_open();
    let svc = breaker.layer(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    let open = svc.oneshot(()).await.unwrap_err();
    assert!(open.is::<CircuitOpen>());
    Box::new(ClientError(Box::new(ClientError(open))))
}

#[tokio::test(start_paused = true)]
async fn the_registry_finds_it_and_calls_it_local() {
    let error = wrapped_open().await;
    let rejection = Rejection::classify(&*error);
    assert_eq!(rejection.kind(), "circuit_open");
    assert!(rejection.is_local());
    assert_eq!(rejection.retry_after(), Some(Duration::from_secs(7)));
    assert!(is_rejection(&*error));
}

#[tokio::test(start_paused = true)]
async fn retry_neither_retries_it_nor_charges_the_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let layer = RetryLayer::builder().max_attempts(3).build().unwrap();
    let budget_before = layer.budget_remaining();
    let svc = layer.layer(service_fn(move |()| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Err::<(), BoxError>(wrapped_open().await) }
    }));
    let error = svc.oneshot(()).await.unwrap_err();
    assert!(error.is::<ClientError>(), "passed through unwrapped");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(layer.budget_remaining(), budget_before, "no budget spent");
}

#[tokio::test(start_paused = true)]
async fn a_breaker_above_does_not_count_it() {
    let above = CircuitBreakerLayer::builder()
        .sliding_window(steadfast::circuit_breaker::SlidingWindow::Count(2))
        .minimum_calls(2)
        .build()
        .unwrap();
    let mut svc = above.layer(service_fn(|()| async {
        Err::<(), BoxError>(wrapped_open().await)
    }));
    for _ in 0..4 {
        svc.ready().await.unwrap().call(()).await.unwrap_err();
    }
    assert_eq!(above.state(), State::Closed);
    assert_eq!(above.snapshot().calls(), 0, "ignored, not counted");
    assert_eq!(above.snapshot().failed_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_predicate_answers_it() {
    let svc = FallbackLayer::new(|_: BoxError| Ok("fallback"))
        .when(RejectionsAndTimeouts)
        .layer(service_fn(|()| async {
            Err::<&str, BoxError>(wrapped_open().await)
        }));
    assert_eq!(svc.oneshot(()).await.unwrap(), "fallback");
}

#[tokio::test(start_paused = true)]
async fn http_says_503_with_retry_after_and_grpc_unavailable_with_pushback() {
    let error = wrapped_open().await;
    let response = RejectionResponses::new().to_response::<String>(&error);
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "7");

    let status = steadfast::grpc::status(&error);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "7000"
    );
}
