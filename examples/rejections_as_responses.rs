//! An axum router behind a circuit breaker that stays `Infallible`: rejections become responses.
//!
//! The handler fails its first two requests; the breaker (a window of two calls) opens, and the
//! next requests are answered 503 with `Retry-After` by [`RejectionsAsResponsesLayer`], without
//! reaching the handler and with no `HandleErrorLayer`. Once `wait_in_open` is over the
//! breaker lets a probe through, which succeeds. The same rejection is then shown as the
//! `tonic::Status` a gRPC service would send.
//!
//! Runs on tokio's paused clock, so every run prints the same thing, the crate's tracing events
//! included.
//!
//! ```text
//! cargo run --example rejections_as_responses --features http,tonic
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use steadfast::http::{PlainText, RejectionResponses, RejectionsAsResponsesLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .without_time()
        .init();

    let breaker = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .wait_in_open(Duration::from_millis(2_500))
        .half_open_calls(1)
        .build()?;
    let responses = RejectionResponses::builder().body(PlainText).build()?;

    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = calls.clone();
        move || async move {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                (StatusCode::INTERNAL_SERVER_ERROR, "backend down")
            } else {
                (StatusCode::OK, "hello")
            }
        }
    };
    // The handler's 500s count as failures only if the breaker sees them as errors: turn them
    // into errors below the breaker, as a client of a failing backend would.
    let app: Router = Router::new().route("/", get(handler)).layer(
        ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::with_responses(responses))
            .layer(breaker.clone())
            .map_result(
                |result: Result<axum::response::Response, std::convert::Infallible>| match result {
                    Ok(response) if response.status().is_server_error() => {
                        Err::<_, BoxError>("handler failed".into())
                    }
                    Ok(response) => Ok(response),
                    Err(never) => match never {},
                },
            ),
    );

    for step in 0..5 {
        if step == 4 {
            tokio::time::advance(Duration::from_millis(2_500)).await;
            println!("-- 2.5 s later --");
        }
        let response = app.clone().oneshot(Request::new(Body::empty())).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| format!(", retry-after: {}", value.to_str().unwrap_or("?")))
            .unwrap_or_default();
        let body = to_bytes(response.into_body(), 1024).await?;
        println!(
            "request {step}: {status}{retry_after}, body {:?}, breaker {}",
            String::from_utf8_lossy(&body),
            breaker.state()
        );
    }
    println!("the handler ran {} times", calls.load(Ordering::SeqCst));

    breaker.force_open();
    let mut grpc = ServiceBuilder::new()
        .map_err(steadfast::grpc::into_status)
        .layer(breaker.clone())
        .service(tower::service_fn(|_: ()| async { Ok::<_, BoxError>(()) }));
    if let Err(status) = grpc.ready().await?.call(()).await {
        println!(
            "as gRPC: {:?} {:?}, grpc-retry-pushback-ms: {:?}",
            status.code(),
            status.message(),
            status.metadata().get("grpc-retry-pushback-ms")
        );
    }
    Ok(())
}
