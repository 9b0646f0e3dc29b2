//! Integration tests of `steadfast::limit`, on paused time, driven poll by poll.

#![cfg(all(feature = "limit", feature = "timeout", feature = "bulkhead"))]

#[path = "support/events.rs"]
mod events;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::bulkhead::{BulkheadFull, BulkheadLayer};
use steadfast::classify::Outcome;
use steadfast::limit::{
    AdaptiveLimit, AdaptiveLimitLayer, Aimd, DEFAULT_INITIAL_LIMIT, DEFAULT_MAX_LIMIT,
    DEFAULT_MIN_LIMIT, Gradient2, LIMIT_LIMIT, LimitExceeded, Vegas,
};
use steadfast::timeout::{Elapsed, TimeoutLayer};
use steadfast::{BoxError, is_rejection};
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock::{self, Mock, Spawn};

type Mocked = Spawn<AdaptiveLimit<Mock<&'static str, &'static str>>>;
type Handle = mock::Handle<&'static str, &'static str>;

const MS: Duration = Duration::from_millis(1);

/// Polls a future once with a no-op waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// An AIMD limit (the simplest to predict) in `[min, max]` starting at `initial`.
fn aimd(initial: usize, min: usize, max: usize) -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::builder()
        .initial_limit(initial)
        .min_limit(min)
        .max_limit(max)
        .algorithm(Aimd::new().timeout(Duration::from_secs(1)))
        .window(Duration::ZERO)
        .window_samples(1)
        .build()
        .expect("valid configuration")
}

fn mocked(layer: &AdaptiveLimitLayer) -> (Mocked, Handle) {
    let (service, handle) = mock::pair();
    (Spawn::new(layer.layer(service)), handle)
}

/// Calls through a ready service and returns the response future, not yet polled.
fn call(service: &mut Mocked, request: &'static str) -> <Mocked as ServiceCall>::Future {
    assert!(service.poll_ready().is_ready(), "poll_ready never waits");
    service.call(request)
}

trait ServiceCall {
    type Future;
}
impl ServiceCall for Mocked {
    type Future = steadfast::limit::ResponseFuture<
        tower_test::mock::future::ResponseFuture<&'static str>,
        steadfast::classify::ErrorsAsFailures,
    >;
}

fn rejected<F: Future<Output = Result<&'static str, BoxError>> + Unpin>(future: &mut F) -> usize {
    match poll_once(future) {
        Poll::Ready(Err(error)) => {
            let exceeded = error
                .downcast_ref::<LimitExceeded>()
                .unwrap_or_else(|| panic!("not a LimitExceeded: {error}"));
            assert_eq!(
                error.to_string(),
                format!(
                    "concurrency limit exceeded: {} calls in flight",
                    exceeded.limit()
                )
            );
            exceeded.limit()
        }
        other => panic!("not rejected at once: {other:?}"),
    }
}

#[test]
fn defaults_are_netflixs() {
    let layer = AdaptiveLimitLayer::builder().build().unwrap();
    assert_eq!(layer.limit(), DEFAULT_INITIAL_LIMIT);
    assert_eq!(layer.limit(), 20);
    assert_eq!((layer.min_limit(), layer.max_limit()), (20, 200));
    assert_eq!((DEFAULT_MIN_LIMIT, DEFAULT_MAX_LIMIT), (20, 200));
    assert_eq!(layer.in_flight(), 0);
}

#[test]
fn config_errors_name_the_setter() {
    let field = |builder: steadfast::limit::Builder| builder.build().unwrap_err().field();
    let b = AdaptiveLimitLayer::builder;
    assert_eq!(field(b().initial_limit(0)), "initial_limit");
    assert_eq!(field(b().min_limit(0)), "min_limit");
    assert_eq!(field(b().max_limit(0)), "max_limit");
    assert_eq!(field(b().min_limit(30).max_limit(10)), "min_limit");
    assert_eq!(
        field(b().initial_limit(300).max_limit(250)),
        "initial_limit"
    );
    assert_eq!(field(b().initial_limit(5).min_limit(6)), "initial_limit");
    assert_eq!(field(b().max_limit(LIMIT_LIMIT + 1)), "max_limit");
    assert!(b().max_limit(LIMIT_LIMIT).build().is_ok());
    assert_eq!(field(b().name("")), "name");
    assert_eq!(field(b().window_samples(0)), "window_samples");
    assert_eq!(
        field(b().algorithm(Gradient2::new().smoothing(2.0))),
        "smoothing"
    );
    assert_eq!(
        field(b().algorithm(Aimd::new().backoff_ratio(1.0))),
        "backoff_ratio"
    );
    let error = b().min_limit(30).max_limit(10).build().unwrap_err();
    assert!(
        error.to_string().contains("at most `max_limit` (10)"),
        "{error}"
    );
    let error = b().initial_limit(0).build().unwrap_err();
    assert!(error.to_string().contains("[1, 16777215]"), "{error}");
}

#[test]
fn bounds_follow_the_initial_limit_unless_set_and_may_be_fixed() {
    let low = AdaptiveLimitLayer::builder()
        .initial_limit(5)
        .build()
        .unwrap();
    assert_eq!((low.min_limit(), low.limit(), low.max_limit()), (5, 5, 200));
    let high = AdaptiveLimitLayer::builder().initial_limit(300).build();
    let high = high.unwrap();
    assert_eq!(
        (high.min_limit(), high.limit(), high.max_limit()),
        (20, 300, 300)
    );
    let fixed = AdaptiveLimitLayer::builder()
        .initial_limit(7)
        .min_limit(7)
        .max_limit(7)
        .build()
        .unwrap();
    assert_eq!(fixed.limit(), 7);
}

#[tokio::test(start_paused = true)]
async fn calls_over_the_limit_fail_at_once_and_a_finished_call_frees_its_slot() {
    let layer = aimd(2, 2, 2);
    let (mut service, mut handle) = mocked(&layer);
    let mut first = call(&mut service, "a");
    let mut second = call(&mut service, "b");
    assert_eq!(layer.in_flight(), 2);
    assert_eq!(rejected(&mut call(&mut service, "c")), 2);
    assert_eq!(layer.in_flight(), 2, "a rejection takes no slot");

    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request, "a");
    respond.send_response("A");
    assert_eq!(poll_once(&mut first).map(|r| r.unwrap()), Poll::Ready("A"));
    assert_eq!(layer.in_flight(), 1);

    let mut third = call(&mut service, "d");
    assert_eq!(layer.in_flight(), 2);
    assert!(poll_once(&mut second).is_pending());
    assert!(poll_once(&mut third).is_pending());
    drop((second, third));
    assert_eq!(layer.in_flight(), 0, "dropped calls give their slots back");
    assert_eq!(layer.limit(), 2, "a fixed limit stays fixed");
}

#[tokio::test(start_paused = true)]
async fn cancelled_and_rejected_calls_leave_the_limit_unchanged() {
    for layer in [
        aimd(1, 1, 10),
        AdaptiveLimitLayer::builder()
            .initial_limit(1)
            .min_limit(1)
            .window(Duration::ZERO)
            .window_samples(1)
            .build()
            .unwrap(),
    ] {
        let (mut service, mut handle) = mocked(&layer);
        let in_flight = call(&mut service, "a");
        for _ in 0..5 {
            assert_eq!(rejected(&mut call(&mut service, "b")), 1);
        }
        advance(100 * MS).await;
        drop(in_flight);
        assert_eq!((layer.limit(), layer.in_flight()), (1, 0));
        assert!(handle.next_request().await.is_some());

        // Calls that complete do move it (AIMD: +1 per success; Gradient2: +0.8), so the test
        // above could fail.
        for _ in 0..2 {
            let mut done = call(&mut service, "c");
            let (_, respond) = handle.next_request().await.unwrap();
            advance(MS).await;
            respond.send_response("C");
            assert!(poll_once(&mut done).is_ready());
        }
        assert!(layer.limit() >= 2, "limit {}", layer.limit());
    }
}

#[tokio::test(start_paused = true)]
async fn aimd_backs_off_on_failures_and_timeouts_whatever_the_classifier_says() {
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(10)
        .min_limit(1)
        .max_limit(100)
        .algorithm(Aimd::new().timeout(Duration::from_secs(1)))
        .window(Duration::ZERO)
        .window_samples(1)
        .classify(|_: &Result<&str, BoxError>| Outcome::Success)
        .build()
        .unwrap();
    // A timeout inside the limit: its `Elapsed` is a drop even to a classifier that sees none.
    let slow = service_fn(|_: ()| async {
        sleep(Duration::from_secs(60)).await;
        Ok::<_, BoxError>("late")
    });
    let mut service = layer.layer(TimeoutLayer::new(100 * MS).layer(slow));
    let error = service.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(error.is::<Elapsed>());
    assert_eq!(layer.limit(), 9, "⌊10 × 0.9⌋");

    let layer = aimd(10, 1, 100);
    let failing = service_fn(|_: ()| async { Err::<(), _>(BoxError::from("boom")) });
    let mut service = layer.layer(failing);
    service.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(layer.limit(), 9);
    service.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(layer.limit(), 8);

    // Slower than AIMD's timeout is a drop too, even if it succeeds.
    let slow_ok = service_fn(|_: ()| async {
        sleep(Duration::from_secs(2)).await;
        Ok::<_, BoxError>(())
    });
    let mut service = layer.layer(slow_ok);
    service.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(layer.limit(), 7);
}

#[tokio::test(start_paused = true)]
async fn aimd_counts_a_call_cancelled_after_its_timeout_as_a_drop() {
    let layer = aimd(10, 1, 100);
    let (mut service, _handle) = mocked(&layer);
    let early = call(&mut service, "early");
    advance(Duration::from_millis(999)).await;
    drop(early);
    assert_eq!(layer.limit(), 10, "cancelled within the timeout: unchanged");
    let late = call(&mut service, "late");
    advance(Duration::from_millis(1001)).await;
    drop(late);
    assert_eq!(layer.limit(), 9, "cut by a timeout further out: a drop");
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn local_rejections_and_ignored_results_are_no_sample() {
    // A full bulkhead further in: a local rejection, which would be a drop if counted.
    let layer = aimd(10, 1, 100);
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .build()
        .unwrap();
    let (inner, _handle) = mock::pair::<&'static str, &'static str>();
    let mut service = layer.layer(bulkhead.layer(inner));
    let _held = service.ready().await.unwrap().call("held");
    for _ in 0..3 {
        let error = service.ready().await.unwrap().call("x").await.unwrap_err();
        assert!(error.is::<BulkheadFull>() && is_rejection(&*error));
    }
    assert_eq!(layer.limit(), 10);

    // A deadline already passed: `Elapsed` before the call is a rejection, not a timeout.
    let passed = TimeoutLayer::new(Duration::ZERO)
        .layer(service_fn(|_: ()| async { Ok::<_, BoxError>(()) }));
    let mut service = layer.layer(passed);
    let error = service.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(is_rejection(&*error), "{error}");
    assert_eq!(layer.limit(), 10);

    // A classifier that ignores failures: no sample.
    let ignoring = AdaptiveLimitLayer::builder()
        .initial_limit(10)
        .min_limit(1)
        .algorithm(Aimd::new())
        .window(Duration::ZERO)
        .window_samples(1)
        .classify(|result: &Result<(), BoxError>| match result {
            Ok(()) => Outcome::Success,
            Err(_) => Outcome::Ignored,
        })
        .build()
        .unwrap();
    let mut service = ignoring.layer(service_fn(|_: ()| async {
        Err::<(), _>(BoxError::from("404"))
    }));
    service.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(ignoring.limit(), 10);
}

#[tokio::test(start_paused = true)]
async fn errors_pass_through_unwrapped() {
    #[derive(Debug)]
    struct Mine;
    impl std::fmt::Display for Mine {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("mine")
        }
    }
    impl std::error::Error for Mine {}
    let layer = AdaptiveLimitLayer::builder().build().unwrap();
    let mut service = layer.layer(service_fn(|_: ()| async { Err::<(), _>(Mine) }));
    let error = service.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(error.is::<Mine>());
}

/// A backend that serves `capacity` calls at once in `service_time` each and queues the rest.
fn queueing_backend(
    capacity: usize,
    service_time: Duration,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone {
    let workers = Arc::new(tokio::sync::Semaphore::new(capacity));
    service_fn(move |_: ()| {
        let workers = workers.clone();
        async move {
            let _worker = workers.acquire().await?;
            sleep(service_time).await;
            Ok::<_, BoxError>(())
        }
    })
}

/// Keeps `clients` calls going through `service` for `duration`; returns (accepted, rejected).
async fn drive<S>(service: S, clients: usize, duration: Duration) -> (usize, usize)
where
    S: Service<(), Response = (), Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let accepted = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let end = tokio::time::Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (service, accepted, rejected) =
                (service.clone(), accepted.clone(), rejected.clone());
            tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    match service.clone().oneshot(()).await {
                        Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                        Err(error) if error.is::<LimitExceeded>() => {
                            sleep(MS).await;
                            rejected.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(error) => panic!("{error}"),
                    };
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (
        accepted.load(Ordering::Relaxed),
        rejected.load(Ordering::Relaxed),
    )
}

#[tokio::test(start_paused = true)]
async fn gradient2_lowers_the_limit_under_queueing_and_raises_it_again() {
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(40)
        .min_limit(5)
        .max_limit(100)
        .build()
        .unwrap();
    let service = layer.layer(queueing_backend(10, 10 * MS));
    // 10 clients keep the backend busy without a queue: the latency Gradient2 learns as normal.
    let (_, rejected) = drive(service.clone(), 10, Duration::from_secs(2)).await;
    assert_eq!(
        (rejected, layer.limit()),
        (0, 40),
        "app-limited: no reason to move"
    );
    let (accepted, rejected) = drive(service.clone(), 100, Duration::from_secs(5)).await;
    let loaded = layer.limit();
    assert!(loaded < 30, "limit {loaded} under a queue");
    assert!(
        rejected > accepted && accepted > 4000,
        "{accepted} accepted, {rejected} shed"
    );
    assert_eq!(layer.in_flight(), 0);

    // Down to 15 clients: a short queue, no longer growing; the limit grows again (up to where
    // 15 in flight are fewer than half of it: app-limited).
    drive(service, 15, Duration::from_secs(5)).await;
    assert!(
        layer.limit() > loaded,
        "limit {} after the load went, {loaded} under it",
        layer.limit()
    );
}

#[tokio::test(start_paused = true)]
async fn vegas_lowers_the_limit_under_queueing() {
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(40)
        .min_limit(1)
        .max_limit(100)
        .algorithm(Vegas::new())
        .seed(7)
        .build()
        .unwrap();
    let service = layer.layer(queueing_backend(10, 10 * MS));
    drive(service.clone(), 10, Duration::from_secs(2)).await;
    drive(service, 100, Duration::from_secs(5)).await;
    assert!(layer.limit() < 30, "limit {} under a queue", layer.limit());
}

/// `tasks` tasks each making `calls` calls through clones of `service`, ignoring the answers.
async fn hammer<S>(service: S, tasks: usize, calls: usize)
where
    S: Service<(), Response = (), Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let tasks: Vec<_> = (0..tasks)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                for _ in 0..calls {
                    let _ = service.clone().oneshot(()).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_never_exceeds_a_fixed_limit_across_threads() {
    let layer = aimd(3, 3, 3);
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let backend = {
        let (now, peak) = (now.clone(), peak.clone());
        service_fn(move |_: ()| {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
    };
    hammer(layer.layer(backend), 8, 500).await;
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_one_limit() {
    let layer = aimd(1, 1, 1);
    let (mut first, _h1) = mocked(&layer);
    let (mut second, _h2) = mocked(&layer.clone());
    let _held = call(&mut first, "a");
    assert_eq!(rejected(&mut call(&mut second, "b")), 1);
    assert_eq!(first.get_ref().in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn events_on_limit_changes_and_rejections() {
    let events = events::capture();
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(1)
        .min_limit(1)
        .max_limit(5)
        .algorithm(Aimd::new())
        .window(Duration::ZERO)
        .window_samples(1)
        .name("orders")
        .build()
        .unwrap();
    let (mut service, mut handle) = mocked(&layer);
    let mut held = call(&mut service, "a");
    rejected(&mut call(&mut service, "b"));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response("A");
    assert!(poll_once(&mut held).is_ready());

    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("DEBUG") && lines[0].contains("concurrency limit exceeded"));
    assert!(lines[0].contains("limit.name=orders") && lines[0].contains("limit.in_flight=1"));
    assert!(lines[1].contains("DEBUG") && lines[1].contains("concurrency limit changed"));
    assert!(lines[1].contains("limit.previous=1") && lines[1].contains("limit.limit=2"));
}

#[cfg(feature = "metrics")]
mod metrics {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[tokio::test(start_paused = true)]
    async fn gauges_and_the_rejection_counter() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _recorder = ::metrics::set_default_local_recorder(&recorder);
        let layer = AdaptiveLimitLayer::builder()
            .initial_limit(1)
            .min_limit(1)
            .max_limit(5)
            .algorithm(Aimd::new())
            .window(Duration::ZERO)
            .window_samples(1)
            .name("orders")
            .build()
            .unwrap();
        let (mut service, mut handle) = mocked(&layer);
        let mut held = call(&mut service, "a");
        rejected(&mut call(&mut service, "b"));
        rejected(&mut call(&mut service, "c"));
        // A snapshot drains the recorder's values: read every series from one. The in-flight
        // gauge is not moved per call: it still shows what `build` set.
        let during = series(&snapshotter);
        assert_eq!(
            during["steadfast_limit_in_flight"],
            DebugValue::Gauge(0.0.into())
        );
        assert_eq!(
            during["steadfast_limit_limit"],
            DebugValue::Gauge(1.0.into())
        );
        assert_eq!(
            during["steadfast_limit_rejected_total"],
            DebugValue::Counter(2)
        );
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response("A");
        assert!(poll_once(&mut held).is_ready());
        let after = series(&snapshotter);
        assert_eq!(
            after["steadfast_limit_limit"],
            DebugValue::Gauge(2.0.into())
        );
        // Set when a window closes (here, every call) to the calls still in flight.
        let mut d = call(&mut service, "d");
        let mut e = call(&mut service, "e");
        let (_, respond_d) = handle.next_request().await.unwrap();
        let (_, respond_e) = handle.next_request().await.unwrap();
        respond_d.send_response("D");
        assert!(poll_once(&mut d).is_ready());
        assert_eq!(
            series(&snapshotter)["steadfast_limit_in_flight"],
            DebugValue::Gauge(1.0.into())
        );
        // And to zero when the last call in flight ends.
        respond_e.send_response("E");
        assert!(poll_once(&mut e).is_ready());
        assert_eq!(
            series(&snapshotter)["steadfast_limit_in_flight"],
            DebugValue::Gauge(0.0.into())
        );
    }

    /// Every series labelled `name="orders"`, by metric name.
    fn series(
        snapshotter: &metrics_util::debugging::Snapshotter,
    ) -> std::collections::HashMap<String, DebugValue> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, _, _, _)| {
                let labels: Vec<(&str, &str)> =
                    key.key().labels().map(|l| (l.key(), l.value())).collect();
                labels == [("name", "orders")]
            })
            .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
            .collect()
    }
}
