//! The layers together, in the documented order and in the orders people get wrong: retry
//! around a per-attempt timeout, an overall timeout around retry, and retry around a breaker
//! that opens mid-retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use steadfast::timeout::{Elapsed, TimeoutLayer};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A backend whose n-th call (from 0) behaves as `script(n)`: `Ok(delay)` answers after the
/// delay, `Err(())` fails at once.
fn backend(
    script: impl Fn(usize) -> Result<Duration, ()> + Send + Sync + 'static,
) -> (
    impl Service<&'static str, Response = &'static str, Error = BoxError, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let script = Arc::new(script);
    let service = service_fn(move |_: &'static str| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let step = script(n);
        async move {
            match step {
                Ok(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok("answer")
                }
                Err(()) => Err::<_, BoxError>("backend failed".into()),
            }
        }
    });
    (service, calls)
}

fn constant(ms: u64) -> Backoff {
    Backoff::constant(Duration::from_millis(ms)).jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn retry_around_a_per_attempt_timeout_retries_a_hung_attempt() {
    // The first attempt hangs for a minute; the second answers in 10 ms.
    let (backend, calls) = backend(|n| Ok(Duration::from_millis(if n == 0 { 60_000 } else { 10 })));
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .max_attempts(3)
                .backoff(constant(50))
                .build()
                .unwrap(),
        )
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(backend);
    let start = Instant::now();
    let answer = svc.ready().await.unwrap().call("q").await.unwrap();
    assert_eq!(answer, "answer");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // 100 ms timeout + 50 ms backoff + 10 ms answer.
    assert_eq!(start.elapsed(), Duration::from_millis(160));
}

#[tokio::test(start_paused = true)]
async fn retry_under_an_overall_timeout_never_starts_a_backoff_it_cannot_finish() {
    // Every attempt fails after 40 ms; backoffs of 30 ms; the whole call has 200 ms.
    let (backend, calls) = backend(|_| Err(()));
    let slow_failures = service_fn(move |q: &'static str| {
        let mut backend = backend.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            backend.ready().await?.call(q).await
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .layer(
            RetryLayer::builder()
                .max_attempts(100)
                .backoff(constant(30))
                .budget(RetryBudget::unlimited())
                .min_attempt_time(Duration::from_millis(1))
                .build()
                .unwrap(),
        )
        .service(slow_failures);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call("q").await.unwrap_err();
    // Attempts fail at 40, 110 and 180 ms. The backoff after the third would end at 210 ms,
    // past the 200 ms deadline: retry returns the last error at once instead of sleeping into
    // the timeout.
    assert_eq!(start.elapsed(), Duration::from_millis(180));
    assert!(
        !err.is::<Elapsed>(),
        "the backend's own error, not a timeout: {err}"
    );
    assert_eq!(err.to_string(), "backend failed");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn an_overall_timeout_cuts_an_attempt_that_outlives_it() {
    // The backoff fits before the deadline, but the attempt after it hangs: the overall timeout
    // ends the call exactly at its deadline.
    let (backend, calls) = backend(|n| {
        if n == 0 {
            Err(())
        } else {
            Ok(Duration::from_secs(60))
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(500)))
        .layer(
            RetryLayer::builder()
                .max_attempts(3)
                .backoff(constant(100))
                .build()
                .unwrap(),
        )
        .service(backend);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call("q").await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_that_opens_mid_retry_stops_the_retries() {
    let (backend, calls) = backend(|_| Err(()));
    let breaker = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(30))
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(5)
        .backoff(constant(100))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(breaker.clone())
        .service(backend);
    let budget_before = retry.budget_remaining();
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call("q").await.unwrap_err();
    // Attempt 1 fails, attempt 2 fails and opens the breaker, attempt 3 is rejected at once and
    // is not retried: 2 backoffs, 2 backend calls.
    let open = err
        .downcast_ref::<CircuitOpen>()
        .expect("the breaker's rejection ends it");
    assert_eq!(open.retry_after(), Duration::from_millis(29_900));
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(
        budget_before - retry.budget_remaining(),
        2,
        "two retries paid; the rejection cost nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_when_a_breaker_opens_mid_retry() {
    let (backend, calls) = backend(|_| Err(()));
    let breaker = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(|err: BoxError| {
            // The fallback sees the rejection that ended the retries.
            assert!(err.is::<CircuitOpen>(), "{err}");
            Ok("cached answer")
        }))
        .layer(
            RetryLayer::builder()
                .max_attempts(5)
                .backoff(constant(100))
                .build()
                .unwrap(),
        )
        .layer(breaker.clone())
        .service(backend);
    let answer = svc.ready().await.unwrap().call("q").await.unwrap();
    assert_eq!(answer, "cached answer");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.state(), State::Open);

    // While the breaker stays open, the next call is answered at once, without a retry.
    let start = Instant::now();
    assert_eq!(
        svc.ready().await.unwrap().call("q").await.unwrap(),
        "cached answer"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_documented_stack_serves_a_healthy_backend() {
    let (backend, calls) = backend(|_| Ok(Duration::from_millis(5)));
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(2)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(|_: BoxError| Ok("fallback")))
        .layer(RetryLayer::builder().build().unwrap())
        .layer(TimeoutLayer::new(Duration::from_secs(2)))
        .layer(breaker.clone())
        .layer(bulkhead.clone())
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(backend);
    for _ in 0..10 {
        assert_eq!(
            svc.ready().await.unwrap().call("q").await.unwrap(),
            "answer"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(breaker.snapshot().calls(), 10);
    assert_eq!(bulkhead.available_permits(), 2, "every permit back");
}

#[tokio::test(start_paused = true)]
async fn calls_whose_deadline_passed_before_they_were_sent_do_not_open_the_breaker() {
    let (backend, calls) = backend(|_| Ok(Duration::ZERO));
    let breaker = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(backend);
    // Callers that arrive with no time left fail at once, without reaching the backend ...
    let expired = steadfast::deadline::Deadline::after(Duration::ZERO);
    for _ in 0..5 {
        let err = expired
            .scope(async { svc.ready().await.unwrap().call("q").await })
            .await
            .unwrap_err();
        let elapsed = err
            .downcast_ref::<Elapsed>()
            .expect("the deadline had passed");
        assert!(elapsed.is_inherited() && elapsed.before_call());
        assert!(steadfast::is_rejection(&*err));
    }
    // ... and say nothing about it: the breaker counted none of them.
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls(), 0);
    // A timeout during the call still counts.
    svc.ready().await.unwrap().call("q").await.unwrap();
    assert_eq!(breaker.snapshot().calls(), 1);
}
