//! Integration tests of `steadfast::retry`, on paused tokio time.

#![cfg(feature = "retry")]

#[path = "../support/events.rs"]
mod events;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use steadfast::deadline::Deadline;
use steadfast::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The error of attempt number `.0`.
#[derive(Debug, PartialEq, Eq)]
struct Failure(u32);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {} failed", self.0)
    }
}

impl std::error::Error for Failure {}

/// A service that fails its first `failures` calls with `Failure(n)`, then answers `n`.
/// Returns the call counter.
fn flaky(
    failures: u32,
) -> (
    impl Service<&'static str, Response = u32, Error = BoxError, Future: Send> + Clone + Send,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let service = service_fn(move |_request: &'static str| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures {
                Err::<u32, BoxError>(Box::new(Failure(n)))
            } else {
                Ok(n)
            }
        }
    });
    (service, calls)
}

fn constant(delay: Duration) -> Backoff {
    Backoff::constant(delay)
}

async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

fn failure_of(error: &BoxError) -> u32 {
    error
        .downcast_ref::<Failure>()
        .map(|failure| failure.0)
        .unwrap_or_else(|| panic!("not a Failure: {error}"))
}

// ---- max_attempts -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn three_attempts_are_two_retries_and_the_last_error_is_returned() {
    let (service, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(ms(10)))
        .build()
        .unwrap();
    let error = layer.layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The inner error passes through unwrapped: the last attempt's.
    assert_eq!(failure_of(&error), 3);
}

#[tokio::test(start_paused = true)]
async fn one_attempt_means_no_retry() {
    let (service, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder().max_attempts(1).build().unwrap();
    let error = layer.layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(failure_of(&error), 1);
}

#[tokio::test(start_paused = true)]
async fn a_success_stops_the_retries() {
    let (service, calls) = flaky(1);
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .backoff(constant(ms(10)))
        .build()
        .unwrap();
    assert_eq!(layer.layer(service).oneshot("x").await.unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_call_is_sent_once_and_waits_nothing() {
    let (service, calls) = flaky(0);
    let layer = RetryLayer::builder().build().unwrap();
    let start = Instant::now();
    assert_eq!(layer.layer(service).oneshot("x").await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

/// A service whose clones are counted.
struct Counted<S> {
    inner: S,
    clones: Arc<AtomicU32>,
}

impl<S: Clone> Clone for Counted<S> {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            inner: self.inner.clone(),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl<S: Service<R>, R> Service<R> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.inner.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_needs_no_retry_clones_nothing_and_retries_share_one_clone() {
    let (inner, calls) = flaky(2);
    let clones = Arc::new(AtomicU32::new(0));
    let counted = Counted {
        inner,
        clones: Arc::clone(&clones),
    };
    let layer = RetryLayer::builder().max_attempts(4).build().unwrap();
    let mut service = layer.layer(counted);
    let at_layer = clones.load(Ordering::SeqCst);
    assert_eq!(at_layer, 1, "the replica retries are cloned from");

    // Two failures, then an answer: both retries go through one clone of the replica.
    assert_eq!(service.ready().await.unwrap().call("x").await.unwrap(), 3);
    assert_eq!(clones.load(Ordering::SeqCst), at_layer + 1);

    // Healthy calls clone nothing.
    for n in 4..14 {
        assert_eq!(service.ready().await.unwrap().call("x").await.unwrap(), n);
    }
    assert_eq!(clones.load(Ordering::SeqCst), at_layer + 1);
    assert_eq!(calls.load(Ordering::SeqCst), 13);
}

// ---- backoff ------------------------------------------------------------------------------

/// Runs a call against an always-failing service and returns the delays the hook saw.
async fn delays_of(backoff: Backoff, attempts: u32, seed: u64) -> Vec<Duration> {
    let (service, _) = flaky(u32::MAX);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let layer = RetryLayer::builder()
        .max_attempts(attempts)
        .backoff(backoff)
        .budget(RetryBudget::unlimited())
        .seed(seed)
        .on_retry(
            move |_attempt: u32, delay: Duration, _cause: &Result<u32, BoxError>| {
                sink.lock().unwrap().push(delay);
            },
        )
        .build()
        .unwrap();
    let start = Instant::now();
    let _ = layer.layer(service).oneshot("x").await;
    let delays = seen.lock().unwrap().clone();
    // The hook's delays are the ones slept, exactly.
    assert_eq!(start.elapsed(), delays.iter().sum::<Duration>());
    delays
}

#[tokio::test(start_paused = true)]
async fn constant_backoff_waits_the_same_each_time() {
    assert_eq!(delays_of(constant(ms(100)), 4, 0).await, [ms(100); 3]);
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_starts_at_the_base_and_doubles() {
    let delays = delays_of(Backoff::exponential(ms(100)), 5, 0).await;
    assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800)]);
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_has_a_configurable_multiplier() {
    let delays = delays_of(Backoff::exponential(ms(100)).multiplier(3.0), 4, 0).await;
    assert_eq!(delays, [ms(100), ms(300), ms(900)]);
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_the_backoff() {
    let backoff = Backoff::exponential(ms(1000)).max_delay(ms(1500));
    assert_eq!(
        delays_of(backoff, 4, 0).await,
        [ms(1000), ms(1500), ms(1500)]
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_is_within_bounds_and_reproducible_with_a_seed() {
    let backoff = Backoff::exponential(ms(100)).jitter(Jitter::Full);
    let first = delays_of(backoff, 6, 42).await;
    let again = delays_of(backoff, 6, 42).await;
    let other = delays_of(backoff, 6, 43).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    for (i, delay) in first.iter().enumerate() {
        assert!(
            *delay <= ms(100) * 2u32.pow(i as u32),
            "{delay:?} at retry {}",
            i + 1
        );
    }
}

#[tokio::test(start_paused = true)]
async fn equal_percent_and_decorrelated_jitter_stay_in_their_ranges() {
    for seed in 0..20 {
        let equal = delays_of(constant(ms(100)).jitter(Jitter::Equal), 4, seed).await;
        assert!(
            equal.iter().all(|d| (ms(50)..=ms(100)).contains(d)),
            "{equal:?}"
        );

        let percent = delays_of(constant(ms(100)).jitter(Jitter::Percent(20)), 4, seed).await;
        assert!(
            percent.iter().all(|d| (ms(80)..=ms(120)).contains(d)),
            "{percent:?}"
        );

        // Jitter is applied before the cap: never above max_delay.
        let capped = constant(ms(100))
            .jitter(Jitter::Percent(20))
            .max_delay(ms(110));
        let capped = delays_of(capped, 4, seed).await;
        assert!(
            capped.iter().all(|d| (ms(80)..=ms(110)).contains(d)),
            "{capped:?}"
        );

        let decorrelated = Backoff::decorrelated(ms(100)).max_delay(ms(1000));
        let delays = delays_of(decorrelated, 6, seed).await;
        let mut previous = ms(100);
        for delay in delays {
            assert!(
                delay >= ms(100) && delay <= (previous * 3).min(ms(1000)),
                "{delay:?}"
            );
            previous = delay;
        }
    }
}

// ---- on_retry and the error -----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn on_retry_sees_attempt_number_delay_and_cause() {
    let (service, _) = flaky(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(ms(10)))
        .on_retry(
            move |attempt: u32, delay: Duration, cause: &Result<u32, BoxError>| {
                let failed = cause.as_ref().map_err(failure_of).unwrap_err();
                sink.lock().unwrap().push((attempt, delay, failed));
            },
        )
        .build()
        .unwrap();
    assert_eq!(layer.layer(service).oneshot("x").await.unwrap(), 3);
    assert_eq!(*seen.lock().unwrap(), [(2, ms(10), 1), (3, ms(20), 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_predicate_decides_what_is_retried() {
    // Retry only errors of an odd attempt: attempt 2's error is returned.
    let (service, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .backoff(constant(MS))
        .policy(|result: &Result<u32, BoxError>| {
            matches!(result, Err(error) if failure_of(error) % 2 == 1)
        })
        .build()
        .unwrap();
    let error = layer.layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(failure_of(&error), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A predicate can retry successful responses too.
    let (service, calls) = flaky(0);
    let layer = RetryLayer::builder()
        .max_attempts(4)
        .backoff(constant(MS))
        .policy(|result: &Result<u32, BoxError>| matches!(result, Ok(n) if *n < 3))
        .build()
        .unwrap();
    assert_eq!(layer.layer(service).oneshot("x").await.unwrap(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn each_retry_emits_one_debug_event_with_structured_fields() {
    let events = events::capture();

    let (service, _) = flaky(2);
    let layer = RetryLayer::builder()
        .name("users")
        .max_attempts(3)
        .backoff(constant(ms(25)))
        .build()
        .unwrap();
    layer.layer(service).oneshot("x").await.unwrap();

    let output = events.text();
    let retries: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("retrying"))
        .collect();
    assert_eq!(retries.len(), 2, "{output}");
    for (line, attempt) in retries.iter().zip([2, 3]) {
        assert!(line.contains("DEBUG"), "{line}");
        assert!(line.contains("retry.name=users"), "{line}");
        assert!(line.contains(&format!("retry.attempt={attempt}")), "{line}");
        assert!(line.contains("retry.delay_ms=25"), "{line}");
        assert!(line.contains("retry.cause=\"error\""), "{line}");
    }
}

// ---- budget -------------------------------------------------------------------------------

/// A service that fails requests asking to fail.
fn failing_on_request() -> (
    impl Service<bool, Response = (), Error = BoxError, Future: Send> + Clone,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let service = service_fn(move |fail: bool| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if fail {
                Err::<(), BoxError>(Box::new(Failure(n)))
            } else {
                Ok(())
            }
        }
    });
    (service, calls)
}

#[tokio::test(start_paused = true)]
async fn budget_ratio_one_tenth_pays_one_retry_per_ten_requests() {
    let (service, calls) = failing_on_request();
    let layer = RetryLayer::builder()
        .max_attempts(10)
        .backoff(constant(Duration::ZERO))
        .budget(RetryBudget::new(0.1, 0, Duration::from_secs(10)))
        .build()
        .unwrap();
    let mut service = layer.layer(service);
    assert_eq!(layer.budget_remaining(), 0);
    for _ in 0..9 {
        service.ready().await.unwrap().call(false).await.unwrap();
    }
    assert_eq!(layer.budget_remaining(), 0);
    // The tenth request (failing) makes ten deposits: exactly one retry.
    calls.store(0, Ordering::SeqCst);
    service.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(layer.budget_remaining(), 0);

    // Twenty more requests: two retries.
    for _ in 0..19 {
        service.ready().await.unwrap().call(false).await.unwrap();
    }
    calls.store(0, Ordering::SeqCst);
    service.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn budget_floor_of_ten_per_second_with_ratio_zero_gives_ten_retries_a_second() {
    let (service, calls) = failing_on_request();
    let layer = RetryLayer::builder()
        .max_attempts(100)
        .backoff(constant(Duration::ZERO))
        .budget(RetryBudget::new(0.0, 10, Duration::from_secs(1)))
        .build()
        .unwrap();
    let mut service = layer.layer(service);
    assert_eq!(layer.budget_remaining(), 10);
    service.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        11,
        "one attempt and ten retries"
    );
    assert_eq!(layer.budget_remaining(), 0);

    // The retries expire after the ttl, not before.
    advance(ms(900)).await;
    assert_eq!(layer.budget_remaining(), 0);
    advance(ms(100)).await;
    assert_eq!(layer.budget_remaining(), 10);
    calls.store(0, Ordering::SeqCst);
    service.ready().await.unwrap().call(true).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 11);
}

#[tokio::test(start_paused = true)]
async fn the_default_budget_lets_a_lone_request_use_its_retries() {
    let (service, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder().build().unwrap();
    let error = layer.layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(failure_of(&error), 3);
    // 10/s over 10 s, less the two retries.
    assert_eq!(layer.budget_remaining(), 98);
}

#[tokio::test(start_paused = true)]
async fn every_service_and_clone_of_a_layer_shares_one_budget() {
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(Duration::ZERO))
        .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
        .build()
        .unwrap();
    let (first, first_calls) = flaky(u32::MAX);
    let (second, second_calls) = flaky(u32::MAX);
    layer.layer(first).oneshot("x").await.unwrap_err();
    layer.clone().layer(second).oneshot("x").await.unwrap_err();
    assert_eq!(
        first_calls.load(Ordering::SeqCst),
        2,
        "the budget's one retry"
    );
    assert_eq!(second_calls.load(Ordering::SeqCst), 1, "nothing left");
}

// ---- readiness and cancellation -------------------------------------------------------------

fn mock_layer(backoff: Duration, max_attempts: u32) -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(max_attempts)
        .backoff(constant(backoff))
        .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
        .min_attempt_time(ms(10))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn readiness_is_polled_again_before_every_attempt() {
    let (service, mut handle) = mock::pair::<&'static str, &'static str>();
    handle.allow(1);
    let mut service = mock_layer(ms(100), 3).layer(service);
    service.ready().await.unwrap();
    let mut future = pin!(service.call("hello"));

    assert!(poll_once(future.as_mut()).await.is_pending());
    let (request, reply) = handle.next_request().await.unwrap();
    assert_eq!(request, "hello");
    reply.send_error(Failure(1));

    assert!(poll_once(future.as_mut()).await.is_pending(), "backing off");
    advance(ms(100)).await;
    // The backoff is over, but the service is not ready: no attempt is sent.
    assert!(poll_once(future.as_mut()).await.is_pending());
    advance(Duration::from_secs(1)).await;
    assert!(poll_once(future.as_mut()).await.is_pending());
    assert!(
        poll_fn(|_| Poll::Ready(handle.poll_request()))
            .await
            .is_pending()
    );

    handle.allow(1);
    assert!(poll_once(future.as_mut()).await.is_pending());
    let (request, reply) = handle.next_request().await.unwrap();
    assert_eq!(request, "hello");
    reply.send_response("world");
    match poll_once(future.as_mut()).await {
        Poll::Ready(Ok(response)) => assert_eq!(response, "world"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_is_returned() {
    let (service, mut handle) = mock::pair::<&'static str, &'static str>();
    let layer = mock_layer(ms(100), 3);
    let mut service = layer.layer(service);
    service.ready().await.unwrap();
    let mut future = pin!(service.call("hello"));
    assert!(poll_once(future.as_mut()).await.is_pending());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(Failure(1));
    assert!(poll_once(future.as_mut()).await.is_pending());
    handle.send_error(Failure(99));
    advance(ms(100)).await;
    match poll_once(future.as_mut()).await {
        Poll::Ready(Err(error)) => assert_eq!(failure_of(&error), 99),
        other => panic!("{other:?}"),
    }
    // The retry was never sent: its budget came back.
    assert_eq!(layer.budget_remaining(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_backoff_cancels_the_retry_and_refunds_the_budget() {
    let (service, mut handle) = mock::pair::<&'static str, &'static str>();
    let layer = mock_layer(ms(100), 3);
    let mut service = layer.layer(service);
    service.ready().await.unwrap();
    {
        let mut future = pin!(service.call("hello"));
        assert!(poll_once(future.as_mut()).await.is_pending());
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(Failure(1));
        assert!(poll_once(future.as_mut()).await.is_pending());
        assert_eq!(layer.budget_remaining(), 0, "the retry is paid for");
        advance(ms(50)).await;
    }
    assert_eq!(layer.budget_remaining(), 1, "and refunded when dropped");
    advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert!(
        poll_fn(|_| Poll::Ready(handle.poll_request()))
            .await
            .is_pending()
    );
}

/// Counts the drops of the futures it is part of.
struct DropCounter(Arc<AtomicU32>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_attempt_cancels_the_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let dropped = Arc::new(AtomicU32::new(0));
    let (counter, drops) = (Arc::clone(&calls), Arc::clone(&dropped));
    // The first attempt fails at once; the second hangs.
    let service = service_fn(move |_: ()| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = DropCounter(Arc::clone(&drops));
        async move {
            let _guard = guard;
            if n == 1 {
                return Err::<(), BoxError>(Box::new(Failure(1)));
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let mut service = mock_layer(ms(100), 3).layer(service);
    service.ready().await.unwrap();
    {
        let mut future = pin!(service.call(()));
        assert!(poll_once(future.as_mut()).await.is_pending());
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "the first attempt finished"
        );
        advance(ms(100)).await;
        assert!(poll_once(future.as_mut()).await.is_pending());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the second attempt is in flight"
        );
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "dropped with the response future"
    );
    advance(Duration::from_secs(10)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// ---- deadline -------------------------------------------------------------------------------

/// Calls an always-failing service under a deadline `deadline` away; returns the calls made
/// and the time taken.
async fn under_deadline(
    deadline: Duration,
    backoff: Duration,
    min_attempt_time: Duration,
) -> (u32, Duration) {
    let (service, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .backoff(constant(backoff))
        .min_attempt_time(min_attempt_time)
        .build()
        .unwrap();
    let start = Instant::now();
    let error = Deadline::after(deadline)
        .scope(layer.layer(service).oneshot("x"))
        .await
        .unwrap_err();
    let made = calls.load(Ordering::SeqCst);
    assert_eq!(failure_of(&error), made);
    (made, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_made_when_backoff_plus_min_attempt_time_ends_exactly_at_the_deadline() {
    assert_eq!(under_deadline(ms(110), ms(100), ms(10)).await, (2, ms(100)));
}

#[tokio::test(start_paused = true)]
async fn no_backoff_starts_one_tick_too_late_for_the_deadline() {
    // 109 ms left: 100 ms of backoff leaves 9 ms, under the 10 ms minimum. No sleep at all.
    assert_eq!(
        under_deadline(ms(109), ms(100), ms(10)).await,
        (1, Duration::ZERO)
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_made_one_tick_inside_the_deadline() {
    assert_eq!(under_deadline(ms(111), ms(100), ms(10)).await, (2, ms(100)));
}

#[tokio::test(start_paused = true)]
async fn no_backoff_ends_at_or_after_the_deadline_even_without_a_minimum() {
    assert_eq!(
        under_deadline(ms(100), ms(100), Duration::ZERO).await,
        (1, Duration::ZERO)
    );
    assert_eq!(
        under_deadline(ms(99), ms(100), Duration::ZERO).await,
        (1, Duration::ZERO)
    );
    assert_eq!(
        under_deadline(ms(101), ms(100), Duration::ZERO).await,
        (2, ms(100))
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_retries_are_not_limited_by_time() {
    let (service, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .backoff(constant(Duration::from_secs(3600)))
        .build()
        .unwrap();
    layer.layer(service).oneshot("x").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// After the backoff, the service becomes ready `wait` later; the deadline is 200 ms away,
/// the backoff 100 ms and the minimum 10 ms. Returns the calls made.
async fn ready_after(wait: Duration) -> u32 {
    let (service, mut handle) = mock::pair::<&'static str, &'static str>();
    handle.allow(1);
    let layer = mock_layer(ms(100), 2);
    let mut service = layer.layer(service);
    service.ready().await.unwrap();
    let deadline = Deadline::after(ms(200));
    let mut future = pin!(deadline.scope(service.call("hello")));
    assert!(poll_once(future.as_mut()).await.is_pending());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(Failure(1));
    assert!(poll_once(future.as_mut()).await.is_pending());
    advance(ms(100) + wait).await;
    assert!(poll_once(future.as_mut()).await.is_pending());
    handle.allow(1);
    match poll_once(future.as_mut()).await {
        Poll::Ready(Err(error)) => {
            assert_eq!(failure_of(&error), 1);
            assert_eq!(
                layer.budget_remaining(),
                1,
                "the abandoned retry is refunded"
            );
            1
        }
        Poll::Pending => {
            let (_, reply) = handle.next_request().await.unwrap();
            reply.send_response("late");
            assert!(matches!(
                poll_once(future.as_mut()).await,
                Poll::Ready(Ok("late"))
            ));
            2
        }
        Poll::Ready(other) => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_starts_with_exactly_the_minimum_time_left() {
    assert_eq!(ready_after(ms(90)).await, 2);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_with_one_tick_less_than_the_minimum_left() {
    assert_eq!(ready_after(ms(91)).await, 1);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_starts_with_one_tick_more_than_the_minimum_left() {
    assert_eq!(ready_after(ms(89)).await, 2);
}

// ---- retry outside a per-attempt timeout ----------------------------------------------------

#[tokio::test(start_paused = true)]
async fn retry_outside_a_per_attempt_timeout_retries_a_hung_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let service = service_fn(move |_: ()| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<u32, BoxError>(n)
        }
    });
    let service = tower::timeout::TimeoutLayer::new(ms(100)).layer(service);
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(ms(50)))
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(layer.layer(service).oneshot(()).await.unwrap(), 2);
    assert_eq!(start.elapsed(), ms(150));
}

// ---- configuration --------------------------------------------------------------------------

#[test]
fn bad_configuration_is_a_config_error_naming_the_setter() {
    let cases = [
        (
            RetryLayer::builder().max_attempts(0),
            "max_attempts",
            "[1, 100]",
        ),
        (
            RetryLayer::builder().max_attempts(101),
            "max_attempts",
            "[1, 100]",
        ),
        (
            RetryLayer::builder().backoff(Backoff::exponential(MS).multiplier(f64::NAN)),
            "backoff",
            "at least 1",
        ),
        (
            RetryLayer::builder().backoff(Backoff::exponential(MS).multiplier(0.5)),
            "backoff",
            "at least 1",
        ),
        (
            RetryLayer::builder().backoff(Backoff::exponential(MS).multiplier(f64::INFINITY)),
            "backoff",
            "finite",
        ),
        (
            RetryLayer::builder().backoff(constant(MS).jitter(Jitter::Percent(101))),
            "backoff",
            "[0, 100]",
        ),
        (
            RetryLayer::builder().budget(RetryBudget::new(f64::NAN, 1, Duration::from_secs(1))),
            "budget",
            "[0, 1000]",
        ),
        (
            RetryLayer::builder().budget(RetryBudget::new(-0.1, 1, Duration::from_secs(1))),
            "budget",
            "[0, 1000]",
        ),
        (
            RetryLayer::builder().budget(RetryBudget::new(1000.5, 1, Duration::from_secs(1))),
            "budget",
            "[0, 1000]",
        ),
        (
            RetryLayer::builder().budget(RetryBudget::new(0.1, 1, Duration::ZERO)),
            "budget",
            "[1s, 60s]",
        ),
        (
            RetryLayer::builder().budget(RetryBudget::new(0.1, 1, Duration::from_secs(61))),
            "budget",
            "[1s, 60s]",
        ),
    ];
    for (builder, field, range) in cases {
        let error = builder.build().unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert!(error.to_string().contains(range), "{error}");
    }
    // The bounds themselves are accepted.
    for builder in [
        RetryLayer::builder().max_attempts(1),
        RetryLayer::builder().max_attempts(100),
        RetryLayer::builder().budget(RetryBudget::new(0.0, 0, Duration::from_secs(1))),
        RetryLayer::builder().budget(RetryBudget::new(1000.0, 0, Duration::from_secs(60))),
        RetryLayer::builder().backoff(constant(MS).jitter(Jitter::Percent(100))),
        RetryLayer::builder().backoff(Backoff::exponential(MS).multiplier(1.0)),
    ] {
        builder.build().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn huge_attempt_numbers_and_delays_do_not_overflow() {
    let backoff = Backoff::exponential(Duration::MAX)
        .multiplier(1e300)
        .max_delay(ms(5));
    assert_eq!(delays_of(backoff, 100, 0).await, [ms(5); 99]);
    let backoff = Backoff::exponential(Duration::MAX)
        .jitter(Jitter::Percent(100))
        .max_delay(ms(5));
    assert!(delays_of(backoff, 10, 0).await.iter().all(|d| *d <= ms(5)));
}

// ---- futures are Send + 'static ---------------------------------------------------------------

fn assert_send_static<T: Send + 'static>(_: &T) {}

#[tokio::test(start_paused = true)]
async fn response_futures_are_send_and_static() {
    let (service, _) = flaky(0);
    let mut service = RetryLayer::builder().build().unwrap().layer(service);
    service.ready().await.unwrap();
    let future = service.call("x");
    assert_send_static(&future);
    future.await.unwrap();
}

// ---- metrics --------------------------------------------------------------------------------

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn attempts_and_budget_exhaustion_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder()
            .name("users")
            .max_attempts(3)
            .backoff(constant(MS))
            .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
            .build()
            .unwrap()
    });
    // One retry from the budget, then the budget is exhausted.
    let (service, _) = flaky(u32::MAX);
    layer.layer(service).oneshot("x").await.unwrap_err();
    // A healthy call; a call that fails once and finds no budget.
    let (service, _) = flaky(0);
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
    assert_eq!(
        count("steadfast_retry_attempts_total{name=users,outcome=retried}"),
        1
    );
    assert_eq!(
        count("steadfast_retry_attempts_total{name=users,outcome=budget_exhausted}"),
        1
    );
    assert_eq!(
        count("steadfast_retry_attempts_total{name=users,outcome=accepted}"),
        1
    );
    assert_eq!(
        count("steadfast_retry_attempts_total{name=users,outcome=exhausted}"),
        0
    );
    assert_eq!(
        count("steadfast_retry_budget_exhausted_total{name=users}"),
        1
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn exhausting_max_attempts_is_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder()
            .max_attempts(2)
            .backoff(constant(MS))
            .build()
            .unwrap()
    });
    let (service, _) = flaky(u32::MAX);
    layer.layer(service).oneshot("x").await.unwrap_err();
    let exhausted = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let outcome = key.labels().find(|label| label.key() == "outcome")?;
            (key.name() == "steadfast_retry_attempts_total" && outcome.value() == "exhausted")
                .then_some(value)
        });
    assert_eq!(exhausted, Some(DebugValue::Counter(1)));
}

// ---- HTTP and gRPC ----------------------------------------------------------------------------

#[cfg(feature = "http")]
mod http;
