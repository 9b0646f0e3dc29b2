//! Integration tests of `steadfast::bulkhead`, on paused time, driven poll by poll.

#![cfg(feature = "bulkhead")]

#[path = "support/events.rs"]
mod events;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::bulkhead::{
    Bulkhead, BulkheadFull, BulkheadLayer, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MAX_WAIT,
    MAX_CONCURRENT_CALLS_LIMIT,
};
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock::{self, Mock, Spawn};

type Mocked = Spawn<Bulkhead<Mock<&'static str, &'static str>>>;
type Handle = mock::Handle<&'static str, &'static str>;

const MAX_WAIT: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(1);

/// A waker that records whether it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls a future once with a fresh waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(Flag::default()));
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

fn layer(max: usize, max_wait: Duration) -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(max)
        .max_wait(max_wait)
        .build()
        .expect("valid configuration")
}

/// A bulkhead over a mock service, polled by hand.
fn mocked(layer: &BulkheadLayer) -> (Mocked, Handle) {
    let (service, handle) = mock::pair();
    (Spawn::new(layer.layer(service)), handle)
}

/// Another service of the same layer over a clone of the same mock.
fn sibling(layer: &BulkheadLayer, of: &Mocked) -> Mocked {
    Spawn::new(layer.layer(of.get_ref().get_ref().clone()))
}

fn assert_full(error: &BoxError, max: usize, waited: Duration) {
    let full = error
        .downcast_ref::<BulkheadFull>()
        .unwrap_or_else(|| panic!("expected BulkheadFull, got {error:?}"));
    assert_eq!(full.max_concurrent_calls(), max);
    assert_eq!(full.waited(), waited);
    assert!(steadfast::is_rejection(&**error));
}

#[derive(Debug, PartialEq)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

impl std::error::Error for Boom {}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn defaults() {
    let layer = BulkheadLayer::builder().build().unwrap();
    assert_eq!(DEFAULT_MAX_CONCURRENT_CALLS, 25);
    assert_eq!(DEFAULT_MAX_WAIT, Duration::ZERO);
    assert_eq!(layer.max_concurrent_calls(), 25);
    assert_eq!(layer.available_permits(), 25);
}

#[test]
fn zero_max_concurrent_calls_is_rejected() {
    let error = BulkheadLayer::builder()
        .max_concurrent_calls(0)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "max_concurrent_calls");
    let message = error.to_string();
    assert!(message.contains("max_concurrent_calls"), "{message}");
    assert!(message.contains("[1, 2147483647]"), "{message}");
    assert!(message.contains("got 0"), "{message}");
}

#[test]
#[cfg(target_pointer_width = "64")]
fn too_many_max_concurrent_calls_is_rejected() {
    let error = BulkheadLayer::builder()
        .max_concurrent_calls(MAX_CONCURRENT_CALLS_LIMIT + 1)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "max_concurrent_calls");
    assert!(error.to_string().contains("2147483648"));

    let largest = BulkheadLayer::builder()
        .max_concurrent_calls(MAX_CONCURRENT_CALLS_LIMIT)
        .build()
        .unwrap();
    assert_eq!(largest.available_permits(), MAX_CONCURRENT_CALLS_LIMIT);
}

#[test]
fn empty_name_is_rejected() {
    let error = BulkheadLayer::builder().name("").build().unwrap_err();
    assert_eq!(error.field(), "name");
    assert!(error.to_string().contains("non-empty"));
}

#[test]
fn futures_are_send_and_services_send_sync() {
    fn send_static<T: Send + 'static>(_: &T) {}
    fn send_sync<T: Send + Sync>(_: &T) {}
    let layer = layer(1, MAX_WAIT);
    let mut service = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
    send_sync(&service);
    send_sync(&layer);
    send_static(&service.call(1));
}

// ---------------------------------------------------------------------------------------------
// Permits: taken in poll_ready, held to the end of the response future

#[tokio::test(start_paused = true)]
async fn permit_held_until_the_response_future_completes() {
    let layer = layer(2, Duration::ZERO);
    let (mut service, mut handle) = mocked(&layer);
    assert_eq!(layer.available_permits(), 2);

    assert!(service.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 1, "taken in poll_ready");
    assert_eq!(service.get_ref().available_permits(), 1);

    let mut response = service.call("hello");
    assert_eq!(
        layer.available_permits(),
        1,
        "moved into the response future"
    );
    assert!(poll_once(&mut response).is_pending());

    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request, "hello");
    assert_eq!(layer.available_permits(), 1);
    send.send_response("world");
    assert_eq!(
        layer.available_permits(),
        1,
        "held until the future is polled"
    );

    match poll_once(&mut response) {
        Poll::Ready(Ok(answer)) => assert_eq!(answer, "world"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(layer.available_permits(), 2);
    drop(response);
    assert_eq!(layer.available_permits(), 2, "given back once");
}

#[tokio::test(start_paused = true)]
async fn permit_returned_on_inner_error_which_passes_through() {
    let layer = layer(1, Duration::ZERO);
    let (mut service, mut handle) = mocked(&layer);
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("hello");
    assert!(poll_once(&mut response).is_pending());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Boom);

    let error = match poll_once(&mut response) {
        Poll::Ready(Err(error)) => error,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom), "not wrapped");
    assert!(!steadfast::is_rejection(&*error));
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn permit_returned_when_the_response_future_is_dropped_mid_call() {
    let layer = layer(1, Duration::ZERO);
    let (mut service, mut handle) = mocked(&layer);
    assert!(service.poll_ready().is_ready());
    let mut response = service.call("hello");
    assert!(poll_once(&mut response).is_pending());
    let (_, _send) = handle.next_request().await.unwrap();
    assert_eq!(layer.available_permits(), 0);

    drop(response);
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn permit_returned_when_a_ready_service_is_dropped_without_calling() {
    let layer = layer(1, Duration::ZERO);
    let (mut service, _handle) = mocked(&layer);
    assert!(service.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
    drop(service);
    assert_eq!(layer.available_permits(), 1);

    let (mut service, _handle) = mocked(&layer);
    assert!(service.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
    let inner = service.into_inner().into_inner();
    assert_eq!(
        layer.available_permits(),
        1,
        "into_inner gives the permit back"
    );
    drop(inner);
}

#[tokio::test(start_paused = true)]
async fn repeated_poll_ready_takes_one_permit() {
    let layer = layer(3, Duration::ZERO);
    let (mut service, _handle) = mocked(&layer);
    for _ in 0..5 {
        assert!(service.poll_ready().is_ready());
    }
    assert_eq!(layer.available_permits(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_clone_holds_no_permit() {
    let layer = layer(2, Duration::ZERO);
    let (mut service, _handle) = mocked(&layer);
    assert!(service.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 1);

    let mut clone = Spawn::new(service.get_ref().clone());
    assert_eq!(layer.available_permits(), 1, "cloning takes no permit");
    assert!(clone.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0, "the clone takes its own");
    drop(clone);
    assert_eq!(layer.available_permits(), 1, "and gives back only its own");
    drop(service);
    assert_eq!(layer.available_permits(), 2);
}

#[tokio::test(start_paused = true)]
async fn shared_by_every_clone_of_the_layer_and_every_service_it_makes() {
    let layer = layer(2, Duration::ZERO);
    let layer_clone = layer.clone();
    let (mut a, _handle) = mocked(&layer);
    let mut b = sibling(&layer_clone, &a);
    let mut c = sibling(&layer, &a);

    assert!(a.poll_ready().is_ready());
    assert!(b.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
    assert_eq!(layer_clone.available_permits(), 0);

    assert!(c.poll_ready().is_ready(), "rejection happens in call");
    let error = poll_once(&mut c.call("third")).map(Result::unwrap_err);
    match error {
        Poll::Ready(error) => assert_full(&error, 2, Duration::ZERO),
        Poll::Pending => panic!("a rejection is immediate"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fail fast (max_wait zero)

#[tokio::test(start_paused = true)]
async fn fail_fast_rejects_in_call_without_reaching_the_service() {
    let layer = layer(1, Duration::ZERO);
    let (mut holder, mut handle) = mocked(&layer);
    let mut other = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());

    match other.poll_ready() {
        Poll::Ready(Ok(())) => {}
        other => panic!("poll_ready must not fail when full: {other:?}"),
    }
    assert_eq!(layer.available_permits(), 0);
    let mut rejected = other.call("shed");
    match poll_once(&mut rejected) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, Duration::ZERO),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        handle.poll_request().is_pending(),
        "the request never reached the service"
    );
    assert_eq!(layer.available_permits(), 0);

    // The next poll_ready of the rejected service is a fresh attempt.
    drop(holder);
    assert_eq!(layer.available_permits(), 1);
    assert!(other.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_rejection_decided_in_poll_ready_stands_until_call() {
    let layer = layer(1, Duration::ZERO);
    let (mut holder, _handle) = mocked(&layer);
    let mut other = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());
    assert!(other.poll_ready().is_ready());
    drop(holder);
    assert!(other.poll_ready().is_ready());
    assert_eq!(
        layer.available_permits(),
        1,
        "no permit taken after the decision"
    );
    match poll_once(&mut other.call("late")) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, Duration::ZERO),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn call_without_poll_ready_never_exceeds_the_limit() {
    let layer = layer(1, Duration::ZERO);
    let mut service = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
    let mut first = Box::pin(service.call(1));
    assert_eq!(layer.available_permits(), 0);
    let mut second = Box::pin(service.call(2));
    match poll_once(&mut second) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, Duration::ZERO),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(poll_once(&mut first), Poll::Ready(Ok(1))));
    assert_eq!(layer.available_permits(), 1);
}

// ---------------------------------------------------------------------------------------------
// Readiness of the inner service

#[tokio::test(start_paused = true)]
async fn inner_poll_ready_error_gives_the_permit_back_and_passes_through() {
    let layer = layer(1, Duration::ZERO);
    let (mut service, mut handle) = mocked(&layer);
    handle.send_error(Boom);
    match service.poll_ready() {
        Poll::Ready(Err(error)) => assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn permit_held_while_the_inner_service_is_not_ready() {
    let layer = layer(1, Duration::ZERO);
    let (mut service, mut handle) = mocked(&layer);
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    assert_eq!(layer.available_permits(), 0);
    handle.allow(1);
    assert!(service.is_woken());
    assert!(service.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
}

// ---------------------------------------------------------------------------------------------
// Waiting at most max_wait

/// A layer with one permit, held by the returned service, and a second service to wait.
fn one_permit_held() -> (BulkheadLayer, Mocked, Mocked, Handle) {
    let layer = layer(1, MAX_WAIT);
    let (mut holder, handle) = mocked(&layer);
    let waiter = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
    (layer, holder, waiter, handle)
}

#[tokio::test(start_paused = true)]
async fn waits_and_is_rejected_exactly_at_max_wait() {
    let (layer, _holder, mut waiter, mut handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());

    advance(MAX_WAIT - TICK).await;
    assert!(
        !waiter.is_woken(),
        "one tick before max_wait: still waiting"
    );
    assert!(waiter.poll_ready().is_pending());

    advance(TICK).await;
    assert!(waiter.is_woken(), "woken at max_wait");
    assert!(waiter.poll_ready().is_ready(), "rejection happens in call");
    match poll_once(&mut waiter.call("late")) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, MAX_WAIT),
        other => panic!("unexpected {other:?}"),
    }
    assert!(handle.poll_request().is_pending());
    assert_eq!(layer.available_permits(), 0);
}

#[tokio::test(start_paused = true)]
async fn permit_freed_one_tick_before_max_wait_is_taken() {
    let (layer, holder, mut waiter, _handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());
    advance(MAX_WAIT - TICK).await;
    drop(holder);
    assert!(waiter.is_woken(), "a freed permit wakes the waiter");
    assert!(waiter.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0, "the waiter holds it");
    drop(waiter);
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn permit_freed_exactly_at_max_wait_is_taken() {
    let (layer, holder, mut waiter, mut handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());
    advance(MAX_WAIT).await;
    drop(holder);
    assert!(waiter.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
    let mut response = waiter.call("just in time");
    assert!(poll_once(&mut response).is_pending());
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request, "just in time");
    send.send_response("ok");
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok("ok"))));
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn permit_freed_one_tick_after_max_wait_is_too_late() {
    let (layer, holder, mut waiter, _handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());
    advance(MAX_WAIT).await;
    assert!(waiter.poll_ready().is_ready());
    advance(TICK).await;
    drop(holder);
    assert_eq!(
        layer.available_permits(),
        1,
        "the rejected waiter took nothing"
    );
    match poll_once(&mut waiter.call("late")) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, MAX_WAIT),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_wait_by_the_same_service_gets_a_full_max_wait() {
    let (layer, _holder, mut waiter, _handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());
    advance(MAX_WAIT).await;
    assert!(waiter.poll_ready().is_ready());
    assert!(poll_once(&mut waiter.call("first")).is_ready());

    assert!(waiter.poll_ready().is_pending(), "waits again");
    advance(MAX_WAIT - TICK).await;
    assert!(waiter.poll_ready().is_pending());
    advance(TICK).await;
    assert!(waiter.poll_ready().is_ready());
    match poll_once(&mut waiter.call("second")) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, MAX_WAIT),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(layer.available_permits(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_service_withdraws_it() {
    let (layer, holder, mut waiter, _handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());
    drop(waiter);
    drop(holder);
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_woken_waiter_passes_the_wake_up_on() {
    let layer = layer(1, MAX_WAIT);
    let (mut holder, _handle) = mocked(&layer);
    let mut first = sibling(&layer, &holder);
    let mut second = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());
    assert!(first.poll_ready().is_pending());
    assert!(second.poll_ready().is_pending());

    drop(holder);
    assert!(first.is_woken(), "the first waiter is woken");
    assert!(!second.is_woken());
    assert_eq!(layer.available_permits(), 1);

    drop(first); // woken, but gone before it took the permit
    assert!(second.is_woken(), "the wake-up passes to the next waiter");
    assert!(second.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_permit_was_taken_by_a_newcomer_keeps_waiting() {
    let layer = layer(1, MAX_WAIT);
    let (mut holder, _handle) = mocked(&layer);
    let mut waiter = sibling(&layer, &holder);
    let mut newcomer = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());
    assert!(waiter.poll_ready().is_pending());

    drop(holder);
    assert!(waiter.is_woken());
    // Not first-come first-served: a call arriving now takes the free permit.
    assert!(newcomer.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
    assert!(waiter.poll_ready().is_pending(), "keeps waiting");

    advance(MAX_WAIT / 2).await;
    drop(newcomer);
    assert!(waiter.is_woken(), "woken again by the newcomer's release");
    assert!(waiter.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
}

#[tokio::test(start_paused = true)]
async fn call_while_waiting_withdraws_the_wait() {
    let (layer, holder, mut waiter, _handle) = one_permit_held();
    assert!(waiter.poll_ready().is_pending());
    // Breaking the contract: call after poll_ready answered Pending.
    match poll_once(&mut waiter.get_mut().call("eager")) {
        Poll::Ready(Err(error)) => assert_full(&error, 1, Duration::ZERO),
        other => panic!("unexpected {other:?}"),
    }
    drop(holder);
    assert_eq!(layer.available_permits(), 1);
    assert!(!waiter.is_woken(), "no longer registered as a waiter");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_ready_future_mid_wait_returns_nothing_it_did_not_take() {
    let layer = layer(1, MAX_WAIT);
    let mut holder = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
    let mut waiter = holder.clone();
    ServiceExt::<u32>::ready(&mut holder).await.unwrap();
    {
        let mut ready = Box::pin(ServiceExt::<u32>::ready(&mut waiter));
        assert!(poll_once(&mut ready).is_pending());
    } // the `ready()` future is dropped mid-wait; the service stays registered until dropped
    drop(waiter);
    assert_eq!(layer.available_permits(), 0);
    drop(holder);
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_waiter_delays_others_at_most_until_their_deadline() {
    let layer = layer(1, MAX_WAIT);
    let (mut holder, _handle) = mocked(&layer);
    let mut abandoned = sibling(&layer, &holder);
    let mut patient = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());
    assert!(abandoned.poll_ready().is_pending()); // registered first, then never polled again
    advance(TICK).await;
    assert!(patient.poll_ready().is_pending());

    drop(holder);
    assert!(abandoned.is_woken(), "the wake-up goes to the first waiter");
    assert!(!patient.is_woken());
    assert_eq!(layer.available_permits(), 1);

    advance(MAX_WAIT - TICK).await;
    assert!(!patient.is_woken(), "one tick before its deadline");
    advance(TICK).await;
    assert!(patient.is_woken(), "its deadline wakes it");
    assert!(patient.poll_ready().is_ready());
    assert_eq!(
        layer.available_permits(),
        0,
        "and its last try takes the free permit"
    );
    drop(abandoned);
    assert_eq!(
        layer.available_permits(),
        0,
        "the abandoned waiter held no permit"
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_max_wait_does_not_overflow_the_clock() {
    let layer = layer(1, Duration::MAX);
    let (mut holder, _handle) = mocked(&layer);
    let mut waiter = sibling(&layer, &holder);
    assert!(holder.poll_ready().is_ready());
    assert!(waiter.poll_ready().is_pending());
    advance(Duration::from_secs(3600)).await;
    assert!(waiter.poll_ready().is_pending());
    drop(holder);
    assert!(waiter.poll_ready().is_ready());
    assert_eq!(layer.available_permits(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_one_per_freed_permit() {
    let layer = layer(2, MAX_WAIT);
    let (mut a, _handle) = mocked(&layer);
    let mut b = sibling(&layer, &a);
    let mut waiters: Vec<Mocked> = (0..3).map(|_| sibling(&layer, &a)).collect();
    assert!(a.poll_ready().is_ready());
    assert!(b.poll_ready().is_ready());
    for waiter in &mut waiters {
        assert!(waiter.poll_ready().is_pending());
    }
    drop(a);
    drop(b);
    let admitted = waiters
        .iter_mut()
        .filter(|waiter| waiter.is_woken())
        .map(|waiter| waiter.poll_ready().is_ready())
        .filter(|ready| *ready)
        .count();
    assert_eq!(admitted, 2);
    assert_eq!(layer.available_permits(), 0);
    advance(MAX_WAIT).await;
    let third = waiters
        .iter_mut()
        .find(|w| w.is_woken())
        .expect("the deadline wakes the third");
    assert!(third.poll_ready().is_ready());
    match poll_once(&mut third.call("late")) {
        Poll::Ready(Err(error)) => assert_full(&error, 2, MAX_WAIT),
        other => panic!("unexpected {other:?}"),
    }
    drop(waiters);
    assert_eq!(layer.available_permits(), 2);
}

// ---------------------------------------------------------------------------------------------
// Concurrency

async fn never_more_than_the_limit(max_wait: Duration, tasks: usize, max: usize) -> (usize, usize) {
    let layer = layer(max, max_wait);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let inner = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        service_fn(move |_: usize| {
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            }
        })
    };
    let service = layer.layer(inner);
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let mut service = service.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                for j in 0..20 {
                    match ServiceExt::<usize>::ready(&mut service)
                        .await
                        .unwrap()
                        .call(i * 20 + j)
                        .await
                    {
                        Ok(()) => ok += 1,
                        Err(error) => assert!(error.is::<BulkheadFull>()),
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for handle in handles {
        ok += handle.await.unwrap();
    }
    drop(service);
    assert!(peak.load(Ordering::SeqCst) <= max, "peak {peak:?} > {max}");
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(layer.available_permits(), max, "every permit back");
    (ok, peak.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiting_tasks_never_exceed_the_limit_and_all_get_through() {
    // A generous max_wait: a lost wake-up would show as a rejection (or a hang).
    let (ok, peak) = never_more_than_the_limit(Duration::from_secs(60), 64, 4).await;
    assert_eq!(ok, 64 * 20, "every call admitted");
    assert!(peak >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_failing_fast_tasks_never_exceed_the_limit() {
    let (ok, _) = never_more_than_the_limit(Duration::ZERO, 64, 3).await;
    assert!(ok >= 1);
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn metrics_in_flight_gauge_and_rejected_counter() {
    use std::collections::HashMap;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::{CompositeKey, MetricKind};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        BulkheadLayer::builder()
            .max_concurrent_calls(1)
            .name("inventory")
            .build()
            .unwrap()
    });
    // The debugging recorder resets every metric it reads: each snapshot holds the changes
    // since the previous one.
    let snapshot = || {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..): &(CompositeKey, _, _, _)| {
                key.key()
                    .labels()
                    .any(|l| l.key() == "name" && l.value() == "inventory")
            })
            .map(|(key, _, _, value)| ((key.kind(), key.key().name().to_owned()), value))
            .collect::<HashMap<_, _>>()
    };
    let gauge = |value: f64| DebugValue::Gauge(value.into());
    let in_flight = (MetricKind::Gauge, "steadfast_bulkhead_in_flight".to_owned());
    let rejected = (
        MetricKind::Counter,
        "steadfast_bulkhead_rejected_total".to_owned(),
    );
    let max = (
        MetricKind::Gauge,
        "steadfast_bulkhead_max_concurrent_calls".to_owned(),
    );

    let (mut service, _handle) = mocked(&layer);
    let mut other = sibling(&layer, &service);
    assert!(service.poll_ready().is_ready());
    let first = snapshot();
    assert_eq!(first.get(&max), Some(&gauge(1.0)), "set at build");
    assert_eq!(first.get(&in_flight), Some(&gauge(1.0)));
    assert_eq!(
        first.get(&rejected),
        Some(&DebugValue::Counter(0)),
        "registered at build"
    );

    assert!(other.poll_ready().is_ready());
    assert!(poll_once(&mut other.call("shed")).is_ready());
    assert!(other.poll_ready().is_ready());
    assert!(poll_once(&mut other.call("shed again")).is_ready());
    drop(service);
    let second = snapshot();
    assert_eq!(second.get(&rejected), Some(&DebugValue::Counter(2)));
    assert_eq!(
        second.get(&in_flight),
        Some(&gauge(-1.0)),
        "one permit given back"
    );
}

// ---------------------------------------------------------------------------------------------
// Tracing

#[test]
fn a_debug_event_per_rejection() {
    let events = events::capture();
    {
        let layer = BulkheadLayer::builder()
            .max_concurrent_calls(1)
            .name("inventory")
            .build()
            .unwrap();
        let mut service = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
        let _in_flight = Box::pin(service.call(1));
        for _ in 0..2 {
            assert!(poll_once(&mut Box::pin(service.call(2))).is_ready());
        }
    };
    let output = events.text();
    let events: Vec<&str> = output.lines().collect();
    assert_eq!(events.len(), 2, "{output}");
    for event in events {
        assert!(event.contains("DEBUG"), "{event}");
        assert!(event.contains("bulkhead full"), "{event}");
        assert!(event.contains("bulkhead.name=inventory"), "{event}");
        assert!(event.contains("bulkhead.max_concurrent_calls=1"), "{event}");
        assert!(event.contains("bulkhead.waited_ms=0"), "{event}");
    }
}
