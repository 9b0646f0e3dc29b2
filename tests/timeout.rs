//! `steadfast::timeout`: deadlines, boundaries, cancellation, nesting, configuration, metrics.
#![cfg(feature = "timeout")]

#[path = "support/events.rs"]
mod events;

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::deadline::Deadline;
use steadfast::timeout::{Elapsed, ElapsedKind, Timeout, TimeoutLayer};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn elapsed_kind<T: std::fmt::Debug>(result: Poll<Result<T, BoxError>>) -> ElapsedKind {
    match result {
        Poll::Ready(Err(err)) => match err.downcast_ref::<Elapsed>() {
            Some(elapsed) => elapsed.kind(),
            None => panic!("expected Elapsed, got {err}"),
        },
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A service answering `Ok(deadline seen by the inner call and future)` after `delay`, counting
/// its calls.
#[allow(clippy::type_complexity)]
fn sleeper(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Duration,
    Response = (Option<Deadline>, Option<Deadline>),
    Error = Infallible,
    Future = impl Future<Output = Result<(Option<Deadline>, Option<Deadline>), Infallible>>
             + Send
             + 'static,
> + Clone {
    service_fn(move |delay: Duration| {
        calls.fetch_add(1, Ordering::SeqCst);
        let in_call = Deadline::current();
        async move {
            let in_future = Deadline::current();
            tokio::time::sleep(delay).await;
            Ok((in_call, in_future))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn answers_within_timeout_and_exposes_the_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls.clone()));
    let start = Instant::now();
    let (in_call, in_future) = svc.oneshot(10 * MS).await.unwrap();
    let expected = Some(Deadline::at(start + 100 * MS));
    assert_eq!(
        in_call, expected,
        "inner `call` runs in the deadline's scope"
    );
    assert_eq!(
        in_future, expected,
        "inner future runs in the deadline's scope"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(Deadline::current(), None, "the scope ends with the call");
}

#[tokio::test(start_paused = true)]
async fn boundary_one_tick_before_and_exactly_at() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls));
    svc.ready().await.unwrap();
    let mut fut = pin!(svc.call(Duration::from_secs(10)));
    assert!(poll(fut.as_mut()).is_pending());
    advance(99 * MS).await;
    assert!(
        poll(fut.as_mut()).is_pending(),
        "one tick before: still running"
    );
    advance(MS).await;
    assert_eq!(
        elapsed_kind(poll(fut.as_mut())),
        ElapsedKind::Timeout,
        "exactly at"
    );
}

#[tokio::test(start_paused = true)]
async fn boundary_one_tick_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls));
    svc.ready().await.unwrap();
    let mut fut = pin!(svc.call(Duration::from_secs(10)));
    assert!(poll(fut.as_mut()).is_pending());
    advance(101 * MS).await;
    assert_eq!(elapsed_kind(poll(fut.as_mut())), ElapsedKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn an_answer_ready_at_the_deadline_wins() {
    // The inner future is polled first: an answer that is there is not thrown away.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls));
    svc.ready().await.unwrap();
    let mut fut = pin!(svc.call(100 * MS));
    assert!(poll(fut.as_mut()).is_pending());
    advance(100 * MS).await;
    assert!(matches!(poll(fut.as_mut()), Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn awaiting_a_slow_call_fails_with_elapsed_at_the_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls));
    let start = Instant::now();
    let err = svc.oneshot(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(start.elapsed(), 100 * MS);
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.kind(), ElapsedKind::Timeout);
    assert!(!elapsed.is_inherited());
    assert_eq!(elapsed.to_string(), "request timed out");
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn hanging(
    dropped: Arc<AtomicBool>,
) -> impl Service<(), Response = (), Error = Infallible, Future: Send + 'static> {
    service_fn(move |()| {
        let flag = DropFlag(dropped.clone());
        async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_inner_future_is_dropped_at_expiry() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut svc = TimeoutLayer::new(100 * MS).layer(hanging(dropped.clone()));
    svc.ready().await.unwrap();
    let mut fut = pin!(svc.call(()));
    assert!(poll(fut.as_mut()).is_pending());
    advance(99 * MS).await;
    assert!(poll(fut.as_mut()).is_pending());
    assert!(!dropped.load(Ordering::SeqCst));
    advance(MS).await;
    assert_eq!(elapsed_kind(poll(fut.as_mut())), ElapsedKind::Timeout);
    // The response future is still alive, the inner one is already gone.
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_drops_the_inner_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut svc = TimeoutLayer::new(100 * MS).layer(hanging(dropped.clone()));
    svc.ready().await.unwrap();
    let mut fut = Box::pin(svc.call(()));
    assert!(poll(fut.as_mut()).is_pending());
    advance(50 * MS).await;
    assert!(poll(fut.as_mut()).is_pending());
    drop(fut);
    assert!(dropped.load(Ordering::SeqCst));
    // The timer went with it: time can pass without anything firing.
    advance(Duration::from_secs(1)).await;
    assert_eq!(Deadline::current(), None);
}

#[tokio::test(start_paused = true)]
async fn dropping_an_unpolled_response_future_drops_the_inner_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut svc = TimeoutLayer::new(100 * MS).layer(hanging(dropped.clone()));
    svc.ready().await.unwrap();
    let fut = svc.call(());
    assert!(!dropped.load(Ordering::SeqCst));
    drop(fut);
    assert!(dropped.load(Ordering::SeqCst));
}

#[derive(Debug, PartialEq)]
struct MyError(u32);
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "my error {}", self.0)
    }
}
impl std::error::Error for MyError {}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unwrapped() {
    let svc =
        TimeoutLayer::new(100 * MS).layer(service_fn(|()| async { Err::<(), _>(MyError(7)) }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(err.downcast_ref::<MyError>(), Some(&MyError(7)));
    assert!(!err.is::<Elapsed>());
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_that_passed_fails_at_once_without_calling() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls.clone()));
    svc.ready().await.unwrap();
    // Exactly at the inherited deadline: it has passed.
    let fut = Deadline::at(Instant::now()).sync_scope(|| svc.call(MS));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "inner service not called");
    let mut fut = pin!(fut);
    assert_eq!(
        elapsed_kind(poll(fut.as_mut())),
        ElapsedKind::InheritedDeadline
    );
    // One tick after: passed too.
    svc.ready().await.unwrap();
    let past = Deadline::at(Instant::now());
    advance(MS).await;
    let mut fut = pin!(past.sync_scope(|| svc.call(MS)));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let err = match poll(fut.as_mut()) {
        Poll::Ready(Err(err)) => err,
        other => panic!("{other:?}"),
    };
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert!(elapsed.is_inherited());
    assert_eq!(elapsed.to_string(), "request deadline has passed");
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_one_tick_ahead_is_honoured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(100 * MS).layer(sleeper(calls.clone()));
    svc.ready().await.unwrap();
    let inherited = Deadline::at(Instant::now() + MS);
    let mut fut = pin!(inherited.sync_scope(|| svc.call(Duration::from_secs(1))));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "called: one tick left");
    assert!(poll(fut.as_mut()).is_pending());
    advance(MS).await;
    assert_eq!(
        elapsed_kind(poll(fut.as_mut())),
        ElapsedKind::InheritedDeadline
    );
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_from_an_async_scope() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(sleeper(calls));
    let start = Instant::now();
    let inherited = Deadline::at(start + 30 * MS);
    let (in_call, in_future) = inherited.scope(svc.clone().oneshot(10 * MS)).await.unwrap();
    assert_eq!(in_call, Some(inherited));
    assert_eq!(in_future, Some(inherited));
    let err = inherited.scope(svc.oneshot(Duration::from_secs(5))).await;
    assert!(
        err.unwrap_err()
            .downcast_ref::<Elapsed>()
            .unwrap()
            .is_inherited()
    );
    assert_eq!(start.elapsed(), 30 * MS, "failed at the inherited deadline");
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_later_than_the_timeout_does_not_widen_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(20 * MS).layer(sleeper(calls));
    let start = Instant::now();
    let inherited = Deadline::at(start + Duration::from_secs(1));
    let (in_call, _) = inherited.scope(svc.clone().oneshot(MS)).await.unwrap();
    assert_eq!(in_call, Some(Deadline::at(start + 20 * MS)));
    let err = inherited.scope(svc.oneshot(Duration::from_secs(5))).await;
    let err = err.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Elapsed>().unwrap().kind(),
        ElapsedKind::Timeout
    );
}

#[tokio::test(start_paused = true)]
async fn equal_own_and_inherited_deadlines_report_the_own_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(20 * MS).layer(sleeper(calls));
    let inherited = Deadline::after(20 * MS);
    let err = inherited.scope(svc.oneshot(Duration::from_secs(5))).await;
    let err = err.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Elapsed>().unwrap().kind(),
        ElapsedKind::Timeout
    );
}

#[tokio::test(start_paused = true)]
async fn nested_inner_narrower() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(100 * MS))
        .layer(TimeoutLayer::new(50 * MS))
        .service(sleeper(calls));
    let start = Instant::now();
    let (in_call, in_future) = svc.clone().oneshot(MS).await.unwrap();
    assert_eq!(in_call, Some(Deadline::at(start + 50 * MS)));
    assert_eq!(in_future, Some(Deadline::at(start + 50 * MS)));

    let start = Instant::now();
    let err = svc.oneshot(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(start.elapsed(), 50 * MS);
    // The inner layer's own timeout fired.
    assert_eq!(
        err.downcast_ref::<Elapsed>().unwrap().kind(),
        ElapsedKind::Timeout
    );
}

#[tokio::test(start_paused = true)]
async fn nested_outer_narrower() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(50 * MS))
        .layer(TimeoutLayer::new(100 * MS))
        .service(sleeper(calls));
    let start = Instant::now();
    let (in_call, in_future) = svc.clone().oneshot(MS).await.unwrap();
    assert_eq!(
        in_call,
        Some(Deadline::at(start + 50 * MS)),
        "narrowed by the outer"
    );
    assert_eq!(in_future, Some(Deadline::at(start + 50 * MS)));

    let start = Instant::now();
    let err = svc.oneshot(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(start.elapsed(), 50 * MS);
    // The inner layer fires first (it is polled first) and knows the deadline was inherited.
    assert_eq!(
        err.downcast_ref::<Elapsed>().unwrap().kind(),
        ElapsedKind::InheritedDeadline
    );
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_from_new_fails_at_once_without_calling() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(Duration::ZERO).layer(sleeper(calls.clone()));
    svc.ready().await.unwrap();
    let mut fut = pin!(svc.call(Duration::ZERO));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(elapsed_kind(poll(fut.as_mut())), ElapsedKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_huge_timeout_saturates_instead_of_panicking() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = Timeout::new(sleeper(calls), Duration::MAX);
    let (in_call, _) = svc.oneshot(MS).await.unwrap();
    assert!(in_call.unwrap().remaining() > Duration::from_secs(365 * 24 * 3600));
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let (mut svc, mut handle) =
        tower_test::mock::spawn_layer::<(), (), _>(TimeoutLayer::new(100 * MS));
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    // Waiting for readiness is not bounded by the timeout.
    advance(Duration::from_secs(1)).await;
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let mut fut = pin!(svc.call(()));
    assert!(poll(fut.as_mut()).is_pending());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(());
    assert!(matches!(poll(fut.as_mut()), Poll::Ready(Ok(()))));
}

#[tokio::test(start_paused = true)]
async fn the_timer_is_armed_only_when_the_inner_future_is_pending() {
    let (mut svc, mut handle) =
        tower_test::mock::spawn_layer::<(), (), _>(TimeoutLayer::new(100 * MS));
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let mut fut = pin!(svc.call(()));
    assert!(format!("{fut:?}").contains("timer_armed: false"));
    assert!(poll(fut.as_mut()).is_pending());
    assert!(format!("{fut:?}").contains("timer_armed: true"));
}

#[test]
fn builder_rejects_a_zero_timeout() {
    let err = TimeoutLayer::builder()
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "timeout");
    assert!(err.to_string().contains("more than zero"), "{err}");
}

#[test]
fn builder_defaults_and_setters() {
    let layer = TimeoutLayer::builder().build().unwrap();
    assert_eq!(layer.timeout(), steadfast::timeout::DEFAULT_TIMEOUT);
    assert_eq!(steadfast::timeout::DEFAULT_TIMEOUT, Duration::from_secs(30));
    let layer = TimeoutLayer::builder()
        .timeout(Duration::from_nanos(1))
        .name("db")
        .build()
        .unwrap();
    assert_eq!(layer.timeout(), Duration::from_nanos(1));
    assert_eq!(layer.name(), "db");
    assert_eq!(TimeoutLayer::new(MS).timeout(), MS);
    assert_eq!(
        TimeoutLayer::new(MS).name(),
        steadfast::timeout::DEFAULT_NAME
    );
    assert_eq!(steadfast::timeout::DEFAULT_NAME, "default");
}

#[test]
fn elapsed_kinds_and_display() {
    assert_eq!(ElapsedKind::Timeout.as_str(), "timeout");
    assert_eq!(ElapsedKind::InheritedDeadline.as_str(), "deadline");
}

#[test]
fn the_response_future_is_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut svc = TimeoutLayer::new(MS).layer(sleeper(Arc::new(AtomicUsize::new(0))));
    let fut = svc.call(MS);
    assert_send_static(&fut);
    fn assert_clone<T: Clone>(_: &T) {}
    assert_clone(&TimeoutLayer::new(MS));
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn metrics_count_each_kind_with_the_name_label() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        TimeoutLayer::builder()
            .timeout(10 * MS)
            .name("metrics-test")
            .build()
            .unwrap()
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(sleeper(calls));
    // Fast call: nothing counted.
    svc.clone().oneshot(MS).await.unwrap();
    // Own timeout, twice.
    for _ in 0..2 {
        svc.clone()
            .oneshot(Duration::from_secs(1))
            .await
            .unwrap_err();
    }
    // Inherited deadline already passed.
    Deadline::at(Instant::now())
        .scope(svc.clone().oneshot(MS))
        .await
        .unwrap_err();

    let mut counts = std::collections::BTreeMap::new();
    for (key, unit, help, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        assert_eq!(key.name(), "steadfast_timeout_elapsed_total");
        // Described when the layer was built: a scrape carries `# HELP` text.
        assert_eq!(unit, Some(metrics::Unit::Count));
        assert!(help.is_some_and(|h| h.contains("Elapsed")));
        let labels: Vec<_> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        assert_eq!(labels[0], ("name".to_owned(), "metrics-test".to_owned()));
        let DebugValue::Counter(n) = value else {
            panic!("not a counter")
        };
        counts.insert(labels[1].1.clone(), n);
    }
    assert_eq!(counts.get("timeout"), Some(&2));
    assert_eq!(counts.get("deadline"), Some(&1));
}

/// The handles belong to the layer, not to its name: a second layer with the same name, built
/// under another recorder, reports there (a process-wide registry kept the first recorder's).
#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn each_layer_registers_with_the_recorder_of_its_build() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    fn timeouts(snapshotter: &Snapshotter) -> Option<u64> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(key, _, _, value)| {
                let timeout = key.key().labels().any(|l| l.value() == "timeout");
                match value {
                    DebugValue::Counter(n) if timeout => Some(n),
                    _ => None,
                }
            })
    }
    let build = |recorder: &DebuggingRecorder| {
        metrics::with_local_recorder(recorder, || {
            TimeoutLayer::builder()
                .timeout(10 * MS)
                .name(format!("shared-{}", 1))
                .build()
                .unwrap()
        })
    };
    let (first, second) = (DebuggingRecorder::new(), DebuggingRecorder::new());
    let (first_layer, second_layer) = (build(&first), build(&second));
    for _ in 0..2 {
        second_layer
            .layer(sleeper(Arc::new(AtomicUsize::new(0))))
            .oneshot(Duration::from_secs(1))
            .await
            .unwrap_err();
    }
    first_layer
        .layer(sleeper(Arc::new(AtomicUsize::new(0))))
        .oneshot(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(timeouts(&second.snapshotter()), Some(2));
    assert_eq!(timeouts(&first.snapshotter()), Some(1));
}

#[test]
fn a_timeout_emits_one_debug_event_with_its_fields() {
    let events = events::capture();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let layer = TimeoutLayer::builder()
            .timeout(10 * MS)
            .name("events-test")
            .build()
            .unwrap();
        let svc = layer.layer(sleeper(Arc::new(AtomicUsize::new(0))));
        svc.clone().oneshot(MS).await.unwrap();
        svc.oneshot(Duration::from_secs(1)).await.unwrap_err();
    });
    let out = events.text();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("DEBUG"), "{out}");
    assert!(out.contains("call failed: deadline passed"), "{out}");
    assert!(out.contains("timeout.name=\"events-test\""), "{out}");
    assert!(out.contains("timeout.kind=\"timeout\""), "{out}");
    assert!(out.contains("timeout.before_call=false"), "{out}");
}

mod model {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Against a plain model: the effective deadline is the earlier of the own and the
        /// inherited one; an answer by then (inclusive) wins; otherwise `Elapsed` at exactly the
        /// effective deadline, of the kind of whichever deadline that was (own on a tie); a
        /// deadline already passed fails without calling.
        #[test]
        fn timeout_matches_the_model(
            timeout_ms in 0u32..200,
            inherited_ms in proptest::option::of(0u32..200),
            work_ms in 0u32..300,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let (result, waited, start) = rt.block_on(async {
                let svc = TimeoutLayer::new(timeout_ms * MS).layer(sleeper(calls.clone()));
                let start = Instant::now();
                let call = svc.oneshot(work_ms * MS);
                let result = match inherited_ms {
                    Some(ms) => Deadline::at(start + ms * MS).scope(call).await,
                    None => call.await,
                };
                (result, start.elapsed(), start)
            });

            let own_wins = inherited_ms.is_none_or(|inherited| timeout_ms <= inherited);
            let effective = inherited_ms.map_or(timeout_ms, |i| i.min(timeout_ms));
            let kind = if own_wins { ElapsedKind::Timeout } else { ElapsedKind::InheritedDeadline };
            if effective == 0 {
                prop_assert_eq!(calls.load(Ordering::SeqCst), 0);
                let err = result.unwrap_err();
                prop_assert_eq!(err.downcast_ref::<Elapsed>().map(Elapsed::kind), Some(kind));
                prop_assert_eq!(waited, Duration::ZERO);
            } else if work_ms <= effective {
                prop_assert_eq!(calls.load(Ordering::SeqCst), 1);
                let (in_call, in_future) = result.unwrap();
                let deadline = Some(Deadline::at(start + effective * MS));
                prop_assert_eq!(in_call, deadline);
                prop_assert_eq!(in_future, deadline);
                prop_assert_eq!(waited, work_ms * MS);
            } else {
                prop_assert_eq!(calls.load(Ordering::SeqCst), 1);
                let err = result.unwrap_err();
                prop_assert_eq!(err.downcast_ref::<Elapsed>().map(Elapsed::kind), Some(kind));
                prop_assert_eq!(waited, effective * MS);
            }
        }
    }
}
