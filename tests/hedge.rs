//! Integration tests of `steadfast::hedge`, on paused tokio time.

#[path = "support/events.rs"]
mod events;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use steadfast::BoxError;
use steadfast::deadline::Deadline;
use steadfast::hedge::HedgeLayer;
use steadfast::retry::{RetryBudget, RetryLayer, SharedBudget};
use tokio::time::{Instant, advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The error of attempt number `.0` (from 1).
#[derive(Debug, PartialEq, Eq)]
struct Failure(u32);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {} failed", self.0)
    }
}

impl std::error::Error for Failure {}

/// What the backend saw.
#[derive(Default)]
struct Log {
    /// When each attempt was called, from the test's start.
    calls: Mutex<Vec<Duration>>,
    /// Attempts dropped before they finished.
    dropped: AtomicU32,
}

impl Log {
    fn calls(&self) -> Vec<Duration> {
        self.calls.lock().unwrap().clone()
    }
    fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Counts an attempt dropped before it finished.
struct DropCounter {
    log: Arc<Log>,
    finished: bool,
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        if !self.finished {
            self.log.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A backend whose n-th attempt (from 1) takes `plan[n-1].0` and then answers `n` or fails
/// with `Failure(n)`; attempts past the plan take an hour.
fn backend(
    plan: &[(u64, bool)],
) -> (
    impl Service<&'static str, Response = u32, Error = BoxError, Future: Send> + Clone + Send,
    Arc<Log>,
) {
    let plan: Arc<Vec<(u64, bool)>> = Arc::new(plan.to_vec());
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let service = {
        let log = Arc::clone(&log);
        service_fn(move |_request: &'static str| {
            let n = {
                let mut calls = log.calls.lock().unwrap();
                calls.push(start.elapsed());
                calls.len() as u32
            };
            let (latency, ok) = plan
                .get(n as usize - 1)
                .copied()
                .unwrap_or((3_600_000, true));
            let guard = DropCounter {
                log: Arc::clone(&log),
                finished: false,
            };
            async move {
                // Moved in whole, so that it lives as long as the attempt.
                let mut guard = guard;
                sleep(ms(latency)).await;
                guard.finished = true;
                if ok {
                    Ok(n)
                } else {
                    Err::<u32, BoxError>(Box::new(Failure(n)))
                }
            }
        })
    };
    (service, log)
}

fn layer(delay: u64, hedges: u32) -> HedgeLayer {
    HedgeLayer::builder()
        .delay(ms(delay))
        .max_hedged_attempts(hedges)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap()
}

// ---- timing -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_delay_sends_no_hedge() {
    let (service, log) = backend(&[(10, true)]);
    let start = Instant::now();
    let answer = layer(50, 2).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(log.calls(), vec![ms(0)]);
    assert_eq!(log.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_kth_hedge_is_sent_k_delays_after_the_call() {
    let (service, log) = backend(&[(1000, true), (1000, true), (1000, true), (5, true)]);
    let start = Instant::now();
    let answer = layer(20, 3).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 4, "the third hedge answered first");
    assert_eq!(start.elapsed(), ms(65));
    assert_eq!(log.calls(), vec![ms(0), ms(20), ms(40), ms(60)]);
    assert_eq!(log.dropped(), 3, "the three losers were dropped");
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_hedged_attempts() {
    let (service, log) = backend(&[(1000, true), (1000, true), (1000, true)]);
    let start = Instant::now();
    let answer = layer(20, 2).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), ms(1000));
    assert_eq!(log.calls(), vec![ms(0), ms(20), ms(40)]);
    assert_eq!(log.dropped(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_zero_delay_sends_every_attempt_at_once() {
    let (service, log) = backend(&[(30, true), (20, true), (10, true)]);
    let start = Instant::now();
    let answer = layer(0, 2).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 3);
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(log.calls(), vec![ms(0), ms(0), ms(0)]);
    assert_eq!(log.dropped(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_first_attempt_can_still_win_after_a_hedge() {
    let (service, log) = backend(&[(30, true), (100, true)]);
    let start = Instant::now();
    let answer = layer(20, 1).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), ms(30));
    assert_eq!(log.calls(), vec![ms(0), ms(20)]);
    assert_eq!(
        log.dropped(),
        1,
        "the hedge was dropped when the first attempt won"
    );
}

#[tokio::test(start_paused = true)]
async fn losers_are_dropped_before_the_answer_is_returned() {
    let (service, log) = backend(&[(1000, true), (5, true)]);
    let mut future = pin!(layer(10, 1).layer(service).oneshot("x"));
    let answer = poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(answer) => {
            // Checked inside the poll that returned the answer.
            assert_eq!(log.dropped(), 1);
            Poll::Ready(answer)
        }
        Poll::Pending => Poll::Pending,
    })
    .await;
    assert_eq!(answer.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_future_polled_after_its_answer_panics_and_sends_nothing() {
    let (service, log) = backend(&[(5, true)]);
    let mut service = layer(10, 2).layer(service);
    let mut future = Box::pin(service.ready().await.unwrap().call("x"));
    assert_eq!(future.as_mut().await.unwrap(), 1);
    advance(ms(100)).await;
    poll_fn(|cx| {
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = future.as_mut().poll(cx);
        }));
        assert!(again.is_err(), "polled after completion: no panic");
        Poll::Ready(())
    })
    .await;
    assert_eq!(log.calls().len(), 1);
}

// ---- failures -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_failure_sends_the_next_hedge_at_once_and_keeps_the_schedule() {
    let (service, log) = backend(&[(10, false), (1000, true), (5, true)]);
    let start = Instant::now();
    let answer = layer(100, 2).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 3);
    // Hedge 1 at once after the failure at 10 ms; hedge 2 at its time, 2 × 100 ms.
    assert_eq!(log.calls(), vec![ms(0), ms(10), ms(200)]);
    assert_eq!(start.elapsed(), ms(205));
    assert_eq!(log.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_does_not_end_the_call_while_others_are_in_flight() {
    let (service, log) = backend(&[(50, true), (5, false)]);
    let start = Instant::now();
    let answer = layer(10, 1).layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 1, "the hedge failed, the first attempt answered");
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(log.calls(), vec![ms(0), ms(10)]);
}

#[tokio::test(start_paused = true)]
async fn when_all_fail_the_error_is_the_last_to_fail() {
    // The first attempt fails last (at 50 ms), after both hedges.
    let (service, log) = backend(&[(50, false), (5, false), (15, false)]);
    let start = Instant::now();
    let error = layer(10, 2).layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(error.downcast_ref::<Failure>(), Some(&Failure(1)));
    assert_eq!(start.elapsed(), ms(50));
    // Hedge 1 at 10 ms; it failed at 15 ms, so hedge 2 went at once.
    assert_eq!(log.calls(), vec![ms(0), ms(10), ms(15)]);
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_no_hedge_left_fails_the_call_at_once() {
    let (service, log) = backend(&[(5, false)]);
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .budget(RetryBudget::new(0.0, 0, Duration::from_secs(1)))
        .build()
        .unwrap();
    let start = Instant::now();
    let error = layer.layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(error.downcast_ref::<Failure>(), Some(&Failure(1)));
    assert_eq!(
        start.elapsed(),
        ms(5),
        "no budget: no hedge, no wait for the timer"
    );
    assert_eq!(log.calls().len(), 1);
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn a_local_rejection_sends_no_hedge_at_once() {
    use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen};

    let (service, log) = backend(&[]);
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    breaker.force_open();
    let start = Instant::now();
    let error = layer(10, 2)
        .layer(breaker.layer(service))
        .oneshot("x")
        .await
        .unwrap_err();
    assert!(error.is::<CircuitOpen>());
    assert_eq!(start.elapsed(), ms(0));
    assert!(log.calls().is_empty());
}

// ---- budget and deadline --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_budget_denies_hedges() {
    // One token: the floor of 1 a second over 1 s, nothing from requests.
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
        .build()
        .unwrap();
    assert_eq!(layer.budget_remaining(), 1);

    let (service, log) = backend(&[(100, true), (100, true), (100, true)]);
    let answer = layer.layer(service.clone()).oneshot("x").await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(log.calls().len(), 2, "the first call had its hedge");
    assert_eq!(layer.budget_remaining(), 0);

    let start = Instant::now();
    let answer = layer.layer(service).oneshot("x").await.unwrap();
    assert_eq!(answer, 3);
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(log.calls().len(), 3, "the second call's hedge was denied");
}

#[tokio::test(start_paused = true)]
async fn every_call_deposits_into_the_budget() {
    // Half a hedge per call, no floor: two healthy calls pay for one hedge.
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .budget(RetryBudget::new(0.5, 0, Duration::from_secs(10)))
        .build()
        .unwrap();
    assert_eq!(layer.budget_remaining(), 0);
    let (service, _log) = backend(&[(1, true), (1, true)]);
    let service = layer.layer(service);
    service.clone().oneshot("x").await.unwrap();
    assert_eq!(layer.budget_remaining(), 0);
    service.oneshot("x").await.unwrap();
    assert_eq!(layer.budget_remaining(), 1);
}

#[tokio::test(start_paused = true)]
async fn hedge_and_retry_can_share_one_budget() {
    let budget = SharedBudget::new(RetryBudget::new(0.0, 1, Duration::from_secs(1)));
    let hedge = HedgeLayer::builder()
        .delay(ms(10))
        .shared_budget(budget.clone())
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .shared_budget(budget.clone())
        .build()
        .unwrap();
    assert_eq!(retry.budget_remaining(), 1);
    let (service, log) = backend(&[(100, true), (5, true)]);
    retry
        .layer(hedge.layer(service))
        .oneshot("x")
        .await
        .unwrap();
    assert_eq!(log.calls().len(), 2);
    assert_eq!(budget.remaining(), 0);
    assert_eq!(
        retry.budget_remaining(),
        0,
        "the hedge spent the retry's token"
    );
}

#[tokio::test(start_paused = true)]
async fn no_hedge_is_sent_once_the_deadline_has_passed() {
    let (service, log) = backend(&[(100, true), (100, true), (100, true)]);
    let start = Instant::now();
    let call = layer(10, 2).layer(service).oneshot("x");
    // A deadline that is read, not enforced: 15 ms.
    let answer = Deadline::after(ms(15)).scope(call).await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), ms(100));
    // Hedge 1 at 10 ms (5 ms left); hedge 2 was due at 20 ms, past the deadline.
    assert_eq!(log.calls(), vec![ms(0), ms(10)]);
}

#[cfg(feature = "timeout")]
#[tokio::test(start_paused = true)]
async fn a_timeout_outside_drops_every_attempt() {
    use steadfast::timeout::{Elapsed, TimeoutLayer};

    let (service, log) = backend(&[(1000, true), (1000, true), (1000, true)]);
    let service = TimeoutLayer::new(ms(50)).layer(layer(10, 2).layer(service));
    let error = service.oneshot("x").await.unwrap_err();
    assert!(error.is::<Elapsed>());
    assert_eq!(log.calls(), vec![ms(0), ms(10), ms(20)]);
    assert_eq!(log.dropped(), 3);
}

// ---- cancellation -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn dropping_the_call_drops_every_attempt() {
    let (service, log) = backend(&[(1000, true), (1000, true), (1000, true)]);
    let mut service = layer(10, 2).layer(service);
    let mut future = Box::pin(service.ready().await.unwrap().call("x"));
    // Run the call until both hedges are out.
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    advance(ms(10)).await;
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    advance(ms(10)).await;
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    assert_eq!(log.calls().len(), 3);
    drop(future);
    assert_eq!(log.dropped(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_gives_back_the_token_of_a_hedge_not_yet_sent() {
    use std::task::Context;

    // A service that is never ready again after its first call, so a hedge waits for it.
    #[derive(Clone)]
    struct OnceReady {
        called: Arc<AtomicU32>,
    }
    impl Service<&'static str> for OnceReady {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Pending<Result<u32, BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.called.load(Ordering::SeqCst) == 0 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
        fn call(&mut self, _: &'static str) -> Self::Future {
            self.called.fetch_add(1, Ordering::SeqCst);
            std::future::pending()
        }
    }

    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
        .build()
        .unwrap();
    let called = Arc::new(AtomicU32::new(0));
    let mut service = layer.layer(OnceReady {
        called: Arc::clone(&called),
    });
    let mut future = Box::pin(service.ready().await.unwrap().call("x"));
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    advance(ms(10)).await;
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    assert_eq!(
        layer.budget_remaining(),
        0,
        "the hedge is paid for, waiting"
    );
    assert_eq!(called.load(Ordering::SeqCst), 1);
    drop(future);
    assert_eq!(layer.budget_remaining(), 1, "and its token came back");
}

// ---- which requests -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn only_the_requests_the_predicate_accepts_are_hedged() {
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .budget(RetryBudget::unlimited())
        .hedge_if(|request: &&'static str| *request == "read")
        .build()
        .unwrap();
    let (service, log) = backend(&[(100, true), (100, true), (5, true)]);
    let service = layer.layer(service);
    assert_eq!(service.clone().oneshot("write").await.unwrap(), 1);
    assert_eq!(log.calls().len(), 1, "a write is sent once");
    assert_eq!(service.oneshot("read").await.unwrap(), 3);
    assert_eq!(log.calls().len(), 3);
}

// ---- percentile delay -----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_follows_the_last_window() {
    let layer = HedgeLayer::builder()
        .delay_percentile(0.9)
        .min_samples(10)
        .latency_window(Duration::from_secs(1))
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    assert_eq!(layer.current_delay(), None);

    // Ten calls of 10 ms in the first window: no hedge yet.
    let mut plan = vec![(10, true); 10];
    // The call that rotates the window, then a slow one with a fast hedge.
    plan.push((10, true));
    plan.push((1000, true));
    plan.push((5, true));
    let (service, log) = backend(&plan);
    let service = layer.layer(service);
    let start = Instant::now();
    for _ in 0..10 {
        service.clone().oneshot("x").await.unwrap();
    }
    assert_eq!(log.calls().len(), 10, "no hedge before a full window");
    assert_eq!(layer.current_delay(), None);

    advance(Duration::from_secs(1) - start.elapsed()).await;
    service.clone().oneshot("x").await.unwrap();
    // p90 of 11 samples of 10 ms: the upper bound of 10 ms's bucket, 10 239 µs.
    assert_eq!(layer.current_delay(), Some(Duration::from_micros(10_239)));

    let call = Instant::now();
    assert_eq!(service.oneshot("x").await.unwrap(), 13);
    // The hedge was due at 10.239 ms; tokio's timers fire on whole milliseconds.
    assert_eq!(call.elapsed(), ms(11) + ms(5));
}

#[tokio::test(start_paused = true)]
async fn before_min_samples_only_failures_send_hedges() {
    let layer = HedgeLayer::builder()
        .delay_percentile(0.9)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    // No window has had its samples: a slow call is not hedged, a failed one is.
    let (service, log) = backend(&[(500, true), (5, false), (5, true)]);
    let service = layer.layer(service);
    assert_eq!(service.clone().oneshot("x").await.unwrap(), 1);
    assert_eq!(log.calls().len(), 1);
    assert_eq!(service.oneshot("x").await.unwrap(), 3);
    assert_eq!(log.calls()[1..], [ms(500), ms(505)]);
}

// ---- configuration ------------------------------------------------------------------------

#[test]
fn config_errors_name_the_method() {
    let field = |result: Result<HedgeLayer<_>, steadfast::ConfigError>| {
        let error = result.unwrap_err();
        assert!(
            error.to_string().contains(error.field()),
            "{error} names {}",
            error.field()
        );
        error.field()
    };
    let builder = HedgeLayer::builder;
    assert_eq!(
        field(builder().max_hedged_attempts(0).build()),
        "max_hedged_attempts"
    );
    assert_eq!(
        field(builder().max_hedged_attempts(11).build()),
        "max_hedged_attempts"
    );
    assert_eq!(
        field(builder().delay_percentile(f64::NAN).build()),
        "delay_percentile"
    );
    assert_eq!(
        field(builder().delay_percentile(0.0).build()),
        "delay_percentile"
    );
    assert_eq!(
        field(builder().delay_percentile(1.5).build()),
        "delay_percentile"
    );
    assert_eq!(
        field(builder().delay_percentile(0.9).min_samples(0).build()),
        "min_samples"
    );
    assert_eq!(
        field(
            builder()
                .delay_percentile(0.9)
                .latency_window(ms(1))
                .build()
        ),
        "latency_window"
    );
    assert_eq!(
        field(
            builder()
                .budget(RetryBudget::new(f64::NAN, 1, Duration::from_secs(1)))
                .build()
        ),
        "budget"
    );
    assert_eq!(
        field(
            builder()
                .shared_budget(SharedBudget::new(RetryBudget::new(
                    1.0,
                    1,
                    Duration::from_millis(1)
                )))
                .build()
        ),
        "budget"
    );
    let error = builder().max_hedged_attempts(0).build().unwrap_err();
    assert!(error.to_string().contains("[1, 10]"), "{error}");
    assert!(builder().delay(Duration::ZERO).build().is_ok());
    assert!(builder().max_hedged_attempts(10).build().is_ok());
}

// ---- telemetry ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn hedges_are_traced() {
    let events = events::capture();
    let (service, _log) = backend(&[(100, false), (5, false), (5, true)]);
    HedgeLayer::builder()
        .name("users")
        .delay(ms(10))
        .max_hedged_attempts(2)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap()
        .layer(service)
        .oneshot("x")
        .await
        .unwrap();
    let text = events.text();
    assert!(
        text.contains("hedge sent hedge.name=users hedge.attempt=2 hedge.cause=\"delay\""),
        "{text}"
    );
    assert!(
        text.contains("hedge sent hedge.name=users hedge.attempt=3 hedge.cause=\"failure\""),
        "{text}"
    );
    assert!(
        text.contains("hedge won hedge.name=users hedge.attempt=3"),
        "{text}"
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn hedges_sent_won_and_denied_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        HedgeLayer::builder()
            .name("users")
            .delay(ms(10))
            .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
            .build()
            .unwrap()
    });
    // A hedge sent that wins; then a hedge denied.
    let (service, _log) = backend(&[(100, true), (5, true), (100, true)]);
    layer.layer(service.clone()).oneshot("x").await.unwrap();
    layer.layer(service).oneshot("x").await.unwrap();

    let mut counters = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        if let DebugValue::Counter(n) = value {
            counters.insert(format!("{}{{{}}}", key.name(), labels.join(",")), n);
        }
    }
    let count = |key: &str| counters.get(key).copied().unwrap_or(0);
    assert_eq!(count("steadfast_hedge_sent_total{name=users}"), 1);
    assert_eq!(count("steadfast_hedge_won_total{name=users}"), 1);
    assert_eq!(count("steadfast_hedge_budget_denied_total{name=users}"), 1);
}

// ---- HTTP -----------------------------------------------------------------------------------

#[cfg(feature = "http")]
mod http_replay {
    use bytes::Bytes;
    use http::{Method, Request};
    use http_body_util::{BodyExt, Full};
    use steadfast::retry::ReplayBody;

    use super::*;

    /// A backend that reads the whole body, slow on its first call.
    fn echo() -> (
        impl Service<Request<ReplayBody<Full<Bytes>>>, Response = Bytes, Error = BoxError, Future: Send>
        + Clone,
        Arc<AtomicU32>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let service = service_fn(move |request: Request<ReplayBody<Full<Bytes>>>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = request.into_body().collect().await?.to_bytes();
                sleep(ms(if n == 0 { 1000 } else { 5 })).await;
                Ok::<_, BoxError>(body)
            }
        });
        (service, calls)
    }

    fn request(method: Method) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri("/items")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn idempotent_requests_are_hedged_with_their_body_replayed() {
        let layer = HedgeLayer::builder()
            .delay(ms(10))
            .budget(RetryBudget::unlimited())
            .replay_body(1024)
            .build()
            .unwrap();
        let (service, calls) = echo();
        let start = Instant::now();
        let body = layer
            .layer(service)
            .oneshot(request(Method::PUT))
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(start.elapsed(), ms(15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_is_not_hedged_unless_asked() {
        let (service, calls) = echo();
        let layer = HedgeLayer::builder()
            .delay(ms(10))
            .budget(RetryBudget::unlimited())
            .replay_body(1024)
            .build()
            .unwrap();
        layer
            .layer(service)
            .oneshot(request(Method::POST))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let layer = HedgeLayer::builder()
            .delay(ms(10))
            .budget(RetryBudget::unlimited())
            .policy(steadfast::hedge::HttpHedge::new(1024).methods([Method::POST]))
            .build()
            .unwrap();
        let (service, calls) = echo();
        layer
            .layer(service)
            .oneshot(request(Method::POST))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

// ---- against a sequential model -------------------------------------------------------------

mod model {
    use proptest::prelude::*;

    use super::*;

    /// What a call comes to: when, the winner's number or the last failure's, and when each
    /// attempt was sent.
    type Outcome = (u64, Result<u32, u32>, Vec<u64>);

    /// The schedule the docs describe, event by event: at each instant, attempts end in the
    /// order sent (the first success wins; each failure makes one more attempt due), then the
    /// timer (the k-th hedge is due at k × delay), then whatever is due is sent.
    fn model(delay: u64, max_attempts: usize, plan: &[(u64, bool)]) -> Outcome {
        let mut sent_at = vec![0u64];
        let mut done = vec![false];
        let (mut target, mut tick, mut last_error) = (1usize, 1usize, 0u32);
        let mut now = 0;
        loop {
            for i in 0..sent_at.len() {
                if !done[i] && sent_at[i] + plan[i].0 == now {
                    done[i] = true;
                    if plan[i].1 {
                        return (now, Ok(i as u32 + 1), sent_at);
                    }
                    last_error = i as u32 + 1;
                    target = (target.max(sent_at.len()) + 1).min(max_attempts);
                }
            }
            tick = tick.max(sent_at.len());
            if sent_at.len() < max_attempts && tick < max_attempts && tick as u64 * delay == now {
                target = target.max(tick + 1);
                tick += 1;
            }
            while sent_at.len() < target {
                sent_at.push(now);
                done.push(false);
            }
            tick = tick.max(sent_at.len());
            let finishes = (0..sent_at.len())
                .filter(|&i| !done[i])
                .map(|i| sent_at[i] + plan[i].0);
            let next_tick =
                (sent_at.len() < max_attempts && tick < max_attempts).then(|| tick as u64 * delay);
            match finishes.chain(next_tick).min() {
                Some(next) if done.iter().any(|d| !d) || next_tick.is_some() => {
                    if done.iter().all(|d| *d) {
                        // Nothing in flight and nothing due now: the call has failed.
                        return (now, Err(last_error), sent_at);
                    }
                    now = next;
                }
                _ => return (now, Err(last_error), sent_at),
            }
        }
    }

    fn attempt() -> impl Strategy<Value = (u64, bool)> {
        (1u64..120, prop_oneof![3 => Just(true), 2 => Just(false)])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_schedule_matches_the_model(
            delay in 1u64..60,
            hedges in 1u32..=4,
            plan in proptest::collection::vec(attempt(), 5),
        ) {
            let max_attempts = hedges as usize + 1;
            let (time, result, sent_at) = model(delay, max_attempts, &plan);

            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let (elapsed, answer, calls) = runtime.block_on(async {
                let (service, log) = backend(&plan);
                let start = Instant::now();
                let answer = layer(delay, hedges).layer(service).oneshot("x").await;
                (start.elapsed(), answer, log.calls())
            });
            let answer = answer.map_err(|error| {
                error.downcast_ref::<Failure>().map_or(0, |failure| failure.0)
            });
            let calls: Vec<u64> = calls.iter().map(|at| at.as_millis() as u64).collect();
            prop_assert_eq!(calls, sent_at);
            prop_assert_eq!(answer, result);
            prop_assert_eq!(elapsed, ms(time));
        }
    }
}

// ---- live reconfiguration -----------------------------------------------------------------

/// `reconfigure`: each setting applies to the next call, the histogram is kept, a rejected
/// config changes nothing, and calls racing reloads each hedge by one setting.
#[cfg(feature = "serde")]
mod reconfigure {
    use super::*;
    use steadfast::hedge::Config;

    fn fixed(delay: u64, hedges: u32) -> Config {
        let mut config = Config::default();
        config.delay = ms(delay);
        config.max_hedged_attempts = hedges;
        config.budget = RetryBudget::unlimited();
        config
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_delay_and_more_attempts_apply_to_the_next_call() {
        let layer = HedgeLayer::from_config(&fixed(50, 1)).unwrap();
        let (service, log) = backend(&[
            (1000, true),
            (5, true),
            (1000, true),
            (1000, true),
            (1000, true),
            (5, true),
        ]);
        let service = layer.layer(service);
        let call = Instant::now();
        assert_eq!(service.clone().oneshot("x").await.unwrap(), 2);
        assert_eq!(call.elapsed(), ms(55));
        layer.reconfigure(&fixed(20, 3)).unwrap();
        let call = Instant::now();
        assert_eq!(service.oneshot("x").await.unwrap(), 6);
        assert_eq!(call.elapsed(), ms(65));
        let second: Vec<_> = log.calls()[2..].iter().map(|t| *t - ms(55)).collect();
        assert_eq!(second, [ms(0), ms(20), ms(40), ms(60)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_progress_keeps_the_settings_it_started_with() {
        let layer = HedgeLayer::from_config(&fixed(50, 1)).unwrap();
        let (service, log) = backend(&[(1000, true), (1000, true), (1000, true)]);
        let mut call = pin!(layer.layer(service).oneshot("x"));
        assert!(poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_pending())).await);
        layer.reconfigure(&fixed(10, 2)).unwrap();
        assert_eq!(call.await.unwrap(), 1);
        assert_eq!(
            log.calls(),
            [ms(0), ms(50)],
            "one hedge, 50 ms in: the old settings"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_config_changes_nothing() {
        let layer = HedgeLayer::from_config(&fixed(30, 1)).unwrap();
        let mut bad = fixed(10, 11);
        bad.delay_percentile = Some(0.5);
        assert_eq!(
            layer.reconfigure(&bad).unwrap_err().field(),
            "max_hedged_attempts"
        );
        let mut renamed = fixed(10, 2);
        renamed.name = "other".to_owned();
        assert_eq!(layer.reconfigure(&renamed).unwrap_err().field(), "name");
        let mut budget = fixed(10, 2);
        budget.budget = RetryBudget::new(0.1, 10, Duration::from_secs(10));
        assert_eq!(layer.reconfigure(&budget).unwrap_err().field(), "budget");
        let (service, log) = backend(&[(1000, true), (1000, true), (1000, true)]);
        assert_eq!(layer.layer(service).oneshot("x").await.unwrap(), 1);
        assert_eq!(log.calls(), [ms(0), ms(30)], "30 ms, one hedge");
        assert_eq!(layer.current_delay(), Some(ms(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_histogram_survives_a_new_percentile_and_a_switch_to_fixed_and_back() {
        let mut p90 = fixed(50, 1);
        p90.delay_percentile = Some(0.9);
        p90.min_samples = 10;
        p90.latency_window = Duration::from_secs(1);
        let layer = HedgeLayer::from_config(&p90).unwrap();
        // A first window of 8 calls of 10 ms and 2 of 100 ms, and a 10 ms one that rotates.
        let mut plan = vec![(10, true); 8];
        plan.extend([(100, true); 2]);
        plan.push((10, true));
        plan.extend([(1000, true), (5, true)]);
        let (service, log) = backend(&plan);
        let service = layer.layer(service);
        let start = Instant::now();
        for _ in 0..10 {
            service.clone().oneshot("x").await.unwrap();
        }
        advance(Duration::from_secs(1) - start.elapsed()).await;
        service.clone().oneshot("x").await.unwrap();
        // p90 of 11 samples: the 100 ms bucket's upper bound.
        assert_eq!(layer.current_delay(), Some(Duration::from_micros(102_399)));

        let mut p50 = p90.clone();
        p50.delay_percentile = Some(0.5);
        layer.reconfigure(&p50).unwrap();
        assert_eq!(layer.current_delay(), Some(Duration::from_micros(10_239)));
        layer.reconfigure(&fixed(30, 1)).unwrap();
        assert_eq!(layer.current_delay(), Some(ms(30)));
        layer.reconfigure(&p90).unwrap();
        assert_eq!(layer.current_delay(), Some(Duration::from_micros(102_399)));
        layer.reconfigure(&p50).unwrap();

        // The slow call is hedged at the p50 of the kept window, 10.239 ms (fires at 11 ms).
        let call = Instant::now();
        assert_eq!(service.oneshot("x").await.unwrap(), 13);
        assert_eq!(call.elapsed(), ms(11) + ms(5));
        assert_eq!(log.calls().len(), 13);
    }

    #[tokio::test(start_paused = true)]
    async fn a_switch_to_a_percentile_starts_a_histogram() {
        let layer = HedgeLayer::from_config(&fixed(50, 1)).unwrap();
        let mut p90 = fixed(50, 1);
        p90.delay_percentile = Some(0.9);
        p90.min_samples = 2;
        p90.latency_window = Duration::from_secs(1);
        layer.reconfigure(&p90).unwrap();
        assert_eq!(layer.current_delay(), None, "no window has samples yet");
        let (service, log) = backend(&[(20, true), (20, true), (1000, true), (5, true)]);
        let service = layer.layer(service);
        service.clone().oneshot("x").await.unwrap();
        advance(Duration::from_secs(1)).await;
        service.clone().oneshot("x").await.unwrap();
        // p90 of two samples of 20 ms: 20 ms's bucket's upper bound.
        assert_eq!(layer.current_delay(), Some(Duration::from_micros(20_479)));
        let call = Instant::now();
        assert_eq!(service.oneshot("x").await.unwrap(), 4);
        assert_eq!(call.elapsed(), ms(21) + ms(5));
        assert_eq!(log.calls().len(), 4);
    }

    /// Calls racing reloads on two threads: every call ends with its answer, and each sends at
    /// most the hedges one of the two settings allows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_racing_reloads_each_hedge_by_one_setting() {
        let one = fixed(0, 1);
        let three = fixed(0, 3);
        let layer = HedgeLayer::from_config(&one).unwrap();
        let attempts = Arc::new(AtomicU32::new(0));
        let service = layer.layer(yielding(Arc::clone(&attempts)));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move {
                    for n in 0..200 {
                        assert_eq!(service.clone().oneshot(n).await.unwrap(), 7);
                    }
                })
            })
            .collect();
        let reloader = {
            let layer = layer.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    layer
                        .reconfigure(if i % 2 == 0 { &three } else { &one })
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        for task in tasks {
            task.await.unwrap();
        }
        reloader.await.unwrap();
        // A zero delay sends every attempt at the first poll, before any answers: each call
        // made 2 attempts or 4 (one setting's), so the total is even and within these bounds.
        let attempts = attempts.load(Ordering::SeqCst);
        assert!((1600..=3200).contains(&attempts), "{attempts}");
        assert_eq!(attempts % 2, 0);
    }

    /// Counts its calls; each answers after one yield, so the first poll finds it pending.
    fn yielding(
        attempts: Arc<AtomicU32>,
    ) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
        service_fn(move |_: u32| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                Ok::<_, BoxError>(7)
            }
        })
    }
}
