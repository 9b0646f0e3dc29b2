//! Integration tests of `steadfast::fallback`, on paused time, driven poll by poll.

#![cfg(feature = "fallback")]

#[path = "support/events.rs"]
mod events;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use steadfast::BoxError;
use steadfast::fallback::{AllErrors, FallbackLayer, RejectionsAndTimeouts};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock::{self, Spawn};

type Handle = mock::Handle<&'static str, &'static str>;
type Mocked = mock::Mock<&'static str, &'static str>;

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

#[derive(Debug, PartialEq)]
struct Boom(&'static str);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

impl std::error::Error for Boom {}

/// A service that fails every call with `Boom`.
fn failing()
-> impl Service<&'static str, Response = &'static str, Error = BoxError, Future: Send> + Clone + Send
{
    service_fn(|_: &'static str| async { Err::<&'static str, BoxError>(Boom("primary").into()) })
}

/// A closure that records how often it ran and answers "fallback".
fn counting() -> (
    Arc<AtomicUsize>,
    impl Fn(BoxError) -> Result<&'static str, BoxError> + Clone + Send + Sync,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let f = {
        let count = count.clone();
        move |error: BoxError| {
            count.fetch_add(1, Ordering::SeqCst);
            assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom("primary")));
            Ok("fallback")
        }
    };
    (count, f)
}

fn ready_err<T: std::fmt::Debug>(poll: Poll<Result<T, BoxError>>) -> BoxError {
    match poll {
        Poll::Ready(Err(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Answering from a function

#[tokio::test(start_paused = true)]
async fn answers_every_error_by_default() {
    let (count, f) = counting();
    let mut service = FallbackLayer::new(f).layer(failing());
    let answer = service.ready().await.unwrap().call("x").await.unwrap();
    assert_eq!(answer, "fallback");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_success_passes_through_and_the_function_never_runs() {
    let (count, f) = counting();
    let mut service =
        FallbackLayer::new(f).layer(service_fn(
            |x: &'static str| async move { Ok::<_, BoxError>(x) },
        ));
    assert_eq!(
        service.ready().await.unwrap().call("ok").await.unwrap(),
        "ok"
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_functions_own_error_is_the_answer() {
    let mut service =
        FallbackLayer::new(|_: BoxError| Err::<&'static str, _>(Boom("fallback").into()))
            .layer(failing());
    let error = service.ready().await.unwrap().call("x").await.unwrap_err();
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom("fallback")));
}

#[tokio::test(start_paused = true)]
async fn a_declined_error_passes_through_unchanged() {
    let (count, f) = counting();
    let mut service = FallbackLayer::new(f)
        .when(|error: &BoxError| !error.is::<Boom>())
        .layer(failing());
    let error = service.ready().await.unwrap().call("x").await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<Boom>(),
        Some(&Boom("primary")),
        "not wrapped"
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_answer_waits_for_the_inner_future() {
    let (service, mut handle): (_, Handle) = mock::pair();
    let mut service = Spawn::new(FallbackLayer::new(|_: BoxError| Ok("fallback")).layer(service));
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request, "x");
    assert!(poll_once(&mut response).is_pending());
    send.send_error(Boom("primary"));
    assert!(matches!(
        poll_once(&mut response),
        Poll::Ready(Ok("fallback"))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_poll_ready_error_is_answered_without_calling_the_service() {
    let (service, mut handle): (_, Handle) = mock::pair();
    let (count, f) = counting();
    let mut service = Spawn::new(FallbackLayer::new(f).layer(service));
    handle.send_error(Boom("primary"));
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
    assert!(
        matches!(service.poll_ready(), Poll::Ready(Ok(()))),
        "stays ready"
    );
    let mut response = service.call("x");
    assert!(matches!(
        poll_once(&mut response),
        Poll::Ready(Ok("fallback"))
    ));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(
        handle.poll_request().is_pending(),
        "the inner service was not called"
    );

    // Healthy again: calls reach the service.
    assert!(service.poll_ready().is_ready());
    let _response = service.call("y");
    assert!(matches!(handle.poll_request(), Poll::Ready(Some(("y", _)))));
}

#[tokio::test(start_paused = true)]
async fn a_declined_poll_ready_error_is_returned() {
    let (service, mut handle): (_, Handle) = mock::pair();
    let mut service = Spawn::new(
        FallbackLayer::new(|_: BoxError| Ok("fallback"))
            .when(RejectionsAndTimeouts)
            .layer(service),
    );
    handle.send_error(Boom("not ready"));
    let error = ready_err(service.poll_ready());
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom("not ready")));
}

// ---------------------------------------------------------------------------------------------
// Predicates

#[cfg(feature = "bulkhead")]
#[tokio::test(start_paused = true)]
async fn rejections_and_timeouts_answers_a_full_bulkhead_but_not_a_service_error() {
    use steadfast::bulkhead::BulkheadLayer;

    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .build()
        .unwrap();
    let (service, mut handle): (_, Handle) = mock::pair();
    let layer = FallbackLayer::new(|error: BoxError| {
        assert!(steadfast::is_rejection(&*error));
        Ok("shed")
    })
    .when(RejectionsAndTimeouts);
    let mut first = Spawn::new(layer.clone().layer(bulkhead.layer(service.clone())));
    let mut second = Spawn::new(layer.layer(bulkhead.layer(service)));

    assert!(first.poll_ready().is_ready());
    let mut in_flight = first.call("first");
    assert!(second.poll_ready().is_ready());
    assert!(matches!(
        poll_once(&mut second.call("second")),
        Poll::Ready(Ok("shed"))
    ));

    assert!(poll_once(&mut in_flight).is_pending());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Boom("primary"));
    let error = ready_err(poll_once(&mut in_flight));
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom("primary")));
}

#[test]
fn ready_made_predicates() {
    use steadfast::fallback::Predicate;
    let boom: BoxError = Boom("x").into();
    assert!(AllErrors.should_fallback(&boom));
    assert!(!RejectionsAndTimeouts.should_fallback(&boom));
}

// ---------------------------------------------------------------------------------------------
// Failover to a backup service

struct Failover {
    service: Spawn<steadfast::fallback::Failover<Mocked, Mocked, AllErrors>>,
    primary: Handle,
    backup: Handle,
}

fn failover() -> Failover {
    let (primary, primary_handle) = mock::pair();
    let (backup, backup_handle) = mock::pair();
    Failover {
        service: Spawn::new(FallbackLayer::with_backup(backup).layer(primary)),
        primary: primary_handle,
        backup: backup_handle,
    }
}

#[tokio::test(start_paused = true)]
async fn fails_over_with_the_same_request_after_polling_the_backups_readiness() {
    let Failover {
        mut service,
        mut primary,
        mut backup,
    } = failover();
    backup.allow(0);
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("order-42");
    assert!(poll_once(&mut response).is_pending());
    assert!(
        backup.poll_request().is_pending(),
        "the backup takes no load first"
    );

    let (request, send) = primary.next_request().await.unwrap();
    assert_eq!(request, "order-42");
    send.send_error(Boom("primary"));
    assert!(
        poll_once(&mut response).is_pending(),
        "the backup is not ready"
    );
    assert!(
        backup.poll_request().is_pending(),
        "not called before it is ready"
    );

    backup.allow(1);
    assert!(poll_once(&mut response).is_pending());
    let (request, send) = backup.next_request().await.unwrap();
    assert_eq!(request, "order-42", "the same request");
    send.send_response("from backup");
    assert!(matches!(
        poll_once(&mut response),
        Poll::Ready(Ok("from backup"))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_primary_success_never_reaches_the_backup() {
    let Failover {
        mut service,
        mut primary,
        mut backup,
    } = failover();
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    let (_, send) = primary.next_request().await.unwrap();
    send.send_response("from primary");
    assert!(matches!(
        poll_once(&mut response),
        Poll::Ready(Ok("from primary"))
    ));
    assert!(backup.poll_request().is_pending());
}

#[tokio::test(start_paused = true)]
async fn the_backups_error_is_the_answer() {
    let Failover {
        mut service,
        mut primary,
        mut backup,
    } = failover();
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    primary
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(Boom("primary"));
    assert!(poll_once(&mut response).is_pending());
    backup
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(Boom("backup"));
    let error = ready_err(poll_once(&mut response));
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom("backup")));
}

#[tokio::test(start_paused = true)]
async fn the_backups_poll_ready_error_is_the_answer() {
    let Failover {
        mut service,
        mut primary,
        mut backup,
    } = failover();
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    backup.send_error(Boom("backup not ready"));
    primary
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(Boom("primary"));
    let error = ready_err(poll_once(&mut response));
    assert_eq!(
        error.downcast_ref::<Boom>(),
        Some(&Boom("backup not ready"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_declined_error_does_not_fail_over() {
    let (primary, mut primary_handle): (_, Handle) = mock::pair();
    let (backup, mut backup_handle): (_, Handle) = mock::pair();
    let mut service = Spawn::new(
        FallbackLayer::with_backup(backup)
            .when(RejectionsAndTimeouts)
            .layer(primary),
    );
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    primary_handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(Boom("primary"));
    let error = ready_err(poll_once(&mut response));
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom("primary")));
    assert!(backup_handle.poll_request().is_pending());
}

#[tokio::test(start_paused = true)]
async fn a_primary_poll_ready_error_goes_straight_to_the_backup() {
    let Failover {
        mut service,
        mut primary,
        mut backup,
    } = failover();
    primary.send_error(Boom("primary down"));
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    let (request, send) = backup.next_request().await.unwrap();
    assert_eq!(request, "x");
    send.send_response("from backup");
    assert!(matches!(
        poll_once(&mut response),
        Poll::Ready(Ok("from backup"))
    ));
    assert!(primary.poll_request().is_pending());
}

#[cfg(feature = "bulkhead")]
#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_backup_call_releases_what_the_backup_held() {
    use steadfast::bulkhead::BulkheadLayer;

    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .build()
        .unwrap();
    let (primary, mut primary_handle): (_, Handle) = mock::pair();
    let (backup, mut backup_handle): (_, Handle) = mock::pair();
    let mut service = Spawn::new(FallbackLayer::with_backup(bulkhead.layer(backup)).layer(primary));
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(
        bulkhead.available_permits(),
        1,
        "the backup holds nothing yet"
    );
    primary_handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(Boom("primary"));
    assert!(poll_once(&mut response).is_pending());
    let (_request, _send) = backup_handle.next_request().await.unwrap();
    assert_eq!(
        bulkhead.available_permits(),
        0,
        "the backup call holds a permit"
    );
    drop(response);
    assert_eq!(bulkhead.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_primary_call_never_reaches_the_backup() {
    let Failover {
        mut service,
        mut primary,
        mut backup,
    } = failover();
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("x");
    assert!(poll_once(&mut response).is_pending());
    let (_, send) = primary.next_request().await.unwrap();
    drop(response);
    send.send_error(Boom("too late"));
    assert!(backup.poll_request().is_pending());
}

#[test]
fn futures_are_send_and_static() {
    fn send_static<T: Send + 'static>(_: &T) {}
    let (_, f) = counting();
    let mut fallback = FallbackLayer::new(f).layer(failing());
    send_static(&fallback);
    send_static(&fallback.call("x"));
    let mut failover = FallbackLayer::with_backup(failing()).layer(failing());
    send_static(&failover);
    send_static(&failover.call("x"));
}

// ---------------------------------------------------------------------------------------------
// Telemetry

#[test]
fn a_debug_event_each_time_the_fallback_answers() {
    let events = events::capture();
    {
        let mut service = FallbackLayer::new(|_: BoxError| Ok("fallback"))
            .name("recommendations")
            .layer(failing());
        for _ in 0..2 {
            let mut response = Box::pin(service.call("x"));
            assert!(matches!(
                poll_once(&mut response),
                Poll::Ready(Ok("fallback"))
            ));
        }
        let mut ok = FallbackLayer::new(|_: BoxError| Ok("fallback")).layer(service_fn(
            |x: &'static str| async move { Ok::<_, BoxError>(x) },
        ));
        let mut response = Box::pin(ok.call("x"));
        assert!(poll_once(&mut response).is_ready());
    };
    let output = events.text();
    let events: Vec<&str> = output.lines().collect();
    assert_eq!(events.len(), 2, "{output}");
    for event in events {
        assert!(event.contains("DEBUG"), "{event}");
        assert!(event.contains("fallback answering"), "{event}");
        assert!(event.contains("fallback.name=recommendations"), "{event}");
        assert!(event.contains("fallback.kind=\"function\""), "{event}");
        assert!(event.contains("fallback.error=boom: primary"), "{event}");
    }
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn a_counter_each_time_the_fallback_answers() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (mut function, mut backup) = metrics::with_local_recorder(&recorder, || {
        (
            FallbackLayer::new(|_: BoxError| Ok("fallback"))
                .name("function")
                .layer(failing()),
            FallbackLayer::with_backup(service_fn(|_: &'static str| async {
                Ok::<_, BoxError>("backup")
            }))
            .name("backup")
            .layer(failing()),
        )
    });
    for _ in 0..3 {
        function.ready().await.unwrap().call("x").await.unwrap();
    }
    backup.ready().await.unwrap().call("x").await.unwrap();

    let counts: Vec<(String, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "steadfast_fallback_answers_total")
        .map(|(key, _, _, value)| {
            let name = key
                .key()
                .labels()
                .find(|l| l.key() == "name")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            (name, value)
        })
        .collect();
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.contains(&("function".to_owned(), DebugValue::Counter(3))));
    assert!(counts.contains(&("backup".to_owned(), DebugValue::Counter(1))));
}
