//! The public names DESIGN.md fixes, used exactly as it writes them, with the behaviour it
//! promises for each: if one of these stops compiling or behaving, an integration breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::bulkhead::{BulkheadFull, BulkheadLayer};
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use steadfast::deadline::{Deadline, format_grpc_timeout, parse_grpc_timeout};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use steadfast::timeout::{Elapsed, TimeoutLayer};
use steadfast::{BoxError, ConfigError};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_names() {
    let layer: CircuitBreakerLayer = CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .slow_call_rate_threshold(1.0)
        .slow_call_duration(Duration::from_secs(1))
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(10))
        .half_open_calls(1)
        .build()
        .unwrap();
    let _time: Result<CircuitBreakerLayer, ConfigError> = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Time(Duration::from_secs(60)))
        .build();
    let clone = layer.clone();
    let mut svc = layer.layer(service_fn(|fail: bool| async move {
        if fail { Err(MyError) } else { Ok(()) }
    }));
    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(
            err.downcast_ref::<MyError>().is_some(),
            "inner errors pass through unwrapped"
        );
    }
    assert_eq!(clone.state(), State::Open, "clones share one breaker");
    let err = svc.ready().await.unwrap().call(false).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().retry_after(),
        Duration::from_secs(10)
    );
    layer.force_open();
    assert_eq!(layer.state(), State::ForcedOpen);
    layer.disable();
    assert_eq!(layer.state(), State::Disabled);
    layer.reset();
    assert_eq!(layer.state(), State::Closed);
    let _half_open = State::HalfOpen;

    let err = CircuitBreakerLayer::builder()
        .failure_rate_threshold(f64::NAN)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("failure_rate_threshold"));
    let err = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(0))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("sliding_window"));
}

#[tokio::test(start_paused = true)]
async fn retry_names() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let failing = service_fn(move |_: ()| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(MyError) }
    });
    // The default budget lets a single request use its retries: 3 attempts = 2 retries.
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(
            Backoff::exponential(Duration::from_millis(100))
                .jitter(Jitter::None)
                .max_delay(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = layer.layer(failing).oneshot(()).await.unwrap_err();
    let _: MyError = err; // retry keeps the inner error type
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // First delay = the base, then doubled: 100 ms + 200 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(300));

    let _ = RetryLayer::builder()
        .backoff(Backoff::constant(Duration::from_millis(5)).jitter(Jitter::Full))
        .budget(RetryBudget::new(0.1, 10, Duration::from_secs(10)))
        .build()
        .unwrap();
    assert!(RetryLayer::builder().max_attempts(0).build().is_err());
}

#[tokio::test(start_paused = true)]
async fn timeout_and_deadline_names() {
    let layer = TimeoutLayer::new(Duration::from_secs(2));
    let mut svc = layer.layer(service_fn(|_: ()| async {
        let deadline = Deadline::current().expect("set inside a timeout");
        assert_eq!(deadline.remaining(), Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, BoxError>(())
    }));
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
    assert_eq!(parse_grpc_timeout("123456789S"), None, "at most 8 digits");
    assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
}

#[tokio::test(start_paused = true)]
async fn bulkhead_and_fallback_names() {
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(bulkhead.available_permits(), 1);
    let backend = service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, BoxError>("backend")
    });
    let mut first = bulkhead.layer(backend);
    let mut second = first.clone();
    let in_flight = first.ready().await.unwrap().call(());
    assert_eq!(bulkhead.available_permits(), 0);
    let err = second.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    assert_eq!(in_flight.await.unwrap(), "backend");
    assert_eq!(bulkhead.available_permits(), 1);

    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(|err: BoxError| {
            assert!(err.is::<MyError>());
            Ok::<_, BoxError>("fallback")
        }))
        .service(service_fn(|_: ()| async { Err::<&str, _>(MyError) }));
    assert_eq!(
        svc.ready().await.unwrap().call(()).await.unwrap(),
        "fallback"
    );
}

#[test]
fn futures_are_send_and_static() {
    fn send_static<T: Send + 'static>(_: T) {}
    let backend = service_fn(|_: ()| async { Ok::<_, BoxError>(()) });
    let mut stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(|_: BoxError| Ok(())))
        .layer(RetryLayer::builder().build().unwrap())
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(CircuitBreakerLayer::builder().build().unwrap())
        .layer(BulkheadLayer::builder().build().unwrap())
        .service(backend);
    send_static(stack.call(()));
}
