//! `steadfast::stack`: the ready-made stack applies any subset of the layers in the documented
//! order (whatever the order of its setters), through `Layer` and the `ServiceBuilder`
//! extension; its error types, shared state, cancellation, timeout boundaries and names.
#![cfg(all(
    feature = "fallback",
    feature = "retry",
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "bulkhead"
))]

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::bulkhead::{BulkheadFull, BulkheadLayer};
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use steadfast::stack::{
    ATTEMPT_TIMEOUT_NAME, OVERALL_TIMEOUT_NAME, ResilienceStack, ServiceBuilderExt,
};
use steadfast::timeout::{Elapsed, ElapsedKind, TimeoutLayer};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const HANG: Duration = Duration::from_secs(3600);

/// The backend's own error, to downcast after the stack.
#[derive(Debug, PartialEq, Eq)]
struct BackendError(usize);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend failed on call {}", self.0)
    }
}

impl std::error::Error for BackendError {}

/// What the backend's n-th call does.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Answers `"answer"` after the delay (`HANG`: never, in a test).
    Answer(Duration),
    /// Fails at once with `BackendError(n)`.
    Fail,
}

/// A backend whose n-th call (from 0) does `script(n)`, and its call counter.
fn backend(
    script: impl Fn(usize) -> Step + Send + Sync + 'static,
) -> (
    impl Service<&'static str, Response = &'static str, Error = BackendError, Future: Send + 'static>
    + Clone
    + Send
    + 'static,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let script = Arc::new(script);
    let service = service_fn(move |_: &'static str| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let step = script(n);
        async move {
            match step {
                Step::Answer(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok("answer")
                }
                Step::Fail => Err(BackendError(n)),
            }
        }
    });
    (service, calls)
}

fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn constant(ms: u64) -> Backoff {
    Backoff::constant(Duration::from_millis(ms)).jitter(Jitter::None)
}

fn retry(max_attempts: u32) -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(max_attempts)
        .backoff(constant(100))
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap()
}

/// A breaker that opens once the last `n` calls all failed.
fn breaker(n: u32) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_rate_threshold(1.0)
        .sliding_window(SlidingWindow::Count(n))
        .minimum_calls(n)
        .wait_in_open(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn bulkhead(permits: usize, max_wait: Duration) -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(permits)
        .max_wait(max_wait)
        .build()
        .unwrap()
}

fn downcast<T: std::error::Error + 'static>(err: &BoxError) -> &T {
    match err.downcast_ref::<T>() {
        Some(t) => t,
        None => panic!("expected {}, got {err}", std::any::type_name::<T>()),
    }
}

fn error_type<S, Req, E>(_: &S)
where
    S: Service<Req, Error = E>,
{
}

fn send_static_future<S, Req>(_: &S)
where
    S: Service<Req, Future: Send + 'static>,
{
}

// ---------------------------------------------------------------------------------------------
// Subsets: none, each alone, all.
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_empty_stack_is_the_service_itself() {
    fn same_type<T>(_: &T, _: &T) {}
    let inner = service_fn(|x: u32| async move { Ok::<_, Infallible>(x + 1) });
    let svc = ResilienceStack::new().layer(inner);
    // Identity all the way: the very same type, error type included.
    same_type(&svc, &inner);
    error_type::<_, u32, Infallible>(&svc);
    assert_eq!(svc.oneshot(1).await, Ok(2));
    assert_eq!(
        std::mem::size_of_val(&ResilienceStack::new()),
        0,
        "absent layers take no space"
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_alone_answers_a_failure() {
    let (backend, calls) = backend(|_| Step::Fail);
    let stack = ResilienceStack::new().fallback(FallbackLayer::new(|err: BoxError| {
        assert_eq!(downcast::<BackendError>(&err), &BackendError(0));
        Ok("fallback")
    }));
    let svc = stack.layer(backend);
    error_type::<_, &'static str, BoxError>(&svc);
    assert_eq!(svc.oneshot("q").await.unwrap(), "fallback");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_alone_retries_and_keeps_the_inner_error_type() {
    let (backend, calls) = backend(|_| Step::Fail);
    let svc = ResilienceStack::new().retry(retry(3)).layer(backend);
    // Retry only passes errors through: no boxing.
    error_type::<_, &'static str, BackendError>(&svc);
    let start = Instant::now();
    assert_eq!(svc.oneshot("q").await, Err(BackendError(2)));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "3 attempts = 2 retries");
    assert_eq!(start.elapsed(), 200 * MS, "two backoffs of 100 ms");
}

#[tokio::test(start_paused = true)]
async fn overall_timeout_alone_bounds_the_call() {
    let (backend, calls) = backend(|_| Step::Answer(HANG));
    let svc = ResilienceStack::new()
        .overall_timeout(100 * MS)
        .layer(backend);
    error_type::<_, &'static str, BoxError>(&svc);
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    assert_eq!(downcast::<Elapsed>(&err).kind(), ElapsedKind::Timeout);
    assert_eq!(start.elapsed(), 100 * MS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_alone_rejects_while_open() {
    let (backend, calls) = backend(|_| Step::Answer(Duration::ZERO));
    let breaker = breaker(1);
    let mut svc = ResilienceStack::new()
        .circuit_breaker(breaker.clone())
        .layer(backend);
    error_type::<_, &'static str, BoxError>(&svc);
    assert_eq!(
        svc.ready().await.unwrap().call("q").await.unwrap(),
        "answer"
    );
    breaker.force_open();
    let err = svc.ready().await.unwrap().call("q").await.unwrap_err();
    downcast::<CircuitOpen>(&err);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_alone_caps_concurrent_calls() {
    let (backend, calls) = backend(|_| Step::Answer(HANG));
    let layer = bulkhead(1, Duration::ZERO);
    let svc = ResilienceStack::new()
        .bulkhead(layer.clone())
        .layer(backend);
    error_type::<_, &'static str, BoxError>(&svc);
    let mut first = svc.clone();
    let mut held = pin!(first.ready().await.unwrap().call("q"));
    assert!(poll(held.as_mut()).is_pending());
    assert_eq!(layer.available_permits(), 0);
    let err = svc.oneshot("q").await.unwrap_err();
    downcast::<BulkheadFull>(&err);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_alone_bounds_the_call() {
    let (backend, calls) = backend(|_| Step::Answer(HANG));
    let svc = ResilienceStack::new()
        .attempt_timeout(100 * MS)
        .layer(backend);
    error_type::<_, &'static str, BoxError>(&svc);
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    assert_eq!(downcast::<Elapsed>(&err).kind(), ElapsedKind::Timeout);
    assert_eq!(start.elapsed(), 100 * MS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_full_stack_answers_and_leaves_everything_as_it_was() {
    let (backend, calls) = backend(|_| Step::Answer(10 * MS));
    let breaker = breaker(1);
    let permits = bulkhead(4, Duration::ZERO);
    let retry = retry(3);
    let stack = ResilienceStack::new()
        .fallback(FallbackLayer::new(|_: BoxError| Ok("fallback")))
        .retry(retry.clone())
        .overall_timeout(Duration::from_secs(2))
        .circuit_breaker(breaker.clone())
        .bulkhead(permits.clone())
        .attempt_timeout(500 * MS);
    let mut svc = ServiceBuilder::new().resilience(stack).service(backend);
    error_type::<_, &'static str, BoxError>(&svc);
    let budget = retry.budget_remaining();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(
            svc.ready().await.unwrap().call("q").await.unwrap(),
            "answer"
        );
        assert_eq!(start.elapsed(), 10 * MS);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failed_calls(), 0);
    assert_eq!(permits.available_permits(), 4);
    assert_eq!(retry.budget_remaining(), budget);
}

// ---------------------------------------------------------------------------------------------
// The order.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_stack_makes_the_very_service_that_service_builder_makes_in_the_documented_order() {
    fn same_type<T>(_: &T, _: &T) {}
    let (service, _) = backend(|_| Step::Answer(Duration::ZERO));
    let fallback = FallbackLayer::new(|_: BoxError| Ok("fallback"));
    let (retry, breaker, permits) = (retry(3), breaker(5), bulkhead(5, Duration::ZERO));
    let by_stack = ResilienceStack::new()
        .bulkhead(permits.clone())
        .fallback(fallback.clone())
        .attempt_timeout(100 * MS)
        .circuit_breaker(breaker.clone())
        .retry(retry.clone())
        .overall_timeout(Duration::from_secs(1))
        .layer(service.clone());
    let by_hand = ServiceBuilder::new()
        .layer(fallback)
        .layer(retry)
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(breaker)
        .layer(permits)
        .layer(TimeoutLayer::new(100 * MS))
        .service(service);
    // Nothing of the stack's own is left in the service: it costs what the layers cost.
    same_type(&by_stack, &by_hand);
    assert_eq!(
        std::mem::size_of_val(&by_stack),
        std::mem::size_of_val(&by_hand)
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_that_opens_mid_retry_stops_the_retries() {
    let (backend, calls) = backend(|_| Step::Fail);
    let breaker = breaker(2);
    let svc = ResilienceStack::new()
        .retry(retry(5))
        .circuit_breaker(breaker.clone())
        .layer(backend);
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    // Attempts 1 and 2 fail and open the breaker; attempt 3 is rejected and not retried.
    downcast::<CircuitOpen>(&err);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), 200 * MS);
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_sees_circuit_open() {
    let (backend, calls) = backend(|_| Step::Answer(Duration::ZERO));
    let breaker = breaker(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let svc = ResilienceStack::new()
        .fallback(FallbackLayer::new(move |err: BoxError| {
            record.lock().unwrap().push(err.is::<CircuitOpen>());
            Ok("fallback")
        }))
        .retry(retry(3))
        .overall_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker.clone())
        .bulkhead(bulkhead(1, Duration::ZERO))
        .attempt_timeout(100 * MS)
        .layer(backend);
    breaker.force_open();
    assert_eq!(svc.oneshot("q").await.unwrap(), "fallback");
    assert_eq!(
        *seen.lock().unwrap(),
        [true],
        "one CircuitOpen, not retried"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_fires_before_the_overall_one_and_the_attempt_is_retried() {
    // The first attempt hangs; the second answers in 10 ms.
    let (backend, calls) = backend(|n| Step::Answer(if n == 0 { HANG } else { 10 * MS }));
    let svc = ResilienceStack::new()
        .retry(retry(3))
        .overall_timeout(Duration::from_secs(1))
        .attempt_timeout(100 * MS)
        .layer(backend);
    let start = Instant::now();
    assert_eq!(svc.oneshot("q").await.unwrap(), "answer");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // 100 ms attempt timeout + 100 ms backoff + 10 ms answer; the overall 1 s never fired.
    assert_eq!(start.elapsed(), 210 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_fires_first_as_its_own_timeout() {
    let (backend, _) = backend(|_| Step::Answer(HANG));
    let svc = ResilienceStack::new()
        .overall_timeout(Duration::from_secs(1))
        .attempt_timeout(100 * MS)
        .layer(backend);
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    assert_eq!(downcast::<Elapsed>(&err).kind(), ElapsedKind::Timeout);
    assert_eq!(start.elapsed(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_overall_timeout_still_bounds_the_attempt() {
    let (backend, _) = backend(|_| Step::Answer(HANG));
    let svc = ResilienceStack::new()
        .overall_timeout(100 * MS)
        .attempt_timeout(Duration::from_secs(1))
        .layer(backend);
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    downcast::<Elapsed>(&err);
    assert_eq!(
        start.elapsed(),
        100 * MS,
        "the attempt timeout narrows, never widens"
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_an_attempt_cut_by_the_attempt_timeout() {
    let (backend, _) = backend(|_| Step::Answer(HANG));
    let breaker = breaker(1);
    let svc = ResilienceStack::new()
        .circuit_breaker(breaker.clone())
        .attempt_timeout(100 * MS)
        .layer(backend);
    let err = svc.oneshot("q").await.unwrap_err();
    downcast::<Elapsed>(&err);
    // A window of one call, all failed: the timed-out attempt opened the breaker.
    assert_eq!(
        breaker.state(),
        State::Open,
        "the attempt timeout is inside"
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_does_not_count_a_call_cut_by_the_overall_timeout() {
    let (backend, _) = backend(|_| Step::Answer(HANG));
    let breaker = breaker(1);
    let svc = ResilienceStack::new()
        .overall_timeout(100 * MS)
        .circuit_breaker(breaker.clone())
        .layer(backend);
    let err = svc.oneshot("q").await.unwrap_err();
    downcast::<Elapsed>(&err);
    // The overall timeout is outside the breaker: it drops the breaker's future, which records
    // nothing.
    assert_eq!(breaker.snapshot().calls(), 0);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn calls_rejected_by_an_open_breaker_take_no_bulkhead_permit() {
    let (backend, calls) = backend(|_| Step::Answer(Duration::ZERO));
    let breaker = breaker(1);
    let permits = bulkhead(1, Duration::ZERO);
    let mut svc = ResilienceStack::new()
        .circuit_breaker(breaker.clone())
        .bulkhead(permits.clone())
        .layer(backend);
    breaker.force_open();
    let ready = svc.ready().await.unwrap();
    assert_eq!(
        permits.available_permits(),
        1,
        "the breaker is outside the bulkhead"
    );
    let err = ready.call("q").await.unwrap_err();
    downcast::<CircuitOpen>(&err);
    assert_eq!(permits.available_permits(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_neither_trips_the_breaker_nor_is_retried() {
    let (backend, calls) = backend(|_| Step::Answer(HANG));
    let breaker = breaker(1);
    let permits = bulkhead(1, Duration::ZERO);
    let svc = ResilienceStack::new()
        .retry(retry(3))
        .circuit_breaker(breaker.clone())
        .bulkhead(permits.clone())
        .layer(backend);
    let mut holder = svc.clone();
    let mut held = pin!(holder.ready().await.unwrap().call("q"));
    assert!(poll(held.as_mut()).is_pending());
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    downcast::<BulkheadFull>(&err);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no backoff: a rejection is not retried"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(breaker.snapshot().failed_calls(), 0);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_does_not_bound_the_wait_for_a_bulkhead_permit() {
    // The bulkhead waits for a permit in `poll_ready`, and a timeout covers the call, not
    // readiness: the wait is bounded by the bulkhead's own `max_wait`.
    let (backend, calls) = backend(|_| Step::Answer(HANG));
    let svc = ResilienceStack::new()
        .overall_timeout(100 * MS)
        .bulkhead(bulkhead(1, 300 * MS))
        .layer(backend);
    let mut holder = svc.clone();
    let mut held = pin!(holder.ready().await.unwrap().call("q"));
    assert!(poll(held.as_mut()).is_pending());
    let start = Instant::now();
    let err = svc.oneshot("q").await.unwrap_err();
    downcast::<BulkheadFull>(&err);
    assert_eq!(start.elapsed(), 300 * MS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_order_of_the_setters_does_not_matter() {
    let breaker = breaker(2);
    let permits = bulkhead(2, Duration::ZERO);
    let retry = retry(5);
    let fallback = FallbackLayer::new(|_: BoxError| Ok("fallback"));
    let in_order = ResilienceStack::new()
        .fallback(fallback.clone())
        .retry(retry.clone())
        .overall_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker.clone())
        .bulkhead(permits.clone())
        .attempt_timeout(100 * MS);
    let reversed = ResilienceStack::new()
        .attempt_timeout(100 * MS)
        .bulkhead(permits.clone())
        .circuit_breaker(breaker.clone())
        .overall_timeout(Duration::from_secs(1))
        .retry(retry.clone())
        .fallback(fallback.clone());
    assert_eq!(format!("{in_order:?}"), format!("{reversed:?}"));

    // And it behaves as the documented order: the breaker opens mid-retry, the fallback answers.
    let (backend, calls) = backend(|_| Step::Fail);
    let start = Instant::now();
    assert_eq!(
        reversed.layer(backend).oneshot("q").await.unwrap(),
        "fallback"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), 200 * MS);
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_setter_called_twice_replaces_the_layer() {
    let (backend, _) = backend(|_| Step::Answer(HANG));
    let svc = ResilienceStack::new()
        .attempt_timeout(Duration::from_secs(5))
        .attempt_timeout(100 * MS)
        .layer(backend);
    let start = Instant::now();
    downcast::<Elapsed>(&svc.oneshot("q").await.unwrap_err());
    assert_eq!(start.elapsed(), 100 * MS);
}

// ---------------------------------------------------------------------------------------------
// The ServiceBuilder extension.
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn resilience_adds_the_stack_where_it_is_called() {
    let stack = ResilienceStack::new().fallback(FallbackLayer::new(|_: BoxError| Ok("fallback")));

    // A timeout added after the stack is inside it: the fallback answers its `Elapsed`.
    let (service, _) = backend(|_| Step::Answer(HANG));
    let inside = ServiceBuilder::new()
        .resilience(stack.clone())
        .layer(TimeoutLayer::new(100 * MS))
        .service(service);
    assert_eq!(inside.oneshot("q").await.unwrap(), "fallback");

    // A timeout added before the stack is outside it: its `Elapsed` reaches the caller.
    let (service, _) = backend(|_| Step::Answer(HANG));
    let outside = ServiceBuilder::new()
        .layer(TimeoutLayer::new(100 * MS))
        .resilience(stack.clone())
        .service(service);
    downcast::<Elapsed>(&outside.oneshot("q").await.unwrap_err());

    // Same as `.layer(stack)`.
    let (service, _) = backend(|_| Step::Answer(HANG));
    let same = ServiceBuilder::new()
        .layer(stack)
        .layer(TimeoutLayer::new(100 * MS))
        .service(service);
    assert_eq!(same.oneshot("q").await.unwrap(), "fallback");
}

// ---------------------------------------------------------------------------------------------
// Errors, shared state, futures.
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_the_full_stack_unwrapped() {
    let (backend, calls) = backend(|_| Step::Fail);
    let svc = ResilienceStack::new()
        .retry(retry(2))
        .overall_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker(10))
        .bulkhead(bulkhead(1, Duration::ZERO))
        .attempt_timeout(100 * MS)
        .layer(backend);
    let err = svc.oneshot("q").await.unwrap_err();
    assert_eq!(
        downcast::<BackendError>(&err),
        &BackendError(1),
        "the last attempt's"
    );
    assert!(err.source().is_none(), "boxed, not wrapped");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn every_clone_and_every_service_shares_the_layers_state() {
    let breaker = breaker(1);
    let permits = bulkhead(1, Duration::ZERO);
    let stack = ResilienceStack::new()
        .circuit_breaker(breaker.clone())
        .bulkhead(permits.clone());
    let (backend_a, calls_a) = backend(|_| Step::Answer(HANG));
    let (backend_b, calls_b) = backend(|_| Step::Answer(Duration::ZERO));
    let mut a = stack.layer(backend_a);
    let b = stack.clone().layer(backend_b);

    // A permit held through `a` fills the bulkhead for `b`.
    let mut held = pin!(a.ready().await.unwrap().call("q"));
    assert!(poll(held.as_mut()).is_pending());
    downcast::<BulkheadFull>(&b.clone().oneshot("q").await.unwrap_err());

    // The breaker opened through the handle rejects `b` (a service of a cloned stack).
    breaker.force_open();
    downcast::<CircuitOpen>(&b.oneshot("q").await.unwrap_err());
    assert_eq!(calls_a.load(Ordering::SeqCst), 1);
    assert_eq!(calls_b.load(Ordering::SeqCst), 0);
}

#[test]
fn response_futures_are_send_and_static() {
    let (backend, _) = backend(|_| Step::Answer(Duration::ZERO));
    let full = ResilienceStack::new()
        .fallback(FallbackLayer::new(|_: BoxError| Ok("fallback")))
        .retry(retry(3))
        .overall_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker(5))
        .bulkhead(bulkhead(5, Duration::ZERO))
        .attempt_timeout(100 * MS)
        .layer(backend);
    send_static_future::<_, &'static str>(&full);
    fn send<T: Send + 'static>(_: &T) {}
    send(&full);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_gives_everything_back() {
    let (backend, calls) = backend(|n| Step::Answer(if n == 0 { HANG } else { Duration::ZERO }));
    let breaker = breaker(1);
    let permits = bulkhead(1, Duration::ZERO);
    let mut svc = ResilienceStack::new()
        .fallback(FallbackLayer::new(|_: BoxError| Ok("fallback")))
        .retry(retry(3))
        .overall_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker.clone())
        .bulkhead(permits.clone())
        .attempt_timeout(500 * MS)
        .layer(backend);
    {
        let mut call = Box::pin(svc.ready().await.unwrap().call("q"));
        assert!(poll(call.as_mut()).is_pending());
        assert_eq!(permits.available_permits(), 0);
        advance(200 * MS).await;
        assert!(poll(call.as_mut()).is_pending());
    }
    assert_eq!(permits.available_permits(), 1, "the permit is back");
    assert_eq!(
        breaker.snapshot().calls(),
        0,
        "a dropped call is not an outcome"
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        svc.ready().await.unwrap().call("q").await.unwrap(),
        "answer"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------
// Timeout boundaries through the stack.
// ---------------------------------------------------------------------------------------------

fn bounded_stack()
-> impl Service<&'static str, Response = &'static str, Error = BoxError, Future: Send + 'static> {
    let (backend, _) = backend(|_| Step::Answer(HANG));
    ResilienceStack::new()
        .retry(retry(1))
        .overall_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker(10))
        .bulkhead(bulkhead(1, Duration::ZERO))
        .attempt_timeout(100 * MS)
        .layer(backend)
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_one_tick_before_and_exactly_at() {
    let mut svc = bounded_stack();
    svc.ready().await.unwrap();
    let mut call = pin!(svc.call("q"));
    assert!(poll(call.as_mut()).is_pending());
    advance(99 * MS).await;
    assert!(poll(call.as_mut()).is_pending(), "one tick before");
    advance(MS).await;
    match poll(call.as_mut()) {
        Poll::Ready(Err(err)) => {
            assert_eq!(
                downcast::<Elapsed>(&err).kind(),
                ElapsedKind::Timeout,
                "exactly at"
            )
        }
        other => panic!("expected Elapsed exactly at the timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_one_tick_after() {
    let mut svc = bounded_stack();
    svc.ready().await.unwrap();
    let mut call = pin!(svc.call("q"));
    assert!(poll(call.as_mut()).is_pending());
    advance(101 * MS).await;
    match poll(call.as_mut()) {
        Poll::Ready(Err(err)) => {
            assert_eq!(downcast::<Elapsed>(&err).kind(), ElapsedKind::Timeout)
        }
        other => panic!("expected Elapsed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_at_exactly_the_attempt_timeout_wins() {
    for (delay, answered) in [(99 * MS, true), (100 * MS, true), (101 * MS, false)] {
        let (backend, _) = backend(move |_| Step::Answer(delay));
        let svc = ResilienceStack::new()
            .overall_timeout(Duration::from_secs(1))
            .attempt_timeout(100 * MS)
            .layer(backend);
        let result = svc.oneshot("q").await;
        assert_eq!(
            result.is_ok(),
            answered,
            "answer after {delay:?}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and names.
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_fails_every_call_without_reaching_the_service() {
    // The stack takes a `Duration` as `TimeoutLayer::new` does; build the layer with
    // `TimeoutLayer::builder()` to have a zero timeout rejected instead.
    let (backend, calls) = backend(|_| Step::Answer(Duration::ZERO));
    let svc = ResilienceStack::new()
        .attempt_timeout(Duration::ZERO)
        .layer(backend);
    downcast::<Elapsed>(&svc.oneshot("q").await.unwrap_err());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(
        TimeoutLayer::builder()
            .timeout(Duration::ZERO)
            .build()
            .is_err()
    );
}

#[test]
fn duration_timeouts_are_named_overall_and_attempt_and_layers_keep_their_names() {
    assert_eq!(OVERALL_TIMEOUT_NAME, "overall");
    assert_eq!(ATTEMPT_TIMEOUT_NAME, "attempt");
    let stack = ResilienceStack::new()
        .overall_timeout(Duration::from_secs(1))
        .attempt_timeout(100 * MS);
    let debug = format!("{stack:?}");
    let overall = debug
        .find("\"overall\"")
        .expect("the overall timeout's name");
    let attempt = debug
        .find("\"attempt\"")
        .expect("the attempt timeout's name");
    assert!(overall < attempt, "outermost first: {debug}");

    let named = TimeoutLayer::builder()
        .timeout(100 * MS)
        .name("edge")
        .build()
        .unwrap();
    let debug = format!("{:?}", ResilienceStack::new().attempt_timeout(named));
    assert!(debug.contains("\"edge\""), "{debug}");
    assert!(!debug.contains("\"attempt\""), "{debug}");
}

#[test]
fn debug_lists_the_layers_outermost_first() {
    let stack = ResilienceStack::new()
        .bulkhead(bulkhead(3, Duration::ZERO))
        .retry(retry(2));
    let debug = format!("{stack:?}");
    let positions: Vec<usize> = [
        "fallback",
        "retry",
        "overall_timeout",
        "circuit_breaker",
        "bulkhead",
        "attempt_timeout",
    ]
    .iter()
    .map(|field| debug.find(&format!("{field}:")).expect(field))
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{debug}");
    assert!(
        debug.contains("RetryLayer") && debug.contains("BulkheadLayer"),
        "{debug}"
    );
}

#[cfg(all(feature = "rate-limit", feature = "limit", feature = "hedge"))]
mod second_wave {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use steadfast::BoxError;
    use steadfast::fallback::FallbackLayer;
    use steadfast::hedge::HedgeLayer;
    use steadfast::limit::AdaptiveLimitLayer;
    use steadfast::rate_limit::{RateLimitLayer, RateLimited};
    use steadfast::retry::RetryLayer;
    use steadfast::stack::ResilienceStack;
    use tower::{Layer, Service, ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_sheds_before_the_fallback_can_answer() {
        let stack = ResilienceStack::new()
            .fallback(FallbackLayer::new(|_: BoxError| Ok("cached")))
            .rate_limit(
                RateLimitLayer::builder()
                    .limit(1, Duration::from_secs(3600))
                    .build()
                    .unwrap(),
            );
        let mut svc = stack.layer(service_fn(|()| async { Ok::<_, BoxError>("fresh") }));
        assert_eq!(svc.ready().await.unwrap().call(()).await.unwrap(), "fresh");
        let error = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert!(
            error.is::<RateLimited>(),
            "shed, not answered by the fallback"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_adaptive_limit_wraps_the_whole_call() {
        let limit = AdaptiveLimitLayer::builder()
            .initial_limit(1)
            .min_limit(1)
            .max_limit(1)
            .build()
            .unwrap();
        let stack = ResilienceStack::new()
            .retry(RetryLayer::builder().max_attempts(3).build().unwrap())
            .adaptive_limit(limit.clone());
        let svc = stack.layer(service_fn(|()| {
            std::future::pending::<Result<(), BoxError>>()
        }));
        let call = svc.clone().oneshot(());
        tokio::pin!(call);
        assert!(futures_poll_once(call.as_mut()).await);
        assert_eq!(
            limit.in_flight(),
            1,
            "one call, however many attempts it makes"
        );
        let error = svc.oneshot(()).await.unwrap_err();
        assert!(error.is::<steadfast::limit::LimitExceeded>());
    }

    #[tokio::test(start_paused = true)]
    async fn the_hedge_sits_inside_retry_and_sends_a_copy_after_its_delay() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let backend = service_fn(move |()| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, BoxError>(n)
            }
        });
        let stack = ResilienceStack::new()
            .retry(RetryLayer::builder().max_attempts(2).build().unwrap())
            .hedge(
                HedgeLayer::builder()
                    .delay(Duration::from_millis(10))
                    .build()
                    .unwrap(),
            )
            .overall_timeout(Duration::from_secs(1));
        let answer = stack.layer(backend).oneshot(()).await.unwrap();
        assert_eq!(answer, 1, "the hedge answered");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(
            format!("{:?}", ResilienceStack::new()).starts_with(
                "ResilienceStack { rate_limit: Identity, adaptive_limit: Identity, fallback"
            ),
            "Debug lists the layers outermost first"
        );
    }

    /// Polls `future` once; true if it is still pending.
    async fn futures_poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
        let mut future = future;
        std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_pending()))
            .await
    }
}
